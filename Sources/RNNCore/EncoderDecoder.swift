// Shape legend: B pairs (rows), S source steps, T target steps, Vs / Vt source / target vocabulary, E embedding,
// H hidden (the decoder's; each encoder direction has H/D), L layers, D directions (2 when bidirectional).
// Token matrices are time-major `[S, B]` / `[T, B]` (element t*B + b), so activations' rows are ordered (t, b).

/// The shape of D2L's RNN encoder-decoder for translation (9.7), with PyTorch's names (`torch_seq2seq.py`).
public struct EncoderDecoderConfig: Codable, Equatable, Sendable {
    public var sourceVocabSize: Int
    public var targetVocabSize: Int
    public var embedSize: Int
    /// The decoder's hidden width; a bidirectional encoder has H/2 per direction.
    public var hiddenSize: Int
    public var layers: Int
    public var cell: CellKind
    public var bidirectional: Bool
    /// Dropout between recurrent layers (encoder and decoder), as `nn.GRU(dropout:)`.
    public var dropout: Float
    /// The encoder reads each source row up to its length only (packed sequences), so padding changes nothing
    /// (length-bucketed minibatches); otherwise it runs over the padding as D2L's encoder does.
    public var packedSource: Bool

    public init(sourceVocabSize: Int, targetVocabSize: Int, embedSize: Int, hiddenSize: Int, layers: Int, cell: CellKind,
                bidirectional: Bool = false, dropout: Float = 0, packedSource: Bool = false) {
        self.sourceVocabSize = sourceVocabSize; self.targetVocabSize = targetVocabSize; self.embedSize = embedSize
        self.hiddenSize = hiddenSize; self.layers = layers; self.cell = cell; self.bidirectional = bidirectional
        self.dropout = dropout; self.packedSource = packedSource
    }

    public var directions: Int { bidirectional ? 2 : 1 }
    /// Hidden width of each encoder direction.
    public var encoderHidden: Int { hiddenSize / directions }

    public func validate() throws(ConfigError) {
        if sourceVocabSize < 5 || targetVocabSize < 5 {
            throw ConfigError("vocabularies of \(sourceVocabSize) source and \(targetVocabSize) target tokens: each needs <unk>, <pad>, <bos>, <eos> and at least one word — are there enough pairs (--num-examples) for --min-freq?")
        }
        if embedSize < 1 { throw ConfigError("--embed must be at least 1 for translation, got \(embedSize)") }
        if hiddenSize < 1 { throw ConfigError("--hidden must be at least 1, got \(hiddenSize)") }
        if bidirectional && hiddenSize % 2 != 0 {
            throw ConfigError("--bidirectional splits --hidden between two directions: it must be even, got \(hiddenSize)")
        }
        if layers < 1 { throw ConfigError("--layers must be at least 1, got \(layers)") }
        if cell != .gru && cell != .lstm { throw ConfigError("translation uses --model gru or lstm, got \(cell.rawValue)") }
        if !(dropout >= 0 && dropout < 1) { throw ConfigError("--dropout must be in [0, 1), got \(dropout)") }
        try ModelSpec.checkSizes([("source vocabulary", sourceVocabSize), ("target vocabulary", targetVocabSize),
                                  ("--embed", embedSize), ("--hidden", hiddenSize)], layers: layers)
    }
}

