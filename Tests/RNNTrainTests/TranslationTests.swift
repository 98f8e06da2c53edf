import Foundation
import RNNCheckpoint
import RNNCore
import RNNText
import RNNTrain
import Testing

/// Translation on the training core: the same trainer, coordinator, workers and checkpoints as the language
/// model. A small English-French setting from `fra-eng/fra.txt`.
@Suite("Translation (sequence to sequence)", .serialized)
struct TranslationTests {
    static func options(_ configure: (inout TrainOptions) -> Void = { _ in }) -> TrainOptions {
        var o = TrainOptions()
        var t = TrainOptions.TranslationOptions()
        t.numExamples = 300; t.validExamples = 40; t.bidirectional = true
        o.translation = t
        o.dataset = "fra-eng"
        o.model = .gru; o.layers = 2; o.embed = 16; o.hidden = 16; o.dropout = 0.2
        o.batchSize = 32; o.numSteps = 8; o.optimizer = .adam; o.lr = 0.01; o.epochs = 2; o.seed = 4
        o.checkpointDir = temporaryDirectory() + "/ck"
        configure(&o)
        return o
    }

    @Test("worker threads over inproc:// equal the single process: one bit-identical, two within 1e-5 (dropout, a short last minibatch)",
          arguments: [PairBatching.fixed, .bucketed])
    func distributedEqualsSingleProcess(_ batching: PairBatching) throws {
        let o = Self.options { $0.translation!.batching = batching }
        let ref = try InProcessDistributedTests.train(workers: 0, options: o)
        #expect(ref.extra.step == 2 * 10, "301 pairs in minibatches of 32: 10 a epoch, the last of 13 pairs")
        let one = try InProcessDistributedTests.train(workers: 1, options: o)
        #expect(one.parameters.map(\.bitPattern) == ref.parameters.map(\.bitPattern))
        let two = try InProcessDistributedTests.train(workers: 2, options: o)
        let d = InProcessDistributedTests.maxRelativeDifference(two.parameters, ref.parameters)
        #expect(d <= 1e-5, "translation W=2 (\(batching)): max relative parameter difference \(d)")
        let threads = try InProcessDistributedTests.train(workers: 0, options: o, threads: 2)
        #expect(InProcessDistributedTests.maxRelativeDifference(threads.parameters, ref.parameters) <= 1e-5)
        let plain = try InProcessDistributedTests.train(workers: 0, options: Self.options { $0.translation!.batching = batching; $0.dropout = 0 })
        #expect(InProcessDistributedTests.maxRelativeDifference(plain.parameters, ref.parameters) > 1e-3, "dropout must change the run")
        // Validation loss and BLEU are reported each epoch.
        let last = try #require(ref.extra.history.last)
        #expect(last.validPerplexity != nil && last.validScores?["bleu"] != nil && last.showsLoss == true)
    }

