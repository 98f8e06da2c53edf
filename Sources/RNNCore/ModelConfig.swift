/// The recurrent cell of each layer, named as on the command line.
public enum CellKind: String, Codable, CaseIterable, Sendable {
    case rnnTanh = "rnn"
    case rnnRelu = "rnn-relu"
    case gru
    case lstm

    /// Number of stacked gate blocks `G` in `weight_ih` / `weight_hh` (PyTorch's layout).
    public var gates: Int {
        switch self {
        case .rnnTanh, .rnnRelu: return 1
        case .gru: return 3
        case .lstm: return 4
        }
    }

    /// Whether the cell carries a memory cell `c` besides `h`.
    public var hasCell: Bool { self == .lstm }
}

/// Shape and kind of a language model: embedding (or one-hot input) → L recurrent layers → linear decoder.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// `V`: number of tokens in the vocabulary.
    public var vocabSize: Int
    /// `E`: embedding width; 0 means one-hot input, as D2L feeds characters (no `encoder.weight`).
    public var embedSize: Int
    /// `H`: hidden width of every recurrent layer.
    public var hiddenSize: Int
    /// `L`: number of stacked recurrent layers.
    public var layers: Int
    public var cell: CellKind
    /// Inverted-dropout probability on the embedding, between layers, and before the decoder.
    public var dropout: Float

    public init(vocabSize: Int, embedSize: Int = 0, hiddenSize: Int, layers: Int = 1, cell: CellKind,
                dropout: Float = 0) {
        self.vocabSize = vocabSize
        self.embedSize = embedSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.cell = cell
        self.dropout = dropout
    }

    /// Width of layer 0's input.
    public var inputSize: Int { embedSize == 0 ? vocabSize : embedSize }

    /// Throws a message naming the bad field and the fix when the shape is unusable.
    public func validate() throws(ConfigError) {
        if vocabSize < 2 { throw ConfigError("vocabulary has \(vocabSize) token(s); a language model needs at least 2 — is the corpus empty?") }
        if embedSize < 0 { throw ConfigError("--embed must be 0 (one-hot input) or positive, got \(embedSize)") }
        if hiddenSize < 1 { throw ConfigError("--hidden must be at least 1, got \(hiddenSize)") }
        if layers < 1 { throw ConfigError("--layers must be at least 1, got \(layers)") }
        if !(dropout >= 0 && dropout < 1) { throw ConfigError("--dropout must be in [0, 1), got \(dropout)") }
        try ModelSpec.checkSizes([("vocabulary", vocabSize), ("--embed", embedSize), ("--hidden", hiddenSize)], layers: layers)
    }
}

/// A configuration error with a message meant for the user.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ message: String) { description = message }
}
