import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

/// `--gradient-compression bf16`: workers send bfloat16 gradients with error feedback. Lossy and opt-in, so it is
/// held to convergence (validation perplexity within 1% of the exact run's), not to equality; it must halve the
/// upload, act the same through shared memory and the socket, and be refused where it would do nothing.
@Suite("bfloat16 gradient compression", .serialized)
struct GradientCompressionTests {
    static let common = ["--dataset", "timemachine", "--max-tokens", "30000", "--valid-fraction", "0.1", "--model", "gru",
                         "--hidden", "64", "--embed", "16", "--batch-size", "16", "--num-steps", "20", "--lr", "2",
                         "--clip", "1", "--epochs", "6", "--seed", "3"]

    static func train(_ extra: [String], environment: [String: String] = [:]) throws -> (Checkpoint<TrainingRecord>, String) {
        let dir = temporaryDirectory() + "/ck"
        let r = try run(try rnnlmBinary(), ["train", "--checkpoint-dir", dir, "--data-dir", sharedDataDirectory()] + common + extra,
                        environment: environment, timeout: 180)
        #expect(r.status == 0, "\(extra): \(r.stderr)")
        return (try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir))), r.stdout)
    }

    static func finalValidation(_ ck: Checkpoint<TrainingRecord>) throws -> Double {
        try #require(ck.extra.history.last?.validPerplexity)
    }

    @Test("2 workers, bf16: within 1% of the exact run's validation perplexity, half the upload, shared memory ≡ socket")
    func convergesWithHalfTheUpload() throws {
        let (exact, exactOut) = try Self.train(["--workers", "2"])
        let (bf16, bf16Out) = try Self.train(["--workers", "2", "--gradient-compression", "bf16"])
        let (socket, _) = try Self.train(["--workers", "2", "--gradient-compression", "bf16"], environment: ["RNNLM_SHARED_MEMORY": "0"])
        #expect(bf16Out.contains("gradients travel as bfloat16 with error feedback"))
        let a = try Self.finalValidation(exact), b = try Self.finalValidation(bf16)
        print("bf16 gradients: final validation perplexity \(b) vs exact \(a) (\(100 * (b - a) / a)%)")
        #expect(abs(b - a) / a <= 0.01, "bf16 \(b) vs exact \(a)")
        #expect(exact.parameters != bf16.parameters, "compression must change the run (it is lossy)")
        #expect(bf16.parameters.map(\.bitPattern) == socket.parameters.map(\.bitPattern), "the transport must not change the maths")
        let inExact = try TrafficTests.traffic(exactOut)[3], inBF16 = try TrafficTests.traffic(bf16Out)[3]
        print("upload per worker-step: \(inExact) B exact, \(inBF16) B bf16")
        // The values halve; the row words, carried values and head do not.
        #expect(inBF16 < 0.6 * inExact && inBF16 > 0.45 * inExact, "bf16 upload \(inBF16) B against \(inExact) B")
    }

    @Test("async, one worker: bf16 within 1% of the exact async run")
    func asyncConverges() throws {
        let (exact, _) = try Self.train(["--workers", "1", "--mode", "async"])
        let (bf16, out) = try Self.train(["--workers", "1", "--mode", "async", "--gradient-compression", "bf16"])
        #expect(out.contains("gradients travel as bfloat16"))
        let a = try Self.finalValidation(exact), b = try Self.finalValidation(bf16)
        #expect(abs(b - a) / a <= 0.01, "async bf16 \(b) vs exact \(a)")
    }

    @Test("the checkpoint records how gradients were taken; a resume that changes it says so (it switched silently)")
    func resumeThatChangesTheExchangeSaysSo() throws {
        let dir = temporaryDirectory() + "/ck"
        let small = ["--dataset", "timemachine", "--max-tokens", "4000", "--hidden", "16", "--batch-size", "8", "--num-steps", "10",
                     "--data-dir", sharedDataDirectory(), "--checkpoint-dir", dir]
        let first = try run(try rnnlmBinary(), ["train", "--epochs", "1", "--workers", "2", "--gradient-compression", "bf16"] + small, timeout: 120)
        #expect(first.status == 0, "\(first.stderr)")
        let recorded = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir))).extra.exchange
        #expect(recorded == TrainingRecord.Exchange(mode: "sync", gradientCompression: "bf16"))
        let exact = try run(try rnnlmBinary(), ["train", "--resume", "--epochs", "2", "--workers", "2"] + small, timeout: 120)
        #expect(exact.status == 0, "\(exact.stderr)")
        #expect(exact.stdout.contains("note: the checkpoint's run took its workers' gradients with --mode sync --gradient-compression bf16; this run takes them with --mode sync --gradient-compression none, so it does not continue exactly as it was: pass --mode sync --gradient-compression bf16 to keep that"), "\(exact.stdout)")
        let single = try run(try rnnlmBinary(), ["train", "--resume", "--epochs", "3"] + small, timeout: 120)
        #expect(single.status == 0 && !single.stdout.contains("note: the checkpoint's run"), "exact sync to one process is the same maths: \(single.stdout)")
        #expect(try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir))).extra.exchange == .exact)
        // From one process to an asynchronous run is a change too.
        let async = try run(try rnnlmBinary(), ["train", "--resume", "--epochs", "4", "--workers", "1", "--mode", "async"] + small, timeout: 120)
        #expect(async.status == 0 && async.stdout.contains("note: the checkpoint's run took its workers' gradients with --mode sync --gradient-compression none; this run takes them with --mode async --gradient-compression none"), "\(async.stdout) \(async.stderr)")
    }

    @Test("without workers the parameter server's flags are refused, naming them and the fix")
    func refusedWithoutWorkers() throws {
        for flags in [["--gradient-compression", "bf16"], ["--quorum", "1"], ["--mode", "async"], ["--heartbeat-timeout", "30"]] {
            let r = try run(try rnnlmBinary(), ["train", "--checkpoint-dir", temporaryDirectory() + "/ck", "--data-dir", sharedDataDirectory()]
                            + Self.common + flags, timeout: 60)
            #expect(r.status != 0, "\(flags) without workers must be refused")
            #expect(r.stderr.contains(flags[0]) && r.stderr.contains("add --workers N"), "\(flags): \(r.stderr)")
        }
        // --gradient-compression none changes nothing: accepted.
        let ok = try run(try rnnlmBinary(), ["train", "--checkpoint-dir", temporaryDirectory() + "/ck", "--data-dir", sharedDataDirectory()]
                         + Self.common + ["--gradient-compression", "none"], timeout: 60)
        #expect(ok.status == 0, "\(ok.stderr)")
    }
}
