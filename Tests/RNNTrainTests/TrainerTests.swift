import Foundation
import RNNCheckpoint
import RNNCore
import RNNText
import RNNTrain
import Testing

func timeMachineOptions(_ configure: (inout TrainOptions) -> Void = { _ in }) -> TrainOptions {
    var o = TrainOptions()
    o.dataset = "timemachine"
    o.tokenizer = .char
    o.maxTokens = 6000
    o.model = .gru
    o.hidden = 32
    o.batchSize = 8
    o.numSteps = 10
    o.epochs = 4
    o.lr = 1
    o.clip = 1
    o.seed = 11
    configure(&o)
    return o
}

@Suite("Reference trainer", .serialized)
struct TrainerTests {
    @Test("a tiny GRU learns the time machine: perplexity falls far below what an untrained model reaches")
    func perplexityFalls() throws {
        let o = timeMachineOptions { $0.epochs = 15; $0.validFraction = 0.1 }
        let data = try TextData.load(o, dataDir: sharedDataDirectory())
        let trainer = try Trainer(options: o, data: data, log: { _ in })
        let untrained = try #require(trainer.evaluate(.validation)).perplexity
        let reports = try trainer.run()
        let steps = trainer.record.step
        #expect(steps >= 300, "only \(steps) steps")
        let final = try #require(reports.last)
        // Untrained ≈ vocabulary size (28); the character unigram distribution alone gives ≈ 17.
        #expect(untrained > 20, "untrained validation perplexity \(untrained)")
        #expect(final.trainPerplexity < 9, "train perplexity after \(steps) steps: \(final.trainPerplexity)")
        #expect(try #require(final.validPerplexity) < 10, "validation perplexity \(final.validPerplexity!)")
        #expect(reports.first!.trainPerplexity > final.trainPerplexity)
    }

    @Test("k steps straight ≡ k/2 steps, stop, resume, k/2 steps (bit-identical, mid-epoch, with dropout)",
          arguments: [Partition.sequential, .random])
    func resumeIsBitIdentical(_ partition: Partition) throws {
        let dir = temporaryDirectory()
        let o = timeMachineOptions {
            $0.epochs = 2; $0.embed = 8; $0.dropout = 0.2; $0.layers = 2; $0.model = .lstm
            $0.optimizer = .adam; $0.lr = 0.01; $0.partition = partition; $0.checkpointDir = dir + "/split"
            $0.lrSchedule = .step; $0.lrStepStart = 1
        }
        let data = try TextData.load(o, dataDir: sharedDataDirectory())
        var straightOptions = o
        straightOptions.checkpointDir = dir + "/straight"
        let straight = try Trainer(options: straightOptions, data: data, log: { _ in })
        try straight.run()
        let k = straight.record.step
        #expect(k > 100)

        let first = try Trainer(options: o, data: data, log: { _ in })
        try first.run(maxSteps: k / 2 + 3)  // stops mid-epoch (not on an epoch boundary)
        #expect(first.record.batchInEpoch != 0)
        let saved = try #require(latestCheckpoint(in: dir + "/split"))
        let ck = try Checkpoint<TrainingRecord>.read(from: saved)
        let resumed = try Trainer(resuming: ck, data: data, log: { _ in })
        try resumed.run()
        #expect(resumed.record.step == k)
        #expect(resumed.task.parameters.array.map(\.bitPattern) == straight.task.parameters.array.map(\.bitPattern),
                "parameters after resume differ from the uninterrupted run")
        #expect(resumed.optimizer.slots[1].array == straight.optimizer.slots[1].array)
        #expect(resumed.record.history.map(\.trainPerplexity) == straight.record.history.map(\.trainPerplexity))
    }

    /// A finite gradient can still overflow a parameter (a huge rate): the update sees it in the pass that writes
    /// it, and the step fails saying what to do, before any checkpoint or worker sees the weights.
    @Test func anUpdateThatOverflowsStopsTheRun() throws {
        let o = timeMachineOptions { $0.lr = 1e38; $0.clip = 0 }
        let trainer = try Trainer(options: o, data: try TextData.load(o, dataDir: sharedDataDirectory()), log: { _ in })
        let task = trainer.task
        task.gradients.zero()
        task.parameters[0] = -3e38
        task.gradients[0] = 4  // a mean gradient of 1 over 4 tokens: -3e38 - 1e38 overflows
        do {
            _ = try trainer.applyGradient(LossSum(sum: 4, count: 4))
            Issue.record("the overflowing update was applied without an error")
        } catch {
            #expect("\(error)".contains("the update left non-finite parameters"), "\(error)")
        }
        task.parameters[0] = 0.5
        #expect(try trainer.applyGradient(LossSum(sum: 4, count: 4)) > 0, "a normal step goes on")
    }

    @Test func keepsOnlyTheNewestCheckpoints() throws {
        let dir = temporaryDirectory() + "/ck"
        let o = timeMachineOptions { $0.epochs = 3; $0.checkpointDir = dir; $0.checkpointEvery = 10; $0.keepCheckpoints = 2 }
        let trainer = try Trainer(options: o, data: try TextData.load(o, dataDir: sharedDataDirectory()), log: { _ in })
        try trainer.run()
        let files = checkpointFiles(in: dir)
        #expect(files.count == 2)
        #expect(files.last?.step == trainer.record.step)
    }

    @Test func corpusTooShortForOneMinibatch() throws {
        let path = temporaryDirectory() + "/short.txt"
        try "a short text".write(toFile: path, atomically: true, encoding: .utf8)
        var o = timeMachineOptions()
        o.dataset = nil
        o.corpus = path
        let e = #expect(throws: CorpusError.self) { try TextData.load(o, dataDir: nil) }
        #expect(e?.description.contains("fewer than one minibatch") == true)
    }
}

