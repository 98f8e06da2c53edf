import CKernels
import Dispatch

// Shape legend: P parameters (one flat buffer), V rows of a table, E values per row.

/// A tensor of a flat parameter buffer whose gradient is row-sparse: an embedding table `[V, E]` at `offset`,
/// whose gradient a minibatch makes non-zero only in the rows of the tokens it reads (PyTorch's
/// `nn.Embedding(sparse=True)`). A tied table is also the decoder's weight, whose gradient is dense: it is not one.
public struct SparseRowTensor: Equatable, Hashable, Sendable, Codable {
    public let offset: Int
    public let rows: Int
    public let width: Int
    public init(offset: Int, rows: Int, width: Int) {
        precondition(offset >= 0 && rows >= 0 && width >= 1, "a row-sparse tensor needs offset ≥ 0, rows ≥ 0, width ≥ 1")
        self.offset = offset; self.rows = rows; self.width = width
    }
    /// The table's element range in the flat buffer.
    public var range: Range<Int> { offset..<(offset + rows * width) }
    /// The element range of row `r`.
    public func rowRange(_ r: Int32) -> Range<Int> { (offset + Int(r) * width)..<(offset + (Int(r) + 1) * width) }
}

/// Where a flat gradient may be non-zero: every value outside the row-sparse tables, and the listed rows of each
/// (an encoder-decoder has two embeddings). Zeroing, summing, the norm and a plain SGD update visit only these
/// values; the rest of each table's gradient is zero by construction, so skipping it changes nothing but the time.
///
/// Every operation works on the same ascending list of pieces (`pieces`: the dense ranges cut into blocks of
/// `FloatBuffer.sumOfSquaresBlock` values, each touched row one piece), so results never depend on the thread
/// count; a dense support's pieces are exactly `FloatBuffer.sumOfSquares`'s blocks.
public struct GradientSupport: Equatable, Sendable {
    /// Values in the whole buffer.
    public let count: Int
    /// The row-sparse tables, ascending by offset and disjoint; empty for a dense gradient.
    public let tables: [SparseRowTensor]
    /// For each table, the rows that may be non-zero: ascending, unique, each in `0..<table.rows`.
    public let rows: [[Int32]]

    /// Every value may be non-zero.
    public static func dense(_ count: Int) -> GradientSupport { GradientSupport(count: count, tables: [], rows: []) }

    /// `rows` holds one list per table, or none at all for "no row of any table touched".
    public init(count: Int, tables: [SparseRowTensor], rows: [[Int32]]) {
        let rows = rows.isEmpty ? tables.map { _ in [] } : rows
        precondition(rows.count == tables.count, "\(rows.count) row lists for \(tables.count) row-sparse tables")
        var end = 0
        for (t, r) in zip(tables, rows) {
            precondition(t.offset >= end && t.range.upperBound <= count, "row-sparse tables must be disjoint, ascending and inside a buffer of \(count)")
            precondition(isStrictlyAscending(r) && (r.first ?? 0) >= 0 && Int(r.last ?? 0) < max(t.rows, 1),
                         "touched rows must be ascending, unique and inside the table's \(t.rows) rows")
            end = t.range.upperBound
        }
        self.count = count; self.tables = tables; self.rows = rows
    }

    /// One table (or none: dense).
    public init(count: Int, table: SparseRowTensor?, rows: [Int32]) {
        self.init(count: count, tables: table.map { [$0] } ?? [], rows: table == nil ? [] : [rows])
    }

    public var isDense: Bool { tables.isEmpty }

    /// Values the support holds (what a compact encoding of the gradient carries).
    public var valueCount: Int { zip(tables, rows).reduce(count) { $0 - ($1.0.rows - $1.1.count) * $1.0.width } }

