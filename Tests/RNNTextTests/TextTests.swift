import Foundation
import RNNText
import Testing

struct SeededOrder: RNGLike {
    var state: UInt64
    mutating func int(below n: Int) -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) % n }
    mutating func shuffle<T>(_ a: inout [T]) { for i in stride(from: a.count - 1, to: 0, by: -1) { a.swapAt(i, int(below: i + 1)) } }
}

@Suite("D2L partitioning examples (sequence 0..34, batch 2, steps 5)")
struct PartitionTests {
    let seq = (0..<35).map(Int32.init)

    @Test func sequentialOffsetZero() {
        let e = EpochBatches.sequential(seq, batch: 2, steps: 5, offset: 0)
        #expect(e.count == 3)
        #expect(e[0].stream(0) == [0, 1, 2, 3, 4] && e[0].stream(1) == [17, 18, 19, 20, 21])
        #expect(e[0].targetStream(0) == [1, 2, 3, 4, 5] && e[0].targetStream(1) == [18, 19, 20, 21, 22])
        #expect(e[1].stream(0) == [5, 6, 7, 8, 9] && e[1].stream(1) == [22, 23, 24, 25, 26])
        #expect(e[2].stream(0) == [10, 11, 12, 13, 14] && e[2].stream(1) == [27, 28, 29, 30, 31])
    }

    @Test func sequentialOffsetTwoContinuesEachStream() {
        let e = EpochBatches.sequential(seq, batch: 2, steps: 5, offset: 2)
        // (35 − 2 − 1) // 2 · 2 = 32 tokens: streams 2..17 and 18..33, 16 // 5 = 3 minibatches.
        #expect(e.count == 3)
        #expect(e[0].stream(0) == [2, 3, 4, 5, 6] && e[0].stream(1) == [18, 19, 20, 21, 22])
        #expect(e[2].stream(1) == [28, 29, 30, 31, 32] && e[2].targetStream(1) == [29, 30, 31, 32, 33])
    }

    @Test func randomPartitionFollowsOrder() {
        // Offset 1: corpus[1:], (35 − 1 − 1) // 5 = 6 subsequences starting at 1, 6, …, 26; 3 minibatches.
        let e = EpochBatches.random(seq, batch: 2, steps: 5, offset: 1, order: [3, 0, 5, 1, 4, 2])
        #expect(e.count == 3)
        #expect(e[0].stream(0) == [16, 17, 18, 19, 20] && e[0].stream(1) == [1, 2, 3, 4, 5])
        #expect(e[0].targetStream(0) == [17, 18, 19, 20, 21])
        #expect(e[1].stream(0) == [26, 27, 28, 29, 30] && e[1].stream(1) == [6, 7, 8, 9, 10])
        #expect(e[2].stream(0) == [21, 22, 23, 24, 25] && e[2].stream(1) == [11, 12, 13, 14, 15])
    }

    @Test func drawnOffsetsStayInD2LRanges() {
        var rng = SeededOrder(state: 9)
        for _ in 0..<200 {
            let s = EpochBatches.draw(.sequential, corpus: seq, batch: 2, steps: 5, rng: &rng)
            #expect((0...5).contains(s.offset))
            let r = EpochBatches.draw(.random, corpus: seq, batch: 2, steps: 5, rng: &rng)
            #expect((0..<5).contains(r.offset))
        }
    }

    @Test func timeMajorLayoutAndColumnSelection() {
        let e = EpochBatches.sequential(seq, batch: 2, steps: 5, offset: 0)
        #expect(Array(e[0].inputs.prefix(4)) == [0, 17, 1, 18])
        let right = e[1].selecting(columns: [1])
        #expect(right.batch == 1 && right.inputs == [22, 23, 24, 25, 26])
    }
}

