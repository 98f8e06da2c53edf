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
    /// Scores of the validation split besides its loss, by name (translation: `bleu`); nil when there are none.
    public var validScores: [String: Double]?
    /// The line shows the mean loss rather than perplexity (translation, as D2L reports it).
    public var showsLoss: Bool?

    public init(epoch: Int, trainPerplexity: Double, validPerplexity: Double?, tokensPerSecond: Double, lr: Float,
                seconds: Double, validScores: [String: Double]? = nil, showsLoss: Bool? = nil) {
        self.epoch = epoch; self.trainPerplexity = trainPerplexity; self.validPerplexity = validPerplexity
        self.tokensPerSecond = tokensPerSecond; self.lr = lr; self.seconds = seconds; self.validScores = validScores
        self.showsLoss = showsLoss
    }

    public var line: String {
        var s: String
        if showsLoss == true {
            s = "epoch \(epoch)  loss \(fmt(log(trainPerplexity)))"
            if let v = validPerplexity { s += "  val loss \(fmt(log(v)))" }
        } else {
            s = "epoch \(epoch)  perplexity \(fmt(trainPerplexity))"
            if let v = validPerplexity { s += "  val perplexity \(fmt(v))" }
        }
        for (name, value) in (validScores ?? [:]).sorted(by: { $0.key < $1.key }) { s += "  val \(name) \(String(format: "%.2f", value))" }
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
    /// The task's own record (for a language model: tokenizer, vocabulary, fingerprint of the training text).
    public var task: TaskRecord
    /// Completed epochs.
    public var epoch: Int
    /// Minibatches of the current epoch already trained on.
    public var batchInEpoch: Int
    /// Optimizer steps taken.
    public var step: Int
    /// Loss sum and token count of the current epoch so far (so its perplexity line is exact after a resume).
    public var epochLoss: Double
    public var epochTokens: Int
    public var schedule: LearningRateSchedule
    public var history: [EpochReport]
    /// How the run took its gradients (`Exchange.exact` in one process); nil in checkpoints written before it was
    /// recorded.
    public var exchange: Exchange?

    /// A parameter server's settings that change the maths, kept so a resume that changes them can say so.
    public struct Exchange: Codable, Equatable, Sendable {
        /// `sync` or `async` (`--mode`).
        public var mode: String
        /// `none` or `bf16` (`--gradient-compression`).
        public var gradientCompression: String
        public init(mode: String, gradientCompression: String) { self.mode = mode; self.gradientCompression = gradientCompression }

        /// A run in one process, or a synchronous one with exact gradients: the same maths.
        public static let exact = Exchange(mode: "sync", gradientCompression: "none")

        /// As flags, for messages.
        public var flags: String { "--mode \(mode) --gradient-compression \(gradientCompression)" }
    }

    public init(options: TrainOptions, task: TaskRecord, epoch: Int = 0, batchInEpoch: Int = 0, step: Int = 0,
                epochLoss: Double = 0, epochTokens: Int = 0, schedule: LearningRateSchedule, history: [EpochReport] = []) {
        self.options = options; self.task = task; self.epoch = epoch; self.batchInEpoch = batchInEpoch; self.step = step
        self.epochLoss = epochLoss; self.epochTokens = epochTokens; self.schedule = schedule; self.history = history
    }

    enum CodingKeys: String, CodingKey {
        case options, task, epoch, batchInEpoch, step, epochLoss, epochTokens, schedule, history, exchange
        // Checkpoint format 1 (language models only) kept the task's record inline.
        case tokenizer, vocabulary, fingerprint
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        options = try c.decode(TrainOptions.self, forKey: .options)
        if let t = try c.decodeIfPresent(TaskRecord.self, forKey: .task) {
            task = t
        } else {
            let r = LanguageModelTask.DataRecord(tokenizer: try c.decode(Tokenizer.self, forKey: .tokenizer),
                                                 vocabulary: try c.decode(Vocabulary.self, forKey: .vocabulary),
                                                 fingerprint: try c.decode(String.self, forKey: .fingerprint))
            task = TaskRecord(kind: LanguageModelTask.kind, json: String(decoding: try JSONEncoder().encode(r), as: UTF8.self))
        }
        epoch = try c.decode(Int.self, forKey: .epoch)
        batchInEpoch = try c.decode(Int.self, forKey: .batchInEpoch)
        step = try c.decode(Int.self, forKey: .step)
        epochLoss = try c.decode(Double.self, forKey: .epochLoss)
        epochTokens = try c.decode(Int.self, forKey: .epochTokens)
        schedule = try c.decode(LearningRateSchedule.self, forKey: .schedule)
        history = try c.decode([EpochReport].self, forKey: .history)
        exchange = try c.decodeIfPresent(Exchange.self, forKey: .exchange)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(options, forKey: .options)
        try c.encode(task, forKey: .task)
        try c.encode(epoch, forKey: .epoch)
        try c.encode(batchInEpoch, forKey: .batchInEpoch)
        try c.encode(step, forKey: .step)
        try c.encode(epochLoss, forKey: .epochLoss)
        try c.encode(epochTokens, forKey: .epochTokens)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(history, forKey: .history)
        try c.encodeIfPresent(exchange, forKey: .exchange)
    }
}

