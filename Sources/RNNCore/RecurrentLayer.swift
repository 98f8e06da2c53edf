import CKernels

// Shape legend: T steps, B batch (streams), H hidden, G gates (1 RNN, 3 GRU, 4 LSTM), I layer input width.
// Matrices are row-major; a "[T*B, X]" buffer holds row t*B + b for step t, stream b (time-major).
// Gate order in every [*, G*H] buffer is PyTorch's: GRU (r, z, n), LSTM (i, f, g, o).
// Per-row lengths `len [B]` (optional): positions t >= len[b] of row b are padding. They are not read, their
// output is 0, nothing is back-propagated through them, and the row's final state is its state after step
// len[b] - 1 (PyTorch's packed-sequence semantics).

/// Everything one layer's forward stores for its backward, preallocated per (T, B).
final class LayerWorkspace {
    let steps: Int, batch: Int, hidden: Int, gates: Int
    /// Forward: input projection `x W_ihᵀ + b_ih`, `[T*B, G*H]`. Backward: reused for `∂L/∂(x-side gate pre-activations)`.
    let gx: FloatBuffer
    /// Activated gates, `[T*B, G*H]`: GRU r, z, n; LSTM i, f, g, o (unused for a plain RNN).
    let act: FloatBuffer
    /// GRU only: `W_hn h + b_hn`, `[T*B, H]`.
    let hn: FloatBuffer
    /// Hidden states `[(T+1)*B, H]`; block 0 is the initial state, block t+1 the output of step t.
    let hs: FloatBuffer
    /// LSTM only: cell states `[(T+1)*B, H]` and `tanh(c)` `[T*B, H]`.
    let cs: FloatBuffer
    let tanhC: FloatBuffer
    /// GRU only: `∂L/∂(h-side gate pre-activations)` `[T*B, G*H]` (differs from the x side in the n block).
    let dgh: FloatBuffer
    /// Per-step scratch: `h W_hhᵀ + b_hh` `[B, G*H]`, and the running `∂L/∂h`, `∂L/∂c` `[B, H]`.
    let gh: FloatBuffer
    private(set) var dh: FloatBuffer, dhPrev: FloatBuffer
    let dc: FloatBuffer
    /// With lengths: each row's final state `[B, H]` (h, and c for LSTM), saved at its last valid step.
    let finalH: FloatBuffer, finalC: FloatBuffer
    /// `W_hh` packed for the per-step products (`rk_gemm_packed`), forward (`h·W_hhᵀ`) and backward (`dG·W_hh`);
    /// empty when this CPU lacks the kernel or T is too short to amortise the packing.
    let packedForward: FloatBuffer, packedBackward: FloatBuffer
    /// One-hot input only, `[V, G*H]`: in forward the table `b_ih + W_ih[:, v]` per token v; in backward
    /// `∂L/∂W_ih` accumulated transposed. Either way each token's row is contiguous.
    let dWihT: FloatBuffer

    init(cell: CellKind, steps: Int, batch: Int, hidden: Int, oneHotInput: Int = 0) {
        self.steps = steps; self.batch = batch; self.hidden = hidden; gates = cell.gates
        let rows = steps * batch, gh = gates * hidden
        gx = FloatBuffer(count: rows * gh)
        act = FloatBuffer(count: cell == .gru || cell == .lstm ? rows * gh : 0)
        hn = FloatBuffer(count: cell == .gru ? rows * hidden : 0)
        hs = FloatBuffer(count: (steps + 1) * batch * hidden)
        cs = FloatBuffer(count: cell.hasCell ? (steps + 1) * batch * hidden : 0)
        tanhC = FloatBuffer(count: cell.hasCell ? rows * hidden : 0)
        dgh = FloatBuffer(count: cell == .gru ? rows * gh : 0)
        self.gh = FloatBuffer(count: batch * gh)
        dh = FloatBuffer(count: batch * hidden)
        dhPrev = FloatBuffer(count: batch * hidden)
        dc = FloatBuffer(count: cell.hasCell ? batch * hidden : 0)
        finalH = FloatBuffer(count: batch * hidden)
        finalC = FloatBuffer(count: cell.hasCell ? batch * hidden : 0)
        dWihT = FloatBuffer(count: oneHotInput * gates * hidden)
        let packed = rk_packed_gemm_available() != 0 && steps >= LayerWorkspace.packingMinSteps
        packedForward = FloatBuffer(count: packed ? Int(rk_packed_size(Int64(gh), Int64(hidden))) : 0)
        packedBackward = FloatBuffer(count: packed ? Int(rk_packed_size(Int64(hidden), Int64(gh))) : 0)
    }

