import Foundation
import RNNCheckpoint
import RNNCore
import RNNText

/// A trained model with its tokenizer and vocabulary, loaded from a checkpoint.
public struct TrainedModel {
    public let model: LanguageModel
    public let tokenizer: Tokenizer
    public let vocabulary: Vocabulary
    public let record: TrainingRecord

    public init(checkpointPath: String) throws {
        let ck = try Checkpoint<TrainingRecord>.read(from: checkpointPath)
        guard let config = ck.model else {
            throw CheckpointError(path: checkpointPath, "holds a \(ck.spec.family), not a language model; use the command for that model")
        }
        let data: LanguageModelTask.DataRecord
        do { data = try LanguageModelTask.dataRecord(ck.extra.task) } catch { throw CheckpointError(path: checkpointPath, "\(error)") }
        guard config.vocabSize == data.vocabulary.count else {
            throw CheckpointError(path: checkpointPath, "model vocabulary size \(config.vocabSize) differs from its stored vocabulary (\(data.vocabulary.count) tokens)")
        }
        let m = try LanguageModel(config: config)
        ck.parameters.withUnsafeBufferPointer { m.parameters.copy(from: $0) }
        model = m
        tokenizer = data.tokenizer
        vocabulary = data.vocabulary
        record = ck.extra
    }

    /// A model in memory (e.g. at the end of training).
    public init(model: LanguageModel, tokenizer: Tokenizer, vocabulary: Vocabulary, record: TrainingRecord) {
        self.model = model; self.tokenizer = tokenizer; self.vocabulary = vocabulary; self.record = record
    }

    /// Accepts a checkpoint file or a checkpoint folder: the folder's `best.safetensors` when it has one (the best
    /// validation score), else its newest step checkpoint. For a folder, says `using FILE` through `log` (standard
    /// error by default, so standard output stays the command's result).
    public static func resolve(_ path: String,
                               log: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) throws -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            let best = (path as NSString).appendingPathComponent("best.safetensors")
            guard let file = FileManager.default.fileExists(atPath: best) ? best : latestCheckpoint(in: path) else {
                throw CheckpointError(path: path, "folder holds no best.safetensors or step-*.safetensors checkpoint")
            }
            log("using \(file)")
            return file
        }
        return path
    }
}

/// How to pick each next token.
public enum Decoding: Equatable, Sendable {
    /// D2L's `predict_ch8`: the most likely token each step.
    case greedy
    /// Draw from softmax(logits / temperature), optionally among the top k, then among the nucleus of
    /// probability `topP` (1: all).
    case sample(temperature: Float, topK: Int, topP: Double = 1, seed: UInt64)
    /// Beam search with `width` beams; candidates ranked by log P / L^α (D2L's length penalty).
    case beam(width: Int, lengthPenalty: Double)
}

public struct GenerationError: Error, CustomStringConvertible {
    public let description: String
}

extension TrainedModel {
    /// The prefix generation starts from when none is given: D2L's "time traveller" for a model trained on
    /// timemachine; nil (a prefix is required) for any other text.
    public var defaultPrefix: String? { record.options.dataset == "timemachine" ? "time traveller" : nil }

    /// The tokens of `prefix` the vocabulary does not hold (the model reads them as `<unk>`), in order.
    public func unknownTokens(inPrefix prefix: String) -> [String] {
        tokenizer.tokenizePrefix(prefix).filter { vocabulary.id($0) == 0 && $0 != Vocabulary.unknown }
    }

    /// The prefix followed by `count` generated tokens, as text. `emit` receives the text as it is produced: the
    /// prefix, then each token as greedy or sampling decoding chooses it; beam search emits everything at the end
    /// (its best candidate is known only then). The pieces concatenate to the returned text.
    ///
    /// An empty prefix starts from the zero state: the first token is chosen (argmax, or drawn) from the decoder's
    /// output there, `softmax(decoder.bias)`, the model's prediction before it has read anything.
    public func generate(prefix: String, count: Int, decoding: Decoding,
                         emit: (String) -> Void = { _ in }) throws -> String {
        let prefixTokens = tokenizer.tokenizePrefix(prefix)
        guard !prefixTokens.isEmpty || prefix.isEmpty else {
            throw GenerationError(description: "--prefix \"\(prefix)\" gives no tokens with the \(tokenizer.kind.rawValue) tokenizer; give some text to start from (or --prefix \"\" to start from the zero state)")
        }
        if case .sample(_, _, let p, _) = decoding, !(p > 0 && p <= 1) {
            throw GenerationError(description: "--top-p must be in (0, 1], got \(p)")
        }
        let ids = vocabulary.ids(prefixTokens)
        switch decoding {
        case .greedy, .sample:
            return withoutActuallyEscaping(emit) { emit in
                var stream = TextStream(tokenizer: tokenizer, tokens: prefixTokens, emit: emit)
                stream.flush()
                sampleContinuation(ids, count: count, decoding: decoding) { stream.append(vocabulary.token($0)) }
                return stream.text
            }
        case .beam(let width, let alpha):
            guard width >= 1 else { throw GenerationError(description: "--beam must be at least 1") }
            let out = beamSearch(ids, count: count, width: width, alpha: alpha)
            let text = tokenizer.detokenize(prefixTokens + out.map(vocabulary.token))
            emit(text)
            return text
        }
    }

