import Foundation
import RNNCore
import RNNProtocol
import RNNText
import RNNTrain
import RNNTransport

public struct DistributedError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
    /// A wait was cut short by Ctrl-C / SIGTERM.
    public static let interrupted = DistributedError("interrupted")
}

/// The coordinator's side of data-parallel training, as a `GradientSource` for the reference `Trainer`.
/// The decisions (admission, step gathering, timeouts, rejections) are `CoordinatorMachine`'s; this class
/// only moves bytes: it feeds the machine what the socket receives and the time, and carries out its actions.
/// It sees rows and their carried values, never a model: per step, the current parameters go to every worker
/// as one shared buffer; every worker's Σ-loss gradient of its rows comes back (with their next carried values)
/// and is summed in worker order; the trainer then divides by the total token count, clips centrally and
/// applies the optimizer, exactly as in one process.
public final class Coordinator: GradientSource {
    public let socket: ZMQSocket
    public let runID: UInt64
    /// The workers in the run now (the machine's view).
    public var peers: [AdmittedWorker] {
        guard let m = machine else { return [] }
        return m.workers.filter { m.alive.contains($0.index) }
    }
    /// After `--step-timeout`, proceed once this many workers answered (nil: all).
    public var quorum: Int?
    /// Pause while fewer workers than this are alive; when given, admission also starts with this many once
    /// the join timeout passed (nil: 1, and every expected worker must join).
    public var minWorkers: Int?
    /// The welcome message for a worker (its assignment and the task's description), built once admission starts.
    private var welcomeFor: ((AdmittedWorker) throws -> [[UInt8]])?
    let parameterCount: Int
    let joinTimeout: TimeInterval
    let stepTimeout: TimeInterval
    let log: (String) -> Void
    /// Checked while waiting; when it returns true the current wait ends with `DistributedError.interrupted`.
    public var shouldStop: () -> Bool = { false }
    var machine: CoordinatorMachine?
    /// Workers whose carried state may differ from the coordinator's copy (just joined or resumed).
    private var needsState: Set<Int> = []
    public internal(set) var rejected: [String: Int] = [:]
    public internal(set) var staleDiscarded = 0
    /// Where the coordinator's step time goes (seconds, summed over steps): sending weights, waiting for the
    /// gradients, summing them; and the slowest worker's own compute time per step, as the workers report it.
    public private(set) var broadcastSeconds = 0.0
    public private(set) var waitSeconds = 0.0
    public private(set) var reduceSeconds = 0.0
    public private(set) var workerComputeSeconds = 0.0
    public private(set) var steps = 0
    /// How often the workers a step waits for are probed for liveness.
    public var probeInterval = 0.25
    /// A folder private to this coordinator (`rnnlm train --workers N` makes one); workers whose hello names
    /// it are local, and get a sealed `SharedPayloadRegion`: their weights and gradients bypass the socket.
    public var sharedMemoryDirectory: String?
    /// How workers are told to send their gradients (`--gradient-compression`).
    public var gradientEncoding: GradientEncoding = .float32
    var regions: [PeerID: SharedPayloadRegion] = [:]
    /// For a task with row-sparse tables: what changed in them since the last step, for workers across a socket
    /// that hold the last step's weights (a synchronous step).
    var changedRows: ChangedWeightRows?
    /// `--broadcast in-turn`: a synchronous step's weights go to the workers across sockets one at a time
    /// (`WeightsInTurn`); the next when the last says they arrived, or after `inTurnPatience` seconds.
    public var weightsInTurn = false
    public var inTurnPatience: TimeInterval = 5
    private var turn = WeightsInTurn()
    /// The heads of the step's weights across the socket, and its changed rows cut into frames (the whole weights
    /// are the task's parameters, unchanged until the step's update).
    private var turnMessages: (whole: [UInt8], rows: [UInt8]?, rowsFrames: PayloadFrames?) = ([], nil, nil)
    /// The whole parameters cut into frames once per step, when a worker across the socket needs them.
    private var wholeFrames: PayloadFrames?
    /// The task whose parameters the step's turn sends (set with the turn).
    private var turnTask: (any TrainingTask)?
    /// The workers whose gradient the last step summed: ready for the next weights at once, unlike a straggler the
    /// step went on without, which reads them only once its late computation is done (so it goes last in turn).
    private var answeredLastStep: Set<PeerID> = []
    /// One region all local workers read a synchronous step's parameters from: written once per step.
    var sharedWeights: SharedPayloadRegion?
    /// The task's parameters once they live in `sharedWeights` (from a synchronous run's first broadcast to local
    /// workers on): the trainer's update writes them there, inside a seqlock write that begins when a step's
    /// gradients are in and ends when the next step's weights go out, so a broadcast copies nothing.
    /// `releaseSharedWeights` (or deinit) moves them back into their own memory.
    private var parametersInSharedWeights: FloatBuffer?
    /// What crosses to and from the workers (socket frames and shared-memory payloads), and its count when
    /// admission ended (the welcomes are not part of a step's traffic).
    public let traffic = TrafficMeter()
    var trafficAtAdmission = (sent: 0, received: 0)

