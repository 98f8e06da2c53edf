import CKernels

// Shape legend: T steps, B batch (streams), H hidden, G gates (1 RNN, 3 GRU, 4 LSTM), I layer input width.
// Matrices are row-major; a "[T*B, X]" buffer holds row t*B + b for step t, stream b (time-major).
// Gate order in every [*, G*H] buffer is PyTorch's: GRU (r, z, n), LSTM (i, f, g, o).

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

/// Pointers to one layer's parameters (or, identically laid out, their gradients) in a flat buffer.
struct LayerParams {
    let wih: UnsafeMutablePointer<Float>, whh: UnsafeMutablePointer<Float>
    let bih: UnsafeMutablePointer<Float>, bhh: UnsafeMutablePointer<Float>

    init(base: UnsafeMutablePointer<Float>, layout: ParameterLayout, layer k: Int) {
        wih = base + layout["rnn.weight_ih_l\(k)"].offset
        whh = base + layout["rnn.weight_hh_l\(k)"].offset
        bih = base + layout["rnn.bias_ih_l\(k)"].offset
        bhh = base + layout["rnn.bias_hh_l\(k)"].offset
    }
}

/// The input of a layer: a dense `[T*B, I]` matrix, or token ids for one-hot input of width `I = V`.
enum LayerInput {
    case dense(UnsafePointer<Float>)
    case oneHot(UnsafePointer<Int32>)
}

struct RecurrentLayer {
    let cell: CellKind
    let inputSize: Int
    let hidden: Int

    /// Runs T steps from the initial state already stored in `ws.hs` block 0 (and `ws.cs` block 0).
    func forward(_ input: LayerInput, p: LayerParams, ws: LayerWorkspace, profile: PhaseProfile? = nil) {
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
        }
    }

    /// Backpropagation through the T steps of the last `forward`.
    /// - `dOut`: `∂L/∂h_t` from above for every step, `[T*B, H]`.
    /// - Accumulates into the layer's gradients `g`; leaves `∂L/∂h_0` in `ws.dh` (and `∂L/∂c_0` in `ws.dc`) when
    ///   `needInitialGradient`, otherwise `ws.dh` is left undefined.
    /// - Writes `∂L/∂x` `[T*B, I]` into `dInput` when given (dense input only), overwriting it.
    func backward(_ input: LayerInput, p: LayerParams, g: LayerParams, ws: LayerWorkspace,
                  dOut: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>?, needInitialGradient: Bool = true,
                  profile: PhaseProfile? = nil) {
        let T = ws.steps, B = ws.batch, H = hidden, G = cell.gates, GH = G * H, rows = T * B
        let dgx = ws.gx  // the forward's input projection is not needed any more
        let dghBuf = cell == .gru ? ws.dgh : dgx
        ws.dh.zero()
        if cell.hasCell { ws.dc.zero() }
        let packed = ws.usesPackedWeights
        if packed { rk_pack(p.whh, Int64(GH), Int64(H), ws.packedBackward.pointer) }
        for t in stride(from: T - 1, through: 0, by: -1) {
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
                      beta: 0, c: dInput, ldc: inputSize)
            }
        case .oneHot(let tokens):
            // dW_ih[:, tok] += dgx[row]: add whole contiguous rows into the transposed scratch, then add the
            // scratch into W_ih's layout once, instead of T*B*G*H strided writes.
            rk_onehot_scatter(g.wih, tokens, Int64(rows), Int64(GH), dgx.pointer, Int64(inputSize), ws.dWihT.pointer)
        }
        profile?.mark(.weightGradients)
    }
}