/// Where the gradient of a minibatch is computed: in this process, or by the workers of a distributed run.
public protocol GradientSource: AnyObject {
    /// Leaves `∂(Σ losses)/∂θ` of minibatch `index` of `epoch` (all rows) at the task's current parameters in
    /// `task.gradients` (overwriting it), advances `carried` (all rows, `[B, C]`) and returns the loss sum.
    /// `reset` says `carried` was just zeroed (a new epoch, or random partitioning).
    func gradient(task: any TrainingTask, epoch: Int, index: Int, reset: Bool, step: Int,
                  carried: inout [Float]) throws -> LossSum
}

/// The reference: forward and backward over the whole minibatch in this process.
public final class LocalGradient: GradientSource {
    /// When set, minibatches are split across its threads (see `DataParallel`).
    public var parallel: DataParallel?
    public init() {}

    public func gradient(task: any TrainingTask, epoch: Int, index: Int, reset: Bool, step: Int,
                         carried: inout [Float]) throws -> LossSum {
        task.zeroGradients()
        let rows = Array(0..<task.rowsPerMinibatch)
        if let parallel, parallel.task === task, rows.count > 1 {
            return parallel.accumulateGradient(epoch: epoch, index: index, rows: rows, step: step, carried: &carried)
        }
        return task.accumulateGradient(epoch: epoch, index: index, rows: rows, step: step, carried: &carried)
    }
}

public struct TrainingError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// The single-process reference trainer: D2L's `train_ch8` semantics on any `TrainingTask`.
/// Each step: gradient of the summed loss, scaled by 1/(tokens) (the mean), global-norm clip, optimizer update.
/// The task says when the carried values restart (a language model with sequential partitioning resets its
/// streams' state at the start of each epoch and carries it, detached, between minibatches).
public final class Trainer {
    public let options: TrainOptions
    public let task: any TrainingTask
    public let optimizer: Optimizer
    public private(set) var record: TrainingRecord
    /// Every row's carried values, `[B, C]` row-major.
    public private(set) var carried: [Float]
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
    private let local = LocalGradient()

    /// A fresh run of `task` (its parameters already initialised from `--seed`).
    public init(options: TrainOptions, task: any TrainingTask, log: @escaping (String) -> Void = { print($0) }) throws {
        try options.validate()
        self.options = options
        self.task = task
        self.log = log
        optimizer = Optimizer(try options.optimizerKind(), parameterCount: task.parameterCount)
        record = TrainingRecord(options: options, task: task.record,
                                schedule: LearningRateSchedule(try options.scheduleKind(), lr: options.lr))
        carried = task.zeroCarried
        source = local
    }

