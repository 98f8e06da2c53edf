import RNNCore

/// A peer as the transport names it (a ROUTER identity).
public typealias PeerID = [UInt8]

/// A worker admitted to the run.
public struct AdmittedWorker: Equatable, Sendable {
    public let peer: PeerID
    public let hello: WorkerHello
    public let index: Int
    public var columns: [Int]
    public var label: String { "worker \(index) (\(hello.name) on \(hello.host), pid \(hello.pid))" }
}

/// The coordinator's logic as a state machine: events in (messages received, the trainer starting a step, time
/// passing), actions out (what to send, what to log, what happened). No sockets and no clock: time is the `now`
/// (monotonic seconds) each event carries, so tests drive it by hand. Synchronous steps are here; asynchronous
/// training (`.startAsync`, every worker at its own cursor) is in AsyncRun.swift, on the same admission,
/// liveness and reassignment.
public struct CoordinatorMachine {
    public enum Event {
        /// A message (frames without the identity) arrived from `peer`.
        case received(peer: PeerID, frames: [[UInt8]], now: Double)
        /// A message whose payload the driver decoded where it lay (a gradient in shared memory, with
        /// `Codec.decodeGradient`'s checks): its head, and the message or the reason it was refused.
        case receivedDecoded(peer: PeerID, head: [UInt8], message: Result<Message, ProtocolError>, now: Double)
        /// The trainer wants the gradient of minibatch `index` of `epoch` for step `step`. `sendState` lists
        /// workers whose streams must be sent explicitly (just joined or resumed), unless `reset`.
        case startStep(step: UInt64, epoch: UInt32, index: UInt32, reset: Bool, sendState: Set<Int>, now: Double)
        /// Nothing arrived; time is now `now`.
        case tick(now: Double)
        /// A send to this peer failed because it is no longer connected (its process died, or the link broke).
        case peerUnreachable(peer: PeerID, now: Double)
        /// Asynchronous training starts (after admission): every live worker gets weights and its first minibatch.
        case startAsync(AsyncPlan, now: Double)
        /// The driver applied the gradient of `.applyGradient` from this worker (the weights are the next version).
        case updateApplied(worker: Int, now: Double)
    }

    public enum Action: Equatable {
        /// Send the run's configuration and tokens to a newly admitted worker.
        case welcome(AdmittedWorker)
        /// Send the current parameters (one shared buffer) to these workers for this step.
        case broadcastWeights(step: UInt64, epoch: UInt32, index: UInt32, reset: Bool, to: [AdmittedWorker])
        /// Send the current parameters plus this worker's streams' state.
        case sendWeightsWithState(step: UInt64, epoch: UInt32, index: UInt32, to: AdmittedWorker)
        case send(PeerID, Message)
        /// Send frames encoded already (a refusal in the framing of a peer that speaks another protocol version).
        case sendFrames(PeerID, [[UInt8]])
        case log(String)
        /// Every expected worker joined.
        case admitted([AdmittedWorker])
        /// Every worker's gradient for the step arrived: sum them (in worker order) with `gather`.
        case stepComplete(step: UInt64, slowestComputeNanos: UInt64)
        /// The run cannot go on; the message says why and what to do.
        case failed(String)
        /// This worker now owns `columns` (tell it; its streams' state goes with its next weights).
        case reassign(AdmittedWorker)
        /// Async: replace the coordinator's copy of these streams' state (`stateValuesPerStream` per stream, the
        /// wire layout) with what a worker reported after its minibatch.
        case carryState(columns: [Int], state: [Float])
        /// Async: apply this gradient (scale, clip, optimizer), then report `.updateApplied`.
        case applyGradient(AsyncGradient)
        /// Async: a gradient computed on weights `staleness` updates old (more than the bound) was not applied.
        case discardStale(worker: Int, staleness: Int)
        /// Async: every live worker has passed epoch `epoch` (0-based); `loss` sums its applied gradients' losses.
        case epochComplete(epoch: Int, loss: LossSum)
        /// Async: every live worker has walked every epoch (each was sent a stop).
        case runFinished
    }

    /// `running`: asynchronous training; `finished`: it ended.
    public enum Phase: Equatable { case admitting, idle, gathering, paused, failed, running, finished }

