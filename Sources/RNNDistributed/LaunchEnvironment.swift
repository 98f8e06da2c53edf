import Foundation
import RNNCore

/// A process's place in a job started by a launcher, read from the environment the launcher sets, so that one
/// command (`rnnlm launch`) runs on every process: rank 0 coordinates, the others are workers.
///
/// - torchrun-style launchers (torchrun, Kubeflow's PyTorchJob): `RANK`, `WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`.
/// - Slurm (`srun`): `SLURM_PROCID`, `SLURM_NTASKS`, and the coordinator's host is the first of `SLURM_JOB_NODELIST`
///   (or `MASTER_ADDR` when the job script sets it); the port is `MASTER_PORT` when set, else `defaultPort`.
///
/// When both are present (torchrun inside a Slurm allocation) the torchrun variables win: they describe this
/// process, Slurm's describe the task that started the launcher.
public struct LaunchEnvironment: Equatable, Sendable {
    public enum Launcher: String, Sendable {
        case torchrun
        case slurm
    }

    public var launcher: Launcher
    /// 0 is the coordinator; 1..<worldSize are workers.
    public var rank: Int
    /// Processes in the job: the coordinator and `worldSize - 1` workers.
    public var worldSize: Int
    /// Where the coordinator runs, as the workers reach it.
    public var coordinatorHost: String
    public var port: Int
    /// How the settings were found, for the log (e.g. "RANK=1 WORLD_SIZE=3 MASTER_ADDR=127.0.0.1 MASTER_PORT=5555").
    public var origin: String

    /// The port used under Slurm when `MASTER_PORT` is not set (as `cluster/slurm/train.sbatch`).
    public static let defaultPort = 5555

    public var isCoordinator: Bool { rank == 0 }
    public var workerCount: Int { worldSize - 1 }

    /// What the coordinator listens on: the coordinator host itself when it is a loopback address (a job on one
    /// machine needs no keys), otherwise every interface (`MASTER_ADDR` may be a name, such as a Kubernetes
    /// Service's, that resolves to an address this process cannot bind).
    public var bindEndpoint: String {
        // libzmq binds addresses and interface names, not host names: localhost is 127.0.0.1 there.
        let host = coordinatorHost == "localhost" ? "127.0.0.1" : hostForEndpoint
        return CoordinatorSettings.isLoopback("tcp://\(host):\(port)") ? "tcp://\(host):\(port)" : "tcp://*:\(port)"
    }

    /// What the workers connect to.
    public var connectEndpoint: String { "tcp://\(hostForEndpoint):\(port)" }

    /// A worker's name in the coordinator's log.
    public func workerName(host: String) -> String { "\(host):rank\(rank)" }

    private var hostForEndpoint: String {
        coordinatorHost.contains(":") && !coordinatorHost.hasPrefix("[") ? "[\(coordinatorHost)]" : coordinatorHost
    }