    /// Continues the run saved in `checkpoint` with `task` (rebuilt from the checkpoint's record; its options
    /// may have a raised `epochs`).
    public init(resuming checkpoint: Checkpoint<TrainingRecord>, task: any TrainingTask,
                log: @escaping (String) -> Void = { print($0) }) throws {
        let rec = checkpoint.extra
        options = rec.options
        self.task = task
        self.log = log
        guard checkpoint.spec == task.spec else {
            throw TrainingError("the checkpoint's model (\(checkpoint.spec)) differs from the one rebuilt for this run (\(task.spec)); resume with the original corpus and settings")
        }
        checkpoint.parameters.withUnsafeBufferPointer { task.parameters.copy(from: $0) }
        guard let kind = checkpoint.optimizer else { throw TrainingError("the checkpoint has no optimizer state; it cannot be resumed") }
        optimizer = Optimizer(kind, parameterCount: task.parameterCount)
        optimizer.step = checkpoint.optimizerStep
        guard optimizer.slots.count == checkpoint.optimizerSlots.count else {
            throw TrainingError("the checkpoint's optimizer state does not match \(kind.name)")
        }
        for (slot, values) in zip(optimizer.slots, checkpoint.optimizerSlots) { values.withUnsafeBufferPointer { slot.copy(from: $0) } }
        record = rec
        carried = try task.carried(from: checkpoint.carried)
        source = local
    }

    /// Threads for the update (the gradient's norm and the optimizer, both streaming over every parameter). The
    /// result does not depend on it (`FloatBuffer.sumOfSquares` sums fixed blocks in order; the update is elementwise).
    public var updateThreads = 1

    /// Computes local gradients on `threads` threads, splitting each minibatch's rows between them
    /// (`DataParallel`), and updates on as many; 1 is the reference path. The caller keeps OpenBLAS
    /// single-threaded when this is > 1.
    public func useThreads(_ threads: Int) {
        local.parallel = threads > 1 ? DataParallel(task: task, threads: threads) : nil
        updateThreads = threads
    }

    /// One optimizer step on minibatch `index` of `epoch`, from the carried values: gradient of the summed
    /// loss from `source`, scaled by 1/(tokens), global-norm clip, optimizer update. Returns loss sum and norm.
    @discardableResult
    public func step(epoch: Int, index: Int, reset: Bool) throws -> (loss: LossSum, norm: Double) {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let loss = try source.gradient(task: task, epoch: epoch, index: index, reset: reset, step: record.step + 1,
                                       carried: &carried)
        let t1 = DispatchTime.now().uptimeNanoseconds
        defer {
            let t2 = DispatchTime.now().uptimeNanoseconds
            stepSeconds += Double(t2 - t0) / 1e9
            updateSeconds += Double(t2 - t1) / 1e9
        }
        return (loss, try applyGradient(loss))
    }

    /// The update half of a step, on the Σ-loss gradient already in `task.gradients`: scale by 1/tokens,
    /// clip the global norm, apply the optimizer at the schedule's rate (the buffer itself keeps the Σ-loss
    /// gradient: the scaling happens inside the optimizer's pass). Returns the norm before clipping.
    @discardableResult
    public func applyGradient(_ loss: LossSum) throws -> Double {
        // A distributed step where every contribution was dropped: nothing to learn from, skip the update.
        guard loss.count > 0 else {
            record.step += 1
            return 0
        }
        // The mean (1/tokens) and the clipping factor scale the gradient inside the optimizer's one pass over it.
        let mean = 1 / Double(loss.count)
        // Only the gradient's support is visited (a language model's untouched embedding rows are zero).
        let support = task.gradientSupport
        let norm = task.gradients.sumOfSquares(support, threads: updateThreads).squareRoot() * mean
        // A loss whose perplexity overflows (a mean above ~709 nats a token, where a uniform guess over a million
        // tokens is 13.8) is divergence too, even while the sum is still finite.
        guard loss.sum.isFinite, exp(loss.mean).isFinite, norm.isFinite else {
            throw TrainingError("training diverged at step \(record.step + 1) (loss \(loss.mean) per token, gradient norm \(norm)); lower --lr, set --clip, and resume from the last checkpoint")
        }
        // The update checks what it writes: an update can overflow even from a finite gradient (a huge --lr), and
        // then the parameters, finite before, are not any more. Nothing else writes them between updates, so after
        // a step that returns they are finite (a synchronous coordinator's workers compute from them unchecked).
        let finite = optimizer.update(params: task.parameters, grads: task.gradients, lr: record.schedule.lr,
                                      gradScale: Float(mean * clipFactor(norm: norm, maxNorm: options.clip)),
                                      threads: updateThreads, support: support)
        guard finite else {
            throw TrainingError("training diverged at step \(record.step + 1): the update left non-finite parameters (gradient norm \(norm)); lower --lr, set --clip, and resume from the last checkpoint")
        }
        record.step += 1
        return norm
    }