    public init(socket: ZMQSocket, runID: UInt64, parameterCount: Int, joinTimeout: TimeInterval, stepTimeout: TimeInterval,
                log: @escaping (String) -> Void) {
        self.socket = socket
        self.runID = runID
        self.parameterCount = parameterCount
        self.joinTimeout = joinTimeout
        self.stepTimeout = stepTimeout
        self.log = log
        socket.meter = traffic
    }

    deinit { releaseSharedWeights() }

    /// Moves the task's parameters back from the shared weights region into their own memory (before the region
    /// goes away; the run's end).
    public func releaseSharedWeights() {
        parametersInSharedWeights?.reclaim()
        parametersInSharedWeights = nil
    }

    static func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

    func reject(_ why: String, from: String) {
        rejected[why, default: 0] += 1
        log("rejected a message from \(from): \(why)")
    }

    /// Receives for up to a second and hands the machine what came (or the time).
    func pump(timeoutMs: Int = 1000) throws -> [CoordinatorMachine.Action] {
        if shouldStop() { throw DistributedError.interrupted }
        if let frames = try socket.receive(timeoutMs: timeoutMs), frames.count >= 2 {
            let body = Array(frames.dropFirst())
            if (try? Codec.header(body[0]))?.type == .weightsReceived, isInRun(frames[0]), let w = machine!.member(frames[0]) {
                // A worker's weights arrived (`--broadcast in-turn`): the next worker's may go. (From anyone else it
                // goes to the machine, which tells a peer no longer in the run so.)
                do {
                    guard case .weightsReceived(_, let s) = try Codec.decode(body, runID: runID) else { throw ProtocolError.frameCount(body.count) }
                    turn.received(frames[0], step: s)
                } catch {
                    reject("a malformed weightsReceived: \(error)", from: w.label)
                }
                return machine!.handle(.tick(now: Self.now()))
            }
            if Codec.isSharedPayloadHead(body), let region = regions[frames[0]] {
                // A gradient in the worker's slot is decoded where it lies: one copy, into the message's arrays.
                let head = Codec.clearingSharedPayloadFlag(body[0]), runID = runID, count = parameterCount
                let table = machine?.sparseRows ?? []
                var length = 0
                guard let decoded = region.withPayload(.toCoordinator, metered: false, { raw in
                    length = raw.count
                    return Result { () throws(ProtocolError) in
                        try Codec.decodeGradient(head: head, payload: raw, runID: runID, parameterCount: count, sparseRows: table)
                    }
                }) else {
                    reject("its shared-memory payload was incomplete (rewritten while read)",
                           from: machine!.member(frames[0])?.label ?? "an unknown peer")
                    return machine!.handle(.tick(now: Self.now()))
                }
                // Counted as read: a gradient accumulated in the slot holds the whole buffer, of which only the
                // support (the values the message carries) is read.
                if case .success(.gradient(_, _, _, _, let g, _, _, _)) = decoded, Codec.gradientValueCount(head) == count {
                    length -= 4 * (count - g.count)
                }
                traffic.didReceive(length)
                return machine!.handle(.receivedDecoded(peer: frames[0], head: head, message: decoded, now: Self.now()))
            }
            // Everything else crosses the socket whole (a flagged head from a peer without a slot is refused by
            // `decode`: its reserved byte is set).
            return machine!.handle(.received(peer: frames[0], frames: body, now: Self.now()))
        }
        return machine!.handle(.tick(now: Self.now()))
    }

