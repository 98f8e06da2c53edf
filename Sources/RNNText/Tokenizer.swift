import Foundation

/// How text becomes tokens. Stored in checkpoints, so evaluation and generation tokenize as training did.
public enum TokenizerKind: String, Codable, CaseIterable, Sendable {
    /// D2L's `read_time_machine` + char tokens: every run of non-letters becomes one space, lines are
    /// stripped and lowercased, and their characters are concatenated (no separator between lines).
    case char
    /// Every Unicode scalar kept as it is, newlines included.
    case charRaw = "char-raw"
    /// Whitespace-separated words (lowercased with `lowercase`).
    case word
    /// Pre-tokenized text (e.g. Penn Treebank): words split on spaces, `<eos>` at each line end.
    case lines
    /// Byte-pair encoding learned from the training text (`merges` merges); words end with `</w>`.
    case bpe
}

public struct Tokenizer: Codable, Equatable, Sendable {
    public let kind: TokenizerKind
    public var lowercase: Bool
    /// BPE merges, in the order they were learned.
    public var merges: [[String]]

    public static let endOfSentence = "<eos>"
    public static let endOfWord = "</w>"

    public init(kind: TokenizerKind, lowercase: Bool = false, merges: [[String]] = []) {
        self.kind = kind; self.lowercase = lowercase; self.merges = merges
    }

    /// Learns `mergeCount` BPE merges from `text` (most frequent adjacent pair first; ties by the pair's
    /// first occurrence among the sorted word list, so learning is deterministic). Stops early when no pair
    /// occurs twice. Time grows with the words each merge changes, not with the corpus (`BPELearner`).
    public static func learnBPE(from text: String, merges mergeCount: Int, lowercase: Bool) -> Tokenizer {
        precondition(mergeCount >= 0, "learnBPE: the number of merges must be 0 or more, got \(mergeCount)")
        var wordCounts: [String: Int] = [:]
        forEachWord(in: lowercase ? text.lowercased() : text) { wordCounts[String($0), default: 0] += 1 }
        var learner = BPELearner(wordCounts: wordCounts)
        return Tokenizer(kind: .bpe, lowercase: lowercase, merges: learner.learn(mergeCount))
    }

    /// The whitespace-separated words of `text` (separators: `Character.isWhitespace`), lowercased with `lowercase`.
    public static func splitWords(_ text: String, lowercase: Bool) -> [String] {
        var words: [String] = []
        forEachWord(in: lowercase ? text.lowercased() : text) { words.append(String($0)) }
        return words
    }

    /// D2L's line cleaning: `re.sub('[^A-Za-z]+', ' ', line).strip().lower()`.
    static func d2lClean(_ line: Substring) -> String {
        var out = ""
        var pendingSpace = false
        for u in line.unicodeScalars {
            let isLetter = (u >= "A" && u <= "Z") || (u >= "a" && u <= "z")
            if isLetter {
                if pendingSpace && !out.isEmpty { out.append(" ") }
                pendingSpace = false
                out.unicodeScalars.append(u.properties.lowercaseMapping.unicodeScalars.first!)
            } else {
                pendingSpace = true
            }
        }
        return out
    }

    /// The token strings of a prefix to continue: as `tokenize`, except that the `lines` tokenizer ends the last line
    /// with `<eos>` only when the prefix ends with a newline (a prefix is usually an unfinished line, and an empty
    /// prefix gives no token at all).
    public func tokenizePrefix(_ text: String) -> [String] {
        var out = tokenize(text)
        if kind == .lines && !text.hasSuffix("\n") && out.last == Self.endOfSentence { out.removeLast() }
        return out
    }

    /// The token strings of `text`.
    public func tokenize(_ text: String) -> [String] {
        switch kind {
        case .char:
            var out: [String] = []
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                for u in Self.d2lClean(line).unicodeScalars { out.append(String(u)) }
            }
            return out
        case .charRaw:
            return text.unicodeScalars.map { String($0) }
        case .word:
            return Self.splitWords(text, lowercase: lowercase)
        case .lines:
            // As PyTorch's word_language_model: for each line, `line.split() + ['<eos>']`.
            var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
            if text.hasSuffix("\n") { lines.removeLast() }
            var out: [String] = []
            for line in lines {
                out += Self.splitWords(String(line), lowercase: lowercase)
                out.append(Self.endOfSentence)
            }
            return out
        case .bpe:
            let encoder = BPEEncoder(merges: merges)
            var cache: [Substring: [String]] = [:]
            var out: [String] = []
            forEachWord(in: lowercase ? text.lowercased() : text) { w in
                if let c = cache[w] { out += c; return }
                let symbols = encoder.encode(w)
                cache[w] = symbols
                out += symbols
            }
            return out
        }
    }

    /// Text from tokens (inverse of `tokenize` up to whitespace).
    public func detokenize(_ tokens: [String]) -> String {
        switch kind {
        case .char, .charRaw:
            return tokens.joined()
        case .word:
            return tokens.joined(separator: " ")
        case .lines:
            // Words apart by one space, `<eos>` a line end with no space on either side (each token's piece depends
            // on the one before it alone, so generated text can be written as it grows).
            var out = "", previous: String?
            for t in tokens {
                if t == Self.endOfSentence {
                    out += "\n"
                } else {
                    if let p = previous, p != Self.endOfSentence { out += " " }
                    out += t
                }
                previous = t
            }
            return out
        case .bpe:
            return tokens.joined().replacingOccurrences(of: Self.endOfWord, with: " ")
        }
    }
}
