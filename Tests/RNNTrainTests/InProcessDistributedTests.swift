import Foundation
import RNNCheckpoint
import RNNDistributed
import RNNTrain
import RNNTransport
import Testing

/// The distributed run with no processes: the coordinator (`TrainingRun`) and its workers (`WorkerRun`) as
/// threads of this test over `inproc://`, through the same code `rnnlm train --workers N` runs. Fast enough to
/// cover options that change the maths; the multi-process suites cover the processes themselves.
@Suite("Distributed ≡ single-process, in one process over inproc://", .serialized)
struct InProcessDistributedTests {
    func options(_ dir: String, _ configure: (inout TrainOptions) -> Void) -> TrainOptions {
        timeMachineOptions {
            $0.maxTokens = 4000; $0.hidden = 24; $0.embed = 8; $0.layers = 2; $0.model = .lstm; $0.batchSize = 6
            $0.epochs = 2; $0.validFraction = 0.1; $0.checkpointDir = dir
            configure(&$0)
        }
    }

    /// Trains with `workers` worker threads (0: the single-process reference) and returns the final checkpoint.
    func train(workers: Int, _ configure: (inout TrainOptions) -> Void = { _ in }) throws -> Checkpoint<TrainingRecord> {
        let dir = temporaryDirectory() + "/ck"
        return try Self.train(workers: workers, options: options(dir, configure))
    }

    /// Trains `options` with `workers` worker threads over `inproc://` (0: the single-process reference) and
    /// returns the final checkpoint; `threads` compute threads per worker (or for the single process).
    /// With `sharedMemory`, the workers exchange payloads through shared-memory files, as local worker processes do.
    static func train(workers: Int, options: TrainOptions, threads: Int = 1, sharedMemory: Bool = false) throws -> Checkpoint<TrainingRecord> {
        // A folder that holds another run's checkpoints is refused to a new run: such a run gets a folder of its own.
        var options = options
        if let dir = options.checkpointDir, !checkpointFiles(in: dir).isEmpty { options.checkpointDir = temporaryDirectory() + "/ck" }
        var settings = TrainingRun.Settings(start: .new(options))
        settings.threads = threads
        settings.dataDir = sharedDataDirectory()
        let output = CollectedOutput()
        var workerThreads: [Thread] = []
        let finished = DispatchSemaphore(value: 0)
        let outcomes = OutcomeBox()
        if workers > 0 {
            let context = ZMQContext()
            let endpoint = "inproc://rnnlm-test-\(UUID().uuidString)"
            var c = CoordinatorSettings(bind: endpoint, expectWorkers: workers, joinTimeout: 30, stepTimeout: 60)
            c.context = context
            let shm = sharedMemory ? temporaryDirectory() : nil
            c.sharedMemory = shm
            c.afterBind = {
                for i in 0..<workers {
                    var w = WorkerRun.Settings(endpoint: endpoint, name: "thread-\(i)")
                    w.context = context
                    w.joinTimeout = 30
                    w.timeout = 60
                    w.rejoinGrace = 1
                    w.quiet = true
                    w.threads = threads
                    w.sharedMemoryDirectory = shm
                    let worker = UncheckedBox(WorkerRun(settings: w, output: CollectedOutput().sink, stop: .never))
                    let t = Thread {
                        outcomes.record(Result { try worker.value.run().reason })
                        finished.signal()
                    }
                    t.start()
                    workerThreads.append(t)
                }
            }
            settings.coordinator = c
        }
        let summary = try TrainingRun(settings: settings, output: output.sink, stop: .never).run()
        // Watchdog: every worker thread ends when the coordinator stops it.
        for _ in 0..<workerThreads.count {
            #expect(finished.wait(timeout: .now() + 60) == .success, "a worker thread did not finish within 60s")
        }
        for r in outcomes.results { #expect((try? r.get()) == "training finished", "worker ended: \(r)") }
        #expect(summary.outcome == .trained, "\(output.standardOutput)\n\(output.standardError)")
        return try Checkpoint<TrainingRecord>.read(from: try #require(summary.checkpoint))
    }

    static func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        var diff = 0.0, scale = 0.0
        for i in a.indices { diff = max(diff, abs(Double(a[i]) - Double(b[i]))); scale = max(scale, abs(Double(b[i]))) }
        return diff / scale
    }

    @Test("one worker thread is bit-identical to the single process; two and three agree within 1e-5")
    func workersMatchTheReference() throws {
        let ref = try train(workers: 0)
        for w in [1, 2, 3] {
            let ck = try train(workers: w)
            #expect(ck.extra.step == ref.extra.step && ck.extra.step > 50)
            let d = Self.maxRelativeDifference(ck.parameters, ref.parameters)
            if w == 1 {
                #expect(ck.parameters.map(\.bitPattern) == ref.parameters.map(\.bitPattern), "W=1 differs by \(d)")
                #expect(ck.carried == ref.carried)
            } else {
                #expect(d <= 1e-5, "W=\(w): max relative parameter difference \(d)")
            }
        }
    }

    /// Local workers compute from the shared weights region and into their slots, with no copy of either: the
    /// same results as the socket path's copies.
    @Test("through shared memory: one worker bit-identical to the single process, two (with two threads each) within 1e-5")
    func sharedMemoryWorkersMatchTheReference() throws {
        let ref = try train(workers: 0)
        let dir = temporaryDirectory() + "/ck"
        let one = try Self.train(workers: 1, options: options(dir) { _ in }, sharedMemory: true)
        #expect(one.extra.step == ref.extra.step && one.extra.step > 50)
        #expect(one.parameters.map(\.bitPattern) == ref.parameters.map(\.bitPattern),
                "W=1 differs by \(Self.maxRelativeDifference(one.parameters, ref.parameters))")
        #expect(one.carried == ref.carried)
        let two = try Self.train(workers: 2, options: options(dir + "2") { _ in }, threads: 2, sharedMemory: true)
        let d = Self.maxRelativeDifference(two.parameters, ref.parameters)
        #expect(d <= 1e-5, "W=2, 2 threads each: max relative parameter difference \(d)")
    }

    @Test("with dropout 0.3, two worker threads end within 1e-5 of the single process, which differs from no dropout")
    func dropoutMatchesTheReference() throws {
        let ref = try train(workers: 0) { $0.dropout = 0.3 }
        let plain = try train(workers: 0)
        let ck = try train(workers: 2) { $0.dropout = 0.3 }
        #expect(Self.maxRelativeDifference(plain.parameters, ref.parameters) > 1e-3)
        let d = Self.maxRelativeDifference(ck.parameters, ref.parameters)
        #expect(d <= 1e-5, "dropout, W=2: max relative parameter difference \(d)")
    }
}

/// Worker outcomes collected from their threads.
final class OutcomeBox: @unchecked Sendable {
    private let lock = NSLock()
    private var list: [Result<String, Error>] = []
    func record(_ r: Result<String, Error>) { lock.withLock { list.append(r) } }
    var results: [Result<String, Error>] { lock.withLock { list } }
}

/// Hands a value to a thread that alone uses it from then on.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
