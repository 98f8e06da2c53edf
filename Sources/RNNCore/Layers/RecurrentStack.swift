import CKernels

// Shape legend: T steps, B batch, I input width, H hidden, L layers, D directions (2 when bidirectional, else 1),
// G gates. Activations are time-major `[T*B, X]` (row t*B + b). A state is `[L*D, B, H]`: block k*D + d holds
// layer k, direction d (PyTorch's `h_n` layout); the LSTM cell state `c` has the same shape.
// Lengths `len [B]` (optional): positions t >= len[b] of row b are padding (PyTorch packed-sequence semantics:
// not read, not back-propagated, output 0; the row's final state is the one after its last valid step, and the
// reverse direction starts at the row's own last valid position).

/// L stacked recurrent layers (RNN tanh/ReLU, GRU, LSTM), uni- or bidirectional, with PyTorch's parameters:
/// for each layer k, `{prefix}weight_ih_l{k} [G*H, in_k]`, `{prefix}weight_hh_l{k} [G*H, H]`, `{prefix}bias_ih_l{k}`,
/// `{prefix}bias_hh_l{k}` `[G*H]`, then (bidirectional) the same four with the suffix `_reverse`; `in_0 = I`,
/// `in_k = D*H`, and the input of layer k > 0 is `[forward ; backward]` outputs of layer k − 1. Optional dropout
/// between layers (not after the last), as `nn.GRU(dropout:)`, with counter-based masks.
///
/// `forward` keeps what `backward` needs in a workspace per (T, B); `backward` goes through the last `forward`
/// and accumulates into the parameter gradients, the input gradient and the initial-state gradient.
public final class RecurrentStack {
    public let cell: CellKind
    public let inputSize: Int, hidden: Int, layers: Int
    public let bidirectional: Bool
    /// Dropout on the output of layer k for every k < L − 1 (site `dropoutSite + k`); empty when p = 0.
    public let dropouts: [Dropout]
    /// When set, the layers charge their time to its phases.
    public var profile: PhaseProfile?

    public var directions: Int { bidirectional ? 2 : 1 }
    /// `D*H`: the width of every layer's output.
    public var outputSize: Int { directions * hidden }
    /// `L*D`: the number of `[B, H]` blocks in a state.
    public var stateBlocks: Int { layers * directions }

    private let cells: [RecurrentLayer]
    /// `[layer][direction]`.
    private let offsets: [[LayerOffsets]]
    private var workspaces: [Shape: Workspace] = [:]
    private var last: Workspace?

    /// The tensors a stack adds to a parameter layout, in PyTorch's `state_dict` order.
    public static func parameterShapes(cell: CellKind, inputSize: Int, hidden: Int, layers: Int,
                                       bidirectional: Bool = false, prefix: String = "rnn.") -> [(String, [Int])] {
        let gh = cell.gates * hidden, d = bidirectional ? 2 : 1
        var shapes: [(String, [Int])] = []
        for k in 0..<layers {
            for suffix in bidirectional ? ["", "_reverse"] : [""] {
                shapes.append(("\(prefix)weight_ih_l\(k)\(suffix)", [gh, k == 0 ? inputSize : d * hidden]))
                shapes.append(("\(prefix)weight_hh_l\(k)\(suffix)", [gh, hidden]))
                shapes.append(("\(prefix)bias_ih_l\(k)\(suffix)", [gh]))
                shapes.append(("\(prefix)bias_hh_l\(k)\(suffix)", [gh]))
            }
        }
        return shapes
    }

