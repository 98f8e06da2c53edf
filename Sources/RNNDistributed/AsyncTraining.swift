import Foundation
import RNNCore
import RNNProtocol
import RNNText
import RNNTrain

extension Coordinator {
    /// Asynchronous training: every worker walks the minibatches of its own stream columns epoch by epoch at
    /// its own pace. Each gradient is applied on arrival (scaled by its own token count, clipped centrally,
    /// optimizer on the coordinator) unless it was computed on weights more than `maxStaleness` versions old,
    /// in which case it is discarded and counted; either way the worker gets the newest weights and its next
    /// minibatch. An epoch is reported when every worker has finished it. Not bit-reproducible (arrival order).
    public func runAsync(trainer: Trainer, maxStaleness: Int) throws -> StalenessGate {
        var gate = StalenessGate(maxStaleness: maxStaleness, version: UInt64(trainer.record.step))
        let epochs = trainer.options.epochs
        let task = trainer.task, perRow = task.carriedPerRow
        struct Cursor { var epoch: Int; var index: Int; var sentVersion: UInt64 }
        var cursors: [Int: Cursor] = [:]
        var batchesPerEpoch: [Int: Int] = [:]
        func count(_ e: Int) -> Int {
            if let c = batchesPerEpoch[e] { return c }
            let c = task.minibatchCount(epoch: e)
            batchesPerEpoch[e] = c
            return c
        }
        var epochLoss: [Int: LossSum] = [:]
        var epochStart: [Int: Date] = [:]
        var reported = trainer.record.epoch
        var finished = Set<Int>()

        func send(_ p: AdmittedWorker, _ c: Cursor, withState: Bool) throws {
            let params = Array(UnsafeBufferPointer(start: task.parameters.pointer, count: task.parameterCount))
            let reset = task.resetsCarried(epoch: c.epoch, index: c.index)
            let state = withState && !reset ? carriedRows(trainer.carried, perRow: perRow, rows: p.columns) : []
            try socket.send(Codec.encode(.weights(runID: runID, step: gate.version, epoch: UInt32(c.epoch), batch: UInt32(c.index),
                                                  resetState: reset, parameters: params, state: state)), to: p.peer)
        }

        let startEpoch = trainer.record.epoch
        guard startEpoch < epochs else { return gate }
        epochStart[startEpoch] = Date()
        for p in peers {
            let c = Cursor(epoch: startEpoch, index: 0, sentVersion: gate.version)
            cursors[p.index] = c
            try send(p, c, withState: false)
        }
        var lastHeard = Date()
        while finished.count < peers.count {
            if shouldStop() { throw DistributedError.interrupted }
            guard let frames = try socket.receive(timeoutMs: 1000), frames.count >= 2 else {
                if Date().timeIntervalSince(lastHeard) > stepTimeout {
                    throw DistributedError("async: no gradient from any worker for \(Int(stepTimeout))s; are the workers alive?")
                }
                continue
            }
            guard let peer = peers.first(where: { $0.peer == frames[0] }) else {
                reject("message from an unknown peer", from: "unknown peer")
                continue
            }
            let message: Message
            do { message = try Codec.decode(Array(frames.dropFirst()), runID: runID, parameterCount: parameterCount) } catch {
                reject(String(describing: error), from: peer.label)
                continue
            }
            guard case .gradient(_, let v, let lossSum, let tokens, let g, let st, _) = message else {
                if case .heartbeat = message { continue }
                reject("unexpected \(message.type) in async mode", from: peer.label)
                continue
            }
            guard var c = cursors[peer.index], v == c.sentVersion, !finished.contains(peer.index) else {
                reject("gradient for version \(v), not the one last sent", from: peer.label)
                continue
            }
            guard st.count == peer.columns.count * perRow else {
                reject("gradient carries \(st.count) state values, expected \(peer.columns.count * perRow)", from: peer.label)
                continue
            }
            lastHeard = Date()
            trainer.setCarried(rows: peer.columns, from: st)
            switch gate.admit(computedAt: v) {
            case .apply:
                g.withUnsafeBufferPointer { task.gradients.copy(from: $0) }
                let loss = LossSum(sum: lossSum, count: Int(tokens))
                let lr = trainer.record.schedule.lr
                let norm = try trainer.applyGradient(loss)
                trainer.onStep?(StepInfo(step: trainer.record.step, epoch: c.epoch, index: c.index, batchesPerEpoch: count(c.epoch) * peers.count,
                                         loss: loss, gradientNorm: norm, clipped: trainer.options.clip > 0 && norm > trainer.options.clip, lr: lr))
                epochLoss[c.epoch, default: LossSum()] += loss
            case .discard(let staleness):
                staleDiscarded += 1
                log("discarded a gradient from \(peer.label): computed on version \(v), \(staleness) updates old (--max-staleness \(maxStaleness))")
            case .fromTheFuture:
                reject("gradient for future version \(v)", from: peer.label)
                continue
            }
            // Advance this worker; report every epoch all workers have finished.
            c.index += 1
            if c.index >= count(c.epoch) {
                c.epoch += 1
                c.index = 0
                if epochStart[c.epoch] == nil { epochStart[c.epoch] = Date() }
            }
            cursors[peer.index] = c
            while reported < epochs && cursors.values.allSatisfy({ $0.epoch > reported }) {
                let loss = epochLoss.removeValue(forKey: reported) ?? LossSum()
                let seconds = Date().timeIntervalSince(epochStart[reported] ?? Date())
                try trainer.endEpoch(trainLoss: loss, tokensTrained: loss.count, seconds: seconds)
                reported += 1
            }
            if c.epoch >= epochs {
                finished.insert(peer.index)
                try? socket.send(Codec.encode(.stop(runID: runID, reason: "training finished")), to: peer.peer)
            } else {
                c.sentVersion = gate.version
                cursors[peer.index] = c
                try send(peer, c, withState: false)
            }
        }
        return gate
    }
}
