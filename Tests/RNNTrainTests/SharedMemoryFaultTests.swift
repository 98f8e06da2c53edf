import Foundation
import Testing

/// `rnnlm train --workers N` exchanges payloads with its local workers through shared memory that it maps. A
/// local process that truncates that memory must not kill the coordinator with SIGBUS.
@Suite("Shared memory under a hostile local process (multi-process)", .serialized)
struct SharedMemoryFaultTests {
    @Test("truncating a worker's or the weights' shared memory mid-run is refused; the run finishes")
    func truncationCannotCrashTheCoordinator() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let log = dir + "/train.log"
        let p = try startProcess(bin, ["train", "--workers", "2", "--dataset", "timemachine", "--max-tokens", "40000",
                                       "--hidden", "128", "--batch-size", "8", "--num-steps", "20", "--epochs", "24",
                                       "--seed", "5", "--data-dir", sharedDataDirectory()], log: log)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        // The coordinator names each worker's region when it admits it; wait for both, and a few steps.
        var paths: [String] = []
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && p.isRunning {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            paths = text.split(separator: "\n").compactMap { line in
                guard let r = line.range(of: "through shared memory (") else { return nil }
                return String(line[r.upperBound...].dropLast())
            }
            if paths.count == 2 && text.contains("step ") { break }
            usleep(20_000)
        }
        let started = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        try #require(paths.count == 2, "the coordinator did not report its shared memory:\n\(started)")
        // Every file of the coordinator's shared memory, as a local process of the same user finds them: the workers'
        // regions it named, the files beside them (weights.shm) and its other memfds (the weights region).
        var targets = paths
        for path in paths where !path.hasPrefix("/proc/") {
            let folder = (path as NSString).deletingLastPathComponent
            targets += ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).map { folder + "/" + $0 }
        }
        let fdFolder = "/proc/\(p.processIdentifier)/fd"
        for fd in (try? FileManager.default.contentsOfDirectory(atPath: fdFolder)) ?? [] {
            let link = (try? FileManager.default.destinationOfSymbolicLink(atPath: fdFolder + "/" + fd)) ?? ""
            if link.hasPrefix("/memfd:rnnlm-") { targets.append(fdFolder + "/" + fd) }
        }
        let truncated = targets.filter { truncate($0, 0) == 0 }
        #expect(p.isRunning, "the run ended before the truncation was tried: make it longer")
        waitForExit(p, 120, "rnnlm train --workers 2")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(truncated.isEmpty, "shared memory that a local process could truncate: \(truncated)")
        #expect(p.terminationReason == .exit && p.terminationStatus == 0,
                "the coordinator ended with \(p.terminationReason == .uncaughtSignal ? "signal" : "status") \(p.terminationStatus) (7 is SIGBUS):\n\(text)")
        #expect(text.contains("done: 24 epochs"), "\(text)")
    }
}
