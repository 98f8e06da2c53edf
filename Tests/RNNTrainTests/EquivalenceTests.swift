import Foundation
import RNNCheckpoint
import RNNCore
import RNNTrain
import Testing

/// The spine of the distributed suite: `rnnlm train --workers W` (a ZeroMQ parameter server in the
/// parent, W worker processes) against the single-process reference trainer on the same seed and data.
@Suite("Distributed ≡ single-process", .serialized)
struct EquivalenceTests {
    static let common = ["--dataset", "timemachine", "--max-tokens", "6000", "--hidden", "48", "--batch-size", "8",
                         "--num-steps", "12", "--epochs", "3", "--seed", "21", "--valid-fraction", "0.1", "--model", "lstm",
                         "--layers", "2", "--embed", "16"]

    static func train(workers: Int, extra: [String] = [], environment: [String: String] = [:]) throws -> (Checkpoint<TrainingRecord>, String) {
        let dir = NSTemporaryDirectory() + "rnnlm-eq-\(UUID().uuidString)"
        let r = try run(try rnnlmBinary(), ["train", "--workers", String(workers), "--checkpoint-dir", dir,
                                            "--data-dir", sharedDataDirectory()] + common + extra, environment: environment, timeout: 180)
        #expect(r.status == 0, "--workers \(workers) failed: \(r.stderr)")
        let latest = try #require(latestCheckpoint(in: dir))
        return (try Checkpoint<TrainingRecord>.read(from: latest), r.stdout)
    }

    static let reference: Result<Checkpoint<TrainingRecord>, Error> = Result { try train(workers: 0).0 }

