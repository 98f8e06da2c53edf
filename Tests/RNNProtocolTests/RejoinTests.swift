import RNNCore
import RNNProtocol
import Testing

/// A worker declared lost that comes back, and a start with fewer workers than expected (`--min-workers`).
@Suite("Coordinator state machine: rejoining and partial starts")
struct RejoinTests {
    let run: UInt64 = 0xABC
    let a: PeerID = [1], b: PeerID = [2], c: PeerID = [3], newIdentity: PeerID = [4]
    let params = 3, perStream = 2

    func machine(expected: Int = 3) -> CoordinatorMachine {
        CoordinatorMachine(runID: run, expectedWorkers: expected, batchSize: 6, parameterCount: params,
                           stateValuesPerStream: perStream, joinTimeout: 30, stepTimeout: 5, now: 0)
    }

    func hello(_ name: String) -> [[UInt8]] { Codec.encode(.hello(WorkerHello(name: name, host: "host-\(name)", pid: 7))) }

    func gradient(step: UInt64, streams: Int) -> [[UInt8]] {
        Codec.encode(.gradient(runID: run, step: step, lossSum: 2, tokens: 10, gradient: [1, 1, 1],
                               state: [Float](repeating: 0.5, count: streams * perStream), computeNanos: 1000))
    }