    /// Binds to the tensors named `parameterShapes(...)` in `layout`.
    public init(cell: CellKind, inputSize: Int, hidden: Int, layers: Int, bidirectional: Bool = false,
                dropout: Float = 0, dropoutSite: UInt64 = 0, prefix: String = "rnn.", layout: ParameterLayout) {
        precondition(layers >= 1 && hidden >= 1 && inputSize >= 1, "a recurrent stack needs L, H, I >= 1")
        self.cell = cell; self.inputSize = inputSize; self.hidden = hidden; self.layers = layers
        self.bidirectional = bidirectional
        dropouts = dropout <= 0 ? [] : (0..<(layers - 1)).map {
            Dropout(probability: dropout, site: dropoutSite + UInt64($0))
        }
        let d = bidirectional ? 2 : 1
        cells = (0..<layers).map {
            RecurrentLayer(cell: cell, inputSize: $0 == 0 ? inputSize : d * hidden, hidden: hidden)
        }
        offsets = (0..<layers).map { k in
            (bidirectional ? ["", "_reverse"] : [""]).map {
                LayerOffsets(layout: layout, prefix: prefix, layer: k, suffix: $0)
            }
        }
        for (name, shape) in Self.parameterShapes(cell: cell, inputSize: inputSize, hidden: hidden, layers: layers,
                                                  bidirectional: bidirectional, prefix: prefix) {
            precondition(layout[name].shape == shape,
                         "\(name) is \(layout[name].shape) in the layout, expected \(shape)")
        }
    }

    // MARK: Forward / backward

    /// Runs the stack over `input` (`[T*B, I]` dense, or `[T*B]` token ids when `I = V`), which must stay valid
    /// until `backward`. Returns the top layer's output `[T*B, D*H]` (valid until the next `forward`).
    /// - `initialH`, `initialC`: `[L*D, B, H]`; `nil` is a zero state (`initialC` is read for LSTM only).
    /// - `finalH`, `finalC`: receive the final state `[L*D, B, H]` when given (they may be the initial buffers).
    /// - `lengths`: `[B]` valid steps per row, each in `0...T`; `nil` means all T.
    /// - `dropout`, `rows`: the key of the between-layer dropout masks (`nil`: none, as in evaluation) and the global
    ///   row index of each local column (`nil`: `0..<B`).
    @discardableResult
    public func forward(_ input: LayerInput, steps T: Int, batch B: Int, parameters: UnsafePointer<Float>,
                        initialH: UnsafePointer<Float>? = nil, initialC: UnsafePointer<Float>? = nil,
                        finalH: UnsafeMutablePointer<Float>? = nil, finalC: UnsafeMutablePointer<Float>? = nil,
                        lengths: [Int]? = nil, dropout key: DropoutKey? = nil,
                        rows: [Int]? = nil) -> UnsafePointer<Float> {
        precondition(T > 0 && B > 0, "stack input shape [T=\(T), B=\(B)] must be positive")
        let ws = workspace(steps: T, batch: B)
        last = ws
        ws.setLengths(lengths, steps: T)
        ws.setRows(rows)
        ws.usedDropout = key != nil && !dropouts.isEmpty
        let H = hidden, D = directions, BH = B * H, hasCell = cell.hasCell
        let p = UnsafeMutablePointer(mutating: parameters)
        let len = ws.hasLengths ? UnsafePointer(ws.lengths) : nil
        var x = input
        for k in 0..<layers {
            ws.layerInputs[k] = x
            for d in 0..<D {
                let lw = ws.cells[k][d], block = (k * D + d) * BH
                copyOrZero(initialH.map { $0 + block }, into: lw.hs.pointer, count: BH)
                if hasCell { copyOrZero(initialC.map { $0 + block }, into: lw.cs.pointer, count: BH) }
                profile?.mark(.other)
                let input = d == 0 ? x : reversedInput(x, layer: k, ws: ws)
                cells[k].forward(input, p: LayerParams(base: p, offsets[k][d]), ws: lw, lengths: len, profile: profile)
                profile?.mark(.recurrence)
                if let finalH {
                    (finalH + block).update(from: len == nil ? lw.hs.pointer + T * BH : lw.finalH.pointer, count: BH)
                }
                if let finalC, hasCell {
                    (finalC + block).update(from: len == nil ? lw.cs.pointer + T * BH : lw.finalC.pointer, count: BH)
                }
            }
            var out = UnsafePointer(ws.cells[k][0].outputs)
            if bidirectional {
                let cat = ws.concat[k].pointer
                copyColumns(out, stride: H, into: cat, stride: 2 * H, width: H, steps: T, batch: B, reversing: nil)
                copyColumns(ws.cells[k][1].outputs, stride: H, into: cat + H, stride: 2 * H, width: H, steps: T,
                            batch: B, reversing: len ?? ws.fullLengths)
                out = UnsafePointer(cat)
            }
            if k < layers - 1, ws.usedDropout, let key {
                dropouts[k].forward(out, into: ws.dropped[k].pointer, mask: ws.masks[k].pointer, steps: T, batch: B,
                                    width: outputSize, key: key, rows: ws.rows)
                out = UnsafePointer(ws.dropped[k].pointer)
            }
            x = .dense(out)
        }
        profile?.mark(.other)
        guard case .dense(let top) = x else { preconditionFailure("a stack has at least one layer") }
        return top
    }

