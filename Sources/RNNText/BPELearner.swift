/// Incremental byte-pair-encoding learner (Sennrich et al., 2016), as fast tokenizer trainers run it: each
/// distinct word is kept once with its count, every adjacent symbol pair's count is kept in a table with the
/// words it occurs in, and a merge touches only those words and the pairs around its sites. The next merge
/// comes from a max-heap with lazy deletion, so a merge costs time in proportion to the words it changes
/// rather than to the corpus.
///
/// It learns exactly what the straightforward algorithm (recount every pair after every merge) learns:
/// - the most frequent pair is merged next, and the learner stops when no pair occurs twice;
/// - ties go to the pair whose first occurrence comes first when the words are scanned in sorted order, each
///   from left to right (`Tokenizer.learnBPE`'s documented rule);
/// - a merge joins non-overlapping occurrences from left to right, and every adjacent pair is counted, so
///   `a a a` counts (a, a) twice and merges to `aa a`;
/// - symbols are compared as Swift strings (canonical equivalence), so a merge whose result is equal to an
///   existing symbol produces that symbol.
/// (The straightforward version keyed a pair by its two symbols joined with NUL, which confuses ("a\0", "b")
/// with ("a", "\0b"); here pairs are pairs of ids. Only text holding NUL can tell, and `readCorpus` refuses it.)
///
/// The tie-break is kept up to date without rescanning: a pair's first occurrence is the pair of (index of
/// the word in sorted order, scalar offset of the occurrence in the word), which does not move when other
/// merges reshape the word. The table holds a lower bound of it that is exact unless that very occurrence
/// was merged away; an inexact bound is made exact (by looking through the pair's words) only when the pair
/// reaches the top of the heap.
struct BPELearner {
    // Symbols: interned strings. Ids are dense, in order of first appearance.
    private var symbolText: [String] = []
    private var symbolIDs: [String: Int32] = [:]

    // Distinct words in sorted order, flattened: word `w` is `symbols[start[w] ..< start[w] + length[w]]`,
    // and `offsets` holds the scalar offset in the word at which each of those symbols begins.
    private var symbols: [Int32] = []
    private var offsets: [UInt32] = []
    private var start: [Int] = []
    private var length: [Int] = []
    private var count: [Int] = []
    /// The merge that last visited each word (so a word listed twice for a pair is merged once).
    private var visited: [Int] = []

    // Pairs of symbols, by id.
    private var pairIDs: [UInt64: Int32] = [:]
    private var left: [Int32] = []
    private var right: [Int32] = []
    private var pairCount: [Int] = []
    /// A lower bound of the pair's first occurrence, `word << 32 | offset`; exact where `firstIsExact`.
    private var first: [UInt64] = []
    private var firstIsExact: [Bool] = []
    /// The words the pair has occurred in (appended to, never pruned; a word may no longer hold the pair).
    private var words: [[Int32]] = []
    /// The merge step in which the pair last gained an occurrence (its heap entry must then be renewed).
    private var gainedAt: [Int] = []
    private var gained: [Int32] = []

    private var heap = PairHeap()
    private var step = 0

    /// Builds the initial state from each distinct word's count. Every word must be non-empty.
    init(wordCounts: [String: Int]) {
        precondition(wordCounts.count < Int(UInt32.max), "BPE: too many distinct words (\(wordCounts.count))")
        var scalarIDs: [UInt32: Int32] = [:]
        let endOfWord = intern(Tokenizer.endOfWord)
        for word in wordCounts.keys.sorted() {
            start.append(symbols.count)
            var offset: UInt32 = 0
            for u in word.unicodeScalars {
                let id: Int32
                if let known = scalarIDs[u.value] {
                    id = known
                } else {
                    id = intern(String(u)); scalarIDs[u.value] = id
                }
                symbols.append(id); offsets.append(offset)
                offset += 1
            }
            precondition(offset > 0 && offset < UInt32.max, "BPE: a word must have 1 to 2³² − 2 scalars")
            symbols.append(endOfWord); offsets.append(offset)
            length.append(symbols.count - start.last!)
            count.append(wordCounts[word]!)
        }
        visited = [Int](repeating: -1, count: start.count)
        for w in 0..<start.count {
            let s = start[w]
            for i in s..<(s + length[w] - 1) {
                add(symbols[i], symbols[i + 1], word: w, offset: offsets[i], count[w])
            }
        }
        for p in gained where pairCount[Int(p)] >= 2 { heap.push(pairCount[Int(p)], first[Int(p)], p) }
        gained.removeAll()
    }

    /// Learns up to `mergeCount` merges, in order; fewer when no pair occurs twice any more.
    mutating func learn(_ mergeCount: Int) -> [[String]] {
        precondition(mergeCount >= 0, "BPE: the number of merges must be 0 or more, got \(mergeCount)")
        var merges: [[String]] = []
        while merges.count < mergeCount, let p = nextPair() {
            let (a, b) = (left[Int(p)], right[Int(p)])
            merges.append([symbolText[Int(a)], symbolText[Int(b)]])
            merge(p, into: intern(symbolText[Int(a)] + symbolText[Int(b)]))
        }
        return merges
    }

    private mutating func intern(_ s: String) -> Int32 {
        if let id = symbolIDs[s] { return id }
        let id = Int32(symbolText.count)
        symbolText.append(s); symbolIDs[s] = id
        return id
    }