@Suite("Tokenizers and vocabulary")
struct TokenizerTests {
    @Test func d2lCharTokensOfTheTimeMachine() throws {
        let path = try NamedDataset.named("timemachine").locate(dataDir: sharedDataDirectory(), download: false)
        let text = try readCorpus(path)
        let tokens = Tokenizer(kind: .char).tokenize(text)
        let vocab = Vocabulary(counting: tokens)
        // D2L 8.2: len(corpus), len(vocab) == (170580, 28).
        #expect(tokens.count == 170_580)
        #expect(vocab.count == 28)
        #expect(Array(vocab.tokens.prefix(5)) == ["<unk>", " ", "e", "t", "a"])
        #expect(tokens.prefix(20).joined() == "the time machine by ")
    }

    @Test func vocabularyTiesAndMinFreq() {
        let v = Vocabulary(counting: ["b", "a", "c", "a", "b", "d"], minFreq: 2, reserved: ["<pad>"])
        #expect(v.tokens == ["<unk>", "<pad>", "b", "a"])
        #expect(v.id("zzz") == 0 && v.id("a") == 3)
    }

    @Test func linesAddEndOfSentence() {
        let t = Tokenizer(kind: .lines)
        #expect(t.tokenize(" the cat \n\nsat\n") == ["the", "cat", "<eos>", "<eos>", "sat", "<eos>"])
        // A prefix to continue is an unfinished line: <eos> only after a newline; an empty one is no token at all.
        #expect(t.tokenizePrefix("the cat") == ["the", "cat"])
        #expect(t.tokenizePrefix("the cat\n") == ["the", "cat", "<eos>"])
        #expect(t.tokenizePrefix("") == [])
        #expect(Tokenizer(kind: .word).tokenizePrefix("the cat") == ["the", "cat"])
    }

    @Test func charRawKeepsEverything() {
        #expect(Tokenizer(kind: .charRaw).tokenize("Añ\n!") == ["A", "ñ", "\n", "!"])
    }

    @Test func wordLowercase() {
        #expect(Tokenizer(kind: .word, lowercase: true).tokenize("The  Cat\tsat") == ["the", "cat", "sat"])
    }

    @Test func bpeLearnsFrequentPairsAndRoundTrips() {
        let text = "low lower lowest low low newer newest new"
        let bpe = Tokenizer.learnBPE(from: text, merges: 10, lowercase: false)
        #expect(bpe.merges.first == ["l", "o"] || bpe.merges.first == ["o", "w"] || bpe.merges.first == ["e", "w"])
        let toks = bpe.tokenize(text)
        #expect(toks.count < text.replacingOccurrences(of: " ", with: "").count)
        #expect(bpe.detokenize(toks).trimmingCharacters(in: .whitespaces) == text)
        // Deterministic: learning twice gives the same merges.
        #expect(Tokenizer.learnBPE(from: text, merges: 10, lowercase: false) == bpe)
    }

    @Test func sha1MatchesKnownVectors() {
        #expect(sha1Hex(Array("abc".utf8)) == "a9993e364706816aba3e25717850c26c9cd0d89d")
        #expect(sha1Hex([]) == "da39a3ee5e6b4b0d3255bfef95601890afd80709")
    }
}

@Suite("Corpus errors")
struct CorpusErrorTests {
    func write(_ data: Data) -> String {
        let p = NSTemporaryDirectory() + "rnnlm-corpus-\(UUID().uuidString)"
        _ = FileManager.default.createFile(atPath: p, contents: data)
        return p
    }

    @Test func emptyBinaryMissingAndBadUTF8() {
        #expect(throws: CorpusError.self) { try readCorpus(write(Data())) }
        let bin = #expect(throws: CorpusError.self) { try readCorpus(write(Data([0x7F, 0x45, 0x4C, 0x46, 0, 1]))) }
        #expect(bin?.description.contains("binary") == true)
        let missing = #expect(throws: CorpusError.self) { try readCorpus("/nonexistent/corpus.txt") }
        #expect(missing?.description.contains("--corpus") == true)
        #expect(throws: CorpusError.self) { try readCorpus(write(Data([0x41, 0xFF, 0xFE, 0x41]))) }
    }