    @Test("k steps straight ≡ k/2 steps, stop, resume, k/2 steps (bit-identical, with dropout)")
    func resumeIsBitIdentical() throws {
        let o = Self.options { $0.epochs = 3 }
        let task = { try TaskRegistry.task(for: o, dataDir: sharedDataDirectory()) }
        var straightOptions = o
        straightOptions.checkpointDir = o.checkpointDir! + "-straight"
        let straight = try Trainer(options: straightOptions, task: try TaskRegistry.task(for: straightOptions, dataDir: sharedDataDirectory()), log: { _ in })
        try straight.run()
        let first = try Trainer(options: o, task: try task(), log: { _ in })
        try first.run(maxSteps: 13)
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: o.checkpointDir!)))
        #expect(ck.extra.step == 13 && ck.carried.isEmpty)
        let resumedTask = try TaskRegistry.task(resuming: ck.extra.task, options: ck.extra.options, dataDir: sharedDataDirectory())
        let resumed = try Trainer(resuming: ck, task: resumedTask, log: { _ in })
        try resumed.run()
        #expect(resumed.task.parameters.array.map(\.bitPattern) == straight.task.parameters.array.map(\.bitPattern))
        #expect(resumed.record.history.map(\.trainPerplexity) == straight.record.history.map(\.trainPerplexity))
    }

    @Test("the checkpoint carries torch_seq2seq.py's tensor names and the vocabularies under source_vocab / target_vocab")
    func checkpointIsPyTorchLoadable() throws {
        let o = Self.options { $0.epochs = 1 }
        let t = try Trainer(options: o, task: try TaskRegistry.task(for: o, dataDir: sharedDataDirectory()), log: { _ in })
        try t.run()
        let path = try #require(latestCheckpoint(in: o.checkpointDir!))
        let (tensors, meta) = try SafeTensors.read(path)
        let names = Set(tensors.map(\.name))
        for n in ["encoder.embedding.weight", "encoder.rnn.weight_ih_l0", "encoder.rnn.weight_hh_l1_reverse", "decoder.embedding.weight",
                  "decoder.rnn.weight_ih_l1", "decoder.dense.weight", "decoder.dense.bias"] {
            #expect(names.contains(n), "missing \(n)")
        }
        let record = try #require(try JSONSerialization.jsonObject(with: Data(meta["rnnlm"]!.utf8)) as? [String: Any])
        let source = try #require(record["source_vocab"] as? [String]), target = try #require(record["target_vocab"] as? [String])
        #expect(Array(source.prefix(4)) == ["<unk>", "<pad>", "<bos>", "<eos>"] && target.count > 10)
        #expect(tensors.first { $0.name == "decoder.dense.weight" }?.shape == [target.count, 16])
    }

    @Test("beam search: never ranked below greedy; width 1 is greedy; at α = 0 never less likely than greedy")
    func beamSearch() throws {
        let o = Self.options { $0.epochs = 30; $0.dropout = 0; $0.translation!.validExamples = 60 }
        let trainer = try Trainer(options: o, task: try TaskRegistry.task(for: o, dataDir: sharedDataDirectory()), log: { _ in })
        try trainer.run()
        let m = try TrainedTranslator(checkpointPath: try #require(latestCheckpoint(in: o.checkpointDir!))).translator
        let task = try #require(trainer.task as? TranslationTask)
        for source in task.data.validPairs.source {
            let greedy = m.greedyScored([source], maxLength: 8)[0]
            #expect(m.beam(source, width: 1, lengthPenalty: 0.75, maxLength: 8).tokens == greedy.tokens)
            let b0 = m.beam(source, width: 4, lengthPenalty: 0, maxLength: 8)
            #expect(b0.logProbability >= greedy.logProbability - 1e-9, "\(source): beam \(b0.logProbability) < greedy \(greedy.logProbability)")
            let b = m.beam(source, width: 4, lengthPenalty: 0.75, maxLength: 8)
            let greedyScore = greedy.logProbability / pow(Double(max(1, greedy.tokens.count + (greedy.tokens.count < 8 ? 1 : 0))), 0.75)
            #expect(b.score >= greedyScore - 1e-9)
        }
        // The search (links, only the best finished candidate held, the exact early stop) returns what the plain
        // search to the last step returns, for lengths past the point every candidate has ended.
        for source in task.data.validPairs.source.prefix(12) {
            for (width, alpha, maxLength) in [(4, 0.0, 8), (4, 0.75, 8), (3, 2.0, 30), (5, -0.5, 12), (2, 0.75, 60)] {
                let fast = m.beam(source, width: width, lengthPenalty: alpha, maxLength: maxLength)
                let full = Self.plainBeam(m, source, width: width, alpha: alpha, maxLength: maxLength)
                #expect(fast == full, "\(source) K=\(width) α=\(alpha) max \(maxLength): \(fast) vs \(full)")
            }
        }
    }

    /// D2L's beam search written plainly: every step to `maxLength`, every finished candidate kept, the best by
    /// log P / L^α (fewer tokens, then the first found, on a tie), the greedy translation among the candidates.
    static func plainBeam(_ m: Translator, _ source: [String], width: Int, alpha: Double, maxLength: Int) -> Translator.Hypothesis {
        let V = m.model.config.targetVocabSize
        let bos = m.targetVocabulary.id("<bos>"), eos = m.targetVocabulary.id("<eos>")
        func ranked(_ ids: [Int32], _ logP: Double, ended: Bool) -> Translator.Hypothesis {
            let length = Double(max(1, ids.count + (ended ? 1 : 0)))
            return .init(tokens: m.targetVocabulary.tokens(ids), logProbability: logP, score: logP / pow(length, alpha))
        }
        func logSumExp(_ row: ArraySlice<Float>) -> Double {
            let top = Double(row.max()!)
            return top + log(row.reduce(0.0) { $0 + exp(Double($1) - top) })
        }
        let greedy = m.greedyScored([source], maxLength: maxLength)[0]
        var finished = [ranked(greedy.tokens.map { m.targetVocabulary.id($0) }, greedy.logProbability, ended: greedy.tokens.count < maxLength)]
        var state = m.encode([source])
        var beams: [(ids: [Int32], logP: Double)] = [([], 0)]
        for step in 0..<maxLength {
            let logits = m.model.decodeStep(tokens: beams.map { $0.ids.last ?? bos }, state: &state)
            var candidates: [(beam: Int, token: Int32, logP: Double)] = []
            for (b, beam) in beams.enumerated() {
                let row = logits[(b * V)..<((b + 1) * V)], lse = logSumExp(row)
                for (y, x) in row.enumerated() { candidates.append((b, Int32(y), beam.logP + Double(x) - lse)) }
            }
            candidates.sort { $0.logP != $1.logP ? $0.logP > $1.logP : ($0.beam, $0.token) < ($1.beam, $1.token) }
            var next: [(ids: [Int32], logP: Double)] = [], keep: [Int] = []
            for c in candidates.prefix(width) {
                let ids = beams[c.beam].ids
                if c.token == eos { finished.append(ranked(ids, c.logP, ended: true)) }
                else if step + 1 == maxLength { finished.append(ranked(ids + [c.token], c.logP, ended: false)) }
                else { next.append((ids + [c.token], c.logP)); keep.append(c.beam) }
            }
            guard !next.isEmpty else { break }
            state = state.selecting(rows: keep, layers: m.model.config.layers, hidden: m.model.config.hiddenSize)
            beams = next
        }
        return finished.max { $0.score != $1.score ? $0.score < $1.score : $0.tokens.count > $1.tokens.count }!
    }
}

