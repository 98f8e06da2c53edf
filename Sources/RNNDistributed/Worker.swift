import Foundation
import RNNCore
import RNNProtocol
import RNNText
import RNNTrain
import RNNTransport

/// A worker process: joins the coordinator at `endpoint`, rebuilds the run's task from the welcome, then for
/// every weights message computes the Σ-loss gradient of its rows of the minibatch, carrying their values
/// (a language model's hidden state), and sends it back with them.
/// Returns the coordinator's reason when told to stop. When it loses the coordinator (the connection drops, or
/// `timeout` seconds of silence) it keeps trying to rejoin for `rejoinGrace` seconds, so a coordinator
/// restarted with `--resume` on the same address gets its workers back; after that it gives up with an error.
/// `threads` > 1 splits the worker's rows across that many threads (`DataParallel`; keep BLAS at 1 thread).
/// `sharedMemoryDirectory` (given by `rnnlm train --workers N` to the workers it starts) offers the coordinator
/// to exchange payloads through shared-memory files in that folder.
public func runWorker(endpoint: String, name: String, curve: (serverKey: String, keys: CurveKeyPair)? = nil,
                      joinTimeout: TimeInterval, timeout: TimeInterval, rejoinGrace: TimeInterval = 60, threads: Int = 1,
                      sharedMemoryDirectory: String? = nil, context: ZMQContext? = nil,
                      shouldStop: () -> Bool = { false }, log: (String) -> Void,
                      warn: (String) -> Void, beforeGradient: GradientHook? = nil, delayMilliseconds: Int = 0) throws -> String {
    let context = context ?? ZMQContext()
    let socket = try ZMQSocket(context, kind: .dealer, heartbeatTimeout: workerHeartbeatTimeout(timeout))
    if let c = curve { try socket.makeCurveClient(serverKey: c.serverKey, keys: c.keys) }
    let monitor = try socket.monitorHandshakes()
    try socket.connect(endpoint)
    let hello = Codec.encode(.hello(WorkerHello(name: name, host: ProcessInfo.processInfo.hostName, pid: getpid(),
                                                sharedMemory: sharedMemoryDirectory)))
    var joinDeadline = Date().addingTimeInterval(joinTimeout)
    var lostAt: String?
    while true {
        // Join (or rejoin): hello until a welcome arrives.
        try socket.send(hello)
        var lastHello = Date()
        var welcome: (WorkerAssignment, [UInt8], UInt64)?
        while welcome == nil {
            if shouldStop() { return "interrupted" }
            if let failure = monitor.handshakeFailure() {
                let hint = failure.contains("refused this worker's key") ? ""
                    : curve == nil ? ": does the coordinator require CURVE keys? Pass --curve-server-key and --curve-key"
                    : ": is --curve-server-key the coordinator's public key, and does the coordinator use CURVE?"
                throw DistributedError("cannot join the coordinator at \(endpoint): \(failure)\(hint)")
            }
            guard joinDeadline.timeIntervalSinceNow > 0 else {
                if let lost = lostAt {
                    throw DistributedError("lost the coordinator at \(endpoint) \(lost), and none answered within \(Int(rejoinGrace))s; exiting (restart the coordinator with --resume, then the workers)")
                }
                throw DistributedError("no answer from the coordinator at \(endpoint) within \(Int(joinTimeout))s; is it running and reachable\(curve == nil ? " (and does it require CURVE keys?)" : ", and is --curve-server-key its public key?")")
            }
            if Date().timeIntervalSince(lastHello) > 2 { try socket.send(hello); lastHello = Date() }
            guard let frames = try socket.receive(timeoutMs: 250) else { continue }
            let m: Message
            do { m = try Codec.decode(frames) } catch {
                if case .badVersion = error { throw DistributedError("cannot join the coordinator at \(endpoint): \(error)") }
                continue
            }
            switch m {
            case .welcome(let r, let assignment, let task):
                do { welcome = (try JSONDecoder().decode(WorkerAssignment.self, from: Data(assignment)), task, r) } catch {
                    throw DistributedError("the coordinator's configuration cannot be decoded (\(error)); are both the same rnnlm version?")
                }
            case .stop(_, let reason) where reason == Message.takenOutReason:
                continue  // an answer to what this worker sent before it was taken out; the hello is on its way
            case .stop(_, let reason):
                throw DistributedError("the coordinator turned this worker away: \(reason)")
            default:
                continue
            }
        }
        let (assignment, description, runID) = welcome!
        if lostAt != nil { log("rejoined the coordinator at \(endpoint)") }
        switch try serve(socket: socket, monitor: monitor, assignment: assignment, description: description, runID: runID,
                         timeout: timeout, shouldStop: shouldStop, log: log, warn: warn, beforeGradient: beforeGradient,
                         delayMilliseconds: delayMilliseconds, threads: threads) {
        case .stopped(let reason):
            return reason
        case .lost(let at):
            lostAt = at
            warn("lost the coordinator at \(endpoint) \(at); trying to rejoin for up to \(Int(rejoinGrace))s")
            joinDeadline = Date().addingTimeInterval(rejoinGrace)
        case .takenOut(let at):
            // The coordinator is there but declared this worker lost (frozen or cut off past its heartbeat
            // timeout): say hello again and come back as a new member with fresh weights and rows.
            lostAt = at
            warn("the coordinator at \(endpoint) took this worker out of the run \(at) (silent past its heartbeat timeout?); rejoining as a new member")
            joinDeadline = Date().addingTimeInterval(rejoinGrace)
        }
    }
}