    /// Three workers admitted, step 1 started; b is then lost (frozen past the heartbeat timeout: its
    /// connection dropped) and the step completes with a and c.
    func bLost() -> CoordinatorMachine {
        var m = machine()
        for (p, n) in [(a, "a"), (b, "b"), (c, "c")] { _ = m.handle(.received(peer: p, frames: hello(n), now: 1)) }
        _ = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [], now: 2))
        _ = m.handle(.received(peer: a, frames: gradient(step: 1, streams: 2), now: 3))
        _ = m.handle(.received(peer: c, frames: gradient(step: 1, streams: 2), now: 3))
        let lost = m.handle(.peerUnreachable(peer: b, now: 8))
        #expect(lost.last == .stepComplete(step: 1, slowestComputeNanos: 1000))
        #expect(m.alive == [0, 2] && m.workers[0].columns.count + m.workers[2].columns.count == 6)
        return m
    }

    @Test("a lost worker's stale gradient is discarded and it is told to say hello again; its hello makes it a new member")
    func frozenWorkerRejoinsUnderItsOldIdentity() {
        var m = bLost()
        let rejectedBefore = m.rejections["message from a worker no longer in the run", default: 0]
        // Thawed, it sends the gradient it computed before freezing: discarded, and it is told it was taken out.
        let stale = m.handle(.received(peer: b, frames: gradient(step: 1, streams: 2), now: 13))
        #expect(stale.contains(.send(b, .stop(runID: run, reason: Message.takenOutReason))))
        #expect(m.rejections["message from a worker no longer in the run"] == rejectedBefore + 1)
        #expect(m.gather!.received.keys.sorted() == [0, 2], "a stale gradient never reaches a sum")
        // It says hello again (same identity): admitted at the next step as worker 3, with rows and their state.
        let asked = m.handle(.received(peer: b, frames: hello("b"), now: 14))
        #expect(asked.first.map { "\($0)".contains("taken out of the run, asked to rejoin") } == true, "\(asked)")
        #expect(m.handle(.received(peer: b, frames: hello("b"), now: 14.5)).isEmpty, "a repeated hello queues one join")
        let next = m.handle(.startStep(step: 2, epoch: 0, index: 1, reset: false, sendState: [], now: 15))
        #expect(m.alive == [0, 2, 3] && m.workers.count == 4)
        let rejoined = m.workers[3]
        #expect(rejoined.peer == b && rejoined.columns.count == 2)
        #expect(m.member(b) == rejoined)
        #expect(Set(m.workers.filter { m.alive.contains($0.index) }.flatMap(\.columns)) == Set(0..<6))
        #expect(next.contains(.welcome(rejoined)))
        #expect(next.contains(.sendWeightsWithState(step: 2, epoch: 0, index: 1, to: rejoined)), "current weights and its rows' state")
        // Its gradient for step 2 counts; one for step 1 (the old membership's) is discarded as stale.
        #expect(m.handle(.received(peer: b, frames: gradient(step: 1, streams: 2), now: 16)).first.map { "\($0)".contains("discarded a gradient for step 1") } == true)
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, streams: m.workers[0].columns.count), now: 16))
        _ = m.handle(.received(peer: c, frames: gradient(step: 2, streams: m.workers[2].columns.count), now: 16))
        let done = m.handle(.received(peer: b, frames: gradient(step: 2, streams: 2), now: 17))
        #expect(done == [.stepComplete(step: 2, slowestComputeNanos: 1000)])
        #expect(m.gather!.received.keys.sorted() == [0, 2, 3])
    }

    @Test("a lost worker whose connection came back under a new identity is told to say hello, then joins")
    func frozenWorkerRejoinsUnderANewIdentity() {
        var m = bLost()
        let stale = m.handle(.received(peer: newIdentity, frames: gradient(step: 1, streams: 2), now: 13))
        #expect(stale.contains(.send(newIdentity, .stop(runID: run, reason: Message.takenOutReason))))
        // Garbage or another run's message from a stranger gets no answer.
        let other = Codec.encode(.gradient(runID: run + 1, step: 1, lossSum: 0, tokens: 1, gradient: [0, 0, 0], state: [], computeNanos: 0))
        #expect(m.handle(.received(peer: [8], frames: other, now: 13)).allSatisfy { if case .send = $0 { false } else { true } })
        _ = m.handle(.received(peer: newIdentity, frames: hello("b"), now: 14))
        _ = m.handle(.startStep(step: 2, epoch: 0, index: 1, reset: false, sendState: [], now: 15))
        #expect(m.alive.count == 3 && m.member(newIdentity)?.index == 3)
    }

    @Test("paused below --min-workers: a lost worker's hello resumes the run")
    func pausedRunTakesBackALostWorker() {
        var m = bLost()
        m.minWorkers = 3
        let paused = m.handle(.startStep(step: 2, epoch: 0, index: 1, reset: false, sendState: [], now: 15))
        #expect(m.phase == .paused, "\(paused)")
        let resumed = m.handle(.received(peer: b, frames: hello("b"), now: 16))
        #expect(m.phase == .gathering && m.alive == [0, 2, 3], "\(resumed)")
        #expect(resumed.contains(.welcome(m.workers[3])))
    }

    @Test("async: a lost worker's hello is turned away with a clear reason (workers join async runs only at the start)")
    func asyncTurnsAwayALostWorker() {
        var m = machine(expected: 2)
        _ = m.handle(.received(peer: a, frames: hello("a"), now: 1))
        _ = m.handle(.received(peer: b, frames: hello("b"), now: 1))
        _ = m.handle(.startAsync(AsyncPlan(maxStaleness: 2, version: 0, firstEpoch: 0, batchesPerEpoch: [5], resetEveryBatch: false), now: 2))
        _ = m.handle(.peerUnreachable(peer: b, now: 8))
        #expect(m.alive == [0])
        let stale = m.handle(.received(peer: b, frames: gradient(step: 0, streams: 3), now: 9))
        #expect(stale.contains(.send(b, .stop(runID: run, reason: Message.takenOutReason))))
        let hello = m.handle(.received(peer: b, frames: hello("b"), now: 10))
        #expect(hello.contains(.send(b, .stop(runID: run, reason: "asynchronous training admits workers only at its start"))))
    }

    @Test("--min-workers M: at the join timeout the run starts with the M or more that joined, and says which")
    func startsWithMinimumAtJoinTimeout() {
        var m = machine()
        m.startMinimum = 2
        _ = m.handle(.received(peer: a, frames: hello("a"), now: 1))
        _ = m.handle(.received(peer: b, frames: hello("b"), now: 2))
        #expect(m.handle(.tick(now: 29.9)).isEmpty && m.phase == .admitting)
        let start = m.handle(.tick(now: 30))
        #expect(m.phase == .idle && m.alive == [0, 1] && m.workers.map(\.columns) == [[0, 1, 2], [3, 4, 5]])
        #expect(start.first.map { "\($0)".contains("starting with 2 of 3 workers: --join-timeout 30s passed and --min-workers 2 joined") } == true, "\(start)")
        #expect(start.last == .admitted(m.workers))
        // The third joins the running job later.
        #expect(m.handle(.received(peer: c, frames: hello("c"), now: 31)).first.map { "\($0)".contains("asked to join") } == true)
        _ = m.handle(.startStep(step: 1, epoch: 0, index: 0, reset: true, sendState: [], now: 32))
        #expect(m.alive == [0, 1, 2])
    }

    @Test("--min-workers M: all N joined starts at once and says so; fewer than M at the timeout fails naming both")
    func minimumEdges() {
        var m = machine()
        m.startMinimum = 2
        _ = m.handle(.received(peer: a, frames: hello("a"), now: 1))
        _ = m.handle(.received(peer: b, frames: hello("b"), now: 1))
        let all = m.handle(.received(peer: c, frames: hello("c"), now: 1))
        #expect(all.contains(.log("starting with all 3 workers (--expect-workers)")) && m.phase == .idle)
        var few = machine()
        few.startMinimum = 2
        _ = few.handle(.received(peer: a, frames: hello("a"), now: 1))
        guard case .failed(let why) = few.handle(.tick(now: 30)).last else { Issue.record("no failure"); return }
        #expect(why.contains("only 1 of 3 workers joined within 30s (--min-workers 2)"), "\(why)")
        var none = machine()  // without --min-workers every expected worker must join (as before)
        _ = none.handle(.received(peer: a, frames: hello("a"), now: 1))
        _ = none.handle(.received(peer: b, frames: hello("b"), now: 1))
        guard case .failed = none.handle(.tick(now: 30)).last else { Issue.record("no failure"); return }
    }
}
