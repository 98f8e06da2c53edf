import CLinux
import Foundation

/// The worker processes of `rnnlm train --workers N`, and the private folders they share with the coordinator:
/// an ipc socket's folder and, in synchronous mode, a tmpfs folder for shared-memory payloads. The workers are
/// this executable run as `worker`; they die with this process (PR_SET_PDEATHSIG).
public final class LocalWorkers {
    /// Where the coordinator listens and the workers connect.
    public let endpoint: String
    /// The shared-memory folder, when payloads bypass the socket.
    public let sharedMemory: String?
    private let socketFolder: String
    private let executable: String
    private var processes: [Process] = []

    /// Set in a worker's environment so it asks to die with its parent (see `bindToParentIfSpawned`).
    static let dieWithParentVariable = "RNNLM_DIE_WITH_PARENT"

    /// Makes the folders (only this user can enter them). `sharedMemory`: exchange payloads through files in
    /// /dev/shm (or the temporary folder) instead of the socket.
    public init(executable: String = LocalWorkers.currentExecutable, sharedMemory: Bool) throws {
        self.executable = executable
        socketFolder = NSTemporaryDirectory() + "rnnlm-\(getpid())"
        try FileManager.default.createDirectory(atPath: socketFolder, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        endpoint = "ipc://\(socketFolder)/coordinator"
        if sharedMemory {
            let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
            Self.removeStaleSharedMemory(in: base)
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
        for i in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: executable)
            p.arguments = ["worker", "--connect", endpoint, "--threads", String(threads), "--name", "local-\(i)", "--quiet"]
                + (sharedMemory.map { ["--shared-memory-dir", $0] } ?? [])
            var env = ProcessInfo.processInfo.environment
            env[Self.dieWithParentVariable] = "1"
            p.environment = env
            try p.run()
            processes.append(p)
        }
    }

    /// Terminates the workers (SIGTERM, then SIGKILL after 5 s).
    public func stop() {
        for p in processes where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while processes.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        processes.removeAll()
    }

    /// Stops the workers and removes the folders.
    public func close() {
        stop()
        try? FileManager.default.removeItem(atPath: socketFolder)
        if let s = sharedMemory { try? FileManager.default.removeItem(atPath: s) }
    }

    /// In a worker started by `start`: asks the kernel to kill this process when its parent exits. False when the
    /// parent is already gone (the worker should exit at once).
    public static func bindToParentIfSpawned() -> Bool {
        guard ProcessInfo.processInfo.environment[dieWithParentVariable] == "1" else { return true }
        _ = rnnlm_die_with_parent()
        return getppid() != 1  // 1: the parent died before we could ask
    }

    /// Removes the shared-memory folders (`rnnlm-PID`, this user's) of runs whose process is gone (killed with
    /// SIGKILL, so its own cleanup never ran): tmpfs files hold memory until deleted.
    static func removeStaleSharedMemory(in base: String) {
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
