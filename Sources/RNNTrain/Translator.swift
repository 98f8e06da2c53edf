import Foundation
import RNNCheckpoint
import RNNCore
import RNNText

// Shape legend: B sentences (or beams) decoded together, S source steps (the model's --num-steps), Vt target
// vocabulary.

/// Translates with a trained encoder-decoder: the source is preprocessed and padded as in training; greedy
/// decoding (D2L's `predict_seq2seq`) or beam search (D2L 9.8), stopping at `<eos>` or after `maxLength` tokens.
public struct Translator {
    public let model: EncoderDecoder
    public let sourceVocabulary: Vocabulary
    public let targetVocabulary: Vocabulary
    /// Source rows are cut or padded to this many steps, as in training.
    public let numSteps: Int

    public init(model: EncoderDecoder, sourceVocabulary: Vocabulary, targetVocabulary: Vocabulary, numSteps: Int) {
        self.model = model; self.sourceVocabulary = sourceVocabulary; self.targetVocabulary = targetVocabulary
        self.numSteps = numSteps
    }

    /// The words of `tokens` outside the source vocabulary (they read as `<unk>`).
    public func unknownTokens(_ tokens: [String]) -> [String] { tokens.filter { !sourceVocabulary.contains($0) } }

    /// A raw sentence as the model reads it: D2L's preprocessing, split on spaces.
    public static func tokens(_ sentence: String) -> [String] {
        TranslationText.preprocess(sentence).split(separator: " ").map(String.init)
    }

    var bos: Int32 { targetVocabulary.id(TranslationText.bos) }
    var eos: Int32 { targetVocabulary.id(TranslationText.eos) }

    /// The decoder's starting state for `sources` (each cut or padded to `numSteps`, with `<eos>`).
    public func encode(_ sources: [[String]]) -> DecoderState {
        let padded = PaddedSentences(sources, vocabulary: sourceVocabulary, steps: numSteps)
        let B = sources.count, S = numSteps
        var x = [Int32](repeating: 0, count: S * B)
        for r in 0..<B { for (t, id) in padded.row(r).enumerated() { x[t * B + r] = id } }
        return model.encode(source: x, lengths: padded.lengths.map(Int.init), steps: S, batch: B)
    }

    /// Greedy translations of `sources`, `batch` sentences at a time; each stops at `<eos>` (not included) or
    /// after `maxLength` tokens.
    public func greedy(_ sources: [[String]], maxLength: Int, batch: Int = 64) -> [[String]] {
        var out: [[String]] = []
        for start in stride(from: 0, to: sources.count, by: max(1, batch)) {
            let chunk = Array(sources[start..<min(start + batch, sources.count)])
            out += greedyScored(chunk, maxLength: maxLength).map { $0.tokens }
        }
        return out
    }

    /// Greedy translations with their log-probabilities (of the tokens produced and of `<eos>` when produced).
    public func greedyScored(_ sources: [[String]], maxLength: Int) -> [(tokens: [String], logProbability: Double)] {
        guard !sources.isEmpty else { return [] }
        let V = model.config.targetVocabSize
        var state = encode(sources)
        var input = [Int32](repeating: bos, count: sources.count)
        var result: [(ids: [Int32], logP: Double, done: Bool)] = Array(repeating: ([], 0, false), count: sources.count)
        for _ in 0..<maxLength {
            guard result.contains(where: { !$0.done }) else { break }
            let logits = model.decodeStep(tokens: input, state: &state)
            for r in result.indices where !result[r].done {
                let row = Array(logits[(r * V)..<((r + 1) * V)])
                let best = Int32(row.indices.max { row[$0] < row[$1] }!)
                result[r].logP += Self.logSoftmax(row, at: Int(best))
                if best == eos { result[r].done = true } else { result[r].ids.append(best) }
                input[r] = best
            }
        }
        return result.map { (targetVocabulary.tokens($0.ids), $0.logP) }
    }

    /// A beam-search result: the translation, its log-probability and the score candidates were ranked by.
    public struct Hypothesis: Equatable {
        public var tokens: [String]
        public var logProbability: Double
        /// `log P / L^α`, L the number of tokens produced (with `<eos>` when it ended there).
        public var score: Double

