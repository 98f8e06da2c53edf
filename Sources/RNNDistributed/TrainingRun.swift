import Foundation
import RNNCheckpoint
import RNNCore
import RNNProtocol
import RNNText
import RNNTrain
import RNNTransport

/// One training run as `rnnlm train` and `rnnlm coordinator` perform it: resolve the settings (or resume from the
/// newest checkpoint), load the data, write run.toml, optionally serve workers as the coordinator, train with live
/// progress and a metrics file, then report (summary, test perplexity, plot, a sample). Everything it prints goes
/// to its `OutputSink` and it stops when its `StopRequest` says so, so a test can drive a whole run in-process.
public final class TrainingRun {
    /// Where a run's settings come from.
    public enum Start {
        /// A new run with these settings (validated before any data loads).
        case new(TrainOptions)
        /// Continue from the newest checkpoint in `checkpointDir`: `reconcile` turns the checkpoint's settings into
        /// the resumed run's (refusing flags that contradict them, applying those that may change). Without a
        /// checkpoint, `otherwise` gives a new run's settings.
        case resume(checkpointDir: String?, reconcile: (TrainOptions) throws -> TrainOptions,
                    otherwise: () throws -> TrainOptions)
    }

    /// Everything about a run besides the model and data settings in `TrainOptions`.
    public struct Settings {
        public var start: Start
        /// Folder searched first for named datasets.
        public var dataDir: String?
        /// Compute threads: the streams of each minibatch are split across them (a coordinator gives them to BLAS).
        public var threads = 1
        public var logLevel: LogLevel = .info
        /// Steps per logging interval (a metrics record; a plain progress line when output is not a terminal).
        public var logEvery = 50
        /// Metrics file (JSON lines); nil: metrics.jsonl in the checkpoint folder, if there is one.
        public var metrics: String?
        /// After training, print a greedy continuation of this text.
        public var sample: String?
        /// Serve workers as the coordinator instead of computing gradients in this process.
        public var coordinator: CoordinatorSettings?
        /// The command that runs it (`train`, `coordinator`, `launch`), named in run.toml's header.
        public var command = "train"
        /// The command's own settings that change what the run does (its workers, the parameter server's flags), as
        /// `key = value` lines under their flag names: run.toml holds them after the options, so `rnnlm COMMAND
        /// --config run.toml` runs the same way.
        public var commandLines: [String] = []

        public init(start: Start) { self.start = start }

        /// The run's settings outside `TrainOptions` as `key = value` lines: threads (they change how the rows are
        /// summed), logging, the data folder, the sample, then `commandLines`.
        public func tomlLines() -> [String] {
            var lines = ["threads = \(threads)", "log-every = \(logEvery)"]
            if let d = dataDir { lines.append("data-dir = \(tomlString(d))") }
            if let m = metrics { lines.append("metrics = \(tomlString(m))") }
            if let p = sample { lines.append("sample = \(tomlString(p))") }
            return lines + commandLines
        }

        /// Rejects settings that cannot work, naming the flag; needs no data.
        public func validate() throws(ConfigError) {
            if threads < 1 { throw ConfigError("--threads must be 1 or more, got \(threads)") }
            guard logEvery >= 1 else { throw ConfigError("--log-every must be at least 1") }
            if case .new(let o) = start { try o.validate() }
            try coordinator?.validate()
        }
    }

    public let settings: Settings
    let sink: OutputSink
    let stop: StopRequest

    public init(settings: Settings, output: OutputSink = .console, stop: StopRequest = .signals) {
        self.settings = settings
        self.sink = output
        self.stop = stop
    }

