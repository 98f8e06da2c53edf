import Foundation
import ArgumentParser
import RNNCore
import RNNDistributed
import RNNText
import RNNTrain

/// `text` followed by the default as ArgumentParser prints one, for options that must stay optional (so that
/// `--resume` can tell which ones the user gave) but whose default lives in `TrainOptions`.
private func defaulted(_ text: String, _ value: some CustomStringConvertible) -> ArgumentHelp {
    ArgumentHelp("\(text) (default: \(value))")
}

/// The defaults of every training setting, declared in `TrainOptions` only.
private let defaults = TrainOptions()

/// The training flags, all optional so that `--resume` can tell which ones the user actually gave. Their defaults
/// are `TrainOptions`'; choice flags are enums, so help lists their values and parsing rejects others.
struct TrainFlags: ParsableArguments {
    @Option(help: "What to train: a language model over text, or an encoder-decoder over sentence pairs (translation). (default: language-model; with --resume, the checkpoint's)")
    var task: TaskName?
    @Option(help: "Training text file (UTF-8).") var corpus: String?
    @Option(help: "A folder in word_language_model's layout: DIR/train.txt, and DIR/valid.txt, DIR/test.txt when present (--valid/--test override them).") var data: String?
    @Option(help: "Named dataset: timemachine or tinyshakespeare; fra-eng (pairs) with --task translation (found in --data-dir, or downloaded and SHA-1 checked).") var dataset: String?
    @Option(help: "translation: a file of `source<TAB>target` lines (UTF-8), instead of --dataset fra-eng.") var pairs: String?
    @Option(help: defaulted("translation: read lines 0…N of the pairs file for training (D2L's num_examples; N = 600 gives 601 pairs).", defaults.translationDefaults.numExamples)) var numExamples: Int?
    @Option(help: defaulted("translation: the pairs after the training lines held out for validation loss and BLEU each epoch.", defaults.translationDefaults.validExamples)) var validExamples: Int?
    @Flag(help: "translation: a bidirectional encoder (H/2 per direction; the final states of both start the decoder).") var bidirectional = false
    @Option(help: defaulted("translation: fixed pads every pair to --num-steps (D2L); bucketed groups pairs of similar length and runs each minibatch only as long as its longest pair (the encoder then skips padding).", defaults.translationDefaults.batching.rawValue)) var batching: PairBatching?
    @Option(help: "Folder searched first for named datasets (also $RNNLM_DATA_DIR).") var dataDir: String?
    @Option(name: .customLong("valid"), help: "Validation text file.") var valid: String?
    @Option(name: .customLong("test"), help: "Test text file (perplexity printed at the end).") var test: String?
    @Option(help: defaulted("Hold out this fraction of the training tokens (their end) for validation.", defaults.validFraction)) var validFraction: Double?
    @Option(help: "Tokenizer: char is D2L's (letters and spaces, lowercased), char-raw keeps every character; lines adds <eos> per line. (default: char-raw for --corpus and --data; the dataset's own for --dataset: char for timemachine, char-raw for tinyshakespeare)") var tokenizer: TokenizerKind?
    @Flag(help: "Lowercase words (word, lines, bpe tokenizers).") var lowercase = false
    @Option(help: defaulted("Number of BPE merges to learn (bpe tokenizer).", defaults.bpeMerges)) var bpeMerges: Int?
    @Option(help: ArgumentHelp("Tokens seen fewer times become <unk> (default: \(defaults.minFreq); \(defaults.translationDefaults.minFreq) with --task translation, as D2L).")) var minFreq: Int?
    @Option(help: "Train on the first N tokens only (D2L uses 10000).") var maxTokens: Int?
    @Option(help: defaulted("Cell: rnn is tanh, rnn-relu ReLU.", defaults.model.rawValue)) var model: CellKind?
    @Option(help: defaulted("Stacked recurrent layers.", defaults.layers)) var layers: Int?
    @Option(help: defaulted("Hidden units per layer.", defaults.hidden)) var hidden: Int?
    @Option(help: defaulted("Embedding width; 0 feeds one-hot tokens as D2L does.", defaults.embed)) var embed: Int?
    @Flag(help: "Tie the decoder's weight to the embedding (word_language_model's --tied): one tensor, encoder.weight, used by both; needs --embed equal to --hidden.") var tied = false
    @Option(help: defaulted("Dropout on the embedding, between layers and before the decoder.", defaults.dropout)) var dropout: Float?
    @Option(help: defaulted("Initialisation: pytorch's uniform, or normal (D2L's N(0, init-std²)).", defaults.initScheme.rawValue)) var initScheme: TrainOptions.InitSchemeName?
    @Option(help: defaulted("Standard deviation for --init-scheme normal.", defaults.initStd)) var initStd: Float?
    @Option(help: defaulted("Parallel streams per minibatch (B).", defaults.batchSize)) var batchSize: Int?
    @Option(help: defaulted("Time steps per minibatch, the BPTT truncation length (T).", defaults.numSteps)) var numSteps: Int?
    @Option(help: defaulted("Minibatch partitioning: sequential carries the state across minibatches.", defaults.partition.rawValue)) var partition: Partition?
    @Option(help: defaulted("Passes over the training text.", defaults.epochs)) var epochs: Int?
    @Option(help: defaulted("Optimizer.", defaults.optimizer.rawValue)) var optimizer: TrainOptions.OptimizerName?
    @Option(help: defaulted("Learning rate (1 is D2L's, for sgd).", defaults.lr)) var lr: Float?
    @Option(help: defaulted("SGD momentum.", defaults.momentum)) var momentum: Float?
    @Option(help: defaulted("L2 weight decay.", defaults.weightDecay)) var weightDecay: Float?
    @Option(help: defaulted("Adam β1.", defaults.beta1)) var beta1: Float?
    @Option(help: defaulted("Adam β2.", defaults.beta2)) var beta2: Float?
    @Option(help: defaulted("Adam ε.", defaults.adamEps)) var adamEps: Float?
    @Option(help: defaulted("Clip the global gradient norm to this value; 0 disables.", defaults.clip)) var clip: Double?
    @Option(help: defaulted("Learning-rate schedule.", defaults.lrSchedule.rawValue)) var lrSchedule: TrainOptions.ScheduleName?
    @Option(help: defaulted("Factor the learning rate is multiplied by at each decay.", defaults.lrDecay)) var lrDecay: Float?
    @Option(help: defaulted("step schedule: first decay after this epoch.", defaults.lrStepStart)) var lrStepStart: Int?
    @Option(help: defaulted("step schedule: then every this many epochs.", defaults.lrStepEvery)) var lrStepEvery: Int?
    @Option(help: defaulted("plateau schedule: epochs without improvement before a decay.", defaults.lrPatience)) var lrPatience: Int?
    @Option(help: defaulted("plateau schedule: lower bound of the learning rate.", defaults.lrMin)) var lrMin: Float?
    @Option(help: defaulted("Seed for initialisation, data order and dropout.", defaults.seed)) var seed: UInt64?
    @Option(help: "Folder for step-N.safetensors checkpoints (written at each epoch end).") var checkpointDir: String?
    @Option(help: defaulted("Also checkpoint every N steps (0: epoch ends only).", defaults.checkpointEvery)) var checkpointEvery: Int?
    @Option(help: defaulted("Also checkpoint when this many seconds passed since the last one (0: off).", defaults.checkpointSeconds)) var checkpointSeconds: Double?
    @Option(help: defaulted("Keep the newest N checkpoints.", defaults.keepCheckpoints)) var keepCheckpoints: Int?
    @Option(help: "Stop after N epochs without a new best (validation loss, else training loss; see best.safetensors). Default: off.") var earlyStop: Int?
    @Option(help: "Compute threads: each minibatch's streams are split across them (results are reproducible for a given count). With --workers N, per local worker; on a coordinator (rnnlm coordinator, launch rank 0), its BLAS and update threads (its workers set their own).")
    var threads: Int = 1
    @Option(help: "Read settings from a TOML (key = value) or JSON file whose keys are these flags' names; flags given on the command line win.") var config: String?
    @Flag(help: "Print only warnings and errors.") var quiet = false
    @Option(help: "info prints epoch lines and a live status line on a terminal; debug also a line per --log-every interval on a terminal.")
    var logLevel: LogLevel = .info
    @Option(help: "Steps per logging interval: a metrics record, and a plain progress line when output is not a terminal.")
    var logEvery: Int = 50
    @Option(help: "Metrics file (JSON lines). Default: metrics.jsonl in --checkpoint-dir.") var metrics: String?
    @Option(help: "After training, print a greedy continuation of this text (e.g. \"time traveller\").") var sample: String?