    /// Sends a weights message to a local worker: the payload into its shared-memory slot, the flagged head over
    /// the socket. False when the worker is no longer connected.
    func send(_ head: [UInt8], payload: UnsafeRawBufferPointer, through region: SharedPayloadRegion,
                      to peer: PeerID) throws -> Bool {
        try region.write(.toWorker, [payload])
        do { try socket.send([Codec.flaggingSharedPayload(head)], to: peer) } catch let e as TransportError where e.unreachable {
            return false
        }
        return true
    }

    /// Carries out the actions that need no trainer data (feeding back any peer found gone); returns the rest.
    /// A `.reassign` is sent here only while nothing has been deferred: a worker takes its new rows (and zeroes their
    /// carried values) on receipt, so its `.columns` must not overtake a welcome or weights that the machine emitted
    /// before it for the old rows (the worker would drop that weights message's state as the wrong size, every step).
    /// Deferred, it is the caller's to send, in order, with `sendColumns`.
    func performCommon(_ actions: [CoordinatorMachine.Action]) throws -> [CoordinatorMachine.Action] {
        var rest: [CoordinatorMachine.Action] = []
        var queue = actions[...]
        while let a = queue.popFirst() {
            switch a {
            case .log(let line): log(line)
            case .send(let peer, let m): try? socket.send(Codec.encode(m), to: peer)
            case .sendFrames(let peer, let frames): try? socket.send(frames, to: peer)
            case .failed(let why): throw DistributedError(why)
            case .reassign(let w) where rest.isEmpty:
                if !(try sendColumns(w)) { queue.append(contentsOf: machine!.handle(.peerUnreachable(peer: w.peer, now: Self.now()))) }
            default: rest.append(a)
            }
        }
        return rest
    }

    /// Whether `peer` is a worker in the run now (admitted, not lost).
    func isInRun(_ peer: PeerID) -> Bool {
        guard let machine, let w = machine.member(peer) else { return false }
        return machine.alive.contains(w.index)
    }

    /// Unmaps the shared-memory regions of workers that are no longer in the run (dead, or taken out): a run whose
    /// local workers die and are replaced would otherwise keep one region (4·P for gradients, and the carried
    /// values) per replacement. A taken-out worker that is still alive keeps its own mapping; what it sends next
    /// comes through the socket path, which tells it it was taken out, and if it rejoins it gets a new region.
    func releaseRegionsOfLostWorkers() {
        guard machine != nil else { return }
        for peer in regions.keys where !isInRun(peer) { regions[peer] = nil }
        changedRows?.forgetAll(except: isInRun)
    }

    /// Tells a worker the rows it now owns (`.reassign`). False when it is no longer connected.
    func sendColumns(_ w: AdmittedWorker) throws -> Bool {
        // A worker still waiting its turn for this step's weights gets them first: it takes new rows on receipt.
        if let queued = turn.takeOut(w.peer), try !sendTurnWeights(queued).isEmpty { return false }
        do {
            try socket.send(Codec.encode(.columns(runID: runID, step: 0, columns: w.columns.map { Int32($0) })), to: w.peer)
        } catch let e as TransportError where e.unreachable {
            return false
        }
        return true
    }

    /// Sends a heartbeat to every worker the machine waits for (the step's missing gradients, async minibatches
    /// in flight); one that is gone is reported to the machine (a SIGKILLed worker is noticed within one probe
    /// interval).
    func probeMissing() throws -> [CoordinatorMachine.Action] {
        guard let awaited = machine?.awaited else { return [] }
        var actions: [CoordinatorMachine.Action] = []
        for i in awaited {
            guard let w = machine!.workers.first(where: { $0.index == i }) else { continue }
            do { try socket.send(Codec.encode(.heartbeat(runID: runID)), to: w.peer) } catch let e as TransportError where e.unreachable {
                actions += machine!.handle(.peerUnreachable(peer: w.peer, now: Self.now()))
            }
        }
        return try performCommon(actions)
    }

