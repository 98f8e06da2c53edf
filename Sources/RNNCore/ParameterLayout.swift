/// One named tensor inside a flat buffer: its PyTorch name, shape, and element offset.
public struct TensorView: Sendable, Equatable, Codable {
    public let name: String
    public let shape: [Int]
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
}

/// Where every parameter tensor lives in the single flat parameter buffer (and, identically, in the gradient
/// buffer and each optimizer-state buffer). The order and names are PyTorch's `state_dict()` order for
/// word_language_model's `RNNModel`, so a checkpoint's tensors load into PyTorch by name.
public struct ParameterLayout: Sendable, Equatable {
    public let tensors: [TensorView]
    public let count: Int

    public init(shapes: [(String, [Int])]) {
        var views: [TensorView] = []
        var offset = 0
        for (name, shape) in shapes {
            let v = TensorView(name: name, shape: shape, offset: offset)
            views.append(v)
            offset += v.count
        }
        tensors = views
        count = offset
    }

    /// The layout of a language model:
    /// `encoder.weight [V,E]` (absent for one-hot input), then for each layer k
    /// `rnn.weight_ih_l{k} [G*H, in]`, `rnn.weight_hh_l{k} [G*H, H]`, `rnn.bias_ih_l{k} [G*H]`,
    /// `rnn.bias_hh_l{k} [G*H]`, then `decoder.weight [V,H]`, `decoder.bias [V]`. A tied model has no
    /// `decoder.weight`: its decoder reads `encoder.weight` (PyTorch's tied `state_dict` holds the same tensor
    /// under both names).
    public init(model c: ModelConfig) {
        var shapes: [(String, [Int])] = []
        if c.embedSize > 0 { shapes += Embedding.parameterShapes(name: "encoder", vocabulary: c.vocabSize, width: c.embedSize) }
        shapes += RecurrentStack.parameterShapes(cell: c.cell, inputSize: c.inputSize, hidden: c.hiddenSize,
                                                 layers: c.layers, prefix: "rnn.")
        let decoder = Linear.parameterShapes(name: "decoder", inputs: c.hiddenSize, outputs: c.vocabSize)
        shapes += c.tied ? decoder.filter { $0.0 != "decoder.weight" } : decoder
        self.init(shapes: shapes)
    }

    public func view(_ name: String) -> TensorView? { tensors.first { $0.name == name } }

    /// The view named `name`; a missing name is a programming error.
    public subscript(name: String) -> TensorView {
        guard let v = view(name) else { preconditionFailure("no parameter tensor named \(name)") }
        return v
    }
}
