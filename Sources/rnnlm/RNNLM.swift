import ArgumentParser
import CLinux
import Foundation
import RNNCore
import RNNDistributed
import RNNText
import RNNTrain
import RNNTransport

@main
struct RNNLM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rnnlm",
        abstract: "Train recurrent language models (RNN, GRU, LSTM) and RNN encoder-decoders for translation; evaluate, generate, translate.",
        discussion: """
            Quick start (D2L's character model on H. G. Wells' The Time Machine):
              rnnlm train --dataset timemachine --model gru --epochs 50 --checkpoint-dir runs/gru
              rnnlm generate --checkpoint runs/gru --prefix "time traveller" --tokens 100
            """,
        version: "rnnlm 0.1.0 (libzmq \(ZeroMQ.version))",
        subcommands: [Train.self, Coordinator.self, Worker.self, Launch.self, Keygen.self, Eval.self, Generate.self, Translate.self, Plot.self])

    /// Expands `--config FILE` into flags, then parses as usual.
    static func main() {
        rnnlm_reexec_without_blas_pool(CommandLine.unsafeArgv)
        rnnlm_keep_large_buffers()
        let args = Array(CommandLine.arguments.dropFirst())
        let expanded: [String]
        do { expanded = try ConfigFile.expand(args) } catch {
            FileHandle.standardError.write(Data("error: \(error)\n".utf8))
            Foundation.exit(1)
        }
        do {
            var command = try parseAsRoot(expanded)
            try command.run()
        } catch {
            // A `validate()` check (an error other than ArgumentParser's own) and a choice flag's unknown value
            // read like errors from `run()`: one "error:" line, exit status 1.
            let own = exitCode(for: error) == .failure ? message(for: error) : ""
            if let line = unknownChoice(in: error) ?? (own.isEmpty ? nil : own) {
                FileHandle.standardError.write(Data("error: \(line)\n".utf8))
                Foundation.exit(1)
            }
            exit(withError: error)
        }
    }

    /// A choice flag given a value it does not have, said on one line as every other bad input is
    /// ("unknown --model 'transformer'; use one of rnn, rnn-relu, gru, lstm") instead of ArgumentParser's message
    /// and usage. Read from ArgumentParser's message, which names the flag and lists the valid values.
    static func unknownChoice(in error: Error) -> String? {
        let text = message(for: error)
        guard text.hasPrefix("The value '"), let invalid = text.range(of: "' is invalid for '--"),
              let flagEnd = text.range(of: " <", range: invalid.upperBound..<text.endIndex),
              let list = text.range(of: "Please provide one of ") else { return nil }
        let value = text[text.index(text.startIndex, offsetBy: "The value '".count)..<invalid.lowerBound]
        let flag = text[invalid.upperBound..<flagEnd.lowerBound]
        let rest = text[list.upperBound...]
        let values: [Substring]
        if rest.hasPrefix("the following:") {
            values = rest.split(separator: "\n").dropFirst().map { $0.drop { $0 == " " || $0 == "-" } }
        } else {
            values = rest.split(separator: "'", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        }
        guard !values.isEmpty else { return nil }
        return "unknown --\(flag) '\(value)'; use one of \(values.joined(separator: ", "))"
    }
}