@Suite("Generation", .serialized)
struct GenerationTests {
    /// A briefly trained checkpoint shared by the generation tests.
    static let checkpoint: String = {
        let dir = temporaryDirectory() + "/gen"
        let o = timeMachineOptions { $0.epochs = 3; $0.checkpointDir = dir }
        let t = try! Trainer(options: o, data: try! TextData.load(o, dataDir: sharedDataDirectory()), log: { _ in })
        try! t.run()
        return latestCheckpoint(in: dir)!
    }()

    func logProbability(_ m: TrainedModel, prefix: String, continuation: String) -> Double {
        let p = m.vocabulary.ids(m.tokenizer.tokenize(prefix)), c = m.vocabulary.ids(m.tokenizer.tokenize(continuation))
        var state = RecurrentState.zeros(m.model.config, batch: 1)
        var logits: [Float] = []
        for id in p { logits = m.model.logits(inputs: [id], steps: 1, batch: 1, state: &state) }
        var total = 0.0
        for id in c {
            total += logSoftmax(logits[...])[Int(id)]
            logits = m.model.logits(inputs: [id], steps: 1, batch: 1, state: &state)
        }
        return total
    }

    @Test func greedyIsDeterministicAndStartsWithThePrefix() throws {
        let m = try TrainedModel(checkpointPath: Self.checkpoint)
        let a = try m.generate(prefix: "time traveller", count: 30, decoding: .greedy)
        #expect(a.hasPrefix("time traveller"))
        #expect(a.count == "time traveller".count + 30)
        #expect(try m.generate(prefix: "time traveller", count: 30, decoding: .greedy) == a)
        #expect(try m.generate(prefix: "time traveller", count: 30, decoding: .beam(width: 1, lengthPenalty: 0.75)) == a)
    }

    @Test func beamSearchFindsAtLeastAsLikelyAContinuationAsGreedy() throws {
        let m = try TrainedModel(checkpointPath: Self.checkpoint)
        let prefix = "the time machine"
        let greedy = String(try m.generate(prefix: prefix, count: 12, decoding: .greedy).dropFirst(prefix.count))
        let beam = String(try m.generate(prefix: prefix, count: 12, decoding: .beam(width: 5, lengthPenalty: 0.75)).dropFirst(prefix.count))
        #expect(logProbability(m, prefix: prefix, continuation: beam) >= logProbability(m, prefix: prefix, continuation: greedy) - 1e-6)
    }

    @Test func samplingIsSeededAndTopOneIsGreedy() throws {
        let m = try TrainedModel(checkpointPath: Self.checkpoint)
        let s1 = try m.generate(prefix: "time", count: 40, decoding: .sample(temperature: 1, topK: 0, seed: 5))
        #expect(try m.generate(prefix: "time", count: 40, decoding: .sample(temperature: 1, topK: 0, seed: 5)) == s1)
        #expect(try m.generate(prefix: "time", count: 40, decoding: .sample(temperature: 1, topK: 0, seed: 6)) != s1)
        #expect(try m.generate(prefix: "time", count: 40, decoding: .sample(temperature: 1, topK: 1, seed: 5))
                == (try m.generate(prefix: "time", count: 40, decoding: .greedy)))
    }
}

@Suite("Reference trainer on several threads")
struct ThreadedTrainerTests {
    @Test("--threads 2 trains like the one-thread reference: same steps, perplexities within float tolerance")
    func twoThreadsFollowOneThread() throws {
        let o = timeMachineOptions { $0.epochs = 3; $0.model = .lstm; $0.layers = 2; $0.embed = 8 }
        let data = try TextData.load(o, dataDir: sharedDataDirectory())
        let reference = try Trainer(options: o, data: data, log: { _ in })
        try reference.run()
        let threaded = try Trainer(options: o, data: data, log: { _ in })
        threaded.useThreads(2)
        try threaded.run()
        #expect(threaded.record.step == reference.record.step)
        for (a, b) in zip(threaded.record.history, reference.record.history) {
            #expect(abs(a.trainPerplexity - b.trainPerplexity) <= 1e-3 * b.trainPerplexity,
                    "epoch \(b.epoch): \(a.trainPerplexity) with 2 threads vs \(b.trainPerplexity) with 1")
        }
        let p = threaded.task.parameters.array, q = reference.task.parameters.array
        let err = zip(p, q).map { abs($0 - $1) }.max()!, scale = q.map(abs).max()!
        #expect(err <= 1e-3 * scale, "parameters drifted by \(err) (scale \(scale)) over \(reference.record.step) steps")
    }
}
