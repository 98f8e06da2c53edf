import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

/// The end-of-run "parameter server:" line's traffic figures: bytes per step each way at the coordinator, counted
/// where they cross (ZeroMQ frames, shared-memory payloads).
@Suite("Parameter-server traffic per step", .serialized)
struct TrafficTests {
    /// (out, out per worker, in, in per worker) from "traffic per step: out A B (C B per worker), in D B (E B per worker)".
    static func traffic(_ stdout: String) throws -> [Double] {
        let line = try #require(stdout.split(separator: "\n").first { $0.contains("parameter server:") }, "\(stdout)")
        let m = try #require(String(line).firstMatch(of: /traffic per step: out ([\d,]+) B \(([\d,]+) B per worker\), in ([\d,]+) B \(([\d,]+) B per worker\)/), "\(line)")
        return [m.1, m.2, m.3, m.4].map { Double($0.replacingOccurrences(of: ",", with: ""))! }
    }

    /// Dense exchange, W workers of B = 8 rows: each step a worker gets the 4·P bytes of weights (plus a head of
    /// under 100 bytes; local workers share one copy) and sends back the 4·P bytes of its
    /// gradient, a head, and its rows' carried values (4 bytes × rows × values per row).
    @Test(arguments: [(1, true), (2, true), (2, false)])
    func denseExchangeMovesFourBytesPerParameterEachWay(workers: Int, sharedMemory: Bool) throws {
        let dir = NSTemporaryDirectory() + "rnnlm-traffic-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let r = try run(try rnnlmBinary(), ["train", "--workers", String(workers), "--checkpoint-dir", dir, "--data-dir", sharedDataDirectory(),
                                            "--dataset", "timemachine", "--max-tokens", "6000", "--hidden", "48", "--batch-size", "8",
                                            "--num-steps", "12", "--epochs", "1", "--seed", "21", "--model", "lstm", "--layers", "2",
                                            "--embed", "16"],
                        environment: sharedMemory ? [:] : ["RNNLM_SHARED_MEMORY": "0"], timeout: 120)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("through shared memory") == sharedMemory)
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir)))
        let p = Double(ck.parameters.count)
        let carriedPerRow = ck.carried.reduce(0) { $0 + $1.values.count } / 8  // h and c: [L, B, H] each
        #expect(carriedPerRow == 2 * 2 * 48)
        let rowsPerWorker = 8.0 / Double(workers)
        let t = try Self.traffic(r.stdout)
        print("traffic, --workers \(workers)\(sharedMemory ? "" : " (socket)"): P = \(Int(p)), 4P = \(Int(4 * p)) B; measured \(t)")
        let (out, outPerWorker, into, inPerWorker) = (t[0], t[1], t[2], t[3])
        #expect(abs(out - Double(workers) * outPerWorker) <= Double(workers), "total is the sum over workers")
        #expect(abs(into - Double(workers) * inPerWorker) <= Double(workers))
        let steps = Double(ck.extra.step)
        // Out: the weights and a head per worker, at most once the worker's carried values (not sent when its first
        // step resets them), a few heartbeats. Local workers of a synchronous step read one copy of the weights from
        // the shared weights region: 4·P in all, whatever their number.
        let outSlack = 100 + 4 * rowsPerWorker * Double(carriedPerRow) / steps
        let outBase = sharedMemory ? 4 * p / Double(workers) : 4 * p
        #expect(outPerWorker >= outBase && outPerWorker <= outBase + outSlack, "out per worker \(outPerWorker), expected ≈ \(outBase)")
        let inBase = 4 * p + 4 * rowsPerWorker * Double(carriedPerRow)
        #expect(inPerWorker >= inBase && inPerWorker <= inBase + 100, "in per worker \(inPerWorker), expected ≈ \(inBase)")
    }
}
