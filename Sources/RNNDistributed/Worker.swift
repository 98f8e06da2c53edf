import Foundation
import RNNCore
import RNNProtocol
import RNNText
import RNNTrain
import RNNTransport

/// A worker process: joins the coordinator at `endpoint`, then for every weights message computes the
/// Σ-loss gradient of its stream columns' minibatch, carrying their hidden state, and sends it back.
/// Returns the coordinator's reason when told to stop. When it loses the coordinator (the connection drops, or
/// `timeout` seconds of silence) it keeps trying to rejoin for `rejoinGrace` seconds, so a coordinator
/// restarted with `--resume` on the same address gets its workers back; after that it gives up with an error.
/// `threads` > 1 splits the worker's streams across that many threads (`DataParallel`; keep BLAS at 1 thread).
/// `sharedMemoryDirectory` (given by `rnnlm train --workers N` to the workers it starts) offers the coordinator
/// to exchange payloads through shared-memory files in that folder.
public func runWorker(endpoint: String, name: String, curve: (serverKey: String, keys: CurveKeyPair)? = nil,
                      joinTimeout: TimeInterval, timeout: TimeInterval, rejoinGrace: TimeInterval = 60, threads: Int = 1,
                      sharedMemoryDirectory: String? = nil,
                      shouldStop: () -> Bool = { false }, log: (String) -> Void,
                      warn: (String) -> Void, beforeGradient: GradientHook? = nil, delayMilliseconds: Int = 0) throws -> String {
    let context = ZMQContext()
    let socket = try ZMQSocket(context, kind: .dealer)
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
        var welcome: (WorkerAssignment, [Int32], UInt64)?
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
            guard let frames = try socket.receive(timeoutMs: 250), let m = try? Codec.decode(frames) else { continue }
            switch m {
            case .welcome(let r, let config, let t):
                do { welcome = (try JSONDecoder().decode(WorkerAssignment.self, from: Data(config)), t, r) } catch {
                    throw DistributedError("the coordinator's configuration cannot be decoded (\(error)); are both the same rnnlm version?")
                }
            case .stop(_, let reason):
                throw DistributedError("the coordinator turned this worker away: \(reason)")
            default:
                continue
            }
        }
        let (assignment, tokens, runID) = welcome!
        if lostAt != nil { log("rejoined the coordinator at \(endpoint)") }
        switch try serve(socket: socket, monitor: monitor, assignment: assignment, tokens: tokens, runID: runID,
                         timeout: timeout, shouldStop: shouldStop, log: log, warn: warn, beforeGradient: beforeGradient,
                         delayMilliseconds: delayMilliseconds, threads: threads) {
        case .stopped(let reason):
            return reason
        case .lost(let at):
            lostAt = at
            warn("lost the coordinator at \(endpoint) \(at); trying to rejoin for up to \(Int(rejoinGrace))s")
            joinDeadline = Date().addingTimeInterval(rejoinGrace)
        }
    }
}

enum ServeOutcome { case stopped(String), lost(String) }

/// Called with a send function, the frames of the gradient about to be sent, its step and the run id, just
/// before sending (tests use it to interleave hostile traffic from an admitted worker).
public typealias GradientHook = (_ send: ([[UInt8]]) throws -> Void, _ gradient: [[UInt8]], _ step: UInt64, _ runID: UInt64) throws -> Void