    /// The support as ascending, disjoint element ranges: the dense part before each table, each touched row,
    /// the dense part after the last table. Empty ranges are left out.
    public var ranges: [Range<Int>] {
        guard !tables.isEmpty else { return count > 0 ? [0..<count] : [] }
        var out = [Range<Int>]()
        out.reserveCapacity(rows.reduce(tables.count + 1) { $0 + $1.count })
        var at = 0
        for (t, rs) in zip(tables, rows) {
            if t.offset > at { out.append(at..<t.offset) }
            for r in rs { out.append(t.rowRange(r)) }
            at = t.range.upperBound
        }
        if at < count { out.append(at..<count) }
        return out
    }

    /// `ranges` with the dense ones cut into blocks of at most `FloatBuffer.sumOfSquaresBlock` values: the fixed
    /// units of work and summation.
    public var pieces: [Range<Int>] {
        let block = FloatBuffer.sumOfSquaresBlock
        var out = [Range<Int>]()
        for r in ranges {
            var lo = r.lowerBound
            while lo < r.upperBound {
                let hi = min(r.upperBound, lo + block)
                out.append(lo..<hi)
                lo = hi
            }
        }
        return out
    }

    /// The union of two supports of the same buffer and tables.
    public func union(_ other: GradientSupport) -> GradientSupport {
        precondition(count == other.count && tables == other.tables, "union of supports of different buffers")
        return GradientSupport(count: count, tables: tables, rows: zip(rows, other.rows).map { mergedRows($0, $1) })
    }

    /// The rows as they cross the wire (Int32 values): nothing for a dense support; otherwise the number of
    /// tables, each table's row count, then every table's rows in order.
    public var wireRows: [Int32] { Self.wire(rows: rows) }

    /// Per-table rows in `wireRows`' layout.
    public static func wire(rows: [[Int32]]) -> [Int32] {
        guard !rows.isEmpty else { return [] }
        return [Int32(rows.count)] + rows.map { Int32($0.count) } + rows.flatMap { $0 }
    }

    /// The per-table rows from `wireRows`' layout; nil when it is not that layout.
    public static func rows(fromWire w: [Int32]) -> [[Int32]]? {
        guard let n = w.first else { return [] }
        guard n >= 1, w.count >= 1 + Int(n) else { return nil }
        let counts = w[1...Int(n)]
        guard counts.allSatisfy({ $0 >= 0 }), 1 + Int(n) + counts.reduce(0, { $0 + Int($1) }) == w.count else { return nil }
        var at = 1 + Int(n), out = [[Int32]]()
        for k in counts { out.append(Array(w[at..<(at + Int(k))])); at += Int(k) }
        return out
    }

    /// Int32 values `wireRows` can take at most for `tables` (every row of each touched).
    public static func maxWireRows(_ tables: [SparseRowTensor]) -> Int {
        tables.isEmpty ? 0 : 1 + tables.count + tables.reduce(0) { $0 + $1.rows }
    }
}

/// The distinct values of `values`, ascending.
public func uniqueSorted(_ values: [Int32]) -> [Int32] {
    if isStrictlyAscending(values) { return values }
    var out = values.sorted()
    var w = 0
    for v in out where w == 0 || out[w - 1] != v { out[w] = v; w += 1 }
    out.removeLast(out.count - w)
    return out
}

/// The union of two ascending, unique lists, ascending.
public func mergedRows(_ a: [Int32], _ b: [Int32]) -> [Int32] {
    if b.isEmpty { return a }
    if a.isEmpty { return b }
    var out = [Int32]()
    out.reserveCapacity(a.count + b.count)
    var i = 0, j = 0
    while i < a.count || j < b.count {
        if j == b.count || (i < a.count && a[i] < b[j]) { out.append(a[i]); i += 1 }
        else if i == a.count || b[j] < a[i] { out.append(b[j]); j += 1 }
        else { out.append(a[i]); i += 1; j += 1 }
    }
    return out
}

/// True when every value is greater than the one before it.
public func isStrictlyAscending(_ v: [Int32]) -> Bool {
    var i = 1
    while i < v.count { if v[i] <= v[i - 1] { return false }; i += 1 }
    return true
}

