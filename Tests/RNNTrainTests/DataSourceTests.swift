import Foundation
import RNNText
import Testing

/// Where training text comes from, through the binary: your own text (`--corpus`, `--data DIR`) keeps every
/// character, and `--dataset timemachine` trains offline from the copy shipped in the package.
@Suite("Training text: --corpus, --data, the embedded Time Machine")
struct DataSourceTests {
    static let text = String(repeating: "The Time Traveller, 1895: \"It's 4 o'clock!\" Weena said. ", count: 20)
    static let small = ["--hidden", "8", "--batch-size", "4", "--num-steps", "5", "--epochs", "1"]

    func storedSetting(_ key: String, in dir: String) throws -> String? {
        let toml = try String(contentsOfFile: dir + "/run.toml", encoding: .utf8)
        return toml.split(separator: "\n").first { $0.hasPrefix("\(key) = ") }.map { String($0.dropFirst(key.count + 3)) }
    }

    @Test("--corpus defaults to char-raw (every character kept); --dataset timemachine stays D2L's char")
    func corpusKeepsItsCharacters() throws {
        let bin = try rnnlmBinary(), dir = temporaryDirectory()
        try Self.text.write(toFile: dir + "/own.txt", atomically: true, encoding: .utf8)
        let own = try run(bin, ["train", "--corpus", dir + "/own.txt", "--checkpoint-dir", dir + "/own"] + Self.small)
        #expect(own.status == 0, "\(own.stderr)")
        #expect(try storedSetting("tokenizer", in: dir + "/own") == "\"char-raw\"")
        let tm = try run(bin, ["train", "--dataset", "timemachine", "--data-dir", sharedDataDirectory(), "--max-tokens", "2000",
                               "--checkpoint-dir", dir + "/tm"] + Self.small)
        #expect(tm.status == 0, "\(tm.stderr)")
        #expect(try storedSetting("tokenizer", in: dir + "/tm") == "\"char\"")
    }

    @Test("--data DIR reads train.txt, and valid.txt and test.txt when present; refusals say what to do")
    func dataFolder() throws {
        let bin = try rnnlmBinary(), dir = temporaryDirectory()
        let folder = dir + "/wlm"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try Self.text.write(toFile: folder + "/train.txt", atomically: true, encoding: .utf8)
        try String(Self.text.prefix(300)).write(toFile: folder + "/valid.txt", atomically: true, encoding: .utf8)
        let trainOnly = try run(bin, ["train", "--data", folder, "--checkpoint-dir", dir + "/a"] + Self.small)
        #expect(trainOnly.status == 0, "\(trainOnly.stderr)")
        #expect(try storedSetting("corpus", in: dir + "/a") == "\"\(folder)/train.txt\"")
        #expect(try storedSetting("valid", in: dir + "/a") == "\"\(folder)/valid.txt\"")
        #expect(try storedSetting("test", in: dir + "/a") == nil)
        #expect(try storedSetting("tokenizer", in: dir + "/a") == "\"char-raw\"")

        try String(Self.text.suffix(300)).write(toFile: folder + "/test.txt", atomically: true, encoding: .utf8)
        let all = try run(bin, ["train", "--data", folder, "--checkpoint-dir", dir + "/b"] + Self.small)
        #expect(all.status == 0, "\(all.stderr)")
        #expect(all.stdout.contains("test perplexity"), "no test perplexity printed:\n\(all.stdout)")
        #expect(try storedSetting("test", in: dir + "/b") == "\"\(folder)/test.txt\"")

        let both = try run(bin, ["train", "--data", folder, "--corpus", folder + "/train.txt"] + Self.small)
        #expect(both.status == 1 && both.stderr.contains("--data") && both.stderr.contains("--corpus"), "\(both.stderr)")
        let named = try run(bin, ["train", "--data", folder, "--dataset", "timemachine"] + Self.small)
        #expect(named.status == 1 && named.stderr.contains("--dataset"), "\(named.stderr)")
        let empty = temporaryDirectory()
        let missing = try run(bin, ["train", "--data", empty] + Self.small)
        #expect(missing.status == 1 && missing.stderr.contains("no train.txt"), "\(missing.stderr)")
    }

    @Test("offline start: --dataset timemachine trains with no --data-dir, RNNLM_DATA_DIR unset and an empty HOME")
    func embeddedTimeMachine() throws {
        let bin = try rnnlmBinary(), home = temporaryDirectory()
        let r = try run(bin, ["train", "--dataset", "timemachine", "--max-tokens", "3000", "--checkpoint-dir", home + "/ck"]
                            + Self.small,
                        environment: ["HOME": home], unset: [NamedDataset.dataDirVariable, "XDG_CACHE_HOME"])
        #expect(r.status == 0, "\(r.stdout)\n\(r.stderr)")
        #expect(r.stdout.contains("final perplexity"), "\(r.stdout)")
        // Nothing was downloaded: the cache stays empty.
        #expect(!FileManager.default.fileExists(atPath: home + "/.cache/rnnlm/timemachine.txt"))
    }

    @Test("the embedded copy is the SHA-1-checked file; other datasets have none")
    func embeddedCopyIsVerified() throws {
        let tm = try NamedDataset.named("timemachine")
        let path = try #require(tm.embeddedPath, "the RNNText resource bundle is not beside the test bundle")
        let data = try #require(FileManager.default.contents(atPath: path))
        #expect(sha1Hex([UInt8](data)) == tm.sha1)
        #expect(try NamedDataset.named("tinyshakespeare").embeddedPath == nil)
    }
}
