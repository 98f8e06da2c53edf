import Foundation
import RNNCheckpoint
import RNNTrain
import Testing

/// The last "workers A/E" a coordinator's progress lines reported.
func lastWorkerCount(_ log: String) -> String? {
    log.components(separatedBy: "workers ").dropFirst().last.map { String($0.prefix { !$0.isWhitespace && $0 != ";" && $0 != "," }) }
}

/// Seconds from `since` until `file` contains `text` (polling), or nil after `timeout`.
func secondsUntil(_ file: String, contains text: String, since: Date, timeout: Double, while alive: () -> Bool = { true }) -> Double? {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline && alive() {
        if (try? String(contentsOfFile: file, encoding: .utf8))?.contains(text) == true { return Date().timeIntervalSince(since) }
        usleep(5_000)
    }
    return nil
}

@Suite("Workers that come back, and partial starts (multi-process)", .serialized)
struct FaultRecoveryTests {
    let training = ["--dataset", "timemachine", "--max-tokens", "30000", "--hidden", "128", "--batch-size", "12", "--num-steps", "20",
                    "--epochs", "30", "--seed", "4", "--log-level", "info", "--log-every", "20"]

    /// Also with the weights sent in turn (and an embedding, so that workers that hold the last step's weights get
    /// its changed rows): a worker frozen while its weights are on the wire holds the others up only until it is
    /// declared lost, and when it comes back it gets the whole weights.
    @Test("sync over TCP: one of 3 workers SIGSTOPped past --heartbeat-timeout, then SIGCONTed, rejoins as a new member; the run finishes with 3",
          arguments: [[], ["--broadcast", "in-turn", "--embed", "16"]])
    func frozenWorkerRejoins(extra: [String]) throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let port = String(42_000 + Int.random(in: 0..<8_000))
        let c = try startProcess(bin, ["coordinator", "--bind", "tcp://127.0.0.1:" + port, "--expect-workers", "3", "--heartbeat-timeout", "2",
                                       "--checkpoint-dir", dir + "/run", "--data-dir", sharedDataDirectory()] + training + extra, log: dir + "/c.log")
        let workers = try (0..<3).map { try startProcess(bin, ["worker", "--connect", "tcp://127.0.0.1:" + port, "--name", "w\($0)"], log: dir + "/w\($0).log") }
        defer { (workers + [c]).forEach { if $0.isRunning { kill($0.processIdentifier, SIGCONT); kill($0.processIdentifier, SIGKILL) } } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && latestCheckpoint(in: dir + "/run") == nil { usleep(5_000) }
        try #require(c.isRunning, "the run ended before a worker could be frozen")
        let victim = workers[1]
        kill(victim.processIdentifier, SIGSTOP)
        let stoppedAt = Date()
        let detected = secondsUntil(dir + "/c.log", contains: " lost at step ", since: stoppedAt, timeout: 30)
        // Frozen for longer than the heartbeat timeout (2 s) and then some: 5 s in all.
        usleep(UInt32(max(0, 5 - Date().timeIntervalSince(stoppedAt)) * 1e6))
        kill(victim.processIdentifier, SIGCONT)
        let thawedAt = Date()
        let rejoined = secondsUntil(dir + "/c.log", contains: "joined the running job", since: thawedAt, timeout: 30)
        waitForExit(c, 180, "coordinator")
        workers.forEach { waitForExit($0, 30, "worker") }
        let log = try String(contentsOfFile: dir + "/c.log", encoding: .utf8)
        let victimLog = try String(contentsOfFile: dir + "/w1.log", encoding: .utf8)
        print("frozen worker: detected after \(detected.map { String(format: "%.2f s", $0) } ?? "never"), rejoined \(rejoined.map { String(format: "%.2f s", $0) } ?? "never") after SIGCONT; last progress: workers \(lastWorkerCount(log) ?? "?")")
        #expect(c.terminationStatus == 0, "\(log)")
        #expect(detected != nil && detected! < 5, "\(log)")
        #expect(rejoined != nil, "coordinator:\n\(log)\nfrozen worker:\n\(victimLog)")
        #expect(log.contains("done: 30 epochs"), "\(log)")
        #expect(lastWorkerCount(log) == "3/3", "\(log)")
        #expect(!victimLog.contains("none answered"), "\(victimLog)")
        #expect(victimLog.contains("rejoined the coordinator") && victimLog.contains("worker done: training finished"), "\(victimLog)")
        #expect(!log.contains("malformed weightsReceived"), "\(log)")
        for i in 0..<3 {
            let w = try String(contentsOfFile: dir + "/w\(i).log", encoding: .utf8)
            #expect(!w.contains("but this worker holds"), "changed rows went to a worker without their base step's weights:\n\(w)")
        }
        for w in workers { #expect(w.terminationStatus == 0) }
    }

    /// `--broadcast in-turn`: worker 0 (behind a 40 kB/s link, so that its 257 kB of weights take 6 s) is killed
    /// while its weights are on the wire; workers 1 and 2 are still waiting their turn when they are given its rows.
    /// They must get the step's weights before their new rows (a worker takes new rows on receipt): otherwise they
    /// compute the old rows' minibatch with the new rows' carried values, and the step never completes.
    @Test("--broadcast in-turn: the worker on the wire dies; the queued workers that take its rows get the step's weights first")
    func workerOnTheWireDiesInTurn() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let port = 42_000 + Int.random(in: 0..<8_000)
        let c = try startProcess(bin, ["coordinator", "--bind", "tcp://127.0.0.1:\(port)", "--expect-workers", "3", "--broadcast", "in-turn",
                                       "--step-timeout", "30", "--checkpoint-dir", dir + "/run", "--data-dir", sharedDataDirectory(),
                                       "--dataset", "timemachine", "--max-tokens", "6000", "--hidden", "128", "--batch-size", "12",
                                       "--num-steps", "20", "--epochs", "2", "--seed", "4", "--log-level", "info"], log: dir + "/c.log")
        try #require(secondsUntil(dir + "/c.log", contains: "coordinator listening", since: Date(), timeout: 30) != nil)
        let link = try SlowLink(targetPort: port, bytesPerSecond: 40_000)
        let slow = try startProcess(bin, ["worker", "--connect", "tcp://127.0.0.1:\(link.port)", "--name", "slow"], log: dir + "/slow.log")
        defer { ([slow, c]).forEach { if $0.isRunning { kill($0.processIdentifier, SIGKILL) } } }
        usleep(1_500_000)  // its hello first: the workers are numbered in the order they said hello
        let others = try (1...2).map { try startProcess(bin, ["worker", "--connect", "tcp://127.0.0.1:\(port)", "--name", "w\($0)"], log: dir + "/w\($0).log") }
        defer { others.forEach { if $0.isRunning { kill($0.processIdentifier, SIGKILL) } } }
        try #require(secondsUntil(dir + "/c.log", contains: "worker 2 joined", since: Date(), timeout: 30) != nil)
        try #require(try String(contentsOfFile: dir + "/c.log", encoding: .utf8).contains("worker 0 joined: slow"))
        usleep(1_000_000)  // the welcome and the first weights to the slow worker take longer than this
        let log0 = try String(contentsOfFile: dir + "/c.log", encoding: .utf8)
        try #require(!log0.contains("epoch 1 "), "the first step finished before the slow worker could be killed:\n\(log0)")
        kill(slow.processIdentifier, SIGKILL)
        waitForExit(c, 60, "coordinator")
        others.forEach { waitForExit($0, 30, "worker") }
        let log = try String(contentsOfFile: dir + "/c.log", encoding: .utf8)
        print("worker on the wire died in turn: coordinator exit \(c.terminationStatus); last progress: workers \(lastWorkerCount(log) ?? "?")")
        #expect(c.terminationStatus == 0, "\(log)")
        #expect(log.contains("lost") && log.contains("done: 2 epochs"), "\(log)")
        #expect(!log.contains("): gradient"), "a gradient was refused (the wrong rows' carried values?):\n\(log)")
        for w in others { #expect(w.terminationStatus == 0) }
    }

    @Test("a resumed coordinator with --expect-workers 3 --min-workers 2 starts with the 2 that came back at --join-timeout, and says so")
    func resumedCoordinatorStartsWithMinimum() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let small = ["--dataset", "timemachine", "--max-tokens", "5000", "--hidden", "16", "--batch-size", "6", "--num-steps", "10",
                     "--seed", "2", "--checkpoint-dir", dir + "/run", "--data-dir", sharedDataDirectory(), "--log-level", "info"]
        let first = try run(bin, ["train", "--epochs", "1"] + small, timeout: 120)
        #expect(first.status == 0, "\(first.stderr)")
        let port = String(42_000 + Int.random(in: 0..<8_000))
        let started = Date()
        let c = try startProcess(bin, ["coordinator", "--bind", "tcp://127.0.0.1:" + port, "--expect-workers", "3", "--min-workers", "2",
                                       "--join-timeout", "3", "--resume", "--epochs", "2"] + small, log: dir + "/c.log")
        let workers = try (0..<2).map { try startProcess(bin, ["worker", "--connect", "tcp://127.0.0.1:" + port], log: dir + "/w\($0).log") }
        defer { (workers + [c]).forEach { if $0.isRunning { kill($0.processIdentifier, SIGKILL) } } }
        let began = secondsUntil(dir + "/c.log", contains: "starting with 2 of 3 workers", since: started, timeout: 30)
        waitForExit(c, 120, "coordinator")
        workers.forEach { waitForExit($0, 30, "worker") }
        let log = try String(contentsOfFile: dir + "/c.log", encoding: .utf8)
        print("min-workers: started with 2 of 3 after \(began.map { String(format: "%.2f s", $0) } ?? "never")")
        #expect(c.terminationStatus == 0, "\(log)")
        #expect(log.contains("resuming") && log.contains("starting with 2 of 3 workers: --join-timeout 3s passed and --min-workers 2 joined"), "\(log)")
        #expect(log.contains("done: 2 epochs"), "\(log)")
        #expect(!log.contains("only 2 of 3 workers joined"))
    }