extension ParameterLayout {
    /// The layout of `torch_seq2seq.py`'s `state_dict`: `encoder.embedding.weight [Vs, E]`, `encoder.rnn.*`
    /// (`_reverse` for the backward direction), `decoder.embedding.weight [Vt, E]`, `decoder.rnn.*` (input E + H),
    /// `decoder.dense.weight [Vt, H]`, `decoder.dense.bias [Vt]`.
    public init(encoderDecoder c: EncoderDecoderConfig) {
        var shapes = Embedding.parameterShapes(name: "encoder.embedding", vocabulary: c.sourceVocabSize, width: c.embedSize)
        shapes += RecurrentStack.parameterShapes(cell: c.cell, inputSize: c.embedSize, hidden: c.encoderHidden, layers: c.layers,
                                                 bidirectional: c.bidirectional, prefix: "encoder.rnn.")
        shapes += Embedding.parameterShapes(name: "decoder.embedding", vocabulary: c.targetVocabSize, width: c.embedSize)
        shapes += RecurrentStack.parameterShapes(cell: c.cell, inputSize: c.embedSize + c.hiddenSize, hidden: c.hiddenSize,
                                                 layers: c.layers, prefix: "decoder.rnn.")
        shapes += Linear.parameterShapes(name: "decoder.dense", inputs: c.hiddenSize, outputs: c.targetVocabSize)
        self.init(shapes: shapes)
    }
}

/// The decoder's state between steps of translation: `h` (and `c`) `[L, B, H]` and the fixed context `[B, H]`.
public struct DecoderState: Sendable {
    public var h: [Float]
    public var c: [Float]
    public var context: [Float]
    public let batch: Int

    /// The state of rows `rows` (in that order), e.g. the beams that survive a step of beam search.
    public func selecting(rows: [Int], layers: Int, hidden H: Int) -> DecoderState {
        func pick(_ x: [Float], blocks: Int) -> [Float] {
            guard !x.isEmpty else { return [] }
            var out = [Float](); out.reserveCapacity(blocks * rows.count * H)
            for l in 0..<blocks { for r in rows { out += x[((l * batch + r) * H)..<((l * batch + r + 1) * H)] } }
            return out
        }
        return DecoderState(h: pick(h, blocks: layers), c: pick(c, blocks: layers), context: pick(context, blocks: 1),
                            batch: rows.count)
    }
}

/// D2L's RNN encoder-decoder, composed of `Embedding`, `RecurrentStack`, `Linear` and `SoftmaxCrossEntropy` on
/// one flat parameter buffer. The encoder (optionally bidirectional) reads the source; its final state starts the
/// decoder (per layer, the forward and backward halves concatenated), and the top layer's final `h` is the
/// context appended to the decoder's input embedding at every step; the dense layer gives the target logits.
public final class EncoderDecoder {
    public let config: EncoderDecoderConfig
    public let layout: ParameterLayout
    public let parameters: FloatBuffer
    /// Gradients of the summed (masked) loss, same layout; `forwardBackward` accumulates, the caller zeroes.
    public let gradients: FloatBuffer

    private let sourceEmbedding: Embedding, targetEmbedding: Embedding
    private let encoder: RecurrentStack, decoder: RecurrentStack
    /// The dense layer and the loss (`OutputLayer`): `decoder.dense.weight [Vt, H]`, `decoder.dense.bias [Vt]`.
    private let dense: OutputLayer
    private var workspaces: [Shape: Workspace] = [:]

    /// The dropout sites of the decoder's between-layer dropout (the encoder's start at 0).
    static let decoderDropoutSite: UInt64 = 1_000

    public convenience init(config: EncoderDecoderConfig) throws(ConfigError) {
        try config.validate()
        self.init(validated: config, parameters: nil)
    }

    /// A replica that reads `other`'s parameters (the same buffer) with its own gradients and workspaces.
    public convenience init(sharingParametersOf other: EncoderDecoder) {
        self.init(validated: other.config, parameters: other.parameters)
    }