    public let runID: UInt64
    public let expectedWorkers: Int
    public let batchSize: Int
    public let parameterCount: Int
    /// The task's row-sparse tables, whose gradients workers send as touched rows (none: dense gradients).
    public let sparseRows: [SparseRowTensor]
    /// State values per stream (h, and c for LSTM, over all layers).
    public let stateValuesPerStream: Int
    public let joinTimeout: Double
    public let stepTimeout: Double
    /// After `stepTimeout`, a step proceeds if at least this many workers answered (stragglers' late gradients
    /// are then discarded); with fewer, the run fails naming the silent ones. Default: all of them.
    public var quorum: Int
    /// Below this many live workers the coordinator pauses at the next step until workers join.
    public var minWorkers: Int = 1
    /// When set, admission does not fail at `joinTimeout` if at least this many workers joined: the run starts with
    /// them (the others may join later). Nil: all `expectedWorkers` must join.
    public var startMinimum: Int?

    public internal(set) var phase: Phase = .admitting
    public private(set) var workers: [AdmittedWorker] = []
    public private(set) var gather: StepGather?
    /// Asynchronous training's cursors, versions and epoch losses (nil in synchronous mode).
    public internal(set) var asyncRun: AsyncRun?
    /// Rejected messages by reason, and stale gradients discarded.
    public internal(set) var rejections: [String: Int] = [:]
    public internal(set) var staleDiscarded = 0
    /// Workers still in the run, and how many unusable (non-finite) gradients each has sent.
    public private(set) var alive: Set<Int> = []
    public internal(set) var offenses: [Int: Int] = [:]
    /// After this many non-finite gradients a worker is disconnected.
    public let maxOffenses = 3
    /// Workers whose streams' state must be sent with their next weights (columns moved, or a dropped step).
    var pendingState: Set<Int> = []
    /// Workers that asked to join during the run; admitted at the next step boundary.
    var pendingJoins: [(PeerID, WorkerHello)] = []
    /// The step the coordinator paused at (too few workers), started once enough have joined.
    private var pausedStep: (step: UInt64, epoch: UInt32, index: UInt32, reset: Bool, sendState: Set<Int>)?
    private var joining: [(PeerID, WorkerHello)] = []
    private var deadline: Double
    private var slowest: UInt64 = 0

    /// Workers the coordinator is waiting on (the step's missing gradients, or async minibatches in flight):
    /// the ones whose liveness the driver probes.
    public var awaited: [Int] {
        switch phase {
        case .gathering: return gather?.missing ?? []
        case .running: return asyncRun.map { r in alive.filter { r.cursors[$0]?.sentVersion != nil }.sorted() } ?? []
        default: return []
        }
    }

    public init(runID: UInt64, expectedWorkers: Int, batchSize: Int, parameterCount: Int, sparseRows: [SparseRowTensor] = [],
                stateValuesPerStream: Int, joinTimeout: Double, stepTimeout: Double, now: Double) {
        self.sparseRows = sparseRows
        precondition(expectedWorkers >= 1 && expectedWorkers <= batchSize, "1 ≤ workers ≤ batch size")
        self.runID = runID; self.expectedWorkers = expectedWorkers; self.batchSize = batchSize
        self.parameterCount = parameterCount; self.stateValuesPerStream = stateValuesPerStream
        self.joinTimeout = joinTimeout; self.stepTimeout = stepTimeout
        quorum = expectedWorkers
        deadline = now + joinTimeout
    }

    mutating func reject(_ why: String, from: String) -> Action {
        rejections[why, default: 0] += 1
        return .log("rejected a message from \(from): \(why)")
    }

