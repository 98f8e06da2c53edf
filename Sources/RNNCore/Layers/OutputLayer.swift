// Shape legend: N rows (T*B time-major positions, or a translation batch's valid target positions), I input width
// (the top layer's H), V classes (the vocabulary).

/// The output layer every model ends in: a `Linear` decoder `[I] → [V]` and `SoftmaxCrossEntropy`, forward and
/// backward in one call, so that the `[N, V]` logits are one scratch buffer that the loss overwrites with its
/// gradient in place and the two backward products read. With a large vocabulary this layer is most of a step
/// (word level, V ≈ 10k: ≈ 75% of the FLOPs), so each of its phases is charged separately to a `PhaseProfile`.
///
/// Parameters: the decoder's `{name}.weight [V, I]` (or a tied tensor, see `Linear`) and `{name}.bias [V]`.
public struct OutputLayer: Sendable {
    public let linear: Linear
    public let loss: SoftmaxCrossEntropy
    public var inputs: Int { linear.inputs }
    public var classes: Int { linear.outputs }

    public init(name: String, inputs: Int, classes: Int, layout: ParameterLayout, weight: String? = nil) {
        linear = Linear(name: name, inputs: inputs, outputs: classes, layout: layout, weight: weight)
        loss = SoftmaxCrossEntropy(classes: classes)
    }

    /// `logits [N, V] = x [N, I] · Wᵀ + b`, overwriting `logits`.
    public func logits(_ x: UnsafePointer<Float>, rows N: Int, parameters: UnsafePointer<Float>,
                       into logits: UnsafeMutablePointer<Float>) {
        linear.forward(x, rows: N, parameters: parameters, into: logits)
    }

    /// The summed loss of `x [N, I]` against `targets [N]` (rows where `mask [N]` is 0 add nothing and are not
    /// counted, and their targets are not read); `logits [N, V]` is scratch.
    public func loss(_ x: UnsafePointer<Float>, rows N: Int, targets: UnsafePointer<Int32>,
                     mask: UnsafePointer<Float>? = nil, parameters: UnsafePointer<Float>,
                     logits: UnsafeMutablePointer<Float>) -> LossSum {
        guard N > 0 else { return LossSum() }
        product(x, rows: N, parameters: parameters, into: logits)
        return loss.forward(logits, targets: targets, rows: N, mask: mask, bias: parameters + linear.biasOffset)
    }

    /// Forward and backward of `scale · Σ losses` over `x [N, I]`: returns the (unscaled) loss sum, accumulates
    /// `dW += dyᵀ x` and `db += Σ_rows dy` into `gradients` and `dx [N, I] += dy · W`, where
    /// `dy = scale · mask[r] · (softmax − onehot(target))` is formed in place in the scratch `logits [N, V]` (and
    /// left there); `db` is summed in the same pass, row by row while each row is in cache. Masked rows contribute
    /// nothing.
    public func forwardBackward(_ x: UnsafePointer<Float>, rows N: Int, targets: UnsafePointer<Int32>,
                                mask: UnsafePointer<Float>? = nil, scale: Float = 1, parameters: UnsafePointer<Float>,
                                gradients: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>,
                                dx: UnsafeMutablePointer<Float>, profile: PhaseProfile? = nil) -> LossSum {
        guard N > 0 else { return LossSum() }
        let I = linear.inputs, V = linear.outputs, w = parameters + linear.weightOffset
        product(x, rows: N, parameters: parameters, into: logits)
        profile?.mark(.decoderForward)
        let sum = loss.forwardBackward(logits, targets: targets, rows: N, mask: mask, scale: scale,
                                       bias: parameters + linear.biasOffset, columnSums: gradients + linear.biasOffset)
        profile?.mark(.softmax)
        sgemm(transA: true, m: V, n: I, k: N, a: logits, lda: V, b: x, ldb: I, beta: 1,
              c: gradients + linear.weightOffset, ldc: I)
        profile?.mark(.decoderWeightGradient)
        sgemm(m: N, n: I, k: V, a: logits, lda: V, b: w, ldb: I, beta: 1, c: dx, ldc: I)
        profile?.mark(.decoderInputGradient)
        return sum
    }

    /// `logits = x · Wᵀ` without the bias, which the loss kernel adds row by row while each row is in cache (copying
    /// it into all N rows first, as `Linear.forward` does, is one more write and read of `[N, V]`).
    private func product(_ x: UnsafePointer<Float>, rows N: Int, parameters: UnsafePointer<Float>,
                         into logits: UnsafeMutablePointer<Float>) {
        sgemm(transB: true, m: N, n: linear.outputs, k: linear.inputs, a: x, lda: linear.inputs,
              b: parameters + linear.weightOffset, ldb: linear.inputs, beta: 0, c: logits, ldc: linear.outputs)
    }
}
