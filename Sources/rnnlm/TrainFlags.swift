import ArgumentParser
import RNNCore
import RNNText
import RNNTrain

/// The training flags, all optional so that `--resume` can tell which ones the user actually gave.
struct TrainFlags: ParsableArguments {
    @Option(help: "Training text file (UTF-8).") var corpus: String?
    @Option(help: "Named dataset: timemachine or tinyshakespeare (found in --data-dir, or downloaded and SHA-1 checked).") var dataset: String?
    @Option(help: "Folder searched first for named datasets (also $RNNLM_DATA_DIR).") var dataDir: String?
    @Option(name: .customLong("valid"), help: "Validation text file.") var valid: String?
    @Option(name: .customLong("test"), help: "Test text file (perplexity printed at the end).") var test: String?
    @Option(help: "Hold out this fraction of the training tokens (their end) for validation. Default 0.") var validFraction: Double?
    @Option(help: "Tokenizer: char (D2L: letters and spaces, lowercased), char-raw, word, lines (<eos> per line), bpe. Default char.") var tokenizer: String?
    @Flag(help: "Lowercase words (word, lines, bpe tokenizers).") var lowercase = false
    @Option(help: "Number of BPE merges to learn (bpe tokenizer). Default 2000.") var bpeMerges: Int?
    @Option(help: "Tokens seen fewer times become <unk>. Default 1.") var minFreq: Int?
    @Option(help: "Train on the first N tokens only (D2L uses 10000).") var maxTokens: Int?
    @Option(help: "Cell: rnn (tanh), rnn-relu, gru, lstm. Default gru.") var model: String?
    @Option(help: "Stacked recurrent layers. Default 1.") var layers: Int?
    @Option(help: "Hidden units per layer. Default 256.") var hidden: Int?
    @Option(help: "Embedding width; 0 feeds one-hot tokens as D2L does. Default 0.") var embed: Int?
    @Option(help: "Dropout on the embedding, between layers and before the decoder. Default 0.") var dropout: Float?
    @Option(help: "Initialisation: pytorch (default) or normal (D2L's N(0, init-std²)).") var initScheme: String?
    @Option(help: "Standard deviation for --init-scheme normal. Default 0.01.") var initStd: Float?
    @Option(help: "Parallel streams per minibatch (B). Default 32.") var batchSize: Int?
    @Option(help: "Time steps per minibatch, the BPTT truncation length (T). Default 35.") var numSteps: Int?
    @Option(help: "Minibatch partitioning: sequential (state carried across minibatches) or random. Default sequential.") var partition: String?
    @Option(help: "Passes over the training text. Default 50.") var epochs: Int?
    @Option(help: "Optimizer: sgd or adam. Default sgd.") var optimizer: String?
    @Option(help: "Learning rate. Default 1 (D2L's, for sgd).") var lr: Float?
    @Option(help: "SGD momentum. Default 0.") var momentum: Float?
    @Option(help: "L2 weight decay. Default 0.") var weightDecay: Float?
    @Option(help: "Adam β1. Default 0.9.") var beta1: Float?
    @Option(help: "Adam β2. Default 0.999.") var beta2: Float?
    @Option(help: "Adam ε. Default 1e-8.") var adamEps: Float?
    @Option(help: "Clip the global gradient norm to this value; 0 disables. Default 1.") var clip: Double?
    @Option(help: "Learning-rate schedule: constant, step or plateau. Default constant.") var lrSchedule: String?
    @Option(help: "Factor the learning rate is multiplied by at each decay. Default 0.5.") var lrDecay: Float?
    @Option(help: "step schedule: first decay after this epoch. Default 1.") var lrStepStart: Int?
    @Option(help: "step schedule: then every this many epochs. Default 1.") var lrStepEvery: Int?
    @Option(help: "plateau schedule: epochs without improvement before a decay. Default 0.") var lrPatience: Int?
    @Option(help: "plateau schedule: lower bound of the learning rate. Default 0.") var lrMin: Float?
    @Option(help: "Seed for initialisation, data order and dropout. Default 0.") var seed: UInt64?
    @Option(help: "Folder for step-N.safetensors checkpoints (written at each epoch end).") var checkpointDir: String?
    @Option(help: "Also checkpoint every N steps (0: epoch ends only). Default 0.") var checkpointEvery: Int?
    @Option(help: "Also checkpoint when this many seconds passed since the last one (0: off). Default 0.") var checkpointSeconds: Double?
    @Option(help: "Keep the newest N checkpoints. Default 3.") var keepCheckpoints: Int?
    @Option(help: "Compute threads: each minibatch's streams are split across them (results are reproducible for a given count). With --workers N, per local worker. Default 1.") var threads: Int?
    @Option(help: "Read settings from a TOML (key = value) or JSON file whose keys are these flags' names; flags given on the command line win.") var config: String?
    @Flag(help: "Print only warnings and errors.") var quiet = false
    @Option(help: "error, warning, info (default: epoch lines and a live status line on a terminal), or debug (also a line per --log-every interval on a terminal).") var logLevel: String?
    @Option(help: "Steps per logging interval: a metrics record, and a plain progress line when output is not a terminal. Default 50.") var logEvery: Int?
    @Option(help: "Metrics file (JSON lines). Default: metrics.jsonl in --checkpoint-dir.") var metrics: String?
    @Option(help: "After training, print a greedy continuation of this text (e.g. \"time traveller\").") var sample: String?

