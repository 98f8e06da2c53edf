import Foundation
import RNNTrain
import Testing

/// PIDs of live `rnnlm worker` processes whose parent is `parent` (or any, for nil), from /proc.
func workerProcesses(parent: Int32? = nil) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap(Int32.init).filter { pid in
        guard let cmd = try? String(contentsOfFile: "/proc/\(pid)/cmdline", encoding: .utf8),
              cmd.contains("rnnlm"), cmd.contains("\u{0}worker\u{0}"),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return false }
        // Field 3 is the state (Z = already dead), field 4 the parent PID.
        let fields = stat.split(separator: ")").last!.split(separator: " ")
        guard fields.count > 2, fields[0] != "Z" else { return false }
        return parent == nil || Int32(fields[1]) == parent
    }
}

@Suite("rnnlm train --workers: signals and orphans", .serialized)
struct ProcessLifecycleTests {
    let args = ["train", "--workers", "2", "--dataset", "timemachine", "--model", "gru", "--hidden", "64", "--epochs", "1000"]

    func startTraining(_ dir: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try rnnlmBinary())
        p.arguments = args + ["--checkpoint-dir", dir, "--data-dir", sharedDataDirectory()]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Wait (bounded) until both workers exist and the first epoch's checkpoint shows training is under way.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && (workerProcesses(parent: p.processIdentifier).count < 2 || latestCheckpoint(in: dir) == nil) {
            usleep(50_000)
        }
        return p
    }

    func waitGone(_ parent: Int32, seconds: Double = 10) -> [Int32] {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline && !workerProcesses(parent: parent).isEmpty && !workerProcesses().isEmpty { usleep(50_000) }
        return workerProcesses().filter { pid in
            // A worker re-parented to init after its parent died is an orphan.
            (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8))?.split(separator: ")").last?.split(separator: " ")[1] == "1"
        } + workerProcesses(parent: parent)
    }

    @Test("a coordinator that gives up waiting for workers tells the ones that joined (they waited out their own --join-timeout), and they exit 1; the process is named rnnlm")
    func joinedWorkersHearTheRunFailed() throws {
        let port = String(freeTCPPort())
        let script = """
            "$0" coordinator --bind tcp://127.0.0.1:$1 --expect-workers 2 --join-timeout 3 --dataset timemachine --max-tokens 3000 \
                --hidden 8 --batch-size 4 --num-steps 5 --data-dir "$2" > /dev/null 2>&1 & c=$!
            sleep 0.3
            grep -qx rnnlm /proc/$c/comm && echo named
            start=$(date +%s)
            "$0" worker --connect tcp://127.0.0.1:$1 --join-timeout 60; w=$?
            echo "worker=$w after $(( $(date +%s) - start ))s"
            wait $c; echo "coordinator=$?"
            """
        let r = try run("/bin/bash", ["-c", script, try rnnlmBinary(), port, sharedDataDirectory()], timeout: 60)
        #expect(r.stdout.contains("named"), "the process is not named rnnlm: \(r.stdout)")
        #expect(r.stdout.contains("worker=1 after ") && r.stdout.contains("coordinator=1"), "\(r.stdout) \(r.stderr)")
        let seconds = Int(r.stdout.components(separatedBy: "worker=1 after ").last?.prefix { $0.isNumber } ?? "") ?? 99
        #expect(seconds <= 10, "the worker waited \(seconds) s")
        #expect((r.stdout + r.stderr).contains("the run failed: only 1 of 2 workers joined within 3s; the coordinator gave up before training began"), "\(r.stdout) \(r.stderr)")
    }

    @Test("SIGTERM: checkpoint, stop the workers, exit 143, no orphans")
    func terminateIsClean() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-sig-\(UUID().uuidString)"
        let p = try startTraining(dir)
        #expect(workerProcesses(parent: p.processIdentifier).count == 2, "workers did not start")
        let signalled = Date()
        kill(p.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); Issue.record("watchdog: rnnlm train did not exit 30s after SIGTERM") }
        #expect(p.terminationStatus == 143, "SIGTERM exits 128 + 15, as a shell reports it")
        // A checkpoint of the state at the stop was written after the signal (same step name if the signal
        // landed right after an epoch-end save: it is rewritten, atomically).
        let latest = try #require(latestCheckpoint(in: dir))
        let written = try #require(try FileManager.default.attributesOfItem(atPath: latest)[.modificationDate] as? Date)
        #expect(written >= signalled.addingTimeInterval(-0.01), "no checkpoint written on SIGTERM")
        #expect(waitGone(p.processIdentifier).isEmpty, "workers left running after SIGTERM")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.contains(".tmp.") }, "partial file left")
    }

    /// `rnnlm train` (one process) in the background with stdout and stderr in files, once its signal handlers are
    /// armed (they are installed right after the "config:" line).
    func startSingle(_ extra: [String], dir: String) throws -> (Process, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try rnnlmBinary())
        p.arguments = ["train", "--dataset", "timemachine", "--model", "gru", "--epochs", "1000", "--checkpoint-dir", dir + "/ck",
                       "--data-dir", sharedDataDirectory()] + extra
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let out = dir + "/stdout", err = dir + "/stderr"
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && !((try? String(contentsOfFile: out, encoding: .utf8)) ?? "").contains("config:") { usleep(20_000) }
        usleep(300_000)
        return (p, out, err)
    }

    @Test("SIGUSR1 (Slurm's --signal=B:USR1@120): a checkpoint, the message, exit 138")
    func usr1CheckpointsForRequeue() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-usr1-\(UUID().uuidString)"
        let (p, _, err) = try startSingle(["--hidden", "64"], dir: dir)
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline && latestCheckpoint(in: dir + "/ck") == nil { usleep(50_000) }
        let signalled = Date()
        kill(p.processIdentifier, SIGUSR1)
        waitForExit(p, 30, "rnnlm train after SIGUSR1")
        #expect(p.terminationStatus == 138)
        let latest = try #require(latestCheckpoint(in: dir + "/ck"))
        let written = try #require(try FileManager.default.attributesOfItem(atPath: latest)[.modificationDate] as? Date)
        #expect(written >= signalled.addingTimeInterval(-0.01), "no checkpoint written on SIGUSR1")
        let stderr = try String(contentsOfFile: err, encoding: .utf8)
        #expect(stderr == "SIGUSR1: saved \(latest); exiting with status 138 so the job can be requeued (continue with --resume)\n")
    }

    @Test("a second Ctrl-C exits at once: status 130, no checkpoint wait")
    func secondInterruptExitsAtOnce() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-int2-\(UUID().uuidString)"
        // Steps of several seconds, so the second Ctrl-C lands while the first step still runs.
        let (p, _, err) = try startSingle(["--hidden", "1024", "--batch-size", "64", "--num-steps", "64"], dir: dir)
        kill(p.processIdentifier, SIGINT)
        let noted = Date().addingTimeInterval(10)
        while Date() < noted && !((try? String(contentsOfFile: err, encoding: .utf8)) ?? "").contains("Ctrl-C again") { usleep(10_000) }
        #expect(p.isRunning, "the first Ctrl-C must wait for the step")
        let second = Date()
        kill(p.processIdentifier, SIGINT)
        waitForExit(p, 10, "rnnlm train after a second SIGINT")
        #expect(Date().timeIntervalSince(second) < 2, "the second Ctrl-C took \(Date().timeIntervalSince(second)) s")
        #expect(p.terminationStatus == 130)
        let stderr = try String(contentsOfFile: err, encoding: .utf8)
        #expect(stderr == "\nstopping after this step (a checkpoint is saved); Ctrl-C again to exit at once\n", "\(stderr)")
        #expect(latestCheckpoint(in: dir + "/ck") == nil, "no checkpoint after an immediate exit")
    }

    @Test("SIGKILL of the parent: the workers die with it")
    func killedParentLeavesNoOrphans() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-kill-\(UUID().uuidString)"
        let p = try startTraining(dir)
        let workers = workerProcesses(parent: p.processIdentifier)
        #expect(workers.count == 2)
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && workers.contains(where: { kill($0, 0) == 0 && workerProcesses().contains($0) }) { usleep(50_000) }
        let left = workers.filter { workerProcesses().contains($0) }
        #expect(left.isEmpty, "orphaned workers \(left) still running after the parent was killed")
        for pid in left { kill(pid, SIGKILL) }
    }
}
