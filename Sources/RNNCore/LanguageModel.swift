import CKernels

// Shape legend: T steps, B batch, V vocabulary, E embedding, H hidden, L layers. Token matrices are
// time-major `[T, B]` (element t*B + b), so the rows of every activation are ordered (t, b).

/// How parameters are initialised.
public enum InitScheme: Equatable, Sendable {
    /// PyTorch's defaults: recurrent weights and biases U(−1/√H, 1/√H); word_language_model's encoder and
    /// decoder weights U(−0.1, 0.1), decoder bias 0.
    case pytorch
    /// D2L's from-scratch init: every weight N(0, std²) (0.01 in D2L), every bias 0.
    case normal(std: Float)
}

/// Embedding (or one-hot input) → L recurrent layers → linear decoder → softmax cross-entropy, composed of
/// `Embedding`, `RecurrentStack`, `Linear` and `SoftmaxCrossEntropy` on one flat parameter buffer, with inverted
/// dropout (`Dropout`, counter-based) on the embedding and after every recurrent layer, the last included.
/// Tied (`config.tied`), the decoder's weight is the embedding table: backward adds the decoder's `dyᵀ x` and the
/// embedding's scattered rows into the same gradient tensor, `encoder.weight`.
public final class LanguageModel {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// Every parameter, in `layout` order.
    public let parameters: FloatBuffer
    /// Gradients of the summed loss, same layout; `forwardBackward` accumulates, the caller zeroes.
    public let gradients: FloatBuffer

    /// When set, forward and backward charge their time to its phases.
    public var profile: PhaseProfile? { didSet { stack.profile = profile } }

    private let embedding: Embedding?
    private let stack: RecurrentStack
    /// The decoder and the loss (`OutputLayer`): `decoder.weight [V, H]` (or `encoder.weight` tied), `decoder.bias`.
    private let output: OutputLayer
    /// Dropout sites: 0 on the embedding, k + 1 after layer k (the stack's between-layer sites, then `topDropout`).
    private let embedDropout: Dropout?, topDropout: Dropout?
    private var workspaces: [WorkspaceKey: Workspace] = [:]

    public convenience init(config: ModelConfig) throws(ConfigError) {
        try config.validate()
        self.init(validated: config, parameters: nil)
    }

    /// A replica that reads `other`'s parameters (the same buffer, not a copy) with its own gradients and
    /// workspaces: one per thread of `DataParallel`.
    public convenience init(sharingParametersOf other: LanguageModel) {
        self.init(validated: other.config, parameters: other.parameters)
    }

    private init(validated c: ModelConfig, parameters shared: FloatBuffer?) {
        config = c
        layout = ParameterLayout(model: c)
        parameters = shared ?? FloatBuffer(count: layout.count)
        gradients = FloatBuffer(count: layout.count)
        embedding = c.embedSize == 0 ? nil
            : Embedding(name: "encoder", vocabulary: c.vocabSize, width: c.embedSize, layout: layout)
        stack = RecurrentStack(cell: c.cell, inputSize: c.inputSize, hidden: c.hiddenSize, layers: c.layers,
                               dropout: c.dropout, dropoutSite: 1, prefix: "rnn.", layout: layout)
        output = OutputLayer(name: "decoder", inputs: c.hiddenSize, classes: c.vocabSize, layout: layout,
                             weight: c.tied ? "encoder.weight" : nil)
        embedDropout = c.dropout > 0 && c.embedSize > 0 ? Dropout(probability: c.dropout, site: 0) : nil
        topDropout = c.dropout > 0 ? Dropout(probability: c.dropout, site: UInt64(c.layers)) : nil
    }

    /// Fills the parameters from `rng`, tensor by tensor in layout order (so the result is fixed by the seed).
    public func initialize(_ scheme: InitScheme, rng: inout RandomGenerator) {
        let k = 1 / Float(config.hiddenSize).squareRoot()
        for v in layout.tensors {
            let p = parameters.pointer + v.offset
            let isBias = v.name.contains("bias")
            switch scheme {
            case .pytorch:
                if v.name == "decoder.bias" {
                    for i in 0..<v.count { p[i] = 0 }
                } else if v.name.hasPrefix("rnn.") {
                    for i in 0..<v.count { p[i] = rng.uniform(-k, k) }
                } else {
                    for i in 0..<v.count { p[i] = rng.uniform(-0.1, 0.1) }
                }
            case .normal(let std):
                for i in 0..<v.count { p[i] = isBias ? 0 : Float(rng.normal()) * std }
            }
        }
    }

