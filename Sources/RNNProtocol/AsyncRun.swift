import RNNCore

// Asynchronous training on the coordinator's state machine. Every worker walks the minibatches of its own
// stream columns epoch by epoch at its own pace: it is sent the newest weights (version = updates applied so
// far) and its next minibatch; its gradient is applied on arrival unless `StalenessGate` finds it computed on
// weights more than `maxStaleness` versions old; either way its streams' state is kept and it moves on. An
// epoch is complete when every live worker has passed it; the run, when every live worker has walked every
// epoch. A lost worker is taken out as in synchronous mode (its streams and their state go to workers still
// training, at their own cursors): the streams skip or repeat a few minibatches, the price of asynchrony.

/// What an asynchronous run is to do (`CoordinatorMachine.Event.startAsync`).
public struct AsyncPlan: Equatable, Sendable {
    /// A gradient computed on weights more than this many updates old is discarded.
    public var maxStaleness: Int
    /// Updates applied before this run started: the weights' version (a resumed run continues from its step).
    public var version: UInt64
    /// The epoch (0-based) every worker starts at.
    public var firstEpoch: Int
    /// The minibatch of `firstEpoch` every worker starts at: 0, or where a resumed checkpoint left the epoch (the
    /// minibatches every stream had completed, `CoordinatorMachine.asyncCompleted`).
    public var firstIndex: Int
    /// The loss of `firstEpoch`'s gradients applied before the checkpoint (part of that epoch's report).
    public var firstEpochLoss: LossSum
    /// Minibatches of each epoch, indexed by epoch; its count is the number of epochs.
    public var batchesPerEpoch: [Int]
    /// Random partitioning: every minibatch starts from a zero state (sequential: the first of each epoch).
    public var resetEveryBatch: Bool

    public init(maxStaleness: Int, version: UInt64, firstEpoch: Int, firstIndex: Int = 0, firstEpochLoss: LossSum = LossSum(),
                batchesPerEpoch: [Int], resetEveryBatch: Bool) {
        self.maxStaleness = maxStaleness; self.version = version; self.firstEpoch = firstEpoch
        self.firstIndex = firstIndex; self.firstEpochLoss = firstEpochLoss
        self.batchesPerEpoch = batchesPerEpoch; self.resetEveryBatch = resetEveryBatch
    }
}

/// A gradient the driver is to apply (`CoordinatorMachine.Action.applyGradient`), then report `.updateApplied`.
public struct AsyncGradient: Equatable, Sendable {
    public var worker: Int
    /// The minibatch it is the gradient of.
    public var epoch: Int, index: Int
    /// Updates applied since the weights it was computed on (at most the bound).
    public var staleness: Int
    public var loss: LossSum
    /// Σ-loss gradient: every value, or the values of the support of `rows` (see `Message.gradient`).
    public var gradient: [Float]
    /// Per row-sparse table, the touched rows (empty without tables).
    public var rows: [[Int32]]

    public init(worker: Int, epoch: Int, index: Int, staleness: Int, loss: LossSum, gradient: [Float], rows: [[Int32]] = []) {
        self.rows = rows
        self.worker = worker; self.epoch = epoch; self.index = index; self.staleness = staleness
        self.loss = loss; self.gradient = gradient
    }
}

/// Where an asynchronous run is: each worker's cursor, the weights' version, the epochs completed.
public struct AsyncRun: Sendable {
    public struct Cursor: Equatable, Sendable {
        /// The minibatch the worker computes (in flight) or has just answered (its update being applied).
        public var epoch: Int, index: Int
        /// The version its weights carried; nil while no minibatch is in flight.
        public var sentVersion: UInt64?
        /// The streams the minibatch is computed on: the worker's columns when its weights went out (a
        /// reassignment applies from its next minibatch).
        public var sentColumns: [Int]
        var deadline: Double
    }

