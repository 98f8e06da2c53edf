import Foundation
import RNNCheckpoint
import RNNCore
import RNNTrain
import Testing

/// `--tied`: one tensor, `encoder.weight`, read by the embedding and the decoder, on every path.
@Suite("Tied embedding and decoder", .serialized)
struct TiedTests {
    static func tiedOptions(_ dir: String, _ configure: (inout TrainOptions) -> Void = { _ in }) -> TrainOptions {
        timeMachineOptions {
            $0.maxTokens = 4000; $0.hidden = 24; $0.embed = 24; $0.tied = true; $0.layers = 2; $0.model = .lstm
            $0.batchSize = 6; $0.epochs = 2; $0.validFraction = 0.1; $0.dropout = 0.2; $0.checkpointDir = dir
            configure(&$0)
        }
    }

    @Test("two worker threads over inproc:// and two compute threads end within 1e-5 of one process")
    func distributedMatchesTheReference() throws {
        let refDir = temporaryDirectory() + "/ck"
        let ref = try InProcessDistributedTests.train(workers: 0, options: Self.tiedOptions(refDir))
        #expect(ref.extra.step > 50)
        let workers = try InProcessDistributedTests.train(workers: 2, options: Self.tiedOptions(temporaryDirectory() + "/ck"))
        let threads = try InProcessDistributedTests.train(workers: 0, options: Self.tiedOptions(temporaryDirectory() + "/ck"),
                                                          threads: 2)
        for (name, ck) in [("2 workers", workers), ("2 threads", threads)] {
            #expect(ck.extra.step == ref.extra.step)
            let d = InProcessDistributedTests.maxRelativeDifference(ck.parameters, ref.parameters)
            print("tied, \(name): max relative parameter difference \(d)")
            #expect(d <= 1e-5, "tied, \(name): max relative parameter difference \(d)")
        }
        // The checkpoint holds the shared tensor once, as encoder.weight, and no decoder.weight.
        let names = try SafeTensors.read(try #require(latestCheckpoint(in: refDir))).tensors.map(\.name)
        #expect(names.contains("encoder.weight") && !names.contains("decoder.weight") && names.contains("decoder.bias"))
        guard case .languageModel(let c) = ref.spec else { Issue.record("not a language model: \(ref.spec)"); return }
        #expect(c.tied)
    }

    @Test("a tied run resumed mid-way ends bit-identical to the uninterrupted run")
    func resumeIsBitIdentical() throws {
        let dir = temporaryDirectory()
        let o = Self.tiedOptions(dir + "/split") { $0.validFraction = 0 }
        let data = try TextData.load(o, dataDir: sharedDataDirectory())
        var straightOptions = o
        straightOptions.checkpointDir = dir + "/straight"
        let straight = try Trainer(options: straightOptions, data: data, log: { _ in })
        try straight.run()
        let k = straight.record.step
        let first = try Trainer(options: o, data: data, log: { _ in })
        try first.run(maxSteps: k / 2 + 3)
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir + "/split")))
        #expect(ck.extra.options.tied == true)
        let resumed = try Trainer(resuming: ck, data: data, log: { _ in })
        try resumed.run()
        #expect(resumed.record.step == k)
        #expect(resumed.task.parameters.array.map(\.bitPattern) == straight.task.parameters.array.map(\.bitPattern))
    }

    @Test("settings and model configurations written before --tied existed decode as untied")
    func oldRecordsDecodeUntied() throws {
        let old = #"{"vocabSize":28,"embedSize":0,"hiddenSize":32,"layers":1,"cell":"gru","dropout":0}"#
        let c = try JSONDecoder().decode(ModelConfig.self, from: Data(old.utf8))
        #expect(!c.tied)
        // An untied configuration is written as before (no `tied` key); a tied one round-trips.
        #expect(!String(decoding: try JSONEncoder().encode(c), as: UTF8.self).contains("tied"))
        var t = c
        t.embedSize = 32; t.tied = true
        #expect(try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(t)) == t)
        var o = TrainOptions()
        o.tied = nil
        let json = String(decoding: try JSONEncoder().encode(o), as: UTF8.self)
        #expect(!json.contains("tied"))
        #expect(try JSONDecoder().decode(TrainOptions.self, from: Data(json.utf8)).tied == nil)
    }

    @Test("--tied without --embed equal to --hidden, or with --task translation, is refused with the fix")
    func refusals() throws {
        let bin = try rnnlmBinary()
        let data = sharedDataDirectory()
        let bad = try run(bin, ["train", "--dataset", "timemachine", "--data-dir", data, "--tied", "--hidden", "16",
                                "--embed", "8", "--epochs", "1"])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("--tied") && bad.stderr.contains("--embed 16"), "\(bad.stderr)")
        let oneHot = try run(bin, ["train", "--dataset", "timemachine", "--data-dir", data, "--tied", "--hidden", "16",
                                   "--epochs", "1"])
        #expect(oneHot.status == 1 && oneHot.stderr.contains("--embed equal to --hidden"), "\(oneHot.stderr)")
        let translation = try run(bin, ["train", "--task", "translation", "--dataset", "fra-eng", "--data-dir", data,
                                        "--embed", "16", "--hidden", "16", "--tied", "--epochs", "1"])
        #expect(translation.status == 1 && translation.stderr.contains("--tied"), "\(translation.stderr)")
    }
}
