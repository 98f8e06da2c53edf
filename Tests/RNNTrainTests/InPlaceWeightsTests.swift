import Foundation
import RNNCore
import RNNDistributed
import RNNProtocol
import RNNTrain
import RNNTransport
import Testing

/// A local worker of a synchronous run computes straight from the run's shared weights region and into its own
/// shared-memory slot. A fake coordinator (a ROUTER socket and the two region files, in this test) drives a real
/// worker (`runWorker` on a thread, over inproc://): the gradient must be the one computed here from the same
/// weights, bit for bit; weights rewritten while the worker computes (the coordinator went on without it) or caught
/// mid-write must cost a warning and no gradient, never a gradient from torn weights.
@Suite("Local workers compute in place", .serialized)
struct InPlaceWeightsTests {
    final class Lines: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [String] = []
        func add(_ s: String) { lock.withLock { list.append(s) } }
        var all: [String] { lock.withLock { list } }
    }

    /// A fake coordinator with one shared-memory worker; `stop()` ends the worker (watchdog: 30 s).
    final class Harness {
        let task: any TrainingTask
        let runID: UInt64 = 0xC0FFEE
        let router: ZMQSocket
        let weights: SharedPayloadRegion
        let slot: SharedPayloadRegion
        let warnings: Lines, outcome: Lines
        let worker: Thread
        let dir: String
        var peer: [UInt8] = []
        var rows: [Int] { Array(0..<task.rowsPerMinibatch) }
        var P: Int { task.parameterCount }

        init(threads: Int, delayMilliseconds: Int = 0) throws {
            var o = TrainOptions()
            o.dataset = "timemachine"; o.maxTokens = 3000; o.hidden = 16; o.batchSize = 4; o.numSteps = 8; o.epochs = 1
            task = try TaskRegistry.task(for: o, dataDir: sharedDataDirectory())
            dir = temporaryDirectory()
            let context = ZMQContext()
            router = try ZMQSocket(context, kind: .router)
            let endpoint = "inproc://in-place-\(UUID().uuidString)"
            try router.bind(endpoint)
            weights = try SharedPayloadRegion(path: dir + "/weights.shm", capacity: 4 * task.parameterCount, create: true)
            slot = try SharedPayloadRegion(path: dir + "/worker-0.shm", capacity: sharedPayloadCapacity(
                parameterCount: task.parameterCount, carriedValues: task.rowsPerMinibatch * task.carriedPerRow), create: true)
            let warnings = Lines(), outcome = Lines(), dir = dir
            (self.warnings, self.outcome) = (warnings, outcome)
            worker = Thread {
                do {
                    let r = try runWorker(endpoint: endpoint, name: "in-place", joinTimeout: 30, timeout: 60, threads: threads,
                                          sharedMemoryDirectory: dir, context: context, log: { _ in }, warn: { warnings.add($0) },
                                          delayMilliseconds: delayMilliseconds)
                    outcome.add("returned: " + r)
                } catch { outcome.add("threw: \(error)") }
            }
            worker.start()
            let hello = try receive("hello")
            peer = hello[0]
            let a = try JSONSerialization.data(withJSONObject: [
                "task": LanguageModelTask.kind, "workerIndex": 0, "workers": 1, "rows": rows,
                "sharedMemory": slot.path, "sharedWeights": weights.path] as [String: Any])
            try router.send(Codec.encode(.welcome(runID: runID, assignment: Array(a),
                                                  task: try task.workerDescription())), to: peer)
        }

        func receive(_ what: String, timeoutMs: Int = 30_000) throws -> [[UInt8]] {
            guard let f = try router.receive(timeoutMs: timeoutMs) else {
                Issue.record("watchdog: no \(what) from the worker within \(timeoutMs) ms")
                throw CancellationError()
            }
            return f
        }

        /// Writes `parameters` into the shared weights region, as the coordinator's broadcast does.
        func writeWeights(_ parameters: [Float]) throws {
            try parameters.withUnsafeBytes { try weights.write(.toWorker, [$0]) }
        }

        /// Sends the flagged head of a synchronous step whose weights are in the shared region.
        func sendSharedWeightsHead(step: UInt64, reset: Bool) throws {
            let head = Codec.weightsHead(runID: runID, step: step, epoch: 0, batch: 0, resetState: reset, parameterCount: P)
            try router.send([Codec.flaggingSharedWeights(head)], to: peer)
        }

        /// The next gradient: its step and its values' bits, read from the worker's slot when it sent a lone head.
        func gradient() throws -> (step: UInt64, bits: [UInt32]) {
            let body = Array(try receive("gradient").dropFirst())
            let m: Message
            if Codec.isSharedPayloadHead(body) {
                let head = Codec.clearingSharedPayloadFlag(body[0]), (runID, P) = (runID, P)
                m = try #require(try slot.withPayload(.toCoordinator) { try Codec.decodeGradient(head: head, payload: $0, runID: runID, parameterCount: P) },
                                 "the slot's gradient was being written when its head arrived")
            } else {
                m = try Codec.decode(body, runID: runID, parameterCount: P)
            }
            guard case .gradient(_, let step, _, _, let g, _, _, _) = m else { Issue.record("not a gradient: \(m)"); throw CancellationError() }
            return (step, g.map(\.bitPattern))
        }

        /// The gradient of minibatch 0 from `parameters` and zero carried values, computed here by the function the
        /// worker runs (`threads` as the worker's).
        func reference(_ parameters: [Float], threads: Int) -> [UInt32] {
            task.parameters.copy(from: FloatBuffer(parameters))
            var carried = [Float](repeating: 0, count: rows.count * task.carriedPerRow)
            task.gradients.zero()
            if threads > 1 {
                _ = DataParallel(task: task, threads: threads).accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried)
            } else {
                _ = task.accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried)
            }
            return task.gradients.array.map(\.bitPattern)
        }

        func stop() throws {
            try router.send(Codec.encode(.stop(runID: runID, reason: "training finished")), to: peer)
            let end = Date().addingTimeInterval(30)
            while !worker.isFinished && Date() < end { usleep(10_000) }
            #expect(worker.isFinished, "watchdog: the worker did not return within 30 s of its stop")
            #expect(outcome.all == ["returned: training finished"], "\(outcome.all)")
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// Weights different from the worker's own (and from each other), so a gradient computed from the wrong ones shows.
    static func weights(_ task: any TrainingTask, scale: Float) -> [Float] {
        task.parameters.array.enumerated().map { $0.element * scale + Float($0.offset % 7) * 1e-3 }
    }

    @Test("the gradient from the shared weights, into the slot, is the reference's bit for bit; the socket path still copies",
          arguments: [1, 2])
    func inPlaceGradientMatchesTheReference(threads: Int) throws {
        let h = try Harness(threads: threads)
        let w1 = Self.weights(h.task, scale: 0.5), w2 = Self.weights(h.task, scale: -0.75)
        try h.writeWeights(w1)
        try h.sendSharedWeightsHead(step: 1, reset: true)
        let g1 = try h.gradient()
        #expect(g1.step == 1 && g1.bits == h.reference(w1, threads: threads), "in place, \(threads) thread(s)")
        // The same step's weights over the socket, copied into the worker's own memory: untouched by the borrow.
        try h.router.send(Codec.encode(.weights(runID: h.runID, step: 2, epoch: 0, batch: 0, resetState: true,
                                                parameters: w2, state: [])), to: h.peer)
        let g2 = try h.gradient()
        #expect(g2.step == 2 && g2.bits == h.reference(w2, threads: threads), "copied after an in-place step")
        try h.writeWeights(w1)
        try h.sendSharedWeightsHead(step: 3, reset: true)
        #expect(try h.gradient().bits == g1.bits, "in place again")
        #expect(h.warnings.all.isEmpty, "\(h.warnings.all)")
        try h.stop()
    }

    @Test("the coordinator rewrites the weights while the worker computes: the gradient is discarded, not sent")
    func rewriteDuringComputeDiscardsTheGradient() throws {
        let h = try Harness(threads: 1, delayMilliseconds: 400)
        let w1 = Self.weights(h.task, scale: 0.5), w2 = Self.weights(h.task, scale: -0.75)
        try h.writeWeights(w1)
        try h.sendSharedWeightsHead(step: 1, reset: false)
        usleep(100_000)  // the worker has begun step 1 (it sleeps 400 ms in it)
        try h.writeWeights(w2)  // the coordinator went on without it
        if let f = try h.router.receive(timeoutMs: 1500) {
            Issue.record("the worker answered step 1 computed on rewritten weights: \(f.count) frames")
        }
        #expect(h.warnings.all.contains { $0.contains("step 1") && $0.contains("rewritten while this worker computed") },
                "\(h.warnings.all)")
        #expect(h.slot.read(.toCoordinator) == [], "the slot holds no gradient of the discarded step")
        // The next step (no reset) starts from the carried values as they were before the discarded one: zero.
        try h.sendSharedWeightsHead(step: 2, reset: false)
        let g = try h.gradient()
        #expect(g.step == 2 && g.bits == h.reference(w2, threads: 1), "the next step from the new weights and the old carried values")
        try h.stop()
    }

    @Test("weights caught mid-write are not computed from")
    func tornRegionIsNotUsed() throws {
        let h = try Harness(threads: 1)
        let w1 = Self.weights(h.task, scale: 0.5)
        try h.writeWeights(w1)
        h.weights.markWriting(.toWorker)
        try h.sendSharedWeightsHead(step: 1, reset: true)
        if let f = try h.router.receive(timeoutMs: 1000) {
            Issue.record("the worker answered weights caught mid-write: \(f.count) frames")
        }
        #expect(h.warnings.all.contains { $0.contains("rewritten while read") }, "\(h.warnings.all)")
        try h.writeWeights(w1)
        try h.sendSharedWeightsHead(step: 2, reset: true)
        #expect(try h.gradient().bits == h.reference(w1, threads: 1))
        try h.stop()
    }
}
