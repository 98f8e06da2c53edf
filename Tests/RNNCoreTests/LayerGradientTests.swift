import RNNCore
import Testing

/// Central finite differences (Float32 parameters, objective summed in Double) against the layers' backward:
/// the recurrent stack (bidirectional, per-row lengths, a term on the final state, dropout between layers), the
/// masked loss, Linear and Embedding. Every parameter and every input is checked; see GradientCheckTests for why
/// 1e-2 normwise relative error is the bar (the tight check is the float64 reference, ReferenceLayerTests).
@Suite("Finite-difference gradient check of the layers")
struct LayerGradientTests {
    static let tolerance = 1e-2

    /// max |numeric − analytic| / max |analytic| over a tensor.
    static func error(_ numeric: [Double], _ exact: [Float]) -> Double {
        var diff = 0.0, scale = 0.0
        for i in exact.indices { diff = max(diff, abs(numeric[i] - Double(exact[i]))); scale = max(scale, abs(Double(exact[i]))) }
        return diff / max(scale, 1e-6)
    }

    /// Central differences of `objective` over every element of `values` (restored afterwards).
    static func numeric(_ values: UnsafeMutablePointer<Float>, count: Int, eps: Float, _ objective: () -> Double) -> [Double] {
        (0..<count).map { i in
            let old = values[i]
            values[i] = old + eps
            let lp = objective()
            values[i] = old - eps
            let lm = objective()
            values[i] = old
            return (lp - lm) / Double(2 * eps)
        }
    }

    struct StackCase: CustomTestStringConvertible, Sendable {
        let cell: CellKind, layers: Int, bidirectional: Bool, lengths: [Int]?, finalTerm: Bool, dropout: Float
        var testDescription: String {
            "\(cell.rawValue) L=\(layers) \(bidirectional ? "bi" : "uni") lengths=\(lengths.map { "\($0)" } ?? "-") final=\(finalTerm) p=\(dropout)"
        }
    }

    static let stackCases: [StackCase] = [
        StackCase(cell: .gru, layers: 2, bidirectional: true, lengths: nil, finalTerm: true, dropout: 0),
        StackCase(cell: .lstm, layers: 2, bidirectional: true, lengths: nil, finalTerm: true, dropout: 0),
        StackCase(cell: .gru, layers: 2, bidirectional: true, lengths: [5, 2, 0, 4], finalTerm: true, dropout: 0),
        StackCase(cell: .lstm, layers: 2, bidirectional: true, lengths: [3, 5, 1, 0], finalTerm: true, dropout: 0),
        StackCase(cell: .lstm, layers: 2, bidirectional: false, lengths: [5, 2, 0, 4], finalTerm: true, dropout: 0),
        StackCase(cell: .rnnTanh, layers: 1, bidirectional: true, lengths: [4, 5, 2, 1], finalTerm: true, dropout: 0),
        StackCase(cell: .gru, layers: 2, bidirectional: false, lengths: nil, finalTerm: false, dropout: 0),
        StackCase(cell: .gru, layers: 3, bidirectional: true, lengths: [5, 3, 4, 2], finalTerm: true, dropout: 0.4),
    ]

    /// A stack, its parameters, an input, an initial state and the coefficients of the objective
    /// `Σ wOut ⊙ output + Σ wH ⊙ h_final + Σ wC ⊙ c_final`.
    final class StackProblem {
        let c: StackCase
        let (T, B, I, H) = (5, 4, 3, 4)
        let stack: RecurrentStack
        let params: FloatBuffer, grads: FloatBuffer
        let x: FloatBuffer, h0: FloatBuffer, c0: FloatBuffer
        let wOut: FloatBuffer, wH: FloatBuffer, wC: FloatBuffer
        let key = DropoutKey(seed: 11, step: 3)

        init(_ c: StackCase) {
            self.c = c
            let layout = ParameterLayout(shapes: RecurrentStack.parameterShapes(
                cell: c.cell, inputSize: I, hidden: H, layers: c.layers, bidirectional: c.bidirectional, prefix: "encoder.rnn."))
            stack = RecurrentStack(cell: c.cell, inputSize: I, hidden: H, layers: c.layers, bidirectional: c.bidirectional,
                                   dropout: c.dropout, dropoutSite: 5, prefix: "encoder.rnn.", layout: layout)
            var rng = RandomGenerator(seed: 17)
            func filled(_ n: Int, _ a: Float) -> FloatBuffer { FloatBuffer((0..<n).map { _ in rng.uniform(-a, a) }) }
            params = filled(layout.count, 0.8)
            grads = FloatBuffer(count: layout.count)
            let blocks = stack.stateBlocks * B * H
            x = filled(T * B * I, 1); h0 = filled(blocks, 0.8); c0 = filled(blocks, 0.8)
            wOut = filled(T * B * stack.outputSize, 1); wH = filled(blocks, 1); wC = filled(blocks, 1)
        }