    /// Backpropagation through the last `forward`.
    /// - `dOutput`: `∂L/∂output` `[T*B, D*H]` (`nil`: the loss does not read the outputs).
    /// - `dFinalH`, `dFinalC`: `∂L/∂(final state)` `[L*D, B, H]` when the loss reads the final state (an encoder
    ///   whose final state starts a decoder).
    /// - Accumulates `∂L/∂θ` into `gradients` (same layout as `parameters`), `∂L/∂input` `[T*B, I]` into `dInput`
    ///   (dense input only), and `∂L/∂(initial state)` `[L*D, B, H]` into `dInitialH` / `dInitialC` when given.
    public func backward(dOutput: UnsafePointer<Float>?, dFinalH: UnsafePointer<Float>? = nil,
                         dFinalC: UnsafePointer<Float>? = nil, parameters: UnsafePointer<Float>,
                         gradients: UnsafeMutablePointer<Float>, dInput: UnsafeMutablePointer<Float>? = nil,
                         dInitialH: UnsafeMutablePointer<Float>? = nil, dInitialC: UnsafeMutablePointer<Float>? = nil) {
        guard let ws = last else { preconditionFailure("RecurrentStack.backward needs a forward first") }
        let T = ws.steps, B = ws.batch, H = hidden, D = directions, BH = B * H, rows = T * B, DH = outputSize
        let p = UnsafeMutablePointer(mutating: parameters)
        let len = ws.hasLengths ? UnsafePointer(ws.lengths) : nil
        let needInitial = dInitialH != nil || (cell.hasCell && dInitialC != nil)
        var dOut: UnsafePointer<Float>
        if let dOutput { dOut = dOutput } else { ws.gradB.zero(); dOut = UnsafePointer(ws.gradB.pointer) }
        for k in stride(from: layers - 1, through: 0, by: -1) {
            // ∂L/∂(this layer's input): the caller's buffer for layer 0, else a scratch buffer other than dOut.
            let scratch = dOut == UnsafePointer(ws.gradA.pointer) ? ws.gradB : ws.gradA
            let dIn: UnsafeMutablePointer<Float>?
            if k == 0 { dIn = dInput } else { scratch.zero(); dIn = scratch.pointer }
            for d in 0..<D {
                let lw = ws.cells[k][d], block = (k * D + d) * BH
                let input = d == 0 ? ws.layerInputs[k]! : ws.reversedLayerInput(k)
                var dDir = dOut, dInDir = dIn
                if bidirectional {
                    copyColumns(dOut + d * H, stride: DH, into: ws.directionOutput.pointer, stride: H, width: H,
                                steps: T, batch: B, reversing: d == 0 ? nil : len ?? ws.fullLengths)
                    dDir = UnsafePointer(ws.directionOutput.pointer)
                    if d == 1, dIn != nil {
                        ws.directionInput.pointer.update(repeating: 0, count: rows * cells[k].inputSize)
                        dInDir = ws.directionInput.pointer
                    }
                }
                profile?.mark(.other)
                cells[k].backward(input, p: LayerParams(base: p, offsets[k][d]),
                                  g: LayerParams(base: gradients, offsets[k][d]), ws: lw, dOut: dDir, dInput: dInDir,
                                  lengths: len, dFinalH: dFinalH.map { $0 + block },
                                  dFinalC: cell.hasCell ? dFinalC.map { $0 + block } : nil,
                                  needInitialGradient: needInitial, profile: profile)
                if d == 1, let dIn, let dInDir {
                    // The reverse direction saw its input reversed per row: put its gradient back in time order.
                    let n = cells[k].inputSize
                    copyColumns(dInDir, stride: n, into: dIn, stride: n, width: n, steps: T, batch: B,
                                reversing: len ?? ws.fullLengths, accumulate: true)
                }
                if let dInitialH { addRow(dInitialH + block, lw.dh.pointer, count: BH) }
                if let dInitialC, cell.hasCell { addRow(dInitialC + block, lw.dc.pointer, count: BH) }
            }
            if k > 0, let dIn {
                if ws.usedDropout {
                    // Through the dropout between layers k − 1 and k, into the buffer that is neither dIn nor in use.
                    let next = scratch === ws.gradA ? ws.gradB : ws.gradA
                    next.zero()
                    dropouts[k - 1].backward(dIn, mask: ws.masks[k - 1].pointer, into: next.pointer, count: rows * DH)
                    dOut = UnsafePointer(next.pointer)
                } else {
                    dOut = UnsafePointer(dIn)
                }
            }
        }
        profile?.mark(.other)
    }

