import RNNCore
import RNNProtocol
import Testing

/// Asynchronous training's decisions, driven by hand: gradients as workers would send them, the driver's
/// "update applied" fed back, time as plain numbers.
@Suite("Coordinator state machine, asynchronous training (no sockets, injected time)")
struct AsyncRunTests {
    typealias Action = CoordinatorMachine.Action
    let run: UInt64 = 0xA5C
    let a: PeerID = [1], b: PeerID = [2], c: PeerID = [3]
    let params = 3, perStream = 2

    func hello(_ name: String) -> [[UInt8]] { Codec.encode(.hello(WorkerHello(name: name, host: "host-\(name)", pid: 7))) }

    func gradient(version: UInt64, _ g: [Float] = [1, 1, 1], streams: Int) -> [[UInt8]] {
        Codec.encode(.gradient(runID: run, step: AsyncRun.wireStep(version: version), lossSum: 2, tokens: 10, gradient: g,
                               state: [Float](repeating: 0.5, count: streams * perStream), computeNanos: 1000))
    }

    /// Admitted workers `peers` over `batch` streams, async started with `batches` minibatches per epoch.
    func started(_ peers: [PeerID], batch: Int, batches: [Int], maxStaleness: Int = 8, random: Bool = false)
        -> (CoordinatorMachine, [Action]) {
        var m = CoordinatorMachine(runID: run, expectedWorkers: peers.count, batchSize: batch, parameterCount: params,
                                   stateValuesPerStream: perStream, joinTimeout: 30, stepTimeout: 5, now: 0)
        for (i, p) in peers.enumerated() { _ = m.handle(.received(peer: p, frames: hello("w\(i)"), now: 0)) }
        let plan = AsyncPlan(maxStaleness: maxStaleness, version: 0, firstEpoch: 0, batchesPerEpoch: batches, resetEveryBatch: random)
        let actions = m.handle(.startAsync(plan, now: 1))
        return (m, actions)
    }

    /// A worker's gradient for the version it was last sent; an applied one is reported back as the driver would.
    func answer(_ m: inout CoordinatorMachine, _ peer: PeerID, now: Double = 2) -> [Action] {
        let i = m.workers.first { $0.peer == peer }!.index
        let cursor = m.asyncRun!.cursors[i]!
        var actions = m.handle(.received(peer: peer, frames: gradient(version: cursor.sentVersion!, streams: cursor.sentColumns.count), now: now))
        if actions.contains(where: { if case .applyGradient = $0 { return true }; return false }) {
            actions += m.handle(.updateApplied(worker: i, now: now))
        }
        return actions
    }

    func logs(_ actions: [Action]) -> [String] { actions.compactMap { if case .log(let l) = $0 { return l }; return nil } }

    @Test("start: every worker gets the weights (version 0) and minibatch 0 of the first epoch, from a zero state")
    func startBroadcasts() {
        let (m, actions) = started([a, b], batch: 8, batches: [3, 3])
        #expect(m.phase == .running)
        #expect(actions == [.broadcastWeights(step: 1, epoch: 0, index: 0, reset: true, to: m.workers)])
        #expect(m.awaited == [0, 1])
        #expect(m.asyncRemaining == 12, "2 workers × 2 epochs × 3 minibatches")
    }

