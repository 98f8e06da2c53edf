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
/// The result equals the one-thread gradient up to float summation order. With dropout, group g draws its masks
/// from `RandomGenerator(seed: dropoutSeed, stream: g)`, so a run is reproducible for a given thread count.
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
    /// `state`, returns the loss sum. `dropoutSeed` seeds the groups' dropout masks (`nil`: no dropout).
    public func forwardBackward(inputs: [Int32], targets: [Int32], steps: Int, batch: Int,
                                state: inout RecurrentState, dropoutSeed: UInt64?) -> LossSum {
        precondition(inputs.count == steps * batch && targets.count == steps * batch,
                     "inputs/targets hold \(inputs.count)/\(targets.count) tokens, expected T*B = \(steps * batch)")
        precondition(state.batch == batch, "state has \(state.batch) streams, the minibatch \(batch)")
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
                let loss: LossSum
                if let seed = dropoutSeed {
                    var rng = RandomGenerator(seed: seed, stream: UInt64(g))
                    loss = m.forwardBackward(inputs: x, targets: y, steps: steps, batch: cols.count, state: &part,
                                             dropout: &rng)
                } else {
                    loss = m.forwardBackward(inputs: x, targets: y, steps: steps, batch: cols.count, state: &part)
                }
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
