import Foundation
import RNNCheckpoint
import RNNCore
import RNNText

// Shape legend: B pairs per minibatch (rows), S / T source / target steps of a minibatch, N pairs.

/// Sequence-to-sequence translation (D2L 9.5–9.7) as a `TrainingTask`: a row is one sentence pair; nothing is
/// carried between minibatches. The loss is the cross-entropy summed over valid target tokens (teacher forcing:
/// the decoder reads `<bos>` and the target without its last token).
public final class TranslationTask: TrainingTask {
    public static let kind = "translation"

    /// What fixes the minibatches and the model: the same on the coordinator and on every worker.
    public struct Settings: Codable, Equatable, Sendable {
        public var model: EncoderDecoderConfig
        public var seed: UInt64
        public var batchSize: Int
        public var numSteps: Int
        public var batching: PairBatching
    }

    /// The task's checkpoint record.
    public struct DataRecord: Codable, Equatable, Sendable {
        public var sourceVocabulary: Vocabulary
        public var targetVocabulary: Vocabulary
        public var fingerprint: String
        public var numSteps: Int
    }

    public let settings: Settings
    public let model: EncoderDecoder
    public let data: TranslationData
    private var epochCache: (epoch: Int, pairs: PairEpoch)?

    /// A fresh model for `options` over `data`, initialised from the run seed as D2L does.
    public convenience init(options: TrainOptions, data: TranslationData) throws {
        let t = options.translation ?? TrainOptions.TranslationOptions()
        let config = EncoderDecoderConfig(
            sourceVocabSize: data.sourceVocabulary.count, targetVocabSize: data.targetVocabulary.count, embedSize: options.embed,
            hiddenSize: options.hidden, layers: options.layers, cell: options.model, bidirectional: t.bidirectional,
            dropout: options.dropout, packedSource: t.batching == .bucketed)
        try config.validate()
        try ModelSpec.translation(config)
            .trainingMemory(rows: options.batchSize, steps: options.numSteps, optimizerSlots: try options.optimizerKind().slotCount)
            .check(lower: "lower --hidden, --embed, --layers, --batch-size or --num-steps")
        let model = try EncoderDecoder(config: config)
        var rng = RandomGenerator(seed: options.seed, stream: .initialization)
        model.initialize(rng: &rng)
        self.init(settings: Settings(model: config, seed: options.seed, batchSize: options.batchSize, numSteps: options.numSteps,
                                     batching: t.batching),
                  model: model, data: data)
    }

    init(settings: Settings, model: EncoderDecoder, data: TranslationData) {
        self.settings = settings; self.model = model; self.data = data
    }

    public var spec: ModelSpec { .translation(settings.model) }
    public var parameters: FloatBuffer { model.parameters }
    public var gradients: FloatBuffer { model.gradients }
    public var rowsPerMinibatch: Int { settings.batchSize }
    public var carriedPerRow: Int { 0 }
    /// The source and target embeddings: a minibatch's gradient is non-zero only in the rows of the source
    /// tokens and of the decoder's input tokens it reads.
    public var sparseRows: [SparseRowTensor] {
        let c = settings.model, layout = model.layout
        return [SparseRowTensor(offset: layout["encoder.embedding.weight"].offset, rows: c.sourceVocabSize, width: c.embedSize),
                SparseRowTensor(offset: layout["decoder.embedding.weight"].offset, rows: c.targetVocabSize, width: c.embedSize)]
    }
    public var touchedRows: [[Int32]] = []
    public var reportsLoss: Bool { true }

    /// Epoch `epoch`'s minibatches, drawn from the run seed and the epoch number alone.
    public func epoch(_ epoch: Int) -> PairEpoch {
        if let c = epochCache, c.epoch == epoch { return c.pairs }
        var rng = RandomGenerator(seed: settings.seed, stream: .dataOrder, index: UInt64(epoch))
        let e = PairEpoch.draw(settings.batching, source: data.train.source, target: data.train.target,
                               rows: settings.batchSize, generator: &rng)
        epochCache = (epoch, e)
        return e
    }

    public func minibatchCount(epoch e: Int) -> Int { epoch(e).count }

    public func resetsCarried(epoch: Int, index: Int) -> Bool { true }