    public mutating func handle(_ event: Event) -> [Action] {
        switch (phase, event) {
        case (.failed, _), (.finished, _):
            return []
        case (.admitting, .receivedDecoded):
            return [reject("unexpected message before the run started", from: "a joining peer")]
        case (_, .receivedDecoded(let peer, let head, let message, let now)):
            return receivedDuringRun(peer, [head], decoded: message, now: now)
        case (.idle, .startAsync(let plan, let now)):
            return startAsync(plan, now: now)
        case (.running, .received(let peer, let frames, let now)):
            return receivedDuringRun(peer, frames, now: now)
        case (.running, .tick(let now)):
            return asyncTick(now: now)
        case (.running, .updateApplied(let worker, let now)):
            return updateApplied(worker: worker, now: now)
        case (.running, .startStep), (_, .updateApplied):
            return []
        case (_, .startAsync):
            preconditionFailure("asynchronous training starts once, after admission (phase \(phase))")
        case (.admitting, .received(let peer, let frames, _)):
            return admit(peer, frames)
        case (.admitting, .tick(let now)), (.admitting, .startStep(_, _, _, _, _, let now)):
            guard now >= deadline else { return [] }
            if let m = startMinimum, joining.count >= m {
                return [.log("starting with \(joining.count) of \(expectedWorkers) workers: --join-timeout \(Int(joinTimeout))s passed and --min-workers \(m) joined; the others may join the running job")]
                    + admitJoining()
            }
            phase = .failed
            let floor = startMinimum.map { " (--min-workers \($0))" } ?? ""
            let why = "only \(joining.count) of \(expectedWorkers) workers joined within \(Int(joinTimeout))s\(floor)"
            // The ones that joined are told, rather than left to wait out their own --join-timeout.
            return joining.map { .send($0.0, .stop(runID: runID, reason: Message.runFailedPrefix + why + "; the coordinator gave up before training began")) }
                + [.failed(why + "; start them with `rnnlm worker --connect` and the endpoint the coordinator listens on, or lower --expect-workers / --min-workers, or raise --join-timeout")]
        case (.idle, .startStep(let step, let epoch, let index, let reset, let sendState, let now)):
            var joined = admitPendingJoins()
            if alive.count < minWorkers {
                phase = .paused
                pausedStep = (step, epoch, index, reset, sendState)
                joined.append(.log("paused before step \(step): \(alive.count) of the \(minWorkers) workers --min-workers asks for; waiting for workers to join"))
                return joined
            }
            return joined + beginStep(step: step, epoch: epoch, index: index, reset: reset, sendState: sendState, now: now)
        case (.paused, .received(let peer, let frames, let now)):
            guard let m = try? Codec.decode(frames, runID: runID), case .hello(let h) = m,
                  member(peer).map({ alive.contains($0.index) }) != true else { return receivedDuringRun(peer, frames, now: now) }
            if !pendingJoins.contains(where: { $0.0 == peer }) { pendingJoins.append((peer, h)) }
            var actions = admitPendingJoins()
            if alive.count >= minWorkers, let p = pausedStep {
                pausedStep = nil
                phase = .idle
                actions.append(.log("resuming with \(alive.count) workers"))
                actions += beginStep(step: p.step, epoch: p.epoch, index: p.index, reset: p.reset, sendState: p.sendState, now: now)
            }
            return actions
        case (.paused, .peerUnreachable(let peer, _)):
            guard let w = member(peer), alive.contains(w.index) else { return [] }
            return declareLost(w.index, "unreachable (its process died or its connection broke)")
        case (.paused, _):
            return []
        case (.gathering, .tick(let now)) where now >= deadline:
            guard var g = gather else { return [] }
            let answered = g.received.count
            if answered >= 1 && answered >= Swift.min(quorum, alive.count) && answered < g.expected.count {
                let late = g.missing
                for i in late { g.forget(worker: i); pendingState.insert(i) }
                gather = g
                phase = .idle
                staleExpected.formUnion(late.map { LateKey(worker: $0, step: g.step) })
                return [.log("step \(g.step): proceeding with \(answered) of \(answered + late.count) workers after \(String(format: "%g", stepTimeout))s (--quorum \(quorum)); late: \(late.map { workers[$0].label }.joined(separator: ", ")); their gradients for this step will be discarded"),
                        .stepComplete(step: g.step, slowestComputeNanos: slowest)]
            }
            phase = .failed
            let who = g.missing.map { i in workers[i].label + " (rows \(workers[i].columns))" }
            return [.failed("step \(g.step): no gradient from \(who.joined(separator: ", ")) within \(Int(stepTimeout))s; is the worker alive? (with --quorum Q the step goes on once Q workers answered)")]
        case (.gathering, .tick), (.idle, .tick), (.gathering, .startStep):
            return []
        case (.idle, .received(let peer, let frames, let now)), (.gathering, .received(let peer, let frames, let now)):
            return receivedDuringRun(peer, frames, now: now)
        case (.admitting, .peerUnreachable):
            return []
        case (.idle, .peerUnreachable(let peer, _)), (.gathering, .peerUnreachable(let peer, _)),
             (.running, .peerUnreachable(let peer, _)):
            // An async worker that has walked every epoch exits after its stop: not a loss.
            guard let w = member(peer), alive.contains(w.index),
                  asyncRun?.hasFinished(w.index) != true else { return [] }
            return declareLost(w.index, "unreachable (its process died or its connection broke)")
        }
    }

