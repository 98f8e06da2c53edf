import Foundation
import RNNCheckpoint
import RNNCore
import RNNText

/// One finished epoch, as printed and as kept in the checkpoint's history.
public struct EpochReport: Codable, Equatable, Sendable {
    public var epoch: Int
    public var trainPerplexity: Double
    public var validPerplexity: Double?
    public var tokensPerSecond: Double
    public var lr: Float
    public var seconds: Double

    public var line: String {
        var s = "epoch \(epoch)  perplexity \(fmt(trainPerplexity))"
        if let v = validPerplexity { s += "  val perplexity \(fmt(v))" }
        s += "  \(grouped(Int(tokensPerSecond.rounded()))) tokens/s  lr \(lr)  \(String(format: "%.1fs", seconds))"
        return s
    }
}

func fmt(_ x: Double) -> String { String(format: "%.3f", x) }

/// `31204` → `31,204`.
public func grouped(_ n: Int) -> String {
    let s = String(abs(n))
    var out = ""
    for (i, ch) in s.enumerated() {
        if i > 0 && (s.count - i) % 3 == 0 { out.append(",") }
        out.append(ch)
    }
    return n < 0 ? "-" + out : out
}

/// What happened in one optimizer step, for progress displays and metrics.
public struct StepInfo: Sendable {
    public var step: Int
    /// 0-based epoch the step belongs to, and the minibatch index within it.
    public var epoch: Int
    public var index: Int
    public var batchesPerEpoch: Int
    public var loss: LossSum
    public var gradientNorm: Double
    public var clipped: Bool
    public var lr: Float

    public init(step: Int, epoch: Int, index: Int, batchesPerEpoch: Int, loss: LossSum, gradientNorm: Double, clipped: Bool, lr: Float) {
        self.step = step; self.epoch = epoch; self.index = index; self.batchesPerEpoch = batchesPerEpoch
        self.loss = loss; self.gradientNorm = gradientNorm; self.clipped = clipped; self.lr = lr
    }
}

/// Everything besides tensors that a checkpoint must hold to continue a run exactly.
public struct TrainingRecord: Codable, Equatable, Sendable {
    public var options: TrainOptions
    public var tokenizer: Tokenizer
    public var vocabulary: Vocabulary
    public var fingerprint: String
    /// Completed epochs.
    public var epoch: Int
    /// Minibatches of the current epoch already trained on.
    public var batchInEpoch: Int
    /// Optimizer steps taken.
    public var step: Int
    /// Loss sum and token count of the current epoch so far (so its perplexity line is exact after a resume).
    public var epochLoss: Double
    public var epochTokens: Int
    public var dropoutRNG: RandomGenerator
    public var schedule: LearningRateSchedule
    public var history: [EpochReport]
}

/// Where the gradient of a minibatch is computed: in this process, or by the workers of a distributed run.
public protocol GradientSource: AnyObject {
    /// Leaves `∂(Σ token losses)/∂θ` of `batch` at `model`'s current parameters in `model.gradients`
    /// (overwriting it), advances `state` (all B streams) to the streams' final state, and returns the loss sum.
    /// `reset` says `state` was just zeroed (a new epoch, or random partitioning).
    func gradient(model: LanguageModel, epoch: Int, index: Int, batch: Minibatch, reset: Bool, step: Int,
                  state: inout RecurrentState) throws -> LossSum
}

/// The reference: forward and backward over the whole minibatch in this process.
public final class LocalGradient: GradientSource {
    /// The run seed of the dropout masks (`nil`: no dropout). A mask is a function of (seed, step, site, row,
    /// position, unit), see `DropoutKey`, so it is the same on any number of threads or workers.
    public var dropoutSeed: UInt64?
    /// When set, minibatches are split across its threads (see `DataParallel`).
    public var parallel: DataParallel?
    public init(dropoutSeed: UInt64?) { self.dropoutSeed = dropoutSeed }

