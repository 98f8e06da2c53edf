import CKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Shape legend: T steps, B batch, V vocabulary, E embedding, H hidden, L layers. Token matrices are
// time-major `[T, B]` (element t*B + b), so the rows of every activation are ordered (t, b).

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

/// How parameters are initialised.
public enum InitScheme: Equatable, Sendable {
    /// PyTorch's defaults: recurrent weights and biases U(−1/√H, 1/√H); word_language_model's encoder and
    /// decoder weights U(−0.1, 0.1), decoder bias 0.
    case pytorch
    /// D2L's from-scratch init: every weight N(0, std²) (0.01 in D2L), every bias 0.
    case normal(std: Float)
}

/// Embedding → L recurrent layers → linear decoder → softmax cross-entropy, on one flat parameter buffer.
public final class LanguageModel {
    public let config: ModelConfig
    public let layout: ParameterLayout
    /// Every parameter, in `layout` order.
    public let parameters: FloatBuffer
    /// Gradients of the summed loss, same layout; `forwardBackward` accumulates, the caller zeroes.
    public let gradients: FloatBuffer

    private let layers: [RecurrentLayer]
    /// When set, forward and backward charge their time to its phases.
    public var profile: PhaseProfile?
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

    private init(validated config: ModelConfig, parameters shared: FloatBuffer?) {
        self.config = config
        layout = ParameterLayout(model: config)
        parameters = shared ?? FloatBuffer(count: layout.count)
        gradients = FloatBuffer(count: layout.count)
        layers = (0..<config.layers).map {
            RecurrentLayer(cell: config.cell, inputSize: $0 == 0 ? config.inputSize : config.hiddenSize,
                           hidden: config.hiddenSize)
        }
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
    /// - `dropout`: the generator for dropout masks; `nil` runs without dropout (evaluation).
    /// - `initialStateGradient`: when given, receives `∂L/∂h_0` (and `∂L/∂c_0`), shaped like `state`.
    /// Accumulates `∂(Σ token losses)/∂θ` into `gradients` and returns the loss sum.
    @discardableResult
    public func forwardBackward(
        inputs: [Int32], targets: [Int32], steps: Int, batch: Int, state: inout RecurrentState,
        dropout: UnsafeMutablePointer<RandomGenerator>? = nil,
        initialStateGradient: UnsafeMutablePointer<RecurrentState>? = nil
    ) -> LossSum {
        checkShapes(inputs: inputs, targets: targets, steps: steps, batch: batch, state: state)
        let ws = workspace(steps: steps, batch: batch)
        let loss = inputs.withUnsafeBufferPointer { inp in
            targets.withUnsafeBufferPointer { tgt in
                profile?.start()
                forwardPass(inp.baseAddress!, ws: ws, state: &state, dropout: dropout)
                let loss = crossEntropy(ws.logits.pointer, targets: tgt.baseAddress!, rows: steps * batch,
                                        vocab: config.vocabSize, gradientScale: 1)
                profile?.mark(.decoderSoftmax)
                backwardPass(inp.baseAddress!, ws: ws, initialStateGradient: initialStateGradient)
                profile?.mark(.other)
                return loss
            }
        }
        return loss
    }

    /// The loss sum of one `[T, B]` minibatch without dropout or gradients; advances `state`.
    public func loss(inputs: [Int32], targets: [Int32], steps: Int, batch: Int,
                     state: inout RecurrentState) -> LossSum {
        checkShapes(inputs: inputs, targets: targets, steps: steps, batch: batch, state: state)
        let ws = workspace(steps: steps, batch: batch)
        return inputs.withUnsafeBufferPointer { inp in
            targets.withUnsafeBufferPointer { tgt in
                forwardPass(inp.baseAddress!, ws: ws, state: &state, dropout: nil)
                return crossEntropy(ws.logits.pointer, targets: tgt.baseAddress!, rows: steps * batch,
                                    vocab: config.vocabSize, gradientScale: nil)
            }
        }
    }

    /// Decoder outputs (unnormalised log-probabilities) `[T*B, V]` for `inputs` `[T, B]`, without dropout;
    /// advances `state`. Used by generation.
    public func logits(inputs: [Int32], steps: Int, batch: Int, state: inout RecurrentState) -> [Float] {
        checkShapes(inputs: inputs, targets: nil, steps: steps, batch: batch, state: state)
        let ws = workspace(steps: steps, batch: batch)
        inputs.withUnsafeBufferPointer { forwardPass($0.baseAddress!, ws: ws, state: &state, dropout: nil) }
        return Array(UnsafeBufferPointer(start: ws.logits.pointer, count: steps * batch * config.vocabSize))
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
    }

    // MARK: Workspaces

    private struct WorkspaceKey: Hashable { let steps: Int, batch: Int }

    private final class Workspace {
        let steps: Int, batch: Int
        let layers: [LayerWorkspace]
        /// Embedding output after dropout `[T*B, E]`, and the embedding dropout mask.
        let embedded: FloatBuffer, embedMask: FloatBuffer
        /// Per layer: its output after dropout `[T*B, H]` and the mask (used when dropout > 0).
        let dropped: [FloatBuffer], masks: [FloatBuffer]
        /// Decoder output `[T*B, V]`; overwritten by `∂L/∂logits` in backward.
        let logits: FloatBuffer
        /// Ping-pong buffers for `∂L/∂(layer input/output)`, `[T*B, max(E, H)]`.
        let gradA: FloatBuffer, gradB: FloatBuffer

        init(config c: ModelConfig, steps: Int, batch: Int) {
            self.steps = steps; self.batch = batch
            let rows = steps * batch, useDropout = c.dropout > 0
            layers = (0..<c.layers).map {
                LayerWorkspace(cell: c.cell, steps: steps, batch: batch, hidden: c.hiddenSize,
                               oneHotInput: $0 == 0 && c.embedSize == 0 ? c.vocabSize : 0)
            }
            embedded = FloatBuffer(count: rows * c.embedSize)
            embedMask = FloatBuffer(count: useDropout ? rows * c.embedSize : 0)
            dropped = (0..<c.layers).map { _ in FloatBuffer(count: useDropout ? rows * c.hiddenSize : 0) }
            masks = (0..<c.layers).map { _ in FloatBuffer(count: useDropout ? rows * c.hiddenSize : 0) }
            logits = FloatBuffer(count: rows * c.vocabSize)
            gradA = FloatBuffer(count: rows * max(c.embedSize, c.hiddenSize))
            gradB = FloatBuffer(count: rows * max(c.embedSize, c.hiddenSize))
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

    private var layerParams: [LayerParams] {
        (0..<config.layers).map { LayerParams(base: parameters.pointer, layout: layout, layer: $0) }
    }
    private var layerGrads: [LayerParams] {
        (0..<config.layers).map { LayerParams(base: gradients.pointer, layout: layout, layer: $0) }
    }

    /// Inverted dropout: fills `mask` with 0 or 1/(1−p) and multiplies `x` by it into `out`.
    private func dropout(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                         mask: UnsafeMutablePointer<Float>, count: Int, rng: UnsafeMutablePointer<RandomGenerator>) {
        let p = config.dropout, keep = 1 / (1 - p)
        for i in 0..<count {
            let m: Float = rng.pointee.uniform() < p ? 0 : keep
            mask[i] = m
            out[i] = x[i] * m
        }
    }

    private func forwardPass(_ tokens: UnsafePointer<Int32>, ws: Workspace, state: inout RecurrentState,
                             dropout rng: UnsafeMutablePointer<RandomGenerator>?) {
        let c = config, T = ws.steps, B = ws.batch, H = c.hiddenSize, rows = T * B
        let useDropout = rng != nil && c.dropout > 0
        let params = layerParams
        var input: LayerInput
        if c.embedSize > 0 {
            let E = c.embedSize, table = parameters.pointer + layout["encoder.weight"].offset
            for r in 0..<rows { (ws.embedded.pointer + r * E).update(from: table + Int(tokens[r]) * E, count: E) }
            if useDropout {
                dropout(ws.embedded.pointer, into: ws.embedded.pointer, mask: ws.embedMask.pointer, count: rows * E, rng: rng!)
            }
            input = .dense(UnsafePointer(ws.embedded.pointer))
        } else {
            input = .oneHot(tokens)
        }
        for (l, layer) in layers.enumerated() {
            let lw = ws.layers[l]
            profile?.mark(.other)
            state.h.withUnsafeBufferPointer { lw.hs.pointer.update(from: $0.baseAddress! + l * B * H, count: B * H) }
            if c.cell.hasCell {
                state.c.withUnsafeBufferPointer { lw.cs.pointer.update(from: $0.baseAddress! + l * B * H, count: B * H) }
            }
            profile?.mark(.other)
            layer.forward(input, p: params[l], ws: lw, profile: profile)
            profile?.mark(.recurrence)
            // Carry the final state (the caller's next minibatch starts from it; no gradient flows back).
            state.h.withUnsafeMutableBufferPointer {
                ($0.baseAddress! + l * B * H).update(from: lw.hs.pointer + T * B * H, count: B * H)
            }
            if c.cell.hasCell {
                state.c.withUnsafeMutableBufferPointer {
                    ($0.baseAddress! + l * B * H).update(from: lw.cs.pointer + T * B * H, count: B * H)
                }
            }
            if useDropout {
                dropout(lw.outputs, into: ws.dropped[l].pointer, mask: ws.masks[l].pointer, count: rows * H, rng: rng!)
                input = .dense(UnsafePointer(ws.dropped[l].pointer))
            } else {
                input = .dense(UnsafePointer(lw.outputs))
            }
        }
        guard case .dense(let top) = input else { preconditionFailure("a model has at least one layer") }
        profile?.mark(.other)
        let V = c.vocabSize
        fillRows(ws.logits.pointer, rows: rows, n: V, with: parameters.pointer + layout["decoder.bias"].offset)
        sgemm(transB: true, m: rows, n: V, k: H, a: top, lda: H, b: parameters.pointer + layout["decoder.weight"].offset,
              ldb: H, beta: 1, c: ws.logits.pointer, ldc: V)
        lastForwardUsedDropout = useDropout
    }

    private var lastForwardUsedDropout = false

    private func backwardPass(_ tokens: UnsafePointer<Int32>, ws: Workspace,
                              initialStateGradient: UnsafeMutablePointer<RecurrentState>?) {
        let c = config, B = ws.batch, H = c.hiddenSize, V = c.vocabSize, rows = ws.steps * B
        let useDropout = lastForwardUsedDropout
        let params = layerParams, grads = layerGrads
        // Decoder: dW += dlogitsᵀ · top, db += Σ dlogits, dTop = dlogits · W.
        let topIn = useDropout ? ws.dropped[c.layers - 1].pointer : ws.layers[c.layers - 1].outputs
        sgemm(transA: true, m: V, n: H, k: rows, a: ws.logits.pointer, lda: V, b: topIn, ldb: H, beta: 1,
              c: gradients.pointer + layout["decoder.weight"].offset, ldc: H)
        rk_column_sums(ws.logits.pointer, Int64(rows), Int64(V), gradients.pointer + layout["decoder.bias"].offset)
        var dOut = ws.gradA.pointer, dSpare = ws.gradB.pointer
        sgemm(m: rows, n: H, k: V, a: ws.logits.pointer, lda: V, b: parameters.pointer + layout["decoder.weight"].offset,
              ldb: H, beta: 0, c: dOut, ldc: H)
        profile?.mark(.decoderSoftmax)
        if initialStateGradient != nil {
            initialStateGradient!.pointee = RecurrentState.zeros(c, batch: B)
        }
        for l in stride(from: c.layers - 1, through: 0, by: -1) {
            if useDropout { let m = ws.masks[l].pointer; for i in 0..<(rows * H) { dOut[i] *= m[i] } }
            let input: LayerInput
            if l > 0 {
                input = .dense(UnsafePointer(useDropout ? ws.dropped[l - 1].pointer : ws.layers[l - 1].outputs))
            } else {
                input = c.embedSize > 0 ? .dense(UnsafePointer(ws.embedded.pointer)) : .oneHot(tokens)
            }
            let needInputGrad = l > 0 || c.embedSize > 0
            profile?.mark(.other)
            layers[l].backward(input, p: params[l], g: grads[l], ws: ws.layers[l], dOut: dOut,
                               dInput: needInputGrad ? dSpare : nil, needInitialGradient: initialStateGradient != nil,
                               profile: profile)
            if let isg = initialStateGradient {
                let lw = ws.layers[l]
                isg.pointee.h.withUnsafeMutableBufferPointer { ($0.baseAddress! + l * B * H).update(from: lw.dh.pointer, count: B * H) }
                if c.cell.hasCell {
                    isg.pointee.c.withUnsafeMutableBufferPointer { ($0.baseAddress! + l * B * H).update(from: lw.dc.pointer, count: B * H) }
                }
            }
            swap(&dOut, &dSpare)
        }
        if c.embedSize > 0 {
            // dOut now holds ∂L/∂(embedding after dropout).
            let E = c.embedSize, dTable = gradients.pointer + layout["encoder.weight"].offset
            if useDropout { let m = ws.embedMask.pointer; for i in 0..<(rows * E) { dOut[i] *= m[i] } }
            for r in 0..<rows {
                let src = dOut + r * E, dst = dTable + Int(tokens[r]) * E
                for j in 0..<E { dst[j] += src[j] }
            }
        }
    }
}

/// Fused log-softmax + cross-entropy over `rows` rows of `[rows, vocab]` logits.
/// Returns the loss sum (accumulated in Double). When `gradientScale` is given, overwrites the logits with
/// `gradientScale · (softmax − onehot(target))`, the gradient of `gradientScale · Σ losses`.
public func crossEntropy(_ logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocab V: Int,
                         gradientScale: Float?) -> LossSum {
    let total = rk_cross_entropy(logits, targets, Int64(rows), Int64(V), gradientScale == nil ? 0 : 1, gradientScale ?? 0)
    return LossSum(sum: total, count: rows)
}
