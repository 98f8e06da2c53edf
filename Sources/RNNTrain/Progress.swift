import Foundation
import RNNCore

/// How much a run prints.
public enum LogLevel: String, CaseIterable, Sendable, Comparable {
    case error, warning, info, debug
    public static func < (a: LogLevel, b: LogLevel) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
}

/// Aggregates steps over an interval: mean loss, tokens/s, gradient norm, clip rate.
struct IntervalStats {
    var loss = LossSum()
    var steps = 0
    var clipped = 0
    var normSum = 0.0
    var start = Date()
    /// When the last step was added, and the seconds since `start` spent on other work (an epoch's validation).
    var lastStep = Date()
    var excluded = 0.0

    mutating func add(_ s: StepInfo) {
        loss.sum += s.loss.sum
        loss.count += s.loss.count
        steps += 1
        if s.clipped { clipped += 1 }
        normSum += s.gradientNorm
        lastStep = Date()
    }

    /// Leaves the time since the last step (validation, BLEU decoding) out of the interval's tokens/s.
    mutating func excludeSinceLastStep() {
        let now = Date()
        excluded += now.timeIntervalSince(lastStep)
        lastStep = now
    }

    /// Seconds of training in the interval.
    var seconds: Double { max(Date().timeIntervalSince(start) - excluded, 1e-9) }
}

/// The live view of a run. On a terminal: one status line redrawn in place (at most 5 times a second) with
/// epoch, step/total, tokens/s, loss and perplexity, learning rate, gradient norm and clip rate, workers
/// alive and ETA, cut to the terminal's width so it never wraps; epoch lines scroll above it. Otherwise: a plain line
/// every `every` steps.
public final class ProgressReporter {
    public let isTerminal: Bool
    public let level: LogLevel
    public let every: Int
    /// Steps the run will take (an asynchronous run updates it as workers come and go).
    public var totalSteps: Int
    public let epochs: Int
    /// Workers alive / expected, when training is distributed.
    public var workers: () -> (alive: Int, expected: Int)? = { nil }
    /// The terminal's width in columns, read at each redraw (the window may be resized).
    public var columns: () -> Int = ProgressReporter.terminalColumns
    private var stats = IntervalStats()
    private var redrawStats = IntervalStats()
    private var lastRedraw = Date.distantPast
    private let runStart = Date()
    private var firstStep: Int?
    private var statusVisible = false
    private let write: (String) -> Void

    public init(isTerminal: Bool, level: LogLevel, every: Int, totalSteps: Int, epochs: Int,
                write: @escaping (String) -> Void = { FileHandle.standardOutput.write(Data($0.utf8)) }) {
        self.isTerminal = isTerminal; self.level = level; self.every = max(1, every)
        self.totalSteps = totalSteps; self.epochs = epochs; self.write = write
    }

