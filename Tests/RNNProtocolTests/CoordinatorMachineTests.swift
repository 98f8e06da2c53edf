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
        guard case .failed(let why) = actions.first else { Issue.record("no failure: \(actions)"); return }
        #expect(why.contains("only 1 of 2 workers joined within 30s") && why.contains("rnnlm worker --connect"))
        #expect(m.phase == .failed)
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
        #expect(why.contains("step 1: no gradient from worker 1 (b on host-b, pid 7) (streams [4, 5, 6, 7])"), "\(why)")
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
        // A latecomer is told the run has started.
        let late = m.handle(.received(peer: stranger, frames: hello("late"), now: 0))
        #expect(late.first == .send(stranger, .stop(runID: run, reason: "this run has already started with 2 workers")))
        // Wrong parameter count, another run's id, NaN, wrong state size, a duplicate: each rejected with its reason.
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2]), now: 0))
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3], runID: 0xDEF), now: 0))
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, .nan, 3]), now: 0))
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3], streams: 3), now: 0))
        #expect(m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3]), now: 0)).isEmpty)
        _ = m.handle(.received(peer: a, frames: gradient(step: 2, [1, 2, 3]), now: 0))
        let reasons = m.rejections.keys.sorted().joined(separator: " | ")
        #expect(reasons.contains("carries 2 values, the model has 3 parameters"), "\(reasons)")
        #expect(reasons.contains("is not this run's"))
        #expect(reasons.contains("gradient contains NaN or Inf"))
        #expect(reasons.contains("wrongStateSize"))
        #expect(reasons.contains("duplicate"))
        #expect(reasons.contains("unknown peer"))
        // None of that completed the step or changed what was accepted.
        #expect(m.phase == .gathering && m.gather!.received[0]!.gradient == [1, 2, 3])
    }
}