    private init(validated c: EncoderDecoderConfig, parameters shared: FloatBuffer?) {
        config = c
        layout = ParameterLayout(encoderDecoder: c)
        parameters = shared ?? FloatBuffer(count: layout.count)
        gradients = FloatBuffer(count: layout.count)
        sourceEmbedding = Embedding(name: "encoder.embedding", vocabulary: c.sourceVocabSize, width: c.embedSize, layout: layout)
        targetEmbedding = Embedding(name: "decoder.embedding", vocabulary: c.targetVocabSize, width: c.embedSize, layout: layout)
        encoder = RecurrentStack(cell: c.cell, inputSize: c.embedSize, hidden: c.encoderHidden, layers: c.layers,
                                 bidirectional: c.bidirectional, dropout: c.dropout, dropoutSite: 0, prefix: "encoder.rnn.",
                                 layout: layout)
        decoder = RecurrentStack(cell: c.cell, inputSize: c.embedSize + c.hiddenSize, hidden: c.hiddenSize, layers: c.layers,
                                 dropout: c.dropout, dropoutSite: Self.decoderDropoutSite, prefix: "decoder.rnn.", layout: layout)
        dense = OutputLayer(name: "decoder.dense", inputs: c.hiddenSize, classes: c.targetVocabSize, layout: layout)
    }

    public var parameterCount: Int { layout.count }

    /// D2L's initialisation: Xavier-uniform recurrent and dense weight matrices, PyTorch's defaults elsewhere
    /// (embeddings N(0, 1); recurrent biases U(−1/√H, 1/√H) with H the layer's hidden width; the dense bias
    /// U(−1/√H, 1/√H)). Tensor by tensor in layout order, so the result is fixed by the seed.
    public func initialize(rng: inout RandomGenerator) {
        for v in layout.tensors {
            let p = parameters.pointer + v.offset
            if v.name.hasSuffix("embedding.weight") {
                for i in 0..<v.count { p[i] = Float(rng.normal()) }
            } else if v.name.contains("weight") {
                let a = (6 / Float(v.shape[0] + v.shape[1])).squareRoot()
                for i in 0..<v.count { p[i] = rng.uniform(-a, a) }
            } else {
                let hidden = v.name.hasPrefix("encoder.rnn.") ? config.encoderHidden : config.hiddenSize
                let k = 1 / Float(hidden).squareRoot()
                for i in 0..<v.count { p[i] = rng.uniform(-k, k) }
            }
        }
    }

    // MARK: Training

    /// One minibatch of B pairs. All token matrices are time-major.
    public struct Batch {
        /// `[S*B]` source ids (padded), and each row's valid length.
        public var source: [Int32]
        public var sourceLengths: [Int]
        /// `[T*B]` decoder inputs (`<bos>` then the target without its last token) and targets.
        public var decoderInput: [Int32]
        public var target: [Int32]
        /// Each row's valid target length: the loss counts positions t < length only.
        public var targetLengths: [Int]
        public var sourceSteps: Int, targetSteps: Int, batch: Int
        public init(source: [Int32], sourceLengths: [Int], decoderInput: [Int32], target: [Int32], targetLengths: [Int],
                    sourceSteps: Int, targetSteps: Int, batch: Int) {
            self.source = source; self.sourceLengths = sourceLengths; self.decoderInput = decoderInput; self.target = target
            self.targetLengths = targetLengths; self.sourceSteps = sourceSteps; self.targetSteps = targetSteps; self.batch = batch
        }
    }

    /// Forward and backward over `batch`: accumulates `∂(Σ valid-token losses)/∂θ` into `gradients` and returns
    /// the loss sum over valid target tokens. `dropout` keys the between-layer masks (`nil`: no dropout); `rows`
    /// holds each local row's global index (default `0..<B`).
    @discardableResult
    public func forwardBackward(_ batch: Batch, dropout: DropoutKey? = nil, rows: [Int]? = nil) -> LossSum {
        check(batch)
        let ws = workspace(batch)
        return run(batch, ws: ws, dropout: dropout, rows: rows, backward: true)
    }

    /// The loss sum over valid target tokens, without dropout or gradients (teacher forcing).
    public func loss(_ batch: Batch) -> LossSum {
        check(batch)
        return run(batch, ws: workspace(batch), dropout: nil, rows: nil, backward: false)
    }