    public let plan: AsyncPlan
    public var epochs: Int { plan.batchesPerEpoch.count }
    public internal(set) var gate: StalenessGate
    public internal(set) var cursors: [Int: Cursor] = [:]
    /// Epochs reported complete so far (counting those before `plan.firstEpoch`).
    public internal(set) var completedEpochs: Int
    /// Σ loss of the gradients applied, by epoch, until the epoch is reported.
    var epochLoss: [Int: LossSum] = [:]
    /// The worker whose gradient the driver is applying (between `.applyGradient` and `.updateApplied`).
    var applying: Int?

    /// The step a worker is sent with weights of `version`: the update its gradient makes if applied fresh, as in a
    /// synchronous run (step k + 1 after k updates), so that the dropout masks it draws for that step are the
    /// single process's. Its gradient comes back under the same step; `version(wireStep:)` undoes this.
    public static func wireStep(version: UInt64) -> UInt64 { version + 1 }

    /// The version of the weights a gradient sent under `step` was computed on; nil for step 0, which no
    /// asynchronous run sends.
    public static func version(wireStep step: UInt64) -> UInt64? { step == 0 ? nil : step - 1 }

    init(plan: AsyncPlan) {
        self.plan = plan
        gate = StalenessGate(maxStaleness: plan.maxStaleness, version: plan.version)
        completedEpochs = plan.firstEpoch
        if plan.firstEpochLoss.count > 0 { epochLoss[plan.firstEpoch] = plan.firstEpochLoss }
    }

    /// Whether worker `i` has walked every epoch (a worker without a cursor has nothing left to do).
    public func hasFinished(_ i: Int) -> Bool { (cursors[i]?.epoch ?? epochs) >= epochs }

    /// Minibatches worker `i` has still to answer, the one in flight included.
    func remaining(_ i: Int) -> Int {
        guard let c = cursors[i], c.epoch < epochs else { return 0 }
        let rest = plan.batchesPerEpoch[c.epoch...].reduce(0, +) - c.index
        return applying == i ? rest - 1 : rest
    }

    /// " at step S (epoch E, minibatch I)" for worker `i`'s log lines: S the step in progress (updates applied + 1),
    /// as a synchronous run and the workers' own lines count it.
    func position(of i: Int) -> String {
        let at = " at step \(AsyncRun.wireStep(version: gate.version))"
        guard let c = cursors[i], c.epoch < epochs else { return at }
        return at + " (epoch \(c.epoch + 1), minibatch \(c.index + 1) of \(plan.batchesPerEpoch[c.epoch]))"
    }
}

extension CoordinatorMachine {
    /// Async: minibatches the live workers have still to answer before the run ends. Each applied one is a step,
    /// so steps taken plus this is the run's total (less the gradients that will be discarded as stale).
    public var asyncRemaining: Int {
        guard let r = asyncRun else { return 0 }
        return alive.reduce(0) { $0 + r.remaining($1) }
    }

    /// Async: where a checkpoint taken now resumes. The epoch not yet reported, the minibatches of it that every
    /// live worker has answered and whose updates are applied (a resumed run starts every stream there, so a
    /// faster worker's few minibatches past it are trained again), and the loss of that epoch's gradients so far.
    public var asyncCompleted: (epoch: Int, index: Int, loss: LossSum)? {
        guard let r = asyncRun, r.completedEpochs < r.epochs else { return nil }
        let e = r.completedEpochs
        let done = alive.map { i -> Int in
            guard let c = r.cursors[i] else { return r.plan.batchesPerEpoch[e] }
            if c.epoch > e { return r.plan.batchesPerEpoch[e] }
            return c.epoch < e ? 0 : c.index  // the minibatch at the cursor is in flight or being applied
        }
        return (e, done.min() ?? 0, r.epochLoss[e] ?? LossSum())
    }

