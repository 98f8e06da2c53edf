import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import RNNTrain
import Testing

/// Collects every <polyline>'s points by id.
final class PolylineCollector: NSObject, XMLParserDelegate {
    var polylines: [String: [String]] = [:]
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        if name == "polyline", let id = attributes["id"], let pts = attributes["points"] {
            polylines[id] = pts.split(separator: " ").map(String.init)
        }
    }
}

@Suite("What a user sees: progress, metrics, plot, config", .serialized)
struct UserExperienceTests {
    let small = ["--dataset", "timemachine", "--max-tokens", "6000", "--hidden", "32", "--batch-size", "8", "--num-steps", "10",
                 "--valid-fraction", "0.1"]
    var data: [String] { ["--data-dir", sharedDataDirectory()] }

    @Test("metrics JSONL has one record per logging interval and per epoch; the SVG has one point per epoch")
    func metricsAndPlot() throws {
        let dir = temporaryDirectory() + "/run"
        let r = try run(try rnnlmBinary(), ["train", "--epochs", "4", "--log-every", "25", "--checkpoint-dir", dir] + small + data)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let records = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        let steps = records.filter { $0["kind"] as? String == "step" }, epochs = records.filter { $0["kind"] as? String == "epoch" }
        let totalSteps = try #require(epochs.last?["step"] as? Int)
        #expect(steps.count == totalSteps / 25, "\(steps.count) step records for \(totalSteps) steps at --log-every 25")
        #expect(epochs.count == 4)
        for key in ["step", "epoch", "time", "loss", "perplexity", "val_perplexity", "tokens_per_s", "lr", "grad_norm", "clipped", "workers"] {
            #expect(records.allSatisfy { $0.keys.contains(key) }, "a record lacks \(key)")
        }
        #expect(epochs.allSatisfy { ($0["val_perplexity"] as? Double ?? 0) > 1 })

        // The run wrote curve.svg beside the checkpoint; `rnnlm plot` draws the same data on a log axis.
        for svg in [dir + "/curve.svg", dir + "/log.svg"] {
            if svg.hasSuffix("log.svg") {
                let p = try run(try rnnlmBinary(), ["plot", dir + "/metrics.jsonl", "-o", svg, "--log-scale"])
                #expect(p.status == 0, "\(p.stderr)")
            }
            let parser = XMLParser(data: try Data(contentsOf: URL(fileURLWithPath: svg)))
            let collector = PolylineCollector()
            parser.delegate = collector
            #expect(parser.parse(), "\(svg) is not well-formed XML: \(String(describing: parser.parserError))")
            #expect(collector.polylines["train"]?.count == 4)
            #expect(collector.polylines["valid"]?.count == 4)
        }
        // A run killed while writing a record leaves an unfinished last line: plot skips it; a bad line inside
        // the file is still an error naming it.
        let metrics = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8)
        try (metrics + "{\"kind\": \"epoch\", \"epo").write(toFile: dir + "/cut.jsonl", atomically: true, encoding: .utf8)
        let cut = try run(try rnnlmBinary(), ["plot", dir + "/cut.jsonl", "-o", dir + "/cut.svg"])
        #expect(cut.status == 0 && cut.stdout.contains("4 epochs"), "\(cut.stdout) \(cut.stderr)")
        try ("{not json\n" + metrics).write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        let bad = try run(try rnnlmBinary(), ["plot", dir + "/bad.jsonl", "-o", dir + "/bad.svg"])
        #expect(bad.status == 1 && bad.stderr.contains("line 1 is not a JSON object"), "\(bad.stderr)")
    }

    @Test("on a pseudo-terminal the status line is redrawn in place; without one, plain lines")
    func liveLineOnATerminalPlainLinesOtherwise() throws {
        let bin = try rnnlmBinary()
        let args = ["train", "--epochs", "3", "--log-every", "20"] + small + data
        // util-linux `script` gives the command a pty and copies what it prints; a wide one, since the status line is
        // cut to the terminal's width (StatusLineTests).
        let command = "stty cols 200; " + ([bin] + args).map { "'\($0)'" }.joined(separator: " ")
        let tty = try run("/usr/bin/script", ["-qec", command, "/dev/null"], environment: ["TERM": "xterm"])
        #expect(tty.status == 0, "\(tty.stdout)\(tty.stderr)")
        #expect(tty.stdout.contains("\r"), "no carriage return: the status line was not redrawn")
        #expect(tty.stdout.contains("\u{1B}[K"))
        for field in ["epoch 1/3", "step ", "tok/s", "loss ", "ppl ", "lr ", "|g| ", "clip ", "ETA "] {
            #expect(tty.stdout.contains(field), "status line lacks '\(field)'")
        }
        let plain = try run(bin, args)
        #expect(plain.status == 0)
        #expect(!plain.stdout.contains("\r") && !plain.stdout.contains("\u{1B}"), "escape codes in non-terminal output")
        let progress = plain.stdout.split(separator: "\n").filter { $0.contains(" step ") && $0.contains("tok/s") }
        #expect(!progress.isEmpty && progress.allSatisfy { $0.hasPrefix("epoch ") && $0.contains("ETA") || $0.contains("/3  step") })
        // --quiet: nothing on standard output.
        let quiet = try run(bin, args + ["--quiet"])
        #expect(quiet.status == 0 && quiet.stdout.isEmpty, "quiet printed: \(quiet.stdout)")
        let badLevel = try run(bin, args + ["--log-level", "loud"])
        #expect(badLevel.status == 1 && badLevel.stderr.contains("unknown --log-level 'loud'"))
    }

    @Test("--config: file keys become flags, flags win, unknown keys suggest the nearest flag, run.toml round-trips")
    func configFiles() throws {
        let bin = try rnnlmBinary()
        let dir = temporaryDirectory()
        let cfg = dir + "/run.toml"
        try """
        # settings
        dataset = "timemachine"
        max_tokens = 6000      # snake_case works too
        hidden = 32
        batch-size = 8
        num-steps = 10
        epochs = 2
        model = "lstm"
        tokenizer = "word"
        lowercase = true
        """.write(toFile: cfg, atomically: true, encoding: .utf8)
        let r = try run(bin, ["train", "--config", cfg, "--model", "gru", "--checkpoint-dir", dir + "/a"] + data)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("training gru"), "the --model flag must override the file")
        #expect(r.stdout.contains("hidden 32") && r.stdout.split(separator: "\n").filter { $0.hasPrefix("epoch ") && $0.contains("perplexity") }.count == 2)
        // The resolved settings written beside the checkpoints reproduce the run.
        let resolved = try String(contentsOfFile: dir + "/a/run.toml", encoding: .utf8)
        #expect(resolved.contains("model = \"gru\"") && resolved.contains("hidden = 32") && resolved.contains("lowercase = true"))
        let again = try run(bin, ["train", "--config", dir + "/a/run.toml", "--checkpoint-dir", dir + "/b"] + data)
        #expect(again.status == 0, "\(again.stderr)")
        let second = try String(contentsOfFile: dir + "/b/run.toml", encoding: .utf8)
        #expect(second.replacingOccurrences(of: dir + "/b", with: dir + "/a") == resolved)

        try "hiden = 64\n".write(toFile: cfg, atomically: true, encoding: .utf8)
        let typo = try run(bin, ["train", "--config", cfg] + data)
        #expect(typo.status == 1 && typo.stderr.contains("unknown key 'hiden'; did you mean 'hidden'?"), "\(typo.stderr)")
        try "{\"epochs\": 1, \"lowercase\": 1}".write(toFile: dir + "/c.json", atomically: true, encoding: .utf8)
        let json = try run(bin, ["train", "--config", dir + "/c.json"] + data)
        #expect(json.status == 1 && json.stderr.contains("'lowercase' is a switch"), "\(json.stderr)")
        // A key set twice (the last one won, silently), the config key itself, a multi-line string, a negative value.
        let bad: [(String, String)] = [
            ("hidden = 16\nepochs = 1\nhidden = 32\n", "'hidden' is set twice (also as 'hidden'); keep one"),
            ("max_tokens = 100\nmax-tokens = 200\n", "'max-tokens' is set twice (also as 'max_tokens'); keep one"),
            ("config = \"other.toml\"\n", "'config' cannot be set in a settings file"),
            ("corpus = \"\"\"data.txt\"\"\"\n", "line 1: multi-line strings are not supported"),
            ("dataset = \"timemachine\"\nlayers = -1\n", "--layers must be at least 1, got -1"),
        ]
        for (text, message) in bad {
            try text.write(toFile: cfg, atomically: true, encoding: .utf8)
            let r = try run(bin, ["train", "--config", cfg] + data)
            #expect(r.status == 1 && r.stderr.contains(message), "\(text): \(r.stderr)")
        }
        // A settings file read from a pipe (process substitution), as a corpus can be.
        let piped = try run("/bin/bash", ["-c", "\"$0\" train --config <(printf 'hidden = 8\\nepochs = 1\\nbatch-size = 4\\nnum-steps = 10\\n') --corpus <(head -c 3000 \"$1\") --checkpoint-dir \"$2\"",
                                          bin, sharedDataDirectory() + "/timemachine.txt", dir + "/piped"])
        #expect(piped.status == 0 && !piped.stderr.contains("cannot be read"), "\(piped.stderr)")
    }
}
