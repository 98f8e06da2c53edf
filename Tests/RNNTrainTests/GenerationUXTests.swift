import Foundation
import RNNCore
import RNNTrain
import Testing

/// `rnnlm generate` as people use it: streamed output, an empty prefix, nucleus sampling, a required prefix.
@Suite("Generation as people use it", .serialized)
struct GenerationUXTests {
    /// A tiny timemachine model trained through the binary, and one trained on other text (`--corpus`).
    static let checkpoints: (timemachine: String, own: String) = {
        let dir = temporaryDirectory()
        let bin = try! rnnlmBinary()
        let small = ["--hidden", "16", "--batch-size", "8", "--num-steps", "10", "--epochs", "1", "--max-tokens", "4000"]
        _ = try! run(bin, ["train", "--dataset", "timemachine", "--data-dir", sharedDataDirectory(),
                           "--checkpoint-dir", dir + "/tm"] + small)
        try! String(repeating: "Call me Ishmael. Some years ago, never mind how long precisely. ", count: 60)
            .write(toFile: dir + "/own.txt", atomically: true, encoding: .utf8)
        _ = try! run(bin, ["train", "--corpus", dir + "/own.txt", "--checkpoint-dir", dir + "/own"] + small)
        return (dir + "/tm", dir + "/own")
    }()

    func model() throws -> TrainedModel {
        try TrainedModel(checkpointPath: TrainedModel.resolve(Self.checkpoints.timemachine))
    }

    @Test("greedy and sampling hand out the prefix, then one piece per token; beam everything once, at the end")
    func streamsAsProduced() throws {
        let m = try model()
        for decoding in [Decoding.greedy, .sample(temperature: 1, topK: 0, topP: 0.9, seed: 3)] {
            var pieces: [String] = []
            let text = try m.generate(prefix: "time traveller", count: 40, decoding: decoding) { pieces.append($0) }
            #expect(pieces.count == 41, "\(decoding): \(pieces.count) pieces")
            #expect(pieces.first == "time traveller")
            #expect(pieces.joined() == text)
            #expect(text == (try m.generate(prefix: "time traveller", count: 40, decoding: decoding)))
        }
        var beamPieces: [String] = []
        let beam = try m.generate(prefix: "time", count: 10, decoding: .beam(width: 3, lengthPenalty: 0.75)) { beamPieces.append($0) }
        #expect(beamPieces == [beam])
    }

    @Test("each tokenizer's streamed pieces (found from the last few tokens) join to its whole text, <eos> line ends included",
          arguments: ["word", "lines", "bpe", "char-raw"])
    func piecesJoinToTheText(_ tokenizer: String) throws {
        let dir = temporaryDirectory()
        let lines = (0..<80).map { i in "the cat \(i % 7) sat on the mat , said she .\nand then ?" }
        try lines.joined(separator: "\n").write(toFile: dir + "/text.txt", atomically: true, encoding: .utf8)
        let r = try run(try rnnlmBinary(), ["train", "--corpus", dir + "/text.txt", "--tokenizer", tokenizer, "--hidden", "8",
                                            "--batch-size", "4", "--num-steps", "6", "--epochs", "1", "--checkpoint-dir", dir + "/ck"]
                        + (tokenizer == "bpe" ? ["--bpe-merges", "20"] : []))
        try #require(r.status == 0, "\(r.stderr)")
        let m = try TrainedModel(checkpointPath: TrainedModel.resolve(dir + "/ck"))
        var pieces: [String] = []
        let text = try m.generate(prefix: "the cat", count: 300, decoding: .sample(temperature: 2, topK: 0, topP: 1, seed: 5)) {
            pieces.append($0)
        }
        #expect(pieces.joined() == text)
        #expect(pieces.count > 100, "\(pieces.count) pieces")
    }