/// Prints a user-facing error of `run()` on one line and exits 1 (no stack trace, no usage dump). Errors of
/// `validate()` reach `RNNLM.main`, which prints them the same way.
func runReportingErrors(_ body: () throws -> Void) throws {
    do { try body() } catch let e as ExitCode { throw e } catch let e as CleanExit { throw e } catch {
        FileHandle.standardError.write(Data("error: \(error)\n".utf8))
        throw ExitCode(1)
    }
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a language model in this process (the reference trainer).",
        discussion: "Prints one line per epoch with training (and validation) perplexity and tokens/s, and saves step-N.safetensors checkpoints into --checkpoint-dir.")

    @OptionGroup var flags: TrainFlags

    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir (starts a new run if there is none).")
    var resume = false

    @Option(help: "Train with this many local worker processes under a ZeroMQ parameter server in this process (0: the single-process reference trainer).")
    var workers: Int = 0
    @OptionGroup var distributedFlags: DistributedFlags
    @Option(help: "With --workers: seconds to wait for the local workers to join. (default: 60)")
    var joinTimeout: Double?
    @Option(help: "With --workers: seconds to wait for every worker's gradient in one step; then the step goes on with --quorum workers, or the run stops naming the silent one. (default: 600)")
    var stepTimeout: Double?

    /// The coordinator of `--workers N` local workers at `bind` (nil without workers).
    func coordinator(bind: String, sharedMemory: String?) -> CoordinatorSettings? {
        guard workers > 0 else { return nil }
        var c = distributedFlags.coordinator(bind: bind, expectWorkers: workers, joinTimeout: joinTimeout ?? 60,
                                             stepTimeout: stepTimeout ?? 600)
        c.sharedMemory = sharedMemory
        return c
    }

    func validate() throws {
        guard workers >= 0 else { throw ConfigError("--workers must be 0 or more") }
        let given = distributedFlags.given + [("--join-timeout", joinTimeout), ("--step-timeout", stepTimeout)]
            .compactMap { flag, value in value.map { "\(flag) \($0)" } }
        if workers == 0, !given.isEmpty {
            throw ConfigError("\(given.joined(separator: ", ")) set\(given.count == 1 ? "s" : "") how a parameter server treats its workers; this run has none: add --workers N (local worker processes), or run `rnnlm coordinator`")
        }
        if workers > 0, distributedFlags.broadcast == .inTurn, ProcessInfo.processInfo.environment["RNNLM_SHARED_MEMORY"] != "0" {
            throw ConfigError("--broadcast in-turn paces the weights sent across sockets; the local workers of --workers N read them from shared memory, where there is no link to share: use it with `rnnlm coordinator` and workers on other hosts")
        }
        try flags.validate(resume: resume, coordinator: coordinator(bind: "", sharedMemory: nil))
    }

    func run() throws {
        try runReportingErrors {
            guard workers > 0 else {
                try finish(try TrainingRun(settings: flags.runSettings(resume: resume, coordinator: nil)).run())
                return
            }
            // Payloads between this process and its own workers go through files in a tmpfs folder
            // (RNNLM_SHARED_MEMORY=0 sends them over the socket instead).
            let pool = try LocalWorkers(sharedMemory: ProcessInfo.processInfo.environment["RNNLM_SHARED_MEMORY"] != "0")
            defer { pool.close() }
            var c = coordinator(bind: pool.endpoint, sharedMemory: pool.sharedMemory)!
            let threads = flags.threads
            pool.restartsPerMinute = c.mode == .sync ? 3 : 0  // async runs admit workers only at their start
            c.afterBind = { try pool.start(count: workers, threads: threads) }
            var lines = ["workers = \(workers)"] + distributedFlags.tomlLines
            if let t = joinTimeout { lines.append("join-timeout = \(t)") }
            if let t = stepTimeout { lines.append("step-timeout = \(t)") }
            try finish(try TrainingRun(settings: flags.runSettings(resume: resume, coordinator: c, commandLines: lines)).run())
        }
    }
}

/// Exits with the stop signal's status when the run was interrupted (130 SIGINT, 143 SIGTERM, 138 SIGUSR1).
func finish(_ summary: RunSummary) throws {
    if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
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
    @OptionGroup var curve: CoordinatorCurveFlags
    @OptionGroup var distributedFlags: DistributedFlags
    @OptionGroup var flags: TrainFlags
    @Flag(help: "Continue from the newest checkpoint in --checkpoint-dir.")
    var resume = false

    var coordinator: CoordinatorSettings {
        distributedFlags.coordinator(bind: bind, expectWorkers: expectWorkers, joinTimeout: joinTimeout, stepTimeout: stepTimeout)
    }

    func validate() throws {
        try curve.requireAuthentication(bind: bind)
        try flags.validate(resume: resume, coordinator: coordinator)
    }

    func run() throws {
        try runReportingErrors {
            var c = coordinator
            try curve.apply(to: &c)
            let lines = ["bind = \(tomlString(bind))", "expect-workers = \(expectWorkers)", "join-timeout = \(joinTimeout)",
                         "step-timeout = \(stepTimeout)"] + curve.tomlLines + distributedFlags.tomlLines
            try finish(try TrainingRun(settings: flags.runSettings(resume: resume, coordinator: c, command: "coordinator",
                                                                   commandLines: lines)).run())
        }
    }
}

struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Join a coordinator and compute gradients until told to stop.")

    @Option(help: "The coordinator's endpoint, e.g. tcp://HOST:5555.")
    var connect: String
    @Option(help: "Compute threads for this worker: its streams are split across them.")
    var threads: Int = 1
    @Option(help: "Name shown in the coordinator's log (default: host:pid).")
    var name: String?
    @Option(help: "Seconds to wait for the coordinator to answer the join request.")
    var joinTimeout: Double = 120
    @Option(help: "Seconds of silence from the coordinator after which the worker considers it lost.")
    var timeout: Double = 900
    @Option(help: "Seconds a worker that lost its coordinator keeps trying to rejoin (a coordinator restarted with --resume on the same address).")
    var rejoinGrace: Double = 60
    @OptionGroup var curve: WorkerCurveFlags
    @Flag(help: "Print only errors.")
    var quiet = false
    @Option(help: ArgumentHelp("Sleep this long before each gradient (to test straggler handling).", visibility: .hidden))
    var debugDelayMs: Int = 0
    @Option(help: ArgumentHelp("The coordinator's private folder for shared-memory payloads (set by rnnlm train --workers).", visibility: .hidden))
    var sharedMemoryDir: String?

    var settings: WorkerRun.Settings {
        var s = WorkerRun.Settings(endpoint: connect, name: name ?? WorkerRun.Settings.defaultName)
        s.joinTimeout = joinTimeout
        s.timeout = timeout
        s.rejoinGrace = rejoinGrace
        s.threads = threads
        s.sharedMemoryDirectory = sharedMemoryDir
        s.quiet = quiet
        s.delayMilliseconds = debugDelayMs
        return s
    }

    func validate() throws {
        try settings.validate()
    }

    func run() throws {
        try runReportingErrors {
            var s = settings
            s.curve = try curve.keys()
            guard LocalWorkers.bindToParentIfSpawned() else { throw ExitCode(1) }
            let outcome = try WorkerRun(settings: s).run()
            // A local worker told the run failed exits 0: its parent reports the failure (and does not take the exit
            // for a crash to replace).
            if outcome.exitCode != 0 && !(LocalWorkers.isSpawnedWorker && !outcome.interrupted) { throw ExitCode(outcome.exitCode) }
        }
    }
}

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Perplexity of a text under a language model; loss, perplexity and BLEU of sentence pairs under a translation model.",
        discussion: "Without --corpus or --dataset a language model scores its training run's validation text (its --valid file, or what --valid-fraction held out), as the epoch lines did; a translation checkpoint scores --pairs FILE (all its lines), or by default the validation pairs of its training run.")

    @Option(help: "Checkpoint file, or a checkpoint folder (its best.safetensors if present, else its newest checkpoint).")
    var checkpoint: String
    @Option(help: "Text file to evaluate (default: the run's validation text).")
    var corpus: String?
    @Option(help: "Named dataset to evaluate (timemachine, tinyshakespeare).")
    var dataset: String?
    @Option(help: "Folder searched first for named datasets (also $RNNLM_DATA_DIR).")
    var dataDir: String?
    @Option(help: "Parallel streams, or sentence pairs per batch for a translation model (default: the training batch size).")
    var batchSize: Int?
    @Option(help: "Steps per minibatch; for a translation model, the longest translation decoded for BLEU (default: the training num-steps).")
    var numSteps: Int?
    @Option(help: "Translation: a file of `source<TAB>target` lines to score (default: the run's validation pairs).")
    var pairs: String?

    func validate() throws {
        if let b = batchSize, b < 1 { throw ConfigError("--batch-size must be at least 1, got \(b)") }
        if let t = numSteps, t < 1 { throw ConfigError("--num-steps must be at least 1, got \(t)") }
        if corpus != nil && dataset != nil { throw ConfigError("pass either --corpus or --dataset, not both") }
    }

    func run() throws {
        try runReportingErrors {
            setBLASThreads(1)
            let file = try TrainedModel.resolve(checkpoint)
            if case .translation = try modelSpec(ofCheckpoint: file) {
                try evaluateTranslation(file)
                return
            }
            if pairs != nil { throw ValidationError("--pairs scores a translation model; \(file) holds a language model (use --corpus)") }
            let m = try TrainedModel(checkpointPath: file)
            let tokens: [Int32], path: String
            if let c = corpus {
                path = c
                tokens = m.vocabulary.ids(m.tokenizer.tokenize(try readCorpus(path)))
            } else if let d = dataset {
                path = try NamedDataset.named(d).locate(dataDir: dataDir)
                tokens = m.vocabulary.ids(m.tokenizer.tokenize(try readCorpus(path)))
            } else {
                // The run's own validation text, as its epoch lines scored it: its --valid file, or what
                // --valid-fraction held out of its training text (read again, and checked to be the same text).
                let o = m.record.options
                let r = try LanguageModelTask.dataRecord(m.record.task)
                let data = try TextData.load(o, dataDir: dataDir, existing: (r.tokenizer, r.vocabulary, r.fingerprint))
                guard data.valid.count >= 2 else {
                    throw ValidationError("the run had no validation text (no --valid, --valid-fraction 0): pass --corpus PATH or --dataset NAME")
                }
                let training = try TextData.corpusPath(o, dataDir: dataDir)
                let of = o.maxTokens.map { "of the first \($0) tokens of" } ?? "tokens of"
                path = o.validCorpus ?? "the last \(data.valid.count) \(of) \(training) (--valid-fraction \(o.validFraction))"
                FileHandle.standardError.write(Data("scoring the run's validation text: \(path)\n".utf8))
                tokens = data.valid
            }
            guard let loss = evaluateLoss(model: m.model, tokens: tokens, batch: batchSize ?? m.record.options.batchSize,
                                          steps: numSteps ?? m.record.options.numSteps) else {
                throw CorpusError("\(path) has fewer than 2 tokens; nothing to evaluate")
            }
            let unknown = tokens.filter { $0 == 0 }.count
            print(String(format: "perplexity %.3f  loss %.4f  (%d tokens predicted, %d unknown)", loss.perplexity, loss.mean, loss.count, unknown))
        }
    }

    func evaluateTranslation(_ path: String) throws {
        if corpus != nil || dataset != nil { throw ValidationError("\(path) holds a translation model: score sentence pairs with --pairs FILE (or none: its validation pairs)") }
        let m = try TrainedTranslator(checkpointPath: path)
        let o = m.record.options, t = o.translation ?? TrainOptions.TranslationOptions()
        let set: SentencePairs
        if let p = pairs {
            set = TranslationText.pairs(TranslationText.preprocess(try readCorpus(p, flag: "--pairs")), count: Int.max - 1)
            guard set.count > 0 else { throw CorpusError("\(p) has no `source<TAB>target` line (\(set.skipped) without exactly one TAB)") }
            try set.requireTextOnBothSides(path: p)
        } else {
            guard t.validExamples > 0 else { throw ValidationError("the run had no validation pairs (--valid-examples 0); pass --pairs FILE") }
            let file = try t.pairs ?? NamedDataset.named(o.dataset ?? "fra-eng").locate(dataDir: dataDir)
            let raw = try readCorpus(file, flag: t.pairs == nil ? "--dataset" : "--pairs")
            // The validation pairs are lines of the training file: of that file, not of one edited since.
            let trained = try TranslationTask.dataRecord(m.record.task).fingerprint
            let found = sha1Hex(Array(raw.utf8))
            if !trained.isEmpty && found != trained {
                throw ConfigError("\(file) differs from the pairs file this model was trained on (SHA-1 \(found) vs \(trained)), so its validation lines are not the run's; restore that file, or score pairs of your choice with --pairs FILE")
            }
            set = TranslationText.pairs(TranslationText.preprocess(raw), first: t.numExamples + 1, count: t.validExamples - 1)
            guard set.count > 0 else {
                throw ConfigError("the run had no validation pairs: \(file) ends within its first \(t.numExamples + 1) lines, which --num-examples gave to training; score pairs of your choice with --pairs FILE")
            }
        }
        let scores = TranslationScores(m.translator, pairs: set, batch: batchSize ?? o.batchSize, maxLength: numSteps ?? m.translator.numSteps)
        print(scores.line)
    }
}