    struct LateKey: Hashable { let worker: Int; let step: UInt64 }
    /// Gradients known to be coming late (stragglers), for logging them as such.
    private var staleExpected: Set<LateKey> = []

    private mutating func beginStep(step: UInt64, epoch: UInt32, index: UInt32, reset: Bool, sendState: Set<Int>, now: Double) -> [Action] {
            phase = .gathering
            deadline = now + stepTimeout
            slowest = 0
            let live = workers.filter { alive.contains($0.index) }
            gather = StepGather(step: step, expected: Dictionary(uniqueKeysWithValues: live.map { ($0.index, $0.columns.count * stateValuesPerStream) }),
                                tables: sparseRows)
            let withState = sendState.union(pendingState)
            pendingState.removeAll()
            var actions: [Action] = []
            var plain: [AdmittedWorker] = []
            for w in live {
                if !reset && withState.contains(w.index) {
                    actions.append(.sendWeightsWithState(step: step, epoch: epoch, index: index, to: w))
                } else {
                    plain.append(w)
                }
            }
            if !plain.isEmpty { actions.insert(.broadcastWeights(step: step, epoch: epoch, index: index, reset: reset, to: plain), at: 0) }
            return actions
    }

    /// Admits the workers that asked to join: each takes streams from the most loaded live workers (down to
    /// an even share); a join with no stream to spare is turned away.
    private mutating func admitPendingJoins() -> [Action] {
        var actions: [Action] = []
        for (peer, hello) in pendingJoins {
            let share = batchSize / (alive.count + 1)
            guard share >= 1 || alive.isEmpty else {
                actions.append(.send(peer, .stop(runID: runID, reason: "no row to spare: the \(batchSize) rows of a minibatch (--batch-size) are already split over \(alive.count) workers")))
                continue
            }
            let index = workers.count
            var taken: [Int] = []
            var donors: Set<Int> = []
            if alive.isEmpty {
                taken = Array(0..<batchSize)
            } else {
                while taken.count < max(1, share) {
                    let donor = alive.sorted().max { workers[$0].columns.count < workers[$1].columns.count || (workers[$0].columns.count == workers[$1].columns.count && $0 > $1) }!
                    guard workers[donor].columns.count > 1 else { break }
                    taken.append(workers[donor].columns.removeLast())
                    donors.insert(donor)
                }
            }
            guard !taken.isEmpty else {
                actions.append(.send(peer, .stop(runID: runID, reason: "no row to spare: every worker owns a single row")))
                continue
            }
            let w = AdmittedWorker(peer: peer, hello: hello, index: index, columns: taken.sorted())
            workers.append(w)
            alive.insert(index)
            pendingState.formUnion(donors.union([index]))
            actions.append(.log("worker \(index) joined the running job: \(hello.name) on \(hello.host), pid \(hello.pid); rows \(w.columns) from \(donors.sorted().map { "worker \($0)" }.joined(separator: ", "))"))
            actions.append(.welcome(w))
            for d in donors.sorted() { actions.append(.reassign(workers[d])) }
        }
        pendingJoins.removeAll()
        return actions
    }

    /// Takes worker `i` out of the run: its streams move to the live workers (least loaded first), the
    /// current step stops waiting for it, and the step completes if everyone else has answered. In async mode
    /// the streams go to workers still training, and the epochs and the run complete over those left.
    mutating func declareLost(_ i: Int, _ why: String) -> [Action] {
        alive.remove(i)
        let lost = workers[i]
        var actions: [Action] = []
        guard !alive.isEmpty else {
            phase = .failed
            return [.failed("\(lost.label) is \(why), and no worker is left; the last checkpoint holds the progress: restart workers and use --resume")]
        }
        let receivers = alive.filter { asyncRun?.hasFinished($0) != true }.sorted()
        var changed: Set<Int> = []
        for column in lost.columns where !receivers.isEmpty {
            let target = receivers.min { workers[$0].columns.count < workers[$1].columns.count || (workers[$0].columns.count == workers[$1].columns.count && $0 < $1) }!
            workers[target].columns.append(column)
            changed.insert(target)
        }
        for t in changed { workers[t].columns.sort() }
        workers[i].columns = []
        let step = gather.map { " at step \($0.step)" } ?? asyncRun.map { $0.position(of: i) } ?? ""
        let destination = changed.isEmpty ? "are left (every other worker has finished)"
            : "move to \(changed.sorted().map { "worker \($0)" }.joined(separator: ", ")) with their carried state"
        actions.append(.log("\(lost.label) lost\(step): \(why); its rows \(lost.columns) \(destination)"))
        for t in changed.sorted() { actions.append(.reassign(workers[t])) }
        pendingState.formUnion(changed)
        if phase == .running { actions += asyncProgress() }
        if phase == .gathering, var g = gather {
            g.forget(worker: i)
            gather = g
            if g.isComplete {
                phase = .idle
                actions.append(.stepComplete(step: g.step, slowestComputeNanos: slowest))
            }
        }
        return actions
    }