    @Test("rnnlm train --workers 3: a SIGKILLed local worker is replaced, the replacement joins, the run finishes with workers 3/3")
    func killedLocalWorkerIsReplaced() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let log = dir + "/run.log"
        let p = try startProcess(bin, ["train", "--workers", "3", "--checkpoint-dir", dir + "/run", "--data-dir", sharedDataDirectory()] + training,
                                 log: log)
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && latestCheckpoint(in: dir + "/run") == nil { usleep(5_000) }
        let victims = workerProcesses(parent: p.processIdentifier)
        try #require(victims.count == 3, "expected 3 workers, found \(victims)")
        kill(victims[1], SIGKILL)
        let killedAt = Date()
        let rejoined = secondsUntil(log, contains: "joined the running job", since: killedAt, timeout: 30, while: { p.isRunning })
        // The dead worker's shared-memory region is unmapped at the next step: the coordinator holds one per live
        // worker (each a sealed memfd named rnnlm-worker-N), not one per worker it ever had.
        var regions = -1
        let settle = Date().addingTimeInterval(10)
        while p.isRunning && Date() < settle {
            let n = workerRegions(of: p.processIdentifier)
            if n > 0 { regions = n }  // (none while the process exits)
            if regions == 3 { break }
            usleep(20_000)
        }
        waitForExit(p, 180, "rnnlm train --workers 3")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        print("local worker replaced: joined \(rejoined.map { String(format: "%.2f s", $0) } ?? "never") after SIGKILL; last progress: workers \(lastWorkerCount(text) ?? "?")")
        #expect(p.terminationStatus == 0, "\(text)")
        #expect(text.contains("died (killed by signal 9); started local-1.r1 in its place"), "\(text)")
        #expect(rejoined != nil, "\(text)")
        #expect(text.contains("done: 30 epochs") && lastWorkerCount(text) == "3/3", "\(text)")
        #expect(workerProcesses(parent: p.processIdentifier).isEmpty)
        #expect(regions == 3, "the coordinator maps \(regions) worker regions with 3 live workers")
    }

    /// Shared-memory regions of local workers that process `pid` holds open.
    func workerRegions(of pid: Int32) -> Int {
        let dir = "/proc/\(pid)/fd"
        let fds = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return fds.filter { ((try? FileManager.default.destinationOfSymbolicLink(atPath: dir + "/" + $0)) ?? "").contains("memfd:rnnlm-worker-") }.count
    }
}
