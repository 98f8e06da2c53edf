/// Whitespace splitting at the speed of a byte scan, with the results of
/// `text.split(whereSeparator: { $0.isWhitespace })` (which walks grapheme clusters, ≈ 7× slower on a 13 MB text).
///
/// A cluster is whitespace when its first scalar is (`Character.isWhitespace`), so clusters matter: a space
/// followed by a combining mark is one whitespace character (the mark goes with the separator), and a prepended
/// concatenation mark (U+0600) followed by a space is one character that is not whitespace. Clusters can only
/// span a boundary between two ASCII scalars when those are CR LF (both whitespace), so ASCII next to ASCII is
/// decided byte by byte and only stretches around non-ASCII scalars are split by `Character`s.
func forEachWord(in text: String, _ body: (Substring) -> Void) {
    var text = text
    text.makeContiguousUTF8()
    let utf8 = text.utf8
    let scanned: Void? = utf8.withContiguousStorageIfAvailable { bytes in
        let n = bytes.count
        var wordStart = -1  // byte offset where the current word began, or -1 between words
        func emit(_ end: Int) {
            let lower = utf8.index(utf8.startIndex, offsetBy: wordStart)
            body(text[lower..<utf8.index(utf8.startIndex, offsetBy: end)])
            wordStart = -1
        }
        var i = 0
        while i < n {
            let b = bytes[i]
            if b < 0x80 && (i + 1 == n || bytes[i + 1] < 0x80) {
                // An ASCII scalar followed by one (or by the end) is a cluster of its own, but for CR LF.
                if b == 0x20 || (b >= 0x09 && b <= 0x0D) {
                    if wordStart >= 0 { emit(i) }
                } else if wordStart < 0 {
                    wordStart = i
                }
                i += 1
                continue
            }
            // A cluster boundary is at `i`; the next certain one is between two ASCII scalars that are not CR LF.
            var end = i + 1
            func certainBoundary(_ j: Int) -> Bool {
                bytes[j - 1] < 0x80 && bytes[j] < 0x80 && !(bytes[j - 1] == 0x0D && bytes[j] == 0x0A)
            }
            while end < n && !certainBoundary(end) { end += 1 }
            let stretch = text[utf8.index(utf8.startIndex, offsetBy: i)..<utf8.index(utf8.startIndex, offsetBy: end)]
            var at = i
            for c in stretch {
                if c.isWhitespace {
                    if wordStart >= 0 { emit(at) }
                } else if wordStart < 0 {
                    wordStart = at
                }
                at += c.utf8.count
            }
            i = end
        }
        if wordStart >= 0 { emit(n) }
    }
    precondition(scanned != nil, "forEachWord: a native string's UTF-8 is contiguous")
}
