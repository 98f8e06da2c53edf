import RNNCore
import RNNProtocol
import Testing

/// The coordinator's decisions, driven by hand: frames as a worker would send them, time as plain numbers.
@Suite("Coordinator state machine (no sockets, injected time)")
struct CoordinatorMachineTests {
    let run: UInt64 = 0xABC
    let a: PeerID = [1], b: PeerID = [2], stranger: PeerID = [9]
    let params = 3, perStream = 2

    func machine(now: Double = 0) -> CoordinatorMachine {
        CoordinatorMachine(runID: run, expectedWorkers: 2, batchSize: 8, parameterCount: params, stateValuesPerStream: perStream,
                           joinTimeout: 30, stepTimeout: 5, now: now)
    }

    func hello(_ name: String) -> [[UInt8]] { Codec.encode(.hello(WorkerHello(name: name, host: "host-\(name)", pid: 7))) }

    func gradient(step: UInt64, _ g: [Float], streams: Int = 4, nanos: UInt64 = 1000, runID: UInt64? = nil) -> [[UInt8]] {
        Codec.encode(.gradient(runID: runID ?? run, step: step, lossSum: 2, tokens: 10, gradient: g,
                               state: [Float](repeating: 0.5, count: streams * perStream), computeNanos: nanos))
    }

    func admitted() -> CoordinatorMachine {
        var m = machine()
        _ = m.handle(.received(peer: a, frames: hello("a"), now: 1))
        _ = m.handle(.received(peer: b, frames: hello("b"), now: 2))
        return m
    }

    @Test func admitsWorkersAssignsColumnsAndWelcomesThem() {
        var m = machine()
        #expect(m.handle(.received(peer: a, frames: hello("a"), now: 1)) == [.log("worker 0 joined: a on host-a, pid 7")])
        #expect(m.handle(.tick(now: 2)).isEmpty)
        let actions = m.handle(.received(peer: b, frames: hello("b"), now: 3))
        #expect(m.phase == .idle)
        #expect(m.workers.map(\.columns) == [[0, 1, 2, 3], [4, 5, 6, 7]])
        #expect(actions.contains(.welcome(m.workers[0])) && actions.contains(.welcome(m.workers[1])))
        #expect(actions.last == .admitted(m.workers))
    }

    @Test func joinTimeoutFailsWithAnActionableMessage() {
        var m = machine()
        _ = m.handle(.received(peer: a, frames: hello("a"), now: 1))
        #expect(m.handle(.tick(now: 29.9)).isEmpty)
        let actions = m.handle(.tick(now: 30))
        guard case .failed(let why) = actions.last else { Issue.record("no failure: \(actions)"); return }
        #expect(why.contains("only 1 of 2 workers joined within 30s") && why.contains("rnnlm worker --connect"))
        #expect(m.phase == .failed)
        // The worker that joined is told first, as a failure, rather than left waiting.
        #expect(actions.first == .send(a, .stop(runID: run, reason: Message.runFailedPrefix + "only 1 of 2 workers joined within 30s; the coordinator gave up before training began")))
    }

