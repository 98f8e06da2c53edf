// Shape legend: N rows (T*B for a time-major activation), I input width, O output width.

/// A fully connected layer `y = x Wᵀ + b` with PyTorch's `nn.Linear` parameters `{name}.weight [O, I]` and
/// `{name}.bias [O]`, viewed in a flat parameter buffer (and, at the same offsets, the gradient buffer).
public struct Linear: Sendable {
    public let inputs: Int, outputs: Int
    /// Element offsets of the weight `[O, I]` and bias `[O]` in the flat buffers.
    public let weightOffset: Int, biasOffset: Int

    /// The tensors this layer adds to a parameter layout, in PyTorch's `state_dict` order.
    public static func parameterShapes(name: String, inputs: Int, outputs: Int) -> [(String, [Int])] {
        [("\(name).weight", [outputs, inputs]), ("\(name).bias", [outputs])]
    }

    /// Binds to the tensors `{name}.weight` and `{name}.bias` of `layout`; with `weight`, to that tensor instead
    /// of `{name}.weight` (a tied decoder reads the embedding table, and its gradient accumulates there).
    public init(name: String, inputs: Int, outputs: Int, layout: ParameterLayout, weight: String? = nil) {
        let w = layout[weight ?? "\(name).weight"], b = layout["\(name).bias"]
        precondition(w.shape == [outputs, inputs] && b.shape == [outputs],
                     "\(name): layout has \(w.shape), \(b.shape); expected [\(outputs), \(inputs)], [\(outputs)]")
        self.inputs = inputs; self.outputs = outputs
        weightOffset = w.offset; biasOffset = b.offset
    }

    /// `y [N, O] = x [N, I] · Wᵀ + b`, overwriting `y`.
    public func forward(_ x: UnsafePointer<Float>, rows N: Int, parameters: UnsafePointer<Float>,
                        into y: UnsafeMutablePointer<Float>) {
        fillRows(y, rows: N, n: outputs, with: parameters + biasOffset)
        sgemm(transB: true, m: N, n: outputs, k: inputs, a: x, lda: inputs, b: parameters + weightOffset, ldb: inputs,
              beta: 1, c: y, ldc: outputs)
    }

    /// Accumulates `dW += dyᵀ x`, `db += Σ_rows dy` into `gradients`, and `dx [N, I] += dy · W` when `dx` is given.
    public func backward(_ x: UnsafePointer<Float>, rows N: Int, dy: UnsafePointer<Float>,
                         parameters: UnsafePointer<Float>, gradients: UnsafeMutablePointer<Float>,
                         dx: UnsafeMutablePointer<Float>?) {
        sgemm(transA: true, m: outputs, n: inputs, k: N, a: dy, lda: outputs, b: x, ldb: inputs, beta: 1,
              c: gradients + weightOffset, ldc: inputs)
        columnSums(dy, rows: N, n: outputs, into: gradients + biasOffset)
        if let dx {
            sgemm(m: N, n: inputs, k: outputs, a: dy, lda: outputs, b: parameters + weightOffset, ldb: inputs, beta: 1,
                  c: dx, ldc: inputs)
        }
    }
}
