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

/// The synchronous coordinator's logic as a state machine: events in (messages received, the trainer
/// starting a step, time passing), actions out (what to send, what to log, what happened). No sockets and no
/// clock: time is the `now` (monotonic seconds) each event carries, so tests drive it by hand.
public struct CoordinatorMachine {
    public enum Event {
        /// A message (frames without the identity) arrived from `peer`.
        case received(peer: PeerID, frames: [[UInt8]], now: Double)
        /// The trainer wants the gradient of minibatch `index` of `epoch` for step `step`. `sendState` lists
        /// workers whose streams must be sent explicitly (just joined or resumed), unless `reset`.
        case startStep(step: UInt64, epoch: UInt32, index: UInt32, reset: Bool, sendState: Set<Int>, now: Double)
        /// Nothing arrived; time is now `now`.
        case tick(now: Double)
    }

    public enum Action: Equatable {
        /// Send the run's configuration and tokens to a newly admitted worker.
        case welcome(AdmittedWorker)
        /// Send the current parameters (one shared buffer) to these workers for this step.
        case broadcastWeights(step: UInt64, epoch: UInt32, index: UInt32, reset: Bool, to: [AdmittedWorker])
        /// Send the current parameters plus this worker's streams' state.
        case sendWeightsWithState(step: UInt64, epoch: UInt32, index: UInt32, to: AdmittedWorker)
        case send(PeerID, Message)
        case log(String)
        /// Every expected worker joined.
        case admitted([AdmittedWorker])
        /// Every worker's gradient for the step arrived: sum them (in worker order) with `gather`.
        case stepComplete(step: UInt64, slowestComputeNanos: UInt64)
        /// The run cannot go on; the message says why and what to do.
        case failed(String)
    }

    public enum Phase: Equatable { case admitting, idle, gathering, failed }

    public let runID: UInt64
    public let expectedWorkers: Int
    public let batchSize: Int
    public let parameterCount: Int
    /// State values per stream (h, and c for LSTM, over all layers).
    public let stateValuesPerStream: Int
    public let joinTimeout: Double
    public let stepTimeout: Double

    public private(set) var phase: Phase = .admitting
    public private(set) var workers: [AdmittedWorker] = []
    public private(set) var gather: StepGather?
    /// Rejected messages by reason, and stale gradients discarded.
    public private(set) var rejections: [String: Int] = [:]
    public private(set) var staleDiscarded = 0
    private var joining: [(PeerID, WorkerHello)] = []
    private var deadline: Double
    private var slowest: UInt64 = 0

    public init(runID: UInt64, expectedWorkers: Int, batchSize: Int, parameterCount: Int, stateValuesPerStream: Int,
                joinTimeout: Double, stepTimeout: Double, now: Double) {
        precondition(expectedWorkers >= 1 && expectedWorkers <= batchSize, "1 ≤ workers ≤ batch size")
        self.runID = runID; self.expectedWorkers = expectedWorkers; self.batchSize = batchSize
        self.parameterCount = parameterCount; self.stateValuesPerStream = stateValuesPerStream
        self.joinTimeout = joinTimeout; self.stepTimeout = stepTimeout
        deadline = now + joinTimeout
    }

    private mutating func reject(_ why: String, from: String) -> Action {
        rejections[why, default: 0] += 1
        return .log("rejected a message from \(from): \(why)")
    }

