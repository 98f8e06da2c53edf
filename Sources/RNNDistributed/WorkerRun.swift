import Foundation
import RNNCore
import RNNProtocol
import RNNTransport

/// One worker process's life as `rnnlm worker` runs it: join the coordinator, compute gradients until told to stop
/// (or stopped by its `StopRequest`), rejoining a restarted coordinator within `rejoinGrace`. The counterpart of
/// `TrainingRun` on the worker side; the loop itself is `runWorker`.
public struct WorkerRun {
    public struct Settings {
        /// The coordinator's endpoint, e.g. tcp://HOST:5555.
        public var endpoint: String
        /// Name shown in the coordinator's log.
        public var name: String
        /// The coordinator's public key and this worker's key pair, when the coordinator requires CURVE.
        public var curve: (serverKey: String, keys: CurveKeyPair)?
        public var joinTimeout: TimeInterval = 120
        /// Seconds of silence after which the coordinator is considered lost.
        public var timeout: TimeInterval = 900
        /// Seconds a worker that lost its coordinator keeps trying to rejoin.
        public var rejoinGrace: TimeInterval = 60
        /// Compute threads: the worker's streams are split across them.
        public var threads = 1
        /// The coordinator's private folder for shared-memory payloads (set by `LocalWorkers`).
        public var sharedMemoryDirectory: String?
        /// Print only errors (no progress lines, no final reason).
        public var quiet = false
        /// The ZeroMQ context to connect in (`nil`: a new one); see `CoordinatorSettings.context`.
        public var context: ZMQContext?
        /// Sleep this long before each gradient (tests of straggler handling).
        public var delayMilliseconds = 0

        public init(endpoint: String, name: String) {
            self.endpoint = endpoint
            self.name = name
        }

        /// The default name: host:pid.
        public static var defaultName: String { "\(ProcessInfo.processInfo.hostName):\(getpid())" }

        public func validate() throws(ConfigError) {
            guard threads >= 1 else { throw ConfigError("--threads must be 1 or more") }
            guard joinTimeout > 0 && joinTimeout.isFinite else { throw ConfigError("--join-timeout must be a number of seconds above 0, got \(joinTimeout)") }
            guard timeout > 0 && timeout.isFinite else { throw ConfigError("--timeout must be a number of seconds above 0, got \(timeout)") }
            guard rejoinGrace >= 0 && rejoinGrace.isFinite else { throw ConfigError("--rejoin-grace must be a number of seconds, 0 or more, got \(rejoinGrace)") }
        }
    }

    /// How the worker's run ended.
    public struct Outcome: Sendable {
        /// The coordinator's reason for stopping this worker, or "interrupted".
        public var reason: String
        /// Stopped by the `StopRequest`.
        public var interrupted: Bool
        /// Why, when `interrupted`.
        public var stopCause: StopCause?

        /// The process exit status the command line uses: the stop cause's (130 for SIGINT, 143 for SIGTERM), 1 when
        /// the coordinator stopped it because the run failed, else 0.
        public var exitCode: Int32 {
            if interrupted { return (stopCause ?? .interrupt).exitCode }
            return reason.hasPrefix(Message.runFailedPrefix) ? 1 : 0
        }
    }

    public let settings: Settings
    let sink: OutputSink
    let stop: StopRequest

    public init(settings: Settings, output: OutputSink = .console, stop: StopRequest = .workerSignals) {
        self.settings = settings
        self.sink = output
        self.stop = stop
    }

    public func run() throws -> Outcome {
        try settings.validate()
        let s = settings, sink = sink
        setBLASThreads(1)  // the worker's threads split its streams (DataParallel); BLAS stays single-threaded
        stop.arm()
        let reason = try runWorker(endpoint: s.endpoint, name: s.name, curve: s.curve, joinTimeout: s.joinTimeout,
                                   timeout: s.timeout, rejoinGrace: s.rejoinGrace, threads: s.threads,
                                   sharedMemoryDirectory: s.sharedMemoryDirectory, context: s.context, shouldStop: stop.isRequested,
                                   log: { if !s.quiet { sink.standardOutput($0 + "\n") } },
                                   warn: { sink.standardError("warning: \($0)\n") },
                                   delayMilliseconds: max(0, s.delayMilliseconds))
        if !s.quiet { sink.standardOutput("worker done: \(reason)\n") }
        let interrupted = stop.isRequested()
        return Outcome(reason: reason, interrupted: interrupted, stopCause: interrupted ? stop.cause() : nil)
    }
}
