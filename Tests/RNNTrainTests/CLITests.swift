import Foundation
import RNNTrain
import Testing

@Suite("rnnlm command line", .serialized)
struct CLITests {
    var data: [String] { ["--data-dir", sharedDataDirectory()] }

    @Test func trainEvalGenerateAndResume() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory() + "/run"
        let common = ["--dataset", "timemachine", "--max-tokens", "5000", "--hidden", "32", "--batch-size", "8",
                      "--num-steps", "10", "--seed", "3", "--checkpoint-dir", dir] + data
        let first = try run(bin, ["train", "--epochs", "2"] + common)
        #expect(first.status == 0, "train failed: \(first.stderr)")
        let epochLines = first.stdout.split(separator: "\n").filter { $0.hasPrefix("epoch ") && !$0.contains(" step ") }
        #expect(epochLines.count == 2)
        #expect(epochLines.allSatisfy { $0.contains("perplexity") && $0.contains("tokens/s") }, "\(first.stdout)")

        // --resume continues at epoch 3 with the stored settings.
        let second = try run(bin, ["train", "--resume", "--epochs", "3", "--checkpoint-dir", dir] + data)
        #expect(second.status == 0, "resume failed: \(second.stderr)")
        #expect(second.stdout.contains("resuming"))
        #expect(second.stdout.contains("epoch 3 "))
        #expect(!second.stdout.contains("epoch 1 "))

        // A contradicting flag on --resume is refused, naming it.
        let clash = try run(bin, ["train", "--resume", "--hidden", "64", "--checkpoint-dir", dir] + data)
        #expect(clash.status == 1)
        #expect(clash.stderr.contains("hidden"), "\(clash.stderr)")

        let gen = try run(bin, ["generate", "--checkpoint", dir, "--prefix", "time traveller", "--tokens", "20"])
        #expect(gen.status == 0, "\(gen.stderr)")
        #expect(gen.stdout.hasPrefix("time traveller"))
        #expect(gen.stdout.trimmingCharacters(in: .newlines).count == 34)

        let beam = try run(bin, ["generate", "--checkpoint", dir, "--prefix", "the", "--tokens", "10", "--beam", "3"])
        #expect(beam.status == 0 && beam.stdout.hasPrefix("the"), "\(beam.stderr)")

