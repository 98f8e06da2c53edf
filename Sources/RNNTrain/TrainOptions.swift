import RNNCore
import RNNText

/// Every setting of a training run. Stored in each checkpoint, so a resumed run continues the same way.
public struct TrainOptions: Codable, Equatable, Sendable {
    // Data
    public var corpus: String?
    public var dataset: String?
    public var validCorpus: String?
    public var testCorpus: String?
    public var validFraction: Double = 0
    public var tokenizer: TokenizerKind = .char
    public var lowercase: Bool = false
    public var bpeMerges: Int = 2000
    public var minFreq: Int = 1
    public var maxTokens: Int?
    // Model
    public var model: CellKind = .gru
    public var layers: Int = 1
    public var hidden: Int = 256
    public var embed: Int = 0
    public var dropout: Float = 0
    /// `--tied`: the decoder's weight is the embedding table. Optional so that checkpoints written before it
    /// existed decode (nil: untied).
    public var tied: Bool?
    public var initScheme: InitSchemeName = .pytorch
    public var initStd: Float = 0.01
    // Batching
    public var batchSize: Int = 32
    public var numSteps: Int = 35
    public var partition: Partition = .sequential
    // Optimisation
    public var epochs: Int = 50
    public var optimizer: OptimizerName = .sgd
    public var lr: Float = 1
    public var momentum: Float = 0
    public var weightDecay: Float = 0
    public var beta1: Float = 0.9
    public var beta2: Float = 0.999
    public var adamEps: Float = 1e-8
    public var clip: Double = 1
    public var lrSchedule: ScheduleName = .constant
    public var lrDecay: Float = 0.5
    public var lrStepStart: Int = 1
    public var lrStepEvery: Int = 1
    public var lrPatience: Int = 0
    public var lrMin: Float = 0
    public var seed: UInt64 = 0
    // Checkpoints
    public var checkpointDir: String?
    /// Also save every N optimizer steps (0: only at the end of each epoch).
    public var checkpointEvery: Int = 0
    /// Also save when this many seconds have passed since the last save (0: off).
    public var checkpointSeconds: Double = 0
    /// How many step checkpoints to keep (the newest ones).
    public var keepCheckpoints: Int = 3
    /// End training after this many epochs without a new best (`best.safetensors`); nil: off. Optional so that
    /// checkpoints written before it existed still decode.
    public var earlyStop: Int?

    /// Set for a translation run (`--task translation`); nil trains a language model.
    public var translation: TranslationOptions?

    public init() {}

    /// The translation settings' defaults, for help texts.
    public var translationDefaults: TranslationOptions { translation ?? TranslationOptions() }

    /// What a translation run adds: the pairs, how many, and the encoder's shape.
    public struct TranslationOptions: Codable, Equatable, Sendable {
        /// A `source<TAB>target` file (`--pairs`); nil with `--dataset fra-eng`.
        public var pairs: String?
        /// D2L's `num_examples`: lines 0…N are read (so 600 gives 601 pairs).
        public var numExamples: Int = 600
        /// Pairs after the training lines held out for validation loss and BLEU each epoch.
        public var validExamples: Int = 0
        public var bidirectional: Bool = false
        public var batching: PairBatching = .fixed
        /// Tokens seen fewer times in the training pairs become `<unk>` (D2L: 2). `--min-freq` sets it for translation.
        public var minFreq: Int = 2
        public init() {}
    }

    // The choices below are stored in checkpoints' JSON as their raw strings, as they were when these were strings.

    /// Weight initialisation: PyTorch's uniform ±1/√H, or D2L's N(0, initStd²) weights with zero biases.
    public enum InitSchemeName: String, Codable, CaseIterable, Sendable { case pytorch, normal }
    /// The optimizer applied to the summed, clipped gradient.
    public enum OptimizerName: String, Codable, CaseIterable, Sendable { case sgd, adam }
    /// How the learning rate changes across epochs.
    public enum ScheduleName: String, Codable, CaseIterable, Sendable { case constant, step, plateau }

    public var modelConfig: ModelConfig {
        ModelConfig(vocabSize: 0, embedSize: embed, hiddenSize: hidden, layers: layers, cell: model, dropout: dropout,
                    tied: tied ?? false)
    }

    /// The optimizer with its hyperparameters. (Never throws now that the choice is an enum.)
    public func optimizerKind() throws(ConfigError) -> OptimizerKind {
        switch optimizer {
        case .sgd: return .sgd(momentum: momentum, weightDecay: weightDecay)
        case .adam: return .adam(beta1: beta1, beta2: beta2, eps: adamEps, weightDecay: weightDecay)
        }
    }

    /// The learning-rate schedule with its hyperparameters.
    public func scheduleKind() throws(ConfigError) -> ScheduleKind {
        switch lrSchedule {
        case .constant: return .constant
        case .step: return .step(start: lrStepStart, every: lrStepEvery, factor: lrDecay)
        case .plateau: return .plateau(factor: lrDecay, patience: lrPatience, minLR: lrMin)
        }
    }

