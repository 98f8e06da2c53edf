import Foundation
import RNNCheckpoint
import RNNCore
import RNNText

// Shape legend: B streams (rows), T steps, L layers, H hidden. A row's carried values are its hidden state,
// `[L, H]` h then, for LSTM, `[L, H]` c.

/// D2L's language model over truncated-BPTT streams as a `TrainingTask`: a row is one of the B parallel streams,
/// and its hidden state is carried (detached) from one minibatch to the next.
public final class LanguageModelTask: TrainingTask {
    public static let kind = "language-model"

    /// What fixes the minibatches and the model: the same on the coordinator and on every worker.
    public struct Settings: Codable, Equatable, Sendable {
        public var model: ModelConfig
        public var seed: UInt64
        public var batchSize: Int
        public var numSteps: Int
        public var partition: Partition
        public init(model: ModelConfig, seed: UInt64, batchSize: Int, numSteps: Int, partition: Partition) {
            self.model = model; self.seed = seed; self.batchSize = batchSize; self.numSteps = numSteps
            self.partition = partition
        }
    }

    /// The task's checkpoint record: what rebuilds its data on resume.
    public struct DataRecord: Codable, Equatable, Sendable {
        public var tokenizer: Tokenizer
        public var vocabulary: Vocabulary
        public var fingerprint: String
    }

    public let settings: Settings
    public let model: LanguageModel
    public let data: TextData
    private var epochCache: (epoch: Int, batches: EpochBatches)?

    /// A fresh model for `options` over `data`, initialised from the run seed.
    public convenience init(options: TrainOptions, data: TextData) throws {
        var config = options.modelConfig
        config.vocabSize = data.vocabulary.count
        try config.validate()
        try ModelSpec.languageModel(config)
            .trainingMemory(rows: options.batchSize, steps: options.numSteps, optimizerSlots: try options.optimizerKind().slotCount)
            .check(lower: "lower --hidden, --embed, --layers, --batch-size or --num-steps")
        let model = try LanguageModel(config: config)
        var rng = RandomGenerator(seed: options.seed, stream: .initialization)
        model.initialize(try options.initialization(), rng: &rng)
        self.init(settings: Settings(model: config, seed: options.seed, batchSize: options.batchSize,
                                     numSteps: options.numSteps, partition: options.partition),
                  model: model, data: data)
    }

    init(settings: Settings, model: LanguageModel, data: TextData) {
        self.settings = settings; self.model = model; self.data = data
    }

    public var spec: ModelSpec { .languageModel(settings.model) }
    public var parameters: FloatBuffer { model.parameters }
    public var gradients: FloatBuffer { model.gradients }
    /// The embedding table, untied: its gradient has non-zero rows only for the tokens a minibatch reads.
    public var sparseRows: [SparseRowTensor] {
        let c = settings.model
        guard c.embedSize > 0, !c.tied else { return [] }
        return [SparseRowTensor(offset: model.layout["encoder.weight"].offset, rows: c.vocabSize, width: c.embedSize)]
    }
    public var touchedRows: [[Int32]] = []
    public var rowsPerMinibatch: Int { settings.batchSize }
    public var carriedPerRow: Int { settings.model.layers * settings.model.hiddenSize * (settings.model.cell.hasCell ? 2 : 1) }

    /// The minibatches of epoch `epoch`: offset (and order) drawn from the run seed and the epoch number alone,
    /// so the coordinator, every worker and a resumed run draw the same ones.
    public func epochBatches(_ epoch: Int) -> EpochBatches {
        if let c = epochCache, c.epoch == epoch { return c.batches }
        var rng = RandomGenerator(seed: settings.seed, stream: .dataOrder, index: UInt64(epoch))
        let b = EpochBatches.draw(settings.partition, corpus: data.train, batch: settings.batchSize,
                                  steps: settings.numSteps, rng: &rng)
        epochCache = (epoch, b)
        return b
    }

    public func minibatchCount(epoch: Int) -> Int { epochBatches(epoch).count }

    public func resetsCarried(epoch: Int, index: Int) -> Bool { settings.partition == .random || index == 0 }

    public func accumulateGradient(epoch: Int, index: Int, rows: [Int], step: Int, carried: inout [Float]) -> LossSum {
        let full = epochBatches(epoch)[index]
        let mb = rows.count == full.batch && rows.elementsEqual(0..<full.batch) ? full : full.selecting(columns: rows)
        var state = recurrentState(carried, rows: rows.count)
        let key = settings.model.dropout > 0 ? DropoutKey(seed: settings.seed, step: UInt64(step)) : nil
        let loss = model.forwardBackward(inputs: mb.inputs, targets: mb.targets, steps: mb.steps, batch: mb.batch,
                                         state: &state, dropout: key, rows: rows)
        if !sparseRows.isEmpty { touch([mb.inputs]) }
        carried = carriedValues(state)
        return loss
    }

    public func makeReplica() -> any TrainingTask {
        LanguageModelTask(settings: settings, model: LanguageModel(sharingParametersOf: model), data: data)
    }

    public func evaluate(_ split: DataSplit) -> LossSum? {
        evaluateLoss(model: model, tokens: split == .validation ? data.valid : data.test, batch: settings.batchSize,
                     steps: settings.numSteps)
    }

    public var record: TaskRecord {
        let r = DataRecord(tokenizer: data.tokenizer, vocabulary: data.vocabulary, fingerprint: data.fingerprint)
        return TaskRecord(kind: Self.kind, encoding: r)
    }