    mutating func startAsync(_ plan: AsyncPlan, now: Double) -> [Action] {
        precondition(plan.maxStaleness >= 0, "max staleness must be 0 or more")
        var run = AsyncRun(plan: plan)
        if let empty = (plan.firstEpoch..<max(plan.firstEpoch, run.epochs)).first(where: { plan.batchesPerEpoch[$0] < 1 }) {
            phase = .failed
            return [.failed("epoch \(empty + 1) has no minibatch: too few tokens for the batch size and number of steps")]
        }
        if plan.firstEpoch < run.epochs, !(0..<plan.batchesPerEpoch[plan.firstEpoch]).contains(plan.firstIndex) {
            phase = .failed
            return [.failed("the run resumes at minibatch \(plan.firstIndex + 1) of epoch \(plan.firstEpoch + 1), which has \(plan.batchesPerEpoch[plan.firstEpoch]): the data differs from the checkpoint's run")]
        }
        let live = workers.filter { alive.contains($0.index) }
        for w in live {
            run.cursors[w.index] = .init(epoch: plan.firstEpoch, index: plan.firstIndex, sentVersion: run.gate.version,
                                         sentColumns: w.columns, deadline: now + stepTimeout)
        }
        asyncRun = run
        pendingState.removeAll()  // the first weights say where every stream's state comes from, below
        phase = .running
        let turnedAway = pendingJoins.flatMap { turnAwayAsyncJoin($0.0, $0.1) }
        pendingJoins.removeAll()
        guard plan.firstEpoch < run.epochs else { return turnedAway + asyncProgress() }
        let step = AsyncRun.wireStep(version: run.gate.version), epoch = UInt32(plan.firstEpoch), index = UInt32(plan.firstIndex)
        if plan.firstIndex > 0 && !plan.resetEveryBatch {
            // Resumed mid-epoch: every stream goes on from the state the checkpoint carried.
            return turnedAway + live.map { .sendWeightsWithState(step: step, epoch: epoch, index: index, to: $0) }
        }
        // The first minibatch of an epoch (or every one, randomly partitioned) starts from zero.
        return turnedAway + [.broadcastWeights(step: step, epoch: epoch, index: index, reset: true, to: live)]
    }

    /// A gradient from `w` computed on weights `version`.
    mutating func asyncGradient(_ w: AdmittedWorker, version: UInt64, loss: LossSum, gradient: [Float], rows: [[Int32]] = [], state: [Float],
                                now: Double) -> [Action] {
        guard var c = asyncRun!.cursors[w.index], let sent = c.sentVersion, version == sent else {
            let expected = asyncRun!.cursors[w.index]?.sentVersion.map { "version \($0)" } ?? "none (no minibatch in flight)"
            return [reject("gradient for version \(version), expected \(expected)", from: w.label)]
        }
        guard state.count == c.sentColumns.count * stateValuesPerStream else {
            return [reject("gradient carries \(state.count) state values, expected \(c.sentColumns.count * stateValuesPerStream)", from: w.label)]
        }
        c.sentVersion = nil
        asyncRun!.cursors[w.index] = c
        // The streams moved on whether or not the gradient is used.
        var actions: [Action] = [.carryState(columns: c.sentColumns, state: state)]
        switch asyncRun!.gate.admit(computedAt: version) {
        case .apply(let staleness):
            asyncRun!.epochLoss[c.epoch, default: LossSum()] += loss
            asyncRun!.applying = w.index
            actions.append(.applyGradient(AsyncGradient(worker: w.index, epoch: c.epoch, index: c.index, staleness: staleness,
                                                        loss: loss, gradient: gradient, rows: rows)))
            return actions
        case .discard(let staleness):
            staleDiscarded += 1
            actions.append(.log("discarded a gradient from \(w.label): computed on version \(version), \(staleness) updates old (--max-staleness \(asyncRun!.plan.maxStaleness))"))
            actions.append(.discardStale(worker: w.index, staleness: staleness))
            return actions + advance(w.index, now: now)
        case .fromTheFuture:  // not reachable: the version was checked against the one sent
            return [reject("gradient for future version \(version)", from: w.label)]
        }
    }