    /// Records where the current epoch stands, for the next checkpoint: `batch` minibatches done, `loss` their loss
    /// (an asynchronous run, whose workers are at different minibatches, records those all of them completed).
    public func setEpochPosition(batch: Int, loss: LossSum) {
        record.batchInEpoch = batch
        record.epochLoss = loss.sum
        record.epochTokens = loss.count
    }

    /// Records how this run's gradients are taken, for its checkpoints.
    public func setExchange(_ exchange: TrainingRecord.Exchange?) { record.exchange = exchange }

    /// Replaces the carried values of `rows` (an asynchronous run updates rows worker by worker).
    public func setCarried(rows: [Int], from part: [Float]) {
        assignCarriedRows(&carried, perRow: task.carriedPerRow, rows: rows, from: part)
    }

    /// Closes epoch `record.epoch`: validation, report line, schedule, history, checkpoint.
    @discardableResult
    public func endEpoch(trainLoss: LossSum, tokensTrained: Int, seconds: Double) throws -> EpochReport {
        let valid = task.evaluate(.validation)
        let scores = valid == nil ? [:] : task.validationScores()
        let report = EpochReport(
            epoch: record.epoch + 1, trainPerplexity: trainLoss.perplexity, validPerplexity: valid?.perplexity,
            tokensPerSecond: Double(tokensTrained) / max(seconds, 1e-9), lr: record.schedule.lr, seconds: seconds,
            validScores: scores.isEmpty ? nil : scores, showsLoss: task.reportsLoss ? true : nil)
        record.schedule.endEpoch(report.epoch, validationLoss: valid?.mean ?? trainLoss.mean)
        record.history.append(report)
        record.epoch += 1
        record.batchInEpoch = 0
        record.epochLoss = 0
        record.epochTokens = 0
        log(report.line)
        onEpoch?(report)
        if bestEpoch == report.epoch {
            // Its parameters are this epoch's only now: a failed write cannot be retried later, only reported.
            bestUnsaved = try attemptSave(best: true) ? nil : report.epoch
        }
        try attemptSave()
        if let reason = earlyStopReason { log(reason) }
        return report
    }

    // MARK: The best epoch and early stopping

    /// What the best epoch is chosen by: validation loss when the task has a validation split, else training loss
    /// (lower is better; perplexity is exp(loss), so either one ranks epochs alike).
    public var bestCriterion: String {
        record.history.last?.validPerplexity != nil ? "validation loss" : "training loss"
    }

    /// The finished epoch (1-based) with the lowest loss by `bestCriterion`, the earliest on a tie; nil before one.
    /// Derived from the history, so it survives a resume.
    public var bestEpoch: Int? {
        var best: EpochReport?
        for r in record.history where best == nil || Self.score(r) < Self.score(best!) { best = r }
        return best?.epoch
    }

    private static func score(_ r: EpochReport) -> Double { r.validPerplexity ?? r.trainPerplexity }

    /// Set when `--early-stop N` has ended the run: N epochs have passed since the best one. Says so, in words.
    public var earlyStopReason: String? {
        guard let n = options.earlyStop, let best = bestEpoch, let last = record.history.last,
              last.epoch - best >= n, let b = record.history.first(where: { $0.epoch == best }) else { return nil }
        let value = b.showsLoss == true ? String(format: "%.3f", Foundation.log(Self.score(b))) : String(format: "%.3f", Self.score(b))
        let what = (b.showsLoss == true ? "loss " : "perplexity ") + value
        let kept = options.checkpointDir.map { dir in
            bestUnsaved == best ? "; \(dir)/best.safetensors could not be written for it (see the warning)" : ", kept in \(dir)/best.safetensors"
        } ?? ""
        return "early stop: no improvement in \(bestCriterion) for \(last.epoch - best) epochs (--early-stop \(n)); best was epoch \(best) (\(b.validPerplexity != nil ? "val " : "")\(what))\(kept)"
    }

