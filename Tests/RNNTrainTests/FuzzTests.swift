import Foundation
import RNNCheckpoint
import RNNCore
import RNNDistributed
import RNNProtocol
import RNNTrain
import Testing

/// Hostile traffic from an admitted worker: between its real gradients, an in-process worker sends mutated
/// and random frames (truncated, wrong lengths, wrong magic/version/type/run id, wrong parameter count,
/// NaN/Inf payloads for past steps, replays of old steps, garbage, extra frames, messages only the
/// coordinator may send). The run must complete with parameters bit-identical to the same run without the
/// noise, and the coordinator must account for every frame (a rejection with its reason, or a stale step).
@Suite("Wire fuzzing against a live coordinator", .serialized)
struct FuzzTests {
    let training = ["--dataset", "timemachine", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4", "--num-steps", "8",
                    "--epochs", "4", "--seed", "13", "--log-level", "info"]

    struct Mutator {
        var rng: RandomGenerator
        var previous: [[UInt8]]?

        mutating func frames(from legit: [[UInt8]], step: UInt64, runID: UInt64, parameterCount: Int) -> [[UInt8]] {
            var f = legit
            func byte() -> UInt8 { UInt8(truncatingIfNeeded: rng.next()) }
            func below(_ n: Int) -> Int { Int(rng.next() % UInt64(max(n, 1))) }
            switch below(11) {
            case 0: return previous ?? legit.map { Array($0.prefix(10)) }                           // replay an old step
            case 1: for _ in 0..<(1 + below(4)) { f[0][below(f[0].count)] = byte() }              // header bytes
            case 2: f[0] = Array(f[0].prefix(below(f[0].count)))                                  // truncated header
            case 3: if below(2) == 0 { f[1].removeLast(1 + below(8)) } else { f[1] += (0..<(1 + below(8))).map { _ in byte() } }
            case 4: for i in 8..<16 { f[0][i] = byte() }                                           // another run's id
            case 5:                                                                                // NaN/Inf in a past step
                var g = f[1]
                let at = 4 * below(g.count / 4)
                let bits = (below(2) == 0 ? Float.nan : -Float.infinity).bitPattern
                withUnsafeBytes(of: bits.littleEndian) { for k in 0..<4 { g[at + k] = $0[k] } }
                f[1] = g
                withUnsafeBytes(of: (step &- 1).littleEndian) { for k in 0..<8 { f[0][16 + k] = $0[k] } }
            case 6: return (0..<(1 + below(3))).map { _ in (0..<below(64)).map { _ in byte() } }   // garbage
            case 7: f += (0..<(1 + below(2))).map { _ in (0..<below(16)).map { _ in byte() } }     // extra frames
            case 8:                                                                                // wrong parameter count
                return Codec.encode(.gradient(runID: runID, step: step, lossSum: 1, tokens: 32,
                                              gradient: [Float](repeating: 0, count: parameterCount - 1 - below(5)), state: [], computeNanos: 0))
            case 9:                                                                                // not a worker's message
                let kinds: [Message] = [.hello(WorkerHello(name: "x", host: "y", pid: 1)), .weights(runID: runID, step: step, epoch: 0, batch: 0, resetState: true, parameters: [1], state: []),
                                        .welcome(runID: runID, assignment: [], task: [0]), .stop(runID: runID, reason: "bye"),
                                        .columns(runID: runID, step: step, columns: [0])]
                return Codec.encode(kinds[below(kinds.count)])
            default: for _ in 0..<(1 + below(4)) { f[1][below(f[1].count)] = byte() }              // payload bytes
                withUnsafeBytes(of: (step &- 1).littleEndian) { for k in 0..<8 { f[0][16 + k] = $0[k] } }
            }
            return f
        }
    }


