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
    /// Draw from softmax(logits / temperature), optionally among the top k.
    case sample(temperature: Float, topK: Int, seed: UInt64)
    /// Beam search with `width` beams; candidates ranked by log P / L^α (D2L's length penalty).
    case beam(width: Int, lengthPenalty: Double)
}

public struct GenerationError: Error, CustomStringConvertible {
    public let description: String
}

extension TrainedModel {
    /// The prefix followed by `count` generated tokens, as text.
    public func generate(prefix: String, count: Int, decoding: Decoding) throws -> String {
        let prefixTokens = tokenizer.tokenize(prefix)
        guard !prefixTokens.isEmpty else {
            throw GenerationError(description: "--prefix \"\(prefix)\" gives no tokens with the \(tokenizer.kind.rawValue) tokenizer; give some text to start from")
        }
        let ids = vocabulary.ids(prefixTokens)
        let out: [Int32]
        switch decoding {
        case .greedy, .sample:
            out = sampleContinuation(ids, count: count, decoding: decoding)
        case .beam(let width, let alpha):
            guard width >= 1 else { throw GenerationError(description: "--beam must be at least 1") }
            out = beamSearch(ids, count: count, width: width, alpha: alpha)
        }
        return tokenizer.detokenize(prefixTokens + out.map(vocabulary.token))
    }

    /// Warms the state up on the prefix and returns the logits after its last token.
    private func warmUp(_ ids: [Int32], batch: Int) -> (RecurrentState, [Float]) {
        var state = RecurrentState.zeros(model.config, batch: batch)
        var logits: [Float] = []
        for id in ids {
            logits = model.logits(inputs: [Int32](repeating: id, count: batch), steps: 1, batch: batch, state: &state)
        }
        return (state, logits)
    }

    private func sampleContinuation(_ ids: [Int32], count: Int, decoding: Decoding) -> [Int32] {
        var (state, logits) = warmUp(ids, batch: 1)
        var rng: RandomGenerator
        var temperature: Float = 0, topK = 0
        if case .sample(let t, let k, let seed) = decoding { temperature = t; topK = k; rng = RandomGenerator(seed: seed, stream: .sampling) } else { rng = RandomGenerator(seed: 0) }
        var out: [Int32] = []
        for _ in 0..<count {
            let next = Int32(sample(logits[...], temperature: temperature, topK: topK, rng: &rng))
            out.append(next)
            logits = model.logits(inputs: [next], steps: 1, batch: 1, state: &state)
        }
        return out
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

/// The model family a checkpoint holds (read from its record), so a command can pick the right loader.
public func modelSpec(ofCheckpoint path: String) throws -> ModelSpec {
    try Checkpoint<TrainingRecord>.read(from: path).spec
}
