import Foundation
import RNNTrain

/// Where a run's text goes: standard output and standard error for the command line; a test passes closures that
/// collect it (from
/// any thread: the CURVE authenticator logs from its own). Each call is one write of whole text (lines end in "\n"; a terminal's status line uses "\r").
public struct OutputSink: Sendable {
    public var standardOutput: @Sendable (String) -> Void
    public var standardError: @Sendable (String) -> Void
    /// Whether `standardOutput` is a terminal: a live status line instead of a plain line per interval.
    public var isTerminal: Bool

    public init(standardOutput: @escaping @Sendable (String) -> Void, standardError: @escaping @Sendable (String) -> Void,
                isTerminal: Bool = false) {
        self.standardOutput = standardOutput
        self.standardError = standardError
        self.isTerminal = isTerminal
    }

    /// This process's standard output and error, unbuffered.
    public static var console: OutputSink {
        OutputSink(standardOutput: { FileHandle.standardOutput.write(Data($0.utf8)) },
                   standardError: { FileHandle.standardError.write(Data($0.utf8)) },
                   isTerminal: ProgressReporter.stdoutIsTerminal)
    }
}

/// A run's messages: through the progress display when there is one, and only at `level` ≥ info.
final class RunLog {
    let level: LogLevel
    let sink: OutputSink
    var reporter: ProgressReporter?

    init(level: LogLevel, sink: OutputSink) {
        self.level = level
        self.sink = sink
    }

    func say(_ line: String) {
        guard level >= .info else { return }
        // One unbuffered path for every line, so lines and the status display never interleave out of order.
        if let r = reporter { r.line(line) } else { sink.standardOutput(line + "\n") }
    }
}