    /// Reads the environment. `hostnames` expands a Slurm node list into host names (`scontrol show hostnames`
    /// by default; nil when that is unavailable, and the list is then parsed here). `port` overrides the
    /// environment's port. Errors name the variables that are missing or inconsistent.
    public init(environment env: [String: String], port override: Int? = nil,
                hostnames: (String) -> [String]? = LaunchEnvironment.scontrolHostnames) throws(ConfigError) {
        func value(_ name: String) -> String? {
            guard let v = env[name]?.trimmingCharacters(in: .whitespaces), !v.isEmpty else { return nil }
            return v
        }
        func integer(_ name: String) throws(ConfigError) -> Int {
            guard let text = value(name), let n = Int(text) else {
                throw ConfigError("\(name)=\(env[name] ?? "") is not a whole number")
            }
            return n
        }
        let torchrunNames = ["RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"]
        var portText: String?
        if value("RANK") != nil || value("WORLD_SIZE") != nil {
            let missing = torchrunNames.filter { value($0) == nil }
            if !missing.isEmpty && !(missing == ["MASTER_PORT"] && override != nil) {
                throw ConfigError("the launcher set \(torchrunNames.filter { value($0) != nil }.joined(separator: ", ")) but not \(missing.joined(separator: ", ")); rnnlm launch needs all of RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT (torchrun, Kubeflow PyTorchJob)")
            }
            launcher = .torchrun
            rank = try integer("RANK")
            worldSize = try integer("WORLD_SIZE")
            coordinatorHost = value("MASTER_ADDR")!
            portText = value("MASTER_PORT")
            origin = torchrunNames.compactMap { n in value(n).map { "\(n)=\($0)" } }.joined(separator: " ")
        } else if value("SLURM_PROCID") != nil {
            guard value("SLURM_NTASKS") != nil else {
                throw ConfigError("SLURM_PROCID is set but SLURM_NTASKS is not: start the job with a task count (srun -n N, or sbatch --ntasks / --ntasks-per-node)")
            }
            launcher = .slurm
            rank = try integer("SLURM_PROCID")
            worldSize = try integer("SLURM_NTASKS")
            if let master = value("MASTER_ADDR") {
                coordinatorHost = master
                origin = "SLURM_PROCID=\(rank) SLURM_NTASKS=\(worldSize) MASTER_ADDR=\(master)"
            } else {
                // Task 0 runs on the first node of its step, which need not be the job's first (srun -w, -r).
                let listName = ["SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"].first { value($0) != nil } ?? "SLURM_JOB_NODELIST"
                guard let list = value(listName) else {
                    throw ConfigError("SLURM_PROCID is set but neither SLURM_STEP_NODELIST, SLURM_JOB_NODELIST nor MASTER_ADDR is: cannot tell which host runs the coordinator (task 0)")
                }
                guard let first = hostnames(list)?.first ?? Self.firstHost(ofNodeList: list) else {
                    throw ConfigError("\(listName)=\(list) names no host")
                }
                coordinatorHost = first
                origin = "SLURM_PROCID=\(rank) SLURM_NTASKS=\(worldSize) \(listName)=\(list) (first host \(first))"
            }
            portText = value("MASTER_PORT")
            if let p = portText { origin += " MASTER_PORT=\(p)" }
        } else {
            throw ConfigError("rnnlm launch reads its rank from a launcher's environment, and none is set: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun, Kubeflow PyTorchJob) or SLURM_PROCID, SLURM_NTASKS, SLURM_JOB_NODELIST (srun); to start processes by hand use rnnlm coordinator and rnnlm worker")
        }
        if let p = override {
            port = p
            origin += " --port \(p)"
        } else if let text = portText {
            guard let p = Int(text) else { throw ConfigError("MASTER_PORT=\(text) is not a port number") }
            // torchrun's agent keeps its own store on MASTER_PORT and says so with this variable; rnnlm takes the
            // next port rather than colliding with it.
            if env["TORCHELASTIC_USE_AGENT_STORE"]?.lowercased() == "true" {
                port = p + 1
                origin += " (torchrun's store holds \(p); rnnlm uses \(p + 1))"
            } else {
                port = p
            }
        } else {
            port = Self.defaultPort
            origin += " port \(Self.defaultPort)"
        }
        guard (1...65535).contains(port) else { throw ConfigError("the coordinator's port must be between 1 and 65535, got \(port)") }
        let (rankName, sizeName) = launcher == .torchrun ? ("RANK", "WORLD_SIZE") : ("SLURM_PROCID", "SLURM_NTASKS")
        guard worldSize >= 2 else {
            throw ConfigError("\(sizeName)=\(worldSize): rnnlm launch needs at least 2 processes (a coordinator and a worker); for one process use rnnlm train")
        }
        guard rank >= 0 && rank < worldSize else {
            throw ConfigError("\(rankName)=\(rank) is outside 0..<\(sizeName) (\(worldSize))")
        }
    }

    /// The first host of a Slurm node list, without `scontrol`: `h1,h2` gives `h1`, `node[07-09,12]` gives `node07`,
    /// `rack[1-2]-n[3-4]` gives `rack1-n3`. Nil for an empty list.
    public static func firstHost(ofNodeList list: String) -> String? {
        var first = ""
        var depth = 0
        for c in list {
            if c == "," && depth == 0 { break }
            if c == "[" { depth += 1 } else if c == "]" { depth -= 1 }
            first.append(c)
        }
        var host = ""
        var rest = Substring(first)
        while let open = rest.firstIndex(of: "[") {
            host += rest[..<open]
            guard let close = rest[open...].firstIndex(of: "]") else { return nil }
            // The group's first item, and of a range its start (zero padding kept).
            let item = rest[rest.index(after: open)..<close].split(separator: ",").first ?? ""
            host += item.split(separator: "-").first ?? ""
            rest = rest[rest.index(after: close)...]
        }
        host += rest
        let trimmed = host.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }

    /// `scontrol show hostnames LIST`, or nil when scontrol is not on PATH or fails.
    public static func scontrolHostnames(_ list: String) -> [String]? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["scontrol", "show", "hostnames", list]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        let hosts = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init).filter { !$0.isEmpty }
        return hosts.isEmpty ? nil : hosts
    }
}
