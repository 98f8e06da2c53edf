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
                                            "--embed", "0"],
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

    /// A word model's untied embedding is a row-sparse table: each worker sends the values outside the table,
    /// the table rows its minibatch touched (at most one per input token) and their indices, never the whole
    /// table; the run still matches the single process (`EquivalenceTests`).
    @Test func rowSparseEmbeddingSendsOnlyTheTouchedRows() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-traffic-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (E, B, T, W) = (16, 8, 10, 2)
        let r = try run(try rnnlmBinary(), ["train", "--workers", String(W), "--checkpoint-dir", dir, "--data-dir", sharedDataDirectory(),
                                            "--dataset", "tinyshakespeare", "--tokenizer", "lines", "--min-freq", "2",
                                            "--max-tokens", "4000", "--hidden", "16", "--embed", String(E), "--batch-size", String(B),
                                            "--num-steps", String(T), "--epochs", "1", "--seed", "5", "--model", "gru"], timeout: 180)
        #expect(r.status == 0, "\(r.stderr)")
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir)))
        let P = Double(ck.parameters.count)
        let V = try #require(ck.spec.layout.tensors.first { $0.name == "encoder.weight" }).shape[0]
        #expect(V > 1000, "a word vocabulary")
        let t = try Self.traffic(r.stdout)
        let inPerWorker = t[3]
        let rowsPerWorker = Double(B / W), carried = 4 * rowsPerWorker * 16
        // Outside the table: 4·(P − V·E) bytes; each touched row adds 4·E values and a 4-byte index; a worker's
        // minibatch reads rowsPerWorker·T tokens, so at most that many rows.
        let outside = 4 * (P - Double(V * E)) + carried
        print("row-sparse traffic: P = \(Int(P)), V = \(V), 4P = \(Int(4 * P)) B; in per worker \(Int(inPerWorker)) B")
        #expect(inPerWorker >= outside + Double(4 * (E + 1)), "in per worker \(inPerWorker), at least \(outside) plus a row")
        #expect(inPerWorker <= outside + Double(4 * (E + 1)) * rowsPerWorker * Double(T) + 100,
                "in per worker \(inPerWorker): more than the touched rows can explain")
        #expect(inPerWorker < 4 * (P - Double(V * E) / 2), "most of the table stays home; all of it would be \(4 * P) B")
    }

    /// Workers across a socket that hold the last step's weights get what changed since: the values outside the
    /// embedding and the rows that changed (`ChangedWeightRows`). Under plain SGD those are the rows the step's
    /// minibatch read; under weight decay every row changes and the whole weights go. Either way the run is
    /// bit-identical to the same run through shared memory (which shares one copy of the weights).
    @Test(arguments: [[], ["--momentum", "0.9"], ["--optimizer", "adam", "--lr", "0.01"], ["--weight-decay", "0.01"]])
    func socketWorkersGetTheChangedRows(optimizer: [String]) throws {
        let (E, B, T, W) = (16, 8, 10, 2)
        func train(socket: Bool) throws -> (Checkpoint<TrainingRecord>, [Double]) {
            let dir = NSTemporaryDirectory() + "rnnlm-traffic-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let r = try run(try rnnlmBinary(), ["train", "--workers", String(W), "--checkpoint-dir", dir, "--data-dir", sharedDataDirectory(),
                                                "--dataset", "tinyshakespeare", "--tokenizer", "lines", "--min-freq", "2",
                                                "--max-tokens", "4000", "--hidden", "16", "--embed", String(E), "--batch-size", String(B),
                                                "--num-steps", String(T), "--epochs", "1", "--seed", "5", "--model", "gru"] + optimizer,
                            environment: socket ? ["RNNLM_SHARED_MEMORY": "0"] : [:], timeout: 180)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(!r.stderr.contains("ignored"), "\(r.stderr)")
            return (try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir))), try Self.traffic(r.stdout))
        }
        let (shared, _) = try train(socket: false)
        let (socket, t) = try train(socket: true)
        #expect(socket.parameters.map(\.bitPattern) == shared.parameters.map(\.bitPattern), "\(optimizer)")
        #expect(socket.state == shared.state)
        let P = Double(socket.parameters.count), steps = Double(socket.extra.step)
        let V = try #require(socket.spec.layout.tensors.first { $0.name == "encoder.weight" }).shape[0]
        let outPerWorker = t[1], outside = 4 * (P - Double(V * E))
        print("weights per worker-step across the socket \(optimizer): \(Int(outPerWorker)) B; 4P = \(Int(4 * P)) B, outside the table \(Int(outside)) B")
        if optimizer.contains("--weight-decay") {
            #expect(outPerWorker >= 4 * P, "weight decay changes every row: the whole weights go")
        } else {
            // The first step sends everything; after that, the rows a step's W·B·T tokens read (momentum and Adam
            // also move rows read earlier, SGD only those), their indices, and a head.
            #expect(outPerWorker >= outside)
            #expect(outPerWorker < outside + 4 * P / steps + Double(V * 4 * (E + 1)) / 2, "most of the table stays home")
            if optimizer.isEmpty {
                #expect(outPerWorker <= outside + 4 * P / steps + Double(W * B * T * 4 * (E + 1)) + 200,
                        "plain SGD changes only the rows a step read")
            }
        }
    }
}