    private func check(_ b: Batch) {
        let (S, T, B) = (b.sourceSteps, b.targetSteps, b.batch)
        precondition(S > 0 && T > 0 && B > 0, "pair batch shape [S=\(S), T=\(T), B=\(B)] must be positive")
        precondition(b.source.count == S * B && b.decoderInput.count == T * B && b.target.count == T * B,
                     "pair batch holds \(b.source.count)/\(b.decoderInput.count)/\(b.target.count) tokens, expected S*B = \(S * B), T*B = \(T * B)")
        precondition(b.sourceLengths.count == B && b.targetLengths.count == B, "lengths for \(b.sourceLengths.count)/\(b.targetLengths.count) rows, expected \(B)")
        precondition(b.sourceLengths.allSatisfy { $0 >= 0 && $0 <= S } && b.targetLengths.allSatisfy { $0 >= 0 && $0 <= T },
                     "a row's length is outside its steps")
        precondition(b.source.allSatisfy { $0 >= 0 && Int($0) < config.sourceVocabSize }, "a source id is outside 0..<\(config.sourceVocabSize)")
        precondition(b.decoderInput.allSatisfy { $0 >= 0 && Int($0) < config.targetVocabSize }
                     && b.target.allSatisfy { $0 >= 0 && Int($0) < config.targetVocabSize }, "a target id is outside 0..<\(config.targetVocabSize)")
    }

