import Foundation
import Testing
import RNNText

/// The specification of BPE learning: the straightforward algorithm that recounts every pair after every merge
/// (rnnlm's learner before it became incremental, kept here verbatim as the reference). `Tokenizer.learnBPE`
/// must learn exactly these merges.
func referenceLearnBPE(from text: String, merges mergeCount: Int, lowercase: Bool) -> [[String]] {
    var wordCounts: [String: Int] = [:]
    for w in (lowercase ? text.lowercased() : text).split(whereSeparator: { $0.isWhitespace }) {
        wordCounts[String(w), default: 0] += 1
    }
    var words: [([String], Int)] = wordCounts.keys.sorted().map { w in
        (w.unicodeScalars.map { String($0) } + [Tokenizer.endOfWord], wordCounts[w]!)
    }
    var merges: [[String]] = []
    for _ in 0..<mergeCount {
        var pairCounts: [String: Int] = [:]
        var pairOrder: [String: Int] = [:]
        var pairs: [String: (String, String)] = [:]
        for (symbols, n) in words where symbols.count > 1 {
            for i in 0..<(symbols.count - 1) {
                let key = symbols[i] + "\u{0}" + symbols[i + 1]
                if pairCounts[key] == nil {
                    pairOrder[key] = pairOrder.count; pairs[key] = (symbols[i], symbols[i + 1])
                }
                pairCounts[key, default: 0] += n
            }
        }
        guard let best = pairCounts.max(by: { a, b in
            a.value != b.value ? a.value < b.value : pairOrder[a.key]! > pairOrder[b.key]!
        }), best.value >= 2 else { break }
        let (l, r) = pairs[best.key]!
        merges.append([l, r])
        words = words.map { (referenceApplyMerge($0.0, l, r), $0.1) }
    }
    return merges
}

/// The old learner's merge step: joins non-overlapping (l, r) from left to right.
func referenceApplyMerge(_ symbols: [String], _ l: String, _ r: String) -> [String] {
    var out: [String] = []
    out.reserveCapacity(symbols.count)
    var i = 0
    while i < symbols.count {
        if i + 1 < symbols.count && symbols[i] == l && symbols[i + 1] == r {
            out.append(l + r); i += 2
        } else {
            out.append(symbols[i]); i += 1
        }
    }
    return out
}

/// SplitMix64 (also used by WordSplitTests), so the generated texts are the same on every run and platform.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