    @Test("the binary writes tokens while it is still generating (seen through a pipe before it exits)")
    func binaryStreams() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try rnnlmBinary())
        p.arguments = ["generate", "--checkpoint", Self.checkpoints.timemachine, "--tokens", "100000000",
                       "--temperature", "1"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let watchdog = DispatchWorkItem { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        DispatchQueue.global().asyncAfter(deadline: .now() + 60, execute: watchdog)
        var received = Data()
        while received.count < 64 {
            let chunk = pipe.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            received += chunk
        }
        let stillRunning = p.isRunning
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        watchdog.cancel()
        #expect(received.count >= 64, "only \(received.count) bytes before the process ended")
        #expect(stillRunning, "the output arrived only when the process ended")
        #expect(String(decoding: received, as: UTF8.self).hasPrefix("time traveller"))
    }

    @Test("an empty prefix starts from the zero state: the first greedy token is the argmax of the decoder's bias")
    func emptyPrefix() throws {
        let m = try model()
        let text = try m.generate(prefix: "", count: 20, decoding: .greedy)
        #expect(text.count == 20)
        #expect(String(text.first!) == m.vocabulary.token(Int32(argmax(m.model.startLogits[...]))))
        // Then each token is read from the zero state on, as after any prefix.
        var state = RecurrentState.zeros(m.model.config, batch: 1)
        var logits = m.model.startLogits
        var expected = ""
        for _ in 0..<20 {
            let next = Int32(argmax(logits[...]))
            expected += m.vocabulary.token(next)
            logits = m.model.logits(inputs: [next], steps: 1, batch: 1, state: &state)
        }
        #expect(text == expected)
        let sampled = try m.generate(prefix: "", count: 20, decoding: .sample(temperature: 1, topK: 0, seed: 2))
        #expect(sampled.count == 20)
        let r = try run(try rnnlmBinary(), ["generate", "--checkpoint", Self.checkpoints.timemachine, "--prefix", "",
                                            "--tokens", "20"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == text + "\n")
    }

    @Test("--top-p keeps the nucleus: tiny p is greedy, p = 1 is plain sampling, p = 0.6 draws only the top two")
    func nucleusSampling() throws {
        let m = try model()
        let greedy = try m.generate(prefix: "time", count: 30, decoding: .greedy)
        #expect(try m.generate(prefix: "time", count: 30, decoding: .sample(temperature: 1, topK: 0, topP: 1e-9, seed: 1)) == greedy)
        #expect(try m.generate(prefix: "time", count: 30, decoding: .sample(temperature: 1, topK: 0, topP: 1, seed: 1))
                == (try m.generate(prefix: "time", count: 30, decoding: .sample(temperature: 1, topK: 0, seed: 1))))
        // Probabilities 0.5, 0.3, 0.2: the nucleus of 0.6 is {0, 1}, drawn 5 : 3.
        let logits: [Float] = [0.5, 0.3, 0.2].map { Float(log($0)) }
        var rng = RandomGenerator(seed: 9)
        var counts = [0, 0, 0]
        for _ in 0..<4000 { counts[sample(logits[...], temperature: 1, topK: 0, topP: 0.6, rng: &rng)] += 1 }
        #expect(counts[2] == 0)
        #expect(abs(Double(counts[0]) / 4000 - 0.625) < 0.03, "\(counts)")
        let bad = try run(try rnnlmBinary(), ["generate", "--checkpoint", Self.checkpoints.timemachine, "--top-p", "1.5",
                                              "--temperature", "1"])
        #expect(bad.status == 1 && bad.stderr.contains("--top-p"), "\(bad.stderr)")
    }

    @Test("decoding flags that would be ignored, or would crash, are refused before the model loads, naming the flag")
    func decodingFlagsThatDoNothingAreRefused() throws {
        let bin = try rnnlmBinary()
        let ck = Self.checkpoints.timemachine
        let cases: [([String], String)] = [
            (["generate", "--checkpoint", ck, "--top-k", "5"], "--top-k shapes sampling: give it a --temperature above 0"),
            (["generate", "--checkpoint", ck, "--seed", "3"], "--seed shapes sampling: give it a --temperature above 0"),
            (["generate", "--checkpoint", ck, "--top-p", "0.9"], "--top-p shapes sampling: give it a --temperature above 0"),
            (["generate", "--checkpoint", ck, "--temperature", "0"], "--temperature must be a positive number, got 0.0"),
            (["generate", "--checkpoint", ck, "--temperature", "nan"], "--temperature must be a positive number, got nan"),
            (["generate", "--checkpoint", ck, "--beam", "3", "--temperature", "0.8"], "--temperature samples, and --beam searches: pass one of them"),
            (["generate", "--checkpoint", ck, "--length-penalty", "1"], "--length-penalty 1.0 ranks beam-search candidates: add --beam K, or drop it"),
            (["generate", "--checkpoint", ck, "--beam", "0"], "--beam must be at least 1, got 0"),
            (["translate", "--checkpoint", ck, "--length-penalty", "1", "Go."], "--length-penalty ranks beam-search candidates: add --beam K (K ≥ 2), or drop it"),
            (["eval", "--checkpoint", ck, "--dataset", "timemachine", "--num-steps", "0"], "--num-steps must be at least 1, got 0"),
            (["eval", "--checkpoint", ck, "--dataset", "timemachine", "--batch-size", "0"], "--batch-size must be at least 1, got 0"),
            (["eval", "--checkpoint", ck, "--dataset", "timemachine", "--corpus", "x.txt"], "pass either --corpus or --dataset, not both"),
        ]
        for (args, message) in cases {
            let r = try run(bin, args)
            #expect(r.status == 1 && r.stderr.hasPrefix("error: \(message)") && r.stderr.filter { $0 == "\n" }.count == 1,
                    "\(args): status \(r.status), stderr \(r.stderr)")
            #expect(r.stdout.isEmpty, "\(args) printed \(r.stdout)")
        }
    }

    @Test("--prefix is required for a checkpoint not trained on timemachine; timemachine keeps \"time traveller\"")
    func prefixRequiredForOtherText() throws {
        let bin = try rnnlmBinary()
        let own = try run(bin, ["generate", "--checkpoint", Self.checkpoints.own, "--tokens", "10"])
        #expect(own.status == 1 && own.stderr.contains("--prefix is required"), "\(own.stderr)")
        let given = try run(bin, ["generate", "--checkpoint", Self.checkpoints.own, "--prefix", "Call", "--tokens", "10"])
        #expect(given.status == 0 && given.stdout.hasPrefix("Call"), "\(given.stderr)")
        let tm = try run(bin, ["generate", "--checkpoint", Self.checkpoints.timemachine, "--tokens", "10"])
        #expect(tm.status == 0 && tm.stdout.hasPrefix("time traveller"), "\(tm.stderr)")
    }
}