    /// Waits until `count` workers have said hello (or the join timeout passes), assigns them rows and sends each
    /// its assignment and the task's description.
    public func admitWorkers(count: Int, trainer: Trainer) throws {
        let task = trainer.task, rows = task.rowsPerMinibatch
        guard count >= 1, count <= rows else {
            throw DistributedError("--expect-workers \(count) must be between 1 and the \(rows) rows of a minibatch (--batch-size; each worker owns at least one row)")
        }
        machine = CoordinatorMachine(runID: runID, expectedWorkers: count, batchSize: rows, parameterCount: parameterCount,
                                     sparseRows: task.sparseRows, stateValuesPerStream: task.carriedPerRow, joinTimeout: joinTimeout,
                                     stepTimeout: stepTimeout, now: Self.now())
        machine!.quorum = quorum ?? count
        machine!.minWorkers = minWorkers ?? 1
        machine!.startMinimum = minWorkers.map { Swift.min($0, count) }
        let description = try task.workerDescription(), kind = trainer.record.task.kind
        let runID = runID, encoding = gradientEncoding
        if encoding == .bfloat16 {
            log("gradients travel as bfloat16 with error feedback (--gradient-compression bf16: half the bytes, lossy; the run no longer equals the single process)")
        }
        let capacity = sharedPayloadCapacity(parameterCount: parameterCount, carriedValues: rows * task.carriedPerRow,
                                             rowWords: GradientSupport.maxWireRows(task.sparseRows))
        changedRows = ChangedWeightRows(tables: task.sparseRows, parameterCount: parameterCount)
        welcomeFor = { [unowned self] w in
            var assignment = WorkerAssignment(task: kind, workerIndex: w.index, workers: count, rows: w.columns)
            if encoding != .float32 { assignment.gradientEncoding = encoding }
            regions[w.peer] = nil
            changedRows?.forget(w.peer)
            if let dir = sharedMemoryDirectory, w.hello.sharedMemory == dir {
                // Sealed files, not files in `dir`: a local process that truncated one would crash the coordinator
                // with SIGBUS at its next read of the mapping.
                let region = try SharedPayloadRegion(sealedName: "rnnlm-worker-\(w.index)", capacity: capacity)
                let path = region.path
                regions[w.peer] = region
                regions[w.peer]!.meter = traffic
                assignment.sharedMemory = path
                if sharedWeights == nil {
                    sharedWeights = try SharedPayloadRegion(sealedName: "rnnlm-weights", capacity: 4 * parameterCount)
                    sharedWeights!.meter = traffic
                }
                assignment.sharedWeights = sharedWeights!.path
                log("\(w.label): weights and gradients through shared memory (\(path))")
            }
            if weightsInTurn && regions[w.peer] == nil { assignment.acknowledgeWeights = true }
            return Codec.encode(.welcome(runID: runID, assignment: Array(try JSONEncoder().encode(assignment)), task: description))
        }
        log("waiting for \(count) worker(s) (up to \(Int(joinTimeout))s\(minWorkers.map { m in m < count ? "; then starting with at least \(m) (--min-workers)" : "" } ?? ""))")
        var admitted = false
        while !admitted {
            for a in try performCommon(try pump()) {
                switch a {
                case .welcome(let w): try socket.send(welcomeFor!(w), to: w.peer)
                case .reassign(let w): _ = try sendColumns(w)  // (none while admitting; a worker gone is found at the first step)
                case .admitted: admitted = true
                default: break
                }
            }
        }
        needsState = Set(peers.map(\.index))
        trafficAtAdmission = (traffic.sent, traffic.received)
    }

