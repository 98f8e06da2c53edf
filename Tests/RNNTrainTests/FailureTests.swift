import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

@Suite("A worker dies mid-run", .serialized)
struct FailureTests {
    let args = ["train", "--workers", "3", "--dataset", "timemachine", "--max-tokens", "30000", "--hidden", "48", "--batch-size", "12",
                "--num-steps", "20", "--epochs", "12", "--valid-fraction", "0.1", "--seed", "4", "--log-level", "info"]

    @Test("SIGKILL one of three workers: the run finishes, its streams move on, validation within 2% of an undisturbed run")
    func killedWorkerRunFinishes() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let clean = try run(bin, args + ["--checkpoint-dir", dir + "/clean", "--data-dir", sharedDataDirectory()], timeout: 120)
        #expect(clean.status == 0, "\(clean.stderr)")
        let cleanPath = try #require(latestCheckpoint(in: dir + "/clean"))
        let cleanVal = try #require(try Checkpoint<TrainingRecord>.read(from: cleanPath).extra.history.last?.validPerplexity)

        let log = dir + "/killed.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = args + ["--checkpoint-dir", dir + "/killed", "--data-dir", sharedDataDirectory()]
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = p.standardOutput
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // Kill a worker once the first epoch is done, mid-run.
        var deadline = Date().addingTimeInterval(60)
        while Date() < deadline && latestCheckpoint(in: dir + "/killed") == nil { usleep(5_000) }
        let victims = workerProcesses(parent: p.processIdentifier)
        try #require(victims.count == 3, "expected 3 workers, found \(victims)")
        kill(victims[1], SIGKILL)
        let killedAt = Date()
        var detected: Double?
        deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline {
            if detected == nil, (try? String(contentsOfFile: log, encoding: .utf8))?.contains(" lost at step ") == true {
                detected = Date().timeIntervalSince(killedAt)
            }
            usleep(2_000)
        }
        if p.isRunning { Issue.record("watchdog: the run with a killed worker did not finish within 60 s") }
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("lost at step") && text.contains("unreachable") && text.contains("move to worker"), "\(text)")
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir + "/killed")))
        #expect(ck.extra.history.count == 12)
        let val = try #require(ck.extra.history.last?.validPerplexity)
        print("killed worker: detected after \(detected.map { String(format: "%.3f s", $0) } ?? "?"); final validation perplexity \(val) vs \(cleanVal) undisturbed (\(String(format: "%+.2f%%", 100 * (val / cleanVal - 1))))")
        #expect(abs(val / cleanVal - 1) <= 0.02, "validation perplexity \(val) vs \(cleanVal) undisturbed")
        #expect((detected ?? 99) < 5, "a killed worker must be noticed quickly (took \(detected ?? -1) s)")
        #expect(workerProcesses(parent: p.processIdentifier).isEmpty)
    }
}