    private mutating func admit(_ peer: PeerID, _ frames: [[UInt8]]) -> [Action] {
        let message: Message
        do { message = try Codec.decode(frames, runID: runID) } catch {
            if case .badVersion(let v) = error { return refuseVersion(v, peer: peer) }
            return [reject(String(describing: error), from: "a joining peer")]
        }
        guard case .hello(let h) = message else { return [reject("unexpected \(message.type) before the run started", from: "a joining peer")] }
        guard !joining.contains(where: { $0.0 == peer }) else { return [] }
        joining.append((peer, h))
        var actions: [Action] = [.log("worker \(joining.count - 1) joined: \(h.name) on \(h.host), pid \(h.pid)")]
        if joining.count == expectedWorkers {
            if startMinimum != nil { actions.append(.log("starting with all \(expectedWorkers) workers (--expect-workers)")) }
            actions += admitJoining()
        }
        return actions
    }

    /// Starts the run with the workers that joined so far: rows split evenly among them.
    private mutating func admitJoining() -> [Action] {
        let blocks = assignColumns(batch: batchSize, workers: joining.count)
        workers = joining.enumerated().map { i, p in AdmittedWorker(peer: p.0, hello: p.1, index: i, columns: blocks[i]) }
        alive = Set(workers.map(\.index))
        phase = .idle
        return workers.map { .welcome($0) } + [.admitted(workers)]
    }

    /// The current membership of `peer`: a peer taken out of the run and admitted again has a newer entry.
    public func member(_ peer: PeerID) -> AdmittedWorker? { workers.last { $0.peer == peer } }

    /// A peer that speaks another protocol version is told so in its own framing (which has not changed), and the
    /// refusal is logged with both versions.
    private mutating func refuseVersion(_ version: UInt16, peer: PeerID) -> [Action] {
        let why = ProtocolError.badVersion(version).description
        return [.sendFrames(peer, Codec.refusal(version: version, reason: "refused by the coordinator: \(why)")),
                reject(why, from: "a joining peer")]
    }

