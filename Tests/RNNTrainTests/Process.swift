import Foundation
import Testing

/// The `rnnlm` executable built beside the test bundle (`swift build -c release` builds it).
func rnnlmBinary() throws -> String {
    let dir = Bundle.main.executableURL!.deletingLastPathComponent()
    let candidates = [dir.appendingPathComponent("rnnlm").path, dir.deletingLastPathComponent().appendingPathComponent("rnnlm").path]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        Issue.record("rnnlm executable not found in \(dir.path); run `swift build -c release` before `swift test -c release`")
        throw CancellationError()
    }
    return found
}

struct ProcessResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a command under a watchdog: if it has not exited after `timeout` seconds it is killed and the test
/// fails naming the command (a hang is a failure, never a stuck suite). `unset` names variables removed from the
/// inherited environment.
func run(_ executable: String, _ args: [String], environment: [String: String] = [:], unset: [String] = [],
         timeout: TimeInterval = 120) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v }
    for k in unset { env[k] = nil }
    p.environment = env
    let outURL = URL(fileURLWithPath: NSTemporaryDirectory() + "rnnlm-out-\(UUID().uuidString)")
    let errURL = URL(fileURLWithPath: NSTemporaryDirectory() + "rnnlm-err-\(UUID().uuidString)")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL), err = try FileHandle(forWritingTo: errURL)
    p.standardOutput = out
    p.standardError = err
    p.standardInput = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    var timedOut = false
    if p.isRunning {
        timedOut = true
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }
    try out.close(); try err.close()
    let result = ProcessResult(status: p.terminationStatus,
                               stdout: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                               stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
    try? FileManager.default.removeItem(at: outURL)
    try? FileManager.default.removeItem(at: errURL)
    if timedOut {
        Issue.record("watchdog: `\(([executable] + args).joined(separator: " "))` still running after \(timeout)s; killed. stdout so far:\n\(result.stdout)\nstderr:\n\(result.stderr)")
        throw CancellationError()
    }
    return result
}

/// Starts a long-running command in the background with its output (stdout and stderr) in the file `log`, with
/// `environment` added to this process's.
func startProcess(_ executable: String, _ args: [String], log: String, environment: [String: String] = [:]) throws -> Process {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if !environment.isEmpty { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    _ = FileManager.default.createFile(atPath: log, contents: nil)
    p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
    p.standardError = p.standardOutput
    try p.run()
    return p
}

/// Waits for `p` to exit; past `seconds` it is killed and the test fails naming `what` (the watchdog).
func waitForExit(_ p: Process, _ seconds: Double, _ what: String) {
    let deadline = Date().addingTimeInterval(seconds)
    while p.isRunning && Date() < deadline { usleep(10_000) }
    if p.isRunning { kill(p.processIdentifier, SIGKILL); Issue.record("watchdog: \(what) still running after \(seconds)s; killed") }
}