    /// Whether standard output is a terminal.
    public static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }

    /// The width of the terminal on standard output (`TIOCGWINSZ`), else `$COLUMNS`, else 80.
    public static func terminalColumns() -> Int {
        var size = winsize()
        #if os(Linux)
        let request = UInt(TIOCGWINSZ)
        #else
        let request: UInt = 0x4008_7468  // Darwin's _IOR('t', 104, struct winsize)
        #endif
        if ioctl(STDOUT_FILENO, request, &size) == 0, size.ws_col > 0 { return Int(size.ws_col) }
        if let c = ProcessInfo.processInfo.environment["COLUMNS"].flatMap({ Int($0) }), c > 0 { return c }
        return 80
    }

    /// `line` cut to `columns` − 1 characters: a line that fills the last column makes some terminals wrap, and a
    /// wrapped status line is not erased by the next redraw. Cuts between characters, never inside one (each character
    /// is taken as one column, true of the status line's ASCII).
    public static func fit(_ line: String, columns: Int) -> String {
        let room = max(columns - 1, 0)
        return line.count <= room ? line : String(line.prefix(room))
    }

    public func step(_ s: StepInfo) {
        if firstStep == nil { firstStep = s.step - 1 }
        stats.add(s)
        redrawStats.add(s)
        guard level >= .info else { return }
        if isTerminal {
            if Date().timeIntervalSince(lastRedraw) >= 0.2 {
                write("\r" + Self.fit(statusLine(s, redrawStats), columns: columns()) + "\u{1B}[K")
                statusVisible = true
                lastRedraw = Date()
                redrawStats = IntervalStats()
            }
            if level >= .debug && s.step % every == 0 { line(statusLine(s, stats)); stats = IntervalStats() }
        } else if s.step % every == 0 {
            line(statusLine(s, stats))
            stats = IntervalStats()
        }
    }

    /// Prints a permanent line (an epoch summary, a message) above the status line.
    public func line(_ text: String) {
        if statusVisible { write("\r\u{1B}[K"); statusVisible = false }
        write(text + "\n")
    }

    /// An epoch ended (validated, reported): its validation time stays out of the next tokens/s.
    public func epochEnded() {
        stats.excludeSinceLastStep()
        redrawStats.excludeSinceLastStep()
    }

    /// Removes the status line (end of run).
    public func finish() {
        if statusVisible { write("\r\u{1B}[K"); statusVisible = false }
    }

    func statusLine(_ s: StepInfo, _ i: IntervalStats) -> String {
        let seconds = i.seconds
        let mean = i.loss.count > 0 ? i.loss.sum / Double(i.loss.count) : .nan
        var parts = [
            "epoch \(s.epoch + 1)/\(epochs)",
            "step \(s.step)/\(totalSteps)",
            "\(grouped(Int((Double(i.loss.count) / seconds).rounded()))) tok/s",
            String(format: "loss %.3f", mean),
            String(format: "ppl %.2f", exp(mean)),
            "lr \(s.lr)",
            String(format: "|g| %.2f", i.normSum / Double(max(i.steps, 1))),
            String(format: "clip %.0f%%", 100 * Double(i.clipped) / Double(max(i.steps, 1))),
        ]
        if let w = workers() { parts.append("workers \(w.alive)/\(w.expected)") }
        let done = s.step - (firstStep ?? 0)
        if done > 0 && totalSteps > s.step {
            let perStep = Date().timeIntervalSince(runStart) / Double(done)
            parts.append("ETA " + duration(perStep * Double(totalSteps - s.step)))
        }
        return parts.joined(separator: "  ")
    }
}

/// `93` → `1m33s`.
public func duration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
    if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
    return "\(s)s"
}

/// Appends one JSON object per line to a metrics file as training goes (each line is one `write(2)`, so a
/// crash keeps everything written before it). A step record every `every` steps, an epoch record per epoch; every
/// record has `wall_time` (Unix seconds). With `tensorBoard` settings, the same scalars also go to a TensorBoard event
/// file beside the metrics file (tags `train/<field>` and `epoch/<field>`, step = optimizer step), and the settings
/// as a text summary `run/settings`.
public final class MetricsWriter {
    public let path: String
    public let every: Int
    /// The TensorBoard event file, when there is one.
    public let events: EventFileWriter?
    private let handle: FileHandle
    private let start = Date()
    private var stats = IntervalStats()
    public var workers: () -> Int? = { nil }