        let corpus = sharedDataDirectory() + "/timemachine.txt"
        let ev = try run(bin, ["eval", "--checkpoint", dir, "--corpus", corpus])
        #expect(ev.status == 0, "\(ev.stderr)")
        let ppl = Double(ev.stdout.split(separator: " ")[1]) ?? .nan
        #expect(ppl > 1 && ppl < 28, "eval printed \(ev.stdout)")
    }

    @Test func badInputGetsOneClearLine() throws {
        let bin = try rnnlmBinary()
        let cases: [([String], String)] = [
            (["train", "--dataset", "timemachine", "--model", "transformer"] + data, "unknown --model 'transformer'"),
            (["train", "--dataset", "timemachine", "--batch-size", "0"] + data, "--batch-size must be at least 1"),
            (["train"] + data, "--corpus PATH or --dataset NAME"),
            (["train", "--corpus", "/nonexistent.txt"], "no such file"),
            (["train", "--dataset", "wikitext"] + data, "unknown dataset 'wikitext'"),
            (["generate", "--checkpoint", "/nonexistent.safetensors"], "no such file"),
            (["train", "--dataset", "timemachine", "--dropout", "1.5"] + data, "--dropout must be in [0, 1)"),
        ]
        for (args, message) in cases {
            let r = try run(bin, args)
            #expect(r.status != 0, "\(args) should fail")
            #expect(r.stderr.contains(message), "\(args): stderr was \(r.stderr)")
            #expect(!r.stderr.contains("Fatal error") && r.stderr.split(separator: "\n").count <= 3, "\(args): \(r.stderr)")
        }
    }

    @Test func offlineDatasetSaysWhereToPutTheFile() throws {
        let bin = try rnnlmBinary()
        let empty = temporaryDirectory()
        let r = try run(bin, ["train", "--dataset", "tinyshakespeare", "--data-dir", empty],
                        environment: ["RNNLM_DATA_DIR": "", "XDG_CACHE_HOME": empty, "PATH": "/nonexistent"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("--data-dir") && r.stderr.contains("tinyshakespeare.txt"), "\(r.stderr)")
    }

    @Test func resumingOnOtherTextOrAnotherShapeIsRefused() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let first = try run(bin, ["train", "--dataset", "timemachine", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4",
                                  "--num-steps", "10", "--epochs", "1", "--checkpoint-dir", dir + "/ck"] + data)
        #expect(first.status == 0, "\(first.stderr)")
        let other = try run(bin, ["train", "--resume", "--dataset", "tinyshakespeare", "--checkpoint-dir", dir + "/ck", "--epochs", "2"] + data)
        #expect(other.status == 1 && other.stderr.contains("--dataset (checkpoint: timemachine, given: tinyshakespeare)"), "\(other.stderr)")
        // The same flags but a corpus file whose text differs from the checkpoint's.
        let copy = dir + "/tm.txt"
        try (String(contentsOfFile: sharedDataDirectory() + "/timemachine.txt", encoding: .utf8) + "one more line\n").write(toFile: copy, atomically: true, encoding: .utf8)
        var record = try String(contentsOfFile: dir + "/ck/run.toml", encoding: .utf8)
        record = record.replacingOccurrences(of: "dataset = \"timemachine\"", with: "corpus = \"\(copy)\"")
        try record.write(toFile: dir + "/edited.toml", atomically: true, encoding: .utf8)
        let fresh = try run(bin, ["train", "--config", dir + "/edited.toml", "--checkpoint-dir", dir + "/ck2", "--epochs", "1"] + data)
        #expect(fresh.status == 0, "\(fresh.stderr)")
        try FileManager.default.removeItem(atPath: copy)
        try "completely different text ".write(toFile: copy, atomically: true, encoding: .utf8)
        let changed = try run(bin, ["train", "--resume", "--checkpoint-dir", dir + "/ck2", "--epochs", "2"] + data)
        #expect(changed.status == 1 && changed.stderr.contains("differs from the one this checkpoint was trained on"), "\(changed.stderr)")
    }

    @Test("--resume takes the task from the checkpoint: the other task's flags are refused, its own compared, named as flags")
    func resumingChecksTheFlagsOfTheCheckpointsTask() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let tr = dir + "/tr"
        let first = try run(bin, ["train", "--task", "translation", "--dataset", "fra-eng", "--num-examples", "200", "--valid-examples", "20",
                                  "--embed", "8", "--hidden", "8", "--batch-size", "16", "--num-steps", "8", "--epochs", "1",
                                  "--checkpoint-dir", tr] + data)
        #expect(first.status == 0, "\(first.stderr)")
        // A translation flag that contradicts the checkpoint is refused without --task (it was ignored before).
        let bidirectional = try run(bin, ["train", "--resume", "--checkpoint-dir", tr, "--epochs", "2", "--bidirectional"] + data)
        #expect(bidirectional.status == 1 && bidirectional.stderr.contains("--bidirectional (checkpoint: false, given: true)"), "\(bidirectional.stderr)")
        let examples = try run(bin, ["train", "--resume", "--checkpoint-dir", tr, "--epochs", "2", "--num-examples", "300"] + data)
        #expect(examples.status == 1 && examples.stderr.contains("--num-examples (checkpoint: 200, given: 300)"), "\(examples.stderr)")
        let minFreq = try run(bin, ["train", "--resume", "--checkpoint-dir", tr, "--epochs", "2", "--min-freq", "1"] + data)
        #expect(minFreq.status == 1 && minFreq.stderr.contains("--min-freq (checkpoint: 2, given: 1)"), "\(minFreq.stderr)")
        // Language-model flags on a translation checkpoint are refused, even at their defaults.
        let tokenizer = try run(bin, ["train", "--resume", "--checkpoint-dir", tr, "--epochs", "2", "--tokenizer", "char"] + data)
        #expect(tokenizer.status == 1 && tokenizer.stderr.contains("--tokenizer is a language-model setting and does not apply to --task translation"), "\(tokenizer.stderr)")
        let wrongTask = try run(bin, ["train", "--resume", "--checkpoint-dir", tr, "--epochs", "2", "--task", "language-model"] + data)
        #expect(wrongTask.status == 1 && wrongTask.stderr.contains("--task language-model, but the checkpoint in \(tr) holds a translation run"), "\(wrongTask.stderr)")
        // --task translation without --embed: the width is the checkpoint's.
        let resumed = try run(bin, ["train", "--resume", "--checkpoint-dir", tr, "--epochs", "2", "--task", "translation", "--min-freq", "2"] + data)
        #expect(resumed.status == 0 && resumed.stdout.contains("resuming"), "\(resumed.stderr)")

        // A tied language model resumes with --tied alone (its widths come from the checkpoint).
        let lm = dir + "/lm"
        let tied = try run(bin, ["train", "--dataset", "timemachine", "--max-tokens", "3000", "--embed", "16", "--hidden", "16", "--tied",
                                 "--batch-size", "4", "--num-steps", "10", "--epochs", "1", "--checkpoint-dir", lm] + data)
        #expect(tied.status == 0, "\(tied.stderr)")
        let again = try run(bin, ["train", "--resume", "--checkpoint-dir", lm, "--epochs", "2", "--tied"] + data)
        #expect(again.status == 0 && again.stdout.contains("resuming"), "\(again.stderr)")
        let translationFlag = try run(bin, ["train", "--resume", "--checkpoint-dir", lm, "--epochs", "3", "--bidirectional"] + data)
        #expect(translationFlag.status == 1 && translationFlag.stderr.contains("--bidirectional is a translation setting"), "\(translationFlag.stderr)")
    }

    @Test("data that would train on nothing, and a checkpoint folder holding another run, are refused naming the flag")
    func degenerateDataAndAnOccupiedFolderAreRefused() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let small = ["--dataset", "timemachine", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4", "--num-steps", "10"] + data
        let rare = try run(bin, ["train", "--tokenizer", "word", "--min-freq", "100000", "--epochs", "1"] + small)
        #expect(rare.status == 1 && rare.stderr.contains("no token occurs --min-freq 100000 times") && rare.stderr.contains("lower --min-freq"), "\(rare.stderr)")
        let tiny = try run(bin, ["train", "--valid-fraction", "0.0001", "--epochs", "1"] + small)
        #expect(tiny.status == 1 && tiny.stderr.contains("--valid-fraction 0.0001 of") && tiny.stderr.contains("too few to validate on"), "\(tiny.stderr)")
        let most = try run(bin, ["train", "--valid-fraction", "0.99", "--epochs", "1"] + small)
        #expect(most.status == 1 && most.stderr.contains("after --valid-fraction 0.99 held out") && most.stderr.contains("--valid-fraction"), "\(most.stderr)")
        let translation = try run(bin, ["train", "--task", "translation", "--dataset", "fra-eng", "--num-examples", "50", "--min-freq", "1000",
                                        "--embed", "8", "--hidden", "8", "--epochs", "1"] + data)
        #expect(translation.status == 1 && translation.stderr.contains("no source word occurs --min-freq 1000 times"), "\(translation.stderr)")
        // A --valid file of one token scores nothing (the run showed no validation perplexity, silently); a corpus of
        // whitespace has no words (the message advised lowering --min-freq below 1).
        try "x".write(toFile: dir + "/one.txt", atomically: true, encoding: .utf8)
        let one = try run(bin, ["train", "--valid", dir + "/one.txt", "--epochs", "1"] + small)
        #expect(one.status == 1 && one.stderr.contains("--valid \(dir)/one.txt gives 1 token(s)") && one.stderr.contains("too few to score"), "\(one.stderr)")
        try "  \n\t \n   \n".write(toFile: dir + "/blank.txt", atomically: true, encoding: .utf8)
        let blank = try run(bin, ["train", "--corpus", dir + "/blank.txt", "--tokenizer", "word", "--epochs", "1"])
        #expect(blank.status == 1 && blank.stderr.contains("holds no word tokens (only whitespace?)"), "\(blank.stderr)")

        // A new run in a folder of another run's checkpoints would prune its own; --resume continues that run.
        let ck = dir + "/ck"
        let first = try run(bin, ["train", "--epochs", "1", "--log-every", "1", "--checkpoint-every", "5", "--keep-checkpoints", "100",
                                  "--checkpoint-dir", ck] + small)
        #expect(first.status == 0, "\(first.stderr)")
        let again = try run(bin, ["train", "--epochs", "1", "--checkpoint-dir", ck] + small)
        #expect(again.status == 1 && again.stderr.contains("holds an earlier run's checkpoints") && again.stderr.contains("--resume"), "\(again.stderr)")
        // Resuming from an earlier checkpoint: metrics.jsonl keeps no record past it, so no step is logged twice, and a
        // write a killed process abandoned is removed.
        let files = checkpointFiles(in: ck)
        let keep = try #require(files.first { $0.step == 10 }, "\(files.map(\.step))")
        for f in files where f.step > keep.step { try FileManager.default.removeItem(atPath: f.path) }
        let abandoned = ck + "/.step-00000099.safetensors.tmp.4000000"
        #expect(FileManager.default.createFile(atPath: abandoned, contents: Data(count: 100)))
        let resumed = try run(bin, ["train", "--resume", "--epochs", "2", "--log-every", "1", "--checkpoint-dir", ck] + data)
        #expect(resumed.status == 0 && resumed.stdout.contains("resuming"), "\(resumed.stderr)")
        let steps = try String(contentsOfFile: ck + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").compactMap { line -> Int? in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], o["kind"] as? String == "step" else { return nil }
            return o["step"] as? Int
        }
        #expect(steps == Array(1...(steps.last ?? 0)), "step records \(steps)")
        #expect(!FileManager.default.fileExists(atPath: abandoned))
    }

    @Test("a config file's string may hold an escaped quote followed by #: it is not taken for a comment")
    func configStringsWithEscapedQuotesAndHashes() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let metrics = dir + "/m \"q #1.jsonl"  // one escaped quote: a scanner that ignores escapes leaves the string there
        let toml = "dataset = \"timemachine\"  # a comment\nmetrics = \"" + metrics.replacingOccurrences(of: "\"", with: "\\\"") + "\"  # another\n"
        try toml.write(toFile: dir + "/c.toml", atomically: true, encoding: .utf8)
        let r = try run(bin, ["train", "--config", dir + "/c.toml", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4",
                              "--num-steps", "10", "--epochs", "1"] + data)
        #expect(r.status == 0, "\(r.stderr)")
        let listed = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        #expect(FileManager.default.fileExists(atPath: metrics), "\(listed)")
    }

    @Test("a new run does not write over another run's metrics or into its TensorBoard folder (reusing run.toml wiped them)")
    func newRunKeepsOtherRunsMetrics() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let small = ["--dataset", "timemachine", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4", "--num-steps", "10",
                     "--epochs", "1"] + data
        let first = try run(bin, ["train", "--metrics", dir + "/logs/m.jsonl", "--checkpoint-dir", dir + "/a"] + small)
        #expect(first.status == 0, "\(first.stderr)")
        let before = try String(contentsOfFile: dir + "/logs/m.jsonl", encoding: .utf8)
        let reused = try run(bin, ["train", "--config", dir + "/a/run.toml", "--checkpoint-dir", dir + "/b"] + data)
        #expect(reused.status == 1 && reused.stderr.contains("--metrics \(dir)/logs/m.jsonl holds an earlier run's records"), "\(reused.stderr)")
        #expect(try String(contentsOfFile: dir + "/logs/m.jsonl", encoding: .utf8) == before)
        let beside = try run(bin, ["train", "--metrics", dir + "/logs/other.jsonl", "--checkpoint-dir", dir + "/c"] + small)
        #expect(beside.status == 1 && beside.stderr.contains("holds another run's TensorBoard events"), "\(beside.stderr)")
        let own = try run(bin, ["train", "--metrics", dir + "/logs2/m.jsonl", "--checkpoint-dir", dir + "/d"] + small)
        #expect(own.status == 0, "\(own.stderr)")
        let header = try String(contentsOfFile: dir + "/a/run.toml", encoding: .utf8).prefix { $0 != "\n" }
        #expect(header.contains("--checkpoint-dir NEW_DIR --metrics NEW_FILE (a new run), or add --resume (this one)"), "\(header)")
    }

    @Test("eval of a language model without a text scores the run's validation split, as the epoch line did (it scored nothing, or the whole book)")
    func evalScoresTheRunsValidationText() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let small = ["--dataset", "timemachine", "--max-tokens", "6000", "--hidden", "16", "--batch-size", "4", "--num-steps", "10"] + data
        let held = try run(bin, ["train", "--epochs", "2", "--valid-fraction", "0.1", "--checkpoint-dir", dir + "/held"] + small)
        #expect(held.status == 0, "\(held.stderr)")
        let printed = try #require(held.stdout.split(separator: "\n").last { $0.hasPrefix("epoch 2") }.flatMap { line in
            line.range(of: "val perplexity ").map { String(line[$0.upperBound...].prefix { $0 != " " }) } }, "\(held.stdout)")
        let last = try #require(latestCheckpoint(in: dir + "/held"))
        let scored = try run(bin, ["eval", "--checkpoint", last] + data)
        #expect(scored.status == 0 && scored.stdout.hasPrefix("perplexity \(printed) "), "epoch line \(printed); eval: \(scored.stdout) \(scored.stderr)")
        #expect(scored.stderr.contains("scoring the run's validation text: the last 600 of the first 6000 tokens of"), "\(scored.stderr)")
        let none = try run(bin, ["train", "--epochs", "1", "--checkpoint-dir", dir + "/none"] + small)
        #expect(none.status == 0, "\(none.stderr)")
        let refused = try run(bin, ["eval", "--checkpoint", dir + "/none"] + data)
        #expect(refused.status == 1 && refused.stderr.contains("the run had no validation text"), "\(refused.stderr)")
    }

    @Test("eval of a translation model scores the run's validation lines, and refuses a pairs file edited since")
    func evalChecksThePairsFileItScores() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let lines = try String(contentsOfFile: sharedDataDirectory() + "/fra-eng/fra.txt", encoding: .utf8)
            .split(separator: "\n", omittingEmptySubsequences: true).prefix(260)
        let pairs = dir + "/pairs.txt"
        try (lines.joined(separator: "\n") + "\n").write(toFile: pairs, atomically: true, encoding: .utf8)
        let trained = try run(bin, ["train", "--task", "translation", "--pairs", pairs, "--num-examples", "200", "--valid-examples", "40",
                                    "--embed", "8", "--hidden", "8", "--batch-size", "16", "--num-steps", "8", "--epochs", "1",
                                    "--checkpoint-dir", dir + "/ck"])
        #expect(trained.status == 0, "\(trained.stderr)")
        let scored = try run(bin, ["eval", "--checkpoint", dir + "/ck"])
        #expect(scored.status == 0 && scored.stdout.contains("BLEU"), "\(scored.stdout) \(scored.stderr)")
        try ("Hi.\tSalut.\n" + lines.joined(separator: "\n") + "\n").write(toFile: pairs, atomically: true, encoding: .utf8)
        let edited = try run(bin, ["eval", "--checkpoint", dir + "/ck"])
        #expect(edited.status == 1 && edited.stderr.contains("differs from the pairs file this model was trained on"), "\(edited.stderr)")
        let chosen = try run(bin, ["eval", "--checkpoint", dir + "/ck", "--pairs", pairs])
        #expect(chosen.status == 0, "\(chosen.stderr)")
        // Pairs training would refuse are refused here too: an empty side was scored as one empty token.
        try "Go.\t\nHi.\tSalut.\n".write(toFile: dir + "/half.txt", atomically: true, encoding: .utf8)
        let half = try run(bin, ["eval", "--checkpoint", dir + "/ck", "--pairs", dir + "/half.txt"])
        #expect(half.status == 1 && half.stderr.contains("line 1 (pair 1) has an empty target side"), "\(half.stderr)")
        try "".write(toFile: dir + "/none.txt", atomically: true, encoding: .utf8)
        let none = try run(bin, ["eval", "--checkpoint", dir + "/ck", "--pairs", dir + "/none.txt"])
        #expect(none.status == 1 && none.stderr.contains("pairs file \(dir)/none.txt is empty; give UTF-8 lines of `source<TAB>target`"), "\(none.stderr)")
    }

    @Test("run.toml holds the command's own settings too: --config brings back the workers and the parameter server's flags")
    func runConfigHoldsTheParameterServersSettings() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let r = try run(bin, ["train", "--dataset", "timemachine", "--max-tokens", "3000", "--hidden", "16", "--batch-size", "4",
                              "--num-steps", "10", "--epochs", "1", "--workers", "2", "--mode", "async", "--max-staleness", "3",
                              "--gradient-compression", "bf16", "--threads", "1", "--join-timeout", "30", "--checkpoint-dir", dir + "/a"] + data)
        #expect(r.status == 0, "\(r.stderr)")
        let toml = try String(contentsOfFile: dir + "/a/run.toml", encoding: .utf8)
        for line in ["workers = 2", "mode = \"async\"", "max-staleness = 3", "gradient-compression = \"bf16\"", "threads = 1",
                     "join-timeout = 30.0", "log-every = 50"] {
            #expect(toml.contains("\n" + line + "\n"), "run.toml lacks \(line):\n\(toml)")
        }
        #expect(toml.hasPrefix("# rnnlm train settings"), "\(toml)")
        // Reused, the file runs the same way: an asynchronous run with bfloat16 gradients.
        let again = try run(bin, ["train", "--config", dir + "/a/run.toml", "--checkpoint-dir", dir + "/b"] + data)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("async: applied") && again.stdout.contains("gradients travel as bfloat16"), "\(again.stdout)")
        // Without workers its parameter-server settings are refused, naming them, rather than dropped.
        let single = try run(bin, ["train", "--config", dir + "/a/run.toml", "--workers", "0", "--checkpoint-dir", dir + "/c"] + data)
        #expect(single.status == 1 && single.stderr.contains("--mode async, --max-staleness 3, --gradient-compression bf16, --join-timeout 30.0 set how a parameter server treats its workers"), "\(single.stderr)")
    }

    /// `--help`'s option entries by flag name, each entry's wrapped lines joined with single spaces.
    func helpEntries(_ help: String) -> [String: String] {
        var entries: [String: String] = [:], current: String?
        for line in help.split(separator: "\n") {
            let words = line.split(separator: " ")
            if line.hasPrefix("  -"), let flag = words.first(where: { $0.hasPrefix("--") }) {
                current = String(flag.trimmingCharacters(in: CharacterSet(charactersIn: ",")))
                entries[current!] = words.joined(separator: " ")
            } else if line.hasPrefix("    "), let c = current {
                entries[c, default: ""] += " " + words.joined(separator: " ")
            } else {
                current = nil
            }
        }
        return entries
    }

    @Test func helpListsChoiceValuesAndEachDefaultOnce() throws {
        let bin = try rnnlmBinary()
        for command in ["train", "coordinator"] {
            let r = try run(bin, [command, "--help"])
            #expect(r.status == 0 && r.stderr.isEmpty, "\(r.stderr)")
            let entries = helpEntries(r.stdout)
            let choices = [
                "--tokenizer": "char, char-raw, word, lines, bpe", "--model": "rnn, rnn-relu, gru, lstm",
                "--partition": "sequential, random", "--optimizer": "sgd, adam", "--lr-schedule": "constant, step, plateau",
                "--init-scheme": "pytorch, normal", "--log-level": "error, warning, info, debug", "--mode": "sync, async",
            ]
            for (flag, values) in choices {
                let entry = try #require(entries[flag], "\(command) --help lacks \(flag)")
                #expect(entry.contains("(values: \(values)"), "\(flag): \(entry)")
            }
            for (flag, entry) in entries {
                let count = entry.lowercased().components(separatedBy: "default").count - 1
                #expect(count <= 1, "\(command) \(flag) states its default \(count) times: \(entry)")
            }
            // The defaults come from TrainOptions: 50 epochs, as a run without --epochs trains.
            #expect(entries["--epochs"]?.contains("(default: 50)") == true)
            #expect(entries["--batch-size"]?.contains("(default: 32)") == true)
            #expect(entries["--model"]?.contains("default: gru") == true)
        }
    }

    @Test func checksThatNeedNoDataComeBeforeAnyDataLoads() throws {
        let bin = try rnnlmBinary()
        let cases: [([String], String)] = [
            (["train", "--corpus", "/nonexistent.txt", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
            (["train", "--corpus", "/nonexistent.txt", "--log-every", "0"], "--log-every must be at least 1"),
            (["train", "--corpus", "/nonexistent.txt", "--threads", "0"], "--threads must be 1 or more, got 0"),
            (["train", "--corpus", "/nonexistent.txt", "--workers", "2", "--quorum", "3"], "--quorum must be between 1 and --expect-workers (2), got 3"),
            (["coordinator", "--corpus", "/nonexistent.txt", "--expect-workers", "1", "--heartbeat-timeout", "0.5"], "--heartbeat-timeout must be at least 1 second"),
            (["train", "--corpus", "/nonexistent.txt", "--optimizer", "adagrad"], "unknown --optimizer 'adagrad'; use one of sgd, adam"),
            (["train", "--corpus", "/nonexistent.txt", "--init-scheme", "xavier"], "unknown --init-scheme 'xavier'; use one of pytorch, normal"),
            (["train", "--resume", "--checkpoint-dir", "/nonexistent", "--keep-checkpoints", "0"], "--keep-checkpoints must be at least 1, got 0"),
            // Parameter-server flags that one mode would ignore are refused in it.
            (["train", "--corpus", "/nonexistent.txt", "--workers", "2", "--mode", "async", "--quorum", "1"],
             "--quorum lets a synchronous step go on without its stragglers; an asynchronous run never waits for one: drop one of --mode async and --quorum"),
            (["coordinator", "--corpus", "/nonexistent.txt", "--expect-workers", "2", "--max-staleness", "1"],
             "--max-staleness bounds how stale an asynchronous run's gradients may be; a synchronous step uses only gradients of its own weights: add --mode async or drop --max-staleness"),
            // A minimum the run can never reach would pause it before its first step, forever.
            (["train", "--corpus", "/nonexistent.txt", "--workers", "2", "--min-workers", "3"],
             "--min-workers 3 is more than the 2 worker(s) the run starts with (--expect-workers, or --workers N): it would pause before its first step; lower --min-workers or raise the worker count"),
            (["train", "--corpus", "/nonexistent.txt", "--workers", "2", "--step-timeout", "0"], "--step-timeout must be more than 0 seconds, got 0.0"),
            (["coordinator", "--corpus", "/nonexistent.txt", "--expect-workers", "1", "--join-timeout", "0"], "--join-timeout must be more than 0 seconds, got 0.0"),
            // Settings the chosen optimizer, schedule, initialisation or tokenizer never reads are refused (they did
            // nothing); the same value as the default, as run.toml writes every setting, is not.
            (["train", "--corpus", "/nonexistent.txt", "--optimizer", "adam", "--momentum", "0.9", "--lr-patience", "2"],
             "--momentum (read only with --optimizer sgd), --lr-patience (read only with --lr-schedule plateau) would do nothing in this run; drop them (from the command line or the --config file), or choose the setting that reads them"),
            (["coordinator", "--corpus", "/nonexistent.txt", "--expect-workers", "1", "--beta1", "0.8", "--init-std", "0.1"],
             "--beta1 (read only with --optimizer adam), --init-std (read only with --init-scheme normal) would do nothing in this run; drop them (from the command line or the --config file), or choose the setting that reads them"),
            (["train", "--corpus", "/nonexistent.txt", "--lr-schedule", "plateau", "--lr-step-every", "2"],
             "--lr-step-every (read only with --lr-schedule step) would do nothing in this run; drop it (from the command line or the --config file), or choose the setting that reads it"),
            (["train", "--dataset", "timemachine", "--lowercase", "--bpe-merges", "100", "--momentum", "0", "--beta1", "0.9"],
             "--bpe-merges (read only with --tokenizer bpe), --lowercase (read only with --tokenizer word, lines or bpe; char lowercases already, char-raw keeps every character) would do nothing in this run; drop them (from the command line or the --config file), or choose the setting that reads them"),
            (["train", "--corpus", "/nonexistent.txt", "--step-timeout", "30"],
             "--step-timeout 30.0 sets how a parameter server treats its workers; this run has none: add --workers N (local worker processes), or run `rnnlm coordinator`"),
        ]
        for (args, message) in cases {
            let r = try run(bin, args)
            #expect(r.status == 1, "\(args): status \(r.status)")
            #expect(r.stderr == "error: \(message)\n", "\(args): stderr was \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(args) printed before failing: \(r.stdout)")
        }
    }
}