    /// Warms the state up on the prefix and returns the logits after its last token (an empty prefix: the zero
    /// state and the decoder's output there, `startLogits`).
    private func warmUp(_ ids: [Int32], batch: Int) -> (RecurrentState, [Float]) {
        var state = RecurrentState.zeros(model.config, batch: batch)
        var logits: [Float] = Array((0..<batch).map { _ in model.startLogits }.joined())
        for id in ids {
            logits = model.logits(inputs: [Int32](repeating: id, count: batch), steps: 1, batch: batch, state: &state)
        }
        return (state, logits)
    }

    /// Chooses `count` tokens one at a time, handing each to `chosen` before the model reads it.
    private func sampleContinuation(_ ids: [Int32], count: Int, decoding: Decoding, chosen: (Int32) -> Void) {
        var (state, logits) = warmUp(ids, batch: 1)
        var rng: RandomGenerator
        var temperature: Float = 0, topK = 0, topP = 1.0
        if case .sample(let t, let k, let p, let seed) = decoding {
            temperature = t; topK = k; topP = p; rng = RandomGenerator(seed: seed, stream: .sampling)
        } else {
            rng = RandomGenerator(seed: 0)
        }
        for i in 0..<count {
            let next = Int32(sample(logits[...], temperature: temperature, topK: topK, topP: topP, rng: &rng))
            chosen(next)
            if i + 1 < count { logits = model.logits(inputs: [next], steps: 1, batch: 1, state: &state) }
        }
    }

    private func beamSearch(_ ids: [Int32], count: Int, width: Int, alpha: Double) -> [Int32] {
        let V = model.config.vocabSize
        let eos: Int32? = tokenizer.kind == .lines ? vocabulary.id(Tokenizer.endOfSentence) : nil
        var (state, logits) = warmUp(ids, batch: 1)
        struct Beam { var tokens: [Int32]; var logP: Double }
        var beams = [Beam(tokens: [], logP: 0)]
        var finished: [Beam] = []
        func score(_ b: Beam) -> Double { b.logP / pow(Double(max(b.tokens.count, 1)), alpha) }
        for _ in 0..<count {
            var candidates: [(beam: Int, token: Int32, logP: Double)] = []
            for (bi, beam) in beams.enumerated() {
                let lp = logSoftmax(logits[(bi * V)..<((bi + 1) * V)])
                for (tok, l) in lp.enumerated() { candidates.append((bi, Int32(tok), beam.logP + l)) }
            }
            candidates.sort { $0.logP > $1.logP || ($0.logP == $1.logP && ($0.beam, $0.token) < ($1.beam, $1.token)) }
            var next: [Beam] = [], parents: [Int] = []
            for c in candidates {
                let b = Beam(tokens: beams[c.beam].tokens + [c.token], logP: c.logP)
                if let e = eos, c.token == e { finished.append(b) } else { next.append(b); parents.append(c.beam) }
                if next.count == width { break }
            }
            if next.isEmpty { break }
            beams = next
            state = state.selecting(columns: parents)
            logits = model.logits(inputs: beams.map { $0.tokens.last! }, steps: 1, batch: beams.count, state: &state)
        }
        let best = (finished + beams).max { score($0) < score($1) }!
        return best.tokens
    }
}

/// Text grown token by token, handing each new piece to `emit` as soon as it is made: the detokenized text past
/// the bytes already emitted. Every tokenizer here extends its text as tokens are added (the text of n tokens is a
/// prefix of the text of n + 1), which the pieces rely on.
///
/// Each piece is found from the last few tokens alone (what a token adds to our tokenizers' text depends on at
/// most the one before it), so a long generation costs time in proportion to its length, not its square.
struct TextStream {
    let tokenizer: Tokenizer
    var tokens: [String]
    let emit: (String) -> Void
    /// UTF-8 bytes of the text emitted so far.
    private var emittedBytes = 0
    /// Tokens that decide what the newest one adds to the text.
    static let window = 4

    init(tokenizer: Tokenizer, tokens: [String], emit: @escaping (String) -> Void) {
        self.tokenizer = tokenizer; self.tokens = tokens; self.emit = emit
    }

    var text: String { tokenizer.detokenize(tokens) }

    mutating func append(_ token: String) {
        tokens.append(token)
        guard tokens.count > Self.window else { return flush() }
        let recent = Array(tokens.suffix(Self.window))
        let before = tokenizer.detokenize(Array(recent.dropLast())).utf8, after = tokenizer.detokenize(recent).utf8
        guard after.count >= before.count, after.starts(with: before) else { return flush() }
        let piece = after.dropFirst(before.count)
        guard !piece.isEmpty else { return }
        emit(String(decoding: piece, as: UTF8.self))
        emittedBytes += piece.count
    }

    /// What the whole text holds past the bytes emitted (bytes, not characters: "\r" then "\n" are one character
    /// together but two tokens).
    mutating func flush() {
        let t = text.utf8
        guard t.count > emittedBytes else { return }
        emit(String(decoding: t.dropFirst(emittedBytes), as: UTF8.self))
        emittedBytes = t.count
    }
}

/// The model family a checkpoint holds (read from its record), so a command can pick the right loader.
public func modelSpec(ofCheckpoint path: String) throws -> ModelSpec {
    try Checkpoint<TrainingRecord>.read(from: path).spec
}
