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
    let dh: FloatBuffer, dhPrev: FloatBuffer, dc: FloatBuffer
    /// One-hot input only: `∂L/∂W_ih` accumulated transposed, `[V, G*H]`, so each token's row is contiguous.
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
    }

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
        fillRows(ws.gx.pointer, rows: rows, n: GH, with: p.bih)
        switch input {
        case .dense(let x):
            sgemm(transB: true, m: rows, n: GH, k: inputSize, a: x, lda: inputSize, b: p.wih, ldb: inputSize,
                  beta: 1, c: ws.gx.pointer, ldc: GH)
        case .oneHot(let tokens):
            // x W_ihᵀ for a one-hot x is column `token` of W_ih.
            for r in 0..<rows {
                let tok = Int(tokens[r]), row = ws.gx.pointer + r * GH
                for j in 0..<GH { row[j] += p.wih[j * inputSize + tok] }
            }
        }
        profile?.mark(.inputProjection)
        for t in 0..<T {
            let hPrev = ws.hs.pointer + t * B * H, hOut = ws.hs.pointer + (t + 1) * B * H
            fillRows(ws.gh.pointer, rows: B, n: GH, with: p.bhh)
            sgemm(transB: true, m: B, n: GH, k: H, a: hPrev, lda: H, b: p.whh, ldb: H, beta: 1, c: ws.gh.pointer, ldc: GH)
            let gx = ws.gx.pointer + t * B * GH
            switch cell {
            case .rnnTanh, .rnnRelu:
                let relu = cell == .rnnRelu
                for b in 0..<B {
                    let x = gx + b * GH, h = ws.gh.pointer + b * GH, out = hOut + b * H
                    var j = 0
                    while j < H {
                        let c = min(8, H - j)
                        let pre = load8(x + j, c) + load8(h + j, c)
                        store8(relu ? pre.replacing(with: 0, where: pre .< 0) : vtanh(pre), out + j, c)
                        j += 8
                    }
                }
            case .gru:
                let act = ws.act.pointer + t * B * GH, hnAll = ws.hn.pointer + t * B * H
                for b in 0..<B {
                    let x = gx + b * GH, h = ws.gh.pointer + b * GH, a = act + b * GH
                    let prev = hPrev + b * H, out = hOut + b * H, hnRow = hnAll + b * H
                    var j = 0
                    while j < H {
                        let c = min(8, H - j)
                        let r = vsigmoid(load8(x + j, c) + load8(h + j, c))
                        let z = vsigmoid(load8(x + H + j, c) + load8(h + H + j, c))
                        let hn = load8(h + 2 * H + j, c)
                        let n = vtanh(load8(x + 2 * H + j, c) + r * hn)
                        let hp = load8(prev + j, c)
                        store8(r, a + j, c); store8(z, a + H + j, c); store8(n, a + 2 * H + j, c)
                        store8(hn, hnRow + j, c)
                        store8(n + z * (hp - n), out + j, c)
                        j += 8
                    }
                }
            case .lstm:
                let act = ws.act.pointer + t * B * GH
                let cPrevAll = ws.cs.pointer + t * B * H, cOutAll = ws.cs.pointer + (t + 1) * B * H
                let tcAll = ws.tanhC.pointer + t * B * H
                for b in 0..<B {
                    let x = gx + b * GH, h = ws.gh.pointer + b * GH, a = act + b * GH
                    let cPrev = cPrevAll + b * H, cOut = cOutAll + b * H, tcRow = tcAll + b * H, out = hOut + b * H
                    var j = 0
                    while j < H {
                        let c = min(8, H - j)
                        let i = vsigmoid(load8(x + j, c) + load8(h + j, c))
                        let f = vsigmoid(load8(x + H + j, c) + load8(h + H + j, c))
                        let g = vtanh(load8(x + 2 * H + j, c) + load8(h + 2 * H + j, c))
                        let o = vsigmoid(load8(x + 3 * H + j, c) + load8(h + 3 * H + j, c))
                        let cNew = f * load8(cPrev + j, c) + i * g
                        let tc = vtanh(cNew)
                        store8(i, a + j, c); store8(f, a + H + j, c); store8(g, a + 2 * H + j, c)
                        store8(o, a + 3 * H + j, c)
                        store8(cNew, cOut + j, c); store8(tc, tcRow + j, c)
                        store8(o * tc, out + j, c)
                        j += 8
                    }
                }
            }
        }
    }

    /// Backpropagation through the T steps of the last `forward`.
    /// - `dOut`: `∂L/∂h_t` from above for every step, `[T*B, H]`.
    /// - Accumulates into the layer's gradients `g`; leaves `∂L/∂h_0` in `ws.dh` (and `∂L/∂c_0` in `ws.dc`).
    /// - Writes `∂L/∂x` `[T*B, I]` into `dInput` when given (dense input only), overwriting it.
    func backward(_ input: LayerInput, p: LayerParams, g: LayerParams, ws: LayerWorkspace,
                  dOut: UnsafePointer<Float>, dInput: UnsafeMutablePointer<Float>?, profile: PhaseProfile? = nil) {
        let T = ws.steps, B = ws.batch, H = hidden, G = cell.gates, GH = G * H, rows = T * B
        let dgx = ws.gx  // the forward's input projection is not needed any more
        let dghBuf = cell == .gru ? ws.dgh : dgx
        ws.dh.zero()
        if cell.hasCell { ws.dc.zero() }
        for t in stride(from: T - 1, through: 0, by: -1) {
            let dh = ws.dh.pointer, dOutT = dOut + t * B * H
            let hPrev = ws.hs.pointer + t * B * H, hOut = ws.hs.pointer + (t + 1) * B * H
            let dx = dgx.pointer + t * B * GH, dhh = dghBuf.pointer + t * B * GH
            var directIntoPrev = false
            switch cell {
            case .rnnTanh, .rnnRelu:
                let relu = cell == .rnnRelu
                for b in 0..<B {
                    var j = 0
                    while j < H {
                        let c = min(8, H - j), o = b * H + j
                        let d = load8(dh + o, c) + load8(dOutT + o, c)
                        let h = load8(hOut + o, c)
                        let dpre = relu ? d.replacing(with: 0, where: h .<= 0) : d * (1 - h * h)
                        store8(dpre, dx + b * GH + j, c)
                        j += 8
                    }
                }
            case .gru:
                let act = ws.act.pointer + t * B * GH, hnAll = ws.hn.pointer + t * B * H
                for b in 0..<B {
                    let a = act + b * GH, dxr = dx + b * GH, dhr = dhh + b * GH
                    var j = 0
                    while j < H {
                        let c = min(8, H - j), o = b * H + j
                        let d = load8(dh + o, c) + load8(dOutT + o, c)
                        let r = load8(a + j, c), z = load8(a + H + j, c), n = load8(a + 2 * H + j, c)
                        let hp = load8(hPrev + o, c), hn = load8(hnAll + o, c)
                        let dnPre = d * (1 - z) * (1 - n * n)
                        let dzPre = d * (hp - n) * z * (1 - z)
                        let drPre = dnPre * hn * r * (1 - r)
                        store8(drPre, dxr + j, c); store8(dzPre, dxr + H + j, c); store8(dnPre, dxr + 2 * H + j, c)
                        store8(drPre, dhr + j, c); store8(dzPre, dhr + H + j, c); store8(dnPre * r, dhr + 2 * H + j, c)
                        store8(d * z, ws.dhPrev.pointer + o, c)  // the direct path h' = … + z ⊙ h
                        j += 8
                    }
                }
                directIntoPrev = true
            case .lstm:
                let act = ws.act.pointer + t * B * GH
                let cPrevAll = ws.cs.pointer + t * B * H, tcAll = ws.tanhC.pointer + t * B * H
                let dcp = ws.dc.pointer
                for b in 0..<B {
                    let a = act + b * GH, dxr = dx + b * GH
                    var j = 0
                    while j < H {
                        let c = min(8, H - j), o = b * H + j
                        let d = load8(dh + o, c) + load8(dOutT + o, c)
                        let i = load8(a + j, c), f = load8(a + H + j, c), gg = load8(a + 2 * H + j, c)
                        let og = load8(a + 3 * H + j, c), tc = load8(tcAll + o, c)
                        let dcT = load8(dcp + o, c) + d * og * (1 - tc * tc)
                        let dO = d * tc
                        store8(dcT * gg * i * (1 - i), dxr + j, c)
                        store8(dcT * load8(cPrevAll + o, c) * f * (1 - f), dxr + H + j, c)
                        store8(dcT * i * (1 - gg * gg), dxr + 2 * H + j, c)
                        store8(dO * og * (1 - og), dxr + 3 * H + j, c)
                        store8(dcT * f, dcp + o, c)
                        j += 8
                    }
                }
            }
            // ∂L/∂h_{t-1} = dgh_t · W_hh (+ the GRU's direct path already in dhPrev).
            sgemm(m: B, n: H, k: GH, a: dhh, lda: GH, b: p.whh, ldb: H, beta: directIntoPrev ? 1 : 0,
                  c: ws.dhPrev.pointer, ldc: H)
            ws.dh.copy(from: ws.dhPrev)
        }
        profile?.mark(.recurrence)
        // Weight and bias gradients as single GEMMs / reductions over all T*B rows.
        sgemm(transA: true, m: GH, n: H, k: rows, a: dghBuf.pointer, lda: GH, b: ws.hs.pointer, ldb: H,
              beta: 1, c: g.whh, ldc: H)
        accumulateColumnSums(dghBuf.pointer, rows: rows, n: GH, into: g.bhh)
        accumulateColumnSums(dgx.pointer, rows: rows, n: GH, into: g.bih)
        switch input {
        case .dense(let x):
            sgemm(transA: true, m: GH, n: inputSize, k: rows, a: dgx.pointer, lda: GH, b: x, ldb: inputSize,
                  beta: 1, c: g.wih, ldc: inputSize)
            if let dInput {
                sgemm(m: rows, n: inputSize, k: GH, a: dgx.pointer, lda: GH, b: p.wih, ldb: inputSize,
                      beta: 0, c: dInput, ldc: inputSize)
            }
        case .oneHot(let tokens):
            // dW_ih[:, tok] += dgx[row]: add whole contiguous rows into the transposed scratch (vectorised), then
            // add the scratch into W_ih's layout once, instead of T*B*G*H strided writes.
            let acc = ws.dWihT.pointer
            ws.dWihT.zero()
            for r in 0..<rows {
                let dst = acc + Int(tokens[r]) * GH, src = dgx.pointer + r * GH
                var j = 0
                while j < GH {
                    let c = min(8, GH - j)
                    store8(load8(dst + j, c) + load8(src + j, c), dst + j, c)
                    j += 8
                }
            }
            for j in 0..<GH {
                let out = g.wih + j * inputSize
                for v in 0..<inputSize { out[v] += acc[v * GH + j] }
            }
        }
        profile?.mark(.weightGradients)
    }
}