    public func gradient(task: any TrainingTask, epoch: Int, index: Int, reset: Bool, step: Int,
                         carried: inout [Float]) throws -> LossSum {
        let t0 = DispatchTime.now().uptimeNanoseconds
        // The update, the only writer of the parameters until the next broadcast, writes them where they are when
        // they live in the shared weights region: under a seqlock write, begun however this step ends, so a
        // straggler still computing from them notices and discards its gradient.
        defer { if parametersInSharedWeights != nil { _ = sharedWeights!.beginWrite(.toWorker) } }
        let perRow = task.carriedPerRow
        // The rows each worker computes this step: those its weights were computed for (reassignments during the
        // step apply from the next one).
        var stepRows: [Int: [Int]] = [:]
        var pending = try performCommon(machine!.handle(.startStep(step: UInt64(step), epoch: UInt32(epoch), index: UInt32(index),
                                                                   reset: reset, sendState: needsState, now: Self.now())))
        needsState.removeAll()
        var t1 = t0
        var slowest: UInt64?
        var lastProbe = Self.now()
        // Gradients are summed as they become addable in worker order, while slower workers still compute.
        var summed: [Int] = [], loss = LossSum(), zeroed = false
        func sumArrived() {
            guard zeroed, let g = machine!.gather, g.step == UInt64(step) else { return }
            let ready = g.summable(after: summed)
            g.add(ready, into: task.gradients, total: &loss)
            // The buffer's support grows with each sum, so that zeroing it later clears all it holds.
            for w in ready where !(g.received[w]?.rows.isEmpty ?? true) { task.touch(g.received[w]!.rows) }
            summed += ready
        }
        while slowest == nil {
            var gone: [[UInt8]] = []
            for a in pending {
                switch a {
                case .welcome(let w):
                    do { try socket.send(welcomeFor!(w), to: w.peer) } catch let e as TransportError where e.unreachable { gone.append(w.peer) }
                case .reassign(let w):
                    if !(try sendColumns(w)) { gone.append(w.peer) }
                case .broadcastWeights(_, _, _, _, let to):
                    for w in to { stepRows[w.index] = w.columns }
                case .sendWeightsWithState(_, _, _, let w):
                    stepRows[w.index] = w.columns
                default: break
                }
                switch a {
                case .broadcastWeights, .sendWeightsWithState:
                    gone += try sendWeights(a, task: task, carried: carried, sharedBroadcast: true)
                case .stepComplete(_, let nanos):
                    slowest = nanos
                default:
                    break
                }
            }
            if !zeroed {  // the weights are out: the workers compute, the running sum starts
                t1 = DispatchTime.now().uptimeNanoseconds
                task.zeroGradients()
                zeroed = true
            }
            if slowest != nil { break }
            sumArrived()
            if !turn.isIdle { gone += try sendNextInTurn(task: task) }
            pending = []
            for peer in gone { pending += try performCommon(machine!.handle(.peerUnreachable(peer: peer, now: Self.now()))) }
            if !pending.isEmpty { continue }
            if Self.now() - lastProbe >= probeInterval {
                lastProbe = Self.now()
                pending = try probeMissing()
                if !pending.isEmpty { continue }
            }
            pending = try performCommon(try pump(timeoutMs: Int(probeInterval * 1000)))
        }
        turn.clear()
        turnMessages.rowsFrames = nil
        wholeFrames = nil
        let t2 = DispatchTime.now().uptimeNanoseconds
        let gather = machine!.gather!
        sumArrived()
        if summed != gather.received.keys.sorted() {
            loss = gather.sum(into: task.gradients)  // (not expected: the running sum is redone from scratch)
            task.touchedRows = gather.touchedRows
        }
        // Rows of workers that answered move on; those of a dropped or lost contribution keep the coordinator's
        // copy (and go to their owner with the next weights).
        answeredLastStep = []
        for (i, c) in gather.received {
            if let w = machine!.workers.last(where: { $0.index == i }) {
                changedRows?.confirm(w.peer, step: UInt64(step))
                answeredLastStep.insert(w.peer)
            }
            let rows = stepRows[i] ?? []
            if c.state.count == rows.count * perRow { assignCarriedRows(&carried, perRow: perRow, rows: rows, from: c.state) }
        }
        let t3 = DispatchTime.now().uptimeNanoseconds
        broadcastSeconds += Double(t1 - t0) / 1e9
        waitSeconds += Double(t2 - t1) / 1e9
        reduceSeconds += Double(t3 - t2) / 1e9
        workerComputeSeconds += Double(slowest!) / 1e9
        steps += 1
        return loss
    }

