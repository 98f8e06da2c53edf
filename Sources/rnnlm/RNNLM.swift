import ArgumentParser
import CLinux
import Foundation
import RNNCheckpoint
import RNNCore
import RNNDistributed
import RNNProtocol
import RNNText
import RNNTrain
import RNNTransport

@main
struct RNNLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rnnlm",
        abstract: "Train recurrent language models (RNN, GRU, LSTM) on text, evaluate them, and generate text.",
        discussion: """
            Quick start (D2L's character model on H. G. Wells' The Time Machine):
              rnnlm train --dataset timemachine --model gru --epochs 50 --checkpoint-dir runs/gru
              rnnlm generate --checkpoint runs/gru --prefix "time traveller" --tokens 100
            """,
        version: "rnnlm 0.1.0 (libzmq \(ZeroMQ.version))",
        subcommands: [Train.self, Coordinator.self, Worker.self, Keygen.self, Eval.self, Generate.self, Plot.self])

    /// Expands `--config FILE` into flags, then parses as usual.
    static func main() {
        rnnlm_reexec_without_blas_pool(CommandLine.unsafeArgv)
        rnnlm_keep_large_buffers()
        let args = Array(CommandLine.arguments.dropFirst())
        do {
            main(try ConfigFile.expand(args))
        } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(1)
        }
    }
}

/// Prints a user-facing error on one line and exits 1 (no stack trace, no usage dump).
func runReportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch let e as CleanExit { throw e } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

/// Set by SIGINT/SIGTERM; the trainer checkpoints and stops at the next step boundary.
nonisolated(unsafe) var stopSignal: sig_atomic_t = 0

/// Routes SIGINT and SIGTERM to `stopSignal`, unblocking them first (a spawner may have left them blocked).
func installStopHandlers() {
    signal(SIGINT) { _ in stopSignal = 1 }
    signal(SIGTERM) { _ in stopSignal = 1 }
    rnnlm_unblock_stop_signals()
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a language model in this process (the reference trainer).",
        discussion: "Prints one line per epoch with training (and validation) perplexity and tokens/s, and saves step-N.safetensors checkpoints into --checkpoint-dir.")

    @OptionGroup var flags: TrainFlags

    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir (starts a new run if there is none).")
    var resume = false

    @Option(help: "Train with this many local worker processes under a ZeroMQ parameter server in this process (0: the single-process reference trainer). Default 0.")
    var workers: Int = 0
    @OptionGroup var distributedFlags: DistributedFlags

    func run() throws {
        try runReportingErrors {
            guard workers >= 0 else { throw ValidationError("--workers must be 0 or more") }
            if workers == 0 { try train(flags: flags, resume: resume, distributed: nil); return }
            // Folders only this user can enter: the coordinator's socket, and the shared-memory payload files.
            let dir = NSTemporaryDirectory() + "rnnlm-\(getpid())"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let endpoint = "ipc://\(dir)/coordinator"
            // Payloads between this process and its own workers go through files in a tmpfs folder
            // (RNNLM_SHARED_MEMORY=0 sends them over the socket instead).
            var shared: String?
            if ProcessInfo.processInfo.environment["RNNLM_SHARED_MEMORY"] != "0" {
                let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm/" : NSTemporaryDirectory()
                removeStaleSharedMemory(in: base)
                shared = base + "rnnlm-\(getpid())"
                try FileManager.default.createDirectory(atPath: shared!, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            }
            defer { if let s = shared { try? FileManager.default.removeItem(atPath: s) } }
            let children = LocalWorkers()
            defer { children.stop() }
            try train(flags: flags, resume: resume, distributed: DistributedSetup(
                bind: endpoint, expectWorkers: workers, joinTimeout: 60, stepTimeout: 600,
                mode: distributedFlags.mode, maxStaleness: distributedFlags.maxStaleness,
                quorum: distributedFlags.quorum, minWorkers: distributedFlags.minWorkers,
                heartbeatTimeout: distributedFlags.heartbeatTimeout, sharedMemory: shared,
                afterBind: { try children.start(count: workers, endpoint: endpoint, threads: flags.threads ?? 1, sharedMemory: shared) }))
        }
    }
}

