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
    /// The decoder's weight is the embedding table (word_language_model's `--tied`; needs `E = H`): one tensor,
    /// `encoder.weight [V, E]`, read by both layers, whose gradients accumulate into the same buffer.
    public var tied: Bool

    public init(vocabSize: Int, embedSize: Int = 0, hiddenSize: Int, layers: Int = 1, cell: CellKind,
                dropout: Float = 0, tied: Bool = false) {
        self.vocabSize = vocabSize
        self.embedSize = embedSize
        self.hiddenSize = hiddenSize
        self.layers = layers
        self.cell = cell
        self.dropout = dropout
        self.tied = tied
    }

    private enum CodingKeys: String, CodingKey { case vocabSize, embedSize, hiddenSize, layers, cell, dropout, tied }

    // `tied` is written only when set and read when present, so checkpoints and worker descriptions from before
    // it existed decode (as untied), and an untied model's record is unchanged.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        embedSize = try c.decode(Int.self, forKey: .embedSize)
        hiddenSize = try c.decode(Int.self, forKey: .hiddenSize)
        layers = try c.decode(Int.self, forKey: .layers)
        cell = try c.decode(CellKind.self, forKey: .cell)
        dropout = try c.decode(Float.self, forKey: .dropout)
        tied = try c.decodeIfPresent(Bool.self, forKey: .tied) ?? false
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(embedSize, forKey: .embedSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(layers, forKey: .layers)
        try c.encode(cell, forKey: .cell)
        try c.encode(dropout, forKey: .dropout)
        if tied { try c.encode(tied, forKey: .tied) }
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
        if tied && embedSize != hiddenSize {
            throw ConfigError("--tied makes the decoder's weight [V, H] the embedding table [V, E], so it needs --embed equal to --hidden; got --embed \(embedSize), --hidden \(hiddenSize) (pass --embed \(hiddenSize))")
        }
        try ModelSpec.checkSizes([("vocabulary", vocabSize), ("--embed", embedSize), ("--hidden", hiddenSize)], layers: layers)
    }
}

/// A configuration error with a message meant for the user.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ message: String) { description = message }
}
