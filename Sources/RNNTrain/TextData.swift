import Foundation
import RNNCore
import RNNText

extension RandomGenerator: RNGLike {}

/// Tokenized training (and validation/test) streams with their tokenizer and vocabulary.
public struct TextData: Sendable {
    public var tokenizer: Tokenizer
    public var vocabulary: Vocabulary
    public var train: [Int32]
    public var valid: [Int32]
    public var test: [Int32]
    /// SHA-1 of the training text, recorded in checkpoints so a resume on other text is caught.
    public var fingerprint: String

    public init(tokenizer: Tokenizer, vocabulary: Vocabulary, train: [Int32], valid: [Int32] = [], test: [Int32] = [],
                fingerprint: String = "") {
        self.tokenizer = tokenizer; self.vocabulary = vocabulary; self.train = train; self.valid = valid
        self.test = test; self.fingerprint = fingerprint
    }

    /// The path of the training text named by `--corpus` or `--dataset`.
    public static func corpusPath(_ o: TrainOptions, dataDir: String?) throws -> String {
        if let c = o.corpus { return c }
        return try NamedDataset.named(o.dataset!).locate(dataDir: dataDir)
    }

    /// Reads and tokenizes the texts `o` names. With `existing` (a resumed run), reuses its tokenizer and
    /// vocabulary and checks the text is the one the run started on.
    public static func load(_ o: TrainOptions, dataDir: String?, existing: (Tokenizer, Vocabulary, String)? = nil) throws -> TextData {
        let path = try corpusPath(o, dataDir: dataDir)
        let text = try readCorpus(path)
        let fingerprint = sha1Hex(Array(text.utf8))
        if let (_, _, fp) = existing, fp != fingerprint {
            throw ConfigError("the training text \(path) differs from the one this checkpoint was trained on (SHA-1 \(fingerprint) vs \(fp)); resume with the original corpus or start a new --checkpoint-dir")
        }
        let validText = try o.validCorpus.map { try readCorpus($0, flag: "--valid") }
        let testText = try o.testCorpus.map { try readCorpus($0, flag: "--test") }
        let tokenizer: Tokenizer
        if let (t, _, _) = existing {
            tokenizer = t
        } else if o.tokenizer == .bpe {
            tokenizer = Tokenizer.learnBPE(from: text, merges: o.bpeMerges, lowercase: o.lowercase)
        } else {
            tokenizer = Tokenizer(kind: o.tokenizer, lowercase: o.lowercase)
        }
        var tokens = tokenizer.tokenize(text)
        let validTokens = validText.map(tokenizer.tokenize) ?? []
        let testTokens = testText.map(tokenizer.tokenize) ?? []
        // As D2L: the vocabulary counts the whole text; --max-tokens then keeps the first N tokens.
        let reserved = tokenizer.kind == .lines ? [Tokenizer.endOfSentence] : []
        let vocab = existing?.1 ?? Vocabulary(counting: tokens + validTokens + testTokens, minFreq: o.minFreq, reserved: reserved)
        if existing == nil && vocab.count <= 1 + reserved.count {
            // Only <unk> (and <eos>): every token would read and predict as <unk>.
            var counts: [String: Int] = [:]
            for t in tokens + validTokens + testTokens { counts[t, default: 0] += 1 }
            if counts.isEmpty {
                throw CorpusError("\(path) holds no \(tokenizer.kind.rawValue) tokens (only whitespace?); give a text file with words in it")
            }
            throw CorpusError("\(path): no token occurs --min-freq \(o.minFreq) times (the most frequent, \(counts.values.max() ?? 0) times), so the vocabulary would hold only <unk>; lower --min-freq")
        }
        // A held-out text of one token predicts nothing (a token predicts the next): no perplexity would be shown.
        for (flag, file, t) in [("--valid", o.validCorpus, validTokens), ("--test", o.testCorpus, testTokens)] where file != nil && t.count < 2 {
            throw CorpusError("\(flag) \(file!) gives \(t.count) token(s) with the \(tokenizer.kind.rawValue) tokenizer, too few to score (at least 2: each token predicts the next); give a longer file")
        }
        if let m = o.maxTokens, tokens.count > m { tokens = Array(tokens.prefix(m)) }
        var train = vocab.ids(tokens)
        var valid = vocab.ids(validTokens)
        var held = ""
        if o.validFraction > 0 && o.validCorpus == nil {
            let n = Int((Double(train.count) * o.validFraction).rounded())
            guard n >= 2 else {
                throw CorpusError("--valid-fraction \(o.validFraction) of \(path)'s \(train.count) tokens is \(n), too few to validate on (at least 2); raise it, or pass --valid FILE")
            }
            valid = Array(train.suffix(n))
            train.removeLast(n)
            held = " after --valid-fraction \(o.validFraction) held out \(n)"
        }
        // Sequential partitioning with the largest offset (num-steps) still needs one full minibatch.
        let need = o.batchSize * o.numSteps + o.numSteps + 1
        if train.count < need {
            throw CorpusError("\(path) gives \(train.count) training tokens with the \(tokenizer.kind.rawValue) tokenizer\(held), fewer than one minibatch needs (batch-size × num-steps + num-steps + 1 = \(need)); use a longer text or lower --batch-size / --num-steps\(held.isEmpty ? "" : " / --valid-fraction")")
        }
        return TextData(tokenizer: tokenizer, vocabulary: vocab, train: train, valid: valid,
                        test: vocab.ids(testTokens), fingerprint: fingerprint)
    }
}
