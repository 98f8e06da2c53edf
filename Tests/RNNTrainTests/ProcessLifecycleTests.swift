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

    @Test("SIGTERM: checkpoint, stop the workers, exit 130, no orphans")
    func terminateIsClean() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-sig-\(UUID().uuidString)"
        let p = try startTraining(dir)
        #expect(workerProcesses(parent: p.processIdentifier).count == 2, "workers did not start")
        let signalled = Date()
        kill(p.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL); Issue.record("watchdog: rnnlm train did not exit 30s after SIGTERM") }
        #expect(p.terminationStatus == 130)
        // A checkpoint of the state at the stop was written after the signal (same step name if the signal
        // landed right after an epoch-end save: it is rewritten, atomically).
        let latest = try #require(latestCheckpoint(in: dir))
        let written = try #require(try FileManager.default.attributesOfItem(atPath: latest)[.modificationDate] as? Date)
        #expect(written >= signalled.addingTimeInterval(-0.01), "no checkpoint written on SIGTERM")
        #expect(waitGone(p.processIdentifier).isEmpty, "workers left running after SIGTERM")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { !$0.contains(".tmp.") }, "partial file left")
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