/// Calls `body` on each piece of `pieces` (disjoint ranges), sharing them out over up to `threads` threads in
/// contiguous runs of pieces with about the same number of values.
func forEachPiece(_ pieces: [Range<Int>], threads: Int, _ body: @Sendable (Int, Range<Int>) -> Void) {
    let total = pieces.reduce(0) { $0 + $1.count }
    let parts = max(1, min(threads, pieces.count, total / minimumElementsPerThread))
    guard parts > 1 else { for (i, p) in pieces.enumerated() { body(i, p) }; return }
    // Cut the list where the running count passes k·total/parts.
    var starts = [0], running = 0
    for (i, p) in pieces.enumerated() {
        running += p.count
        if starts.count < parts && running >= starts.count * total / parts && i + 1 < pieces.count { starts.append(i + 1) }
    }
    starts.append(pieces.count)
    let cuts = starts
    DispatchQueue.concurrentPerform(iterations: cuts.count - 1) { k in
        for i in cuts[k]..<cuts[k + 1] { body(i, pieces[i]) }
    }
}

/// Whether `body` holds on every piece, run as `forEachPiece` runs them (each answering in a flag of its own).
func allPieces(_ pieces: [Range<Int>], threads: Int, _ body: @Sendable (Range<Int>) -> Bool) -> Bool {
    var ok = [Bool](repeating: true, count: max(1, pieces.count))
    ok.withUnsafeMutableBufferPointer { out in
        let out = SendablePointer(out.baseAddress!)
        forEachPiece(pieces, threads: threads) { i, r in out.at(i).pointee = body(r) }
    }
    return !ok.contains(false)
}

extension FloatBuffer {
    /// Zeroes the values of `support` (a gradient whose other values are already zero becomes all zero).
    public func zero(_ support: GradientSupport) {
        precondition(support.count == count, "a support of \(support.count) values for a buffer of \(count)")
        guard !support.isDense else { zero(); return }
        for r in support.ranges { (pointer + r.lowerBound).update(repeating: 0, count: r.count) }
    }

    /// `self += other` on the values of `support` (`other` is zero elsewhere).
    public func add(_ other: FloatBuffer, on support: GradientSupport) {
        precondition(support.count == count && other.count == count, "adding buffers of \(other.count) and \(count) values on a support of \(support.count)")
        for r in support.ranges { rk_add(pointer + r.lowerBound, other.pointer + r.lowerBound, Int64(r.count)) }
    }

    /// `self += values` where `values` holds the values of `support` one range after the other (a gradient as
    /// it crosses the wire, `support.valueCount` values); the rest of `self` is unchanged.
    public func add(compact values: UnsafeBufferPointer<Float>, on support: GradientSupport) {
        precondition(support.count == count && values.count == support.valueCount,
                     "\(values.count) values for a support of \(support.valueCount) in a buffer of \(count)")
        guard !support.isDense else { if count > 0 { rk_add(pointer, values.baseAddress!, Int64(count)) }; return }
        var at = 0
        for r in support.ranges {
            rk_add(pointer + r.lowerBound, values.baseAddress! + at, Int64(r.count))
            at += r.count
        }
    }

    /// Sum of squares of the values of `support`, in Double, in a fixed order whatever `threads` is: each piece
    /// (`GradientSupport.pieces`) summed by `rk_sum_squares`, the pieces' sums added in order (a dense support's
    /// pieces are `sumOfSquares(threads:)`'s blocks).
    public func sumOfSquares(_ support: GradientSupport, threads: Int = 1) -> Double {
        precondition(support.count == count, "a support of \(support.count) values for a buffer of \(count)")
        let pieces = support.pieces
        var sums = [Double](repeating: 0, count: pieces.count)
        let x = SendablePointer(pointer)
        sums.withUnsafeMutableBufferPointer { out in
            let out = SendablePointer(out.baseAddress!)
            forEachPiece(pieces, threads: threads) { i, r in out.at(i).pointee = rk_sum_squares(x.at(r.lowerBound), Int64(r.count)) }
        }
        return sums.reduce(0, +)
    }
}