    /// Layer k's input for the reverse direction: `x` reversed within each row's valid steps (padding 0).
    private func reversedInput(_ x: LayerInput, layer k: Int, ws: Workspace) -> LayerInput {
        let T = ws.steps, B = ws.batch, len = ws.hasLengths ? UnsafePointer(ws.lengths) : ws.fullLengths
        switch x {
        case .dense(let m):
            let n = cells[k].inputSize
            copyColumns(m, stride: n, into: ws.reversed[k].pointer, stride: n, width: n, steps: T, batch: B,
                        reversing: len)
        case .oneHot(let tokens):
            let r = ws.reversedTokens
            for t in 0..<T {
                for b in 0..<B { r[t * B + b] = t < len[b] ? tokens[(len[b] - 1 - t) * B + b] : 0 }
            }
        }
        return ws.reversedLayerInput(k)
    }

    // MARK: Workspaces

    private struct Shape: Hashable { let steps: Int, batch: Int }

    private final class Workspace {
        let steps: Int, batch: Int
        /// `[layer][direction]`.
        let cells: [[LayerWorkspace]]
        /// Each layer's input in the last forward (layer 0: the caller's; layer k: layer k − 1's output).
        var layerInputs: [LayerInput?]
        /// Bidirectional: each layer's output `[T*B, 2H]` = [forward ; backward], and its input reversed per row
        /// (`[T*B, in_k]`, or token ids `[T*B]` for one-hot input).
        let concat: [FloatBuffer], reversed: [FloatBuffer]
        let reversedTokens: UnsafeMutablePointer<Int32>
        /// Bidirectional backward: one direction's `∂L/∂output` `[T*B, H]`, and the reverse direction's
        /// `∂L/∂(reversed input)` `[T*B, max in_k]`.
        let directionOutput: FloatBuffer, directionInput: FloatBuffer
        /// Dropout between layers: layer k's output after dropout and its mask, `[T*B, D*H]`, k < L − 1.
        let dropped: [FloatBuffer], masks: [FloatBuffer]
        /// `∂L/∂(layer input)` ping-pong buffers `[T*B, D*H]`.
        let gradA: FloatBuffer, gradB: FloatBuffer
        /// The last forward's lengths `[B]` (when `hasLengths`), `T` for every row, and the dropout rows `[B]`.
        let lengths: UnsafeMutablePointer<Int>, fullLengthsStorage: UnsafeMutablePointer<Int>
        let rows: UnsafeMutablePointer<Int>
        var hasLengths = false, usedDropout = false
        var fullLengths: UnsafePointer<Int> { UnsafePointer(fullLengthsStorage) }

