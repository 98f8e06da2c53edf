import Foundation

// Shapes: P parameters, B rows, T steps, E embedding, H hidden, L layers, G gates, V vocabulary (Vt: target).

/// What training a model takes in memory, estimated from its spec before anything is allocated, so a model or
/// batch too large for the machine is refused with a message instead of aborting in the allocator.
/// Bytes are `Double`s: the sizes a user may ask for overflow no `Int` product here.
public struct MemoryEstimate: Equatable, Sendable {
    /// Parameters, gradients (P floats each), optimizer slots (k·P), and the forward/backward workspaces of B rows
    /// over T steps (an estimate: activations and their gradients per layer, logits and their gradient).
    public var parameters: Double, gradients: Double, optimizer: Double, workspaces: Double
    public var total: Double { parameters + gradients + optimizer + workspaces }

    public init(parameters: Double, gradients: Double, optimizer: Double, workspaces: Double) {
        self.parameters = parameters; self.gradients = gradients; self.optimizer = optimizer; self.workspaces = workspaces
    }

    /// Throws when more than `available` bytes are needed (by default what the machine reports, read again a few
    /// times over half a second before refusing: one reading taken while a neighbour briefly held the memory, or
    /// of a /proc file that came back short, is not a reason to refuse a run), naming the parts and what to lower.
    /// `who` says whose memory it is ("this machine", "this worker").
    public func check(available given: Available? = nil, who: String = "this machine", lower: String) throws(ConfigError) {
        var available = given ?? .current()
        if given == nil && available.source != Available.limitVariable {
            for _ in 0..<5 {
                guard let bytes = available.bytes, total > bytes else { break }
                usleep(100_000)
                let again = Available.current()
                if (again.bytes ?? .infinity) > bytes { available = again }
            }
        }
        guard let bytes = available.bytes, total > bytes else { return }
        throw ConfigError("training needs about \(Self.format(total)) (parameters \(Self.format(parameters)), gradients \(Self.format(gradients)), optimizer state \(Self.format(optimizer)), workspaces \(Self.format(workspaces))), but \(who) has \(Self.format(bytes)) available (\(available.source)); \(lower)")
    }

    /// Bytes in GB/MB/kB with 3 significant digits, e.g. "480 GB".
    public static func format(_ bytes: Double) -> String {
        for (unit, scale) in [("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)] where bytes >= scale {
            return String(format: "%.3g %@", bytes / scale, unit)
        }
        return "\(Int(bytes)) bytes"
    }

    /// Memory available to this process, and where the figure comes from.
    public struct Available: Equatable, Sendable {
        public var bytes: Double?
        public var source: String
        public init(bytes: Double?, source: String) { self.bytes = bytes; self.source = source }

        /// The environment variable that caps the memory a process may plan for, in bytes.
        public static let limitVariable = "RNNLM_MEMORY_LIMIT"

        /// `RNNLM_MEMORY_LIMIT` (bytes) if set, to cap a process below what the machine reports; else the smaller of
        /// `/proc/meminfo` MemAvailable (or sysconf's available pages) and the cgroup's memory.max less its usage.
        public static func current(environment: [String: String] = ProcessInfo.processInfo.environment) -> Available {
            if let s = environment[limitVariable], let b = Double(s), b >= 0 {
                return Available(bytes: b, source: limitVariable)
            }
            var best = Available(bytes: nil, source: "unknown")
            if let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
               let kb = Double(line.split(separator: " ").dropFirst().first ?? "") {
                best = Available(bytes: kb * 1024, source: "MemAvailable in /proc/meminfo")
            } else {
                let pages = sysconf(Int32(_SC_AVPHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
                if pages > 0 && size > 0 { best = Available(bytes: Double(pages) * Double(size), source: "sysconf available pages") }
            }
            // `ulimit -v`: the address space left to this process (past it, an allocation fails and the process traps).
            var limit = rlimit()
            #if os(Linux)
            let asResource = __rlimit_resource_t(RLIMIT_AS.rawValue)
            #else
            let asResource = RLIMIT_AS
            #endif
            if getrlimit(asResource, &limit) == 0, limit.rlim_cur != rlim_t.max,
               let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
               let pages = Double(statm.split(separator: " ").first ?? "") {
                let left = Swift.max(0, Double(limit.rlim_cur) - pages * Double(sysconf(Int32(_SC_PAGESIZE))))
                if best.bytes.map({ left < $0 }) ?? true {
                    best = Available(bytes: left, source: "ulimit -v less this process's address space")
                }
            }
            let read = { (p: String) in (try? String(contentsOfFile: p, encoding: .utf8)).flatMap { Double($0.trimmingCharacters(in: .whitespacesAndNewlines)) } }
            if let max = read("/sys/fs/cgroup/memory.max"), let used = read("/sys/fs/cgroup/memory.current"),
               best.bytes.map({ max - used < $0 }) ?? true {
                best = Available(bytes: Swift.max(0, max - used), source: "cgroup memory.max less memory.current")
            }
            return best
        }
    }
}

extension ModelSpec {
    /// What training this model on `rows` rows of `steps` steps takes, with `optimizerSlots` buffers of P floats
    /// (0 on a worker: the coordinator updates the parameters).
    public func trainingMemory(rows: Int, steps: Int, optimizerSlots: Int) -> MemoryEstimate {
        let f = 4.0
        let n = Double(rows) * Double(steps)
        // Per row and step: the input and its gradient, per layer the gates, states and their gradients, the output
        // layer's input, logits and their gradient.
        func stack(_ c: CellKind, _ e: Int, _ h: Int, _ l: Int) -> Double {
            2 * Double(e) + Double(l) * (2 * Double(c.gates) + 4) * Double(h)
        }
        let p: Double, perStep: Double
        switch self {
        case .languageModel(let c):
            p = Self.parameterCount(self)
            perStep = stack(c.cell, c.embedSize, c.hiddenSize, c.layers) + 2 * Double(c.hiddenSize) + 2 * Double(c.vocabSize)
        case .translation(let c):
            p = Self.parameterCount(self)
            perStep = stack(c.cell, c.embedSize, c.hiddenSize, c.layers) * 2 + 2 * Double(c.hiddenSize) + 2 * Double(c.targetVocabSize)
        }
        return MemoryEstimate(parameters: p * f, gradients: p * f, optimizer: Double(optimizerSlots) * p * f, workspaces: n * perStep * f)
    }

    /// P, summed in `Double` from the layout's shapes (the layout holds names and shapes only, no values).
    static func parameterCount(_ spec: ModelSpec) -> Double {
        spec.layout.tensors.reduce(0.0) { $0 + $1.shape.reduce(1.0) { $0 * Double($1) } }
    }
}
