/// Splits words into BPE symbols with learned merges: the lowest-ranked merge present in the word is applied
/// (to all its occurrences, left to right), and again, until none applies. A merge listed twice ranks at its
/// later place. Symbols are compared as Swift strings; the work is done on interned ids.
struct BPEEncoder {
    private var ids: [String: Int32] = [:]
    /// (left id, right id) → rank.
    private var ranks: [UInt64: Int32] = [:]
    private var left: [Int32] = [], right: [Int32] = [], merged: [Int32] = []
    private var mergedText: [String] = []
    private var endOfWord: Int32 = 0

    init(merges: [[String]]) {
        for (i, m) in merges.enumerated() {
            precondition(m.count == 2, "BPE merge \(i) has \(m.count) parts, not 2: \(m)")
            let (l, r) = (intern(m[0]), intern(m[1]))
            left.append(l); right.append(r)
            ranks[Self.key(l, r)] = Int32(i)
        }
        for m in merges {
            mergedText.append(m[0] + m[1])
            merged.append(intern(m[0] + m[1]))
        }
        endOfWord = intern(Tokenizer.endOfWord)
    }

    private static func key(_ l: Int32, _ r: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: l)) << 32 | UInt64(UInt32(bitPattern: r))
    }

    private mutating func intern(_ s: String) -> Int32 {
        if let id = ids[s] { return id }
        let id = Int32(ids.count)
        ids[s] = id
        return id
    }

    /// The symbols of `word` followed by the end-of-word marker.
    func encode(_ word: Substring) -> [String] {
        var symbols: [Int32] = [], texts: [String] = []
        for u in word.unicodeScalars {
            let s = String(u)
            symbols.append(ids[s] ?? -1)  // -1: a scalar no merge names, which no merge can join
            texts.append(s)
        }
        symbols.append(endOfWord); texts.append(Tokenizer.endOfWord)
        while symbols.count > 1 {
            var best = Int32.max
            for i in 0..<(symbols.count - 1) {
                if let r = ranks[Self.key(symbols[i], symbols[i + 1])], r < best { best = r }
            }
            if best == .max { break }
            let (l, r, n) = (left[Int(best)], right[Int(best)], merged[Int(best)])
            var out = 0, i = 0
            while i < symbols.count {
                if i + 1 < symbols.count && symbols[i] == l && symbols[i + 1] == r {
                    symbols[out] = n; texts[out] = mergedText[Int(best)]
                    i += 2
                } else {
                    symbols[out] = symbols[i]; texts[out] = texts[i]
                    i += 1
                }
                out += 1
            }
            symbols.removeLast(symbols.count - out); texts.removeLast(texts.count - out)
        }
        return texts
    }
}
