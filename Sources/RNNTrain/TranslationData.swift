import Foundation
import RNNCore
import RNNText

// Shape legend: N pairs, B pairs per minibatch (rows), T steps (num-steps, or a bucket's longest row).

/// Sentence pairs as the translation task trains on them: vocabularies per side, padded `[N, T]` arrays with
/// valid lengths, and the held-out pairs that follow the training lines.
public struct TranslationData: Sendable {
    public var sourceVocabulary: Vocabulary
    public var targetVocabulary: Vocabulary
    public var train: (source: PaddedSentences, target: PaddedSentences)
    /// Validation pairs, as token lists (BLEU needs the raw references) and padded.
    public var validPairs: SentencePairs
    public var valid: (source: PaddedSentences, target: PaddedSentences)
    /// SHA-1 of the pairs file, recorded in checkpoints so a resume on other text is caught.
    public var fingerprint: String
    /// The validation pairs the run asked for (`--valid-examples`); fewer are found when the file ends first.
    public var validExamplesAsked = 0
    /// Training pairs the run asked for (`--num-examples`).
    public var numExamplesAsked = 0

    public var steps: Int { train.source.steps }

    /// Reads `path` (`source<TAB>target` lines, UTF-8), preprocesses it as D2L, keeps lines `0 … numExamples`
    /// for training and the `validExamples` lines after them for validation, and builds the vocabularies from
    /// the training pairs (or reuses `vocabularies`, on resume).
    public static func load(path: String, numExamples: Int, validExamples: Int, steps: Int, minFreq: Int,
                            vocabularies: (Vocabulary, Vocabulary)? = nil, fingerprint expected: String? = nil) throws -> TranslationData {
        let raw = try readCorpus(path, flag: "--pairs")
        let fingerprint = sha1Hex(Array(raw.utf8))
        if let e = expected, e != fingerprint {
            throw ConfigError("the pairs file \(path) differs from the one this checkpoint was trained on (SHA-1 \(fingerprint) vs \(e)); resume with the original file or start a new --checkpoint-dir")
        }
        let text = TranslationText.preprocess(raw)
        let pairs = TranslationText.pairs(text, count: numExamples)
        guard pairs.count > 0 else {
            throw CorpusError("\(path) has no `source<TAB>target` line among its first \(numExamples + 1) (\(pairs.skipped) without exactly one TAB); give a file of tab-separated sentence pairs")
        }
        try pairs.requireTextOnBothSides(path: path)
        let valid = validExamples > 0 ? TranslationText.pairs(text, first: numExamples + 1, count: validExamples - 1)
                                      : SentencePairs(source: [], target: [])
        let sv = vocabularies?.0 ?? TranslationText.vocabulary(pairs.source, minFreq: minFreq)
        let tv = vocabularies?.1 ?? TranslationText.vocabulary(pairs.target, minFreq: minFreq)
        if vocabularies == nil, let (side, v) = [("source", sv), ("target", tv)].first(where: { $0.1.count <= 1 + TranslationText.reserved.count }) {
            // Only <unk> and the reserved tokens: every word would read as <unk>.
            throw CorpusError("\(path): no \(side) word occurs --min-freq \(minFreq) times in the \(pairs.count) training pairs, so the \(side) vocabulary would hold only its \(v.count) reserved tokens; lower --min-freq or raise --num-examples")
        }
        return TranslationData(
            sourceVocabulary: sv, targetVocabulary: tv,
            train: (PaddedSentences(pairs.source, vocabulary: sv, steps: steps), PaddedSentences(pairs.target, vocabulary: tv, steps: steps)),
            validPairs: valid,
            valid: (PaddedSentences(valid.source, vocabulary: sv, steps: steps), PaddedSentences(valid.target, vocabulary: tv, steps: steps)),
            fingerprint: fingerprint, validExamplesAsked: validExamples, numExamplesAsked: numExamples)
    }
}

/// How the pairs of an epoch are grouped into minibatches.
public enum PairBatching: String, Codable, CaseIterable, Sendable {
    /// D2L's: shuffled pairs, every minibatch padded to `--num-steps`.
    case fixed
    /// Pairs of similar length together (sorted by length, cut into minibatches, their order shuffled per
    /// epoch); each minibatch runs only as many steps as its longest row needs.
    case bucketed
}

/// The minibatches of one epoch: which pair each row holds (`nil` for the unused rows of a short last
/// minibatch) and how many steps each minibatch runs. Fixed by the seed and the epoch alone.
public struct PairEpoch: Sendable {
    /// `[count, B]`: pair index of row r of minibatch i at `i*B + r`, or -1.
    public let pairs: [Int]
    /// Steps of each minibatch (source, target).
    public let steps: [(source: Int, target: Int)]
    public let rows: Int
    public var count: Int { steps.count }

    public func pair(minibatch i: Int, row r: Int) -> Int? {
        let p = pairs[i * rows + r]
        return p >= 0 ? p : nil
    }

    /// Draws epoch `epoch`'s minibatches of `rows` pairs from `generator` (seeded from the run seed and the epoch).
    public static func draw(_ batching: PairBatching, source: PaddedSentences, target: PaddedSentences, rows: Int,
                            generator rng: inout RandomGenerator) -> PairEpoch {
        let n = source.count
        var groups: [[Int]]
        switch batching {
        case .fixed:
            var order = Array(0..<n)
            rng.shuffle(&order)
            groups = stride(from: 0, to: n, by: rows).map { Array(order[$0..<min($0 + rows, n)]) }
        case .bucketed:
            // Shuffle first so that pairs of equal length are not always grouped the same way, then a stable sort
            // by length, cut into minibatches, and the minibatches' order shuffled.
            var order = Array(0..<n)
            rng.shuffle(&order)
            let sorted = order.enumerated().sorted {
                let a = (source.lengths[$0.element], target.lengths[$0.element]), b = (source.lengths[$1.element], target.lengths[$1.element])
                return a != b ? a < b : $0.offset < $1.offset
            }.map(\.element)
            groups = stride(from: 0, to: n, by: rows).map { Array(sorted[$0..<min($0 + rows, n)]) }
            rng.shuffle(&groups)
        }
        var pairs = [Int](repeating: -1, count: groups.count * rows)
        var steps: [(Int, Int)] = []
        for (i, g) in groups.enumerated() {
            for (r, p) in g.enumerated() { pairs[i * rows + r] = p }
            switch batching {
            case .fixed: steps.append((source.steps, target.steps))
            case .bucketed:
                steps.append((Int(g.map { source.lengths[$0] }.max()!), Int(g.map { target.lengths[$0] }.max()!)))
            }
        }
        return PairEpoch(pairs: pairs, steps: steps, rows: rows)
    }

    /// The share of computed positions (source and target) that are padding.
    public func paddingShare(source: PaddedSentences, target: PaddedSentences) -> Double {
        var computed = 0, valid = 0
        for i in 0..<count {
            for r in 0..<rows {
                guard let p = pair(minibatch: i, row: r) else { continue }
                computed += steps[i].source + steps[i].target
                valid += Int(source.lengths[p] + target.lengths[p])
            }
        }
        return computed == 0 ? 0 : Double(computed - valid) / Double(computed)
    }
}