    static let defaultEpochs = 50

    /// The effective log level (`--quiet` wins).
    func level() throws -> LogLevel {
        if quiet { return .warning }
        guard let l = logLevel else { return .info }
        guard let v = LogLevel(rawValue: l) else { throw ConfigError("unknown --log-level '\(l)'; use error, warning, info or debug") }
        return v
    }

    func apply(to o: inout TrainOptions) throws {
        o.epochs = Self.defaultEpochs
        o.corpus = corpus; o.dataset = dataset; o.validCorpus = valid; o.testCorpus = test
        if let v = validFraction { o.validFraction = v }
        if let t = tokenizer {
            guard let k = TokenizerKind(rawValue: t) else {
                throw ConfigError("unknown --tokenizer '\(t)'; use one of \(TokenizerKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            o.tokenizer = k
        } else if let d = dataset {
            o.tokenizer = try NamedDataset.named(d).defaultTokenizer
        }
        o.lowercase = lowercase
        if let v = bpeMerges { o.bpeMerges = v }
        if let v = minFreq { o.minFreq = v }
        o.maxTokens = maxTokens
        if let m = model {
            guard let k = CellKind(rawValue: m) else {
                throw ConfigError("unknown --model '\(m)'; use one of \(CellKind.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            o.model = k
        }
        if let v = layers { o.layers = v }
        if let v = hidden { o.hidden = v }
        if let v = embed { o.embed = v }
        if let v = dropout { o.dropout = v }
        if let v = initScheme {
            guard let k = TrainOptions.InitSchemeName(rawValue: v) else { throw ConfigError("unknown --init-scheme '\(v)'; use pytorch or normal") }
            o.initScheme = k
        }
        if let v = initStd { o.initStd = v }
        if let v = batchSize { o.batchSize = v }
        if let v = numSteps { o.numSteps = v }
        if let p = partition {
            guard let k = Partition(rawValue: p) else { throw ConfigError("unknown --partition '\(p)'; use sequential or random") }
            o.partition = k
        }
        if let v = epochs { o.epochs = v }
        if let v = optimizer {
            guard let k = TrainOptions.OptimizerName(rawValue: v) else { throw ConfigError("unknown --optimizer '\(v)'; use sgd or adam") }
            o.optimizer = k
        }
        if let v = lr { o.lr = v }
        if let v = momentum { o.momentum = v }
        if let v = weightDecay { o.weightDecay = v }
        if let v = beta1 { o.beta1 = v }
        if let v = beta2 { o.beta2 = v }
        if let v = adamEps { o.adamEps = v }
        if let v = clip { o.clip = v }
        if let v = lrSchedule {
            guard let k = TrainOptions.ScheduleName(rawValue: v) else { throw ConfigError("unknown --lr-schedule '\(v)'; use constant, step or plateau") }
            o.lrSchedule = k
        }
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
    }

    /// On `--resume`, a flag that contradicts the checkpoint is an error (rather than silently ignored).
    func checkCompatible(with stored: TrainOptions) throws {
        var wanted = stored
        try apply(to: &wanted)
        wanted.epochs = stored.epochs
        if corpus == nil && dataset == nil { wanted.corpus = stored.corpus; wanted.dataset = stored.dataset }
        if tokenizer == nil { wanted.tokenizer = stored.tokenizer }
        if !lowercase { wanted.lowercase = stored.lowercase }
        if maxTokens == nil { wanted.maxTokens = stored.maxTokens }
        if valid == nil { wanted.validCorpus = stored.validCorpus }
        if test == nil { wanted.testCorpus = stored.testCorpus }
        applyRunSettings(to: &wanted)
        var storedRun = stored
        applyRunSettings(to: &storedRun)
        guard wanted == storedRun else {
            let mirrorA = Mirror(reflecting: wanted), mirrorB = Mirror(reflecting: storedRun)
            let diffs = zip(mirrorA.children, mirrorB.children).filter { "\($0.value)" != "\($1.value)" }.map { a, b in
                "\(a.label ?? "?") (checkpoint: \(b.value), flag: \(a.value))"
            }
            throw ConfigError("--resume: these flags differ from the checkpoint's run: \(diffs.joined(separator: ", ")); drop them to continue, or use a new --checkpoint-dir for a new run")
        }
    }
}
