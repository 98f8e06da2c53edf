import Foundation
import Testing

@Suite("CURVE authentication", .serialized)
struct SecurityTests {
    @Test("keygen writes a private secret file and a public file")
    func keygen() throws {
        let dir = temporaryDirectory()
        let r = try run(try rnnlmBinary(), ["keygen", "--name", "w1", "--out", dir])
        #expect(r.status == 0, "\(r.stderr)")
        let attrs = try FileManager.default.attributesOfItem(atPath: dir + "/w1.secret")
        #expect((attrs[.posixPermissions] as? Int) == 0o600)
        #expect(try String(contentsOfFile: dir + "/w1.public", encoding: .utf8).contains("public-key = \""))
        #expect(!(try String(contentsOfFile: dir + "/w1.public", encoding: .utf8).contains("secret")))
        let again = try run(try rnnlmBinary(), ["keygen", "--name", "w1", "--out", dir])
        #expect(again.status != 0 && again.stderr.contains("--force"), "keygen must not overwrite silently")
        // Nor a public file of that name alone; --force replaces both, the secret again created private.
        try FileManager.default.removeItem(atPath: dir + "/w1.secret")
        let publicOnly = try run(try rnnlmBinary(), ["keygen", "--name", "w1", "--out", dir])
        #expect(publicOnly.status == 1 && publicOnly.stderr.contains("w1.public exists; pass --force"), "\(publicOnly.stderr)")
        let forced = try run(try rnnlmBinary(), ["keygen", "--name", "w1", "--out", dir, "--force"])
        #expect(forced.status == 0, "\(forced.stderr)")
        #expect((try FileManager.default.attributesOfItem(atPath: dir + "/w1.secret")[.posixPermissions] as? Int) == 0o600)
    }

    @Test("an endpoint ZeroMQ refuses is named with libzmq's reason and what it lacks")
    func badEndpointsSayWhy() throws {
        let r = try run(try rnnlmBinary(), ["worker", "--connect", "host:5555", "--join-timeout", "2"])
        #expect(r.status == 1 && r.stderr.contains("cannot connect to host:5555: ") && r.stderr.contains("an endpoint is TRANSPORT://ADDRESS"), "\(r.stderr)")
        for bad in ["nan", "0", "inf"] {
            let t = try run(try rnnlmBinary(), ["worker", "--connect", "tcp://127.0.0.1:1", "--join-timeout", bad])
            #expect(t.status == 1 && t.stderr.contains("--join-timeout must be a number of seconds above 0"), "\(bad): \(t.stderr)")
        }
    }

    @Test("unknown key, plaintext and wrong-server-key workers are refused; the run goes on with the authorised one")
    func intrudersAreRejected() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        for name in ["coordinator", "good", "intruder"] { _ = try run(bin, ["keygen", "--name", name, "--out", dir]) }
        try FileManager.default.createDirectory(atPath: dir + "/authorized", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: dir + "/good.public", toPath: dir + "/authorized/good.public")
        let port = String(30_000 + Int.random(in: 0..<20_000))
        let endpoint = "tcp://127.0.0.1:" + port
        let coordinator = Process()
        coordinator.executableURL = URL(fileURLWithPath: bin)
        coordinator.arguments = ["coordinator", "--bind", endpoint, "--expect-workers", "1", "--join-timeout", "60",
                                 "--curve-secret", dir + "/coordinator.secret", "--authorized-keys", dir + "/authorized",
                                 "--dataset", "timemachine", "--data-dir", sharedDataDirectory(), "--max-tokens", "5000",
                                 "--hidden", "32", "--epochs", "2", "--batch-size", "8", "--num-steps", "10", "--log-level", "info"]
        let log = dir + "/coordinator.log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        coordinator.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        coordinator.standardError = coordinator.standardOutput
        try coordinator.run()
        defer { if coordinator.isRunning { kill(coordinator.processIdentifier, SIGKILL) } }
        usleep(300_000)
        let intruders: [([String], String)] = [
            (["--curve-server-key", dir + "/coordinator.public", "--curve-key", dir + "/intruder.secret"], "refused this worker's key"),
            ([], "does the coordinator require CURVE keys"),
            (["--curve-server-key", dir + "/intruder.public", "--curve-key", dir + "/good.secret"], "is --curve-server-key the coordinator's public key"),
        ]
        for (extra, message) in intruders {
            let r = try run(bin, ["worker", "--connect", endpoint, "--join-timeout", "10"] + extra, timeout: 30)
            #expect(r.status == 1, "an intruder joined: \(extra)")
            #expect(r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
        let good = try run(bin, ["worker", "--connect", endpoint, "--join-timeout", "20", "--curve-server-key", dir + "/coordinator.public",
                                 "--curve-key", dir + "/good.secret"], timeout: 60)
        #expect(good.status == 0, "authorised worker failed: \(good.stderr)")
        let deadline = Date().addingTimeInterval(30)
        while coordinator.isRunning && Date() < deadline { usleep(50_000) }
        #expect(!coordinator.isRunning && coordinator.terminationStatus == 0, "coordinator did not finish")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("rejected a peer from 127.0.0.1: key"), "\(text)")
        #expect(text.contains("authenticated worker key 'good'"))
        #expect(text.contains("done: 2 epochs"))
    }

    @Test func curveFlagsMustComeInPairs() throws {
        let bin = try rnnlmBinary()
        let r = try run(bin, ["coordinator", "--expect-workers", "1", "--curve-secret", "x.secret", "--dataset", "timemachine"])
        #expect(r.status != 0 && r.stderr.contains("--curve-secret needs --authorized-keys"), "\(r.stderr)")
        let w = try run(bin, ["worker", "--connect", "tcp://127.0.0.1:9", "--curve-server-key", "k.public"])
        #expect(w.status != 0 && w.stderr.contains("--curve-server-key needs --curve-key"), "\(w.stderr)")
        let wrongFile = temporaryDirectory() + "/k.public"
        try "public-key = \"abc\"\n".write(toFile: wrongFile, atomically: true, encoding: .utf8)
        let bad = try run(bin, ["worker", "--connect", "tcp://127.0.0.1:9", "--curve-server-key", wrongFile, "--curve-key", wrongFile])
        #expect(bad.status != 0 && bad.stderr.contains("public-key"), "\(bad.stderr)")
    }
}