        var hasCell: Bool { c.cell.hasCell }

        func objective() -> Double {
            let blocks = stack.stateBlocks * B * H
            let hT = FloatBuffer(count: blocks), cT = FloatBuffer(count: blocks)
            let out = stack.forward(.dense(x.pointer), steps: T, batch: B, parameters: params.pointer,
                                    initialH: h0.pointer, initialC: hasCell ? c0.pointer : nil, finalH: hT.pointer,
                                    finalC: hasCell ? cT.pointer : nil, lengths: c.lengths,
                                    dropout: c.dropout > 0 ? key : nil)
            var s = 0.0
            for i in 0..<(T * B * stack.outputSize) { s += Double(wOut[i]) * Double(out[i]) }
            if c.finalTerm {
                for i in 0..<blocks { s += Double(wH[i]) * Double(hT[i]) }
                if hasCell { for i in 0..<blocks { s += Double(wC[i]) * Double(cT[i]) } }
            }
            return s
        }

        /// Analytic gradients: (parameters, input, h0, c0).
        func analytic() -> ([Float], [Float], [Float], [Float]) {
            let blocks = stack.stateBlocks * B * H
            _ = objective()
            grads.zero()
            let dx = FloatBuffer(count: T * B * I), dh0 = FloatBuffer(count: blocks), dc0 = FloatBuffer(count: blocks)
            stack.backward(dOutput: wOut.pointer, dFinalH: c.finalTerm ? wH.pointer : nil,
                           dFinalC: c.finalTerm && hasCell ? wC.pointer : nil, parameters: params.pointer,
                           gradients: grads.pointer, dInput: dx.pointer, dInitialH: dh0.pointer,
                           dInitialC: hasCell ? dc0.pointer : nil)
            return (grads.array, dx.array, dh0.array, dc0.array)
        }
    }

    @Test(arguments: stackCases)
    func recurrentStack(_ c: StackCase) {
        let p = StackProblem(c)
        let (dParams, dx, dh0, dc0) = p.analytic()
        let eps: Float = 1e-2
        var worst = 0.0
        func check(_ name: String, _ buffer: FloatBuffer, _ exact: [Float]) {
            let err = Self.error(Self.numeric(buffer.pointer, count: buffer.count, eps: eps, p.objective), exact)
            worst = max(worst, err)
            #expect(err < Self.tolerance, "\(c.testDescription): \(name) analytic vs numeric differ by \(err)")
        }
        check("parameters", p.params, dParams)
        check("input", p.x, dx)
        check("h0", p.h0, dh0)
        if p.hasCell { check("c0", p.c0, dc0) }
        print("layer gradcheck stack \(c.testDescription): max normwise relative error \(worst)")
    }