/// Removes the shared-memory folders (`rnnlm-PID`, this user's) of runs whose process is gone (killed with
/// SIGKILL, so its own cleanup never ran): tmpfs files hold memory until deleted.
func removeStaleSharedMemory(in base: String) {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: base) else { return }
    for name in names where name.hasPrefix("rnnlm-") {
        guard let pid = Int32(name.dropFirst("rnnlm-".count)), kill(pid, 0) != 0, errno == ESRCH else { continue }
        let path = base + name
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path),
              (attrs[.ownerAccountID] as? NSNumber)?.uint32Value == getuid() else { continue }
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// How the coordinator runs: where it listens and how many workers it waits for.
struct DistributedSetup {
    var bind: String
    var expectWorkers: Int
    var joinTimeout: TimeInterval
    var stepTimeout: TimeInterval
    var mode: DistributedFlags.Mode = .sync
    var maxStaleness: Int?
    var quorum: Int?
    var minWorkers = 1
    var heartbeatTimeout: Double = 5
    /// A folder private to this coordinator for shared-memory payload files (local workers only).
    var sharedMemory: String?
    /// CURVE server keys and the authorised worker keys (public key → name), for non-loopback coordinators.
    var curve: (keys: CurveKeyPair, authorized: [String: String])?
    var afterBind: () throws -> Void = {}
}

/// Worker processes started by `rnnlm train --workers N`; they die with this process (PR_SET_PDEATHSIG).
final class LocalWorkers {
    private var processes: [Process] = []

    func start(count: Int, endpoint: String, threads: Int, sharedMemory: String?) throws {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).path
        let exe = FileManager.default.isExecutableFile(atPath: me) ? me : "/proc/self/exe"
        for i in 0..<count {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe == "/proc/self/exe" ? (try FileManager.default.destinationOfSymbolicLink(atPath: exe)) : exe)
            p.arguments = ["worker", "--connect", endpoint, "--threads", String(threads), "--name", "local-\(i)", "--quiet"]
                + (sharedMemory.map { ["--shared-memory-dir", $0] } ?? [])
            var env = ProcessInfo.processInfo.environment
            env["RNNLM_DIE_WITH_PARENT"] = "1"
            p.environment = env
            try p.run()
            processes.append(p)
        }
    }

    func stop() {
        for p in processes where p.isRunning { p.terminate() }
        let deadline = Date().addingTimeInterval(5)
        while processes.contains(where: \.isRunning) && Date() < deadline { usleep(20_000) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
        processes.removeAll()
    }
}

struct Coordinator: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the parameter server: wait for workers, then train with their gradients.",
        discussion: "Takes every `rnnlm train` flag. Start workers with `rnnlm worker --connect ENDPOINT`.")

    @Option(help: "ZeroMQ endpoint to listen on, e.g. tcp://127.0.0.1:5555 or ipc:///tmp/rnnlm.sock.")
    var bind: String = "tcp://127.0.0.1:5555"
    @Option(help: "Number of workers to wait for before training starts.")
    var expectWorkers: Int
    @Option(help: "Seconds to wait for the workers to join.")
    var joinTimeout: Double = 120
    @Option(help: "Seconds to wait for every worker's gradient in one step before giving up.")
    var stepTimeout: Double = 600
    @Option(help: "The coordinator's CURVE key pair (a .secret file from `rnnlm keygen`): encrypts the connection and, with --authorized-keys, admits only known workers.")
    var curveSecret: String?
    @Option(help: "Folder of workers' .public key files; only these workers may join (required with --curve-secret).")
    var authorizedKeys: String?
    @Flag(help: "Allow listening on a non-loopback address without CURVE authentication (trusted, isolated networks only).")
    var insecure = false
    @OptionGroup var distributedFlags: DistributedFlags
    @OptionGroup var flags: TrainFlags
    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.")
    var resume = false

    func run() throws {
        try runReportingErrors {
            var curve: (keys: CurveKeyPair, authorized: [String: String])?
            switch (curveSecret, authorizedKeys) {
            case (let s?, let a?): curve = (try CurveKeyPair.read(secretFile: s), try CurveKeyPair.authorizedKeys(in: a))
            case (nil, nil): curve = nil
            case (_?, nil): throw ValidationError("--curve-secret needs --authorized-keys FOLDER (the workers' .public files); without it any key would be admitted")
            case (nil, _?): throw ValidationError("--authorized-keys needs --curve-secret (the coordinator's own key pair from `rnnlm keygen`)")
            }
            if bind.hasPrefix("tcp://") && !isLoopback(bind) && curve == nil && !insecure {
                throw ValidationError("refusing to listen on \(bind) without authentication: create keys with `rnnlm keygen` and pass --curve-secret and --authorized-keys, bind to tcp://127.0.0.1:PORT, or pass --insecure on a trusted network")
            }
            if insecure && curve == nil { FileHandle.standardError.write(Data("warning: --insecure: any peer that can reach \(bind) can join this run\n".utf8)) }
            try train(flags: flags, resume: resume, distributed: DistributedSetup(
                bind: bind, expectWorkers: expectWorkers, joinTimeout: joinTimeout, stepTimeout: stepTimeout,
                mode: distributedFlags.mode, maxStaleness: distributedFlags.maxStaleness,
                quorum: distributedFlags.quorum, minWorkers: distributedFlags.minWorkers,
                heartbeatTimeout: distributedFlags.heartbeatTimeout, curve: curve))
        }
    }

    func isLoopback(_ endpoint: String) -> Bool {
        let host = endpoint.dropFirst("tcp://".count).split(separator: ":").first.map(String.init) ?? ""
        return host.hasPrefix("127.") || host == "localhost" || host == "[::1]"
    }
}

