import Foundation
import Testing
import RNNText

/// The specification of BPE encoding: rnnlm's encoder before it worked on interned ids, kept verbatim as the
/// reference. `Tokenizer.tokenize` with `.bpe` must give exactly these tokens.
func referenceEncodeBPE(_ text: String, merges: [[String]], lowercase: Bool) -> [String] {
    var ranks: [String: Int] = [:]
    for (i, m) in merges.enumerated() { ranks[m[0] + "\u{0}" + m[1]] = i }
    var cache: [String: [String]] = [:]
    var out: [String] = []
    for w in (lowercase ? text.lowercased() : text).split(whereSeparator: { $0.isWhitespace }).map(String.init) {
        if let c = cache[w] { out += c; continue }
        var symbols = w.unicodeScalars.map { String($0) } + [Tokenizer.endOfWord]
        while symbols.count > 1 {
            var best: (rank: Int, at: Int)?
            for i in 0..<(symbols.count - 1) {
                if let r = ranks[symbols[i] + "\u{0}" + symbols[i + 1]], best == nil || r < best!.rank { best = (r, i) }
            }
            guard let b = best else { break }
            symbols = referenceApplyMerge(symbols, merges[b.rank][0], merges[b.rank][1])
        }
        cache[w] = symbols
        out += symbols
    }
    return out
}

@Suite("BPE encoder")
struct BPEEncoderTests {
    func expectSameAsReference(_ text: String, merges: [[String]], lowercase: Bool = false,
                               sourceLocation: SourceLocation = #_sourceLocation) {
        let tokens = Tokenizer(kind: .bpe, lowercase: lowercase, merges: merges).tokenize(text)
        let reference = referenceEncodeBPE(text, merges: merges, lowercase: lowercase)
        // Compared scalar by scalar: `==` on strings would let canonically equivalent spellings pass.
        #expect(tokens.map { Array($0.unicodeScalars) } == reference.map { Array($0.unicodeScalars) },
                "\(text.prefix(60).debugDescription)", sourceLocation: sourceLocation)
    }

    @Test func learnedMergesOnRealText() throws {
        let text = String(try readCorpus(sharedDataDirectory() + "/tinyshakespeare.txt").prefix(200_000))
        for (count, lowercase) in [(0, false), (50, false), (1_000, true)] {
            let merges = Tokenizer.learnBPE(from: text, merges: count, lowercase: lowercase).merges
            expectSameAsReference(text, merges: merges, lowercase: lowercase)
            // Text the merges were not learned from: other words, other characters.
            expectSameAsReference("Zebras über naïve façades: 日本語, 😀!", merges: merges, lowercase: lowercase)
        }
    }

    @Test func handWrittenMerges() {
        // Overlapping pairs, merges that never apply, a merge listed twice (its later rank counts), two merges
        // giving the same symbol, and the end-of-word marker spelled out in the text.
        let merges = [["a", "a"], ["aa", "a"], ["b", "c"], ["a", "bc"], ["ab", "c"], ["x", "y"], ["a", "b"],
                      ["a", "a"], ["abc", "</w>"], ["<", "/"], ["</", "w"], ["</w", ">"], ["a", "</w>"]]
        for text in ["aaaa aaa aa a", "abc abcabc bcbc", "a</w> </w></w>", "", "  \n", "aaaaaaaaaaaaa xyz"] {
            expectSameAsReference(text, merges: merges)
        }
        // (a, b) ranks after (b, c), where it is listed again.
        let twice = [["a", "b"], ["b", "c"], ["a", "b"]]
        #expect(Tokenizer(kind: .bpe, merges: twice).tokenize("abc") == ["a", "bc", "</w>"])
        expectSameAsReference("abc", merges: twice)
    }

    @Test func canonicallyEquivalentSpellings() {
        // The merge names U+00C5 and a decomposed é; the text uses U+212B and a precomposed é. Symbols compare as
        // strings, so the merges apply, and the tokens spell the text's unmerged symbols as the text does.
        let merges = [["\u{C5}", "b"], ["e\u{301}", "t"], ["\u{212B}", "x"], ["q", "\u{301}"]]
        expectSameAsReference("\u{212B}b \u{C5}b \u{212B}x ét e\u{301}t q\u{301} \u{212B}", merges: merges)
    }

    @Test func randomWordsAndMerges() {
        var rng = SplitMix64(state: 3)
        let alphabet = ["a", "b", "c", "</w>"]
        for _ in 0..<100 {
            let words = (0..<(1 + rng.below(20))).map { _ in
                (0..<(1 + rng.below(8))).map { _ in alphabet[rng.below(alphabet.count)] }.joined()
            }
            let text = words.joined(separator: " ")
            // Learned merges, then random ones (which may repeat, or name symbols no word holds).
            let learned = Tokenizer.learnBPE(from: text, merges: rng.below(30), lowercase: false).merges
            expectSameAsReference(text, merges: learned)
            let symbols = ["a", "b", "c", "ab", "ba", "aa", "bc", "abc", "</w>", "c</w>"]
            let merges = (0..<rng.below(25)).map { _ in
                [symbols[rng.below(symbols.count)], symbols[rng.below(symbols.count)]]
            }
            expectSameAsReference(text, merges: merges)
        }
    }
}
