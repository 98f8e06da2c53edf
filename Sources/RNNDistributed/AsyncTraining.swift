import Foundation
import RNNCore
import RNNProtocol
import RNNTrain
import RNNTransport

extension Coordinator {
    /// Asynchronous training: every worker walks the minibatches of its own rows epoch by epoch at its
    /// own pace. Each gradient is applied on arrival (scaled by its own token count, clipped centrally, optimizer
    /// on the coordinator) unless it was computed on weights more than `maxStaleness` versions old, in which case
    /// it is discarded and counted; either way the worker gets the newest weights and its next minibatch. An epoch
    /// is reported when every live worker has passed it; a lost worker's streams go on with the others. Not
    /// bit-reproducible (arrival order). The decisions are `CoordinatorMachine`'s (AsyncRun.swift); this driver
    /// feeds it what arrives and the time, and carries out its actions with the trainer.
    ///
    /// Checkpoints (`--checkpoint-every`, `--checkpoint-seconds`, epoch ends, an interrupt) record as the epoch's
    /// position the minibatches every live worker has completed, and the loss so far; a resumed run (async or
    /// sync) starts every stream there, so at most the gap between the fastest and the slowest worker is trained
    /// again, from each stream's latest carried state (as when a lost worker's streams move: async is approximate).
    public func runAsync(trainer: Trainer, maxStaleness: Int) throws -> StalenessGate {
        let o = trainer.options, task = trainer.task
        if trainer.record.epoch < o.epochs, trainer.record.batchInEpoch > 0,
           trainer.record.batchInEpoch >= task.minibatchCount(epoch: trainer.record.epoch) {
            // A checkpoint taken after an epoch's last minibatch, before its end was recorded: close it, as sync does.
            try trainer.endEpoch(trainLoss: LossSum(sum: trainer.record.epochLoss, count: trainer.record.epochTokens),
                                 tokensTrained: 0, seconds: 0)
        }
        let first = trainer.record.epoch
        // A task either resets every row's carried values at each epoch's start only, or before every minibatch.
        let plan = AsyncPlan(maxStaleness: maxStaleness, version: UInt64(trainer.record.step), firstEpoch: first,
                             firstIndex: trainer.record.batchInEpoch,
                             firstEpochLoss: LossSum(sum: trainer.record.epochLoss, count: trainer.record.epochTokens),
                             batchesPerEpoch: (0..<o.epochs).map { $0 < first ? 0 : task.minibatchCount(epoch: $0) },
                             resetEveryBatch: task.resetsCarried(epoch: first, index: 1))
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
                gone = try sendWeights(action, task: task, carried: trainer.carried)
            case .reassign(let w):
                if !(try sendColumns(w)) { gone = [w.peer] }
            case .carryState(let rows, let values):
                guard values.count == rows.count * task.carriedPerRow else {
                    throw DistributedError("async: \(values.count) carried values for rows \(rows)")
                }
                trainer.setCarried(rows: rows, from: values)
            case .applyGradient(let u):
                if epochStart[u.epoch] == nil { epochStart[u.epoch] = Date() }
                task.zeroGradients()
                let support = task.gradientSupport(rows: u.rows)
                u.gradient.withUnsafeBufferPointer { task.gradients.add(compact: $0, on: support) }
                task.touchedRows = u.rows
                let lr = trainer.record.schedule.lr
                let norm = try trainer.applyGradient(u.loss)
                trainer.onStep?(StepInfo(step: trainer.record.step, epoch: u.epoch, index: u.index,
                                         batchesPerEpoch: plan.batchesPerEpoch[u.epoch] * peers.count, loss: u.loss,
                                         gradientNorm: norm, clipped: o.clip > 0 && norm > o.clip, lr: lr))
                queue += try performCommon(machine!.handle(.updateApplied(worker: u.worker, now: Self.now())))
                if let at = machine!.asyncCompleted, at.epoch == trainer.record.epoch {
                    trainer.setEpochPosition(batch: at.index, loss: at.loss)
                }
                try trainer.saveIfDue()
            case .discardStale:
                staleDiscarded += 1
            case .epochComplete(let epoch, let loss):
                let seconds = Date().timeIntervalSince(epochStart.removeValue(forKey: epoch) ?? Date())
                // The tokens/s of a resumed epoch count only what this run trained of it.
                let before = epoch == plan.firstEpoch ? plan.firstEpochLoss.count : 0
                try trainer.endEpoch(trainLoss: loss, tokensTrained: max(0, loss.count - before), seconds: seconds)
                if trainer.earlyStopReason != nil { finished = true }  // --early-stop; the workers are stopped after
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

}