    private func run(_ b: Batch, ws: Workspace, dropout key: DropoutKey?, rows: [Int]?, backward: Bool) -> LossSum {
        let c = config, B = b.batch, E = c.embedSize, H = c.hiddenSize
        // Steps past every row's length change nothing (the decoder is causal and its padded positions are not in
        // the loss; a packed encoder does not read padding), so they are not computed. Time-major token matrices
        // make the first steps a prefix. D2L's unpacked encoder reads the padding: all S steps.
        let S = c.packedSource ? max(1, b.sourceLengths.max() ?? 0) : b.sourceSteps
        let T = max(1, b.targetLengths.max() ?? 0)
        let p = UnsafePointer(parameters.pointer)
        // Encoder.
        b.source.withUnsafeBufferPointer { sourceEmbedding.forward($0.baseAddress!, count: S * B, parameters: p, into: ws.sourceEmbedded.pointer) }
        encoder.forward(.dense(UnsafePointer(ws.sourceEmbedded.pointer)), steps: S, batch: B, parameters: p,
                        finalH: ws.encoderFinalH.pointer, finalC: c.cell.hasCell ? ws.encoderFinalC.pointer : nil,
                        lengths: c.packedSource ? b.sourceLengths : nil, dropout: key, rows: rows)
        joinDirections(ws.encoderFinalH.pointer, into: ws.decoderInitialH.pointer, batch: B)
        if c.cell.hasCell { joinDirections(ws.encoderFinalC.pointer, into: ws.decoderInitialC.pointer, batch: B) }
        // Decoder input: [embedding ; context] at every step.
        b.decoderInput.withUnsafeBufferPointer { targetEmbedding.forward($0.baseAddress!, count: T * B, parameters: p, into: ws.targetEmbedded.pointer) }
        let context = ws.decoderInitialH.pointer + (c.layers - 1) * B * H
        for t in 0..<T {
            for r in 0..<B {
                let row = ws.decoderIn.pointer + (t * B + r) * (E + H)
                row.update(from: ws.targetEmbedded.pointer + (t * B + r) * E, count: E)
                (row + E).update(from: context + r * H, count: H)
            }
        }
        let out = decoder.forward(.dense(UnsafePointer(ws.decoderIn.pointer)), steps: T, batch: B, parameters: p,
                                  initialH: ws.decoderInitialH.pointer, initialC: c.cell.hasCell ? ws.decoderInitialC.pointer : nil,
                                  dropout: key, rows: rows)
        // Only valid target positions reach the dense layer and the loss: padded ones add nothing to either, and
        // skipping them saves the largest GEMMs (the output layer over Vt) in proportion to the padding.
        var valid = 0
        for t in 0..<T {
            for r in 0..<B where t < b.targetLengths[r] {
                (ws.validOut.pointer + valid * H).update(from: out + (t * B + r) * H, count: H)
                ws.validPositions[valid] = t * B + r
                ws.validTargets[valid] = b.target[t * B + r]
                valid += 1
            }
        }
        guard valid > 0 else { return LossSum() }
        let g = gradients.pointer
        if backward { ws.validOutGrad.zero() }
        let loss = ws.validTargets.withUnsafeBufferPointer { tgt in
            backward ? dense.forwardBackward(ws.validOut.pointer, rows: valid, targets: tgt.baseAddress!, parameters: p,
                                             gradients: g, logits: ws.logits.pointer, dx: ws.validOutGrad.pointer)
                     : dense.loss(ws.validOut.pointer, rows: valid, targets: tgt.baseAddress!, parameters: p,
                                  logits: ws.logits.pointer)
        }
        guard backward else { return loss }
        // The dense layer's ∂L/∂(its input) is in validOutGrad; now the decoder: ∂L/∂(decoder input) and
        // ∂L/∂(its initial state).
        ws.decoderOutGrad.zero()
        for i in 0..<valid { (ws.decoderOutGrad.pointer + ws.validPositions[i] * H).update(from: ws.validOutGrad.pointer + i * H, count: H) }
        ws.decoderInGrad.zero(); ws.decoderInitialHGrad.zero(); ws.decoderInitialCGrad.zero()
        decoder.backward(dOutput: ws.decoderOutGrad.pointer, parameters: p, gradients: g, dInput: ws.decoderInGrad.pointer,
                         dInitialH: ws.decoderInitialHGrad.pointer, dInitialC: c.cell.hasCell ? ws.decoderInitialCGrad.pointer : nil)
        // Split ∂L/∂[embedding ; context]: the embedding part to the target table, the context part (summed over
        // the steps) to the top layer's initial h, which is the encoder's final h.
        let dContext = ws.decoderInitialHGrad.pointer + (c.layers - 1) * B * H
        for t in 0..<T {
            for r in 0..<B {
                let row = ws.decoderInGrad.pointer + (t * B + r) * (E + H)
                (ws.targetEmbedded.pointer + (t * B + r) * E).update(from: row, count: E)
                addRow(dContext + r * H, row + E, count: H)
            }
        }
        b.decoderInput.withUnsafeBufferPointer {
            targetEmbedding.backward($0.baseAddress!, count: T * B, dOut: ws.targetEmbedded.pointer, gradients: g)
        }
        // Encoder: its final state's gradient is the decoder's initial state's, split back into directions.
        splitDirections(ws.decoderInitialHGrad.pointer, into: ws.encoderFinalH.pointer, batch: B)
        if c.cell.hasCell { splitDirections(ws.decoderInitialCGrad.pointer, into: ws.encoderFinalC.pointer, batch: B) }
        ws.sourceEmbeddedGrad.zero()
        encoder.backward(dOutput: nil, dFinalH: ws.encoderFinalH.pointer, dFinalC: c.cell.hasCell ? ws.encoderFinalC.pointer : nil,
                         parameters: p, gradients: g, dInput: ws.sourceEmbeddedGrad.pointer)
        b.source.withUnsafeBufferPointer {
            sourceEmbedding.backward($0.baseAddress!, count: S * B, dOut: ws.sourceEmbeddedGrad.pointer, gradients: g)
        }
        return loss
    }

    /// Encoder final state `[L*D, B, H/D]` → decoder initial state `[L, B, H]`: per layer and row, the forward
    /// direction's h then the backward direction's.
    private func joinDirections(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, batch B: Int) {
        let D = config.directions, h = config.encoderHidden, H = config.hiddenSize
        for l in 0..<config.layers { for d in 0..<D { for r in 0..<B {
            (y + (l * B + r) * H + d * h).update(from: x + ((l * D + d) * B + r) * h, count: h)
        } } }
    }