    /// The data record of a language model's checkpoint.
    public static func dataRecord(_ r: TaskRecord) throws -> DataRecord {
        guard r.kind == kind else { throw TrainingError("the checkpoint holds a \(r.kind) run, not a language model") }
        do { return try JSONDecoder().decode(DataRecord.self, from: Data(r.json.utf8)) } catch {
            throw TrainingError("the checkpoint's language-model record cannot be decoded: \(error)")
        }
    }

    public var summary: [String] {
        let c = settings.model
        return ["training \(c.cell.rawValue): \(c.layers) layer(s), hidden \(c.hiddenSize), \(c.embedSize == 0 ? "one-hot input" : "embedding \(c.embedSize)\(c.tied ? " tied to the decoder" : "")"), \(grouped(model.parameterCount)) parameters",
                "data: \(grouped(data.train.count)) training tokens\(data.valid.isEmpty ? "" : ", \(grouped(data.valid.count)) validation"), vocabulary \(data.vocabulary.count) (\(data.tokenizer.kind.rawValue)), \(minibatchCount(epoch: 0)) minibatches/epoch of \(settings.batchSize)×\(settings.numSteps)"]
    }

    // MARK: Carried state

    /// Row-major carried values of `rows` rows as the model's `[L, B, H]` state.
    func recurrentState(_ carried: [Float], rows: Int) -> RecurrentState {
        let c = settings.model, H = c.hiddenSize, L = c.layers
        var s = RecurrentState.zeros(c, batch: rows)
        precondition(carried.count == rows * carriedPerRow, "\(carried.count) carried values for \(rows) rows of \(carriedPerRow)")
        for r in 0..<rows {
            let base = r * carriedPerRow
            for l in 0..<L {
                let dst = (l * rows + r) * H
                for j in 0..<H { s.h[dst + j] = carried[base + l * H + j] }
                if c.cell.hasCell { for j in 0..<H { s.c[dst + j] = carried[base + (L + l) * H + j] } }
            }
        }
        return s
    }

    /// The model's `[L, B, H]` state as row-major carried values.
    func carriedValues(_ s: RecurrentState) -> [Float] {
        let H = s.hidden, L = s.layers, rows = s.batch
        var out = [Float](repeating: 0, count: rows * carriedPerRow)
        for r in 0..<rows {
            let base = r * carriedPerRow
            for l in 0..<L {
                let src = (l * rows + r) * H
                for j in 0..<H { out[base + l * H + j] = s.h[src + j] }
                if s.hasCell { for j in 0..<H { out[base + (L + l) * H + j] = s.c[src + j] } }
            }
        }
        return out
    }

    public func carriedTensors(_ carried: [Float]) -> [SafeTensor] {
        let s = recurrentState(carried, rows: rowsPerMinibatch)
        var out = [SafeTensor(name: "state.h", shape: [s.layers, s.batch, s.hidden], values: s.h)]
        if s.hasCell { out.append(SafeTensor(name: "state.c", shape: [s.layers, s.batch, s.hidden], values: s.c)) }
        return out
    }

    public func carried(from tensors: [SafeTensor]) throws -> [Float] {
        let c = settings.model, B = rowsPerMinibatch
        guard let h = tensors.first(where: { $0.name == "state.h" }) else { return zeroCarried }
        guard h.shape == [c.layers, B, c.hiddenSize] else {
            throw TrainingError("the checkpoint's carried state has shape \(h.shape), the run needs [\(c.layers), \(B), \(c.hiddenSize)] (--batch-size \(B))")
        }
        var s = RecurrentState.zeros(c, batch: B)
        s.h = h.values
        if c.cell.hasCell {
            guard let cc = tensors.first(where: { $0.name == "state.c" }), cc.shape == h.shape else {
                throw TrainingError("the checkpoint's LSTM state lacks a state.c tensor of shape \(h.shape)")
            }
            s.c = cc.values
        }
        return carriedValues(s)
    }

    // MARK: Workers

    struct WorkerHeader: Codable {
        var settings: Settings
        var vocabulary: [String]
    }

    /// JSON (settings and vocabulary), then the training tokens: `[UInt32 JSON length][JSON][Int32 tokens…]`.
    public func workerDescription() throws -> [UInt8] {
        try WorkerDescription.encode(WorkerHeader(settings: settings, vocabulary: data.vocabulary.tokens), values: [data.train])
    }

    /// A worker's task, rebuilt from `workerDescription()`; every field is checked.
    public convenience init(workerDescription d: [UInt8]) throws {
        let (header, tokens) = try WorkerDescription.decode(d, as: WorkerHeader.self, family: "language-model")
        let s = header.settings
        guard header.vocabulary.count == s.model.vocabSize else {
            throw TrainingError("the coordinator sent a vocabulary of \(header.vocabulary.count) tokens for a model of \(s.model.vocabSize)")
        }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= s.model.vocabSize }) {
            throw TrainingError("the coordinator sent token id \(bad), outside the vocabulary of \(s.model.vocabSize)")
        }
        guard s.batchSize >= 1, s.numSteps >= 1 else { throw TrainingError("the coordinator sent batch size \(s.batchSize) and \(s.numSteps) steps") }
        try s.model.validate()
        // A worker holds a replica and its gradient (the coordinator keeps the optimizer); the minibatch bounds its rows.
        try ModelSpec.languageModel(s.model).trainingMemory(rows: s.batchSize, steps: s.numSteps, optimizerSlots: 0)
            .check(who: "this worker", lower: "run it on a host with more memory, or train a smaller model")
        let model = try LanguageModel(config: s.model)
        let data = TextData(tokenizer: Tokenizer(kind: .char), vocabulary: Vocabulary(tokens: header.vocabulary), train: tokens)
        self.init(settings: s, model: model, data: data)
    }
}