    /// The effective log level (`--quiet` wins).
    var level: LogLevel { quiet ? .warning : logLevel }

    /// The run's settings for `rnnlm train` / `rnnlm coordinator`: a new run from these flags, or, with `resume`,
    /// the newest checkpoint's settings reconciled with them.
    func runSettings(resume: Bool, coordinator: CoordinatorSettings?, command: String = "train",
                     commandLines: [String] = []) throws -> TrainingRun.Settings {
        let start: TrainingRun.Start
        if resume {
            start = .resume(checkpointDir: checkpointDir, reconcile: { stored in
                // The checkpoint says which task it trains; flags of the other task are refused, not ignored.
                let storedTask: TaskName = stored.translation != nil ? .translation : .languageModel
                if let t = task, t != storedTask {
                    throw ConfigError("--resume: --task \(t.rawValue), but the checkpoint in \(checkpointDir ?? ".") holds a \(storedTask.rawValue) run; drop --task, or use a new --checkpoint-dir for a new run")
                }
                try checkTaskFlags(for: storedTask, resuming: true)
                try checkCompatible(with: stored, task: storedTask)
                var o = stored
                if let e = epochs { o.epochs = e }
                applyRunSettings(to: &o)
                try o.validateValues()
                return o
            }, otherwise: {
                try checkTaskFlags(for: task ?? .languageModel)
                return try newRunOptions()
            })
        } else {
            start = .new(try newRunOptions())
        }
        var s = TrainingRun.Settings(start: start)
        s.dataDir = dataDir
        s.threads = threads
        s.logLevel = level
        s.logEvery = logEvery
        s.metrics = metrics
        s.sample = sample
        s.coordinator = coordinator
        s.command = command
        s.commandLines = commandLines
        return s
    }