    /// The inverse of `joinDirections`, for gradients.
    private func splitDirections(_ y: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, batch B: Int) {
        let D = config.directions, h = config.encoderHidden, H = config.hiddenSize
        for l in 0..<config.layers { for d in 0..<D { for r in 0..<B {
            (x + ((l * D + d) * B + r) * h).update(from: y + (l * B + r) * H + d * h, count: h)
        } } }
    }

    // MARK: Translation

    /// Encodes B source rows (`[S*B]` time-major, padded) into the decoder's starting state.
    public func encode(source: [Int32], lengths: [Int], steps S: Int, batch B: Int) -> DecoderState {
        precondition(S > 0 && B > 0, "source shape [S=\(S), B=\(B)] must be positive")
        precondition(source.count == S * B && lengths.count == B, "source of \(source.count) ids for [S=\(S), B=\(B)]")
        precondition(lengths.allSatisfy { $0 >= 0 && $0 <= S }, "a row's length is outside 0...\(S)")
        precondition(source.allSatisfy { $0 >= 0 && Int($0) < config.sourceVocabSize }, "a source id is outside 0..<\(config.sourceVocabSize)")
        let c = config, H = c.hiddenSize
        let ws = workspace(Batch(source: [], sourceLengths: [], decoderInput: [], target: [], targetLengths: [],
                                 sourceSteps: S, targetSteps: 1, batch: B))
        let p = UnsafePointer(parameters.pointer)
        source.withUnsafeBufferPointer { sourceEmbedding.forward($0.baseAddress!, count: S * B, parameters: p, into: ws.sourceEmbedded.pointer) }
        encoder.forward(.dense(UnsafePointer(ws.sourceEmbedded.pointer)), steps: S, batch: B, parameters: p,
                        finalH: ws.encoderFinalH.pointer, finalC: c.cell.hasCell ? ws.encoderFinalC.pointer : nil,
                        lengths: c.packedSource ? lengths : nil)
        joinDirections(ws.encoderFinalH.pointer, into: ws.decoderInitialH.pointer, batch: B)
        if c.cell.hasCell { joinDirections(ws.encoderFinalC.pointer, into: ws.decoderInitialC.pointer, batch: B) }
        let h = Array(UnsafeBufferPointer(start: ws.decoderInitialH.pointer, count: c.layers * B * H))
        let cs = c.cell.hasCell ? Array(UnsafeBufferPointer(start: ws.decoderInitialC.pointer, count: c.layers * B * H)) : []
        return DecoderState(h: h, c: cs, context: Array(h[((c.layers - 1) * B * H)...]), batch: B)
    }

    /// One decoder step for every row of `state`: feeds `tokens` `[B]`, advances the state, returns the target
    /// logits `[B, Vt]`.
    public func decodeStep(tokens: [Int32], state: inout DecoderState) -> [Float] {
        let c = config, B = state.batch, E = c.embedSize, H = c.hiddenSize
        precondition(B > 0 && tokens.count == B, "\(tokens.count) tokens for \(B) rows")
        precondition(tokens.allSatisfy { $0 >= 0 && Int($0) < c.targetVocabSize }, "a target id is outside 0..<\(c.targetVocabSize)")
        let stateCount = c.layers * B * H
        precondition(state.h.count == stateCount && state.c.count == (c.cell.hasCell ? stateCount : 0)
                     && state.context.count == B * H,
                     "decoder state holds h \(state.h.count), c \(state.c.count), context \(state.context.count) floats; the model needs h [L=\(c.layers), B=\(B), H=\(H)], c the same for LSTM (else none), context [B, H]")
        let ws = workspace(Batch(source: [], sourceLengths: [], decoderInput: [], target: [], targetLengths: [],
                                 sourceSteps: 1, targetSteps: 1, batch: B))
        let p = UnsafePointer(parameters.pointer)
        tokens.withUnsafeBufferPointer { targetEmbedding.forward($0.baseAddress!, count: B, parameters: p, into: ws.targetEmbedded.pointer) }
        for r in 0..<B {
            let row = ws.decoderIn.pointer + r * (E + H)
            row.update(from: ws.targetEmbedded.pointer + r * E, count: E)
            state.context.withUnsafeBufferPointer { (row + E).update(from: $0.baseAddress! + r * H, count: H) }
        }
        let out = state.h.withUnsafeMutableBufferPointer { h in
            state.c.withUnsafeMutableBufferPointer { cs in
                decoder.forward(.dense(UnsafePointer(ws.decoderIn.pointer)), steps: 1, batch: B, parameters: p,
                                initialH: UnsafePointer(h.baseAddress!), initialC: cs.baseAddress.map { UnsafePointer($0) },
                                finalH: h.baseAddress!, finalC: cs.baseAddress)
            }
        }
        dense.logits(out, rows: B, parameters: p, into: ws.logits.pointer)
        return Array(UnsafeBufferPointer(start: ws.logits.pointer, count: B * c.targetVocabSize))
    }