    func coordinator(_ bin: String, port: String, dir: String, log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: bin)
        p.arguments = ["coordinator", "--bind", "tcp://127.0.0.1:" + port, "--expect-workers", "2", "--checkpoint-dir", dir,
                       "--data-dir", sharedDataDirectory()] + training
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = p.standardOutput
        try p.run()
        return p
    }

    @Test("≥ 100,000 hostile frames: never applied, each accounted for, the run completes bit-identical")
    func fuzzedRunMatchesCleanRun() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        // The clean run: two ordinary workers.
        let p1 = String(50_000 + Int.random(in: 0..<5_000))
        let clean = try coordinator(bin, port: p1, dir: dir + "/clean", log: dir + "/clean.log")
        let cleanWorkers = try (0..<2).map { _ -> Process in
            let w = Process()
            w.executableURL = URL(fileURLWithPath: bin)
            w.arguments = ["worker", "--connect", "tcp://127.0.0.1:" + p1, "--quiet"]
            try w.run()
            return w
        }
        let deadline = Date().addingTimeInterval(120)
        while clean.isRunning && Date() < deadline { usleep(10_000) }
        cleanWorkers.forEach { $0.waitUntilExit() }
        #expect(clean.terminationStatus == 0)

        // The fuzzed run: one ordinary worker process, and this test as the second worker.
        let p2 = String(55_000 + Int.random(in: 0..<5_000))
        let log = dir + "/fuzz.log"
        let fuzzed = try coordinator(bin, port: p2, dir: dir + "/fuzz", log: log)
        defer { if fuzzed.isRunning { kill(fuzzed.processIdentifier, SIGKILL) } }
        let other = Process()
        other.executableURL = URL(fileURLWithPath: bin)
        other.arguments = ["worker", "--connect", "tcp://127.0.0.1:" + p2, "--quiet"]
        try other.run()
        defer { if other.isRunning { kill(other.processIdentifier, SIGKILL) } }
        var mutator = Mutator(rng: RandomGenerator(seed: 2026))
        var sent = 0, skipped = 0
        let perStep = 380
        let reason = try runWorker(endpoint: "tcp://127.0.0.1:" + p2, name: "fuzzer", joinTimeout: 60, timeout: 120,
                                   log: { _ in }, warn: { _ in }, beforeGradient: { send, legit, step, runID in
            let parameterCount = (legit[1].count / 4) - (Int(legit[0][48]) | Int(legit[0][49]) << 8)
            for _ in 0..<perStep {
                let frames = mutator.frames(from: legit, step: step, runID: runID, parameterCount: parameterCount)
                guard !frames.isEmpty else { continue }
                // A frame that would be a usable (or droppable) contribution to the current step is not noise: skip it.
                let decoded = Result { try Codec.decode(frames, runID: runID, parameterCount: parameterCount) }
                if case .success(.gradient(_, let s, _, _, _, _, _, _)) = decoded, s == step { skipped += 1; continue }
                if case .success(.heartbeat) = decoded { skipped += 1; continue }
                if case .failure(let e as ProtocolError) = decoded, case .nonFinite = e,
                   let h = try? Codec.header(frames[0]), h.step == step, h.type == .gradient { skipped += 1; continue }
                try send(frames)
                sent += 1
            }
            mutator.previous = legit
        })
        #expect(reason == "training finished")
        let end = Date().addingTimeInterval(60)
        while fuzzed.isRunning && Date() < end { usleep(10_000) }
        #expect(fuzzed.terminationStatus == 0)
        other.waitUntilExit()

        let text = try String(contentsOfFile: log, encoding: .utf8)
        let lines = text.split(separator: "\n")
        let rejected = lines.filter { $0.hasPrefix("rejected a message from") }
        let discarded = lines.filter { $0.hasPrefix("discarded a gradient for step") }
        var tally: [String: Int] = [:]
        for l in rejected {
            let why = l.split(separator: ":", maxSplits: 1).last.map { String($0).trimmingCharacters(in: .whitespaces) } ?? "?"
            let key = why.replacingOccurrences(of: #"[0-9a-f]{6,}|\d+"#, with: "N", options: .regularExpression)
            tally[key, default: 0] += 1
        }
        print("fuzz: sent \(sent) hostile frames (skipped \(skipped) that would have been valid for the current step); coordinator rejected \(rejected.count), discarded \(discarded.count) stale")
        for (k, v) in tally.sorted(by: { $0.value > $1.value }) { print(String(format: "fuzz:   %7d  %@", v, k)) }
        #expect(sent >= 100_000)
        #expect(rejected.count + discarded.count == sent, "every hostile frame must be rejected or discarded, and logged")
        #expect(!text.contains("dropped") && !text.contains("lost at step"))
        let a = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir + "/clean")))
        let b = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir + "/fuzz")))
        #expect(a.extra.step == b.extra.step)
        #expect(a.parameters.map(\.bitPattern) == b.parameters.map(\.bitPattern), "the fuzzed run's parameters differ from the clean run's")
    }
}
