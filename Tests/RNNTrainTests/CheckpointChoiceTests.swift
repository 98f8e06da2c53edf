import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

/// `eval`, `generate` and `translate` take a checkpoint folder: its best.safetensors when it has one, else its newest
/// step checkpoint, and say on standard error which file they used.
@Suite("A checkpoint folder resolves to best.safetensors, else the newest step", .serialized)
struct CheckpointChoiceTests {
    final class Log: @unchecked Sendable { var lines: [String] = [] }

    @Test("best.safetensors wins over newer step files; without it the newest step; a file is taken as given")
    func resolve() throws {
        let dir = temporaryDirectory()
        for name in ["step-00000010.safetensors", "step-00000030.safetensors", "step-00000020.safetensors"] {
            #expect(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data()))
        }
        let log = Log()
        #expect(try TrainedModel.resolve(dir, log: { log.lines.append($0) }) == dir + "/step-00000030.safetensors")
        #expect(FileManager.default.createFile(atPath: dir + "/best.safetensors", contents: Data()))
        #expect(try TrainedModel.resolve(dir, log: { log.lines.append($0) }) == dir + "/best.safetensors")
        #expect(log.lines == ["using \(dir)/step-00000030.safetensors", "using \(dir)/best.safetensors"])
        #expect(try TrainedModel.resolve(dir + "/step-00000010.safetensors", log: { log.lines.append($0) }) == dir + "/step-00000010.safetensors")
        #expect(log.lines.count == 2, "a file given by name is not announced")
        let empty = temporaryDirectory()
        #expect(throws: CheckpointError.self) { try TrainedModel.resolve(empty, log: { _ in }) }
    }

    @Test("generate and eval on a folder whose best is an older step use best.safetensors and say so")
    func commandsUseBest() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory() + "/run"
        let t = try run(bin, ["train", "--dataset", "timemachine", "--data-dir", sharedDataDirectory(), "--max-tokens", "6000",
                              "--hidden", "32", "--batch-size", "8", "--num-steps", "10", "--epochs", "2", "--checkpoint-dir", dir])
        #expect(t.status == 0, "\(t.stderr)")
        let steps = checkpointFiles(in: dir)
        #expect(steps.count == 2)
        let older = try #require(steps.first?.path)
        // The trainer wrote its own best; replace it by the older step so the test can tell them apart.
        try? FileManager.default.removeItem(atPath: dir + "/best.safetensors")
        try FileManager.default.copyItem(atPath: older, toPath: dir + "/best.safetensors")

        let generate = ["generate", "--prefix", "time traveller", "--tokens", "30"]
        let fromFolder = try run(bin, generate + ["--checkpoint", dir])
        #expect(fromFolder.status == 0 && fromFolder.stderr == "using \(dir)/best.safetensors\n", "\(fromFolder.stderr)")
        let fromOlder = try run(bin, generate + ["--checkpoint", older])
        #expect(fromOlder.stderr.isEmpty && fromFolder.stdout == fromOlder.stdout)

        let eval = try run(bin, ["eval", "--checkpoint", dir, "--corpus", sharedDataDirectory() + "/timemachine.txt"])
        #expect(eval.status == 0 && eval.stderr == "using \(dir)/best.safetensors\n" && eval.stdout.contains("perplexity"), "\(eval.stderr)")
    }
}