/// Seconds without a whole message from the coordinator after which the worker's socket drops the connection
/// (ZMTP heartbeats). libzmq's heartbeat timer is reset only by a message that arrived whole, so a weights message
/// that takes longer than this to cross a slow link dropped a healthy connection at the fixed 10 s it used to be.
/// The worker's own `timeout` (seconds of silence, default 900) is the authority on a silent coordinator; a
/// coordinator that exits closes the connection, which is noticed at once whatever this is.
public func workerHeartbeatTimeout(_ timeout: TimeInterval) -> Double { min(max(10, timeout), 1_000_000) }

/// How a session ended: stopped by the coordinator, the coordinator lost, or this worker taken out of a run
/// that goes on.
enum ServeOutcome { case stopped(String), lost(String), takenOut(String) }

/// Called with a send function, the frames of the gradient about to be sent, its step and the run id, just
/// before sending (tests use it to interleave hostile traffic from an admitted worker).
public typealias GradientHook = (_ send: ([[UInt8]]) throws -> Void, _ gradient: [[UInt8]], _ step: UInt64, _ runID: UInt64) throws -> Void

/// Decodes a weights message. Parameters flagged as in the run's shared weights region (a synchronous step) stay
/// where they lie: the returned read is what the caller computes from, and checks with `isUnchanged` once done.
/// Any other payload is copied straight into `params`, read in place from the worker's own shared-memory `slot`
/// when the head is flagged so, else from the socket frame; weights that carry changed rows only are applied to
/// `params`, which hold the weights of step `held` (nil: of no known step). Nil when a shared-memory payload was
/// being rewritten (the coordinator moved on).
private func decodeWeights(_ frames: [[UInt8]], slot: SharedPayloadRegion?, shared: SharedPayloadRegion?, runID: UInt64,
                           into params: UnsafeMutableBufferPointer<Float>, sparseRows: [SparseRowTensor], holding held: UInt64?) throws
    -> (fields: Codec.WeightsFields, inPlace: SharedPayloadRegion.InPlaceRead?)? {
    let head = frames[0], h = Codec.clearingSharedPayloadFlag(head)
    let flag = head.count > Codec.sharedPayloadFlagOffset ? head[Codec.sharedPayloadFlagOffset] : 0
    if flag == 0 {
        guard frames.count == 2 else { throw ProtocolError.frameCount(frames.count) }
        return (try frames[1].withUnsafeBytes {
            try Codec.decodeWeights(head: h, payload: $0, runID: runID, into: params, sparseRows: sparseRows, holding: held)
        }, nil)
    }
    // Only a lone head may carry a flag; anything else with the reserved byte set is malformed.
    guard Codec.isSharedPayloadHead(frames) || Codec.isSharedWeightsHead(frames) else { throw ProtocolError.reservedNonZero(flag) }
    guard let from = flag == Codec.sharedWeightsFlag ? shared : slot else {
        throw DistributedError("weights flagged as in shared memory, but this worker was offered none")
    }
    if flag == Codec.sharedWeightsFlag {
        guard let read = from.beginRead(.toWorker) else { return nil }
        return (try Codec.decodeWeightsInPlace(head: h, payload: read.payload, runID: runID, parameterCount: params.count), read)
    }
    return try from.withPayload(.toWorker) { (try Codec.decodeWeights(head: h, payload: $0, runID: runID, into: params), nil) }
}

/// What to do when a shared-memory region cannot be opened.
private let sharedMemoryHint = "; a local worker opens the coordinator's /proc/PID/fd/N files, so it must run as the same user"
    + " on the same host; or start the run with RNNLM_SHARED_MEMORY=0 to exchange payloads over the socket"