    /// Flags of one task given to the other: refused, naming the flag, rather than silently ignored. A resumed
    /// translation run takes its embedding width from the checkpoint.
    func checkTaskFlags(for task: TaskName, resuming: Bool = false) throws {
        let languageModelOnly: [(String, Bool)] = [
            ("--corpus", corpus != nil), ("--data", data != nil), ("--valid", valid != nil), ("--test", test != nil), ("--valid-fraction", validFraction != nil),
            ("--tokenizer", tokenizer != nil), ("--lowercase", lowercase), ("--bpe-merges", bpeMerges != nil),
            ("--max-tokens", maxTokens != nil), ("--partition", partition != nil), ("--init-scheme", initScheme != nil),
            ("--init-std", initStd != nil), ("--sample", sample != nil), ("--tied", tied)]
        let translationOnly: [(String, Bool)] = [
            ("--pairs", pairs != nil), ("--num-examples", numExamples != nil), ("--valid-examples", validExamples != nil),
            ("--bidirectional", bidirectional), ("--batching", batching != nil)]
        switch task {
        case .translation:
            if let (flag, _) = languageModelOnly.first(where: \.1) {
                throw ConfigError("\(flag) is a language-model setting and does not apply to --task translation (pairs come from --pairs FILE or --dataset fra-eng)")
            }
            if let e = embed, e < 1 { throw ConfigError("--task translation needs --embed of at least 1 (D2L uses 32), got \(e)") }
            if embed == nil && !resuming { throw ConfigError("--task translation needs an embedding width: pass --embed (D2L uses 32)") }
        case .languageModel:
            if let (flag, _) = translationOnly.first(where: \.1) {
                throw ConfigError("\(flag) is a translation setting: pass --task translation (or drop \(flag))")
            }
        }
    }

    /// Checks that need no data (each value's range), before any corpus loads. With `--resume`, the task, the
    /// training text and the model come from the checkpoint: the flags are checked against it once it is read
    /// (before any data loads too), by the run's `reconcile`.
    func validate(resume: Bool, coordinator: CoordinatorSettings?) throws {
        if !resume { try checkTaskFlags(for: task ?? .languageModel) }
        let s = try runSettings(resume: resume, coordinator: coordinator)
        try s.validate()
        if resume { try validateResumeSettings() }
    }

    /// The settings a resumed run may change, checked before the checkpoint is even read.
    func validateResumeSettings() throws {
        var o = TrainOptions()
        if let e = epochs { o.epochs = e }
        applyRunSettings(to: &o)
        try o.validateValues()
    }