    func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        var diff = 0.0, scale = 0.0
        for i in a.indices { diff = max(diff, abs(Double(a[i]) - Double(b[i]))); scale = max(scale, abs(Double(b[i]))) }
        return diff / scale
    }

    @Test(arguments: [1, 2, 4])
    func sameParametersAndValidationPerplexity(workers: Int) throws {
        let ref = try Self.reference.get()
        let (dist, out) = try Self.train(workers: workers)
        #expect(out.contains("worker \(workers - 1) joined"))
        #expect(out.components(separatedBy: "through shared memory").count - 1 == workers, "local workers use shared memory")
        #expect(dist.extra.step == ref.extra.step && dist.extra.step > 100)
        let d = maxRelativeDifference(dist.parameters, ref.parameters)
        let refVal = ref.extra.history.compactMap(\.validPerplexity), distVal = dist.extra.history.compactMap(\.validPerplexity)
        print("equivalence W=\(workers): max relative parameter difference \(d) after \(dist.extra.step) steps; val ppl \(distVal) vs \(refVal)")
        if workers == 1 {
            #expect(dist.parameters.map(\.bitPattern) == ref.parameters.map(\.bitPattern), "W=1 must be bit-identical (max rel diff \(d))")
            #expect(distVal == refVal)
        } else {
            #expect(d <= 1e-5, "W=\(workers): max relative parameter difference \(d)")
            for (a, b) in zip(distVal, refVal) { #expect(abs(a - b) / b <= 1e-5) }
        }
        // The carried hidden state the coordinator checkpoints matches too.
        let sd = maxRelativeDifference(dist.state!.h, ref.state!.h)
        #expect(sd <= (workers == 1 ? 0 : 1e-4), "hidden state differs by \(sd)")
    }

    @Test("payloads through shared memory or through the socket: bit-identical runs")
    func sharedMemoryAndSocketAgree() throws {
        let (viaShared, out) = try Self.train(workers: 2)
        let (viaSocket, outSocket) = try Self.train(workers: 2, environment: ["RNNLM_SHARED_MEMORY": "0"])
        #expect(out.contains("through shared memory") && !outSocket.contains("through shared memory"))
        #expect(viaShared.parameters.map(\.bitPattern) == viaSocket.parameters.map(\.bitPattern))
        #expect(viaShared.state == viaSocket.state)
    }

    /// Dropout masks are a function of (seed, step, site, global row, position), so however the rows are split
    /// (threads, worker processes) the same units are dropped: the runs agree to float summation order.
    @Test("--dropout 0.3: --workers 2 and --threads 2 end within 1e-5 of the single process; dropout changes the result")
    func dropoutSurvivesDistribution() throws {
        let dropout = ["--dropout", "0.3", "--epochs", "2"]
        let (ref, _) = try Self.train(workers: 0, extra: dropout)
        let (plain, _) = try Self.train(workers: 0, extra: ["--epochs", "2"])
        let (workers, _) = try Self.train(workers: 2, extra: dropout)
        let (threads, _) = try Self.train(workers: 0, extra: dropout + ["--threads", "2"])
        #expect(ref.extra.step == plain.extra.step && ref.extra.step > 50)
        let off = maxRelativeDifference(plain.parameters, ref.parameters)
        #expect(off > 1e-3, "a run with dropout 0.3 must differ from one without (max relative difference \(off))")
        let refPpl = ref.extra.history.map(\.trainPerplexity)
        #expect(refPpl != plain.extra.history.map(\.trainPerplexity))
        for (name, run) in [("--workers 2", workers), ("--threads 2", threads)] {
            let d = maxRelativeDifference(run.parameters, ref.parameters)
            print("dropout 0.3, \(name): max relative parameter difference \(d) after \(run.extra.step) steps")
            #expect(run.extra.step == ref.extra.step)
            #expect(d <= 1e-5, "\(name) with dropout: max relative parameter difference \(d)")
            for (a, b) in zip(run.extra.history, ref.extra.history) {
                #expect(abs(a.trainPerplexity - b.trainPerplexity) <= 1e-5 * b.trainPerplexity, "\(name) epoch \(b.epoch)")
                if let va = a.validPerplexity, let vb = b.validPerplexity { #expect(abs(va - vb) <= 1e-5 * vb) }
            }
        }
    }

    @Test("cluster/local.sh: coordinator and workers as separate commands over TCP match the reference")
    func localScriptMatchesReference() throws {
        let ref = try Self.reference.get()
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let dir = NSTemporaryDirectory() + "rnnlm-local-\(UUID().uuidString)"
        let port = String(20_000 + Int.random(in: 0..<20_000))
        let r = try run("/bin/bash", [root.appendingPathComponent("cluster/local.sh").path, "2", "--checkpoint-dir", dir,
                                      "--data-dir", sharedDataDirectory()] + Self.common,
                        environment: ["PORT": port, "RNNLM": try rnnlmBinary()], timeout: 180)
        #expect(r.status == 0, "local.sh failed: \(r.stdout)\n\(r.stderr)")
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir)))
        #expect(ck.extra.step == ref.extra.step)
        #expect(maxRelativeDifference(ck.parameters, ref.parameters) <= 1e-5)
    }

    @Test func nonLoopbackBindWithoutAuthenticationIsRefused() throws {
        let r = try run(try rnnlmBinary(), ["coordinator", "--bind", "tcp://0.0.0.0:5599", "--expect-workers", "1",
                                            "--dataset", "timemachine", "--data-dir", sharedDataDirectory()], timeout: 30)
        #expect(r.status != 0)
        #expect(r.stderr.contains("refusing to listen on tcp://0.0.0.0:5599"), "\(r.stderr)")
    }

    @Test func coordinatorGivesUpWhenWorkersDoNotJoin() throws {
        let r = try run(try rnnlmBinary(), ["coordinator", "--bind", "ipc://" + NSTemporaryDirectory() + "rnnlm-nobody-\(UUID().uuidString)",
                                            "--expect-workers", "2", "--join-timeout", "1"] + Self.common
                                            + ["--data-dir", sharedDataDirectory()], timeout: 30)
        #expect(r.status == 1)
        #expect(r.stderr.contains("only 0 of 2 workers joined"), "\(r.stderr)")
    }

    @Test func workerGivesUpWhenNoCoordinatorAnswers() throws {
        let r = try run(try rnnlmBinary(), ["worker", "--connect", "tcp://127.0.0.1:9", "--join-timeout", "1"], timeout: 30)
        #expect(r.status == 1)
        #expect(r.stderr.contains("no answer from the coordinator"), "\(r.stderr)")
    }
}
