import CLinux
import Foundation

/// Set by SIGINT/SIGTERM once `StopRequest.signals` is armed.
nonisolated(unsafe) private var stopSignal: sig_atomic_t = 0

/// When a run should stop early, checked at step boundaries and while waiting: on SIGINT/SIGTERM for the command
/// line (exit code 130 after a checkpoint), or when a test's condition says so.
public struct StopRequest {
    /// Called once, when the run starts waiting or training (installs signal handlers for `signals`).
    let arm: () -> Void
    /// Whether the run should stop now.
    public let isRequested: () -> Bool

    public init(arm: @escaping () -> Void = {}, isRequested: @escaping () -> Bool) {
        self.arm = arm
        self.isRequested = isRequested
    }

    /// SIGINT and SIGTERM, unblocked first (a spawner may have left them blocked).
    public static var signals: StopRequest {
        StopRequest(arm: {
            signal(SIGINT) { _ in stopSignal = 1 }
            signal(SIGTERM) { _ in stopSignal = 1 }
            rnnlm_unblock_stop_signals()
        }, isRequested: { stopSignal != 0 })
    }

    /// Never: the run ends when training does.
    public static var never: StopRequest { StopRequest(isRequested: { false }) }
}