@Suite("BPE learner")
struct BPELearnerTests {
    func expectSameAsReference(_ text: String, merges: Int, lowercase: Bool = false,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        let learned = Tokenizer.learnBPE(from: text, merges: merges, lowercase: lowercase).merges
        let reference = referenceLearnBPE(from: text, merges: merges, lowercase: lowercase)
        #expect(learned.count == reference.count, "\(learned.count) merges vs the reference's \(reference.count)",
                sourceLocation: sourceLocation)
        if let i = (0..<min(learned.count, reference.count)).first(where: { learned[$0] != reference[$0] }) {
            let sample = text.prefix(80).debugDescription
            Issue.record("merge \(i) is \(learned[i]), the reference's is \(reference[i]) (text: \(sample))",
                         sourceLocation: sourceLocation)
        }
    }

    @Test func edgeCases() {
        expectSameAsReference("", merges: 10)
        expectSameAsReference(" \n\t ", merges: 10)
        expectSameAsReference("hello", merges: 10)  // every pair occurs once: nothing to learn
        expectSameAsReference("hello hello", merges: 0)
        expectSameAsReference("hello hello", merges: 1_000)  // more merges asked for than there are
        expectSameAsReference("a a a b", merges: 10)
        #expect(Tokenizer.learnBPE(from: "hello", merges: 10, lowercase: false).merges.isEmpty)
        #expect(Tokenizer.learnBPE(from: "hello hello", merges: 1_000, lowercase: false).merges.count == 5)
    }

    @Test func overlappingRepeats() {
        // (a, a) occurs 3 times in `aaaa` but merges twice, left to right: `aa aa`; in `aaa`, `aa a`.
        expectSameAsReference("aaaa", merges: 10)
        expectSameAsReference("aaa aaa", merges: 10)
        expectSameAsReference("aaaa aaaaa aa aaaaaaa a", merges: 20)
        expectSameAsReference("abababab abab aba bab", merges: 20)
        expectSameAsReference("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa aaaaaaaaaaaaaaaaaaaaaaaa", merges: 50)
        let aaa = Tokenizer.learnBPE(from: "aaa aaa", merges: 10, lowercase: false).merges
        #expect(aaa == [["a", "a"], ["aa", "a"], ["aaa", "</w>"]])
    }

    @Test func tiesGoToTheFirstOccurrenceInSortedWords() {
        // Every pair occurs twice; the first in sorted order ("ba" < "dc") is (b, a).
        #expect(Tokenizer.learnBPE(from: "dc ba dc ba", merges: 1, lowercase: false).merges == [["b", "a"]])
        // Within a word, the leftmost pair first.
        #expect(Tokenizer.learnBPE(from: "xyz xyz", merges: 1, lowercase: false).merges == [["x", "y"]])
        // A count beats order.
        #expect(Tokenizer.learnBPE(from: "ab cd cd", merges: 1, lowercase: false).merges == [["c", "d"]])
        expectSameAsReference("dc ba dc ba zy zy zy ab ab", merges: 20)
        expectSameAsReference("xyz zyx xyz zyx yzx yzx", merges: 20)
    }

    @Test func firstOccurrenceMovesWhenItIsMergedAway() {
        // (b, c)'s first occurrence is in "abc"; merging (a, b) removes it, so the tie with (c, d) is decided by
        // later words.
        expectSameAsReference("abc abc bcd bcd cde cde ab ab ab", merges: 20)
        expectSameAsReference("abcd abcd abcd bcda bcda cdab cdab dabc dabc", merges: 30)
    }

    @Test func unicodeAndCanonicalEquivalence() {
        // Precomposed and decomposed é are the same word to Swift; "Å" (U+212B) equals "Å" (U+00C5) as a symbol.
        expectSameAsReference("café cafe\u{301} café naïve naïve e\u{301}e\u{301} éé", merges: 30)
        expectSameAsReference("\u{212B}b \u{C5}b \u{212B}b A\u{30A}b", merges: 20)
        // The end-of-word marker spelled out in the text merges into a symbol equal to the marker itself.
        expectSameAsReference("a</w> a</w> </w></w> b</w>b", merges: 40)
        expectSameAsReference("日本語 日本 本語 語日本 😀😀 😀a a😀", merges: 30)
    }

    @Test func lowercaseFolding() {
        expectSameAsReference("The the THE tHe Them them", merges: 20, lowercase: true)
        expectSameAsReference("The the THE tHe Them them", merges: 20, lowercase: false)
    }

    @Test func randomTextsOverSmallAlphabets() {
        // Small alphabets give many ties, repeats and merges that touch each other; every merge is checked.
        var rng = SplitMix64(state: 16)
        let alphabets: [[String]] = [
            ["a", "b"], ["a", "b", "c"], ["x", "y", "z", "w", "é", "e\u{301}"], ["a", "ab", "b", "</w>"],
        ]
        for trial in 0..<60 {
            let alphabet = alphabets[trial % alphabets.count]
            var words: [String] = []
            for _ in 0..<(1 + rng.below(40)) {
                words.append((0..<(1 + rng.below(9))).map { _ in alphabet[rng.below(alphabet.count)] }.joined())
            }
            expectSameAsReference(words.joined(separator: rng.below(2) == 0 ? " " : "\n"), merges: 1 + rng.below(60))
        }
    }

    @Test func realTexts() throws {
        let timeMachine = try readCorpus(NamedDataset.named("timemachine").embeddedPath!)
        expectSameAsReference(String(timeMachine.prefix(60_000)), merges: 300, lowercase: true)
        let shakespeare = try readCorpus(sharedDataDirectory() + "/tinyshakespeare.txt")
        expectSameAsReference(String(shakespeare.prefix(40_000)), merges: 400)
    }

    @Test func deterministicAndIndependentOfWordOrder() throws {
        let text = String(try readCorpus(NamedDataset.named("timemachine").embeddedPath!).prefix(30_000))
        let a = Tokenizer.learnBPE(from: text, merges: 200, lowercase: false)
        #expect(Tokenizer.learnBPE(from: text, merges: 200, lowercase: false) == a)
        // The rule depends on the words and their counts only, so their order in the text does not matter.
        let reversed = Tokenizer.splitWords(text, lowercase: false).reversed().joined(separator: " ")
        #expect(Tokenizer.learnBPE(from: reversed, merges: 200, lowercase: false) == a)
        #expect(a.merges.count == 200)
    }
}