        init(stack s: RecurrentStack, steps: Int, batch: Int) {
            self.steps = steps; self.batch = batch
            let n = steps * batch, D = s.directions, DH = s.outputSize
            cells = (0..<s.layers).map { k in
                (0..<D).map { _ in
                    LayerWorkspace(cell: s.cell, steps: steps, batch: batch, hidden: s.hidden,
                                   oneHotInput: k == 0 ? s.inputSize : 0)
                }
            }
            layerInputs = [LayerInput?](repeating: nil, count: s.layers)
            concat = s.bidirectional ? (0..<s.layers).map { _ in FloatBuffer(count: n * DH) } : []
            reversed = s.bidirectional ? s.cells.map { FloatBuffer(count: n * $0.inputSize) } : []
            reversedTokens = .allocate(capacity: s.bidirectional ? n : 1)
            directionOutput = FloatBuffer(count: s.bidirectional ? n * s.hidden : 0)
            directionInput = FloatBuffer(count: s.bidirectional ? n * max(s.inputSize, DH) : 0)
            let drop = !s.dropouts.isEmpty
            dropped = (0..<(s.layers - 1)).map { _ in FloatBuffer(count: drop ? n * DH : 0) }
            masks = (0..<(s.layers - 1)).map { _ in FloatBuffer(count: drop ? n * DH : 0) }
            gradA = FloatBuffer(count: n * DH)
            gradB = FloatBuffer(count: n * DH)
            lengths = .allocate(capacity: batch)
            fullLengthsStorage = .allocate(capacity: batch)
            fullLengthsStorage.initialize(repeating: steps, count: batch)
            rows = .allocate(capacity: batch)
        }

        deinit {
            reversedTokens.deallocate(); lengths.deallocate(); fullLengthsStorage.deallocate(); rows.deallocate()
        }

        func setLengths(_ l: [Int]?, steps T: Int) {
            hasLengths = l != nil
            guard let l else { return }
            precondition(l.count == batch, "lengths hold \(l.count) rows, the batch has \(batch)")
            for b in 0..<batch {
                precondition(l[b] >= 0 && l[b] <= T, "row \(b) has length \(l[b]), outside 0...\(T)")
                lengths[b] = l[b]
            }
        }

        func setRows(_ r: [Int]?) {
            if let r { precondition(r.count == batch, "rows hold \(r.count) indices, the batch has \(batch)") }
            for b in 0..<batch { rows[b] = r?[b] ?? b }
        }

        func reversedLayerInput(_ k: Int) -> LayerInput {
            if case .oneHot = layerInputs[k]! { return .oneHot(UnsafePointer(reversedTokens)) }
            return .dense(UnsafePointer(reversed[k].pointer))
        }
    }

    private func workspace(steps: Int, batch: Int) -> Workspace {
        let key = Shape(steps: steps, batch: batch)
        if let ws = workspaces[key] { return ws }
        // Keep a bounded set of shapes (training, validation, generation, and a translation task's length buckets);
        // drop them all rather than grow without bound.
        if workspaces.count >= 16 { workspaces.removeAll() }
        let ws = Workspace(stack: self, steps: steps, batch: batch)
        workspaces[key] = ws
        return ws
    }
}

/// `dst[0..<count] = src[0..<count]`, or zeros when there is no source (a zero initial state).
private func copyOrZero(_ src: UnsafePointer<Float>?, into dst: UnsafeMutablePointer<Float>, count: Int) {
    if let src { dst.update(from: src, count: count) } else { dst.update(repeating: 0, count: count) }
}

/// Copies `width` columns of every row `(t, b)` of a time-major `[T*B, ·]` matrix into another (row strides in
/// floats). With `reversing: len`, destination row (t, b) takes source row (len[b] − 1 − t, b) for t < len[b] and
/// is zero (or left alone when accumulating) for t ≥ len[b]: the per-row time reversal of a bidirectional layer.
/// With `accumulate`, adds instead of copying.
func copyColumns(_ src: UnsafePointer<Float>, stride ss: Int, into dst: UnsafeMutablePointer<Float>, stride ds: Int,
                 width: Int, steps T: Int, batch B: Int, reversing len: UnsafePointer<Int>?, accumulate: Bool = false) {
    for t in 0..<T {
        for b in 0..<B {
            let d = dst + (t * B + b) * ds
            let s: Int
            if let len {
                guard t < len[b] else {
                    if !accumulate { d.update(repeating: 0, count: width) }
                    continue
                }
                s = (len[b] - 1 - t) * B + b
            } else {
                s = t * B + b
            }
            if accumulate { addRow(d, src + s * ss, count: width) } else { d.update(from: src + s * ss, count: width) }
        }
    }
}