    /// The most frequent pair occurring at least twice (ties: first occurrence first), or nil.
    private mutating func nextPair() -> Int32? {
        while let e = heap.pop() {
            let p = Int(e.pair), n = pairCount[p]
            // Entries are never updated in place: an entry whose figures differ from the table is either renewed
            // (it overstates the pair, which lost occurrences) or dropped (a newer entry exists).
            if n < 2 || e.count < n { continue }
            if e.count > n || e.first < first[p] { heap.push(n, first[p], e.pair); continue }
            if e.first > first[p] { continue }
            if !firstIsExact[p] {
                first[p] = firstOccurrence(p); firstIsExact[p] = true
                if first[p] != e.first { heap.push(n, first[p], e.pair); continue }
            }
            return e.pair
        }
        return nil
    }

    /// The pair's first occurrence, by looking through the words it was recorded in.
    private func firstOccurrence(_ p: Int) -> UInt64 {
        let (a, b) = (left[p], right[p])
        var best = UInt64.max
        for w32 in words[p] where UInt64(w32) < best >> 32 {
            let w = Int(w32), s = start[w]
            for i in s..<(s + length[w] - 1) where symbols[i] == a && symbols[i + 1] == b {
                best = UInt64(w32) << 32 | UInt64(offsets[i])
                break
            }
        }
        precondition(best != .max, "BPE: pair counted but not found (internal error)")
        return best
    }

    /// Replaces every occurrence of pair `p` by symbol `n`, updating the counts of the pairs around each site.
    private mutating func merge(_ p: Int32, into n: Int32) {
        step += 1
        let (a, b) = (left[Int(p)], right[Int(p)])
        let listed = words[Int(p)]
        words[Int(p)] = []
        for w32 in listed where visited[Int(w32)] != step {
            let w = Int(w32)
            visited[w] = step
            let s = start[w], end = s + length[w], c = count[w]
            var r = s, out = s
            while r < end {
                if r + 1 < end && symbols[r] == a && symbols[r + 1] == b {
                    let offset = offsets[r]
                    if out > s {
                        // The symbol before the site, possibly the result of the previous site in this word.
                        let x = symbols[out - 1], xOffset = offsets[out - 1]
                        remove(x, a, word: w, offset: xOffset, c)
                        add(x, n, word: w, offset: xOffset, c)
                    }
                    remove(a, b, word: w, offset: offset, c)
                    if r + 2 < end {
                        let y = symbols[r + 2]
                        remove(b, y, word: w, offset: offsets[r + 1], c)
                        add(n, y, word: w, offset: offset, c)
                    }
                    symbols[out] = n; offsets[out] = offset
                    r += 2
                } else {
                    symbols[out] = symbols[r]; offsets[out] = offsets[r]
                    r += 1
                }
                out += 1
            }
            length[w] = out - s
        }
        assert(pairCount[Int(p)] == 0, "BPE: a merged pair kept occurrences")
        for q in gained where pairCount[Int(q)] >= 2 { heap.push(pairCount[Int(q)], first[Int(q)], q) }
        gained.removeAll(keepingCapacity: true)
    }

    private mutating func add(_ a: Int32, _ b: Int32, word w: Int, offset: UInt32, _ c: Int) {
        let key = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
        let p: Int
        if let known = pairIDs[key] {
            p = Int(known)
        } else {
            p = left.count
            pairIDs[key] = Int32(p)
            left.append(a); right.append(b); pairCount.append(0); first.append(.max); firstIsExact.append(false)
            words.append([]); gainedAt.append(-1)
        }
        pairCount[p] += c
        let at = UInt64(w) << 32 | UInt64(offset)
        // The new occurrence is the first one if it precedes even the lower bound.
        if at <= first[p] { first[p] = at; firstIsExact[p] = true }
        if words[p].last != Int32(w) { words[p].append(Int32(w)) }
        if gainedAt[p] != step { gainedAt[p] = step; gained.append(Int32(p)) }
    }

    private mutating func remove(_ a: Int32, _ b: Int32, word w: Int, offset: UInt32, _ c: Int) {
        let key = UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
        let p = Int(pairIDs[key]!)
        pairCount[p] -= c
        // Losing the first occurrence leaves `first` a lower bound only.
        if UInt64(w) << 32 | UInt64(offset) == first[p] { firstIsExact[p] = false }
    }
}

/// A binary max-heap of (count, first occurrence) entries for pairs: higher count first, then earlier first
/// occurrence. Stale entries are left in and recognised when popped.
private struct PairHeap {
    struct Entry {
        var count: Int
        var first: UInt64
        var pair: Int32
    }

    private var entries: [Entry] = []

    private static func above(_ x: Entry, _ y: Entry) -> Bool {
        if x.count != y.count { return x.count > y.count }
        if x.first != y.first { return x.first < y.first }
        return x.pair < y.pair
    }

    mutating func push(_ count: Int, _ first: UInt64, _ pair: Int32) {
        entries.append(Entry(count: count, first: first, pair: pair))
        var i = entries.count - 1
        let e = entries[i]
        while i > 0 {
            let parent = (i - 1) / 2
            if !Self.above(e, entries[parent]) { break }
            entries[i] = entries[parent]
            i = parent
        }
        entries[i] = e
    }

    mutating func pop() -> Entry? {
        guard let top = entries.first else { return nil }
        let last = entries.removeLast()
        if entries.isEmpty { return top }
        var i = 0
        let n = entries.count
        while true {
            let l = 2 * i + 1
            if l >= n { break }
            let r = l + 1
            let child = r < n && Self.above(entries[r], entries[l]) ? r : l
            if !Self.above(entries[child], last) { break }
            entries[i] = entries[child]
            i = child
        }
        entries[i] = last
        return top
    }
}