struct Translate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Translate sentences with a trained encoder-decoder: greedy (default) or beam search.",
        discussion: """
            Sentences come as arguments, or one per line on standard input; each is preprocessed as in training \
            (so `Go.` works). One translation per line on standard output, tokens joined by spaces.
              rnnlm translate --checkpoint runs/fra "Go." "I lost." --beam 4
            """)

    @Option(help: "Checkpoint file, or a checkpoint folder (its best.safetensors if present, else its newest checkpoint).")
    var checkpoint: String
    @Argument(help: "Sentences to translate (default: read them from standard input, one per line).")
    var sentences: [String] = []
    @Option(help: "Beam search with this many candidates, decoded as one batch (1 is greedy).")
    var beam: Int?
    @Option(help: "Beam search ranks finished candidates by log P / L^α (D2L's rule). (default: 0.75)")
    var lengthPenalty: Double?
    @Option(help: "Stop after this many tokens (default: the training --num-steps).")
    var maxLen: Int?

    func validate() throws {
        if let b = beam, b < 1 { throw ConfigError("--beam must be at least 1, got \(b)") }
        if let m = maxLen, m < 1 { throw ConfigError("--max-len must be at least 1, got \(m)") }
        if let a = lengthPenalty {
            guard a.isFinite else { throw ConfigError("--length-penalty must be a number") }
            guard (beam ?? 1) > 1 else { throw ConfigError("--length-penalty ranks beam-search candidates: add --beam K (K ≥ 2), or drop it") }
        }
    }

    func run() throws {
        try runReportingErrors {
            setBLASThreads(1)
            let path = try TrainedModel.resolve(checkpoint)
            let t = try TrainedTranslator(checkpointPath: path).translator
            let maxLength = maxLen ?? t.numSteps
            var input = sentences
            if input.isEmpty { while let line = readLine() { input.append(line) } }
            func warn(_ line: String) { FileHandle.standardError.write(Data("warning: \(line)\n".utf8)) }
            for (line, sentence) in input.enumerated() {
                let tokens = Translator.tokens(sentence)
                guard !tokens.isEmpty else {
                    // One output line per input line: an empty one stays empty rather than becoming a translation of
                    // nothing.
                    warn("sentence \(line + 1) is empty: its output line is empty too")
                    FileHandle.standardOutput.write(Data("\n".utf8))
                    continue
                }
                let unknown = t.unknownTokens(tokens)
                if !unknown.isEmpty {
                    let shown = unknown.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ") + (unknown.count > 5 ? ", …" : "")
                    warn("\(unknown.count) word(s) of \"\(sentence)\" are not in the model's source vocabulary and read as <unk>: \(shown)")
                }
                if tokens.count + 1 > t.numSteps {
                    // The encoder reads --num-steps tokens, <eos> included, as in training: the rest is cut.
                    warn("\"\(sentence)\" has \(tokens.count) tokens; the model reads the first \(t.numSteps - 1) and <eos> (its training --num-steps \(t.numSteps)): the rest is not translated")
                }
                let output: [String]
                if let k = beam, k > 1 {
                    output = t.beam(tokens, width: k, lengthPenalty: lengthPenalty ?? 0.75, maxLength: maxLength).tokens
                } else {
                    output = t.greedy([tokens], maxLength: maxLength)[0]
                }
                // One write per line, unbuffered: a translation shows as soon as it is made.
                FileHandle.standardOutput.write(Data((output.joined(separator: " ") + "\n").utf8))
            }
        }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prefix with a trained model: greedy (default), sampling, or beam search.")

    @Option(help: "Checkpoint file, or a checkpoint folder (its best.safetensors if present, else its newest checkpoint).")
    var checkpoint: String
    @Option(help: "Text to start from (tokenized as in training). Required unless the checkpoint was trained on timemachine (then \"time traveller\"). An empty --prefix \"\" starts from the zero state: the first token is chosen from the decoder's output there, softmax(decoder.bias), the model's prediction before it reads anything.")
    var prefix: String?
    @Option(help: "How many tokens to generate.")
    var tokens: Int = 100
    @Option(help: "Sample with this temperature instead of taking the most likely token (default: greedy).")
    var temperature: Float?
    @Option(help: "With --temperature: sample only among the k most likely tokens (default, or 0: all).")
    var topK: Int?
    @Option(help: "With --temperature: nucleus sampling, only among the fewest most likely tokens whose probability (after --temperature and --top-k) sums to at least p (default: 1, all).")
    var topP: Double?
    @Option(help: "Beam search with this many beams (not with sampling; prints when the search ends, greedy and sampling print each token as it is chosen).")
    var beam: Int?
    @Option(help: "With --beam: candidates are ranked by log P / L^α (default: 0.75, as D2L).")
    var lengthPenalty: Double?
    @Option(help: "With --temperature: seed for sampling (default: 0).")
    var seed: UInt64?

    func validate() throws {
        guard tokens >= 0 else { throw ConfigError("--tokens must be 0 or more") }
        if let t = temperature, !(t > 0 && t.isFinite) {
            throw ConfigError("--temperature must be a positive number, got \(t) (leave it out for greedy decoding)")
        }
        if let k = topK, k < 0 { throw ConfigError("--top-k must be 0 or more") }
        if let p = topP, !(p > 0 && p <= 1) { throw ConfigError("--top-p must be in (0, 1], got \(p)") }
        if let b = beam {
            guard b >= 1 else { throw ConfigError("--beam must be at least 1, got \(b)") }
            let sampling = [("--temperature", temperature != nil), ("--top-k", topK != nil), ("--top-p", topP != nil), ("--seed", seed != nil)]
            if let (flag, _) = sampling.first(where: \.1) {
                throw ConfigError("\(flag) samples, and --beam searches: pass one of them")
            }
        } else if let a = lengthPenalty {
            throw ConfigError("--length-penalty \(a) ranks beam-search candidates: add --beam K, or drop it")
        }
        if let a = lengthPenalty, !a.isFinite { throw ConfigError("--length-penalty must be a number") }
        if temperature == nil, let (flag, _) = [("--top-k", topK != nil), ("--top-p", topP != nil), ("--seed", seed != nil)].first(where: \.1) {
            throw ConfigError("\(flag) shapes sampling: give it a --temperature above 0 (e.g. --temperature 1 \(flag) …), or drop it for greedy decoding")
        }
    }

    func run() throws {
        try runReportingErrors {
            setBLASThreads(1)
            let path = try TrainedModel.resolve(checkpoint)
            let m = try TrainedModel(checkpointPath: path)
            guard let start = prefix ?? m.defaultPrefix else {
                let text = m.record.options.dataset ?? m.record.options.corpus ?? "its own text"
                throw ValidationError("--prefix is required: \(path) was trained on \(text), not timemachine; pass --prefix TEXT (or --prefix \"\" to start from the zero state)")
            }
            let unknown = m.unknownTokens(inPrefix: start)
            if !unknown.isEmpty {
                let shown = unknown.prefix(5).map { "\"\($0)\"" }.joined(separator: ", ") + (unknown.count > 5 ? ", …" : "")
                FileHandle.standardError.write(Data("warning: \(unknown.count) token(s) of --prefix are not in the model's vocabulary and read as <unk>: \(shown)\n".utf8))
            }
            let decoding: Decoding
            if let b = beam { decoding = .beam(width: b, lengthPenalty: lengthPenalty ?? 0.75) }
            else if let t = temperature { decoding = .sample(temperature: t, topK: topK ?? 0, topP: topP ?? 1, seed: seed ?? 0) }
            else { decoding = .greedy }
            // Each piece is written as soon as it is chosen (FileHandle is unbuffered), so a pipe sees it too.
            _ = try m.generate(prefix: start, count: tokens, decoding: decoding) {
                FileHandle.standardOutput.write(Data($0.utf8))
            }
            FileHandle.standardOutput.write(Data("\n".utf8))
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
            for file in [out + "/" + name + ".secret", out + "/" + name + ".public"] where FileManager.default.fileExists(atPath: file) && !force {
                throw ValidationError("\(file) exists; pass --force to replace the key pair (workers and coordinators using it must then be updated)")
            }
            let keys = try CurveKeyPair.generate()
            let paths = try keys.write(to: out, name: name)
            print("wrote \(paths.secret) (private, mode 600) and \(paths.public)")
            print("public key: \(keys.publicKey)")
        }
    }
}