    @Test("a checkpoint's position is the minibatches every live worker completed; a run resumed there starts every stream at it")
    func completedPositionAndResumingThere() {
        var (m, _) = started([a, b], batch: 8, batches: [4, 4])
        #expect(m.asyncCompleted! == (0, 0, LossSum()))
        _ = answer(&m, a); _ = answer(&m, a); _ = answer(&m, b)
        // a has completed 2 minibatches, b 1: a checkpoint now resumes at minibatch 1, with the 3 gradients' loss.
        #expect(m.asyncCompleted! == (0, 1, LossSum(sum: 6, count: 30)))
        _ = answer(&m, a); _ = answer(&m, a); _ = answer(&m, b)
        // a has passed epoch 1 (0-based 0); b is at minibatch 2 of it.
        #expect(m.asyncCompleted!.epoch == 0 && m.asyncCompleted!.index == 2)

        // Resumed at minibatch 2 of epoch 0, sequentially partitioned: each worker gets its streams' carried state.
        var r = CoordinatorMachine(runID: run, expectedWorkers: 2, batchSize: 8, parameterCount: params,
                                   stateValuesPerStream: perStream, joinTimeout: 30, stepTimeout: 5, now: 0)
        for (i, p) in [a, b].enumerated() { _ = r.handle(.received(peer: p, frames: hello("w\(i)"), now: 0)) }
        let plan = AsyncPlan(maxStaleness: 8, version: 9, firstEpoch: 0, firstIndex: 2, firstEpochLoss: LossSum(sum: 12, count: 60),
                             batchesPerEpoch: [4, 4], resetEveryBatch: false)
        let start = r.handle(.startAsync(plan, now: 1))
        #expect(start == r.workers.map { .sendWeightsWithState(step: 10, epoch: 0, index: 2, to: $0) })
        #expect(r.asyncRemaining == 2 * (2 + 4), "each worker answers minibatches 2 and 3, then the second epoch")
        #expect(r.asyncCompleted! == (0, 2, LossSum(sum: 12, count: 60)), "the epoch's loss so far carries over")
        // Randomly partitioned, every minibatch starts from zero: one broadcast at the resumed minibatch.
        var q = CoordinatorMachine(runID: run, expectedWorkers: 2, batchSize: 8, parameterCount: params,
                                   stateValuesPerStream: perStream, joinTimeout: 30, stepTimeout: 5, now: 0)
        for (i, p) in [a, b].enumerated() { _ = q.handle(.received(peer: p, frames: hello("w\(i)"), now: 0)) }
        var randomPlan = plan
        randomPlan.resetEveryBatch = true
        #expect(q.handle(.startAsync(randomPlan, now: 1)) == [.broadcastWeights(step: 10, epoch: 0, index: 2, reset: true, to: q.workers)])
        // A position past the epoch's minibatches (other data) fails the run, saying why.
        var bad = CoordinatorMachine(runID: run, expectedWorkers: 1, batchSize: 8, parameterCount: params,
                                     stateValuesPerStream: perStream, joinTimeout: 30, stepTimeout: 5, now: 0)
        _ = bad.handle(.received(peer: a, frames: hello("w0"), now: 0))
        var past = plan
        past.firstIndex = 4
        let failed = bad.handle(.startAsync(past, now: 1))
        #expect(bad.phase == .failed && "\(failed)".contains("resumes at minibatch 5 of epoch 1, which has 4"), "\(failed)")
    }

    @Test("a gradient under step 0, which no asynchronous run sends, is rejected, finite or not, while the worker's update is applied")
    func stepZeroIsRejected() {
        var (m, _) = started([a, b], batch: 8, batches: [3, 3])
        let applying = m.handle(.received(peer: a, frames: gradient(version: 0, streams: 4), now: 2))
        #expect(applying.contains { if case .applyGradient = $0 { return true }; return false })
        let cursor = m.asyncRun!.cursors[0]
        for g: [Float] in [[1, .nan, 1], [1, 1, 1]] {
            let frames = Codec.encode(.gradient(runID: run, step: 0, lossSum: 2, tokens: 10, gradient: g,
                                                state: [Float](repeating: 0.5, count: 4 * perStream), computeNanos: 1000))
            let actions = m.handle(.received(peer: a, frames: frames, now: 3))
            #expect(!logs(actions).contains { $0.contains("skipped") }, "\(g): \(actions)")
            #expect(m.asyncRun!.cursors[0] == cursor, "\(g): the worker's place moved")
        }
        #expect(m.rejections.count == 2, "\(m.rejections)")
        #expect(m.handle(.updateApplied(worker: 0, now: 4)) == [.broadcastWeights(step: 2, epoch: 0, index: 1, reset: false, to: [m.workers[0]])])
    }