    /// Below this many steps (generation runs T = 1) packing `W_hh` costs more than it saves.
    static let packingMinSteps = 4
    var usesPackedWeights: Bool { packedForward.count > 0 }

    /// Makes the `∂L/∂h_{t-1}` just computed the running `∂L/∂h` (a pointer swap, not a copy).
    func swapHiddenGradients() { swap(&dh, &dhPrev) }

    /// The layer's outputs `h_1 … h_T` as one `[T*B, H]` matrix.
    var outputs: UnsafeMutablePointer<Float> { hs.pointer + batch * hidden }
}

/// Element offsets of one layer's four tensors (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`) in a flat buffer.
struct LayerOffsets {
    let wih: Int, whh: Int, bih: Int, bhh: Int

    /// The tensors `{prefix}weight_ih_l{k}{suffix}` etc. of `layout` (PyTorch's names; suffix "" or "_reverse").
    init(layout: ParameterLayout, prefix: String, layer k: Int, suffix: String) {
        wih = layout["\(prefix)weight_ih_l\(k)\(suffix)"].offset
        whh = layout["\(prefix)weight_hh_l\(k)\(suffix)"].offset
        bih = layout["\(prefix)bias_ih_l\(k)\(suffix)"].offset
        bhh = layout["\(prefix)bias_hh_l\(k)\(suffix)"].offset
    }
}

/// Pointers to one layer's parameters (or, identically laid out, their gradients) in a flat buffer.
struct LayerParams {
    let wih: UnsafeMutablePointer<Float>, whh: UnsafeMutablePointer<Float>
    let bih: UnsafeMutablePointer<Float>, bhh: UnsafeMutablePointer<Float>

    init(base: UnsafeMutablePointer<Float>, _ o: LayerOffsets) {
        wih = base + o.wih; whh = base + o.whh; bih = base + o.bih; bhh = base + o.bhh
    }
}

/// The input of a recurrent layer or stack: a dense `[T*B, I]` matrix, or token ids `[T*B]` read as one-hot
/// vectors of width `I = V` (the language model's `--embed 0`).
public enum LayerInput {
    case dense(UnsafePointer<Float>)
    case oneHot(UnsafePointer<Int32>)
}

struct RecurrentLayer {
    let cell: CellKind
    let inputSize: Int
    let hidden: Int

    /// Runs T steps from the initial state already stored in `ws.hs` block 0 (and `ws.cs` block 0).
    /// Without `lengths` the final state is `ws.hs` (and `ws.cs`) block T; with `lengths [B]` it is
    /// `ws.finalH` (and `ws.finalC`), and the outputs at padded positions are 0.
    func forward(_ input: LayerInput, p: LayerParams, ws: LayerWorkspace, lengths: UnsafePointer<Int>? = nil,
                 profile: PhaseProfile? = nil) {
        let T = ws.steps, B = ws.batch, H = hidden, G = cell.gates, GH = G * H, rows = T * B
        // Input projection for all T steps at once.
        switch input {
        case .dense(let x):
            fillRows(ws.gx.pointer, rows: rows, n: GH, with: p.bih)
            sgemm(transB: true, m: rows, n: GH, k: inputSize, a: x, lda: inputSize, b: p.wih, ldb: inputSize,
                  beta: 1, c: ws.gx.pointer, ldc: GH)
        case .oneHot(let tokens):
            // x W_ihᵀ for a one-hot x is column `token` of W_ih: V distinct rows, built once, then copied.
            rk_onehot_project(ws.gx.pointer, tokens, Int64(rows), Int64(GH), p.wih, Int64(inputSize), p.bih,
                              ws.dWihT.pointer)
        }
        let packed = ws.usesPackedWeights
        if packed { rk_pack_transposed(p.whh, Int64(GH), Int64(H), ws.packedForward.pointer) }
        profile?.mark(.inputProjection)
        if let len = lengths {
            // A row with no valid step keeps its initial state.
            for b in 0..<B where len[b] == 0 { saveFinalState(ws, row: b, block: 0) }
        }
        for t in 0..<T {
            let hPrev = ws.hs.pointer + t * B * H, hOut = ws.hs.pointer + (t + 1) * B * H
            fillRows(ws.gh.pointer, rows: B, n: GH, with: p.bhh)
            if packed {
                rk_gemm_packed(Int64(B), Int64(GH), Int64(H), hPrev, Int64(H), ws.packedForward.pointer, ws.gh.pointer,
                               Int64(GH), 1)
            } else {
                sgemm(transB: true, m: B, n: GH, k: H, a: hPrev, lda: H, b: p.whh, ldb: H, beta: 1, c: ws.gh.pointer,
                      ldc: GH)
            }
            let gx = ws.gx.pointer + t * B * GH
            switch cell {
            case .rnnTanh, .rnnRelu:
                rk_rnn_forward(Int64(B), Int64(H), cell == .rnnRelu ? 1 : 0, gx, ws.gh.pointer, Int64(GH), hOut)
            case .gru:
                rk_gru_forward(Int64(B), Int64(H), gx, ws.gh.pointer, hPrev, ws.act.pointer + t * B * GH,
                               ws.hn.pointer + t * B * H, hOut)
            case .lstm:
                rk_lstm_forward(Int64(B), Int64(H), gx, ws.gh.pointer, ws.cs.pointer + t * B * H,
                                ws.act.pointer + t * B * GH, ws.cs.pointer + (t + 1) * B * H,
                                ws.tanhC.pointer + t * B * H, hOut)
            }
            if let len = lengths {
                // Padded rows computed garbage from a zero state; their output is 0, so later padded steps start
                // from 0 too and nothing grows. The state that matters was saved at the row's last valid step.
                for b in 0..<B where t >= len[b] - 1 {
                    if t == len[b] - 1 { saveFinalState(ws, row: b, block: t + 1) } else {
                        (hOut + b * H).update(repeating: 0, count: H)
                    }
                }
            }
        }
    }

