import Dispatch
import RNNCore

// Shape legend: B rows of a minibatch, G groups (threads), C carried values per row.

/// Data parallelism inside one process: the rows of a minibatch are split into G contiguous groups, each run on
/// its own thread through its own replica of the task (the parameters are shared; gradients and workspaces are
/// not), and the groups' gradients are summed in group order.
///
/// Rows are independent (a language model's streams never interact within a step), so the groups never
/// synchronise inside a step; this scales where a multithreaded BLAS cannot (the per-step `[B, H]·[H, G·H]`
/// products are too small to split well). OpenBLAS should run single-threaded meanwhile (`setBLASThreads(1)`).
/// The result equals the one-thread gradient up to float summation order; dropout masks are a function of the
/// global row, so they do not depend on the split.
public final class DataParallel: @unchecked Sendable {
    public let task: any TrainingTask
    public let threads: Int
    /// Replicas for groups 1..<G; group 0 runs on `task`.
    private let replicas: [any TrainingTask]

    public init(task: any TrainingTask, threads: Int) {
        precondition(threads >= 1, "DataParallel needs at least one thread, got \(threads)")
        self.task = task
        self.threads = threads
        replicas = (1..<threads).map { _ in task.makeReplica() }
    }

    /// Contiguous ranges of positions in a list of `count` rows, at most `threads` of them, sizes differing by ≤ 1.
    public func groups(count: Int) -> [Range<Int>] {
        let g = min(threads, count)
        return (0..<g).map { k in (k * count / g)..<((k + 1) * count / g) }
    }

    /// `TrainingTask.accumulateGradient` with the rows split across the threads: accumulates into
    /// `task.gradients`, advances `carried` (`[rows.count, C]`), returns the loss sum.
    public func accumulateGradient(epoch: Int, index: Int, rows: [Int], step: Int, carried: inout [Float]) -> LossSum {
        let C = task.carriedPerRow
        precondition(carried.count == rows.count * C, "\(carried.count) carried values for \(rows.count) rows of \(C)")
        let ranges = groups(count: rows.count)
        var results = [(LossSum, [Float])?](repeating: nil, count: ranges.count)
        let input = carried
        results.withUnsafeMutableBufferPointer { out in
            let out = UnsafeSendable(out)
            DispatchQueue.concurrentPerform(iterations: ranges.count) { g in
                let r = ranges[g]
                let t = g == 0 ? self.task : self.replicas[g - 1]
                if g > 0 { t.zeroGradients() }
                var part = Array(input[(r.lowerBound * C)..<(r.upperBound * C)])
                let loss = t.accumulateGradient(epoch: epoch, index: index, rows: Array(rows[r]), step: step, carried: &part)
                out.value[g] = (loss, part)
            }
        }
        var total = LossSum()
        for (g, result) in results.enumerated() {
            let (loss, part) = result!
            total += loss
            carried.replaceSubrange((ranges[g].lowerBound * C)..<(ranges[g].upperBound * C), with: part)
            if g > 0 { task.addGradients(of: replicas[g - 1]) }
        }
        return total
    }
}

/// Hands a buffer whose elements are written by disjoint tasks to `concurrentPerform`.
private struct UnsafeSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