    /// The weight initialisation with its standard deviation.
    public func initialization() throws(ConfigError) -> InitScheme {
        switch initScheme {
        case .pytorch: return .pytorch
        case .normal: return .normal(std: initStd)
        }
    }

    /// Rejects settings that cannot train, naming the flag and the fix.
    public func validate() throws(ConfigError) {
        if let t = translation {
            if t.pairs == nil && dataset == nil { throw ConfigError("no sentence pairs: pass --pairs FILE (source<TAB>target lines) or --dataset fra-eng") }
            if t.pairs != nil && dataset != nil { throw ConfigError("pass either --pairs or --dataset, not both") }
            if let d = dataset, d != "fra-eng" { throw ConfigError("--dataset \(d) is text for a language model; --task translation reads --dataset fra-eng or --pairs FILE") }
        } else {
            if corpus == nil && dataset == nil { throw ConfigError("no training text: pass --corpus PATH or --dataset NAME (timemachine, tinyshakespeare)") }
            if corpus != nil && dataset != nil { throw ConfigError("pass either --corpus or --dataset, not both") }
            if dataset == "fra-eng" { throw ConfigError("--dataset fra-eng holds sentence pairs: pass --task translation") }
        }
        try validateValues()
        if epochs < 1 { throw ConfigError("--epochs \(epochs) trains nothing: a new run needs 1 or more") }
        let ignored = ignoredSettings
        if !ignored.isEmpty {
            let named = ignored.map { "\($0.flag) (read only with \($0.readWith))" }.joined(separator: ", ")
            let it = ignored.count == 1 ? "it" : "them"
            throw ConfigError("\(named) would do nothing in this run; drop \(it) (from the command line or the --config file), or choose the setting that reads \(it)")
        }
    }

    /// Settings given other than their defaults that the chosen optimizer, schedule, initialisation or tokenizer
    /// never reads, each with the choice that reads it. A new run refuses them rather than dropping them.
    public var ignoredSettings: [(flag: String, readWith: String)] {
        let d = TrainOptions()
        var out: [(String, String)] = []
        if optimizer != .sgd && momentum != d.momentum { out.append(("--momentum", "--optimizer sgd")) }
        if optimizer != .adam {
            if beta1 != d.beta1 { out.append(("--beta1", "--optimizer adam")) }
            if beta2 != d.beta2 { out.append(("--beta2", "--optimizer adam")) }
            if adamEps != d.adamEps { out.append(("--adam-eps", "--optimizer adam")) }
        }
        if initScheme != .normal && initStd != d.initStd { out.append(("--init-std", "--init-scheme normal")) }
        if lrSchedule == .constant && lrDecay != d.lrDecay { out.append(("--lr-decay", "--lr-schedule step or plateau")) }
        if lrSchedule != .step {
            if lrStepStart != d.lrStepStart { out.append(("--lr-step-start", "--lr-schedule step")) }
            if lrStepEvery != d.lrStepEvery { out.append(("--lr-step-every", "--lr-schedule step")) }
        }
        if lrSchedule != .plateau {
            if lrPatience != d.lrPatience { out.append(("--lr-patience", "--lr-schedule plateau")) }
            if lrMin != d.lrMin { out.append(("--lr-min", "--lr-schedule plateau")) }
        }
        if translation == nil {
            if tokenizer != .bpe && bpeMerges != d.bpeMerges { out.append(("--bpe-merges", "--tokenizer bpe")) }
            if lowercase && (tokenizer == .char || tokenizer == .charRaw) {
                out.append(("--lowercase", "--tokenizer word, lines or bpe; char lowercases already, char-raw keeps every character"))
            }
        }
        return out
    }

