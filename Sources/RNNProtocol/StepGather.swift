import RNNCore

/// Collects the gradients of one synchronous step from the workers expected to answer, then sums them in
/// worker order (fixed, so results do not depend on arrival order). Pure: no sockets, no clock.
public struct StepGather {
    public struct Contribution {
        public var lossSum: Double
        public var tokens: Int
        /// Every value, or with a row-sparse table the values of the support of `rows` (see `Message.gradient`).
        public var gradient: [Float]
        public var state: [Float]
        /// Per row-sparse table, the rows the gradient touched (empty without tables).
        public var rows: [[Int32]]
        public init(lossSum: Double, tokens: Int, gradient: [Float], state: [Float], rows: [[Int32]] = []) {
            self.lossSum = lossSum; self.tokens = tokens; self.gradient = gradient; self.state = state; self.rows = rows
        }
    }

    public enum Verdict: Equatable {
        case accepted
        case duplicate
        case staleStep(UInt64)
        case unexpectedWorker
        case wrongStateSize(expected: Int, got: Int)
    }

    public let step: UInt64
    /// The task's row-sparse tables (none: gradients are dense), which say how contributions are laid out.
    public let tables: [SparseRowTensor]
    /// Worker indices that must answer, with the state size each must report.
    public private(set) var expected: [Int: Int]
    public private(set) var received: [Int: Contribution] = [:]
    /// Workers whose contribution to this step was dropped (non-finite gradient): answered, but not summed.
    public private(set) var dropped: Set<Int> = []

    public init(step: UInt64, expected: [Int: Int], tables: [SparseRowTensor] = []) {
        self.step = step
        self.expected = expected
        self.tables = tables
    }

    /// Per table, the rows any received contribution touched: where their sum may be non-zero.
    public var touchedRows: [[Int32]] {
        received.values.reduce(tables.map { _ in [Int32]() }) { acc, c in
            c.rows.isEmpty ? acc : zip(acc, c.rows).map { mergedRows($0, $1) }
        }
    }

    public var isComplete: Bool { received.count + dropped.count == expected.count }
    public var missing: [Int] { expected.keys.filter { received[$0] == nil && !dropped.contains($0) }.sorted() }

    /// The worker answered with something unusable: the step goes on without its contribution.
    public mutating func drop(worker: Int) {
        guard expected[worker] != nil, received[worker] == nil else { return }
        dropped.insert(worker)
    }

    /// The worker is gone: the step no longer waits for it (a contribution already received still counts).
    public mutating func forget(worker: Int) {
        guard received[worker] == nil else { return }
        expected[worker] = nil
        dropped.remove(worker)
    }

    public mutating func accept(worker: Int, step: UInt64, _ c: Contribution) -> Verdict {
        guard step == self.step else { return .staleStep(step) }
        guard let stateSize = expected[worker] else { return .unexpectedWorker }
        guard received[worker] == nil, !dropped.contains(worker) else { return .duplicate }
        guard c.state.count == stateSize else { return .wrongStateSize(expected: stateSize, got: c.state.count) }
        received[worker] = c
        return .accepted
    }

    /// The received contributions that can be added to a running sum now, given `summed` (the workers already
    /// added, ascending): those below every worker still missing, in ascending order. Adding them as they become
    /// ready, after zeroing, gives exactly `sum(into:)`'s result (the same additions in the same order), while the
    /// slower workers are still computing.
    public func summable(after summed: [Int]) -> [Int] {
        let firstMissing = missing.first ?? Int.max, last = summed.last ?? Int.min
        return received.keys.filter { $0 > last && $0 < firstMissing }.sorted()
    }

    /// Adds the contributions of `workers` (from `summable`) to `out`, and their loss and tokens to `total` (one
    /// at a time, so that the loss is summed in the same order as the gradients).
    public func add(_ workers: [Int], into out: FloatBuffer, total: inout LossSum) {
        for w in workers {
            let c = received[w]!
            let support = GradientSupport(count: out.count, tables: tables, rows: c.rows)
            precondition(c.gradient.count == support.valueCount, "worker \(w) gradient has \(c.gradient.count) values, expected \(support.valueCount)")
            c.gradient.withUnsafeBufferPointer { out.add(compact: $0, on: support) }
            total += LossSum(sum: c.lossSum, count: c.tokens)
        }
    }

    /// Σ of the gradients into `out` (overwritten, all of it), in ascending worker order; the total loss and tokens.
    public func sum(into out: FloatBuffer) -> LossSum {
        out.zero()
        var total = LossSum()
        add(received.keys.sorted(), into: out, total: &total)
        return total
    }
}