    // MARK: Workspaces

    private struct Shape: Hashable { let source: Int, target: Int, batch: Int }

    private final class Workspace {
        let sourceEmbedded: FloatBuffer, sourceEmbeddedGrad: FloatBuffer
        let encoderFinalH: FloatBuffer, encoderFinalC: FloatBuffer
        let decoderInitialH: FloatBuffer, decoderInitialC: FloatBuffer
        let decoderInitialHGrad: FloatBuffer, decoderInitialCGrad: FloatBuffer
        let targetEmbedded: FloatBuffer, decoderIn: FloatBuffer, decoderInGrad: FloatBuffer, decoderOutGrad: FloatBuffer
        /// The decoder outputs at valid target positions `[N_valid, H]` (and their gradient), where those positions
        /// are in `[T*B]`, their targets, and the logits `[N_valid, Vt]`.
        let validOut: FloatBuffer, validOutGrad: FloatBuffer
        var validPositions: [Int], validTargets: [Int32]
        let logits: FloatBuffer

        init(_ c: EncoderDecoderConfig, source S: Int, target T: Int, batch B: Int) {
            let E = c.embedSize, H = c.hiddenSize, state = c.layers * B * H, cells = c.cell.hasCell ? state : 0
            sourceEmbedded = FloatBuffer(count: S * B * E); sourceEmbeddedGrad = FloatBuffer(count: S * B * E)
            encoderFinalH = FloatBuffer(count: state); encoderFinalC = FloatBuffer(count: cells)
            decoderInitialH = FloatBuffer(count: state); decoderInitialC = FloatBuffer(count: cells)
            decoderInitialHGrad = FloatBuffer(count: state); decoderInitialCGrad = FloatBuffer(count: cells)
            targetEmbedded = FloatBuffer(count: T * B * E)
            decoderIn = FloatBuffer(count: T * B * (E + H)); decoderInGrad = FloatBuffer(count: T * B * (E + H))
            decoderOutGrad = FloatBuffer(count: T * B * H)
            validOut = FloatBuffer(count: T * B * H); validOutGrad = FloatBuffer(count: T * B * H)
            validPositions = [Int](repeating: 0, count: T * B); validTargets = [Int32](repeating: 0, count: T * B)
            logits = FloatBuffer(count: T * B * c.targetVocabSize)
        }
    }

    private func workspace(_ b: Batch) -> Workspace {
        let key = Shape(source: b.sourceSteps, target: b.targetSteps, batch: b.batch)
        if let ws = workspaces[key] { return ws }
        // Bucketed minibatches bring a shape per length; keep a bounded set rather than grow without bound.
        if workspaces.count >= 16 { workspaces.removeAll() }
        let ws = Workspace(config, source: b.sourceSteps, target: b.targetSteps, batch: b.batch)
        workspaces[key] = ws
        return ws
    }
}