/// `--broadcast in-turn` over sockets: the same run, bit for bit, as the weights sent together; the workers' acks
/// are the only extra bytes (a 40-byte head per worker-step); and it is refused where it would do nothing.
@Suite("Weights in turn", .serialized)
struct WeightsInTurnRunTests {
    @Test func inTurnIsTheSameRunAsTogether() throws {
        func train(_ extra: [String]) throws -> (Checkpoint<TrainingRecord>, [Double], String) {
            let dir = NSTemporaryDirectory() + "rnnlm-turn-\(UUID().uuidString)"
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let r = try run(try rnnlmBinary(), ["train", "--workers", "3", "--checkpoint-dir", dir, "--data-dir", sharedDataDirectory(),
                                                "--dataset", "tinyshakespeare", "--tokenizer", "lines", "--min-freq", "2",
                                                "--max-tokens", "4000", "--hidden", "16", "--embed", "16", "--batch-size", "9",
                                                "--num-steps", "10", "--epochs", "1", "--seed", "5", "--model", "lstm"] + extra,
                            environment: ["RNNLM_SHARED_MEMORY": "0"], timeout: 180)
            #expect(r.status == 0, "\(r.stderr)")
            return (try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir))), try TrafficTests.traffic(r.stdout), r.stdout + r.stderr)
        }
        let (together, t1, _) = try train([])
        let (inTurn, t2, out) = try train(["--broadcast", "in-turn"])
        #expect(inTurn.parameters.map(\.bitPattern) == together.parameters.map(\.bitPattern))
        #expect(inTurn.state == together.state)
        #expect(!out.contains("rejected") && !out.contains("ignored"), "\(out)")
        #expect(t2[1] == t1[1], "the same weights go out: \(t2[1]) against \(t1[1]) B per worker-step")
        #expect(t2[3] - t1[3] >= 39 && t2[3] - t1[3] <= 41, "one 40-byte acknowledgement per worker-step: \(t2[3]) against \(t1[3]) B in")
    }

    @Test func refusedWhereItWouldDoNothing() throws {
        let bin = try rnnlmBinary()
        let common = ["--data-dir", sharedDataDirectory(), "--dataset", "timemachine", "--max-tokens", "2000", "--epochs", "1"]
        for (args, env, why) in [
            (["train", "--workers", "2", "--broadcast", "in-turn"], [String: String](), "read them from shared memory"),
            (["train", "--broadcast", "in-turn"], [:], "this run has none"),
            (["train", "--workers", "2", "--mode", "async", "--broadcast", "in-turn"], ["RNNLM_SHARED_MEMORY": "0"], "drop one of --mode async"),
            (["coordinator", "--expect-workers", "1", "--mode", "async", "--broadcast", "in-turn"], [:], "drop one of --mode async"),
            (["train", "--workers", "2", "--broadcast", "sideways"], [:], "use one of together, in-turn"),
        ] {
            let r = try run(bin, args + common, environment: env, timeout: 60)
            #expect(r.status != 0 && r.stderr.contains(why), "\(args): \(r.stderr)")
        }
    }
}