    public func run() throws -> RunSummary {
        try settings.validate()
        let threads = settings.threads
        let distributed = settings.coordinator
        // Local training splits each minibatch's streams across threads, each with single-threaded BLAS (the per-step
        // products are too small for OpenBLAS to parallelise well, bench/README.md); a coordinator gives them to BLAS.
        setBLASThreads(distributed == nil ? 1 : threads)
        let out = RunLog(level: settings.logLevel, sink: sink)
        let trainer = try makeTrainer(out)
        if distributed == nil { trainer.useThreads(threads) }
        let exchange = distributed.map { TrainingRecord.Exchange(mode: $0.mode.rawValue, gradientCompression: $0.gradientCompression.rawValue) }
        if trainer.record.step > 0, let before = trainer.record.exchange, before != (exchange ?? .exact) {
            // Resuming changes how gradients are taken (allowed: a run may move between one process and workers),
            // so the result differs from continuing as it was; said rather than done silently.
            let now = exchange.map { "takes them with \($0.flags)" } ?? "trains in one process (exact)"
            out.say("note: the checkpoint's run took its workers' gradients with \(before.flags); this run \(now), so it does not continue exactly as it was\(exchange == nil ? "" : ": pass \(before.flags) to keep that")")
        }
        trainer.setExchange(exchange ?? .exact)
        let o = trainer.options
        let task = trainer.task
        let metricsPath = settings.metrics ?? o.checkpointDir.map { $0 + "/metrics.jsonl" }
        if case .new = settings.start, let path = metricsPath { try MetricsWriter.checkFreeForNewRun(path: path) }
        let perEpoch = task.minibatchCount(epoch: trainer.record.epoch)
        for line in task.summary { out.say(line) }
        try writeRunConfig(o, settings.tomlLines(), out)
        if o.checkpointDir == nil { out.say("note: no --checkpoint-dir given; nothing will be saved") }
        if trainer.record.epoch >= o.epochs {
            out.say("training is already complete (epoch \(trainer.record.epoch) of \(o.epochs)); pass a larger --epochs to continue")
            return summary(.alreadyComplete, trainer, seconds: 0)
        }
        if let reason = trainer.earlyStopReason {
            out.say("training already ended: \(reason); raise --early-stop to continue")
            return summary(.alreadyComplete, trainer, seconds: 0)
        }
        stop.arm()
        var coordinator: Coordinator?
        let context = distributed?.context ?? ZMQContext()
        var zap: ZAPAuthenticator?
        defer { zap?.stop() }
        if let d = distributed {
            let bound = MessageBounds.maxMessageBytes(
                parameters: task.parameterCount, stateValues: task.rowsPerMinibatch * task.carriedPerRow,
                rowWords: GradientSupport.maxWireRows(task.sparseRows))
            let socket = try ZMQSocket(context, kind: .router, maxMessageBytes: bound, heartbeatTimeout: d.heartbeatTimeout)
            if let c = d.curve {
                // The authentication handler must be listening before the socket accepts anyone.
                let write = sink.standardOutput
                let handler = ZAPAuthenticator(context: context, authorizedKeys: c.authorized, log: { write($0 + "\n") })
                try handler.start()
                zap = handler
                try socket.makeCurveServer(c.keys)
                out.say("CURVE: encrypted, \(c.authorized.count) authorised worker key(s); coordinator public key \(c.keys.publicKey)")
            }
            try socket.bind(d.bind)
            out.say("coordinator listening on \(socket.lastEndpoint)")
            try d.afterBind()
            var seedRNG = SystemRandomNumberGenerator()
            let c = Coordinator(socket: socket, runID: seedRNG.next(), parameterCount: task.parameterCount,
                                joinTimeout: d.joinTimeout, stepTimeout: d.stepTimeout, log: out.say)
            c.shouldStop = stop.isRequested
            c.quorum = d.quorum
            c.minWorkers = d.minWorkers
            c.sharedMemoryDirectory = d.sharedMemory
            c.gradientEncoding = d.gradientCompression.encoding
            c.weightsInTurn = d.broadcast == .inTurn
            c.inTurnPatience = d.heartbeatTimeout
            // (Workers that joined an admission that fails are told by the state machine.)
            do { try c.admitWorkers(count: d.expectWorkers, trainer: trainer) } catch let e as DistributedError where e == .interrupted {
                return summary(.interrupted(checkpoint: nil), trainer, seconds: 0)
            }
            trainer.source = c
            // A synchronous step's workers wait for the update, so it may use every core; an asynchronous one
            // updates while they compute, and keeps to --threads.
            trainer.updateThreads = d.mode == .sync ? max(threads, ProcessInfo.processInfo.activeProcessorCount) : threads
            coordinator = c
        }
        // What the workers are told at the end: set below as the run ends (an error leaves it a failure).
        var stopReason = Message.runFailedPrefix + "the coordinator stopped on an error (its log says which)"
        defer {
            coordinator?.stopAll(reason: stopReason)
            coordinator?.releaseSharedWeights()
        }
        // Live progress and the metrics file.
        let every = settings.logEvery
        let remainingEpochs = max(0, o.epochs - trainer.record.epoch)
        // Async: every worker walks every minibatch of its rows each epoch, and each applied gradient is a step; the
        // total follows the live workers' remaining minibatches (a lost worker's share is not run).
        let asyncCoordinator = distributed?.mode == .async ? coordinator : nil
        let totalSteps = asyncCoordinator.map { c in
            trainer.record.step + ((trainer.record.epoch..<o.epochs).reduce(0) { $0 + task.minibatchCount(epoch: $1) }
                                   - trainer.record.batchInEpoch) * c.peers.count
        } ?? trainer.record.step - trainer.record.batchInEpoch + remainingEpochs * perEpoch
        let reporter = ProgressReporter(isTerminal: sink.isTerminal, level: out.level, every: every,
                                        totalSteps: totalSteps, epochs: o.epochs, write: sink.standardOutput)
        let expected = distributed?.expectWorkers
        reporter.workers = { coordinator.map { ($0.peers.count, expected ?? $0.peers.count) } }
        out.reporter = reporter
        // A TensorBoard event file beside the metrics file, with the resolved settings as text.
        let metrics = try metricsPath.map { try MetricsWriter(path: $0, every: every, tensorBoard: o.tomlLines() + settings.tomlLines(), step: trainer.record.step) }
        metrics?.workers = { coordinator?.peers.count }
        trainer.onStep = { info in
            if let c = asyncCoordinator { reporter.totalSteps = info.step + c.asyncRemaining }
            reporter.step(info)
            metrics?.step(info)
        }
        trainer.onEpoch = { [unowned trainer] report in
            reporter.epochEnded()
            metrics?.epoch(report, step: trainer.record.step)
        }
        let started = Date()
        var gate: StalenessGate?
        do {
            defer { reporter.finish() }
            if let d = distributed, d.mode == .async, let c = coordinator {
                gate = try c.runAsync(trainer: trainer, maxStaleness: d.maxStaleness ?? d.expectWorkers)
            } else {
                try trainer.run(shouldStop: stop.isRequested)
            }
        } catch let e as DistributedError where e == .interrupted {}
        out.reporter = nil
        if let g = gate {
            out.say("async: applied \(g.applied) gradients (largest staleness \(g.maxAppliedStaleness), bound --max-staleness \(g.maxStaleness)), discarded \(g.discarded) stale")
        }
        if stop.isRequested() {
            stopReason = "the coordinator was stopped (\(stop.cause() == .requeue ? "SIGUSR1, for a requeue" : "interrupted")); it continues with --resume"
            let saved = try trainer.saveCheckpoint()
            if let path = saved {
                sink.standardError(stop.cause() == .requeue
                    ? "SIGUSR1: saved \(path); exiting with status 138 so the job can be requeued (continue with --resume)\n"
                    : "interrupted: saved \(path); continue with --resume\n")
            }
            return summary(.interrupted(checkpoint: saved), trainer, seconds: Date().timeIntervalSince(started))
        }
        try trainer.requireLastSaveSucceeded()
        stopReason = "training finished"
        let wall = Date().timeIntervalSince(started)
        if let last = trainer.record.history.last {
            let final = last.showsLoss == true
                ? "final loss \(String(format: "%.3f", log(last.trainPerplexity)))\(last.validPerplexity.map { String(format: ", val %.3f", log($0)) } ?? "")"
                    + ((last.validScores ?? [:]).sorted { $0.key < $1.key }.map { String(format: ", val %@ %.2f", $0.key, $0.value) }.joined())
                : "final perplexity \(String(format: "%.3f", last.trainPerplexity))\(last.validPerplexity.map { String(format: ", val %.3f", $0) } ?? "")"
            out.say("done: \(trainer.record.epoch) epochs, \(trainer.record.step) steps in \(duration(wall)); \(final)")
        }
        if let c = coordinator, c.steps > 0 { out.say(c.timingSummary(stepSeconds: trainer.stepSeconds, updateSeconds: trainer.updateSeconds)) }
        var result = summary(.trained, trainer, seconds: wall)
        if let test = trainer.evaluate(.test) {
            out.say(String(format: "test perplexity %.3f", test.perplexity))
            result.testPerplexity = test.perplexity
        }
        if let latest = result.checkpoint { out.say("checkpoint: \(latest)") }
        if let m = metricsPath, let dir = o.checkpointDir {
            let points = try readEpochPoints(m)
            if !points.isEmpty {
                let svg = dir + "/curve.svg"
                try perplexitySVG(points, logScale: false, title: "\(o.model.rawValue) on \(o.dataset ?? (o.corpus as NSString?)?.lastPathComponent ?? "text")")
                    .write(toFile: svg, atomically: true, encoding: .utf8)
                out.say("metrics: \(m); plot: \(svg)")
            }
        }
        if let prefix = settings.sample {
            guard let lm = trainer.languageModel else { throw TrainingError("--sample needs a language model") }
            let m = TrainedModel(model: lm.model, tokenizer: lm.data.tokenizer, vocabulary: lm.data.vocabulary, record: trainer.record)
            out.say("sample: " + (try m.generate(prefix: prefix, count: 100, decoding: .greedy)))
        }
        return result
    }