    public mutating func handle(_ event: Event) -> [Action] {
        switch (phase, event) {
        case (.failed, _):
            return []
        case (.admitting, .received(let peer, let frames, _)):
            return admit(peer, frames)
        case (.admitting, .tick(let now)), (.admitting, .startStep(_, _, _, _, _, let now)):
            guard now >= deadline else { return [] }
            phase = .failed
            return [.failed("only \(joining.count) of \(expectedWorkers) workers joined within \(Int(joinTimeout))s; start them with `rnnlm worker --connect ENDPOINT`, or lower --expect-workers / raise --join-timeout")]
        case (.idle, .startStep(let step, let epoch, let index, let reset, let sendState, let now)):
            phase = .gathering
            deadline = now + stepTimeout
            slowest = 0
            gather = StepGather(step: step, expected: Dictionary(uniqueKeysWithValues: workers.map { ($0.index, $0.columns.count * stateValuesPerStream) }))
            var actions: [Action] = []
            var plain: [AdmittedWorker] = []
            for w in workers {
                if !reset && sendState.contains(w.index) {
                    actions.append(.sendWeightsWithState(step: step, epoch: epoch, index: index, to: w))
                } else {
                    plain.append(w)
                }
            }
            if !plain.isEmpty { actions.insert(.broadcastWeights(step: step, epoch: epoch, index: index, reset: reset, to: plain), at: 0) }
            return actions
        case (.idle, .received(let peer, let frames, _)), (.gathering, .received(let peer, let frames, _)):
            return receivedDuringRun(peer, frames)
        case (.gathering, .tick(let now)):
            guard now >= deadline, let g = gather else { return [] }
            phase = .failed
            let who = g.missing.map { i in workers[i].label + " (streams \(workers[i].columns))" }
            return [.failed("step \(g.step): no gradient from \(who.joined(separator: ", ")) within \(Int(stepTimeout))s; is the worker alive?")]
        case (.idle, .tick), (.gathering, .startStep):
            return []
        }
    }

    private mutating func admit(_ peer: PeerID, _ frames: [[UInt8]]) -> [Action] {
        let message: Message
        do { message = try Codec.decode(frames, runID: runID) } catch {
            return [reject(String(describing: error), from: "a joining peer")]
        }
        guard case .hello(let h) = message else { return [reject("unexpected \(message.type) before the run started", from: "a joining peer")] }
        guard !joining.contains(where: { $0.0 == peer }) else { return [] }
        joining.append((peer, h))
        var actions: [Action] = [.log("worker \(joining.count - 1) joined: \(h.name) on \(h.host), pid \(h.pid)")]
        if joining.count == expectedWorkers {
            let blocks = assignColumns(batch: batchSize, workers: expectedWorkers)
            workers = joining.enumerated().map { i, p in AdmittedWorker(peer: p.0, hello: p.1, index: i, columns: blocks[i]) }
            actions += workers.map { .welcome($0) }
            actions.append(.admitted(workers))
            phase = .idle
        }
        return actions
    }

    private mutating func receivedDuringRun(_ peer: PeerID, _ frames: [[UInt8]]) -> [Action] {
        guard let w = workers.first(where: { $0.peer == peer }) else {
            var actions: [Action] = []
            if let m = try? Codec.decode(frames, runID: runID), case .hello = m {
                actions.append(.send(peer, .stop(runID: runID, reason: "this run has already started with \(workers.count) workers")))
            }
            actions.append(reject("message from an unknown peer", from: "unknown peer"))
            return actions
        }
        let message: Message
        do { message = try Codec.decode(frames, runID: runID, parameterCount: parameterCount) } catch {
            return [reject(String(describing: error), from: w.label)]
        }
        switch message {
        case .gradient(_, let s, let loss, let tokens, let g, let st, let nanos):
            guard phase == .gathering, var gather else {
                staleDiscarded += 1
                return [.log("discarded a gradient for step \(s) from \(w.label): no step is in progress")]
            }
            let verdict = gather.accept(worker: w.index, step: s, .init(lossSum: loss, tokens: Int(tokens), gradient: g, state: st))
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
                return [.log("discarded a gradient for step \(old) from \(w.label) (now at step \(gather.step))")]
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
    precondition(workers >= 1 && workers <= batch, "cannot split \(batch) streams over \(workers) workers")
    var out: [[Int]] = []
    var start = 0
    for w in 0..<workers {
        let n = batch / workers + (w < batch % workers ? 1 : 0)
        out.append(Array(start..<(start + n)))
        start += n
    }
    return out
}
