import RNNTrain

/// What a `TrainingRun` did.
public struct RunSummary: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// Trained to the last epoch.
        case trained
        /// The checkpoint had already reached the epochs asked for; nothing was trained.
        case alreadyComplete
        /// Stopped early by the `StopRequest`; `checkpoint` is what was saved (nil without a checkpoint folder).
        case interrupted(checkpoint: String?)
    }

    public var outcome: Outcome
    /// The run's resolved settings (a resumed run's are its checkpoint's, with the flags that may change applied).
    public var options: TrainOptions
    /// Completed epochs and optimizer steps, counting those before a resume.
    public var epochs: Int
    public var steps: Int
    /// One report per completed epoch, as printed.
    public var history: [EpochReport]
    public var testPerplexity: Double?
    /// The newest checkpoint when the run ended.
    public var checkpoint: String?
    /// Wall time of the training loop (0 when nothing was trained).
    public var seconds: Double
    /// Why an interrupted run stopped.
    public var stopCause: StopCause = .interrupt

    /// The process exit status the command line uses: the stop cause's when interrupted (130 for SIGINT, 143 for
    /// SIGTERM, 138 for SIGUSR1), else 0.
    public var exitCode: Int32 {
        if case .interrupted = outcome { return stopCause.exitCode }
        return 0
    }
}