    /// The newest checkpoint in `dir` that reads and passes its checks. Each newer one that does not (truncated,
    /// damaged, tensors of the wrong shape) is set aside as `NAME.bad`, with the reason reported; nil when the folder
    /// holds no checkpoint; an error when it holds some and none is valid.
    func newestValidCheckpoint(in dir: String) throws -> (path: String, checkpoint: Checkpoint<TrainingRecord>)? {
        let files = checkpointFiles(in: dir)
        var setAside: [String] = []
        for file in files.reversed() {
            do {
                return (file.path, try Checkpoint<TrainingRecord>.read(from: file.path))
            } catch let e as CheckpointError {
                var bad = file.path + ".bad"
                var n = 1
                while FileManager.default.fileExists(atPath: bad) { n += 1; bad = file.path + ".bad\(n)" }
                if rename(file.path, bad) != 0 {
                    throw TrainingError("--resume: \(e); it cannot be set aside as \(bad) (\(String(cString: strerror(errno)))); move it away by hand")
                }
                setAside.append(bad)
                sink.standardError("warning: \(e.description); set aside as \(bad), trying the one before\n")
            }
        }
        guard files.isEmpty else {
            // The best epoch's model is a whole checkpoint too: said, so the run need not start afresh.
            let bestPath = dir + "/" + bestCheckpointName
            let best = (try? Checkpoint<TrainingRecord>.read(from: bestPath)).map {
                "; \(bestPath) is intact (epoch \($0.extra.epoch), step \($0.extra.step)): copy it to \(dir)/\(checkpointName(step: $0.extra.step)) to resume from there"
            } ?? ""
            throw TrainingError("--resume: none of the \(files.count) checkpoint(s) in \(dir) is valid (set aside: \(setAside.joined(separator: ", ")))\(best); or restore a good one, or start afresh in a new --checkpoint-dir")
        }
        return nil
    }

