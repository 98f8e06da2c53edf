import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

/// The lab scripts beside the data folder (`../shared/lab`), or `$RNNLM_LAB_DIR`.
func labDirectory() -> String {
    if let d = ProcessInfo.processInfo.environment["RNNLM_LAB_DIR"], !d.isEmpty { return d }
    return URL(fileURLWithPath: sharedDataDirectory()).deletingLastPathComponent().appendingPathComponent("lab").path
}

func repositoryRoot() -> URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

@Suite("Workers on separate simulated hosts", .serialized)
struct MultiHostTests {
    @Test("coordinator on h1, workers on h2 and h3 over real TCP: completes and matches the single-process run")
    func threeHostsMatchTheReference() throws {
        guard getuid() == 0 else {
            Issue.record("network namespaces need root: run the suite as root (CI does)")
            return
        }
        let ref = try EquivalenceTests.reference.get()
        let work = NSTemporaryDirectory() + "rnnlm-netns-\(UUID().uuidString)"
        let ckpt = work + "/ckpt"
        let r = try run("/bin/bash", [repositoryRoot().appendingPathComponent("cluster/tests/netns-train.sh").path, labDirectory(), work,
                                      try rnnlmBinary(), "--checkpoint-dir", ckpt, "--data-dir", sharedDataDirectory()]
                                      + EquivalenceTests.common, timeout: 240)
        #expect(r.status == 0, "multi-host run failed:\n\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("[h1] worker 0 joined: h2 on h2") || r.stdout.contains("[h1] worker 1 joined: h2 on h2"), "\(r.stdout)")
        #expect(r.stdout.contains("joined: h3 on h3"), "\(r.stdout)")
        #expect(r.stdout.contains("[h2] worker done: training finished") && r.stdout.contains("[h3] worker done: training finished"))
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: ckpt)))
        #expect(ck.extra.step == ref.extra.step)
        var diff = 0.0, scale = 0.0
        for i in ck.parameters.indices {
            diff = max(diff, abs(Double(ck.parameters[i]) - Double(ref.parameters[i]))); scale = max(scale, abs(Double(ref.parameters[i])))
        }
        print("multi-host (netns h1..h3): max relative parameter difference \(diff / scale) after \(ck.extra.step) steps")
        #expect(diff / scale <= 1e-5)
        // Nothing left behind: the namespaces are gone.
        let ns = try run("/usr/bin/env", ["ip", "netns", "list"], timeout: 10)
        #expect(!ns.stdout.contains("rnnt-h1"), "namespaces left behind: \(ns.stdout)")
    }

    @Test("a slow link: h2 capped at 100 Mbit/s, training completes, identical result, step-time slowdown reported")
    func shapedLinkSlowsButCompletes() throws {
        guard getuid() == 0 else { Issue.record("network namespaces need root: run the suite as root (CI does)"); return }
        let flags = ["--dataset", "timemachine", "--model", "gru", "--hidden", "256", "--batch-size", "16", "--num-steps", "35",
                     "--max-tokens", "12000", "--epochs", "1", "--data-dir", sharedDataDirectory()]
        var perStep: [Double] = []
        var params: [[UInt32]] = []
        for shape in [[String](), ["--shape", "h2", "100mbit"]] {
            let work = NSTemporaryDirectory() + "rnnlm-shape-\(UUID().uuidString)"
            let r = try run("/bin/bash", [repositoryRoot().appendingPathComponent("cluster/tests/netns-train.sh").path, labDirectory(), work,
                                          try rnnlmBinary()] + shape + flags + ["--checkpoint-dir", work + "/ck"], timeout: 240)
            #expect(r.status == 0, "\(shape): \(r.stdout)\n\(r.stderr)")
            let line = try #require(r.stdout.split(separator: "\n").first { $0.contains("parameter server:") }, "\(r.stdout)")
            let ms = try #require(line.range(of: #"per step ([0-9.]+) ms"#, options: .regularExpression).map {
                Double(line[$0].dropFirst("per step ".count).dropLast(" ms".count))! })
            perStep.append(ms)
            params.append(try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: work + "/ck"))).parameters.map(\.bitPattern))
        }
        // 227k parameters: each step h2 uploads a 0.9 MB gradient, 73 ms at 12.5 MB/s.
        print(String(format: "shaped link: %.2f ms per step unshaped, %.2f ms with h2 at 100 Mbit/s (%.1fx slower)", perStep[0], perStep[1], perStep[1] / perStep[0]))
        #expect(perStep[1] >= 40 && perStep[1] >= 1.5 * perStep[0], "the cap had no visible effect: \(perStep)")
        #expect(params[0] == params[1], "a slow link must not change the result of synchronous training")
    }
}