    @Test func stepBroadcastsGathersInWorkerOrderAndCompletes() {
        var m = admitted()
        let start = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [0, 1], now: 10))
        #expect(start == [.broadcastWeights(step: 1, epoch: 0, index: 0, reset: true, to: m.workers)])
        #expect(m.handle(.received(peer: b, frames: gradient(step: 1, [1e8, 1, 0], nanos: 5000), now: 11)).isEmpty)
        let done = m.handle(.received(peer: a, frames: gradient(step: 1, [1, -1e8, 0], nanos: 3000), now: 12))
        #expect(done == [.stepComplete(step: 1, slowestComputeNanos: 5000)])
        let sum = FloatBuffer(count: 3)
        let loss = m.gather!.sum(into: sum)
        #expect(sum.array == [(0 + 1) + 1e8, (0 + -1e8) + 1, 0] as [Float])  // worker 0 first, whatever arrived first
        #expect(loss.count == 20 && loss.sum == 4)
        #expect(m.phase == .idle)
    }

    @Test func workersThatNeedTheirStateGetItAndTheOthersShareTheBroadcast() {
        var m = admitted()
        let start = m.handle(.startStep(step: 4, epoch: 1, index: 2, reset: false, sendState: [1], now: 10))
        #expect(start == [.broadcastWeights(step: 4, epoch: 1, index: 2, reset: false, to: [m.workers[0]]),
                          .sendWeightsWithState(step: 4, epoch: 1, index: 2, to: m.workers[1])])
    }

    @Test func stepTimeoutNamesTheSilentWorkerAndItsStreams() {
        var m = admitted()
        _ = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [], now: 100))
        _ = m.handle(.received(peer: a, frames: gradient(step: 1, [0, 0, 0]), now: 101))
        #expect(m.handle(.tick(now: 104.9)).isEmpty)
        guard case .failed(let why) = m.handle(.tick(now: 105)).first else { Issue.record("no failure"); return }
        #expect(why.contains("step 1: no gradient from worker 1 (b on host-b, pid 7) (rows [4, 5, 6, 7])"), "\(why)")
    }

    @Test func staleUnknownMalformedAndForeignMessagesAreRejectedAndCounted() {
        var m = admitted()
        _ = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [], now: 0))
        _ = m.handle(.received(peer: a, frames: gradient(step: 1, [0, 0, 0]), now: 0))
        _ = m.handle(.received(peer: b, frames: gradient(step: 1, [0, 0, 0]), now: 0))
        _ = m.handle(.startStep(step: 2, epoch: 0, index: 1, reset: false, sendState: [], now: 0))
        // A replayed gradient for the finished step is discarded, not applied.
        #expect(m.handle(.received(peer: a, frames: gradient(step: 1, [9, 9, 9]), now: 0)).first.map { "\($0)".contains("discarded a gradient for step 1") } == true)
        #expect(m.staleDiscarded == 1)
        // A latecomer's hello queues it to join at the next step; anything else from an unknown peer is refused.
        let late = m.handle(.received(peer: stranger, frames: hello("late"), now: 0))
        #expect(late.first.map { "\($0)".contains("asked to join") } == true)
        _ = m.handle(.received(peer: [42], frames: gradient(step: 2, [1, 2, 3]), now: 0))
        // Wrong parameter count, another run's id, wrong state size, a duplicate: each rejected with its reason
        // (a NaN gradient drops the contribution instead: see the test below).
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2]), now: 0))
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3], runID: 0xDEF), now: 0))
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3], streams: 3), now: 0))
        #expect(m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3]), now: 0)).isEmpty)
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3]), now: 0))
        let reasons = m.rejections.keys.sorted().joined(separator: " | ")
        #expect(reasons.contains("carries 2 values, the model has 3 parameters"), "\(reasons)")
        #expect(reasons.contains("is not this run's"))
        #expect(reasons.contains("wrongStateSize"))
        #expect(reasons.contains("duplicate"))
        #expect(reasons.contains("unknown peer"))
        // None of that completed the step or changed what was accepted.
        #expect(m.phase == .gathering && m.gather!.received[0]!.gradient == [1, 2, 3])
    }

    @Test("a lost worker: the step completes with the others, its streams move to them with their state")
    func lostWorkerIsReplacedWithoutWaiting() {
        var m = CoordinatorMachine(runID: run, expectedWorkers: 3, batchSize: 9, parameterCount: params, stateValuesPerStream: perStream,
                                   joinTimeout: 30, stepTimeout: 5, now: 0)
        let c: PeerID = [3]
        for (p, n) in [(a, "a"), (b, "b"), (c, "c")] { _ = m.handle(.received(peer: p, frames: hello(n), now: 0)) }
        _ = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [], now: 10))
        _ = m.handle(.received(peer: a, frames: gradient(step: 1, [1, 1, 1], streams: 3), now: 10.1))
        _ = m.handle(.received(peer: c, frames: gradient(step: 1, [2, 2, 2], streams: 3), now: 10.2))
        let actions = m.handle(.peerUnreachable(peer: b, now: 10.3))
        #expect(m.alive == [0, 2])
        #expect(m.workers[0].columns == [0, 1, 2, 3, 5] && m.workers[2].columns == [4, 6, 7, 8], "\(m.workers.map(\.columns))")
        #expect(actions.contains(.reassign(m.workers[0])) && actions.contains(.reassign(m.workers[2])))
        #expect(actions.last == .stepComplete(step: 1, slowestComputeNanos: 1000))
        #expect(actions.contains { if case .log(let l) = $0 { return l.contains("worker 1 (b on host-b, pid 7) lost at step 1") && l.contains("[3, 4, 5]") }; return false })
        let sum = FloatBuffer(count: 3)
        #expect(m.gather!.sum(into: sum).count == 20 && sum.array == [3, 3, 3])
        // The next step goes to the two live workers, each with its (new) streams' state.
        let next = m.handle(.startStep(step: 2, epoch: 0, index: 1, reset: false, sendState: [], now: 11))
        #expect(next == [.sendWeightsWithState(step: 2, epoch: 0, index: 1, to: m.workers[0]),
                         .sendWeightsWithState(step: 2, epoch: 0, index: 1, to: m.workers[2])])
        // A message from the lost worker is refused.
        #expect(m.handle(.received(peer: b, frames: gradient(step: 2, [0, 0, 0]), now: 11)).first == .send(b, .stop(runID: run, reason: Message.takenOutReason)))
        // Losing everyone ends the run with a message that says what to do.
        _ = m.handle(.peerUnreachable(peer: a, now: 12))
        guard case .failed(let why) = m.handle(.peerUnreachable(peer: c, now: 12)).first else { Issue.record("no failure"); return }
        #expect(why.contains("no worker is left") && why.contains("--resume"))
    }

    @Test("a non-finite gradient is dropped for the step with a warning; a repeat offender is disconnected")
    func nonFiniteGradientsAreDroppedThenTheOffenderIsDisconnected() {
        var m = admitted()
        for step in UInt64(1)...3 {
            _ = m.handle(.startStep(step: step, epoch: 0, index: 0, reset: true, sendState: [], now: Double(step)))
            _ = m.handle(.received(peer: a, frames: gradient(step: step, [1, 1, 1]), now: Double(step)))
            let actions = m.handle(.received(peer: b, frames: gradient(step: step, [1, .nan, 1]), now: Double(step)))
            #expect(actions.contains { if case .log(let l) = $0 { return l.contains("dropped worker 1 (b on host-b, pid 7)'s contribution to step \(step)") }; return false })
            #expect(actions.last == .stepComplete(step: step, slowestComputeNanos: 1000))
            let sum = FloatBuffer(count: 3)
            #expect(m.gather!.sum(into: sum).count == 10 && sum.array == [1, 1, 1], "the NaN contribution must not be summed")
            if step < 3 {
                #expect(m.alive == [0, 1])
            } else {
                #expect(m.alive == [0])
                #expect(actions.contains(.send(b, .stop(runID: run, reason: "disconnected after 3 non-finite gradients; check this host's hardware or numerics"))))
                #expect(m.workers[0].columns == Array(0..<8))
            }
        }
    }

    @Test("stragglers: after the step timeout the step goes on with a quorum; the late gradient is discarded")
    func quorumLetsTheStepGoOn() {
        var m = admitted()
        m.quorum = 1
        _ = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [], now: 100))
        _ = m.handle(.received(peer: a, frames: gradient(step: 1, [1, 1, 1]), now: 101))
        #expect(m.handle(.tick(now: 104)).isEmpty)
        let go = m.handle(.tick(now: 105))
        #expect(go.last == .stepComplete(step: 1, slowestComputeNanos: 1000))
        #expect(go.first.map { "\($0)".contains("proceeding with 1 of 2 workers") } == true)
        #expect(m.alive == [0, 1], "a straggler stays in the run")
        let next = m.handle(.startStep(step: 2, epoch: 0, index: 1, reset: false, sendState: [], now: 106))
        #expect(next.contains(.sendWeightsWithState(step: 2, epoch: 0, index: 1, to: m.workers[1])), "the straggler's streams restart from the coordinator's copy")
        let late = m.handle(.received(peer: b, frames: gradient(step: 1, [9, 9, 9]), now: 107))
        #expect(late.first.map { "\($0)".contains("discarded a gradient for step 1") && "\($0)".contains("went on without it") } == true)
        #expect(m.staleDiscarded == 1)
    }

    @Test("a worker joining mid-run gets an even share of streams at the next step; below --min-workers the coordinator pauses")
    func joinsAndPauses() {
        var m = CoordinatorMachine(runID: run, expectedWorkers: 1, batchSize: 8, parameterCount: params, stateValuesPerStream: perStream,
                                   joinTimeout: 30, stepTimeout: 5, now: 0)
        m.minWorkers = 2
        _ = m.handle(.received(peer: a, frames: hello("a"), now: 0))
        // One worker, two wanted: the first step waits.
        let paused = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [], now: 1))
        #expect(m.phase == .paused && paused.last.map { "\($0)".contains("paused before step 1: 1 of the 2 workers") } == true)
        let resumed = m.handle(.received(peer: b, frames: hello("b"), now: 2))
        #expect(m.alive == [0, 1] && m.workers[1].columns == [4, 5, 6, 7] && m.workers[0].columns == [0, 1, 2, 3])
        #expect(resumed.contains(.welcome(m.workers[1])) && resumed.contains(.reassign(m.workers[0])))
        #expect(resumed.contains(.broadcastWeights(step: 1, epoch: 0, index: 0, reset: true, to: m.workers)))
        // A third worker asking mid-step joins at the next step boundary.
        let c: PeerID = [3]
        #expect(m.handle(.received(peer: c, frames: hello("c"), now: 3)).first.map { "\($0)".contains("asked to join") } == true)
        _ = m.handle(.received(peer: a, frames: gradient(step: 1, [1, 1, 1]), now: 3))
        _ = m.handle(.received(peer: b, frames: gradient(step: 1, [1, 1, 1]), now: 3))
        let next = m.handle(.startStep(step: 2, epoch: 0, index: 1, reset: false, sendState: [], now: 4))
        #expect(m.alive == [0, 1, 2] && m.workers[2].columns.count == 2, "\(m.workers.map(\.columns))")
        #expect(Set(m.workers.flatMap(\.columns)) == Set(0..<8) && m.workers.map(\.columns.count).reduce(0, +) == 8)
        #expect(next.contains(.welcome(m.workers[2])))
        #expect(next.contains(.sendWeightsWithState(step: 2, epoch: 0, index: 1, to: m.workers[2])))
    }
}
