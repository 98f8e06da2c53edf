import Dispatch

// Shape legend: T steps, B streams, G groups (threads). Token matrices are time-major `[T, B]`.

/// Data parallelism inside one process: the B streams of a minibatch are split into G contiguous groups, each
/// run on its own thread through its own replica of the model (the parameters are shared; gradients and
/// workspaces are not), and the groups' gradients are summed in group order.
///
/// The streams of a recurrent minibatch are independent through time, so the groups never synchronise inside
/// a step; this scales where a multithreaded BLAS cannot (the per-step `[B, H]·[H, G·H]` products are too small
/// to split well). OpenBLAS should run single-threaded meanwhile (`setBLASThreads(1)`).
///
/// The result equals the one-thread gradient up to float summation order, with dropout too: each group passes the
/// global row indices of its streams, and a dropout mask is a function of (key, site, global row, t, unit) alone.
public final class DataParallel: @unchecked Sendable {
    public let model: LanguageModel
    public let threads: Int
    /// Replicas for groups 1..<G; group 0 runs on `model`.
    private let replicas: [LanguageModel]

    public init(model: LanguageModel, threads: Int) {
        precondition(threads >= 1, "DataParallel needs at least one thread, got \(threads)")
        self.model = model
        self.threads = threads
        replicas = (1..<threads).map { _ in LanguageModel(sharingParametersOf: model) }
    }

    /// The contiguous stream ranges of a B-stream minibatch, at most `threads` of them, sizes differing by ≤ 1.
    public func groups(batch: Int) -> [Range<Int>] {
        let g = min(threads, batch)
        return (0..<g).map { k in (k * batch / g)..<((k + 1) * batch / g) }
    }

    /// Like `model.forwardBackward`: accumulates `∂(Σ token losses)/∂θ` into `model.gradients`, advances
    /// `state`, returns the loss sum. `dropout` keys the masks (`nil`: no dropout); `rows[b]` is the global row
    /// index of column b (default `0..<B`), and group g passes its slice of it.
    public func forwardBackward(inputs: [Int32], targets: [Int32], steps: Int, batch: Int,
                                state: inout RecurrentState, dropout: DropoutKey?, rows: [Int]? = nil) -> LossSum {
        precondition(inputs.count == steps * batch && targets.count == steps * batch,
                     "inputs/targets hold \(inputs.count)/\(targets.count) tokens, expected T*B = \(steps * batch)")
        precondition(state.batch == batch, "state has \(state.batch) streams, the minibatch \(batch)")
        if let rows { precondition(rows.count == batch, "rows hold \(rows.count) indices, the minibatch has \(batch) columns") }
        let ranges = groups(batch: batch)
        var results = [(LossSum, RecurrentState)?](repeating: nil, count: ranges.count)
        let inputState = state
        results.withUnsafeMutableBufferPointer { out in
            let out = UnsafeSendable(out)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { g in
                let cols = ranges[g]
                var x = [Int32](), y = [Int32]()
                x.reserveCapacity(steps * cols.count); y.reserveCapacity(steps * cols.count)
                for t in 0..<steps {
                    x.append(contentsOf: inputs[(t * batch + cols.lowerBound)..<(t * batch + cols.upperBound)])
                    y.append(contentsOf: targets[(t * batch + cols.lowerBound)..<(t * batch + cols.upperBound)])
                }
                let m = g == 0 ? self.model : self.replicas[g - 1]
                if g > 0 { m.gradients.zero() }
                var part = inputState.selecting(columns: Array(cols))
                let groupRows = rows.map { Array($0[cols]) } ?? Array(cols)
                let loss = m.forwardBackward(inputs: x, targets: y, steps: steps, batch: cols.count, state: &part,
                                             dropout: dropout, rows: groupRows)
                out.value[g] = (loss, part)
            }
        }
        var total = LossSum()
        for (g, r) in results.enumerated() {
            let (loss, part) = r!
            total += loss
            state.assign(columns: Array(ranges[g]), from: part)
            if g > 0 { model.gradients.add(UnsafeBufferPointer(replicas[g - 1].gradients.buffer)) }
        }
        return total
    }
}

/// Hands a buffer whose elements are written by disjoint tasks to `concurrentPerform`.
private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