    /// Carries out a weights action: the parameters (and, for `.sendWeightsWithState`, the worker's rows of
    /// `carried`) through shared memory to local workers and the socket to the others (one shared buffer for a
    /// broadcast). With `sharedBroadcast` (a synchronous step) the local workers of a broadcast all read one copy
    /// in the shared weights region, where they compute from them in place (and where the parameters stay, for the
    /// update to write). Only a straggler the last step went on without can still be reading it as it is rewritten:
    /// its seqlock check after computing fails and it sends nothing, or it begins on the newer weights under the
    /// older step's head and that gradient is discarded as stale (its next weights come with its rows' state,
    /// through its own slot).
    /// Asynchronous workers take weights at different times and keep to their own slots. Returns the peers found
    /// gone.
    func sendWeights(_ action: CoordinatorMachine.Action, task: any TrainingTask, carried: [Float],
                     sharedBroadcast: Bool = false) throws -> [PeerID] {
        let params = UnsafeBufferPointer(start: task.parameters.pointer, count: task.parameterCount)
        var gone: [PeerID] = []
        releaseRegionsOfLostWorkers()
        switch action {
        case .broadcastWeights(let s, let e, let i, let r, let to):
            let head = Codec.weightsHead(runID: runID, step: s, epoch: e, batch: i, resetState: r, parameterCount: params.count)
            var viaSocket: [PeerID] = []
            let local = to.filter { regions[$0.peer] != nil }
            if sharedBroadcast, let shared = sharedWeights, !local.isEmpty {
                // The workers compute straight from this region without checking it: only finite weights go there.
                // The first time they are copied (and checked) and stay there for the trainer to update in place;
                // after that the update's write, begun when the last step's gradients were in, ends here, and the
                // update has checked every value it wrote (`Trainer.applyGradient` throws on a non-finite one).
                if parametersInSharedWeights !== task.parameters {
                    releaseSharedWeights()
                    let area = shared.beginWrite(.toWorker).baseAddress!.bindMemory(to: Float.self, capacity: params.count)
                    guard task.parameters.copyCheckingFinite(to: area, threads: 2) else {
                        try shared.endWrite(.toWorker, length: 0)
                        throw DistributedError("training diverged at step \(s): the update left non-finite parameters; lower --lr, set --clip, and resume from the last checkpoint")
                    }
                    task.parameters.relocate(to: area)
                    parametersInSharedWeights = task.parameters
                }
                try shared.endWrite(.toWorker, length: 4 * params.count)
                let flagged = Codec.flaggingSharedWeights(head)
                for w in local {
                    do { try socket.send([flagged], to: w.peer) } catch let e as TransportError where e.unreachable { gone.append(w.peer) }
                }
            }
            for w in to {
                guard let region = regions[w.peer] else { viaSocket.append(w.peer); continue }
                if sharedBroadcast && sharedWeights != nil { continue }
                if !(try send(head, payload: UnsafeRawBufferPointer(params), through: region, to: w.peer)) { gone.append(w.peer) }
            }
            // Workers that hold the last step's weights get what changed since (`ChangedWeightRows`).
            var holders: [PeerID] = [], rowsHead: [UInt8]?, rowsFrames: PayloadFrames?
            if sharedBroadcast, !viaSocket.isEmpty, let (support, base) = changedRows?.advance(to: s, parameters: params) {
                holders = viaSocket.filter { changedRows!.holds($0, step: base) }
                if !holders.isEmpty {
                    rowsHead = Codec.weightRowsHead(runID: runID, step: s, epoch: e, batch: i, resetState: r, support: support, baseStep: base)
                    let words = support.wireRows
                    rowsFrames = try words.withUnsafeBytes { try PayloadFrames(Codec.weightRowsParts(params, support: support, rowWords: $0)) }
                }
            }
            // Each of them holds the base step's weights no longer, whatever it gets now: only its gradient for this
            // step will say it holds this step's (`ChangedWeightRows.confirm`).
            for peer in viaSocket { changedRows?.forget(peer) }
            turnMessages = (head, rowsHead, rowsFrames)
            wholeFrames = nil
            if sharedBroadcast && weightsInTurn && !viaSocket.isEmpty {
                turnTask = task
                let ready = viaSocket.filter { answeredLastStep.contains($0) }, late = viaSocket.filter { !answeredLastStep.contains($0) }
                turn.start(step: s, (ready + late).map { WeightsInTurn.Send(peer: $0, changedRows: holders.contains($0)) })
                gone += try sendNextInTurn(task: task)
            } else {
                let whole = viaSocket.filter { !holders.contains($0) }
                if !holders.isEmpty { gone += try broadcastWeights(changedRows: true, to: holders, task: task) }
                if !whole.isEmpty { gone += try broadcastWeights(changedRows: false, to: whole, task: task) }
            }
        case .sendWeightsWithState(let s, let e, let i, let w):
            changedRows?.forget(w.peer)
            let part = carriedRows(carried, perRow: task.carriedPerRow, rows: w.columns)
            let frames = Codec.encode(.weights(runID: runID, step: s, epoch: e, batch: i, resetState: false,
                                               parameters: Array(params), state: part))
            if let region = regions[w.peer] {
                if !(try frames[1].withUnsafeBytes { try send(frames[0], payload: $0, through: region, to: w.peer) }) { gone.append(w.peer) }
            } else {
                do { try socket.send(frames, to: w.peer) } catch let e as TransportError where e.unreachable { gone.append(w.peer) }
            }
        default:
            break
        }
        return gone
    }