/// Synchronous or asynchronous parameter server.
struct DistributedFlags: ParsableArguments {
    enum Mode: String, ExpressibleByArgument, CaseIterable { case sync, async }

    @Option(help: "sync: every step waits for all workers and equals single-process training; async: each gradient is applied on arrival (faster with uneven workers, not reproducible). Default sync.")
    var mode: Mode = .sync
    @Option(help: "async: discard a gradient computed on weights more than this many updates old. Default: the number of workers.")
    var maxStaleness: Int?
    @Option(help: "sync: after --step-timeout, go on with the gradients of at least this many workers (stragglers' late gradients are discarded). Default: all workers.")
    var quorum: Int?
    @Option(help: "Pause (and say so) while fewer workers than this are alive; workers may join a running job. Default 1.")
    var minWorkers: Int = 1
    @Option(help: "Seconds without heartbeats after which a worker is declared dead (a killed worker is noticed at once). Default 5.")
    var heartbeatTimeout: Double = 5
}

struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Join a coordinator and compute gradients until told to stop.")

    @Option(help: "The coordinator's endpoint, e.g. tcp://HOST:5555.")
    var connect: String
    @Option(help: "Compute threads for this worker: its streams are split across them. Default 1.")
    var threads: Int = 1
    @Option(help: "Name shown in the coordinator's log (default: host:pid).")
    var name: String?
    @Option(help: "Seconds to wait for the coordinator to answer the join request.")
    var joinTimeout: Double = 120
    @Option(help: "Seconds of silence from the coordinator after which the worker considers it lost.")
    var timeout: Double = 900
    @Option(help: "Seconds a worker that lost its coordinator keeps trying to rejoin (a coordinator restarted with --resume on the same address).")
    var rejoinGrace: Double = 60
    @Option(help: "The coordinator's CURVE public key (its .public file, or the 40-character key) when it requires keys.")
    var curveServerKey: String?
    @Option(help: "This worker's CURVE key pair (a .secret file from `rnnlm keygen`); its .public file must be in the coordinator's --authorized-keys.")
    var curveKey: String?
    @Flag(help: "Print only errors.")
    var quiet = false
    @Option(help: ArgumentHelp("Sleep this long before each gradient (to test straggler handling).", visibility: .hidden))
    var debugDelayMs: Int = 0
    @Option(help: ArgumentHelp("The coordinator's private folder for shared-memory payloads (set by rnnlm train --workers).", visibility: .hidden))
    var sharedMemoryDir: String?

    func run() throws {
        try runReportingErrors {
            var curve: (serverKey: String, keys: CurveKeyPair)?
            switch (curveServerKey, curveKey) {
            case (let s?, let k?): curve = (try CurveKeyPair.publicKey(fileOrKey: s), try CurveKeyPair.read(secretFile: k))
            case (nil, nil): curve = nil
            case (_?, nil): throw ValidationError("--curve-server-key needs --curve-key (this worker's key pair from `rnnlm keygen`, authorised on the coordinator)")
            case (nil, _?): throw ValidationError("--curve-key needs --curve-server-key (the coordinator's .public file)")
            }
            if ProcessInfo.processInfo.environment["RNNLM_DIE_WITH_PARENT"] == "1" {
                _ = rnnlm_die_with_parent()
                if getppid() == 1 { throw ExitCode(1) }  // the parent died before we could ask
            }
            guard threads >= 1 else { throw ValidationError("--threads must be 1 or more") }
            setBLASThreads(1)  // the worker's threads split its streams (DataParallel); BLAS stays single-threaded
            installStopHandlers()
            let reason = try runWorker(endpoint: connect, name: name ?? "\(ProcessInfo.processInfo.hostName):\(getpid())", curve: curve,
                                       joinTimeout: joinTimeout, timeout: timeout, rejoinGrace: rejoinGrace, threads: threads,
                                       sharedMemoryDirectory: sharedMemoryDir,
                                       shouldStop: { stopSignal != 0 },
                                       log: { if !quiet { print($0) } },
                                       warn: { FileHandle.standardError.write(Data("warning: \($0)\n".utf8)) },
                                       delayMilliseconds: max(0, debugDelayMs))
            if !quiet { print("worker done: \(reason)") }
            if stopSignal != 0 { throw ExitCode(130) }
        }
    }
}