    @Test("Windows and old Mac line ends read as \\n, as Python's open() reads them: a CRLF file has its lines")
    func universalNewlinesAsPython() throws {
        let text = try readCorpus(write(Data("the cat\r\nsat on\rthe mat\n".utf8)))
        #expect(text == "the cat\nsat on\nthe mat\n")
        #expect(Tokenizer(kind: .lines).tokenize(text) == ["the", "cat", "<eos>", "sat", "on", "<eos>", "the", "mat", "<eos>"])
        let crlf = TranslationText.pairs(TranslationText.preprocess(try readCorpus(write(Data("Go.\tVa !\r\nHi.\tSalut !\r\n".utf8)))), count: 10)
        let lf = TranslationText.pairs(TranslationText.preprocess(try readCorpus(write(Data("Go.\tVa !\nHi.\tSalut !\n".utf8)))), count: 10)
        #expect(crlf.count == 2 && crlf.source == lf.source && crlf.target == lf.target)
    }

    @Test("A dataset nowhere on disk is downloaded into the cache (a plain file, and one taken out of a zip), checked, and kept; a download with the wrong SHA-1 leaves nothing behind")
    func downloadsIntoTheCache() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-download-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir + "/hub", withIntermediateDirectories: true)
        let text = "the time traveller\n"
        try text.write(toFile: dir + "/hub/tiny.txt", atomically: true, encoding: .utf8)
        let sha1 = sha1Hex(Array(text.utf8))
        let plain = NamedDataset(name: "tiny", fileName: "tiny.txt", url: "file://\(dir)/hub/tiny.txt", sha1: sha1,
                                 defaultTokenizer: .char)
        let got = try plain.locate(dataDir: nil, cache: dir + "/cache")
        #expect(got == dir + "/cache/tiny.txt")
        #expect(try String(contentsOfFile: got, encoding: .utf8) == text)
        // Found in the cache the second time, with no download.
        #expect(try plain.locate(dataDir: nil, download: false, cache: dir + "/cache") == got)

        let zip = Process()
        zip.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        zip.arguments = ["python3", "-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').write(sys.argv[2], 'pairs/tiny.txt')",
                         dir + "/hub/pairs.zip", dir + "/hub/tiny.txt"]
        try zip.run()
        zip.waitUntilExit()
        try #require(zip.terminationStatus == 0)
        let zipped = NamedDataset(name: "pairs", fileName: "pairs/tiny.txt", url: "file://\(dir)/hub/pairs.zip", sha1: sha1,
                                  defaultTokenizer: .word)
        let unzipped = try zipped.locate(dataDir: nil, cache: dir + "/cache")
        #expect(unzipped == dir + "/cache/pairs/tiny.txt")
        #expect(try String(contentsOfFile: unzipped, encoding: .utf8) == text)

        let wrong = NamedDataset(name: "wrong", fileName: "wrong.txt", url: "file://\(dir)/hub/tiny.txt",
                                 sha1: String(repeating: "0", count: 40), defaultTokenizer: .char)
        let e = #expect(throws: CorpusError.self) { try wrong.locate(dataDir: nil, cache: dir + "/cache") }
        #expect(e?.description.contains("SHA-1") == true)
        let left = try FileManager.default.contentsOfDirectory(atPath: dir + "/cache")
        #expect(Set(left) == ["tiny.txt", "pairs"], "the failed download left \(left)")
        let missing = NamedDataset(name: "gone", fileName: "gone.txt", url: "file://\(dir)/hub/gone.txt", sha1: sha1,
                                   defaultTokenizer: .char)
        let offline = #expect(throws: CorpusError.self) { try missing.locate(dataDir: nil, cache: dir + "/cache") }
        #expect(offline?.description.contains("--data-dir") == true)
    }

    @Test func checksumMismatchNamesTheFix() throws {
        let dir = NSTemporaryDirectory() + "rnnlm-data-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "not the time machine".write(toFile: dir + "/timemachine.txt", atomically: true, encoding: .utf8)
        let e = #expect(throws: CorpusError.self) { try NamedDataset.named("timemachine").locate(dataDir: dir, download: false) }
        #expect(e?.description.contains("SHA-1") == true)
        #expect(throws: CorpusError.self) { try NamedDataset.named("wikitext") }
    }
}