    @Test("an input at a padded position changes neither the loss nor any gradient", arguments: [CellKind.gru, .lstm])
    func paddingIsNotRead(_ cell: CellKind) {
        let p = StackProblem(StackCase(cell: cell, layers: 2, bidirectional: true, lengths: [5, 2, 0, 4], finalTerm: true,
                                       dropout: 0.3))
        let before = p.objective(), a = p.analytic()
        // Row 1 (length 2) at t = 3, and row 2 (length 0) at t = 0.
        for (t, b) in [(3, 1), (0, 2)] {
            for j in 0..<p.I { p.x[(t * p.B + b) * p.I + j] += 3.5 }
        }
        let after = p.objective(), z = p.analytic()
        #expect(before == after)
        #expect(a.0 == z.0 && a.1 == z.1 && a.2 == z.2 && a.3 == z.3)
        // The input gradient is zero at padded positions.
        for b in 0..<p.B { for t in [5, 2, 0, 4][b]..<p.T { for j in 0..<p.I { #expect(a.1[(t * p.B + b) * p.I + j] == 0) } } }
    }

    @Test func outputsAtPaddedPositionsAreZeroAndFinalStateIsTheLastValidOne() {
        let p = StackProblem(StackCase(cell: .lstm, layers: 1, bidirectional: false, lengths: [5, 2, 0, 4], finalTerm: true,
                                       dropout: 0))
        let n = p.stack.stateBlocks * p.B * p.H
        let hT = FloatBuffer(count: n), cT = FloatBuffer(count: n)
        let out = p.stack.forward(.dense(p.x.pointer), steps: p.T, batch: p.B, parameters: p.params.pointer,
                                  initialH: p.h0.pointer, initialC: p.c0.pointer, finalH: hT.pointer, finalC: cT.pointer,
                                  lengths: [5, 2, 0, 4])
        let H = p.H, B = p.B
        for (b, len) in [5, 2, 0, 4].enumerated() {
            for t in len..<p.T { for j in 0..<H { #expect(out[(t * B + b) * H + j] == 0) } }
            for j in 0..<H {
                let expected = len == 0 ? p.h0[b * H + j] : out[((len - 1) * B + b) * H + j]
                #expect(hT[b * H + j] == expected)
            }
        }
    }

    @Test func maskedSoftmaxCrossEntropy() {
        let (N, V) = (6, 5)
        var rng = RandomGenerator(seed: 4)
        let logits = FloatBuffer((0..<(N * V)).map { _ in rng.uniform(-2, 2) })
        let targets: [Int32] = [1, 4, 0, 2, 3, 4]
        let mask: [Float] = [1, 0, 1, 1, 0, 1]
        let loss = SoftmaxCrossEntropy(classes: V)
        func objective() -> Double {
            let copy = FloatBuffer(logits.array)
            return loss.forward(copy.pointer, targets: targets, rows: N, mask: mask).sum
        }
        let g = FloatBuffer(logits.array)
        let value = loss.forwardBackward(g.pointer, targets: targets, rows: N, mask: mask, scale: 1)
        #expect(value.count == 4)
        #expect(abs(value.sum - objective()) < 1e-9)
        let err = Self.error(Self.numeric(logits.pointer, count: N * V, eps: 1e-2, objective), g.array)
        #expect(err < Self.tolerance, "masked loss gradient differs by \(err)")
        for r in 0..<N where mask[r] == 0 { for j in 0..<V { #expect(g[r * V + j] == 0) } }
        // An all-ones mask is the unmasked loss.
        let a = FloatBuffer(logits.array), b = FloatBuffer(logits.array)
        let la = loss.forwardBackward(a.pointer, targets: targets, rows: N, mask: [Float](repeating: 1, count: N), scale: 0.5)
        let lb = loss.forwardBackward(b.pointer, targets: targets, rows: N, scale: 0.5)
        #expect(la == lb && a.array == b.array)
        print("layer gradcheck masked loss: max normwise relative error \(err)")
    }

    @Test func linear() {
        let (N, I, O) = (4, 3, 5)
        let layout = ParameterLayout(shapes: Linear.parameterShapes(name: "proj", inputs: I, outputs: O))
        let layer = Linear(name: "proj", inputs: I, outputs: O, layout: layout)
        var rng = RandomGenerator(seed: 8)
        func filled(_ n: Int) -> FloatBuffer { FloatBuffer((0..<n).map { _ in rng.uniform(-1, 1) }) }
        let params = filled(layout.count), x = filled(N * I), w = filled(N * O)
        func objective() -> Double {
            let y = FloatBuffer(count: N * O)
            layer.forward(x.pointer, rows: N, parameters: params.pointer, into: y.pointer)
            return (0..<(N * O)).reduce(0.0) { $0 + Double(w[$1]) * Double(y[$1]) }
        }
        let grads = filled(layout.count), dx = filled(N * I)  // nonzero: backward must add onto them
        let grads0 = grads.array, dx0 = dx.array
        layer.backward(x.pointer, rows: N, dy: w.pointer, parameters: params.pointer, gradients: grads.pointer, dx: dx.pointer)
        let dParams = zip(grads.array, grads0).map { $0 - $1 }, dInput = zip(dx.array, dx0).map { $0 - $1 }
        let e1 = Self.error(Self.numeric(params.pointer, count: params.count, eps: 1e-2, objective), dParams)
        let e2 = Self.error(Self.numeric(x.pointer, count: x.count, eps: 1e-2, objective), dInput)
        #expect(e1 < Self.tolerance && e2 < Self.tolerance, "Linear: parameters \(e1), input \(e2)")
        print("layer gradcheck linear: max normwise relative error \(max(e1, e2))")
    }

    @Test func embedding() {
        let (V, E) = (6, 3)
        let tokens: [Int32] = [2, 5, 2, 0, 2, 3, 5]
        let layout = ParameterLayout(shapes: Embedding.parameterShapes(name: "encoder.embedding", vocabulary: V, width: E))
        let layer = Embedding(name: "encoder.embedding", vocabulary: V, width: E, layout: layout)
        var rng = RandomGenerator(seed: 9)
        let params = FloatBuffer((0..<layout.count).map { _ in rng.uniform(-1, 1) })
        let w = FloatBuffer((0..<(tokens.count * E)).map { _ in rng.uniform(-1, 1) })
        func objective() -> Double {
            let y = FloatBuffer(count: tokens.count * E)
            layer.forward(tokens, count: tokens.count, parameters: params.pointer, into: y.pointer)
            return (0..<y.count).reduce(0.0) { $0 + Double(w[$1]) * Double(y[$1]) }
        }
        let grads = FloatBuffer(count: layout.count)
        layer.backward(tokens, count: tokens.count, dOut: w.pointer, gradients: grads.pointer)
        let err = Self.error(Self.numeric(params.pointer, count: params.count, eps: 1e-2, objective), grads.array)
        #expect(err < Self.tolerance, "Embedding gradient differs by \(err)")
        print("layer gradcheck embedding: max normwise relative error \(err)")
    }
}