    public func gradient(model: LanguageModel, epoch: Int, index: Int, batch: Minibatch, reset: Bool, step: Int,
                         state: inout RecurrentState) throws -> LossSum {
        model.gradients.zero()
        let key = dropoutSeed.map { DropoutKey(seed: $0, step: UInt64(step)) }
        if let parallel, parallel.model === model, batch.batch > 1 {
            return parallel.forwardBackward(inputs: batch.inputs, targets: batch.targets, steps: batch.steps,
                                            batch: batch.batch, state: &state, dropout: key)
        }
        return model.forwardBackward(inputs: batch.inputs, targets: batch.targets, steps: batch.steps,
                                     batch: batch.batch, state: &state, dropout: key)
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The single-process reference trainer: D2L's `train_ch8` semantics on rnnlm's core.
/// Each step: gradient of the summed loss, scaled by 1/(T·B) (the mean), global-norm clip, optimizer update.
/// Sequential partitioning resets the state at the start of each epoch and carries it (detached) between
/// minibatches; random partitioning resets it every minibatch.
public final class Trainer {
    public let options: TrainOptions
    public let data: TextData
    public let model: LanguageModel
    public let optimizer: Optimizer
    public private(set) var record: TrainingRecord
    public private(set) var state: RecurrentState
    /// Where epoch lines and messages go (a progress display replaces it).
    public var log: (String) -> Void
    /// Wall seconds spent in `step` (gradient + update) and in the clip-and-update part alone, summed.
    public private(set) var stepSeconds = 0.0
    public private(set) var updateSeconds = 0.0
    /// Called after every optimizer step (progress line, metrics).
    public var onStep: ((StepInfo) -> Void)?
    /// Called with each finished epoch's report (after its line is logged).
    public var onEpoch: ((EpochReport) -> Void)?
    /// Computes each minibatch's gradient; `LocalGradient` unless a distributed run installs its own.
    public var source: GradientSource
    private let local: LocalGradient

    /// A fresh run: parameters initialised from `--seed`.
    public init(options: TrainOptions, data: TextData, log: @escaping (String) -> Void = { print($0) }) throws {
        try options.validate()
        self.options = options
        self.data = data
        self.log = log
        var config = options.modelConfig
        config.vocabSize = data.vocabulary.count
        model = try LanguageModel(config: config)
        var initRNG = RandomGenerator(seed: options.seed, stream: 0)
        model.initialize(try options.initialization(), rng: &initRNG)
        optimizer = Optimizer(try options.optimizerKind(), parameterCount: model.parameterCount)
        record = TrainingRecord(
            options: options, tokenizer: data.tokenizer, vocabulary: data.vocabulary, fingerprint: data.fingerprint,
            epoch: 0, batchInEpoch: 0, step: 0, epochLoss: 0, epochTokens: 0,
            dropoutRNG: RandomGenerator(seed: options.seed, stream: 2),
            schedule: LearningRateSchedule(try options.scheduleKind(), lr: options.lr), history: [])
        state = .zeros(config, batch: options.batchSize)
        local = LocalGradient(dropoutSeed: options.dropout > 0 ? options.seed : nil)
        source = local
    }

    /// Continues the run saved in `checkpoint` (with `epochs` possibly raised by the caller).
    public init(resuming checkpoint: Checkpoint<TrainingRecord>, epochs: Int? = nil, data: TextData,
                log: @escaping (String) -> Void = { print($0) }) throws {
        var rec = checkpoint.extra
        if let e = epochs { rec.options.epochs = e }
        options = rec.options
        self.data = data
        self.log = log
        guard data.vocabulary == rec.vocabulary else {
            throw TrainingError("the vocabulary of the text differs from the checkpoint's (\(data.vocabulary.count) vs \(rec.vocabulary.count) tokens); resume with the original corpus and tokenizer")
        }
        model = try LanguageModel(config: checkpoint.model)
        model.parameters.copy(from: checkpoint.parameters.withUnsafeBufferPointer { $0 })
        guard let kind = checkpoint.optimizer else { throw TrainingError("the checkpoint has no optimizer state; it cannot be resumed") }
        optimizer = Optimizer(kind, parameterCount: model.parameterCount)
        optimizer.step = checkpoint.optimizerStep
        guard optimizer.slots.count == checkpoint.optimizerSlots.count else {
            throw TrainingError("the checkpoint's optimizer state does not match \(kind.name)")
        }
        for (slot, values) in zip(optimizer.slots, checkpoint.optimizerSlots) { values.withUnsafeBufferPointer { slot.copy(from: $0) } }
        record = rec
        state = checkpoint.state ?? .zeros(checkpoint.model, batch: rec.options.batchSize)
        guard state.batch == rec.options.batchSize else {
            throw TrainingError("the checkpoint's carried state has \(state.batch) streams, its options say --batch-size \(rec.options.batchSize)")
        }
        local = LocalGradient(dropoutSeed: rec.options.dropout > 0 ? rec.options.seed : nil)
        source = local
    }

    /// Computes local gradients on `threads` threads, splitting each minibatch's streams between them
    /// (`DataParallel`); 1 is the reference path. The caller keeps OpenBLAS single-threaded when this is > 1.
    public func useThreads(_ threads: Int) {
        local.parallel = threads > 1 ? DataParallel(model: model, threads: threads) : nil
    }

    /// The minibatches of epoch `epoch` (0-based): offset (and order) drawn from the run seed and the epoch
    /// number alone, so any process can recompute them (resume, and later the distributed coordinator).
    public func epochBatches(_ epoch: Int) -> EpochBatches {
        var rng = RandomGenerator(seed: options.seed, stream: 1, index: UInt64(epoch))
        return EpochBatches.draw(options.partition, corpus: data.train, batch: options.batchSize,
                                 steps: options.numSteps, rng: &rng)
    }

    /// One optimizer step on minibatch `index` of `epoch`, from the carried `state`: gradient of the summed
    /// loss from `source`, scaled by 1/(tokens), global-norm clip, optimizer update. Returns loss sum and norm.
    @discardableResult
    public func step(epoch: Int, index: Int, batch: Minibatch, reset: Bool) throws -> (loss: LossSum, norm: Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let loss = try source.gradient(model: model, epoch: epoch, index: index, batch: batch, reset: reset,
                                       step: record.step + 1, state: &state)
        let t1 = DispatchTime.now().uptimeNanoseconds
        defer {
            let t2 = DispatchTime.now().uptimeNanoseconds
            stepSeconds += Double(t2 - t0) / 1e9
            updateSeconds += Double(t2 - t1) / 1e9
        }
        return (loss, try applyGradient(loss))
    }

    /// The update half of a step, on the Σ-loss gradient already in `model.gradients`: scale by 1/tokens,
    /// clip the global norm, apply the optimizer at the schedule's rate. Returns the norm before clipping.
    @discardableResult
    public func applyGradient(_ loss: LossSum) throws -> Double {
        // A distributed step where every contribution was dropped: nothing to learn from, skip the update.
        guard loss.count > 0 else {
            record.step += 1
            return 0
        }
        model.gradients.scale(by: 1 / Float(loss.count))
        let norm = clipGlobalNorm(model.gradients, maxNorm: options.clip)
        guard loss.sum.isFinite, norm.isFinite else {
            throw TrainingError("training diverged at step \(record.step + 1) (loss \(loss.mean), gradient norm \(norm)); lower --lr, set --clip, and resume from the last checkpoint")
        }
        optimizer.update(params: model.parameters, grads: model.gradients, lr: record.schedule.lr)
        record.step += 1
        return norm
    }

    /// Replaces the carried state of `columns` (an asynchronous run updates streams worker by worker).
    public func setState(columns: [Int], from part: RecurrentState) { state.assign(columns: columns, from: part) }

    /// Closes epoch `record.epoch`: validation, report line, schedule, history, checkpoint.
    @discardableResult
    public func endEpoch(trainLoss: LossSum, tokensTrained: Int, seconds: Double) throws -> EpochReport {
        let valid = evaluate(data.valid)
        let report = EpochReport(
            epoch: record.epoch + 1, trainPerplexity: trainLoss.perplexity, validPerplexity: valid?.perplexity,
            tokensPerSecond: Double(tokensTrained) / max(seconds, 1e-9), lr: record.schedule.lr, seconds: seconds)
        record.schedule.endEpoch(report.epoch, validationLoss: valid?.mean ?? trainLoss.mean)
        record.history.append(report)
        record.epoch += 1
        record.batchInEpoch = 0
        record.epochLoss = 0
        record.epochTokens = 0
        log(report.line)
        onEpoch?(report)
        try saveCheckpoint()
        return report
    }

    /// Perplexity data of `tokens` under the current parameters: sequential streams from a zero state,
    /// no dropout. `nil` when there are fewer than 2 tokens.
    public func evaluate(_ tokens: [Int32]) -> LossSum? {
        evaluateLoss(model: model, tokens: tokens, batch: options.batchSize, steps: options.numSteps)
    }

    /// Trains until `options.epochs` epochs are complete, or until `maxSteps` steps have been taken by this
    /// call (a clean stop for tests and time limits: the checkpoint then resumes mid-epoch).
    @discardableResult
    public func run(maxSteps: Int? = nil, shouldStop: () -> Bool = { false }) throws -> [EpochReport] {
        var reports: [EpochReport] = []
        var taken = 0
        while record.epoch < options.epochs {
            let batches = epochBatches(record.epoch)
            guard batches.count > 0 else {
                throw TrainingError("epoch \(record.epoch + 1) has no minibatch: \(data.train.count) tokens are too few for --batch-size \(options.batchSize) × --num-steps \(options.numSteps)")
            }
            let start = Date()
            var tokensHere = 0
            while record.batchInEpoch < batches.count {
                if let m = maxSteps, taken >= m {
                    try saveCheckpoint()
                    return reports
                }
                if shouldStop() { return reports }
                let reset = options.partition == .random || record.batchInEpoch == 0
                if reset { state.reset() }
                let lr = record.schedule.lr
                let (loss, norm) = try step(epoch: record.epoch, index: record.batchInEpoch, batch: batches[record.batchInEpoch],
                                            reset: reset)
                onStep?(StepInfo(step: record.step, epoch: record.epoch, index: record.batchInEpoch, batchesPerEpoch: batches.count,
                                 loss: loss, gradientNorm: norm, clipped: options.clip > 0 && norm > options.clip, lr: lr))
                record.batchInEpoch += 1
                record.epochLoss += loss.sum
                record.epochTokens += loss.count
                tokensHere += loss.count
                taken += 1
                if (options.checkpointEvery > 0 && record.step % options.checkpointEvery == 0)
                    || (options.checkpointSeconds > 0 && Date().timeIntervalSince(lastSave) >= options.checkpointSeconds) {
                    try saveCheckpoint()
                }
            }
            let seconds = Date().timeIntervalSince(start)
            reports.append(try endEpoch(trainLoss: LossSum(sum: record.epochLoss, count: record.epochTokens),
                                        tokensTrained: tokensHere, seconds: seconds))
        }
        return reports
    }

    public func checkpoint() -> Checkpoint<TrainingRecord> {
        Checkpoint(model: model.config, parameters: model.parameters.array, optimizer: optimizer.kind,
                   optimizerStep: optimizer.step, optimizerSlots: optimizer.slots.map(\.array), state: state, extra: record)
    }

    /// Writes `step-NNNNNNNN.safetensors` into the checkpoint folder (when one is set) and prunes old ones.
    private var lastSave = Date()

    @discardableResult
    public func saveCheckpoint() throws -> String? {
        lastSave = Date()
        guard let dir = options.checkpointDir else { return nil }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + checkpointName(step: record.step)
        try checkpoint().write(to: path)
        let all = checkpointFiles(in: dir)
        for old in all.dropLast(options.keepCheckpoints) { try? FileManager.default.removeItem(atPath: old.path) }
        return path
    }
}

/// Loss of `tokens` under `model` with sequential streams, zero initial state, no dropout.
public func evaluateLoss(model: LanguageModel, tokens: [Int32], batch: Int, steps: Int) -> LossSum? {
    guard tokens.count >= 2 else { return nil }
    let T = min(steps, tokens.count - 1)
    let B = max(1, min(batch, (tokens.count - 1) / T))
    let batches = EpochBatches.sequential(tokens, batch: B, steps: T, offset: 0)
    var state = RecurrentState.zeros(model.config, batch: B)
    var total = LossSum()
    for i in 0..<batches.count {
        let mb = batches[i]
        total += model.loss(inputs: mb.inputs, targets: mb.targets, steps: T, batch: B, state: &state)
    }
    return total
}

public func checkpointName(step: Int) -> String { "step-" + String(format: "%08d", step) + ".safetensors" }

/// The checkpoint files of a folder, oldest step first.
public func checkpointFiles(in dir: String) -> [(step: Int, path: String)] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.compactMap { name -> (Int, String)? in
        guard name.hasPrefix("step-"), name.hasSuffix(".safetensors"),
              let n = Int(name.dropFirst(5).dropLast(12)) else { return nil }
        return (n, dir + "/" + name)
    }.sorted { $0.0 < $1.0 }
}

/// The newest checkpoint in `dir`, or nil.
public func latestCheckpoint(in dir: String) -> String? { checkpointFiles(in: dir).last?.path }
