/// The structure of a model, as checkpoints record it: which family, and the shape of every part. From it the
/// parameter layout (every tensor's name and shape) is rebuilt, so a checkpoint can be checked against it.
///
/// A new model family adds a case here; checkpoints, the trainer and the wire need no other change.
public enum ModelSpec: Codable, Equatable, Sendable {
    /// Embedding (or one-hot input) → L recurrent layers → linear decoder (`LanguageModel`).
    case languageModel(ModelConfig)
    /// D2L's RNN encoder-decoder for translation (`EncoderDecoder`).
    case translation(EncoderDecoderConfig)

    /// Every parameter tensor, in `state_dict` order.
    public var layout: ParameterLayout {
        switch self {
        case .languageModel(let c): return ParameterLayout(model: c)
        case .translation(let c): return ParameterLayout(encoderDecoder: c)
        }
    }

    /// Throws a message naming the bad field when the shape is unusable.
    public func validate() throws(ConfigError) {
        switch self {
        case .languageModel(let c): try c.validate()
        case .translation(let c): try c.validate()
        }
    }

    /// The largest vocabulary, embedding or hidden size, and the most layers, a model may have: bounds under which
    /// no tensor's element count (at most 4H × max(V, E, H) per layer) nor their sum can overflow `Int`, so a layout
    /// never traps, even for a spec read from a crafted checkpoint; far beyond any machine's memory anyway.
    public static let maxDimension = 1 << 24
    public static let maxLayers = 256

    /// Throws naming the first size past `maxDimension`, or layers past `maxLayers`.
    static func checkSizes(_ sizes: [(String, Int)], layers: Int) throws(ConfigError) {
        for (name, n) in sizes where n > maxDimension {
            throw ConfigError("\(name) of \(n) is larger than rnnlm supports (\(maxDimension))")
        }
        if layers > maxLayers { throw ConfigError("--layers \(layers) is more than rnnlm supports (\(maxLayers))") }
    }

    /// The family's name, as logs and errors show it.
    public var family: String {
        switch self {
        case .languageModel: return "language model"
        case .translation: return "translation model"
        }
    }
}