    public var parameterCount: Int { layout.count }

    // MARK: Training step

    /// Forward and backward over one `[T, B]` minibatch.
    /// - `inputs`, `targets`: token ids, time-major `[T, B]`, each in `0..<V`.
    /// - `state`: initial state of the B streams on entry; their final state on return (detached).
    /// - `dropout`: the key of the dropout masks (run seed, optimizer step); `nil` runs without dropout.
    /// - `rows`: `[B]`, the global row (stream) index of each local column, which the masks are a function of, so
    ///   a minibatch split across threads or processes drops the same units as one process; default `0..<B`.
    /// - `initialStateGradient`: when given, receives `∂L/∂h_0` (and `∂L/∂c_0`), shaped like `state`.
    /// Accumulates `∂(Σ token losses)/∂θ` into `gradients` and returns the loss sum.
    @discardableResult
    public func forwardBackward(
        inputs: [Int32], targets: [Int32], steps: Int, batch: Int, state: inout RecurrentState,
        dropout: DropoutKey? = nil, rows: [Int]? = nil,
        initialStateGradient: UnsafeMutablePointer<RecurrentState>? = nil
    ) -> LossSum {
        checkShapes(inputs: inputs, targets: targets, steps: steps, batch: batch, state: state)
        let ws = workspace(steps: steps, batch: batch)
        ws.setRows(rows)
        return inputs.withUnsafeBufferPointer { inp in
            targets.withUnsafeBufferPointer { tgt in
                profile?.start()
                let top = forwardPass(inp.baseAddress!, ws: ws, state: &state, dropout: dropout)
                ws.dTop.zero()
                profile?.mark(.other)
                let loss = output.forwardBackward(top, rows: steps * batch, targets: tgt.baseAddress!,
                                                  parameters: parameters.pointer, gradients: gradients.pointer,
                                                  logits: ws.logits.pointer, dx: ws.dTop.pointer, profile: profile)
                backwardPass(inp.baseAddress!, ws: ws, initialStateGradient: initialStateGradient)
                profile?.mark(.other)
                return loss
            }
        }
    }

    /// The loss sum of one `[T, B]` minibatch without dropout or gradients; advances `state`.
    public func loss(inputs: [Int32], targets: [Int32], steps: Int, batch: Int,
                     state: inout RecurrentState) -> LossSum {
        checkShapes(inputs: inputs, targets: targets, steps: steps, batch: batch, state: state)
        let ws = workspace(steps: steps, batch: batch)
        return inputs.withUnsafeBufferPointer { inp in
            targets.withUnsafeBufferPointer { tgt in
                let top = forwardPass(inp.baseAddress!, ws: ws, state: &state, dropout: nil)
                return output.loss(top, rows: steps * batch, targets: tgt.baseAddress!, parameters: parameters.pointer,
                                   logits: ws.logits.pointer)
            }
        }
    }

    /// Decoder outputs (unnormalised log-probabilities) `[T*B, V]` for `inputs` `[T, B]`, without dropout;
    /// advances `state`. Used by generation.
    public func logits(inputs: [Int32], steps: Int, batch: Int, state: inout RecurrentState) -> [Float] {
        checkShapes(inputs: inputs, targets: nil, steps: steps, batch: batch, state: state)
        let ws = workspace(steps: steps, batch: batch)
        inputs.withUnsafeBufferPointer {
            let top = forwardPass($0.baseAddress!, ws: ws, state: &state, dropout: nil)
            output.logits(top, rows: steps * batch, parameters: parameters.pointer, into: ws.logits.pointer)
        }
        return Array(UnsafeBufferPointer(start: ws.logits.pointer, count: steps * batch * config.vocabSize))
    }

    /// The decoder's output `[V]` at the zero start state, before any token is read: the top layer's h is 0, so
    /// the logits are the decoder's bias. Generation from an empty prefix draws its first token from these.
    public var startLogits: [Float] {
        let b = layout["decoder.bias"]
        return Array(UnsafeBufferPointer(start: parameters.pointer + b.offset, count: b.count))
    }

