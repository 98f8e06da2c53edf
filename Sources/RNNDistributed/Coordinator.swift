import Foundation
import RNNCore
import RNNProtocol
import RNNText
import RNNTrain
import RNNTransport

/// A worker that joined the run.
public struct WorkerPeer {
    public let identity: [UInt8]
    public let hello: WorkerHello
    public let index: Int
    public var columns: [Int]
    public var label: String { "worker \(index) (\(hello.name) on \(hello.host), pid \(hello.pid))" }
}

public struct DistributedError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ d: String) { description = d }
    /// A wait was cut short by Ctrl-C / SIGTERM.
    public static let interrupted = DistributedError("interrupted")
}

/// The coordinator's side of synchronous data-parallel training, as a `GradientSource` for the reference
/// `Trainer`: for each step it sends the current parameters to every worker (one shared copy), waits for
/// every worker's Σ-loss gradient of its stream columns, and sums them in worker order. The trainer then
/// divides by the total token count, clips centrally and applies the optimizer, exactly as in one process.
public final class Coordinator: GradientSource {
    public let socket: ZMQSocket
    public let runID: UInt64
    public private(set) var peers: [WorkerPeer] = []
    let parameterCount: Int
    let stepTimeout: TimeInterval
    let log: (String) -> Void
    /// Checked while waiting; when it returns true the current wait ends with `DistributedError.interrupted`.
    public var shouldStop: () -> Bool = { false }
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

    public init(socket: ZMQSocket, runID: UInt64, parameterCount: Int, stepTimeout: TimeInterval,
                log: @escaping (String) -> Void) {
        self.socket = socket
        self.runID = runID
        self.parameterCount = parameterCount
        self.stepTimeout = stepTimeout
        self.log = log
    }

    func reject(_ why: String, from: String) {
        rejected[why, default: 0] += 1
        log("rejected a message from \(from): \(why)")
    }