    public func accumulateGradient(epoch e: Int, index: Int, rows: [Int], step: Int, carried: inout [Float]) -> LossSum {
        let pe = epoch(e)
        let pairs = rows.map { pe.pair(minibatch: index, row: $0) }
        guard pairs.contains(where: { $0 != nil }) else { return LossSum() }  // rows past a short last minibatch
        let batch = Self.batch(pairs, source: data.train.source, target: data.train.target, steps: pe.steps[index])
        let key = settings.model.dropout > 0 ? DropoutKey(seed: settings.seed, step: UInt64(step)) : nil
        touch([batch.source, batch.decoderInput])
        return model.forwardBackward(batch, dropout: key, rows: rows)
    }

    /// The time-major minibatch of `pairs` (nil: an empty row, all padding, no loss), `steps` long on each side.
    static func batch(_ pairs: [Int?], source: PaddedSentences, target: PaddedSentences,
                      steps: (source: Int, target: Int)) -> EncoderDecoder.Batch {
        let B = pairs.count, S = steps.source, T = steps.target
        let pad = Int32(1), bos = Int32(2)  // TranslationText.reserved after <unk>
        var x = [Int32](repeating: pad, count: S * B), decIn = [Int32](repeating: pad, count: T * B), y = decIn
        var sl = [Int](repeating: 0, count: B), tl = sl
        for (r, p) in pairs.enumerated() {
            decIn[r] = bos
            guard let p else { continue }
            let xs = source.row(p), ys = target.row(p)
            for t in 0..<S { x[t * B + r] = xs[xs.startIndex + t] }
            for t in 0..<T {
                y[t * B + r] = ys[ys.startIndex + t]
                if t > 0 { decIn[t * B + r] = ys[ys.startIndex + t - 1] }
            }
            sl[r] = min(S, Int(source.lengths[p])); tl[r] = min(T, Int(target.lengths[p]))
        }
        return EncoderDecoder.Batch(source: x, sourceLengths: sl, decoderInput: decIn, target: y, targetLengths: tl,
                                    sourceSteps: S, targetSteps: T, batch: B)
    }

    public func makeReplica() -> any TrainingTask {
        TranslationTask(settings: settings, model: EncoderDecoder(sharingParametersOf: model), data: data)
    }

    /// Teacher-forced loss over the validation pairs, in minibatches of B padded to `--num-steps`.
    public func evaluate(_ split: DataSplit) -> LossSum? {
        guard split == .validation, data.valid.source.count > 0 else { return nil }
        return Self.loss(model, source: data.valid.source, target: data.valid.target, batch: settings.batchSize)
    }

    /// Teacher-forced masked loss of every pair of `source`/`target` under `model`.
    public static func loss(_ model: EncoderDecoder, source: PaddedSentences, target: PaddedSentences, batch: Int) -> LossSum {
        var total = LossSum()
        for start in stride(from: 0, to: source.count, by: batch) {
            let pairs: [Int?] = (start..<min(start + batch, source.count)).map { $0 }
            total += model.loss(Self.batch(pairs, source: source, target: target, steps: (source.steps, target.steps)))
        }
        return total
    }

    /// Corpus BLEU of greedy translations of the validation pairs (0–100).
    public func validationScores() -> [String: Double] {
        guard data.validPairs.count > 0 else { return [:] }
        let translator = Translator(model: model, sourceVocabulary: data.sourceVocabulary,
                                    targetVocabulary: data.targetVocabulary, numSteps: settings.numSteps)
        let hyps = translator.greedy(data.validPairs.source, maxLength: settings.numSteps)
        return ["bleu": BLEU.corpus(hypotheses: hyps, references: data.validPairs.target)]
    }

    public var record: TaskRecord {
        let r = DataRecord(sourceVocabulary: data.sourceVocabulary, targetVocabulary: data.targetVocabulary,
                           fingerprint: data.fingerprint, numSteps: settings.numSteps)
        return TaskRecord(kind: Self.kind, encoding: r)
    }

    public static func dataRecord(_ r: TaskRecord) throws -> DataRecord {
        guard r.kind == kind else { throw TrainingError("the checkpoint holds a \(r.kind) run, not a translation model") }
        do { return try JSONDecoder().decode(DataRecord.self, from: Data(r.json.utf8)) } catch {
            throw TrainingError("the checkpoint's translation record cannot be decoded: \(error)")
        }
    }

    public var checkpointExports: [String: [String]] {
        ["source_vocab": data.sourceVocabulary.tokens, "target_vocab": data.targetVocabulary.tokens]
    }

    public func carriedTensors(_ carried: [Float]) -> [SafeTensor] { [] }
    public func carried(from tensors: [SafeTensor]) throws -> [Float] { [] }