/// Serves one coordinator session: weights in, gradients out, until stopped or the coordinator is lost.
func serve(socket: ZMQSocket, monitor: HandshakeMonitor, assignment: WorkerAssignment, description: [UInt8], runID: UInt64,
           timeout: TimeInterval, shouldStop: () -> Bool, log: (String) -> Void, warn: (String) -> Void,
           beforeGradient: GradientHook?, delayMilliseconds: Int, threads: Int) throws -> ServeOutcome {
    var a = assignment
    let task: any TrainingTask
    do { task = try TaskRegistry.task(kind: a.task, description: description) } catch {
        throw DistributedError("the coordinator's task cannot be rebuilt here: \(error)")
    }
    let B = task.rowsPerMinibatch, perRow = task.carriedPerRow
    guard !a.rows.isEmpty, a.rows.allSatisfy({ $0 >= 0 && $0 < B }), a.rows == a.rows.sorted() else {
        throw DistributedError("the coordinator assigned invalid rows \(a.rows) (a minibatch has \(B))")
    }
    var region: SharedPayloadRegion?
    if let path = a.sharedMemory {
        let capacity = sharedPayloadCapacity(parameterCount: task.parameterCount, carriedValues: B * perRow,
                                             rowWords: GradientSupport.maxWireRows(task.sparseRows))
        do { region = try SharedPayloadRegion(path: path, capacity: capacity, create: false) } catch {
            throw DistributedError("the coordinator offered shared memory this worker cannot use: \(error)\(sharedMemoryHint)")
        }
    }
    var sharedWeights: SharedPayloadRegion?
    if let path = a.sharedWeights {
        do { sharedWeights = try SharedPayloadRegion(path: path, capacity: 4 * task.parameterCount, create: false,
                                                         readOnly: true) } catch {
            throw DistributedError("the coordinator offered shared weights this worker cannot use: \(error)\(sharedMemoryHint)")
        }
    }
    let parallel = threads > 1 ? DataParallel(task: task, threads: threads) : nil
    var carried = [Float](repeating: 0, count: a.rows.count * perRow)
    // --gradient-compression bf16: what rounding to bfloat16 lost, added to the next gradient (error feedback).
    let residual = a.gradientEncoding == .bfloat16 ? FloatBuffer(count: task.parameterCount) : nil
    for line in task.summary { log("worker \(a.workerIndex): \(line)") }
    log("worker \(a.workerIndex): rows \(rowRanges(a.rows)) of \(B) (\(a.rows.count)), \(task.parameterCount) parameters")
    var lastStep: UInt64 = 0
    // The step whose weights the task's own parameters hold (nil: none known, e.g. after computing from the shared
    // weights region): weights that carry changed rows only apply to that step's.
    var heldStep: UInt64?
    var deadline = Date().addingTimeInterval(timeout)
    while true {
        if shouldStop() { return .stopped("interrupted") }
        _ = monitor.handshakeFailure()
        if monitor.disconnected { return .lost("after step \(lastStep) (connection dropped)") }
        guard let received = try socket.receive(timeoutMs: 500) else {
            if deadline.timeIntervalSinceNow < 0 { return .lost("after step \(lastStep) (no message for \(Int(timeout))s)") }
            continue
        }
        deadline = Date().addingTimeInterval(timeout)  // the coordinator is there
        if let head = received.first, let h = try? Codec.header(Codec.clearingSharedPayloadFlag(head)), h.type == .weights {
            if a.acknowledgeWeights == true, head[Codec.sharedPayloadFlagOffset] == 0 {
                // `--broadcast in-turn`: the coordinator sends the next worker's weights once these have arrived,
                // whether or not they can be used here (a worker that ignores them must not hold the others up).
                try socket.send(Codec.encode(.weightsReceived(runID: runID, step: h.step)))
            }
            // Weights, the step's largest message, are used where they lie (the run's shared weights region, a
            // synchronous step) or go straight into the task's parameters (from the worker's own shared-memory slot
            // or the socket frame).
            let fields: Codec.WeightsFields, inPlace: SharedPayloadRegion.InPlaceRead?
            do {
                let held = heldStep
                heldStep = nil  // until the parameters are known to hold a step's weights again
                guard let f = try decodeWeights(received, slot: region, shared: sharedWeights, runID: runID,
                                                into: task.parameters.buffer, sparseRows: task.sparseRows, holding: held) else {
                    warn("ignored weights whose shared-memory payload was rewritten while read (the coordinator moved on)")
                    continue
                }
                (fields, inPlace) = f
                if inPlace == nil { heldStep = fields.step }
            } catch {
                warn("ignored a bad message from the coordinator: \(error)")
                continue
            }
            let step = fields.step, epoch = fields.epoch, index = fields.batch, st = fields.state
            // A message that fails these checks is rejected (and counted) without touching this worker's carried
            // values (its parameters are rewritten by every weights message before any use).
            guard st.isEmpty || st.count == carried.count else {
                warn("ignored weights for step \(step): \(st.count) carried values, this worker's \(a.rows.count) rows need \(carried.count)")
                continue
            }
            guard step <= UInt64(Int.max), Int(index) < task.minibatchCount(epoch: Int(epoch)) else {
                warn("ignored weights for step \(step): minibatch \(index) of epoch \(epoch) does not exist here; do coordinator and worker disagree about the data?")
                continue
            }
            let carriedBefore = carried
            if fields.resetState { for i in carried.indices { carried[i] = 0 } }
            if !st.isEmpty { carried = st }
            if delayMilliseconds > 0 { usleep(UInt32(delayMilliseconds) * 1000) }  // testing stragglers
            let outbox = GradientOutbox(slot: beforeGradient == nil ? region : nil, residual: residual)
            let t0 = DispatchTime.now().uptimeNanoseconds
            let pending = outbox.accumulate(into: task.gradients) {
                let compute = {
                    task.zeroGradients()
                    return parallel?.accumulateGradient(epoch: Int(epoch), index: Int(index), rows: a.rows, step: Int(step), carried: &carried)
                        ?? task.accumulateGradient(epoch: Int(epoch), index: Int(index), rows: a.rows, step: Int(step), carried: &carried)
                }
                // A synchronous step's parameters are read where the coordinator wrote them, by every thread.
                guard let inPlace else { return compute() }
                let p = UnsafeMutablePointer(mutating: inPlace.payload.baseAddress!.assumingMemoryBound(to: Float.self))
                return task.parameters.borrowing(p) { compute() }
            }
            let nanos = DispatchTime.now().uptimeNanoseconds - t0
            if let inPlace, !sharedWeights!.isUnchanged(inPlace) {
                // The coordinator rewrote the weights while this worker computed from them (it went on without
                // this worker): the gradient may come from torn weights, and is never sent.
                outbox.discard(pending)
                carried = carriedBefore
                warn("ignored weights for step \(step) whose shared-memory payload was rewritten while this worker computed (the coordinator moved on)")
                continue
            }
            lastStep = step
            // Only the gradient's support travels: a row-sparse table's touched rows, not the whole table.
            let frames = try outbox.message(pending, gradients: task.gradients, support: task.gradientSupport, carried: carried,
                                            runID: runID, step: step, computeNanos: nanos)
            try beforeGradient?({ try socket.send($0) }, frames, step, runID)
            try socket.send(frames)
            continue
        }
        guard let frames = restoringSharedPayload(received, from: region, .toWorker) else {
            warn("ignored a message whose shared-memory payload was rewritten while read (the coordinator moved on)")
            continue
        }
        let m: Message
        do { m = try Codec.decode(frames, runID: runID, parameterCount: task.parameterCount) } catch {
            warn("ignored a bad message from the coordinator: \(error)")
            continue
        }
        switch m {
        case .weights:
            continue  // decoded above, in place
        case .columns(_, _, let cols):
            guard !cols.isEmpty, cols.allSatisfy({ $0 >= 0 && Int($0) < B }), Set(cols).count == cols.count else {
                warn("ignored an assignment of rows \(cols.prefix(8)) (a minibatch has rows 0..<\(B), each owned once)")
                continue
            }
            a.rows = cols.map(Int.init).sorted()
            carried = [Float](repeating: 0, count: a.rows.count * perRow)  // replaced by the next weights' values
            log("worker \(a.workerIndex): now owns \(a.rows.count) rows")
        case .stop(_, let reason) where reason == Message.takenOutReason:
            return .takenOut("after step \(lastStep)")
        case .stop(_, let reason):
            return .stopped(reason)
        case .heartbeat:
            continue
        case .hello, .welcome, .gradient, .weightsReceived:
            warn("ignored a \(m.type) message from the coordinator during the run")
        }
    }
}

/// Sorted row indices as ranges: [0, 1, 2, 5, 7, 8] → "0…2, 5, 7…8".
func rowRanges(_ rows: [Int]) -> String {
    var parts: [String] = [], i = 0
    while i < rows.count {
        var j = i
        while j + 1 < rows.count && rows[j + 1] == rows[j] + 1 { j += 1 }
        parts.append(i == j ? "\(rows[i])" : "\(rows[i])…\(rows[j])")
        i = j + 1
    }
    return parts.joined(separator: ", ")
}
