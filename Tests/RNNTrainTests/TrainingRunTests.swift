import Foundation
import RNNDistributed
import RNNTrain
import Testing

/// What a run wrote to its `OutputSink`, collected from any thread.
final class CollectedOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var out = "", err = ""

    var sink: OutputSink {
        OutputSink(standardOutput: { text in self.lock.withLock { self.out += text } },
                   standardError: { text in self.lock.withLock { self.err += text } })
    }
    var standardOutput: String { lock.withLock { out } }
    var standardError: String { lock.withLock { err } }
    var lines: [Substring] { standardOutput.split(separator: "\n") }
}

@Suite("The library's training run, driven in-process", .serialized)
struct TrainingRunTests {
    func settings(_ configure: (inout TrainOptions) -> Void) -> TrainingRun.Settings {
        var s = TrainingRun.Settings(start: .new(timeMachineOptions {
            $0.maxTokens = 3000; $0.hidden = 16; $0.batchSize = 4; $0.epochs = 2
            configure(&$0)
        }))
        s.dataDir = sharedDataDirectory()
        return s
    }

    @Test("a tiny run reports its epochs and perplexities, in its summary and in the lines it printed")
    func tinyRun() throws {
        let output = CollectedOutput()
        let summary = try TrainingRun(settings: settings { _ in }, output: output.sink, stop: .never).run()
        #expect(summary.outcome == .trained && summary.exitCode == 0)
        #expect(summary.epochs == 2 && summary.history.count == 2)
        #expect(summary.steps > 0 && summary.checkpoint == nil)
        let epochLines = output.lines.filter { $0.hasPrefix("epoch ") && $0.contains("  perplexity ") }
        #expect(epochLines.map(String.init) == summary.history.map(\.line), "\(output.standardOutput)")
        let last = try #require(summary.history.last)
        #expect(last.trainPerplexity > 1 && last.trainPerplexity < 28)
        #expect(output.lines.first?.hasPrefix("training gru: 1 layer(s), hidden 16") == true)
        #expect(output.lines.contains { $0.hasPrefix("done: 2 epochs, \(summary.steps) steps") && $0.contains(String(format: "final perplexity %.3f", last.trainPerplexity)) })
        #expect(output.standardError.isEmpty)
    }

    @Test("a stop request ends the run at a step boundary with a checkpoint, as SIGINT does (exit code 130)")
    func stopRequest() throws {
        let dir = temporaryDirectory() + "/ck"
        let output = CollectedOutput()
        let stop = StopRequest(isRequested: { output.standardOutput.contains("epoch 1  perplexity") })
        let summary = try TrainingRun(settings: settings { $0.checkpointDir = dir }, output: output.sink, stop: stop).run()
        guard case .interrupted(let saved?) = summary.outcome else {
            Issue.record("expected an interrupted run with a checkpoint, got \(summary.outcome)")
            return
        }
        #expect(summary.exitCode == 130 && summary.epochs == 1)
        #expect(output.standardError == "interrupted: saved \(saved); continue with --resume\n")
        #expect(!output.standardOutput.contains("done: "))
    }

    @Test("settings that cannot work are refused before any data loads")
    func validateBeforeData() {
        var s = settings { $0.dataset = nil; $0.corpus = "/nonexistent.txt"; $0.batchSize = 0 }
        #expect(throws: (any Error).self) { try TrainingRun(settings: s, output: CollectedOutput().sink, stop: .never).run() }
        do { try s.validate() } catch { #expect("\(error)".contains("--batch-size must be at least 1")) }
        s = settings { _ in }
        s.logEvery = 0
        #expect(throws: (any Error).self) { try s.validate() }
    }
}