    /// What a worker rank of `rnnlm launch` can check of the flags every rank is given: their values and how they
    /// combine, so that a bad flag stops every rank as it stops rank 0. The files are rank 0's to read (a worker's
    /// host may not have them), and a resumed run's settings are the checkpoint's, which only rank 0 reads.
    func validateWithoutFiles(resume: Bool) throws {
        // Resuming, what rank 0 checks before it reads the checkpoint (the rest is the checkpoint's to decide).
        if resume { return try validateResumeSettings() }
        let task = self.task ?? .languageModel
        try checkTaskFlags(for: task)
        try checkDataFolderFlags()
        var flags = self
        if let dir = data {
            flags.data = nil
            flags.corpus = Self.dataFolderFile(dir, "train.txt")
        }
        var o = TrainOptions()
        try flags.apply(to: &o, task: task)
        try o.validate()
    }

    func newRunOptions() throws -> TrainOptions {
        var o = TrainOptions()
        try apply(to: &o, task: task ?? .languageModel)
        return o
    }

    /// The training, validation and test files `--data DIR` names (word_language_model's layout); nil without
    /// `--data`. `valid.txt` and `test.txt` count only when present.
    func dataFolderFiles() throws -> (train: String, valid: String?, test: String?)? {
        guard let dir = data else { return nil }
        try checkDataFolderFlags()
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw ConfigError("--data \(dir): no such folder (it should hold train.txt, and optionally valid.txt and test.txt)")
        }
        let file = { (name: String) in Self.dataFolderFile(dir, name) }
        guard FileManager.default.fileExists(atPath: file("train.txt")) else {
            throw ConfigError("--data \(dir): no train.txt in the folder (word_language_model's layout: train.txt, and optionally valid.txt and test.txt)")
        }
        let present = { (name: String) in FileManager.default.fileExists(atPath: file(name)) ? file(name) : nil }
        return (file("train.txt"), present("valid.txt"), present("test.txt"))
    }

    /// `--data DIR` stands for `--corpus` (and `--dataset`): not with them.
    func checkDataFolderFlags() throws {
        if data != nil && (corpus != nil || dataset != nil) {
            throw ConfigError("--data reads DIR/train.txt (and valid.txt, test.txt); pass it instead of --corpus or --dataset, not with them")
        }
    }

    /// A file of the `--data` folder.
    static func dataFolderFile(_ dir: String, _ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

    func apply(to o: inout TrainOptions, task: TaskName) throws {
        if task == .translation {
            var t = o.translation ?? TrainOptions.TranslationOptions()
            if let p = pairs { t.pairs = p }
            if let v = numExamples { t.numExamples = v }
            if let v = validExamples { t.validExamples = v }
            if bidirectional { t.bidirectional = true }
            if let v = batching { t.batching = v }
            if let v = minFreq { t.minFreq = v }
            o.translation = t
        }
        let folder = try dataFolderFiles()
        o.corpus = folder?.train ?? corpus; o.dataset = dataset
        o.validCorpus = valid ?? folder?.valid; o.testCorpus = test ?? folder?.test
        if let v = validFraction { o.validFraction = v }
        if let t = tokenizer {
            o.tokenizer = t
        } else if let d = dataset, task == .languageModel {
            o.tokenizer = try NamedDataset.named(d).defaultTokenizer
        } else if o.corpus != nil, task == .languageModel {
            o.tokenizer = .charRaw  // your own text keeps every character; D2L's char is timemachine's default
        }
        o.lowercase = lowercase
        if let v = bpeMerges { o.bpeMerges = v }
        if let v = minFreq, task == .languageModel { o.minFreq = v }
        o.maxTokens = maxTokens
        if let v = model { o.model = v }
        if let v = layers { o.layers = v }
        if let v = hidden { o.hidden = v }
        if let v = embed { o.embed = v }
        if tied { o.tied = true }
        if let v = dropout { o.dropout = v }
        if let v = initScheme { o.initScheme = v }
        if let v = initStd { o.initStd = v }
        if let v = batchSize { o.batchSize = v }
        if let v = numSteps { o.numSteps = v }
        if let v = partition { o.partition = v }
        if let v = epochs { o.epochs = v }
        if let v = optimizer { o.optimizer = v }
        if let v = lr { o.lr = v }
        if let v = momentum { o.momentum = v }
        if let v = weightDecay { o.weightDecay = v }
        if let v = beta1 { o.beta1 = v }
        if let v = beta2 { o.beta2 = v }
        if let v = adamEps { o.adamEps = v }
        if let v = clip { o.clip = v }
        if let v = lrSchedule { o.lrSchedule = v }
        if let v = lrDecay { o.lrDecay = v }
        if let v = lrStepStart { o.lrStepStart = v }
        if let v = lrStepEvery { o.lrStepEvery = v }
        if let v = lrPatience { o.lrPatience = v }
        if let v = lrMin { o.lrMin = v }
        if let v = seed { o.seed = v }
        applyRunSettings(to: &o)
    }

    /// Settings that may change between a run and its resumption.
    func applyRunSettings(to o: inout TrainOptions) {
        if let v = checkpointDir { o.checkpointDir = v }
        if let v = checkpointEvery { o.checkpointEvery = v }
        if let v = checkpointSeconds { o.checkpointSeconds = v }
        if let v = keepCheckpoints { o.keepCheckpoints = v }
        if let v = earlyStop { o.earlyStop = v }
    }

    /// On `--resume`, a flag that contradicts the checkpoint (a run of `task`) is an error (rather than silently
    /// ignored), naming the flags and both values.
    func checkCompatible(with stored: TrainOptions, task: TaskName) throws {
        var wanted = stored
        try apply(to: &wanted, task: task)
        wanted.epochs = stored.epochs
        let folderGiven = data != nil
        if corpus == nil && dataset == nil && !folderGiven { wanted.corpus = stored.corpus; wanted.dataset = stored.dataset }
        if tokenizer == nil { wanted.tokenizer = stored.tokenizer }
        if !lowercase { wanted.lowercase = stored.lowercase }
        if maxTokens == nil { wanted.maxTokens = stored.maxTokens }
        if valid == nil && !folderGiven { wanted.validCorpus = stored.validCorpus }
        if test == nil && !folderGiven { wanted.testCorpus = stored.testCorpus }
        applyRunSettings(to: &wanted)
        var storedRun = stored
        applyRunSettings(to: &storedRun)
        guard wanted == storedRun else {
            let diffs = settingDifferences(wanted, storedRun).map { flag, checkpoint, given in "--\(flag) (checkpoint: \(checkpoint), given: \(given))" }
            throw ConfigError("--resume: these flags differ from the checkpoint's run: \(diffs.joined(separator: ", ")); drop them to continue, or use a new --checkpoint-dir for a new run")
        }
    }

    /// The settings that differ between `a` (the flags) and `b` (the checkpoint), by flag name, with both values
    /// (the translation settings one by one).
    private func settingDifferences(_ a: Any, _ b: Any) -> [(flag: String, checkpoint: String, given: String)] {
        var out: [(String, String, String)] = []
        for (x, y) in zip(Mirror(reflecting: a).children, Mirror(reflecting: b).children) where "\(x.value)" != "\(y.value)" {
            let label = x.label ?? "?"
            if label == "translation", let u = unwrapped(x.value), let v = unwrapped(y.value) {
                out += settingDifferences(u, v)
                continue
            }
            out.append((Self.flagNames[label] ?? kebab(label), shown(y.value), shown(x.value)))
        }
        return out
    }

    /// `TrainOptions` properties whose flag is not their name in kebab case.
    private static let flagNames = ["validCorpus": "valid", "testCorpus": "test", "translation": "task"]

    private func kebab(_ name: String) -> String {
        name.reduce(into: "") { out, c in if c.isUppercase { out += "-" + c.lowercased() } else { out.append(c) } }
    }

    private func unwrapped(_ value: Any) -> Any? {
        let m = Mirror(reflecting: value)
        guard m.displayStyle == .optional else { return value }
        return m.children.first?.value
    }

    private func shown(_ value: Any) -> String {
        guard let v = unwrapped(value) else { return "none" }
        if let r = v as? any RawRepresentable { return "\(r.rawValue)" }
        return "\(v)"
    }
}