/// The translation commands through the binary: train, translate (arguments, stdin, beam), eval, and the errors.
@Suite("Translation through the command line", .serialized)
struct TranslationCLITests {
    /// D2L's own setting (9.7: 300 epochs), whose translations the issue names; fewer epochs leave "chez moi"
    /// to the rounding of the run.
    static let checkpoint: Result<String, Error> = Result {
        let dir = temporaryDirectory() + "/fra"
        let r = try run(try rnnlmBinary(), ["train", "--task", "translation", "--dataset", "fra-eng", "--data-dir", sharedDataDirectory(),
                                            "--num-examples", "600", "--num-steps", "10", "--embed", "32", "--hidden", "32", "--layers", "2",
                                            "--dropout", "0.1", "--batch-size", "64", "--optimizer", "adam", "--lr", "0.005", "--epochs", "300",
                                            "--valid-examples", "50", "--checkpoint-dir", dir], timeout: 300)
        guard r.status == 0 else { throw TrainingError("training failed: \(r.stderr)") }
        return dir
    }

    @Test("D2L's setting learns its examples; translate reads arguments or stdin, one line each; --beam 1 is greedy")
    func translateEndToEnd() throws {
        // The last epoch's checkpoint: the folder's best.safetensors is the epoch of lowest validation loss, which
        // on 600 training pairs comes early.
        let folder = try Self.checkpoint.get()
        let dir = try #require(latestCheckpoint(in: folder))
        let r = try run(try rnnlmBinary(), ["translate", "--checkpoint", dir, "Go.", "I lost.", "I'm home."], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "va !\nj'ai perdu .\nje suis chez moi .\n", "\(r.stdout)")
        let piped = try run("/bin/sh", ["-c", "printf 'Go.\\nI lost.\\n' | \"$0\" translate --checkpoint \"$1\" --beam 1", try rnnlmBinary(), dir], timeout: 60)
        #expect(piped.stdout == "va !\nj'ai perdu .\n", "\(piped.stdout) \(piped.stderr)")
        // An empty line stays an empty line (it was translated as if it were a sentence); unknown words are named.
        let gaps = try run("/bin/sh", ["-c", "printf 'Go.\\n\\nXylophone zebra.\\n' | \"$0\" translate --checkpoint \"$1\"", try rnnlmBinary(), dir], timeout: 60)
        #expect(gaps.status == 0 && gaps.stdout.hasPrefix("va !\n\n") && gaps.stdout.split(separator: "\n", omittingEmptySubsequences: false).count == 4,
                "\(gaps.stdout)")
        #expect(gaps.stderr.contains("sentence 2 is empty"), "\(gaps.stderr)")
        #expect(gaps.stderr.contains("2 word(s) of \"Xylophone zebra.\" are not in the model's source vocabulary and read as <unk>: \"xylophone\", \"zebra\""), "\(gaps.stderr)")
        let beam = try run(try rnnlmBinary(), ["translate", "--checkpoint", dir, "--beam", "4", "Go."], timeout: 60)
        #expect(beam.status == 0 && beam.stdout.split(separator: "\n").count == 1)
        let e = try run(try rnnlmBinary(), ["eval", "--checkpoint", folder, "--data-dir", sharedDataDirectory()], timeout: 120)
        #expect(e.stderr.contains("using \(folder)/best.safetensors"), "\(e.stderr)")
        #expect(e.status == 0, "\(e.stderr)")
        #expect(e.stdout.contains("corpus BLEU") && e.stdout.contains("(50 pairs"), "\(e.stdout)")
    }

    @Test("clear errors: pairs without a TAB, an empty side, a checkpoint of the other task, flags of the other task")
    func errors() throws {
        let bin = try rnnlmBinary(), dir = temporaryDirectory()
        try "no tab here\nnor here\n".write(toFile: dir + "/notab.txt", atomically: true, encoding: .utf8)
        try "hello .\tbonjour .\nno tab here\n\tvide\n".write(toFile: dir + "/empty.txt", atomically: true, encoding: .utf8)
        let common = ["train", "--task", "translation", "--embed", "8", "--hidden", "8", "--epochs", "1"]
        let noTab = try run(bin, common + ["--pairs", dir + "/notab.txt"], timeout: 60)
        #expect(noTab.status == 1 && noTab.stderr.contains("no `source<TAB>target` line"), "\(noTab.stderr)")
        let empty = try run(bin, common + ["--pairs", dir + "/empty.txt"], timeout: 60)
        #expect(empty.status == 1 && empty.stderr.contains("line 3 (pair 2) has an empty source side"), "\(empty.stderr)")
        let lmFlag = try run(bin, common + ["--pairs", dir + "/empty.txt", "--tokenizer", "word"], timeout: 60)
        #expect(lmFlag.status == 1 && lmFlag.stderr.contains("--tokenizer is a language-model setting"), "\(lmFlag.stderr)")
        let trFlag = try run(bin, ["train", "--dataset", "timemachine", "--bidirectional"], timeout: 60)
        #expect(trFlag.status == 1 && trFlag.stderr.contains("--bidirectional is a translation setting"), "\(trFlag.stderr)")
        let noEmbed = try run(bin, ["train", "--task", "translation", "--dataset", "fra-eng"], timeout: 60)
        #expect(noEmbed.status == 1 && noEmbed.stderr.contains("needs an embedding width"), "\(noEmbed.stderr)")
        // A language model's checkpoint given to translate, and a translation checkpoint given to generate.
        let lm = dir + "/lm"
        let t = try run(bin, ["train", "--dataset", "timemachine", "--data-dir", sharedDataDirectory(), "--max-tokens", "2000",
                              "--hidden", "8", "--batch-size", "4", "--num-steps", "5", "--epochs", "1", "--checkpoint-dir", lm], timeout: 120)
        #expect(t.status == 0, "\(t.stderr)")
        let wrong = try run(bin, ["translate", "--checkpoint", lm, "Go."], timeout: 60)
        #expect(wrong.status == 1 && wrong.stderr.contains("not a translation model"), "\(wrong.stderr)")
        let wrong2 = try run(bin, ["generate", "--checkpoint", try Self.checkpoint.get(), "--prefix", "go"], timeout: 60)
        #expect(wrong2.status == 1 && wrong2.stderr.contains("not a language model"), "\(wrong2.stderr)")
        // A file shorter than --num-examples leaves no validation pairs: said at the start, and eval refuses to
        // score none (it printed a NaN loss with status 0).
        let short = (0..<40).map { "go \($0 % 5) .\tva \($0 % 5) !" }.joined(separator: "\n") + "\n"
        try short.write(toFile: dir + "/short.txt", atomically: true, encoding: .utf8)
        let noValid = try run(bin, common + ["--pairs", dir + "/short.txt", "--valid-examples", "20", "--checkpoint-dir", dir + "/short"], timeout: 60)
        #expect(noValid.status == 0 && noValid.stdout.contains("warning: no validation pairs"), "\(noValid.stdout) \(noValid.stderr)")
        let scored = try run(bin, ["eval", "--checkpoint", dir + "/short"], timeout: 60)
        #expect(scored.status == 1 && scored.stderr.contains("the run had no validation pairs"), "\(scored.stdout) \(scored.stderr)")
    }
}
