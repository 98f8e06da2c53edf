import CLinux
import Foundation

/// The worker processes of `rnnlm train --workers N`, and the private folders they share with the coordinator:
/// an ipc socket's folder and, in synchronous mode, a tmpfs folder for shared-memory payloads. The workers are
/// this executable run as `worker`; they die with this process (PR_SET_PDEATHSIG).
public final class LocalWorkers: @unchecked Sendable {  // mutable state behind `lock`
    /// Where the coordinator listens and the workers connect.
    public let endpoint: String
    /// The shared-memory folder, when payloads bypass the socket.
    public let sharedMemory: String?
    private let socketFolder: String
    private let executable: String
    private var processes: [Process] = []
    /// Guards `processes`, `stopping` and `restarts` (termination handlers run on another thread).
    private let lock = NSLock()
    private var stopping = false
    /// When workers were restarted (for the per-minute bound).
    private var restarts: [Date] = []
    private var threads = 1
    /// A worker that dies (killed, or exits with an error) while the run goes on is replaced by a new process,
    /// which joins the running job; at most this many times in any minute (0: never). Past the bound the run
    /// goes on with fewer workers.
    public var restartsPerMinute = 3
    /// Where restarts (and the refusal to restart past the bound) are reported.
    public var report: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(("rnnlm: " + $0 + "\n").utf8)) }

    /// Set in a worker's environment so it asks to die with its parent (see `bindToParentIfSpawned`).
    static let dieWithParentVariable = "RNNLM_DIE_WITH_PARENT"

    /// Makes the folders (only this user can enter them). `sharedMemory`: exchange payloads through files in
    /// /dev/shm (or the temporary folder) instead of the socket.
    public init(executable: String = LocalWorkers.currentExecutable, sharedMemory: Bool) throws {
        self.executable = executable
        // Folders of runs killed before they could remove theirs (SIGKILL) are removed here.
        Self.removeStaleFolders(in: NSTemporaryDirectory())
        socketFolder = NSTemporaryDirectory() + "rnnlm-\(getpid())"
        try FileManager.default.createDirectory(atPath: socketFolder, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        endpoint = "ipc://\(socketFolder)/coordinator"
        if sharedMemory {
            let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
            Self.removeStaleFolders(in: base)
            let folder = base + "rnnlm-\(getpid())"
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                try? FileManager.default.removeItem(atPath: socketFolder)
                throw error
            }
            self.sharedMemory = folder
        } else {
            self.sharedMemory = nil
        }
    }

    deinit { close() }

    /// This running program (resolving /proc/self/exe when argv[0] is not a path to it).
    public static var currentExecutable: String {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
        if FileManager.default.isExecutableFile(atPath: me) { return me }
        return (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? "/proc/self/exe"
    }

    /// Starts `count` workers of `threads` compute threads each, connecting to `endpoint`.
    public func start(count: Int, threads: Int) throws {
        self.threads = threads
        for i in 0..<count { try launch(name: "local-\(i)") }
    }

    /// Starts one worker named `name`; when it dies while the run goes on, `replace` decides.
    private func launch(name: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = ["worker", "--connect", endpoint, "--threads", String(threads), "--name", name, "--quiet"]
            + (sharedMemory.map { ["--shared-memory-dir", $0] } ?? [])
        var env = ProcessInfo.processInfo.environment
        env[Self.dieWithParentVariable] = "1"
        p.environment = env
        p.terminationHandler = { [weak self] p in self?.replace(p, name: name) }
        lock.lock()
        defer { lock.unlock() }
        guard !stopping else { return }
        try p.run()
        processes.append(p)
    }

    /// A worker exited: a clean exit (the run told it to stop) is left alone; a death while the run goes on is
    /// replaced, within `restartsPerMinute`.
    private func replace(_ p: Process, name: String) {
        let how = p.terminationReason == .uncaughtSignal ? "killed by signal \(p.terminationStatus)" : "exit status \(p.terminationStatus)"
        lock.lock()
        let dead = !stopping && (p.terminationReason == .uncaughtSignal || p.terminationStatus != 0)
        let now = Date()
        restarts.removeAll { now.timeIntervalSince($0) >= 60 }
        let allowed = dead && restarts.count < restartsPerMinute
        if allowed { restarts.append(now) }
        let count = restarts.count
        lock.unlock()
        guard dead else { return }
        guard allowed else {
            report("local worker \(name) (pid \(p.processIdentifier)) died (\(how)); not restarted: \(restartsPerMinute) restart(s) in the last minute is the bound; the run goes on with fewer workers")
            return
        }
        let replacement = name.split(separator: ".").first.map(String.init)! + ".r\(count)"
        do {
            try launch(name: replacement)
            report("local worker \(name) (pid \(p.processIdentifier)) died (\(how)); started \(replacement) in its place, which joins the running job (restart \(count) of at most \(restartsPerMinute) a minute)")
        } catch {
            report("local worker \(name) (pid \(p.processIdentifier)) died (\(how)); its replacement could not start: \(error)")
        }
    }

    /// Terminates the workers (SIGTERM, then SIGKILL after 5 s); none is replaced from now on.
    public func stop() {
        lock.lock()
        stopping = true
        let all = processes
        processes.removeAll()
        lock.unlock()
        for p in all where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while all.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for p in all where p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }

    /// Stops the workers and removes the folders.
    public func close() {
        stop()
        try? FileManager.default.removeItem(atPath: socketFolder)
        if let s = sharedMemory { try? FileManager.default.removeItem(atPath: s) }
    }

    /// In a worker started by `start`: asks the kernel to kill this process when its parent exits. False when the
    /// parent is already gone (the worker should exit at once).
    /// Whether this process is a local worker of `rnnlm train --workers N` (whose status is its parent's to give).
    public static var isSpawnedWorker: Bool { ProcessInfo.processInfo.environment[dieWithParentVariable] == "1" }

    public static func bindToParentIfSpawned() -> Bool {
        guard ProcessInfo.processInfo.environment[dieWithParentVariable] == "1" else { return true }
        _ = rnnlm_die_with_parent()
        return getppid() != 1  // 1: the parent died before we could ask
    }

    /// Removes the socket and shared-memory folders (`rnnlm-PID`, this user's) of runs whose process is gone (killed
    /// with SIGKILL, so its own cleanup never ran): tmpfs files hold memory until deleted.
    static func removeStaleFolders(in base: String) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
        for name in names where name.hasPrefix("rnnlm-") {
            guard let pid = Int32(name.dropFirst("rnnlm-".count)), kill(pid, 0) != 0, errno == ESRCH else { continue }
            let path = base + name
            guard let attrs = try? FileManager.default.attributesOfItem(atPath: path),
                  (attrs[.ownerAccountID] as? NSNumber)?.uint32Value == getuid() else { continue }
            try? FileManager.default.removeItem(atPath: path)
        }
    }
}