    /// A trainer for a new run, or resumed from the newest valid checkpoint.
    private func makeTrainer(_ out: RunLog) throws -> Trainer {
        var found: (path: String, checkpoint: Checkpoint<TrainingRecord>)?
        if case .resume(let dir?, _, _) = settings.start { found = try newestValidCheckpoint(in: dir) }
        let latest = found?.path
        switch settings.start {
        case .resume(_, let reconcile, _) where found != nil:
            let ck = found!.checkpoint
            let options = try reconcile(ck.extra.options)
            let task = try TaskRegistry.task(resuming: ck.extra.task, options: options, dataDir: settings.dataDir)
            var resumed = ck
            resumed.extra.options = options
            let trainer = try Trainer(resuming: resumed, task: task, log: out.say)
            let r = ck.extra
            out.say("resuming \(latest!): step \(r.step), " + (r.batchInEpoch == 0 ? "after epoch \(r.epoch)" : "in epoch \(r.epoch + 1) after minibatch \(r.batchInEpoch)"))
            return trainer
        case .resume(_, _, let otherwise):
            let o = try otherwise()
            try o.validate()
            out.say("no checkpoint in \(o.checkpointDir ?? "(no --checkpoint-dir)"); starting a new run")
            return try Trainer(options: o, task: try TaskRegistry.task(for: o, dataDir: settings.dataDir), log: out.say)
        case .new(let o):
            try o.validate()
            if let dir = o.checkpointDir, let newest = checkpointFiles(in: dir).last {
                // A new run there would prune its own checkpoints below the earlier run's higher steps, and --resume
                // would pick up the other run.
                throw TrainingError("--checkpoint-dir \(dir) holds an earlier run's checkpoints (newest \((newest.path as NSString).lastPathComponent)): continue that run with --resume, or give a new --checkpoint-dir (or remove its step-*.safetensors to start over there)")
            }
            return try Trainer(options: o, task: try TaskRegistry.task(for: o, dataDir: settings.dataDir), log: out.say)
        }
    }

