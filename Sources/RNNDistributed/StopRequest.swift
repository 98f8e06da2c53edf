import CLinux
import Foundation

/// Why a run stopped early, and the exit status the command line reports for it (128 + the signal's number, as a
/// shell reports a process the signal killed; batch systems and supervisors read it that way).
public enum StopCause: Sendable, Equatable {
    /// SIGINT (Ctrl-C), or a test's condition: exit status 130.
    case interrupt
    /// SIGTERM (`kill`, `scancel`, Kubernetes stopping a pod): exit status 143.
    case terminate
    /// SIGUSR1 (Slurm's `--signal=B:USR1@SECONDS` before the time limit): a checkpoint so the job can be
    /// requeued; exit status 138.
    case requeue

    public var exitCode: Int32 {
        switch self {
        case .interrupt: 130
        case .terminate: 143
        case .requeue: 138
        }
    }

    /// The signal's name, for messages.
    public var signalName: String {
        switch self {
        case .interrupt: "SIGINT"
        case .terminate: "SIGTERM"
        case .requeue: "SIGUSR1"
        }
    }
}

/// When a run should stop early, checked at step boundaries and while waiting: on a signal for the command line
/// (see `signals`), or when a test's condition says so.
public struct StopRequest {
    /// Called once, when the run starts waiting or training (installs signal handlers for `signals`).
    let arm: () -> Void
    /// Whether the run should stop now.
    public let isRequested: () -> Bool
    /// Why, once `isRequested` is true.
    public let cause: () -> StopCause

    public init(arm: @escaping () -> Void = {}, isRequested: @escaping () -> Bool,
                cause: @escaping () -> StopCause = { .interrupt }) {
        self.arm = arm
        self.isRequested = isRequested
        self.cause = cause
    }

    /// A coordinator's or a single process's signals: SIGINT, SIGTERM and SIGUSR1 stop the run after the current
    /// step, with a checkpoint; a second SIGINT exits at once (status 130, no checkpoint). Unblocked first (a
    /// spawner may have left them blocked).
    public static var signals: StopRequest {
        StopRequest(arm: {
            rnnlm_install_stop_handlers(1, "\nstopping after this step (a checkpoint is saved); Ctrl-C again to exit at once\n")
        }, isRequested: { rnnlm_stop_signal() != 0 }, cause: { cause(ofSignal: rnnlm_stop_signal()) })
    }

    /// A worker's signals: SIGINT and SIGTERM stop it (a second SIGINT at once); SIGUSR1 is ignored, since Slurm
    /// sends it to every task and the coordinator checkpoints and then stops its workers.
    public static var workerSignals: StopRequest {
        StopRequest(arm: { rnnlm_install_stop_handlers(0, nil) }, isRequested: { rnnlm_stop_signal() != 0 },
                    cause: { cause(ofSignal: rnnlm_stop_signal()) })
    }

    /// Never: the run ends when training does.
    public static var never: StopRequest { StopRequest(isRequested: { false }) }

    static func cause(ofSignal s: Int32) -> StopCause {
        switch s {
        case SIGTERM: .terminate
        case SIGUSR1: .requeue
        default: .interrupt
        }
    }
}
