// Sentence pairs for translation, D2L's "machine translation and the dataset" (fra-eng): preprocessing,
// reading the first N lines, vocabularies per side, and the padded `[N, T]` arrays with valid lengths.

/// Source and target sentences, as token lists.
public struct SentencePairs: Equatable, Sendable {
    public var source: [[String]]
    public var target: [[String]]
    /// Lines in the range read that were not one `source<TAB>target` pair (skipped, as D2L does).
    public var skipped: Int
    /// The file line (from 1) of each pair, for messages; empty when the pairs did not come from a file.
    public var lines: [Int]
    public var count: Int { source.count }
    public init(source: [[String]], target: [[String]], skipped: Int = 0, lines: [Int] = []) {
        self.source = source; self.target = target; self.skipped = skipped; self.lines = lines
    }

    /// Refuses pairs with no text on one side (a line `Go.<TAB>`), naming the first, in the file at `path`.
    public func requireTextOnBothSides(path: String) throws(CorpusError) {
        let empty = { (s: [String]) in s.allSatisfy(\.isEmpty) }
        if let i = source.indices.first(where: { empty(source[$0]) || empty(target[$0]) }) {
            let at = i < lines.count ? "line \(lines[i]) (pair \(i + 1))" : "pair \(i + 1)"
            throw CorpusError("\(path): \(at) has an empty \(empty(source[i]) ? "source" : "target") side; every line must be `source<TAB>target` with text on both sides")
        }
    }
}

/// D2L's preprocessing and pair reading for `source<TAB>target` files such as `fra-eng/fra.txt`.
public enum TranslationText {
    /// The reserved tokens of both vocabularies, after `<unk>` (index 0): `<pad>` 1, `<bos>` 2, `<eos>` 3.
    public static let pad = "<pad>", bos = "<bos>", eos = "<eos>"
    public static let reserved = [pad, bos, eos]

    /// D2L's `preprocess_nmt`: U+202F and U+00A0 become spaces, the text is lowercased, and a space is inserted
    /// before `,` `.` `!` `?` when the character before is not a space.
    public static func preprocess(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        var previous: Unicode.Scalar?
        for s in text.replacingNonBreakingSpaces().lowercased().unicodeScalars {
            if let p = previous, ",.!?".unicodeScalars.contains(s), p != " " { out.append(" ") }
            out.append(s)
            previous = s
        }
        return String(out)
    }

    /// The pairs of lines `first … first + count` of a preprocessed text (both ends included, as D2L's loop,
    /// so `count` 600 reads 601 lines), each side split on single spaces. Lines that are not exactly one TAB
    /// between two sides are skipped and counted.
    public static func pairs(_ text: String, first: Int = 0, count: Int) -> SentencePairs {
        var result = SentencePairs(source: [], target: [])
        var index = 0
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        for line in all {
            defer { index += 1 }
            if index < first { continue }
            if index > first + count { break }
            // The empty "line" after a final newline is no line of the file.
            if line.isEmpty && index == all.count - 1 { break }
            let parts = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard parts.count == 2 else { result.skipped += 1; continue }
            result.source.append(parts[0].split(separator: " ", omittingEmptySubsequences: false).map(String.init))
            result.target.append(parts[1].split(separator: " ", omittingEmptySubsequences: false).map(String.init))
            result.lines.append(index + 1)
        }
        return result
    }

    /// A side's vocabulary: `<unk>`, `<pad>`, `<bos>`, `<eos>`, then tokens seen at least `minFreq` times by
    /// falling frequency, ties in order of first appearance.
    public static func vocabulary(_ sentences: [[String]], minFreq: Int) -> Vocabulary {
        Vocabulary(counting: sentences.flatMap { $0 }, minFreq: minFreq, reserved: reserved)
    }
}

/// One side of a set of pairs as token ids: every sentence gets `<eos>`, then is cut or padded with `<pad>` to
/// `steps` tokens; `lengths` counts each row's non-pad tokens.
public struct PaddedSentences: Equatable, Sendable {
    /// `[N, T]` row-major token ids.
    public var ids: [Int32]
    public var lengths: [Int32]
    public let steps: Int
    public var count: Int { lengths.count }

    public init(_ sentences: [[String]], vocabulary v: Vocabulary, steps: Int) {
        precondition(steps >= 1, "sentences need at least one step")
        self.steps = steps
        let pad = v.id(TranslationText.pad), eos = v.id(TranslationText.eos)
        ids = []
        ids.reserveCapacity(sentences.count * steps)
        lengths = []
        for s in sentences {
            var row = Array((v.ids(s) + [eos]).prefix(steps))
            lengths.append(Int32(row.count))
            row += [Int32](repeating: pad, count: steps - row.count)
            ids += row
        }
    }

    /// Row `i`'s `steps` ids.
    public func row(_ i: Int) -> ArraySlice<Int32> { ids[(i * steps)..<((i + 1) * steps)] }
}

extension String {
    /// U+202F (narrow no-break space) and U+00A0 (no-break space) as plain spaces.
    func replacingNonBreakingSpaces() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\u{202F}" || $0 == "\u{00A0}" ? " " : $0 }))
    }
}