        public init(tokens: [String], logProbability: Double, score: Double) {
            self.tokens = tokens; self.logProbability = logProbability; self.score = score
        }
    }

    /// Beam search with `width` candidates decoded as one batch: each step keeps the `width` most likely of all
    /// one-token extensions; a candidate that produces `<eos>` is finished. The result is the finished candidate
    /// (or one still open after `maxLength` tokens) with the highest `log P / L^α` (D2L's rule). The greedy
    /// translation is one of the candidates, so the result never ranks below it; `width` 1 is greedy decoding.
    ///
    /// Candidates are kept as (parent, token) links per step and only the best finished one is held, so memory
    /// grows with `maxLength · width`, not its square. The search stops early once no open candidate can still
    /// rank above the best finished one: its log P only falls, so its score is at most log P / L^α at the length
    /// L ≤ `maxLength` that divides it most. The result is the one the full search would return.
    public func beam(_ source: [String], width: Int, lengthPenalty alpha: Double, maxLength: Int) -> Hypothesis {
        precondition(width >= 1, "beam width must be at least 1")
        let V = model.config.targetVocabSize, L = model.config.layers, H = model.config.hiddenSize
        func score(_ logP: Double, length: Int) -> Double { logP / pow(Double(max(1, length)), alpha) }
        // links[t][i]: the candidate of step t - 1 that candidate i of step t extends, and the token it adds.
        var links: [[(parent: Int, token: Int32)]] = []
        func ids(step: Int, index: Int) -> [Int32] {
            var out: [Int32] = [], t = step, i = index
            while t >= 0 { let link = links[t][i]; out.append(link.token); i = link.parent; t -= 1 }
            return out.reversed()
        }
        // The best finished candidate (ties go to fewer tokens, then to the first found): the greedy translation,
        // or candidate `index` of step `step` (-1: the empty one) followed by `extra`.
        enum Origin { case greedy([Int32]), link(step: Int, index: Int, extra: Int32?) }
        let greedy = greedyScored([source], maxLength: maxLength)[0]
        let greedyIDs = greedy.tokens.map { targetVocabulary.id($0) }
        let greedyLength = greedyIDs.count + (greedyIDs.count < maxLength ? 1 : 0)
        var best = (score: score(greedy.logProbability, length: greedyLength), logP: greedy.logProbability,
                    count: greedyIDs.count, origin: Origin.greedy(greedyIDs))
        func offer(_ logP: Double, length: Int, count: Int, _ origin: Origin) {
            let s = score(logP, length: length)
            if s > best.score || (s == best.score && count < best.count) { best = (s, logP, count, origin) }
        }
        var state = encode([source])
        var beams: [(last: Int32, logP: Double)] = [(bos, 0)]
        for step in 0..<maxLength {
            let logits = model.decodeStep(tokens: beams.map(\.last), state: &state)
            var candidates: [(beam: Int, token: Int32, logP: Double)] = []
            for (b, beam) in beams.enumerated() {
                let row = Array(logits[(b * V)..<((b + 1) * V)])
                let lse = Self.logSumExp(row)
                for y in 0..<V { candidates.append((b, Int32(y), beam.logP + Double(row[y]) - lse)) }
            }
            candidates.sort { $0.logP != $1.logP ? $0.logP > $1.logP : ($0.beam, $0.token) < ($1.beam, $1.token) }
            var next: [(last: Int32, logP: Double)] = [], stepLinks: [(parent: Int, token: Int32)] = []
            for c in candidates.prefix(width) {
                if c.token == eos {
                    offer(c.logP, length: step + 1, count: step, .link(step: step - 1, index: c.beam, extra: nil))
                } else if step + 1 == maxLength {
                    offer(c.logP, length: step + 1, count: step + 1, .link(step: step - 1, index: c.beam, extra: c.token))
                } else {
                    next.append((c.token, c.logP)); stepLinks.append((c.beam, c.token))
                }
            }
            guard !next.isEmpty else { break }
            links.append(stepLinks)
            // log P only falls, so an open candidate's score can reach at most its log P over the largest L^α
            // among the lengths it can still end at.
            let largest = max(pow(Double(step + 2), alpha), pow(Double(maxLength), alpha))
            if next.allSatisfy({ $0.logP / largest < best.score }) { break }
            state = state.selecting(rows: stepLinks.map(\.parent), layers: L, hidden: H)
            beams = next
        }
        let tokens: [Int32]
        switch best.origin {
        case .greedy(let g): tokens = g
        case .link(let step, let index, let extra): tokens = (step >= 0 ? ids(step: step, index: index) : []) + (extra.map { [$0] } ?? [])
        }
        return Hypothesis(tokens: targetVocabulary.tokens(tokens), logProbability: best.logP, score: best.score)
    }

