import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

@Suite("The coordinator dies", .serialized)
struct CoordinatorRestartTests {
    let training = ["--dataset", "timemachine", "--max-tokens", "30000", "--hidden", "48", "--batch-size", "8", "--num-steps", "20",
                    "--epochs", "25", "--seed", "9", "--checkpoint-every", "40", "--log-level", "warning"]

    func coordinatorArgs(_ port: String, _ dir: String) -> [String] {
        ["coordinator", "--bind", "tcp://127.0.0.1:" + port, "--expect-workers", "2", "--checkpoint-dir", dir,
         "--data-dir", sharedDataDirectory()] + training
    }

    @Test("SIGKILL the coordinator mid-run, restart it with --resume: workers rejoin, parameters are bit-identical")
    func resumeAfterCoordinatorDeathIsBitIdentical() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let port = String(40_000 + Int.random(in: 0..<10_000))
        // The uninterrupted run.
        let straight = try startProcess(bin, coordinatorArgs(port, dir + "/straight"), log: dir + "/straight.log")
        let w = try (0..<2).map { try startProcess(bin, ["worker", "--connect", "tcp://127.0.0.1:" + port, "--quiet"], log: dir + "/sw\($0).log") }
        waitForExit(straight, 120, "uninterrupted coordinator")
        w.forEach { waitForExit($0, 30, "worker") }
        #expect(straight.terminationStatus == 0)

        // The same run, its coordinator killed mid-run, restarted on the same address with --resume.
        let first = try startProcess(bin, coordinatorArgs(port, dir + "/killed"), log: dir + "/c1.log")
        let workers = try (0..<2).map { try startProcess(bin, ["worker", "--connect", "tcp://127.0.0.1:" + port, "--rejoin-grace", "60"], log: dir + "/w\($0).log") }
        defer { workers.forEach { if $0.isRunning { kill($0.processIdentifier, SIGKILL) } } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && (checkpointFiles(in: dir + "/killed").last?.step ?? 0) < 400 { usleep(2_000) }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let killedAt = checkpointFiles(in: dir + "/killed").last?.step ?? 0
        #expect(killedAt >= 400)
        let second = try startProcess(bin, coordinatorArgs(port, dir + "/killed") + ["--resume", "--log-level", "info"], log: dir + "/c2.log")
        waitForExit(second, 120, "resumed coordinator")
        workers.forEach { waitForExit($0, 30, "worker") }
        let log2 = try String(contentsOfFile: dir + "/c2.log", encoding: .utf8)
        #expect(second.terminationStatus == 0, "\(log2)")
        #expect(log2.contains("resuming") && log2.contains("worker 1 joined"))
        #expect(workers.allSatisfy { $0.terminationStatus == 0 })
        #expect(try String(contentsOfFile: dir + "/w0.log", encoding: .utf8).contains("rejoined the coordinator"))
        let a = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir + "/straight")))
        let b = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir + "/killed")))
        print("coordinator killed after checkpoint step \(killedAt), resumed; final step \(b.extra.step) vs \(a.extra.step)")
        #expect(a.extra.step == b.extra.step)
        #expect(a.parameters.map(\.bitPattern) == b.parameters.map(\.bitPattern), "resumed run differs from the uninterrupted one")
        #expect(a.optimizerSlots.map { $0.map(\.bitPattern) } == b.optimizerSlots.map { $0.map(\.bitPattern) })
    }

    @Test("a worker whose coordinator never comes back exits with a clear message")
    func workerGivesUpAfterTheGracePeriod() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let port = String(40_000 + Int.random(in: 10_000..<20_000))
        var args = coordinatorArgs(port, dir + "/ck")
        args[args.firstIndex(of: "--expect-workers")! + 1] = "1"
        let c = try startProcess(bin, args, log: dir + "/c.log")
        let w = try startProcess(bin, ["worker", "--connect", "tcp://127.0.0.1:" + port, "--rejoin-grace", "2"], log: dir + "/w.log")
        defer { if w.isRunning { kill(w.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && latestCheckpoint(in: dir + "/ck") == nil { usleep(5_000) }
        kill(c.processIdentifier, SIGKILL)
        waitForExit(w, 30, "orphaned worker")
        let text = try String(contentsOfFile: dir + "/w.log", encoding: .utf8)
        #expect(w.terminationStatus == 1)
        #expect(text.contains("lost the coordinator at tcp://127.0.0.1:\(port)") && text.contains("none answered within 2s"), "\(text)")
    }
}