    /// The resolved configuration: printed (what differs from the defaults) and saved beside the checkpoints, with
    /// the run's own settings (`runLines`) after the options.
    private func writeRunConfig(_ o: TrainOptions, _ runLines: [String], _ out: RunLog) throws {
        var reference = TrainOptions()
        if o.translation != nil { reference.translation = TrainOptions.TranslationOptions() }  // its own defaults
        let defaults = Set(reference.tomlLines())
        let changed = o.tomlLines().filter { !defaults.contains($0) }
        var configPath: String?
        if let dir = o.checkpointDir {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            configPath = dir + "/run.toml"
            let text = "# rnnlm \(settings.command) settings, resolved (flags over --config over defaults). Reuse: rnnlm \(settings.command) --config \(configPath!) --checkpoint-dir NEW_DIR\(settings.metrics == nil ? "" : " --metrics NEW_FILE") (a new run), or add --resume (this one)\n"
                + (o.tomlLines() + runLines).joined(separator: "\n") + "\n"
            try text.write(toFile: configPath!, atomically: true, encoding: .utf8)
        }
        out.say("config: \(changed.joined(separator: ", "))\(configPath.map { " (all settings: \($0))" } ?? "")")
    }

    private func summary(_ outcome: RunSummary.Outcome, _ trainer: Trainer, seconds: Double) -> RunSummary {
        var r = RunSummary(outcome: outcome, options: trainer.options, epochs: trainer.record.epoch, steps: trainer.record.step,
                           history: trainer.record.history, testPerplexity: nil,
                           checkpoint: trainer.options.checkpointDir.flatMap(latestCheckpoint(in:)), seconds: seconds)
        if case .interrupted = outcome { r.stopCause = stop.cause() }
        return r
    }
}