    /// Waits until `count` workers have said hello (or `timeout` passes), assigns them stream columns and
    /// sends each its configuration and the training tokens.
    public func admitWorkers(count: Int, timeout: TimeInterval, trainer: Trainer) throws {
        let o = trainer.options
        guard count >= 1, count <= o.batchSize else {
            throw DistributedError("--expect-workers \(count) must be between 1 and --batch-size \(o.batchSize) (each worker owns at least one stream)")
        }
        let deadline = Date().addingTimeInterval(timeout)
        var hellos: [([UInt8], WorkerHello)] = []
        log("waiting for \(count) worker(s) (up to \(Int(timeout))s)")
        while hellos.count < count {
            if shouldStop() { throw DistributedError.interrupted }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                throw DistributedError("only \(hellos.count) of \(count) workers joined within \(Int(timeout))s; start them with `rnnlm worker --connect ENDPOINT`, or lower --expect-workers / raise --join-timeout")
            }
            guard let frames = try socket.receive(timeoutMs: Int(min(left, 1) * 1000)), frames.count >= 2 else { continue }
            let id = frames[0]
            do {
                let m = try Codec.decode(Array(frames.dropFirst()), runID: runID)
                guard case .hello(let h) = m else { reject("unexpected \(m.type) before the run started", from: "peer"); continue }
                if hellos.contains(where: { $0.0 == id }) { continue }
                hellos.append((id, h))
                log("worker \(hellos.count - 1) joined: \(h.name) on \(h.host), pid \(h.pid)")
            } catch {
                reject(String(describing: error), from: "a joining peer")
            }
        }
        let blocks = assignColumns(batch: o.batchSize, workers: count)
        peers = hellos.enumerated().map { i, p in WorkerPeer(identity: p.0, hello: p.1, index: i, columns: blocks[i]) }
        for p in peers {
            let a = WorkerAssignment(model: trainer.model.config, seed: o.seed, numSteps: o.numSteps, batchSize: o.batchSize,
                                     partition: o.partition, workerIndex: p.index, workers: count, columns: p.columns)
            let json = Array(try JSONEncoder().encode(a))
            try socket.send(Codec.encode(.welcome(runID: runID, config: json, tokens: trainer.data.train)), to: p.identity)
        }
        needsState = Set(peers.map(\.index))
    }

    public func gradient(model: LanguageModel, epoch: Int, index: Int, batch: Minibatch, reset: Bool, step: Int,
                         state: inout RecurrentState) throws -> LossSum {
        let t0 = DispatchTime.now().uptimeNanoseconds
        let params = UnsafeBufferPointer(start: model.parameters.pointer, count: model.parameterCount)
        let plain = Codec.weightsHead(runID: runID, step: UInt64(step), epoch: UInt32(epoch), batch: UInt32(index),
                                      resetState: reset, parameterCount: model.parameterCount)
        var broadcastTo: [[UInt8]] = []
        for p in peers {
            if !reset && needsState.contains(p.index) {
                let part = flatten(state.selecting(columns: p.columns))
                try socket.send(Codec.encode(.weights(runID: runID, step: UInt64(step), epoch: UInt32(epoch), batch: UInt32(index),
                                                      resetState: false, parameters: Array(params), state: part)), to: p.identity)
            } else {
                broadcastTo.append(p.identity)
            }
        }
        needsState.removeAll()
        if !broadcastTo.isEmpty {
            try socket.broadcast(head: plain, payload: UnsafeRawBufferPointer(params), to: broadcastTo)
        }
        let t1 = DispatchTime.now().uptimeNanoseconds
        let template = RecurrentState.zeros(model.config, batch: 1)
        let perStream = template.h.count + template.c.count
        var maxCompute: UInt64 = 0
        var gather = StepGather(step: UInt64(step), expected: Dictionary(uniqueKeysWithValues: peers.map { ($0.index, $0.columns.count * perStream) }))
        let deadline = Date().addingTimeInterval(stepTimeout)
        while !gather.isComplete {
            if shouldStop() { throw DistributedError.interrupted }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else {
                let who = gather.missing.map { peers[$0].label + " (streams \($0 < peers.count ? peers[$0].columns.description : "?"))" }
                throw DistributedError("step \(step): no gradient from \(who.joined(separator: ", ")) within \(Int(stepTimeout))s; is the worker alive?")
            }
            guard let frames = try socket.receive(timeoutMs: Int(min(left, 1) * 1000)), frames.count >= 2 else { continue }
            guard let peer = peers.first(where: { $0.identity == frames[0] }) else {
                // A worker arriving after the start: tell it so (joining mid-run comes with elastic training).
                if let m = try? Codec.decode(Array(frames.dropFirst()), runID: runID), case .hello = m {
                    try? socket.send(Codec.encode(.stop(runID: runID, reason: "this run has already started with \(peers.count) workers")), to: frames[0])
                }
                reject("message from an unknown peer", from: "unknown peer")
                continue
            }
            let message: Message
            do { message = try Codec.decode(Array(frames.dropFirst()), runID: runID, parameterCount: parameterCount) } catch {
                reject(String(describing: error), from: peer.label)
                continue
            }
            switch message {
            case .gradient(_, let s, let loss, let tokens, let g, let st, let nanos):
                switch gather.accept(worker: peer.index, step: s, .init(lossSum: loss, tokens: Int(tokens), gradient: g, state: st)) {
                case .accepted: maxCompute = max(maxCompute, nanos)
                case .staleStep(let old): staleDiscarded += 1; log("discarded a gradient for step \(old) from \(peer.label) (now at step \(step))")
                case let v: reject("gradient \(v)", from: peer.label)
                }
            case .heartbeat: break
            default: reject("unexpected \(message.type) during a step", from: peer.label)
            }
        }
        let t2 = DispatchTime.now().uptimeNanoseconds
        let loss = gather.sum(into: model.gradients)
        for p in peers {
            let part = unflatten(gather.received[p.index]!.state, like: RecurrentState.zeros(model.config, batch: p.columns.count))!
            state.assign(columns: p.columns, from: part)
        }
        let t3 = DispatchTime.now().uptimeNanoseconds
        broadcastSeconds += Double(t1 - t0) / 1e9
        waitSeconds += Double(t2 - t1) / 1e9
        reduceSeconds += Double(t3 - t2) / 1e9
        workerComputeSeconds += Double(maxCompute) / 1e9
        steps += 1
        return loss
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
            + " waiting \(ms(waitSeconds)), summing \(ms(reduceSeconds)), clip+update \(ms(updateSeconds)))"
    }

    /// Tells every worker the run is over.
    public func stopAll(reason: String) {
        for p in peers { try? socket.send(Codec.encode(.stop(runID: runID, reason: reason)), to: p.identity) }
    }
}
