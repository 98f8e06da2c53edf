import Foundation
import RNNCore
import Testing

/// A model or batch too large for memory is refused before anything is allocated, saying what it needs and what
/// there is; a worker whose share does not fit refuses itself.
@Suite("memory refusal", .serialized)
struct MemoryRefusalTests {
    @Test("the estimate adds parameters, gradients, optimizer slots and workspaces; check refuses past the budget")
    func estimateAndCheck() throws {
        let c = ModelConfig(vocabSize: 28, embedSize: 0, hiddenSize: 200_000, layers: 1, cell: .gru)
        let e = ModelSpec.languageModel(c).trainingMemory(rows: 32, steps: 35, optimizerSlots: 0)
        let p = Double(ParameterLayout(model: c).count)
        #expect(e.parameters == 4 * p && e.gradients == 4 * p && e.optimizer == 0 && e.workspaces > 0)
        #expect(e.total > 4.8e11, "the allocation that used to abort was 480,094,400,112 bytes")
        #expect(ModelSpec.languageModel(c).trainingMemory(rows: 32, steps: 35, optimizerSlots: 2).optimizer == 8 * p)
        #expect(throws: ConfigError.self) {
            try e.check(available: .init(bytes: 8e9, source: "test"), lower: "lower --hidden")
        }
        do { try e.check(available: .init(bytes: 8e9, source: "test"), lower: "lower --hidden") } catch {
            #expect(error.description.contains("but this machine has 8 GB available (test); lower --hidden"), "\(error)")
        }
        try e.check(available: .init(bytes: 1e13, source: "test"), lower: "")
        try e.check(available: .init(bytes: nil, source: "unknown"), lower: "")  // no figure: no refusal
        #expect(MemoryEstimate.Available.current(environment: ["RNNLM_MEMORY_LIMIT": "1000"]).bytes == 1000)
        let here = MemoryEstimate.Available.current(environment: [:])
        #expect((here.bytes ?? 0) > 1e6, "\(here)")
    }

    @Test("rnnlm train --hidden 200000 is refused at once with the bytes it needs and the bytes available")
    func hugeModelIsRefused() throws {
        let started = Date()
        let r = try run(try rnnlmBinary(), ["train", "--dataset", "timemachine", "--hidden", "200000", "--data-dir", sharedDataDirectory()],
                        timeout: 60)
        let seconds = Date().timeIntervalSince(started)
        print("--hidden 200000 refused in \(String(format: "%.2f", seconds)) s: \(r.stderr)")
        #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stderr.contains("training needs about") && r.stderr.contains("available") && r.stderr.contains("lower --hidden"), "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"))
    }

    @Test("a worker with less memory than its share refuses itself with a clear message")
    func smallWorkerRefusesItself() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let port = String(41_000 + Int.random(in: 0..<5_000))
        let c = try startProcess(bin, ["coordinator", "--bind", "tcp://127.0.0.1:" + port, "--expect-workers", "1", "--dataset", "timemachine",
                                       "--max-tokens", "2000", "--hidden", "16", "--epochs", "1", "--data-dir", sharedDataDirectory()],
                                 log: dir + "/c.log")
        defer { if c.isRunning { kill(c.processIdentifier, SIGKILL) } }
        let w = try run(bin, ["worker", "--connect", "tcp://127.0.0.1:" + port, "--join-timeout", "30"],
                        environment: ["RNNLM_MEMORY_LIMIT": "100000"], timeout: 60)
        #expect(w.status == 1, "\(w.stdout)\n\(w.stderr)")
        #expect(w.stderr.contains("but this worker has 100 kB available (RNNLM_MEMORY_LIMIT)"), "\(w.stderr)")
        kill(c.processIdentifier, SIGKILL)
    }
}
