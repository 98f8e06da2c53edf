import Foundation
import RNNCheckpoint
import RNNCore
import RNNTrain
import Testing

/// Dropout masks are a function of (seed, step, site, global row, position, unit), so a run with dropout is the
/// same run however its minibatches are split: across threads, or across worker processes.
@Suite("Dropout: threads and workers ≡ single-process", .serialized)
struct DropoutEquivalenceTests {
    static let common = EquivalenceTests.common + ["--dropout", "0.3", "--epochs", "2"]

    static func train(_ extra: [String]) throws -> Checkpoint<TrainingRecord> {
        let dir = NSTemporaryDirectory() + "rnnlm-dropout-eq-\(UUID().uuidString)"
        let r = try run(try rnnlmBinary(), ["train", "--checkpoint-dir", dir, "--data-dir", sharedDataDirectory()]
                        + common + extra, timeout: 180)
        #expect(r.status == 0, "\(extra) failed: \(r.stderr)")
        return try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir)))
    }

    static func maxRelativeDifference(_ a: [Float], _ b: [Float]) -> Double {
        var diff = 0.0, scale = 0.0
        for i in a.indices { diff = max(diff, abs(Double(a[i]) - Double(b[i]))); scale = max(scale, abs(Double(b[i]))) }
        return diff / scale
    }

    @Test(arguments: [["--threads", "2"], ["--workers", "2"]])
    func sameRunWithDropout(_ split: [String]) throws {
        let ref = try Self.train([])
        let noDropout = try Self.train(["--dropout", "0"])
        let other = try Self.train(split)
        let d = Self.maxRelativeDifference(other.parameters, ref.parameters)
        print("dropout equivalence \(split): max relative parameter difference \(d) after \(other.extra.step) steps")
        #expect(other.extra.step == ref.extra.step && ref.extra.step > 50)
        #expect(d <= 1e-5, "\(split) with dropout differs from one process by \(d)")
        #expect(Self.maxRelativeDifference(noDropout.parameters, ref.parameters) > 1e-3, "dropout must change the run")
    }
}
