import Foundation
import RNNCore
import RNNProtocol
import RNNTransport

/// How a training run serves its workers: where the coordinator listens, how many workers it waits for, and
/// how it treats them.
public struct CoordinatorSettings {
    /// Synchronous or asynchronous parameter server.
    public enum Mode: String, CaseIterable, Sendable {
        /// Every step waits for all workers and equals single-process training.
        case sync
        /// Each gradient is applied on arrival (faster with uneven workers, not reproducible).
        case async
    }

    public var bind: String
    public var expectWorkers: Int
    public var joinTimeout: TimeInterval
    public var stepTimeout: TimeInterval
    public var mode: Mode = .sync
    /// async: the staleness bound (nil: the number of workers).
    public var maxStaleness: Int?
    /// sync: after `stepTimeout`, go on with this many gradients (nil: all workers).
    public var quorum: Int?
    /// Pause while fewer workers are alive; admission starts with this many after `joinTimeout` (nil: 1, and
    /// admission waits for all `expectWorkers`). An asynchronous run admits workers only at its start, so only the
    /// start applies there: it goes on with the workers alive, never pausing for ones that cannot join.
    public var minWorkers: Int?
    public var heartbeatTimeout: Double = 5
    /// How workers send gradients: Float32 (exact), or bfloat16 with error feedback (`--gradient-compression bf16`:
    /// half the bytes of every gradient, lossy).
    public var gradientCompression: GradientCompression = .none

    /// `--gradient-compression`.
    public enum GradientCompression: String, CaseIterable, Sendable {
        /// Float32 values: the run equals the single process.
        case none
        /// bfloat16 values (8 bits of mantissa) with error feedback: each worker keeps what rounding lost and adds
        /// it to its next gradient. Half the upload; the run no longer equals the single process.
        case bf16

        public var encoding: GradientEncoding { self == .none ? .float32 : .bfloat16 }
    }
    /// How a synchronous step's weights go to the workers across sockets (`--broadcast`).
    public var broadcast: Broadcast = .together

    /// `--broadcast`.
    public enum Broadcast: String, CaseIterable, Sendable {
        /// To every worker at once: they share the coordinator's link and all arrive together.
        case together
        /// To one worker at a time, the next when the last says its weights arrived: early workers compute and
        /// upload while later ones download, so a full-duplex link carries weights and gradients at once. Faster
        /// when the coordinator's link is the bottleneck; exact either way.
        case inTurn = "in-turn"
    }
    /// A folder private to this coordinator for shared-memory payload files (local workers only).
    public var sharedMemory: String?
    /// CURVE server keys and the authorised worker keys (public key → name), for non-loopback coordinators.
    public var curve: (keys: CurveKeyPair, authorized: [String: String])?
    /// The ZeroMQ context to open the socket in (`nil`: a new one). Coordinator and workers that share one can
    /// talk over `inproc://` endpoints: a whole distributed run in one process, as the in-process tests drive it.
    public var context: ZMQContext?
    /// Called once the socket is bound (`LocalWorkers` starts its processes here).
    public var afterBind: () throws -> Void = {}

    public init(bind: String, expectWorkers: Int, joinTimeout: TimeInterval, stepTimeout: TimeInterval) {
        self.bind = bind
        self.expectWorkers = expectWorkers
        self.joinTimeout = joinTimeout
        self.stepTimeout = stepTimeout
    }

    /// Rejects settings that cannot work, naming the flag; needs no data, so the command line checks before loading any.
    public func validate() throws(ConfigError) {
        guard heartbeatTimeout >= 1 && heartbeatTimeout.isFinite else { throw ConfigError("--heartbeat-timeout must be at least 1 second") }
        if let q = quorum, !(q >= 1 && q <= expectWorkers) {
            throw ConfigError("--quorum must be between 1 and --expect-workers (\(expectWorkers)), got \(q)")
        }
        guard joinTimeout > 0 && joinTimeout.isFinite else { throw ConfigError("--join-timeout must be more than 0 seconds, got \(joinTimeout)") }
        guard stepTimeout > 0 && stepTimeout.isFinite else { throw ConfigError("--step-timeout must be more than 0 seconds, got \(stepTimeout)") }
        if let m = minWorkers, m < 1 { throw ConfigError("--min-workers must be at least 1") }
        if let m = minWorkers, m > expectWorkers {
            throw ConfigError("--min-workers \(m) is more than the \(expectWorkers) worker(s) the run starts with (--expect-workers, or --workers N): it would pause before its first step; lower --min-workers or raise the worker count")
        }
        switch mode {
        case .async:
            if let s = maxStaleness, s < 0 { throw ConfigError("--max-staleness must be 0 or more") }
            if broadcast == .inTurn {
                throw ConfigError("--broadcast in-turn paces a synchronous step's weights; an asynchronous run sends each worker its weights when its gradient arrives: drop one of --mode async and --broadcast in-turn")
            }
            if quorum != nil {
                throw ConfigError("--quorum lets a synchronous step go on without its stragglers; an asynchronous run never waits for one: drop one of --mode async and --quorum")
            }
        case .sync:
            if maxStaleness != nil {
                throw ConfigError("--max-staleness bounds how stale an asynchronous run's gradients may be; a synchronous step uses only gradients of its own weights: add --mode async or drop --max-staleness")
            }
        }
    }

    /// Whether `endpoint` (tcp://HOST:PORT) only accepts connections from this machine.
    public static func isLoopback(_ endpoint: String) -> Bool {
        let address = endpoint.dropFirst("tcp://".count)
        let host = address.lastIndex(of: ":").map { String(address[..<$0]) } ?? String(address)
        return host.hasPrefix("127.") || host == "localhost" || host == "[::1]"
    }
}
