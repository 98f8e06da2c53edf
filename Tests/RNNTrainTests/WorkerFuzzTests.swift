import Foundation
import RNNCore
import RNNDistributed
import RNNProtocol
import RNNTrain
import RNNTransport
import Testing

/// Hostile traffic the other way: a fake coordinator (a ROUTER socket in this test) welcomes a real worker
/// (`runWorker` on a thread, over inproc://), takes one real gradient, floods it with 100,000 mutated frames
/// (header bytes, truncations, payload lengths, other run ids, NaN weights, garbage, extra frames, messages only
/// a worker sends, rows out of range, a minibatch that does not exist), then asks for the same gradient again.
/// The worker must neither crash nor hang, must reject every frame it cannot use with a warning, and must
/// compute the same gradient, bit for bit, afterwards.
@Suite("Wire fuzzing against a live worker", .serialized)
struct WorkerFuzzTests {
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var n = 0
        private var reasons: [String: Int] = [:]
        func add(_ why: String) {
            let key = why.replacingOccurrences(of: #"-?\d+"#, with: "N", options: .regularExpression).prefix(90)
            lock.lock(); n += 1; reasons[String(key), default: 0] += 1; lock.unlock()
        }
        var count: Int { lock.lock(); defer { lock.unlock() }; return n }
        var tally: [String: Int] { lock.lock(); defer { lock.unlock() }; return reasons }
    }

    @Test("100,000 mutated frames to a real worker: no crash, no hang, every rejection counted, the same gradient afterwards")
    func fuzzedWorkerStillComputes() throws {
        var o = TrainOptions()
        o.dataset = "timemachine"; o.maxTokens = 3000; o.hidden = 16; o.batchSize = 4; o.numSteps = 8; o.epochs = 1
        let task = try TaskRegistry.task(for: o, dataDir: sharedDataDirectory())
        let P = task.parameterCount, rows = Array(0..<task.rowsPerMinibatch)
        let runID: UInt64 = 0x5EED
        let context = ZMQContext()
        let router = try ZMQSocket(context, kind: .router)
        let endpoint = "inproc://worker-fuzz-\(UUID().uuidString)"
        try router.bind(endpoint)

        let warnings = Counter()
        let outcome = Counter()
        let worker = Thread {
            do {
                let r = try runWorker(endpoint: endpoint, name: "fuzzed", joinTimeout: 30, timeout: 60, context: context,
                                      log: { _ in }, warn: { warnings.add($0) })
                outcome.add("returned: " + r)
            } catch { outcome.add("threw: \(error)") }
        }
        worker.start()

        func receive(_ what: String) throws -> [[UInt8]] {
            guard let f = try router.receive(timeoutMs: 30_000) else {
                Issue.record("watchdog: no \(what) from the worker within 30 s")
                throw CancellationError()
            }
            return f
        }
        let hello = try receive("hello")
        let peer = hello[0]
        let assignment = try JSONSerialization.data(withJSONObject: ["task": LanguageModelTask.kind, "workerIndex": 0, "workers": 1, "rows": rows] as [String: Any])
        try router.send(Codec.encode(.welcome(runID: runID, assignment: Array(assignment),
                                              task: try task.workerDescription())), to: peer)
        let weights = Codec.encode(.weights(runID: runID, step: 1, epoch: 0, batch: 0, resetState: true,
                                            parameters: task.parameters.array, state: []))
        func gradientBits() throws -> [UInt32] {
            try router.send(weights, to: peer)
            var f = try receive("gradient")
            while f.count < 2 { f = try receive("gradient") }
            guard case .gradient(_, 1, _, _, let g, _, _, _) = try Codec.decode(Array(f.dropFirst()), runID: runID, parameterCount: P) else {
                Issue.record("the worker's answer is not a gradient for step 1"); throw CancellationError()
            }
            return g.map(\.bitPattern)
        }
        let before = try gradientBits()
        // The same gradient computed here, by the function the worker runs.
        var carried = [Float](repeating: 0, count: rows.count * task.carriedPerRow)
        task.gradients.zero()
        _ = task.accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried)
        #expect(before == task.gradients.array.map(\.bitPattern), "the worker's gradient differs from the reference")