/// Synchronous or asynchronous parameter server.
struct DistributedFlags: ParsableArguments {
    @Option(help: "sync: every step waits for all workers and equals single-process training; async: each gradient is applied on arrival (faster with uneven workers, not reproducible).")
    var mode: CoordinatorSettings.Mode = .sync
    @Option(help: "async: discard a gradient computed on weights more than this many updates old. Default: the number of workers.")
    var maxStaleness: Int?
    @Option(help: "sync: after --step-timeout, go on with the gradients of at least this many workers (stragglers' late gradients are discarded). Default: all workers.")
    var quorum: Int?
    @Option(help: "Pause (and say so) while fewer workers than this are alive; workers may join a running job. At the start, once --join-timeout has passed, begin with this many if not all of --expect-workers joined.")
    var minWorkers: Int?
    @Option(help: "Seconds without heartbeats after which a worker is declared dead (a killed worker is noticed at once). Default: 5.")
    var heartbeatTimeout: Double?
    @Option(help: "none: workers send Float32 gradients (the run equals the single process); bf16: bfloat16 with error feedback (half the upload, lossy).")
    var gradientCompression: CoordinatorSettings.GradientCompression?
    @Option(help: "sync: how each step's weights go to workers across sockets. together: to all at once (they share the coordinator's link); in-turn: one worker at a time, the next when the last has its weights, so early workers compute and upload while later ones download (faster when the coordinator's link is the bottleneck; exact).")
    var broadcast: CoordinatorSettings.Broadcast?