    /// - Parameters:
    ///   - tensorBoard: the run's resolved settings (`TrainOptions.tomlLines()`); nil writes no event file.
    ///   - step: the optimizer step the run starts at (the step of the settings summary).
    ///
    /// A file that exists already keeps only its complete records up to `step`: a resumed run rewrites the steps
    /// after its checkpoint, which the run that stopped may have logged too (and a record cut by a crash goes).
    public init(path: String, every: Int, tensorBoard settings: [String]? = nil, step: Int = 0) throws {
        self.path = path
        self.every = max(1, every)
        if FileManager.default.fileExists(atPath: path) {
            try Self.keepRecords(upTo: step, in: path)
        } else {
            // Its folder is made as TensorBoard's SummaryWriter makes its log folder.
            let folder = (path as NSString).deletingLastPathComponent
            if !folder.isEmpty { try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true) }
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw TrainingError("cannot create the metrics file \(path) (is its folder writable?)")
            }
        }
        guard let h = FileHandle(forWritingAtPath: path) else { throw TrainingError("cannot open the metrics file \(path)") }
        h.seekToEndOfFile()
        handle = h
        if let settings {
            let now = Date().timeIntervalSince1970
            let events = try EventFileWriter(directory: (path as NSString).deletingLastPathComponent, wallTime: now)
            // What earlier files of this folder logged after `step` is dropped, as from metrics.jsonl.
            events.write(TensorBoardEvent.sessionStart(step: step + 1, wallTime: now))
            events.text(tag: "run/settings", "```toml\n" + settings.joined(separator: "\n") + "\n```", step: step, wallTime: now)
            self.events = events
        } else {
            events = nil
        }
    }

    deinit { try? handle.close() }

    /// Refuses to start a new run's metrics where another run's are: in a file that holds records, or in a folder
    /// that holds TensorBoard events (one folder is one TensorBoard run, and the new run's start would hide the
    /// other's later steps). A resumed run continues its own instead.
    public static func checkFreeForNewRun(path: String) throws {
        let folder = (path as NSString).deletingLastPathComponent
        if let text = try? String(contentsOfFile: path, encoding: .utf8), text.contains("\"step\"") {
            throw TrainingError("--metrics \(path) holds an earlier run's records: continue that run with --resume, or give this run its own --metrics file (or remove that one)")
        }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: folder.isEmpty ? "." : folder)) ?? []
        if let events = entries.first(where: { $0.hasPrefix("events.out.tfevents.") }) {
            throw TrainingError("the folder of --metrics \(path) holds another run's TensorBoard events (\(events)); give each run its own folder (TensorBoard shows one run per folder), or continue that run with --resume")
        }
    }

    /// Rewrites `path` (atomically) without the records after `step` and without lines that are not records.
    static func keepRecords(upTo step: Int, in path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TrainingError("cannot read the metrics file \(path)")
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        let kept = lines.filter { line in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  let s = obj["step"] as? Int else { return false }
            return s <= step
        }
        guard kept.count != lines.count || (!text.isEmpty && !text.hasSuffix("\n")) else { return }
        do {
            try (kept.map { $0 + "\n" }.joined()).write(toFile: path, atomically: true, encoding: .utf8)
        } catch {
            throw TrainingError("cannot rewrite the metrics file \(path): \(error.localizedDescription)")
        }
    }

    /// Set once a write failed (a full disk): metrics stop, with one warning, and training goes on.
    private var failed = false

    /// Writes one record: `kind`, `step`, `epoch`, `time` (seconds since this writer started), the measurements, then
    /// `wall_time`.
    func emit(_ fields: [(String, Any?)]) {
        let now = Date()
        var all = Array(fields.prefix(3))
        all.append(("time", now.timeIntervalSince(start)))
        all += fields.dropFirst(3)
        all.append(("wall_time", now.timeIntervalSince1970))
        let record = MetricsRecord(all)
        // Every value is an Int, a Double or a String, which JSONEncoder always encodes.
        guard !failed, let line = try? record.json() else { return }
        do { try handle.write(contentsOf: Data((line + "\n").utf8)) } catch {
            failed = true
            FileHandle.standardError.write(Data("warning: cannot write the metrics file \(path) (\(error.localizedDescription)); metrics stop here, training goes on\n".utf8))
            return
        }
        if let events, case .int(let step) = record["step"] {
            events.scalars(record.tensorBoardScalars, step: step, wallTime: now.timeIntervalSince1970)
        }
    }

    public func step(_ s: StepInfo) {
        stats.add(s)
        guard s.step % every == 0 else { return }
        let seconds = stats.seconds
        let mean = stats.loss.sum / Double(max(stats.loss.count, 1))
        emit([("kind", "step"), ("step", s.step), ("epoch", s.epoch + 1),
              ("loss", mean), ("perplexity", exp(mean)), ("val_perplexity", nil),
              ("tokens_per_s", Double(stats.loss.count) / seconds), ("lr", s.lr),
              ("grad_norm", stats.normSum / Double(max(stats.steps, 1))),
              ("clipped", Double(stats.clipped) / Double(max(stats.steps, 1))), ("workers", workers())])
        stats = IntervalStats()
    }

    public func epoch(_ r: EpochReport, step: Int) {
        stats.excludeSinceLastStep()  // the epoch's validation is not the next interval's training time
        emit([("kind", "epoch"), ("step", step), ("epoch", r.epoch),
              ("loss", log(r.trainPerplexity)), ("perplexity", r.trainPerplexity), ("val_perplexity", r.validPerplexity),
              ("val_loss", r.validPerplexity.map { log($0) })]
             + (r.validScores ?? [:]).sorted { $0.key < $1.key }.map { (key: String, value: Double) -> (String, Any?) in ("val_" + key, value) }
             + [("tokens_per_s", r.tokensPerSecond), ("lr", r.lr), ("grad_norm", nil), ("clipped", nil), ("workers", workers())])
    }
}