    /// A gradient from `w` with NaN or Inf: its minibatch is skipped, its streams restart from the coordinator's
    /// copy; a repeat offender is disconnected.
    mutating func asyncNonFinite(_ w: AdmittedWorker, what: String, now: Double) -> [Action] {
        asyncRun!.cursors[w.index]!.sentVersion = nil
        pendingState.insert(w.index)
        offenses[w.index, default: 0] += 1
        let n = offenses[w.index]!
        rejections["non-finite \(what)", default: 0] += 1
        let c = asyncRun!.cursors[w.index]!
        var actions: [Action] = [.log("warning: skipped \(w.label)'s minibatch \(c.index + 1) of epoch \(c.epoch + 1): its \(what) contains NaN or Inf (\(n) of \(maxOffenses) allowed)")]
        if n >= maxOffenses {
            actions.append(.send(w.peer, .stop(runID: runID, reason: "disconnected after \(n) non-finite gradients; check this host's hardware or numerics")))
            return actions + declareLost(w.index, "disconnected after \(n) non-finite gradients")
        }
        return actions + advance(w.index, now: now)
    }

    mutating func updateApplied(worker i: Int, now: Double) -> [Action] {
        guard asyncRun!.applying == i else { return [] }
        asyncRun!.applying = nil
        guard alive.contains(i) else { return asyncProgress() }
        return advance(i, now: now)
    }

    /// A worker silent for `stepTimeout` on its minibatch is taken out (the others go on).
    mutating func asyncTick(now: Double) -> [Action] {
        var actions: [Action] = []
        for i in awaited where phase == .running && asyncRun!.cursors[i]!.deadline <= now {
            actions += declareLost(i, "silent: no gradient for its minibatch within \(Int(stepTimeout))s")
        }
        return actions
    }

    /// A hello during an async run: asynchronous workers join only at the start (a newcomer taking streams whose
    /// minibatch is in flight elsewhere would race that worker for their state).
    mutating func turnAwayAsyncJoin(_ peer: PeerID, _ h: WorkerHello) -> [Action] {
        [.send(peer, .stop(runID: runID, reason: "asynchronous training admits workers only at its start")),
         .log("turned away \(h.name) on \(h.host), pid \(h.pid): asynchronous training admits workers only at its start")]
    }

    /// Moves worker `i` past the minibatch it answered: its next one (weights, and its streams' state when they
    /// moved), or a stop when it has walked every epoch; then the epochs and the run that are now complete.
    private mutating func advance(_ i: Int, now: Double) -> [Action] {
        var c = asyncRun!.cursors[i]!
        c.index += 1
        if c.index >= asyncRun!.plan.batchesPerEpoch[c.epoch] {
            c.epoch += 1
            c.index = 0
        }
        var actions: [Action] = []
        let w = workers[i]
        if c.epoch >= asyncRun!.epochs {
            asyncRun!.cursors[i] = c
            actions.append(.send(w.peer, .stop(runID: runID, reason: "training finished")))
        } else {
            let version = asyncRun!.gate.version, step = AsyncRun.wireStep(version: version)
            c.sentVersion = version
            c.sentColumns = w.columns
            c.deadline = now + stepTimeout
            asyncRun!.cursors[i] = c
            let reset = c.index == 0 || asyncRun!.plan.resetEveryBatch
            if pendingState.remove(i) != nil && !reset {
                actions.append(.sendWeightsWithState(step: step, epoch: UInt32(c.epoch), index: UInt32(c.index), to: w))
            } else {
                actions.append(.broadcastWeights(step: step, epoch: UInt32(c.epoch), index: UInt32(c.index), reset: reset, to: [w]))
            }
        }
        return actions + asyncProgress()
    }

    /// Reports the epochs every live worker has passed, and the end of the run once every live worker is done.
    mutating func asyncProgress() -> [Action] {
        var actions: [Action] = []
        let live = alive.sorted()
        while asyncRun!.completedEpochs < asyncRun!.epochs,
              live.allSatisfy({ (asyncRun!.cursors[$0]?.epoch ?? asyncRun!.epochs) > asyncRun!.completedEpochs }) {
            let e = asyncRun!.completedEpochs
            actions.append(.epochComplete(epoch: e, loss: asyncRun!.epochLoss.removeValue(forKey: e) ?? LossSum()))
            asyncRun!.completedEpochs += 1
        }
        if asyncRun!.completedEpochs >= asyncRun!.epochs && asyncRun!.applying == nil && live.allSatisfy({ asyncRun!.hasFinished($0) }) {
            phase = .finished
            actions.append(.runFinished)
        }
        return actions
    }
}