/// Serves one coordinator session: weights in, gradients out, until stopped or the coordinator is lost.
func serve(socket: ZMQSocket, monitor: HandshakeMonitor, assignment: WorkerAssignment, tokens: [Int32], runID: UInt64,
           timeout: TimeInterval, shouldStop: () -> Bool, log: (String) -> Void, warn: (String) -> Void,
           beforeGradient: GradientHook?, delayMilliseconds: Int, threads: Int) throws -> ServeOutcome {
    var a = assignment
    if let bad = tokens.first(where: { $0 < 0 || Int($0) >= a.model.vocabSize }) {
        throw DistributedError("the coordinator sent token id \(bad), outside the vocabulary of \(a.model.vocabSize)")
    }
    guard a.vocabulary.count == a.model.vocabSize else {
        throw DistributedError("the coordinator sent a vocabulary of \(a.vocabulary.count) tokens for a model of \(a.model.vocabSize)")
    }
    guard !a.columns.isEmpty, a.columns.allSatisfy({ $0 >= 0 && $0 < a.batchSize }) else {
        throw DistributedError("the coordinator assigned invalid stream columns \(a.columns)")
    }
    let model = try LanguageModel(config: a.model)
    var region: SharedPayloadRegion?
    if let path = a.sharedMemory {
        let capacity = sharedPayloadCapacity(model: a.model, batchSize: a.batchSize, parameterCount: model.parameterCount)
        do { region = try SharedPayloadRegion(path: path, capacity: capacity, create: false) } catch {
            throw DistributedError("the coordinator offered shared memory this worker cannot use: \(error)")
        }
    }
    let parallel = threads > 1 ? DataParallel(model: model, threads: threads) : nil
    var state = RecurrentState.zeros(a.model, batch: a.columns.count)
    log("worker \(a.workerIndex) of \(a.workers): streams \(a.columns.first!)…\(a.columns.last!), \(model.parameterCount) parameters, \(tokens.count) tokens, vocabulary \(a.vocabulary.count)")
    var cachedEpoch = -1
    var batches: EpochBatches?
    var lastStep: UInt64 = 0
    var deadline = Date().addingTimeInterval(timeout)
    while true {
        if shouldStop() { return .stopped("interrupted") }
        _ = monitor.handshakeFailure()
        if monitor.disconnected { return .lost("after step \(lastStep) (connection dropped)") }
        guard let received = try socket.receive(timeoutMs: 500) else {
            if deadline.timeIntervalSinceNow < 0 { return .lost("after step \(lastStep) (no message for \(Int(timeout))s)") }
            continue
        }
        guard let frames = restoringSharedPayload(received, from: region, .toWorker) else {
            warn("ignored weights whose shared-memory payload was rewritten while read (the coordinator moved on)")
            continue
        }
        deadline = Date().addingTimeInterval(timeout)
        let m: Message
        do { m = try Codec.decode(frames, runID: runID, parameterCount: model.parameterCount) } catch {
            warn("ignored a bad message from the coordinator: \(error)")
            continue
        }
        switch m {
        case .weights(_, let step, let epoch, let index, let reset, let params, let st):
            params.withUnsafeBufferPointer { model.parameters.copy(from: $0) }
            if reset { state.reset() }
            if !st.isEmpty {
                guard let s = unflatten(st, like: state) else {
                    throw DistributedError("step \(step): the coordinator sent \(st.count) state values, this worker's streams need \(state.h.count + state.c.count)")
                }
                state = s
            }
            if Int(epoch) != cachedEpoch {
                var rng = RandomGenerator(seed: a.seed, stream: 1, index: UInt64(epoch))
                batches = EpochBatches.draw(a.partition, corpus: tokens, batch: a.batchSize, steps: a.numSteps, rng: &rng)
                cachedEpoch = Int(epoch)
            }
            guard let b = batches, Int(index) < b.count else {
                throw DistributedError("step \(step): minibatch \(index) of epoch \(epoch) does not exist here; coordinator and worker disagree about the data")
            }
            if delayMilliseconds > 0 { usleep(UInt32(delayMilliseconds) * 1000) }  // testing stragglers
            let t0 = DispatchTime.now().uptimeNanoseconds
            let mb = b[Int(index)].selecting(columns: a.columns)
            model.gradients.zero()
            let key = model.config.dropout > 0 ? DropoutKey(seed: a.seed, step: UInt64(step)) : nil
            let loss = parallel?.forwardBackward(inputs: mb.inputs, targets: mb.targets, steps: mb.steps, batch: mb.batch,
                                                 state: &state, dropout: key, rows: a.columns)
                ?? model.forwardBackward(inputs: mb.inputs, targets: mb.targets, steps: mb.steps, batch: mb.batch,
                                         state: &state, dropout: key, rows: a.columns)
            lastStep = step
            let nanos = DispatchTime.now().uptimeNanoseconds - t0
            let flat = flatten(state)
            if let r = region, beforeGradient == nil {
                // The payload goes straight from the gradient buffer into shared memory; only the head is sent.
                try flat.withUnsafeBytes { try r.write(.toCoordinator, [UnsafeRawBufferPointer(model.gradients.buffer), $0]) }
                try socket.send([Codec.flaggingSharedPayload(Codec.gradientHead(
                    runID: runID, step: step, lossSum: loss.sum, tokens: UInt32(loss.count), gradientCount: model.parameterCount,
                    stateCount: flat.count, computeNanos: nanos))])
            } else {
                let frames = Codec.encodeGradient(runID: runID, step: step, lossSum: loss.sum, tokens: UInt32(loss.count),
                                                  gradient: UnsafeBufferPointer(model.gradients.buffer), state: flat,
                                                  computeNanos: nanos)
                try beforeGradient?({ try socket.send($0) }, frames, step, runID)
                try socket.send(frames)
            }
        case .columns(_, _, let cols):
            guard cols.allSatisfy({ Int($0) < a.batchSize }) else {
                throw DistributedError("the coordinator assigned stream columns \(cols) outside 0..<\(a.batchSize)")
            }
            a.columns = cols.map(Int.init)
            state = RecurrentState.zeros(a.model, batch: a.columns.count)  // replaced by the next weights' state
            log("worker \(a.workerIndex): now owns \(a.columns.count) streams")
        case .stop(_, let reason):
            return .stopped(reason)
        default:
            continue
        }
    }
}