    /// Sends the next worker's weights of the step's turn once the last one's are done (`WeightsInTurn`); returns
    /// the peers found gone.
    func sendNextInTurn(task: any TrainingTask) throws -> [PeerID] {
        var gone: [PeerID] = []
        while let next = turn.next(now: Self.now(), patience: inTurnPatience, isGone: { gone.contains($0) || !isInRun($0) }) {
            let unreachable = try sendTurnWeights(next)
            if unreachable.isEmpty { break }
            gone += unreachable
        }
        return gone
    }

    /// Sends one worker's weights of the step's turn; returns it when it is gone.
    private func sendTurnWeights(_ send: WeightsInTurn.Send) throws -> [PeerID] {
        try broadcastWeights(changedRows: send.changedRows, to: [send.peer], task: turnTask!)
    }

    /// Sends the step's weights (`turnMessages`) across the socket: the changed rows, or the whole parameters (the
    /// task's, unchanged until the step's update). Returns the peers found gone.
    private func broadcastWeights(changedRows: Bool, to peers: [PeerID], task: any TrainingTask) throws -> [PeerID] {
        if changedRows, let rowsHead = turnMessages.rows, let frames = turnMessages.rowsFrames {
            return try socket.broadcast(head: rowsHead, frames: frames, to: peers)
        }
        if wholeFrames == nil {
            wholeFrames = try PayloadFrames([UnsafeRawBufferPointer(UnsafeBufferPointer(start: task.parameters.pointer, count: task.parameterCount))])
        }
        return try socket.broadcast(head: turnMessages.whole, frames: wholeFrames!, to: peers)
    }

    /// One line: the parameter server's share of step time, i.e. the step time the slowest worker's compute
    /// does not account for (sending, transfer, summing, clipping and the optimizer), given the trainer's
    /// total step and update seconds.
    public func timingSummary(stepSeconds: Double, updateSeconds: Double) -> String {
        guard steps > 0, stepSeconds > 0 else { return "parameter server: no steps" }
        let ms = { (x: Double) in String(format: "%.2f ms", 1000 * x / Double(self.steps)) }
        let share = max(0, stepSeconds - workerComputeSeconds) / stepSeconds
        return String(format: "parameter server: %.1f%% of step time", 100 * share)
            + " (per step \(ms(stepSeconds)): slowest worker computes \(ms(workerComputeSeconds)); broadcast \(ms(broadcastSeconds)),"
            + " waiting \(ms(waitSeconds)), summing \(ms(reduceSeconds)), clip+update \(ms(updateSeconds))); \(trafficSummary())"
    }

    /// Tells every worker the run is over.
    public func stopAll(reason: String) {
        for p in peers { try? socket.send(Codec.encode(.stop(runID: runID, reason: reason)), to: p.peer) }
    }
}