    /// The checks of `validate()` that do not need a training text to be named (a resumed run takes it from
    /// its checkpoint).
    public func validateValues() throws(ConfigError) {
        if batchSize < 1 { throw ConfigError("--batch-size must be at least 1, got \(batchSize)") }
        if numSteps < 1 { throw ConfigError("--num-steps must be at least 1, got \(numSteps)") }
        if epochs < 0 { throw ConfigError("--epochs must be 0 or more, got \(epochs)") }
        if !(lr > 0) || !lr.isFinite { throw ConfigError("--lr must be a positive number, got \(lr)") }
        if !(clip >= 0) { throw ConfigError("--clip must be 0 (off) or positive, got \(clip)") }
        if !(validFraction >= 0 && validFraction < 1) { throw ConfigError("--valid-fraction must be in [0, 1), got \(validFraction)") }
        if let m = maxTokens, m < 2 { throw ConfigError("--max-tokens must be at least 2, got \(m)") }
        if minFreq < 1 { throw ConfigError("--min-freq must be at least 1, got \(minFreq)") }
        if bpeMerges < 0 { throw ConfigError("--bpe-merges must be 0 or more, got \(bpeMerges)") }
        if !(checkpointSeconds >= 0) { throw ConfigError("--checkpoint-seconds must be 0 or more, got \(checkpointSeconds)") }
        if checkpointEvery < 0 { throw ConfigError("--checkpoint-every must be 0 or more, got \(checkpointEvery)") }
        if keepCheckpoints < 1 { throw ConfigError("--keep-checkpoints must be at least 1, got \(keepCheckpoints)") }
        if let n = earlyStop, n < 1 { throw ConfigError("--early-stop must be at least 1 (epochs without improvement), got \(n)") }
        if let t = translation {
            if tied == true { throw ConfigError("--tied ties a language model's decoder to its embedding; --task translation does not take it") }
            if t.numExamples < 0 { throw ConfigError("--num-examples must be 0 or more, got \(t.numExamples)") }
            if t.validExamples < 0 { throw ConfigError("--valid-examples must be 0 or more, got \(t.validExamples)") }
            if t.minFreq < 1 { throw ConfigError("--min-freq must be at least 1, got \(t.minFreq)") }
            try EncoderDecoderConfig(sourceVocabSize: 5, targetVocabSize: 5, embedSize: embed, hiddenSize: hidden, layers: layers,
                                     cell: model, bidirectional: t.bidirectional, dropout: dropout).validate()
        } else {
            var m = modelConfig
            m.vocabSize = 2
            try m.validate()
        }
        _ = try optimizerKind(); _ = try scheduleKind(); _ = try initialization()
    }
}

/// `s` as a TOML basic string (quoted, with backslashes and quotes escaped), as `--config` reads it back.
public func tomlString(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
}

extension TrainOptions {
    /// The settings as `key = value` lines under their command-line names: a file `--config` reads back.
    public func tomlLines() -> [String] {
        let q = tomlString
        var lines: [String] = []
        func add(_ k: String, _ v: String?) { if let v { lines.append("\(k) = \(v)") } }
        add("corpus", corpus.map(q)); add("dataset", dataset.map(q)); add("valid", validCorpus.map(q)); add("test", testCorpus.map(q))
        add("valid-fraction", "\(validFraction)"); add("tokenizer", q(tokenizer.rawValue)); add("lowercase", "\(lowercase)")
        add("bpe-merges", "\(bpeMerges)"); add("min-freq", "\(minFreq)"); add("max-tokens", maxTokens.map { "\($0)" })
        add("model", q(model.rawValue)); add("layers", "\(layers)"); add("hidden", "\(hidden)"); add("embed", "\(embed)")
        add("tied", "\(tied ?? false)")
        add("dropout", "\(dropout)"); add("init-scheme", q(initScheme.rawValue)); add("init-std", "\(initStd)")
        add("batch-size", "\(batchSize)"); add("num-steps", "\(numSteps)"); add("partition", q(partition.rawValue))
        add("epochs", "\(epochs)"); add("optimizer", q(optimizer.rawValue)); add("lr", "\(lr)"); add("momentum", "\(momentum)")
        add("weight-decay", "\(weightDecay)"); add("beta1", "\(beta1)"); add("beta2", "\(beta2)"); add("adam-eps", "\(adamEps)")
        add("clip", "\(clip)"); add("lr-schedule", q(lrSchedule.rawValue)); add("lr-decay", "\(lrDecay)"); add("lr-step-start", "\(lrStepStart)")
        add("lr-step-every", "\(lrStepEvery)"); add("lr-patience", "\(lrPatience)"); add("lr-min", "\(lrMin)"); add("seed", "\(seed)")
        if let t = translation {
            add("task", q("translation")); add("pairs", t.pairs.map(q)); add("num-examples", "\(t.numExamples)")
            add("valid-examples", "\(t.validExamples)"); add("min-freq", "\(t.minFreq)"); add("bidirectional", "\(t.bidirectional)"); add("batching", q(t.batching.rawValue))
        }
        add("checkpoint-dir", checkpointDir.map(q)); add("checkpoint-every", "\(checkpointEvery)"); add("checkpoint-seconds", "\(checkpointSeconds)"); add("keep-checkpoints", "\(keepCheckpoints)")
        add("early-stop", earlyStop.map { "\($0)" })
        if translation != nil {
            // Language-model settings a translation run does not read; as flags they would be refused.
            // The language model's min-freq (the first) gives way to the translation's.
            if let first = lines.firstIndex(where: { $0.hasPrefix("min-freq = ") }) { lines.remove(at: first) }
            let languageModelOnly: Set = ["corpus", "valid", "test", "valid-fraction", "tokenizer", "lowercase", "bpe-merges",
                                          "max-tokens", "partition", "init-scheme", "init-std", "tied"]
            lines = lines.filter { !languageModelOnly.contains(String($0.prefix { $0 != " " })) }
        }
        return lines
    }
}