    /// Copies row b of state block `block` (h, and c for LSTM) into the final-state buffers.
    private func saveFinalState(_ ws: LayerWorkspace, row b: Int, block: Int) {
        let B = ws.batch, H = hidden
        (ws.finalH.pointer + b * H).update(from: ws.hs.pointer + (block * B + b) * H, count: H)
        if cell.hasCell { (ws.finalC.pointer + b * H).update(from: ws.cs.pointer + (block * B + b) * H, count: H) }
    }

    /// Backpropagation through the T steps of the last `forward` (with the same `lengths`).
    /// - `dOut`: `∂L/∂h_t` from above for every step, `[T*B, H]` (ignored at padded positions).
    /// - `dFinalH`, `dFinalC`: `∂L/∂(final state)` `[B, H]`, when the loss reads the final state.
    /// - Accumulates into the layer's gradients `g`; leaves `∂L/∂h_0` in `ws.dh` (and `∂L/∂c_0` in `ws.dc`) when
    ///   `needInitialGradient`, otherwise `ws.dh` is left undefined.
    /// - Accumulates `∂L/∂x` `[T*B, I]` into `dInput` when given (dense input only); 0 at padded positions.
    func backward(_ input: LayerInput, p: LayerParams, g: LayerParams, ws: LayerWorkspace,
                  dOut: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>?, lengths: UnsafePointer<Int>? = nil,
                  dFinalH: UnsafePointer<Float>? = nil, dFinalC: UnsafePointer<Float>? = nil,
                  needInitialGradient: Bool = true, profile: PhaseProfile? = nil) {
        let T = ws.steps, B = ws.batch, H = hidden, G = cell.gates, GH = G * H, rows = T * B
        let dgx = ws.gx  // the forward's input projection is not needed any more
        let dghBuf = cell == .gru ? ws.dgh : dgx
        ws.dh.zero()
        if cell.hasCell { ws.dc.zero() }
        if lengths == nil {
            if let dFinalH { ws.dh.pointer.update(from: dFinalH, count: B * H) }
            if let dFinalC, cell.hasCell { ws.dc.pointer.update(from: dFinalC, count: B * H) }
        }
        let packed = ws.usesPackedWeights
        if packed { rk_pack(p.whh, Int64(GH), Int64(H), ws.packedBackward.pointer) }
        for t in stride(from: T - 1, through: 0, by: -1) {
            if let len = lengths {
                // Row b's final state is h_{len[b]}: its gradient enters at the row's last valid step, replacing
                // whatever the padded steps after it left in the running gradient.
                for b in 0..<B where len[b] - 1 == t { seedFinalGradient(ws, row: b, dFinalH, dFinalC) }
            }
            let dh = ws.dh.pointer, dOutT = dOut + t * B * H
            let hPrev = ws.hs.pointer + t * B * H, hOut = ws.hs.pointer + (t + 1) * B * H
            let dx = dgx.pointer + t * B * GH, dhh = dghBuf.pointer + t * B * GH
            var directIntoPrev = false
            switch cell {
            case .rnnTanh, .rnnRelu:
                rk_rnn_backward(Int64(B), Int64(H), cell == .rnnRelu ? 1 : 0, dh, dOutT, hOut, dx, Int64(GH))
            case .gru:
                rk_gru_backward(Int64(B), Int64(H), dh, dOutT, ws.act.pointer + t * B * GH, ws.hn.pointer + t * B * H,
                                hPrev, dx, dhh, ws.dhPrev.pointer)
                directIntoPrev = true
            case .lstm:
                rk_lstm_backward(Int64(B), Int64(H), dh, dOutT, ws.act.pointer + t * B * GH,
                                 ws.tanhC.pointer + t * B * H, ws.cs.pointer + t * B * H, ws.dc.pointer, dx)
            }
            if let len = lengths {
                // Nothing flows through padding: zero the padded rows' gate gradients (weights, input, h_{t-1}).
                for b in 0..<B where t >= len[b] {
                    (dx + b * GH).update(repeating: 0, count: GH)
                    if cell == .gru { (dhh + b * GH).update(repeating: 0, count: GH) }
                }
            }
            // ∂L/∂h_{t-1} = dgh_t · W_hh (+ the GRU's direct path already in dhPrev). Nobody reads ∂L/∂h_0
            // unless the caller asked for it (the carried state is detached), so step 0 skips that GEMM.
            if t == 0 && !needInitialGradient { break }
            if packed {
                rk_gemm_packed(Int64(B), Int64(H), Int64(GH), dhh, Int64(GH), ws.packedBackward.pointer, ws.dhPrev.pointer,
                               Int64(H), directIntoPrev ? 1 : 0)
            } else {
                sgemm(m: B, n: H, k: GH, a: dhh, lda: GH, b: p.whh, ldb: H, beta: directIntoPrev ? 1 : 0,
                      c: ws.dhPrev.pointer, ldc: H)
            }
            ws.swapHiddenGradients()
        }
        if let len = lengths, needInitialGradient {
            // A row with no valid step: its final state is its initial state.
            for b in 0..<B where len[b] == 0 { seedFinalGradient(ws, row: b, dFinalH, dFinalC) }
        }
        profile?.mark(.recurrence)
        // Weight and bias gradients as single GEMMs / reductions over all T*B rows.
        sgemm(transA: true, m: GH, n: H, k: rows, a: dghBuf.pointer, lda: GH, b: ws.hs.pointer, ldb: H,
              beta: 1, c: g.whh, ldc: H)
        rk_column_sums(dghBuf.pointer, Int64(rows), Int64(GH), g.bhh)
        rk_column_sums(dgx.pointer, Int64(rows), Int64(GH), g.bih)
        switch input {
        case .dense(let x):
            sgemm(transA: true, m: GH, n: inputSize, k: rows, a: dgx.pointer, lda: GH, b: x, ldb: inputSize,
                  beta: 1, c: g.wih, ldc: inputSize)
            if let dInput {
                sgemm(m: rows, n: inputSize, k: GH, a: dgx.pointer, lda: GH, b: p.wih, ldb: inputSize,
                      beta: 1, c: dInput, ldc: inputSize)
            }
        case .oneHot(let tokens):
            // dW_ih[:, tok] += dgx[row]: add whole contiguous rows into the transposed scratch, then add the
            // scratch into W_ih's layout once, instead of T*B*G*H strided writes.
            rk_onehot_scatter(g.wih, tokens, Int64(rows), Int64(GH), dgx.pointer, Int64(inputSize), ws.dWihT.pointer)
        }
        profile?.mark(.weightGradients)
    }

    /// Sets row b of the running `∂L/∂h` (and `∂L/∂c`) to the final-state gradient, or 0 when there is none.
    private func seedFinalGradient(_ ws: LayerWorkspace, row b: Int, _ dFinalH: UnsafePointer<Float>?,
                                   _ dFinalC: UnsafePointer<Float>?) {
        let H = hidden, dh = ws.dh.pointer + b * H
        if let dFinalH { dh.update(from: dFinalH + b * H, count: H) } else { dh.update(repeating: 0, count: H) }
        if cell.hasCell {
            let dc = ws.dc.pointer + b * H
            if let dFinalC { dc.update(from: dFinalC + b * H, count: H) } else { dc.update(repeating: 0, count: H) }
        }
    }
}