    /// The flags given: each flag's name, its value as written on the command line, its TOML literal, and whether
    /// that value is the default.
    private var givenSettings: [(flag: String, value: String, toml: String, isDefault: Bool)] {
        var out: [(String, String, String, Bool)] = []
        func choice<C: RawRepresentable<String>>(_ flag: String, _ v: C?, default d: C) where C: Equatable {
            if let v { out.append((flag, v.rawValue, tomlString(v.rawValue), v == d)) }
        }
        func number<N>(_ flag: String, _ v: N?) { if let v { out.append((flag, "\(v)", "\(v)", false)) } }
        choice("mode", mode == .sync ? nil : mode, default: .sync)
        number("max-staleness", maxStaleness)
        number("quorum", quorum)
        number("min-workers", minWorkers)
        number("heartbeat-timeout", heartbeatTimeout)
        choice("gradient-compression", gradientCompression, default: .none)
        choice("broadcast", broadcast, default: .together)
        return out
    }

    /// The flags given with other than their defaults, with their values: without workers they would do nothing,
    /// so `rnnlm train` refuses them then.
    var given: [String] { givenSettings.filter { !$0.isDefault }.map { "--\($0.flag) \($0.value)" } }

    /// The flags given, as `key = value` lines for run.toml (those not given keep their defaults on reuse).
    var tomlLines: [String] { givenSettings.map { "\($0.flag) = \($0.toml)" } }

    /// Coordinator settings for `expectWorkers` workers at `bind`, with these flags applied.
    func coordinator(bind: String, expectWorkers: Int, joinTimeout: Double, stepTimeout: Double) -> CoordinatorSettings {
        var c = CoordinatorSettings(bind: bind, expectWorkers: expectWorkers, joinTimeout: joinTimeout, stepTimeout: stepTimeout)
        c.mode = mode
        c.maxStaleness = maxStaleness
        c.quorum = quorum
        c.minWorkers = minWorkers
        c.heartbeatTimeout = heartbeatTimeout ?? c.heartbeatTimeout
        c.gradientCompression = gradientCompression ?? .none
        c.broadcast = broadcast ?? .together
        return c
    }
}

// The choice flags' types, parsed from their raw values; help lists them.
/// The model families `--task` names.
enum TaskName: String, CaseIterable, ExpressibleByArgument {
    case languageModel = "language-model"
    case translation
}

extension TokenizerKind: ExpressibleByArgument {}
extension PairBatching: ExpressibleByArgument {}
extension CellKind: ExpressibleByArgument {}
extension Partition: ExpressibleByArgument {}
extension TrainOptions.OptimizerName: ExpressibleByArgument {}
extension TrainOptions.ScheduleName: ExpressibleByArgument {}
extension TrainOptions.InitSchemeName: ExpressibleByArgument {}
extension LogLevel: ExpressibleByArgument {}
extension CoordinatorSettings.Mode: ExpressibleByArgument {}
extension CoordinatorSettings.GradientCompression: ExpressibleByArgument {}
extension CoordinatorSettings.Broadcast: ExpressibleByArgument {}