    public var summary: [String] {
        let c = settings.model
        let e = epoch(0)
        var any = RandomGenerator(seed: settings.seed)  // the padding share of fixed minibatches does not depend on the order
        let fixed = PairEpoch.draw(.fixed, source: data.train.source, target: data.train.target, rows: settings.batchSize,
                                   generator: &any)
        return ["training translation: \(c.cell.rawValue) encoder-decoder, \(c.layers) layer(s), hidden \(c.hiddenSize)\(c.bidirectional ? " (bidirectional encoder, \(c.encoderHidden) per direction)" : ""), embedding \(c.embedSize), \(grouped(model.parameterCount)) parameters",
                "data: \(grouped(data.train.source.count)) pairs\(data.validPairs.count > 0 ? ", \(grouped(data.validPairs.count)) validation" : ""), vocabularies \(data.sourceVocabulary.count) source / \(data.targetVocabulary.count) target, \(e.count) minibatches/epoch of \(settings.batchSize) pairs, --num-steps \(settings.numSteps)",
                String(format: "padding: %.1f%% of positions with %@ minibatches", 100 * e.paddingShare(source: data.train.source, target: data.train.target), settings.batching.rawValue)
                    + (settings.batching == .bucketed ? String(format: " (%.1f%% with fixed padding)", 100 * fixed.paddingShare(source: data.train.source, target: data.train.target)) : "")]
            + (data.validExamplesAsked > 0 && data.validPairs.count == 0
                ? ["warning: no validation pairs: the file ends within the first \(grouped(data.numExamplesAsked + 1)) lines (0…\(data.numExamplesAsked)), which --num-examples gives training, so the \(grouped(data.validExamplesAsked)) asked for by --valid-examples are not there (no validation loss, BLEU or best model); lower --num-examples below the file's \(grouped(data.train.source.count)) pairs to keep some back, or pass --valid-examples 0"]
                : [])
    }

    // MARK: Workers

    struct WorkerHeader: Codable {
        var settings: Settings
        var pairs: Int
    }

    /// JSON (settings, pair count), then the training arrays as Int32: source ids `[N, S]`, source lengths `[N]`,
    /// target ids `[N, T]`, target lengths `[N]`.
    public func workerDescription() throws -> [UInt8] {
        try WorkerDescription.encode(WorkerHeader(settings: settings, pairs: data.train.source.count),
                                     values: [data.train.source.ids, data.train.source.lengths, data.train.target.ids,
                                              data.train.target.lengths])
    }

    /// A worker's task, rebuilt from `workerDescription()`; every field is checked.
    public convenience init(workerDescription d: [UInt8]) throws {
        let (header, values) = try WorkerDescription.decode(d, as: WorkerHeader.self, family: "translation")
        let s = header.settings, N = header.pairs, T = s.numSteps
        guard N >= 1, T >= 1, s.batchSize >= 1, values.count == 2 * N * T + 2 * N else {
            throw TrainingError("the translation description holds \(4 * values.count) data bytes, not \(N) pairs of \(T) steps")
        }
        var source = PaddedSentences([], vocabulary: Vocabulary(tokens: []), steps: T), target = source
        source.ids = Array(values[0..<(N * T)]); source.lengths = Array(values[(N * T)..<(N * T + N)])
        target.ids = Array(values[(N * T + N)..<(2 * N * T + N)]); target.lengths = Array(values[(2 * N * T + N)...])
        let c = s.model
        guard source.ids.allSatisfy({ $0 >= 0 && Int($0) < c.sourceVocabSize }), target.ids.allSatisfy({ $0 >= 0 && Int($0) < c.targetVocabSize }),
              (source.lengths + target.lengths).allSatisfy({ $0 >= 0 && Int($0) <= T }) else {
            throw TrainingError("the coordinator sent token ids or lengths outside the model's vocabularies or --num-steps")
        }
        let placeholder = { (n: Int) in Vocabulary(tokens: (0..<n).map { "\($0)" }) }
        let data = TranslationData(sourceVocabulary: placeholder(c.sourceVocabSize), targetVocabulary: placeholder(c.targetVocabSize),
                                   train: (source, target), validPairs: SentencePairs(source: [], target: []),
                                   valid: (PaddedSentences([], vocabulary: placeholder(5), steps: T), PaddedSentences([], vocabulary: placeholder(5), steps: T)),
                                   fingerprint: "")
        try c.validate()
        try ModelSpec.translation(c).trainingMemory(rows: s.batchSize, steps: s.numSteps, optimizerSlots: 0)
            .check(who: "this worker", lower: "run it on a host with more memory, or train a smaller model")
        self.init(settings: s, model: try EncoderDecoder(config: c), data: data)
    }
}
