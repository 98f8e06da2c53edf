import Testing
import RNNText

@Suite("Word splitting")
struct WordSplitTests {
    /// What `Tokenizer.splitWords` must return: the words between `Character`s that are whitespace.
    func byCharacters(_ text: String) -> [String] {
        text.split(whereSeparator: { $0.isWhitespace }).map(String.init)
    }

    @Test func clustersAroundWhitespace() {
        // A combining mark after a space belongs to the (whitespace) space; a prepended concatenation mark makes
        // the following space part of a word; CR LF is one character.
        let texts = ["a \u{301}b", "a\u{600} b", "x\r\ny", "\r\n\r\n", " \u{301}", "\u{301} a",
                     "é e\u{301} \u{85}a\u{2028}b", "a\u{A0}b\u{202F}!\u{2009}c", "👩‍👩‍👧 🇫🇷🇩🇪 x",
                     "\u{1C}a\u{1F}", "", "   ", "abc",
                     "\u{1100}\u{1161} \u{AC00}"]
        for text in texts {
            #expect(Tokenizer.splitWords(text, lowercase: false) == byCharacters(text), "\(text.debugDescription)")
        }
    }

    @Test func randomTexts() {
        var rng = SplitMix64(state: 7)
        let pieces = ["a", "B", "z", " ", "  ", "\t", "\n", "\r", "\r\n", "\u{0B}", "\u{0C}", "\u{1C}", "\u{85}",
                      "\u{A0}", "\u{2009}", "\u{2028}", "\u{202F}", "\u{3000}", "\u{301}", "\u{200D}", "\u{600}",
                      "é", "ß", "日", "😀", "🇫", "\u{1F3FB}", "\u{1100}", "\u{1161}", "\u{AC00}", "\u{0915}",
                      "\u{094D}", "\u{200C}"]
        for _ in 0..<3_000 {
            let text = (0..<rng.below(14)).map { _ in pieces[rng.below(pieces.count)] }.joined()
            #expect(Tokenizer.splitWords(text, lowercase: false) == byCharacters(text), "\(text.debugDescription)")
            #expect(Tokenizer.splitWords(text, lowercase: true) == byCharacters(text.lowercased()),
                    "\(text.debugDescription)")
        }
    }
}