/// The training run shared by `train` and `coordinator`: with `distributed`, gradients come from workers.
/// Where a run's messages go: through the progress display when there is one, and only at `level` ≥ info.
final class RunOutput {
    let level: LogLevel
    var reporter: ProgressReporter?
    init(level: LogLevel) { self.level = level }
    func say(_ line: String) {
        guard level >= .info else { return }
        // One unbuffered path for every line, so lines and the status display never interleave out of order.
        if let r = reporter { r.line(line) } else { FileHandle.standardOutput.write(Data((line + "\n").utf8)) }
    }
}

func train(flags: TrainFlags, resume: Bool, distributed: DistributedSetup?) throws {
    if let t = flags.threads, t < 1 { throw ConfigError("--threads must be 1 or more, got \(t)") }
    let threads = flags.threads ?? 1
    // Local training splits each minibatch's streams across threads, each with single-threaded BLAS (the per-step
    // products are too small for OpenBLAS to parallelise well, bench/README.md); a coordinator gives them to BLAS.
    setBLASThreads(distributed == nil ? 1 : threads)
    let out = RunOutput(level: try flags.level())
    let dataDir = flags.dataDir
    var trainer: Trainer
    if resume, let dir = flags.checkpointDir, let latest = latestCheckpoint(in: dir) {
        let ck = try Checkpoint<TrainingRecord>.read(from: latest)
        var stored = ck.extra.options
        try flags.checkCompatible(with: stored)
        if let e = flags.epochs { stored.epochs = e }
        flags.applyRunSettings(to: &stored)
        let data = try TextData.load(stored, dataDir: dataDir,
                                     existing: (ck.extra.tokenizer, ck.extra.vocabulary, ck.extra.fingerprint))
        var resumed = ck
        resumed.extra.options = stored
        trainer = try Trainer(resuming: resumed, data: data, log: out.say)
        out.say("resuming \(latest): epoch \(ck.extra.epoch), step \(ck.extra.step)")
    } else {
        var o = TrainOptions()
        try flags.apply(to: &o)
        try o.validate()
        if resume { out.say("no checkpoint in \(o.checkpointDir ?? "(no --checkpoint-dir)"); starting a new run") }
        let data = try TextData.load(o, dataDir: dataDir)
        trainer = try Trainer(options: o, data: data, log: out.say)
    }
    if distributed == nil { trainer.useThreads(threads) }
    let o = trainer.options
    let perEpoch = trainer.epochBatches(0).count
    out.say("training \(o.model.rawValue): \(o.layers) layer(s), hidden \(o.hidden), \(o.embed == 0 ? "one-hot input" : "embedding \(o.embed)"), \(grouped(trainer.model.parameterCount)) parameters")
    out.say("data: \(grouped(trainer.data.train.count)) training tokens\(trainer.data.valid.isEmpty ? "" : ", \(grouped(trainer.data.valid.count)) validation"), vocabulary \(trainer.data.vocabulary.count) (\(trainer.data.tokenizer.kind.rawValue)), \(perEpoch) minibatches/epoch of \(o.batchSize)×\(o.numSteps)")
    // The resolved configuration: printed (what differs from the defaults) and saved beside the checkpoints.
    let defaults = Set(TrainOptions().tomlLines())
    let changed = o.tomlLines().filter { !defaults.contains($0) }
    var configPath: String?
    if let dir = o.checkpointDir {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        configPath = dir + "/run.toml"
        let text = "# rnnlm train settings, resolved (flags over --config over defaults). Reuse: rnnlm train --config \(configPath!)\n"
            + o.tomlLines().joined(separator: "\n") + "\n"
        try text.write(toFile: configPath!, atomically: true, encoding: .utf8)
    }
    out.say("config: \(changed.joined(separator: ", "))\(configPath.map { " (all settings: \($0))" } ?? "")")
    if o.checkpointDir == nil { out.say("note: no --checkpoint-dir given; nothing will be saved") }
    if trainer.record.epoch >= o.epochs {
        out.say("training is already complete (epoch \(trainer.record.epoch) of \(o.epochs)); pass a larger --epochs to continue")
        return
    }
    installStopHandlers()
    var coordinator: RNNDistributed.Coordinator?
    let context = ZMQContext()
    var zap: ZAPAuthenticator?
    defer { zap?.stop() }
    if let d = distributed {
        guard d.heartbeatTimeout >= 1 else { throw ValidationError("--heartbeat-timeout must be at least 1 second") }
        let socket = try ZMQSocket(context, kind: .router, maxMessageBytes: Int64(trainer.model.parameterCount * 8 + 1 << 20),
                                   heartbeatTimeout: d.heartbeatTimeout)
        if let c = d.curve {
            // The authentication handler must be listening before the socket accepts anyone.
            let handler = ZAPAuthenticator(context: context, authorizedKeys: c.authorized, log: { line in
                FileHandle.standardOutput.write(Data((line + "\n").utf8))
            })
            try handler.start()
            zap = handler
            try socket.makeCurveServer(c.keys)
            out.say("CURVE: encrypted, \(c.authorized.count) authorised worker key(s); coordinator public key \(c.keys.publicKey)")
        }
        try socket.bind(d.bind)
        out.say("coordinator listening on \(socket.lastEndpoint)")
        try d.afterBind()
        var seedRNG = SystemRandomNumberGenerator()
        let c = RNNDistributed.Coordinator(socket: socket, runID: seedRNG.next(), parameterCount: trainer.model.parameterCount,
                                           joinTimeout: d.joinTimeout, stepTimeout: d.stepTimeout, log: out.say)
        c.shouldStop = { stopSignal != 0 }
        if let q = d.quorum {
            guard q >= 1 && q <= d.expectWorkers else { throw ValidationError("--quorum must be between 1 and --expect-workers (\(d.expectWorkers)), got \(q)") }
            c.quorum = q
        }
        guard d.minWorkers >= 1 else { throw ValidationError("--min-workers must be at least 1") }
        c.minWorkers = d.minWorkers
        c.sharedMemoryDirectory = d.sharedMemory
        do { try c.admitWorkers(count: d.expectWorkers, trainer: trainer) } catch let e as DistributedError where e == .interrupted {
            throw ExitCode(130)
        }
        trainer.source = c
        coordinator = c
    }
    defer { coordinator?.stopAll(reason: "training finished") }
    // Live progress and the metrics file.
    let every = flags.logEvery ?? 50
    guard every >= 1 else { throw ValidationError("--log-every must be at least 1") }
    let remainingEpochs = max(0, o.epochs - trainer.record.epoch)
    // Async: every worker walks every minibatch of its streams each epoch, and each applied gradient is a step; the
    // total follows the live workers' remaining minibatches (a lost worker's share is not run).
    let asyncCoordinator = distributed?.mode == .async ? coordinator : nil
    let totalSteps = asyncCoordinator.map { c in
        trainer.record.step + (trainer.record.epoch..<o.epochs).reduce(0) { $0 + trainer.epochBatches($1).count } * c.peers.count
    } ?? trainer.record.step - trainer.record.batchInEpoch + remainingEpochs * perEpoch
    let reporter = ProgressReporter(isTerminal: ProgressReporter.stdoutIsTerminal, level: out.level, every: every,
                                    totalSteps: totalSteps, epochs: o.epochs)
    let expected = distributed?.expectWorkers
    reporter.workers = { coordinator.map { ($0.peers.count, expected ?? $0.peers.count) } }
    out.reporter = reporter
    let metricsPath = flags.metrics ?? o.checkpointDir.map { $0 + "/metrics.jsonl" }
    let metrics = try metricsPath.map { try MetricsWriter(path: $0, every: every) }
    metrics?.workers = { coordinator?.peers.count }
    trainer.onStep = { info in
        if let c = asyncCoordinator { reporter.totalSteps = info.step + c.asyncRemaining }
        reporter.step(info)
        metrics?.step(info)
    }
    trainer.onEpoch = { [unowned trainer] report in metrics?.epoch(report, step: trainer.record.step) }
    let started = Date()
    var gate: StalenessGate?
    do {
        defer { reporter.finish() }
        if let d = distributed, d.mode == .async, let c = coordinator {
            let s = d.maxStaleness ?? d.expectWorkers
            guard s >= 0 else { throw ValidationError("--max-staleness must be 0 or more") }
            gate = try c.runAsync(trainer: trainer, maxStaleness: s)
        } else {
            try trainer.run(shouldStop: { stopSignal != 0 })
        }
    } catch let e as DistributedError where e == .interrupted {}
    out.reporter = nil
    if let g = gate {
        out.say("async: applied \(g.applied) gradients (largest staleness \(g.maxAppliedStaleness), bound --max-staleness \(g.maxStaleness)), discarded \(g.discarded) stale")
    }
    if stopSignal != 0 {
        if let path = try trainer.saveCheckpoint() { FileHandle.standardError.write(Data("interrupted: saved \(path); continue with --resume\n".utf8)) }
        throw ExitCode(130)
    }
    let wall = Date().timeIntervalSince(started)
    if let last = trainer.record.history.last {
        out.say("done: \(trainer.record.epoch) epochs, \(trainer.record.step) steps in \(duration(wall)); final perplexity \(String(format: "%.3f", last.trainPerplexity))\(last.validPerplexity.map { String(format: ", val %.3f", $0) } ?? "")")
    }
    if let c = coordinator, c.steps > 0 { out.say(c.timingSummary(stepSeconds: trainer.stepSeconds, updateSeconds: trainer.updateSeconds)) }
    if let test = trainer.evaluate(trainer.data.test) { out.say(String(format: "test perplexity %.3f", test.perplexity)) }
    if let dir = o.checkpointDir, let latest = latestCheckpoint(in: dir) { out.say("checkpoint: \(latest)") }
    if let m = metricsPath, let dir = o.checkpointDir {
        let points = try readEpochPoints(m)
        if !points.isEmpty {
            let svg = dir + "/curve.svg"
            try perplexitySVG(points, logScale: false, title: "\(o.model.rawValue) on \(o.dataset ?? (o.corpus as NSString?)?.lastPathComponent ?? "text")")
                .write(toFile: svg, atomically: true, encoding: .utf8)
            out.say("metrics: \(m); plot: \(svg)")
        }
    }
    if let prefix = flags.sample {
        let m = TrainedModel(model: trainer.model, tokenizer: trainer.data.tokenizer, vocabulary: trainer.data.vocabulary, record: trainer.record)
        out.say("sample: " + (try m.generate(prefix: prefix, count: 100, decoding: .greedy)))
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Perplexity of a text under a trained model.")

    @Option(help: "Checkpoint file, or a checkpoint folder (its newest checkpoint).")
    var checkpoint: String
    @Option(help: "Text file to evaluate.")
    var corpus: String?
    @Option(help: "Named dataset to evaluate (timemachine, tinyshakespeare).")
    var dataset: String?
    @Option(help: "Folder searched first for named datasets (also $RNNLM_DATA_DIR).")
    var dataDir: String?
    @Option(help: "Parallel streams (default: the training batch size).")
    var batchSize: Int?
    @Option(help: "Steps per minibatch (default: the training num-steps).")
    var numSteps: Int?

    func run() throws {
        try runReportingErrors {
            setBLASThreads(1)
            let m = try TrainedModel(checkpointPath: TrainedModel.resolve(checkpoint))
            let path: String
            if let c = corpus { path = c } else if let d = dataset { path = try NamedDataset.named(d).locate(dataDir: dataDir) } else {
                throw ValidationError("pass --corpus PATH or --dataset NAME")
            }
            let tokens = m.vocabulary.ids(m.tokenizer.tokenize(try readCorpus(path)))
            guard let loss = evaluateLoss(model: m.model, tokens: tokens, batch: batchSize ?? m.record.options.batchSize,
                                          steps: numSteps ?? m.record.options.numSteps) else {
                throw CorpusError("\(path) has fewer than 2 tokens; nothing to evaluate")
            }
            let unknown = tokens.filter { $0 == 0 }.count
            print(String(format: "perplexity %.3f  loss %.4f  (%d tokens predicted, %d unknown)", loss.perplexity, loss.mean, loss.count, unknown))
        }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prefix with a trained model: greedy (default), sampling, or beam search.")

    @Option(help: "Checkpoint file, or a checkpoint folder (its newest checkpoint).")
    var checkpoint: String
    @Option(help: "Text to start from (tokenized as in training).")
    var prefix: String = "time traveller"
    @Option(help: "How many tokens to generate.")
    var tokens: Int = 100
    @Option(help: "Sample with this temperature instead of taking the most likely token (0 = greedy).")
    var temperature: Float = 0
    @Option(help: "With --temperature: sample only among the k most likely tokens (0 = all).")
    var topK: Int = 0
    @Option(help: "Beam search with this many beams (overrides sampling).")
    var beam: Int?
    @Option(help: "Beam search length penalty α: candidates are ranked by log P / L^α (D2L uses 0.75).")
    var lengthPenalty: Double = 0.75
    @Option(help: "Seed for sampling.")
    var seed: UInt64 = 0

    func run() throws {
        try runReportingErrors {
            guard tokens >= 0 else { throw ValidationError("--tokens must be 0 or more") }
            guard topK >= 0 else { throw ValidationError("--top-k must be 0 or more") }
            setBLASThreads(1)
            let m = try TrainedModel(checkpointPath: TrainedModel.resolve(checkpoint))
            let decoding: Decoding
            if let b = beam { decoding = .beam(width: b, lengthPenalty: lengthPenalty) }
            else if temperature > 0 { decoding = .sample(temperature: temperature, topK: topK, seed: seed) }
            else { decoding = .greedy }
            print(try m.generate(prefix: prefix, count: tokens, decoding: decoding))
        }
    }
}

struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Draw training and validation perplexity against epoch from a metrics file, as SVG.")

    @Argument(help: "A metrics.jsonl written by rnnlm train.")
    var metrics: String
    @Option(name: .shortAndLong, help: "Output SVG file.")
    var output: String = "curve.svg"
    @Flag(help: "Perplexity on a logarithmic axis.")
    var logScale = false
    @Option(help: "Chart title.")
    var title: String = "perplexity"

    func run() throws {
        try runReportingErrors {
            let points = try readEpochPoints(metrics)
            guard !points.isEmpty else { throw TrainingError("\(metrics) has no epoch records yet (they are written at the end of each epoch)") }
            try perplexitySVG(points, logScale: logScale, title: title).write(toFile: output, atomically: true, encoding: .utf8)
            print("wrote \(output): \(points.count) epochs")
        }
    }
}

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a CURVE key pair for a coordinator or a worker.",
        discussion: """
            rnnlm keygen --name coordinator --out keys      # keys/coordinator.secret, keys/coordinator.public
            rnnlm keygen --name worker1 --out keys          # one per worker host
            Coordinator: --curve-secret keys/coordinator.secret --authorized-keys FOLDER_WITH_WORKER_PUBLIC_FILES
            Worker:      --curve-key keys/worker1.secret --curve-server-key keys/coordinator.public
            """)

    @Option(help: "Name of the key pair (file names NAME.secret and NAME.public).")
    var name: String = "coordinator"
    @Option(help: "Folder to write the files into.")
    var out: String = "keys"
    @Flag(help: "Overwrite existing files of that name.")
    var force = false

    func run() throws {
        try runReportingErrors {
            let secret = out + "/" + name + ".secret"
            if FileManager.default.fileExists(atPath: secret) && !force {
                throw ValidationError("\(secret) exists; pass --force to replace it (workers and coordinators using it must then be updated)")
            }
            let keys = try CurveKeyPair.generate()
            let paths = try keys.write(to: out, name: name)
            print("wrote \(paths.secret) (private, mode 600) and \(paths.public)")
            print("public key: \(keys.publicKey)")
        }
    }
}