    static func logSumExp(_ row: [Float]) -> Double {
        let m = Double(row.max()!)
        return m + log(row.reduce(0.0) { $0 + exp(Double($1) - m) })
    }

    static func logSoftmax(_ row: [Float], at i: Int) -> Double { Double(row[i]) - logSumExp(row) }
}

extension Vocabulary {
    /// The tokens of `ids`.
    public func tokens(_ ids: [Int32]) -> [String] { ids.map(token) }
}

/// A trained translation model with its vocabularies, loaded from a checkpoint.
public struct TrainedTranslator {
    public let translator: Translator
    public let record: TrainingRecord

    public init(checkpointPath: String) throws {
        let ck = try Checkpoint<TrainingRecord>.read(from: checkpointPath)
        guard case .translation(let config) = ck.spec else {
            throw CheckpointError(path: checkpointPath, "holds a \(ck.spec.family), not a translation model; `rnnlm translate` needs a checkpoint trained with --task translation")
        }
        let data: TranslationTask.DataRecord
        do { data = try TranslationTask.dataRecord(ck.extra.task) } catch { throw CheckpointError(path: checkpointPath, "\(error)") }
        guard data.sourceVocabulary.count == config.sourceVocabSize, data.targetVocabulary.count == config.targetVocabSize else {
            throw CheckpointError(path: checkpointPath, "its vocabularies (\(data.sourceVocabulary.count) / \(data.targetVocabulary.count) tokens) do not fit its model (\(config.sourceVocabSize) / \(config.targetVocabSize))")
        }
        let model = try EncoderDecoder(config: config)
        ck.parameters.withUnsafeBufferPointer { model.parameters.copy(from: $0) }
        translator = Translator(model: model, sourceVocabulary: data.sourceVocabulary, targetVocabulary: data.targetVocabulary,
                                numSteps: data.numSteps)
        record = ck.extra
    }
}

/// How well a translation model does on a set of pairs.
public struct TranslationScores: Sendable {
    /// Teacher-forced loss over the valid target tokens.
    public var loss: LossSum
    /// Corpus BLEU (4-gram, brevity penalty, 0–100) of greedy translations.
    public var corpusBLEU: Double
    /// The mean of D2L's sentence BLEU (k = 2) over the pairs, 0–1.
    public var meanSentenceBLEU: Double
    public var pairs: Int

    /// Scores `pairs` with `translator` (minibatches of `batch` pairs, greedy translations of at most `maxLength`).
    public init(_ translator: Translator, pairs: SentencePairs, batch: Int, maxLength: Int) {
        let steps = translator.numSteps
        let source = PaddedSentences(pairs.source, vocabulary: translator.sourceVocabulary, steps: steps)
        let target = PaddedSentences(pairs.target, vocabulary: translator.targetVocabulary, steps: steps)
        loss = TranslationTask.loss(translator.model, source: source, target: target, batch: batch)
        let hyps = translator.greedy(pairs.source, maxLength: maxLength, batch: batch)
        corpusBLEU = BLEU.corpus(hypotheses: hyps, references: pairs.target)
        meanSentenceBLEU = zip(hyps, pairs.target).map { BLEU.sentence(prediction: $0, label: $1, k: 2) }.reduce(0, +)
            / Double(max(1, pairs.count))
        self.pairs = pairs.count
    }

    public var line: String {
        String(format: "loss %.4f  perplexity %.3f  corpus BLEU %.2f (0-100, sacreBLEU)  mean sentence BLEU %.3f (0-1, D2L k=2)  (%d pairs, %d target tokens)",
               loss.mean, loss.perplexity, corpusBLEU, meanSentenceBLEU, pairs, loss.count)
    }
}
