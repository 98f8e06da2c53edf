import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

/// A TCP port nothing on this machine listens on now (the kernel's choice for a socket bound to port 0).
func freeTCPPort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
    }
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

@Suite("rnnlm launch through the binary", .serialized)
struct LaunchTests {
    @Test("torchrun-style variables by hand, 3 processes on 127.0.0.1: rank 0 coordinates two workers; matches the reference")
    func torchrunStyleThreeProcesses() throws {
        let ref = try EquivalenceTests.reference.get()
        let dir = NSTemporaryDirectory() + "rnnlm-launch-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let port = String(freeTCPPort())
        let bin = try rnnlmBinary()
        let args = ["launch", "--checkpoint-dir", dir + "/ck", "--data-dir", sharedDataDirectory(), "--join-timeout", "60"]
            + EquivalenceTests.common
        let processes = try (0..<3).map { rank in
            try startProcess(bin, args, log: "\(dir)/rank\(rank).log", environment: [
                "RANK": String(rank), "WORLD_SIZE": "3", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port])
        }
        for (rank, p) in processes.enumerated() { waitForExit(p, 180, "rnnlm launch rank \(rank)") }
        let logs = (0..<3).map { (try? String(contentsOfFile: "\(dir)/rank\($0).log", encoding: .utf8)) ?? "" }
        for (rank, p) in processes.enumerated() { #expect(p.terminationStatus == 0, "rank \(rank) failed:\n\(logs[rank])") }
        #expect(logs[0].contains("launch: torchrun rank 0 of 3 (RANK=0 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=\(port)): coordinator on tcp://127.0.0.1:\(port) for 2 worker(s)"), "\(logs[0])")
        #expect(logs[0].contains("done: 3 epochs"), "\(logs[0])")
        for rank in 1...2 {
            #expect(logs[rank].contains("launch: torchrun rank \(rank) of 3") && logs[rank].contains("worker connecting to tcp://127.0.0.1:\(port)"), "\(logs[rank])")
            #expect(logs[rank].contains("worker done: training finished"), "\(logs[rank])")
            #expect(logs[0].contains(":rank\(rank)"), "the coordinator names worker rank \(rank): \(logs[0])")
        }
        let ck = try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir + "/ck")))
        var diff = 0.0, scale = 0.0
        for i in ck.parameters.indices {
            diff = max(diff, abs(Double(ck.parameters[i]) - Double(ref.parameters[i]))); scale = max(scale, abs(Double(ref.parameters[i])))
        }
        #expect(ck.extra.step == ref.extra.step)
        #expect(diff / scale <= 1e-5, "launched run differs from the reference by \(diff / scale)")
    }

    @Test("clear errors: no launcher's environment, partial variables, a non-loopback coordinator without keys")
    func errors() throws {
        let bin = try rnnlmBinary()
        let clean = ["RANK": "", "WORLD_SIZE": "", "MASTER_ADDR": "", "MASTER_PORT": "", "SLURM_PROCID": "", "SLURM_NTASKS": "",
                     "SLURM_JOB_NODELIST": "", "SLURM_NODELIST": ""]
        let none = try run(bin, ["launch", "--dataset", "timemachine"], environment: clean, timeout: 60)
        #expect(none.status == 1 && none.stderr.hasPrefix("error: rnnlm launch reads its rank from a launcher's environment, and none is set"), "\(none.stderr)")
        let partial = try run(bin, ["launch", "--dataset", "timemachine"], environment: clean.merging(["RANK": "1", "WORLD_SIZE": "3"]) { $1 }, timeout: 60)
        #expect(partial.status == 1 && partial.stderr.contains("but not MASTER_ADDR, MASTER_PORT"), "\(partial.stderr)")
        let remote = clean.merging(["WORLD_SIZE": "2", "MASTER_ADDR": "10.9.9.9", "MASTER_PORT": "5555"]) { $1 }
        let coordinator = try run(bin, ["launch", "--dataset", "timemachine"], environment: remote.merging(["RANK": "0"]) { $1 }, timeout: 60)
        #expect(coordinator.status == 1 && coordinator.stderr.contains("refusing to listen on tcp://*:5555 without authentication"), "\(coordinator.stderr)")
        let worker = try run(bin, ["launch", "--dataset", "timemachine"], environment: remote.merging(["RANK": "1"]) { $1 }, timeout: 60)
        #expect(worker.status == 1 && worker.stderr.contains("pass --curve-server-key and --curve-key"), "\(worker.stderr)")
        // A worker rank checks the flags every rank is given, before it waits for a coordinator (it exited 0 on any).
        let local = clean.merging(["WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "1", "RANK": "1"]) { $1 }
        let badValue = try run(bin, ["launch", "--dataset", "timemachine", "--dropout", "7", "--join-timeout", "1"], environment: local, timeout: 60)
        #expect(badValue.status == 1 && badValue.stderr.contains("--dropout"), "\(badValue.stderr)")
        let otherTask = try run(bin, ["launch", "--dataset", "timemachine", "--bidirectional", "--join-timeout", "1"], environment: local, timeout: 60)
        #expect(otherTask.status == 1 && otherTask.stderr.contains("--bidirectional"), "\(otherTask.stderr)")
        let noData = try run(bin, ["launch", "--hidden", "8", "--join-timeout", "1"], environment: local, timeout: 60)
        #expect(noData.status == 1 && noData.stderr.contains("no training text"), "\(noData.stderr)")
    }

    @Test("srun -n 3 rnnlm launch under a real single-node Slurm, with CURVE keys")
    func slurmLaunch() throws {
        guard getuid() == 0 else { Issue.record("needs root (Slurm daemons): run the suite as root, as CI does"); return }
        let work = NSTemporaryDirectory() + "rnnlm-slurm-launch-\(UUID().uuidString)"
        let r = try run("/bin/bash", [repositoryRoot().appendingPathComponent("cluster/tests/slurm-train.sh").path, labDirectory(), work,
                                      try rnnlmBinary(), "launch", "--", "--dataset", "timemachine", "--max-tokens", "6000",
                                      "--hidden", "32", "--epochs", "2", "--checkpoint-dir", work + "/ck",
                                      "--data-dir", sharedDataDirectory()], timeout: 300)
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("launch: slurm rank 0 of 3"), "\(r.stdout)")
        #expect(r.stdout.contains("launch: slurm rank 1 of 3") && r.stdout.contains("launch: slurm rank 2 of 3"), "\(r.stdout)")
        #expect(r.stdout.contains("authenticated worker key"), "CURVE must be on: \(r.stdout)")
        #expect(r.stdout.contains("done: 2 epochs"), "\(r.stdout)")
        #expect(latestCheckpoint(in: work + "/ck") != nil)
    }
}