    @Test("a fresh gradient is applied, then the worker gets the next version; a stale one is discarded with its staleness")
    func appliedOrDiscardedByStaleness() {
        var (m, _) = started([a, b], batch: 8, batches: [3, 3], maxStaleness: 0)
        let first = m.handle(.received(peer: a, frames: gradient(version: 0, [4, 5, 6], streams: 4), now: 2))
        #expect(first == [.carryState(columns: [0, 1, 2, 3], state: [Float](repeating: 0.5, count: 8)),
                          .applyGradient(AsyncGradient(worker: 0, epoch: 0, index: 0, staleness: 0, loss: LossSum(sum: 2, count: 10),
                                                       gradient: [4, 5, 6]))])
        #expect(m.asyncRemaining == 11, "the minibatch being applied no longer counts")
        // The weights go out only once the driver has applied the update (version 1).
        #expect(m.handle(.updateApplied(worker: 0, now: 2)) == [.broadcastWeights(step: 2, epoch: 0, index: 1, reset: false, to: [m.workers[0]])])
        // Worker 1 computed on version 0: one update old, over the bound 0.
        let late = m.handle(.received(peer: b, frames: gradient(version: 0, streams: 4), now: 3))
        #expect(late.first == .carryState(columns: [4, 5, 6, 7], state: [Float](repeating: 0.5, count: 8)), "its streams moved on anyway")
        #expect(late.contains(.discardStale(worker: 1, staleness: 1)))
        #expect(logs(late).contains { $0.contains("discarded a gradient from worker 1") && $0.contains("1 updates old (--max-staleness 0)") })
        #expect(late.last == .broadcastWeights(step: 2, epoch: 0, index: 1, reset: false, to: [m.workers[1]]))
        #expect(m.asyncRun!.gate.applied == 1 && m.asyncRun!.gate.discarded == 1 && m.staleDiscarded == 1)
        // A gradient for a version it was not sent, or a second one for the same minibatch, is rejected.
        _ = m.handle(.received(peer: a, frames: gradient(version: 0, streams: 4), now: 4))
        #expect(m.rejections.keys.contains { $0.contains("gradient for version 0, expected version 1") }, "\(m.rejections)")
        #expect(m.asyncRun!.gate.applied == 1)
    }

    @Test("each worker walks every minibatch of every epoch; an epoch completes when every worker has passed it")
    func cursorsAndEpochs() {
        var (m, _) = started([a, b], batch: 8, batches: [2, 3])
        var all: [Action] = []
        all += answer(&m, a)
        all += answer(&m, a)
        #expect(m.asyncRun!.cursors[0]!.epoch == 1 && m.asyncRun!.cursors[0]!.index == 0)
        #expect(!all.contains { if case .epochComplete = $0 { return true }; return false }, "worker 1 is still in epoch 1")
        #expect(all.last == .broadcastWeights(step: 3, epoch: 1, index: 0, reset: true, to: [m.workers[0]]), "a new epoch starts from zero")
        _ = answer(&m, b)
        let passed = answer(&m, b)
        #expect(passed.contains(.epochComplete(epoch: 0, loss: LossSum(sum: 8, count: 40))), "4 gradients of 10 tokens, loss 2 each")
        for _ in 0..<3 { all = answer(&m, a) }
        #expect(all.contains(.send(a, .stop(runID: run, reason: "training finished"))))
        #expect(m.phase == .running && m.awaited == [1] && m.asyncRemaining == 3)
        // A finished worker exiting is not a loss.
        #expect(m.handle(.peerUnreachable(peer: a, now: 8)).isEmpty && m.alive == [0, 1])
        _ = answer(&m, b)
        _ = answer(&m, b)
        let end = answer(&m, b)
        #expect(end.suffix(3) == [.send(b, .stop(runID: run, reason: "training finished")),
                                  .epochComplete(epoch: 1, loss: LossSum(sum: 12, count: 60)), .runFinished])
        #expect(m.phase == .finished && m.asyncRun!.gate.applied == 10 && m.asyncRemaining == 0)
    }

    @Test("a worker lost mid-epoch: its streams go to the others with their state, epochs complete over the live, the run finishes")
    func lostWorkerMidEpoch() {
        var (m, _) = started([a, b, c], batch: 9, batches: [3, 3])
        _ = answer(&m, a)
        _ = answer(&m, b)
        _ = answer(&m, c)
        // Worker 1 dies with minibatch 2 in flight.
        let lost = m.handle(.peerUnreachable(peer: b, now: 3))
        #expect(m.alive == [0, 2])
        #expect(m.workers[0].columns == [0, 1, 2, 3, 5] && m.workers[2].columns == [4, 6, 7, 8], "\(m.workers.map(\.columns))")
        #expect(lost.contains(.reassign(m.workers[0])) && lost.contains(.reassign(m.workers[2])))
        #expect(logs(lost).contains { $0.contains("worker 1 (w1 on host-w1, pid 7) lost at step 4 (epoch 1, minibatch 2 of 3)")
                && $0.contains("unreachable") && $0.contains("[3, 4, 5] move to worker 0, worker 2 with their carried state") }, "\(lost)")
        #expect(m.awaited == [0, 2] && m.asyncRemaining == 10)
        // Worker 0's minibatch in flight was computed on its old 3 streams; its next one carries the 5 streams' state.
        let next = answer(&m, a, now: 4)
        #expect(next.first == .carryState(columns: [0, 1, 2], state: [Float](repeating: 0.5, count: 6)))
        #expect(next.last == .sendWeightsWithState(step: 5, epoch: 0, index: 2, to: m.workers[0]))
        let after = answer(&m, a, now: 5)
        #expect(after.first == .carryState(columns: [0, 1, 2, 3, 5], state: [Float](repeating: 0.5, count: 10)))
        #expect(!after.contains { if case .epochComplete = $0 { return true }; return false }, "worker 2 has not passed epoch 1")
        _ = answer(&m, c, now: 5)
        let passed = answer(&m, c, now: 5)
        #expect(passed.contains { if case .epochComplete(0, _) = $0 { return true }; return false }, "\(passed)")
        var end: [Action] = []
        for _ in 0..<3 { end += answer(&m, a, now: 6) + answer(&m, c, now: 6) }
        #expect(end.last == .runFinished && m.phase == .finished)
        #expect(m.asyncRun!.completedEpochs == 2)
    }

    @Test("a worker silent past the step timeout is taken out and the others go on")
    func silentWorkerIsTakenOut() {
        var (m, _) = started([a, b], batch: 8, batches: [4])
        _ = answer(&m, a, now: 3)
        #expect(m.handle(.tick(now: 5.9)).isEmpty)
        let out = m.handle(.tick(now: 6))
        #expect(m.alive == [0] && m.workers[0].columns == Array(0..<8))
        #expect(logs(out).contains { $0.contains("worker 1 (w1 on host-w1, pid 7) lost") && $0.contains("no gradient for its minibatch within 5s") }, "\(out)")
        let late = m.handle(.received(peer: b, frames: gradient(version: 0, streams: 4), now: 7))
        #expect(late.first == .send(b, .stop(runID: run, reason: Message.takenOutReason)))
        var end: [Action] = []
        for _ in 0..<3 { end += answer(&m, a, now: 7) }
        #expect(end.suffix(2) == [.epochComplete(epoch: 0, loss: LossSum(sum: 8, count: 40)), .runFinished])
    }

    @Test("every worker lost: the run fails saying no worker is left and how to go on")
    func allWorkersLostFails() {
        var (m, _) = started([a, b], batch: 8, batches: [4, 4])
        _ = answer(&m, a)
        _ = m.handle(.peerUnreachable(peer: a, now: 3))
        guard case .failed(let why) = m.handle(.peerUnreachable(peer: b, now: 3)).first else { Issue.record("no failure"); return }
        #expect(why.contains("worker 1 (w1 on host-w1, pid 7) is unreachable") && why.contains("no worker is left") && why.contains("--resume"))
        #expect(m.phase == .failed)
    }

    @Test("non-finite gradients skip the minibatch and restart its streams; a repeat offender is disconnected; joins are turned away")
    func nonFiniteAndJoins() {
        var (m, _) = started([a, b], batch: 8, batches: [10])
        for n in 1...3 {
            let v = m.asyncRun!.cursors[1]!.sentVersion!
            let actions = m.handle(.received(peer: b, frames: gradient(version: v, [1, .nan, 1], streams: m.workers[1].columns.count), now: 2))
            #expect(logs(actions).contains { $0.contains("skipped worker 1 (w1 on host-w1, pid 7)'s minibatch \(n) of epoch 1") })
            if n < 3 {
                #expect(actions.last == .sendWeightsWithState(step: 1, epoch: 0, index: UInt32(n), to: m.workers[1]))
            } else {
                #expect(actions.contains(.send(b, .stop(runID: run, reason: "disconnected after 3 non-finite gradients; check this host's hardware or numerics"))))
                #expect(m.alive == [0])
            }
        }
        #expect(m.asyncRun!.gate.applied == 0 && m.asyncRun!.gate.discarded == 0)
        let join = m.handle(.received(peer: c, frames: hello("late"), now: 3))
        #expect(join.first == .send(c, .stop(runID: run, reason: "asynchronous training admits workers only at its start")))
    }
}
