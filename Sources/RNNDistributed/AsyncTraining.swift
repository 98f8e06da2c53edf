import Foundation
import RNNCore
import RNNProtocol
import RNNTrain
import RNNTransport

extension Coordinator {
    /// Asynchronous training: every worker walks the minibatches of its own stream columns epoch by epoch at its
    /// own pace. Each gradient is applied on arrival (scaled by its own token count, clipped centrally, optimizer
    /// on the coordinator) unless it was computed on weights more than `maxStaleness` versions old, in which case
    /// it is discarded and counted; either way the worker gets the newest weights and its next minibatch. An epoch
    /// is reported when every live worker has passed it; a lost worker's streams go on with the others. Not
    /// bit-reproducible (arrival order). The decisions are `CoordinatorMachine`'s (AsyncRun.swift); this driver
    /// feeds it what arrives and the time, and carries out its actions with the trainer.
    public func runAsync(trainer: Trainer, maxStaleness: Int) throws -> StalenessGate {
        let o = trainer.options
        let first = trainer.record.epoch
        let plan = AsyncPlan(maxStaleness: maxStaleness, version: UInt64(trainer.record.step), firstEpoch: first,
                             batchesPerEpoch: (0..<o.epochs).map { $0 < first ? 0 : trainer.epochBatches($0).count },
                             resetEveryBatch: o.partition == .random)
        var queue = try performCommon(machine!.handle(.startAsync(plan, now: Self.now())))[...]
        // Workers overlap epochs: an epoch's time runs from its first gradient to its report.
        var epochStart: [Int: Date] = [first: Date()]
        var lastProbe = Self.now()
        var finished = false
        while !finished {
            guard let action = queue.popFirst() else {
                if Self.now() - lastProbe >= probeInterval {
                    lastProbe = Self.now()
                    queue += try probeMissing()
                    if !queue.isEmpty { continue }
                }
                queue += try performCommon(try pump(timeoutMs: Int(probeInterval * 1000)))
                continue
            }
            var gone: [PeerID] = []
            switch action {
            case .broadcastWeights, .sendWeightsWithState:
                gone = try sendWeights(action, model: trainer.model, state: trainer.state)
            case .carryState(let columns, let values):
                guard let part = unflatten(values, like: RecurrentState.zeros(trainer.model.config, batch: columns.count)) else {
                    throw DistributedError("async: \(values.count) state values for streams \(columns)")
                }
                trainer.setState(columns: columns, from: part)
            case .applyGradient(let u):
                if epochStart[u.epoch] == nil { epochStart[u.epoch] = Date() }
                u.gradient.withUnsafeBufferPointer { trainer.model.gradients.copy(from: $0) }
                let lr = trainer.record.schedule.lr
                let norm = try trainer.applyGradient(u.loss)
                trainer.onStep?(StepInfo(step: trainer.record.step, epoch: u.epoch, index: u.index,
                                         batchesPerEpoch: plan.batchesPerEpoch[u.epoch] * peers.count, loss: u.loss,
                                         gradientNorm: norm, clipped: o.clip > 0 && norm > o.clip, lr: lr))
                queue += try performCommon(machine!.handle(.updateApplied(worker: u.worker, now: Self.now())))
            case .discardStale:
                staleDiscarded += 1
            case .epochComplete(let epoch, let loss):
                let seconds = Date().timeIntervalSince(epochStart.removeValue(forKey: epoch) ?? Date())
                try trainer.endEpoch(trainLoss: loss, tokensTrained: loss.count, seconds: seconds)
            case .runFinished:
                finished = true
            default:
                break
            }
            for peer in gone { queue += try performCommon(machine!.handle(.peerUnreachable(peer: peer, now: Self.now()))) }
        }
        return machine!.asyncRun!.gate
    }

    /// Async: minibatches the live workers have still to answer (see `CoordinatorMachine.asyncRemaining`).
    public var asyncRemaining: Int { machine?.asyncRemaining ?? 0 }

    /// Sends a weights action's parameters (and, for `.sendWeightsWithState`, the worker's streams of `state`),
    /// through shared memory to local workers and the socket to the others. Returns the peers found gone.
    private func sendWeights(_ action: CoordinatorMachine.Action, model: LanguageModel, state: RecurrentState) throws -> [PeerID] {
        let params = UnsafeBufferPointer(start: model.parameters.pointer, count: model.parameterCount)
        var gone: [PeerID] = []
        switch action {
        case .broadcastWeights(let s, let e, let i, let r, let to):
            let head = Codec.weightsHead(runID: runID, step: s, epoch: e, batch: i, resetState: r, parameterCount: model.parameterCount)
            var viaSocket: [PeerID] = []
            for w in to {
                guard let region = regions[w.peer] else { viaSocket.append(w.peer); continue }
                if !(try send(head, payload: UnsafeRawBufferPointer(params), through: region, to: w.peer)) { gone.append(w.peer) }
            }
            if !viaSocket.isEmpty { gone += try socket.broadcast(head: head, payload: UnsafeRawBufferPointer(params), to: viaSocket) }
        case .sendWeightsWithState(let s, let e, let i, let w):
            let frames = Codec.encode(.weights(runID: runID, step: s, epoch: e, batch: i, resetState: false, parameters: Array(params),
                                               state: flatten(state.selecting(columns: w.columns))))
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
}