    /// Loss of a held-out split under the current parameters (no dropout); nil when it is empty.
    public func evaluate(_ split: DataSplit) -> LossSum? { task.evaluate(split) }

    /// Trains until `options.epochs` epochs are complete, or until `maxSteps` steps have been taken by this
    /// call (a clean stop for tests and time limits: the checkpoint then resumes mid-epoch).
    @discardableResult
    public func run(maxSteps: Int? = nil, shouldStop: () -> Bool = { false }) throws -> [EpochReport] {
        var reports: [EpochReport] = []
        var taken = 0
        while record.epoch < options.epochs && earlyStopReason == nil {
            let count = task.minibatchCount(epoch: record.epoch)
            guard count > 0 else {
                throw TrainingError("epoch \(record.epoch + 1) has no minibatch: the training data is too small for --batch-size \(options.batchSize) × --num-steps \(options.numSteps)")
            }
            let start = Date()
            var tokensHere = 0
            while record.batchInEpoch < count {
                if let m = maxSteps, taken >= m {
                    try attemptSave()
                    return reports
                }
                if shouldStop() { return reports }
                let reset = task.resetsCarried(epoch: record.epoch, index: record.batchInEpoch)
                if reset { resetCarried() }
                let lr = record.schedule.lr
                let (loss, norm) = try step(epoch: record.epoch, index: record.batchInEpoch, reset: reset)
                onStep?(StepInfo(step: record.step, epoch: record.epoch, index: record.batchInEpoch, batchesPerEpoch: count,
                                 loss: loss, gradientNorm: norm, clipped: options.clip > 0 && norm > options.clip, lr: lr))
                record.batchInEpoch += 1
                record.epochLoss += loss.sum
                record.epochTokens += loss.count
                tokensHere += loss.count
                taken += 1
                try saveIfDue()
            }
            let seconds = Date().timeIntervalSince(start)
            reports.append(try endEpoch(trainLoss: LossSum(sum: record.epochLoss, count: record.epochTokens),
                                        tokensTrained: tokensHere, seconds: seconds))
        }
        return reports
    }

    private func resetCarried() {
        for i in carried.indices { carried[i] = 0 }
    }

    public func checkpoint() -> Checkpoint<TrainingRecord> {
        Checkpoint(spec: task.spec, parameters: task.parameters.array, optimizer: optimizer.kind,
                   optimizerStep: optimizer.step, optimizerSlots: optimizer.slots.map(\.array),
                   carried: task.carriedTensors(carried), extra: record, exports: task.checkpointExports)
    }

    private var lastSave = Date()

    /// Writes `step-NNNNNNNN.safetensors` (or, with `best`, `best.safetensors`) into the checkpoint folder (when
    /// one is set), atomically, then prunes the oldest step checkpoints beyond `--keep-checkpoints` (never the best).
    /// A failed write (a full disk) leaves every earlier file as it was and throws.
    @discardableResult
    public func saveCheckpoint(best: Bool = false) throws -> String? {
        if !best { lastSave = Date() }
        guard let dir = options.checkpointDir else { return nil }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        if !sweptTemporaries {
            sweptTemporaries = true
            removeAbandonedTemporaries(in: dir)
        }
        let path = dir + "/" + (best ? bestCheckpointName : checkpointName(step: record.step))
        try checkpoint().write(to: path)
        if best { return path }
        let all = checkpointFiles(in: dir)
        for old in all.dropLast(options.keepCheckpoints) { try? FileManager.default.removeItem(atPath: old.path) }
        return path
    }

    private var sweptTemporaries = false

    /// Saves that failed in a row (a full disk, a vanished folder); 0 after any successful save.
    public private(set) var failedSaves = 0
    /// Why the last failed save failed.
    private var lastSaveError: Error?
    /// The best epoch whose `best.safetensors` could not be written (nil: written, or no best yet).
    public private(set) var bestUnsaved: Int?
    /// After this many failed saves in a row the run stops (non-zero status) rather than train on unsaved.
    public static let maxFailedSaves = 3