    /// `decoded`: the message already decoded by the driver (its payload was not in `frames`).
    private mutating func receivedDuringRun(_ peer: PeerID, _ frames: [[UInt8]], decoded: Result<Message, ProtocolError>? = nil,
                                            now: Double) -> [Action] {
        guard let w = member(peer) else {
            if let v = Codec.declaredVersion(frames.first ?? []), v != Header.version { return refuseVersion(v, peer: peer) }
            if let m = try? Codec.decode(frames, runID: runID), case .hello(let h) = m {
                if phase == .running { return turnAwayAsyncJoin(peer, h) }
                guard !pendingJoins.contains(where: { $0.0 == peer }) else { return [] }
                pendingJoins.append((peer, h))
                return [.log("\(h.name) on \(h.host), pid \(h.pid) asked to join; it gets rows at the next step")]
            }
            if let h = try? Codec.header(frames.first ?? []), h.runID == runID, h.type != .hello {
                return [.send(peer, .stop(runID: runID, reason: Message.takenOutReason)),
                        reject("message from an unknown peer", from: "unknown peer")]
            }
            return [reject("message from an unknown peer", from: "unknown peer")]
        }
        guard alive.contains(w.index) else {
            // A worker declared lost (frozen past the heartbeat timeout, say) that is back: its hello makes it a
            // new member at the next step; anything else it sends (a stale gradient) is discarded, and it is told
            // it was taken out so that it says hello again.
            if let m = try? Codec.decode(frames, runID: runID), case .hello(let h) = m {
                if phase == .running { return turnAwayAsyncJoin(peer, h) }
                guard !pendingJoins.contains(where: { $0.0 == peer }) else { return [] }
                pendingJoins.append((peer, h))
                return [.log("\(w.label), taken out of the run, asked to rejoin; it gets rows at the next step as a new member")]
            }
            return [.send(peer, .stop(runID: runID, reason: Message.takenOutReason)),
                    reject("message from a worker no longer in the run", from: w.label)]
        }
        let message: Message
        do { message = try decoded?.get() ?? Codec.decode(frames, runID: runID, parameterCount: parameterCount, sparseRows: sparseRows) } catch let error as ProtocolError {
            if case .nonFinite(let what) = error, phase == .running, let h = try? Codec.header(frames[0]), h.type == .gradient,
               let version = AsyncRun.version(wireStep: h.step), let sent = asyncRun!.cursors[w.index]?.sentVersion, version == sent {
                return asyncNonFinite(w, what: what, now: now)
            }
            if case .nonFinite(let what) = error, phase == .gathering, var g = gather,
               let h = try? Codec.header(frames[0]), h.type == .gradient, h.step == g.step, g.missing.contains(w.index) {
                // A worker whose numbers blew up: the step goes on without it; its streams restart from the
                // coordinator's copy; a repeat offender is disconnected.
                g.drop(worker: w.index)
                gather = g
                pendingState.insert(w.index)
                offenses[w.index, default: 0] += 1
                let n = offenses[w.index]!
                rejections["non-finite \(what)", default: 0] += 1
                var actions: [Action] = [.log("warning: dropped \(w.label)'s contribution to step \(g.step): its \(what) contains NaN or Inf (\(n) of \(maxOffenses) allowed)")]
                if n >= maxOffenses {
                    actions.append(.send(w.peer, .stop(runID: runID, reason: "disconnected after \(n) non-finite gradients; check this host's hardware or numerics")))
                    actions += declareLost(w.index, "disconnected after \(n) non-finite gradients")
                } else if g.isComplete {
                    phase = .idle
                    actions.append(.stepComplete(step: g.step, slowestComputeNanos: slowest))
                }
                return actions
            }
            return [reject(String(describing: error), from: w.label)]
        } catch {
            return [reject(String(describing: error), from: w.label)]
        }
        switch message {
        case .gradient(_, let s, let loss, let tokens, let g, let st, let nanos, let rows):
            if phase == .running {
                guard let version = AsyncRun.version(wireStep: s) else {
                    return [reject("gradient for step 0, which no asynchronous run sends", from: w.label)]
                }
                return asyncGradient(w, version: version, loss: LossSum(sum: loss, count: Int(tokens)), gradient: g,
                                     rows: rows, state: st, now: now)
            }
            guard phase == .gathering, var gather else {
                staleDiscarded += 1
                let straggler = staleExpected.remove(LateKey(worker: w.index, step: s)) != nil
                return [.log("discarded a gradient for step \(s) from \(w.label): no step is in progress\(straggler ? "; it arrived after the step went on without it" : "")")]
            }
            let verdict = gather.accept(worker: w.index, step: s, .init(lossSum: loss, tokens: Int(tokens), gradient: g, state: st, rows: rows))
            self.gather = gather
            switch verdict {
            case .accepted:
                slowest = max(slowest, nanos)
                if gather.isComplete {
                    phase = .idle
                    return [.stepComplete(step: gather.step, slowestComputeNanos: slowest)]
                }
                return []
            case .staleStep(let old):
                staleDiscarded += 1
                let straggler = staleExpected.remove(LateKey(worker: w.index, step: old)) != nil
                return [.log("discarded a gradient for step \(old) from \(w.label) (now at step \(gather.step))\(straggler ? "; it arrived after the step went on without it" : "")")]
            case let v:
                return [reject("gradient \(v)", from: w.label)]
            }
        case .heartbeat:
            return []
        default:
            return [reject("unexpected \(message.type) during the run", from: w.label)]
        }
    }
}

/// Splits B stream columns into `workers` contiguous blocks as evenly as possible (the first `B % W` blocks
/// get one more). Every worker needs at least one column.
public func assignColumns(batch: Int, workers: Int) -> [[Int]] {
    precondition(workers >= 1 && workers <= batch, "cannot split \(batch) rows over \(workers) workers")
    var out: [[Int]] = []
    var start = 0
    for w in 0..<workers {
        let n = batch / workers + (w < batch % workers ? 1 : 0)
        out.append(Array(start..<(start + n)))
        start += n
    }
    return out
}
