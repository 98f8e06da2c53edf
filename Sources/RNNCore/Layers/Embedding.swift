// Shape legend: N rows (T*B token positions, time-major), V vocabulary, E embedding width.

/// A lookup table `{name}.weight [V, E]` (PyTorch's `nn.Embedding`): row r of the output is the table row of
/// token `tokens[r]`. (One-hot input, the language model's `--embed 0`, has no table: the first recurrent layer
/// reads token ids directly, see `LayerInput.oneHot`.)
public struct Embedding: Sendable {
    public let vocabulary: Int, width: Int
    /// Element offset of the table in the flat buffers.
    public let tableOffset: Int

    /// The tensor this layer adds to a parameter layout.
    public static func parameterShapes(name: String, vocabulary: Int, width: Int) -> [(String, [Int])] {
        [("\(name).weight", [vocabulary, width])]
    }

    /// Binds to the tensor `{name}.weight` of `layout`.
    public init(name: String, vocabulary: Int, width: Int, layout: ParameterLayout) {
        let v = layout["\(name).weight"]
        precondition(v.shape == [vocabulary, width],
                     "\(name).weight is \(v.shape) in the layout, expected [\(vocabulary), \(width)]")
        self.vocabulary = vocabulary; self.width = width
        tableOffset = v.offset
    }

    /// `out [N, E]`: row r = `table[tokens[r]]`, overwriting `out`. Token ids must be in `0..<V`.
    public func forward(_ tokens: UnsafePointer<Int32>, count N: Int, parameters: UnsafePointer<Float>,
                        into out: UnsafeMutablePointer<Float>) {
        let E = width, table = parameters + tableOffset
        for r in 0..<N { (out + r * E).update(from: table + Int(tokens[r]) * E, count: E) }
    }

    /// `dTable[tokens[r]] += dOut[r]` for every row r of `dOut [N, E]` (token ids have no gradient).
    public func backward(_ tokens: UnsafePointer<Int32>, count N: Int, dOut: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>) {
        let E = width, dTable = gradients + tableOffset
        for r in 0..<N { addRow(dTable + Int(tokens[r]) * E, dOut + r * E, count: E) }
    }
}