    private func checkShapes(inputs: [Int32], targets: [Int32]?, steps: Int, batch: Int, state: RecurrentState) {
        precondition(steps > 0 && batch > 0, "minibatch shape [T=\(steps), B=\(batch)] must be positive")
        precondition(inputs.count == steps * batch, "inputs hold \(inputs.count) tokens, expected T*B = \(steps * batch)")
        if let targets {
            precondition(targets.count == steps * batch, "targets hold \(targets.count) tokens, expected T*B = \(steps * batch)")
            precondition(targets.allSatisfy { $0 >= 0 && Int($0) < config.vocabSize }, "a target token id is outside 0..<\(config.vocabSize)")
        }
        precondition(inputs.allSatisfy { $0 >= 0 && Int($0) < config.vocabSize }, "an input token id is outside 0..<\(config.vocabSize)")
        precondition(state.batch == batch && state.layers == config.layers && state.hidden == config.hiddenSize
                     && state.hasCell == config.cell.hasCell,
                     "state is [L=\(state.layers), B=\(state.batch), H=\(state.hidden)], model needs [\(config.layers), \(batch), \(config.hiddenSize)]")
        let stateCount = state.layers * state.batch * state.hidden
        precondition(state.h.count == stateCount && state.c.count == (state.hasCell ? stateCount : 0),
                     "state holds h \(state.h.count) and c \(state.c.count) floats, expected L*B*H = \(stateCount)")
    }

    // MARK: Workspaces

    private struct WorkspaceKey: Hashable { let steps: Int, batch: Int }

    /// The model's own buffers; the recurrent stack keeps its own per (T, B).
    private final class Workspace {
        let steps: Int, batch: Int
        /// Embedding output (after dropout, in place) `[T*B, E]` and its mask; `∂L/∂` of both `[T*B, E]`.
        let embedded: FloatBuffer, embedMask: FloatBuffer, dEmbedded: FloatBuffer, dEmbeddedRaw: FloatBuffer
        /// The top layer's output after dropout `[T*B, H]` and the mask.
        let dropped: FloatBuffer, topMask: FloatBuffer
        var usedDropout = false
        /// Decoder output `[T*B, V]`; overwritten by `∂L/∂logits` in backward (`OutputLayer`'s scratch).
        let logits: FloatBuffer
        /// `∂L/∂(decoder input)` and `∂L/∂(stack output)` `[T*B, H]`.
        let dTop: FloatBuffer, dStack: FloatBuffer
        /// Global row of each local column `[B]`.
        var rows: [Int]

        init(config c: ModelConfig, steps: Int, batch: Int) {
            self.steps = steps; self.batch = batch
            let n = steps * batch, drop = c.dropout > 0
            embedded = FloatBuffer(count: n * c.embedSize)
            embedMask = FloatBuffer(count: drop ? n * c.embedSize : 0)
            dEmbedded = FloatBuffer(count: n * c.embedSize)
            dEmbeddedRaw = FloatBuffer(count: drop ? n * c.embedSize : 0)
            dropped = FloatBuffer(count: drop ? n * c.hiddenSize : 0)
            topMask = FloatBuffer(count: drop ? n * c.hiddenSize : 0)
            logits = FloatBuffer(count: n * c.vocabSize)
            dTop = FloatBuffer(count: n * c.hiddenSize)
            dStack = FloatBuffer(count: drop ? n * c.hiddenSize : 0)
            rows = Array(0..<batch)
        }

        func setRows(_ r: [Int]?) {
            if let r {
                precondition(r.count == batch, "rows hold \(r.count) indices, the minibatch has \(batch) columns")
                rows = r
            } else if rows.indices != 0..<batch || rows.enumerated().contains(where: { $0.offset != $0.element }) {
                rows = Array(0..<batch)
            }
        }
    }

    private func workspace(steps: Int, batch: Int) -> Workspace {
        let key = WorkspaceKey(steps: steps, batch: batch)
        if let ws = workspaces[key] { return ws }
        // Keep a few shapes (training, validation, generation); drop the rest rather than grow without bound.
        if workspaces.count >= 4 { workspaces.removeAll() }
        let ws = Workspace(config: config, steps: steps, batch: batch)
        workspaces[key] = ws
        return ws
    }

    // MARK: Forward / backward

