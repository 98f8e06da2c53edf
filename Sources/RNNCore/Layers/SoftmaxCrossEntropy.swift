import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Shape legend: N rows (T*B positions, time-major), V classes (the vocabulary).

/// Sum of per-token cross-entropy losses (natural log) and how many tokens it covers.
public struct LossSum: Equatable, Sendable {
    public var sum: Double
    public var count: Int
    public init(sum: Double = 0, count: Int = 0) { self.sum = sum; self.count = count }
    public var mean: Double { count == 0 ? .nan : sum / Double(count) }
    public var perplexity: Double { exp(mean) }
    public static func + (a: LossSum, b: LossSum) -> LossSum { LossSum(sum: a.sum + b.sum, count: a.count + b.count) }
    public static func += (a: inout LossSum, b: LossSum) { a = a + b }
}

/// Log-softmax + cross-entropy against integer targets, summed over rows, with an optional per-row mask.
///
/// The loss is the root of the graph, so its backward is fused into one pass with the forward (`forwardBackward`):
/// one read of the `[N, V]` logits computes the log-sum-exp and then overwrites them with the gradient (one exp per
/// element: the exponentials of the sum are kept and scaled). That pass
/// is the C kernel `rk_cross_entropy`; with a mask, `rk_cross_entropy_masked`, so the unmasked path pays nothing.
public struct SoftmaxCrossEntropy: Sendable {
    public let classes: Int

    public init(classes: Int) {
        precondition(classes >= 1, "a softmax needs at least one class, got \(classes)")
        self.classes = classes
    }

    /// The summed loss of `logits [N, V]` against `targets [N]`, leaving the logits unchanged.
    /// `mask [N]` weights each row (0 or 1): masked rows add nothing and are not counted, and their target is
    /// not read. `LossSum.count` is the number of unmasked rows.
    /// With `bias [V]`, the logits are `logits + bias` (added in place, row by row, before the loss).
    public func forward(_ logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows N: Int,
                        mask: UnsafePointer<Float>? = nil, bias: UnsafePointer<Float>? = nil) -> LossSum {
        run(logits, targets: targets, rows: N, mask: mask, bias: bias, gradientScale: nil, columnSums: nil)
    }

    /// The summed loss, and the logits `[N, V]` overwritten by `∂(scale · Σ losses)/∂logits`
    /// = `scale · mask[r] · (softmax − onehot(target))` per row (a zero row where the mask is 0). With
    /// `bias`, as in `forward`. With `columnSums [V]`, also adds every gradient row into it (a decoder's bias gradient) while the row is in cache.
    public func forwardBackward(_ logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows N: Int,
                                mask: UnsafePointer<Float>? = nil, scale: Float = 1, bias: UnsafePointer<Float>? = nil,
                                columnSums: UnsafeMutablePointer<Float>? = nil) -> LossSum {
        run(logits, targets: targets, rows: N, mask: mask, bias: bias, gradientScale: scale, columnSums: columnSums)
    }

    private func run(_ logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows N: Int,
                     mask: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, gradientScale: Float?,
                     columnSums: UnsafeMutablePointer<Float>?) -> LossSum {
        let write: Int32 = gradientScale == nil ? 0 : 1
        guard let mask else {
            return LossSum(sum: rk_cross_entropy(logits, targets, Int64(N), Int64(classes), bias, write, gradientScale ?? 0,
                                                    columnSums),
                           count: N)
        }
        var count = 0
        for r in 0..<N where mask[r] != 0 { count += 1 }
        let sum = rk_cross_entropy_masked(logits, targets, mask, Int64(N), Int64(classes), bias, write, gradientScale ?? 0,
                                          columnSums)
        return LossSum(sum: sum, count: count)
    }
}

/// Fused log-softmax + cross-entropy over `rows` rows of `[rows, vocab]` logits.
/// Returns the loss sum (accumulated in Double). When `gradientScale` is given, overwrites the logits with
/// `gradientScale · (softmax − onehot(target))`, the gradient of `gradientScale · Σ losses`.
public func crossEntropy(_ logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocab V: Int,
                         gradientScale: Float?) -> LossSum {
    let loss = SoftmaxCrossEntropy(classes: V)
    if let gradientScale { return loss.forwardBackward(logits, targets: targets, rows: rows, scale: gradientScale) }
    return loss.forward(logits, targets: targets, rows: rows)
}