    /// The scheduled save after a step: every `--checkpoint-every` steps, and when `--checkpoint-seconds` have passed
    /// since the last save (a failure is handled as `attemptSave` does).
    public func saveIfDue() throws {
        if (options.checkpointEvery > 0 && record.step % options.checkpointEvery == 0)
            || (options.checkpointSeconds > 0 && Date().timeIntervalSince(lastSave) >= options.checkpointSeconds) {
            try attemptSave()
        }
    }

    /// A scheduled save: a failure is reported and retried at the next scheduled save (training goes on, the files
    /// already written stay intact); the `maxFailedSaves`-th failure in a row stops the run with an error. Returns
    /// whether the file was written.
    @discardableResult
    private func attemptSave(best: Bool = false) throws -> Bool {
        do {
            try saveCheckpoint(best: best)
            failedSaves = 0
            return true
        } catch {
            failedSaves += 1
            lastSaveError = error
            let newest = options.checkpointDir.flatMap(latestCheckpoint(in:)) ?? "none"
            guard failedSaves < Self.maxFailedSaves else {
                throw TrainingError("\(failedSaves) checkpoint saves failed in a row, stopping at step \(record.step): \(error); newest checkpoint on disk: \(newest); fix the cause (free space in \(options.checkpointDir ?? "?")?) and continue with --resume")
            }
            log("warning: \(best ? "best model" : "checkpoint") not saved at step \(record.step) (\(failedSaves) of \(Self.maxFailedSaves) failures in a row before the run stops): \(error); newest checkpoint on disk: \(newest); retrying at the next checkpoint")
            return false
        }
    }

    /// Throws when the last save failed, so a finished run whose final state is not on disk does not end with
    /// status 0.
    public func requireLastSaveSucceeded() throws {
        guard failedSaves > 0 else { return }
        throw TrainingError("training ended at step \(record.step) but its last checkpoint could not be written (\(lastSaveError.map { "\($0)" } ?? "unknown error")); newest on disk: \(options.checkpointDir.flatMap(latestCheckpoint(in:)) ?? "none"); fix the cause (free space?) and continue with --resume")
    }
}

/// The best epoch's checkpoint, beside the step checkpoints and never pruned.
public let bestCheckpointName = "best.safetensors"

extension Trainer {
    /// A fresh language-model run over `data` (the reference trainer D2L's chapters describe).
    public convenience init(options: TrainOptions, data: TextData, log: @escaping (String) -> Void = { print($0) }) throws {
        try options.validate()
        try self.init(options: options, task: try LanguageModelTask(options: options, data: data), log: log)
    }

    /// Continues a language-model run over `data`, which must give the checkpoint's vocabulary.
    public convenience init(resuming checkpoint: Checkpoint<TrainingRecord>, data: TextData,
                            log: @escaping (String) -> Void = { print($0) }) throws {
        let stored = try LanguageModelTask.dataRecord(checkpoint.extra.task)
        guard data.vocabulary == stored.vocabulary else {
            throw TrainingError("the vocabulary of the text differs from the checkpoint's (\(data.vocabulary.count) vs \(stored.vocabulary.count) tokens); resume with the original corpus and tokenizer")
        }
        let task = try LanguageModelTask(options: checkpoint.extra.options, data: data)
        try self.init(resuming: checkpoint, task: task, log: log)
    }

    /// The language model being trained; nil for another family.
    public var languageModel: LanguageModelTask? { task as? LanguageModelTask }
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

/// Removes the temporary files of checkpoint writes whose process is gone (`.NAME.safetensors.tmp.PID`, left by a
/// process killed while writing): each is as large as a checkpoint, and a full disk is what they would cause next.
func removeAbandonedTemporaries(in dir: String) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return }
    for name in names where name.hasPrefix(".") && name.contains(".safetensors.tmp.") {
        guard let pid = Int32(name.split(separator: ".").last ?? ""), pid > 0 else { continue }
        if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(atPath: dir + "/" + name) }
    }
}

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