    /// Embedding, dropout and the recurrent stack; returns the decoder's input `[T*B, H]` (the stack's output,
    /// or `ws.dropped`).
    private func forwardPass(_ tokens: UnsafePointer<Int32>, ws: Workspace, state: inout RecurrentState,
                             dropout key: DropoutKey?) -> UnsafePointer<Float> {
        let c = config, T = ws.steps, B = ws.batch, n = T * B, p = UnsafePointer(parameters.pointer)
        let useDropout = key != nil && c.dropout > 0
        var input = LayerInput.oneHot(tokens)
        if let embedding {
            embedding.forward(tokens, count: n, parameters: p, into: ws.embedded.pointer)
            if useDropout, let embedDropout, let key {
                ws.rows.withUnsafeBufferPointer {
                    embedDropout.forward(ws.embedded.pointer, into: ws.embedded.pointer, mask: ws.embedMask.pointer,
                                         steps: T, batch: B, width: c.embedSize, key: key, rows: $0.baseAddress!)
                }
            }
            input = .dense(UnsafePointer(ws.embedded.pointer))
        }
        profile?.mark(.embedding)
        // The stack reads the initial state and writes the final one into the same arrays, layer by layer
        // (the carried state is detached: no gradient flows back into the previous minibatch).
        let hasCell = c.cell.hasCell
        var top = state.h.withUnsafeMutableBufferPointer { h in
            state.c.withUnsafeMutableBufferPointer { cs in
                stack.forward(input, steps: T, batch: B, parameters: p, initialH: UnsafePointer(h.baseAddress!),
                              initialC: hasCell ? UnsafePointer(cs.baseAddress!) : nil, finalH: h.baseAddress!,
                              finalC: hasCell ? cs.baseAddress! : nil, dropout: useDropout ? key : nil, rows: ws.rows)
            }
        }
        if useDropout, let topDropout, let key {
            ws.rows.withUnsafeBufferPointer {
                topDropout.forward(top, into: ws.dropped.pointer, mask: ws.topMask.pointer, steps: T, batch: B,
                                   width: c.hiddenSize, key: key, rows: $0.baseAddress!)
            }
            top = UnsafePointer(ws.dropped.pointer)
        }
        ws.usedDropout = useDropout
        return top
    }

    private func backwardPass(_ tokens: UnsafePointer<Int32>, ws: Workspace,
                              initialStateGradient: UnsafeMutablePointer<RecurrentState>?) {
        let c = config, B = ws.batch, n = ws.steps * B, p = UnsafePointer(parameters.pointer), g = gradients.pointer
        // ws.dTop holds ∂L/∂(decoder input) (OutputLayer.forwardBackward).
        var dStack = ws.dTop.pointer
        if ws.usedDropout, let topDropout {
            ws.dStack.zero()
            topDropout.backward(ws.dTop.pointer, mask: ws.topMask.pointer, into: ws.dStack.pointer,
                                count: n * c.hiddenSize)
            dStack = ws.dStack.pointer
        }
        profile?.mark(.other)
        if embedding != nil { ws.dEmbedded.zero() }
        let dInput = embedding != nil ? ws.dEmbedded.pointer : nil
        if let isg = initialStateGradient {
            isg.pointee = RecurrentState.zeros(c, batch: B)
            let hasCell = c.cell.hasCell
            isg.pointee.h.withUnsafeMutableBufferPointer { dh in
                isg.pointee.c.withUnsafeMutableBufferPointer { dc in
                    stack.backward(dOutput: dStack, parameters: p, gradients: g, dInput: dInput,
                                   dInitialH: dh.baseAddress!, dInitialC: hasCell ? dc.baseAddress! : nil)
                }
            }
        } else {
            stack.backward(dOutput: dStack, parameters: p, gradients: g, dInput: dInput)
        }
        if let embedding {
            var dEmbedding = ws.dEmbedded.pointer
            if ws.usedDropout, let embedDropout {
                ws.dEmbeddedRaw.zero()
                embedDropout.backward(ws.dEmbedded.pointer, mask: ws.embedMask.pointer, into: ws.dEmbeddedRaw.pointer,
                                      count: n * c.embedSize)
                dEmbedding = ws.dEmbeddedRaw.pointer
            }
            profile?.mark(.other)
            embedding.backward(tokens, count: n, dOut: dEmbedding, gradients: g)
            profile?.mark(.embedding)
        }
    }
}