        // The flood. Frames the worker may legitimately act on (usable weights, a valid stop or row assignment, a
        // heartbeat) are not noise and are not sent; every other frame must be rejected with a warning.
        var rng = Mutator(rng: RandomGenerator(seed: 2026))
        let bases: [[[UInt8]]] = [weights,
                                  Codec.encode(.columns(runID: runID, step: 0, columns: rows.map { Int32($0) })),
                                  Codec.encode(.heartbeat(runID: runID)), Codec.encode(.stop(runID: runID, reason: "x"))]
        var sent = 0, skipped = 0
        let started = Date()
        while sent < 100_000 {
            let f = rng.mutate(bases[rng.below(bases.count)], runID: runID, parameterCount: P, batch: rows.count)
            if case .success(let m) = Result(catching: { try Codec.decode(f, runID: runID, parameterCount: P) }) {
                switch m {
                case .stop, .heartbeat: skipped += 1; continue
                case .columns(_, _, let c) where !c.isEmpty && c.allSatisfy({ $0 >= 0 && Int($0) < rows.count }) && Set(c).count == c.count:
                    skipped += 1; continue
                case .weights(_, _, let e, let i, _, _, let st) where Int(i) < task.minibatchCount(epoch: Int(e)) && (st.isEmpty || st.count == carried.count):
                    skipped += 1; continue
                default: break
                }
            }
            try router.send(f, to: peer)
            sent += 1
        }
        let after = try gradientBits()  // behind the whole flood in the worker's queue
        let seconds = Date().timeIntervalSince(started)
        try router.send(Codec.encode(.stop(runID: runID, reason: "training finished")), to: peer)
        let end = Date().addingTimeInterval(30)
        while !worker.isFinished && Date() < end { usleep(10_000) }
        #expect(worker.isFinished, "watchdog: the worker did not return within 30 s of its stop")
        print("worker fuzz: \(sent) hostile frames (\(skipped) usable ones not sent) in \(String(format: "%.1f", seconds)) s; the worker rejected \(warnings.count)")
        for (k, v) in warnings.tally.sorted(by: { $0.value > $1.value }).prefix(12) { print(String(format: "worker fuzz:   %7d  %@", v, k)) }
        #expect(warnings.count == sent, "every hostile frame must be rejected, and counted")
        #expect(after == before, "the worker computes a different gradient after the flood")
        #expect(outcome.tally == ["returned: training finished": 1], "\(outcome.tally)")
    }

    /// The mutations, drawn from the project's generator (reproducible from the seed).
    struct Mutator {
        var rng: RandomGenerator
        mutating func next() -> UInt64 { rng.next() }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(max(n, 1))) }
        mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next()) }

        mutating func mutate(_ legit: [[UInt8]], runID: UInt64, parameterCount: Int, batch: Int) -> [[UInt8]] {
            var f = legit
            switch below(11) {
            case 0: for _ in 0..<(1 + below(4)) { f[0][below(f[0].count)] = byte() }                 // header bytes
            case 1: f[0] = Array(f[0].prefix(below(f[0].count)))                                     // truncated header
            case 2:                                                                                  // payload length
                if f.count < 2 { f.append((0..<(1 + below(8))).map { _ in byte() }) }
                else if below(2) == 0 { f[1].removeLast(min(f[1].count, 1 + below(8))) } else { f[1] += (0..<(1 + below(8))).map { _ in byte() } }
            case 3: for i in 8..<16 { f[0][i] = byte() }                                              // another run's id
            case 4:                                                                                  // NaN/Inf weights
                var p = [Float](repeating: 0.1, count: parameterCount)
                p[below(p.count)] = below(2) == 0 ? .nan : .infinity
                return Codec.encode(.weights(runID: runID, step: 2, epoch: 0, batch: 0, resetState: true, parameters: p, state: []))
            case 5: return (0..<(1 + below(3))).map { _ in (0..<below(64)).map { _ in byte() } }      // garbage
            case 6: f += (0..<(1 + below(2))).map { _ in (0..<below(16)).map { _ in byte() } }        // extra frames
            case 7:                                                                                  // a worker's messages
                let kinds: [Message] = [.hello(WorkerHello(name: "x", host: "y", pid: 1)), .welcome(runID: runID, assignment: [], task: [0]),
                                        .gradient(runID: runID, step: 1, lossSum: 1, tokens: 1, gradient: [Float](repeating: 0, count: parameterCount), state: [], computeNanos: 0)]
                return Codec.encode(kinds[below(kinds.count)])
            case 8:                                                                                  // rows out of range
                let cols: [Int32] = below(3) == 0 ? [] : (0..<(1 + below(4))).map { _ in Int32(truncatingIfNeeded: Int(next() % 64) - 32) }
                return Codec.encode(.columns(runID: runID, step: 0, columns: cols.isEmpty || below(2) == 0 ? cols : cols + [Int32(batch)]))
            case 9:                                                                                  // no such minibatch, wrong state
                let st = below(2) == 0 ? [Float](repeating: 0, count: 1 + below(5)) : []
                return Codec.encode(.weights(runID: runID, step: 3, epoch: UInt32(below(2)), batch: st.isEmpty ? UInt32(1_000_000 + below(9)) : 0,
                                             resetState: false, parameters: [Float](repeating: 0, count: parameterCount), state: st))
            default:                                                                                 // wrong parameter count
                return Codec.encode(.weights(runID: runID, step: 4, epoch: 0, batch: 0, resetState: true,
                                             parameters: [Float](repeating: 0, count: parameterCount - 1 - below(5)), state: []))
            }
            return f
        }
    }
}
