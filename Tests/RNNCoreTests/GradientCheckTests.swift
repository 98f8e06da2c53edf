import RNNCore
import Testing

/// Central finite differences of the summed loss against backward, for every parameter tensor and the
/// initial state (h, and c for LSTM), in Float32 with the loss summed in Double. The numerical derivative
/// is good to ~1e-3 relative (per-tensor max error / max gradient); a wrong gate or a missing term errs by O(1).
/// The tight check (1e-5) is against the float64 NumPy reference in ReferenceGradientTests.
struct GradCheckCase: CustomTestStringConvertible, Sendable {
    let cell: CellKind, layers: Int, embed: Int, dropout: Float
    var tied = false
    var hidden = 6, steps = 5
    var testDescription: String {
        "\(cell.rawValue) L=\(layers) E=\(embed) H=\(hidden) T=\(steps) p=\(dropout)\(tied ? " tied" : "")"
    }
}

let gradCheckCases: [GradCheckCase] = CellKind.allCases.flatMap { cell in
    [GradCheckCase(cell: cell, layers: 1, embed: 0, dropout: 0),
     GradCheckCase(cell: cell, layers: 2, embed: 0, dropout: 0),
     GradCheckCase(cell: cell, layers: 2, embed: 4, dropout: 0.3),
     // Tied (E = H = 6): encoder.weight's gradient is the embedding's and the decoder's, summed.
     GradCheckCase(cell: cell, layers: 2, embed: 6, dropout: 0.3, tied: true)]
} + [
    // Past the kernels' 8-float vectors and the 64-column bias sums; fewer than 4 steps take the recurrent products'
    // plain-BLAS path; 3 layers without dropout alternate the stack's two gradient buffers.
    GradCheckCase(cell: .gru, layers: 2, embed: 4, dropout: 0, hidden: 37, steps: 3),
    GradCheckCase(cell: .lstm, layers: 2, embed: 4, dropout: 0.3, hidden: 37, steps: 6),
    GradCheckCase(cell: .lstm, layers: 3, embed: 0, dropout: 0, hidden: 10, steps: 1),
    GradCheckCase(cell: .rnnTanh, layers: 3, embed: 5, dropout: 0, hidden: 17, steps: 4),
]

@Suite("Finite-difference gradient check")
struct GradientCheckTests {
    static let tolerance = 1e-2

    @Test(arguments: gradCheckCases)
    func gradientsMatchFiniteDifferences(_ c: GradCheckCase) throws {
        let config = ModelConfig(vocabSize: 7, embedSize: c.embed, hiddenSize: c.hidden, layers: c.layers, cell: c.cell,
                                 dropout: c.dropout, tied: c.tied)
        let (T, B) = (c.steps, 3)
        let model = try LanguageModel(config: config)
        var rng = RandomGenerator(seed: 42)
        model.initialize(.pytorch, rng: &rng)
        // Larger weights than the default init so every nonlinearity is exercised away from zero.
        for i in 0..<model.parameterCount { model.parameters[i] *= 2 }
        let inputs = (0..<(T * B)).map { _ in Int32(rng.int(below: 7)) }
        let targets = (0..<(T * B)).map { _ in Int32(rng.int(below: 7)) }
        var h0 = RecurrentState.zeros(config, batch: B)
        for i in h0.h.indices { h0.h[i] = rng.uniform(-0.8, 0.8) }
        for i in h0.c.indices { h0.c[i] = rng.uniform(-0.8, 0.8) }
        let key = DropoutKey(seed: 7, step: 1)

        func lossAt() -> Double {
            var s = h0
            model.gradients.zero()
            return model.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &s, dropout: key).sum
        }
        var state = h0
        var dState = h0
        model.gradients.zero()
        model.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state, dropout: key,
                              initialStateGradient: &dState)
        let analytic = model.gradients.array
        if c.tied { #expect(model.layout.view("decoder.weight") == nil && model.layout.view("encoder.weight") != nil) }
        // Float32 rounding noise falls as ε grows (measured); ReLU's kink limits ε for rnn-relu.
        let eps: Float = c.cell == .rnnRelu ? 1e-3 : 1e-2
        var worst = 0.0

        func check(_ name: String, _ numeric: [Double], _ exact: [Float]) {
            var diff = 0.0, scale = 0.0
            for i in exact.indices { diff = max(diff, abs(numeric[i] - Double(exact[i]))); scale = max(scale, abs(Double(exact[i]))) }
            let err = diff / max(scale, 1e-6)
            worst = max(worst, err)
            #expect(err < Self.tolerance, "\(c.testDescription): \(name) analytic vs numeric differ by \(err)")
        }
        for v in model.layout.tensors {
            var numeric = [Double](repeating: 0, count: v.count)
            for i in 0..<v.count {
                let old = model.parameters[v.offset + i]
                model.parameters[v.offset + i] = old + eps
                let lp = lossAt()
                model.parameters[v.offset + i] = old - eps
                let lm = lossAt()
                model.parameters[v.offset + i] = old
                numeric[i] = (lp - lm) / Double(2 * eps)
            }
            check(v.name, numeric, Array(analytic[v.offset..<(v.offset + v.count)]))
        }
        for (name, isCell) in [("h0", false), ("c0", true)] where !isCell || c.cell.hasCell {
            let base = isCell ? h0.c : h0.h
            var numeric = [Double](repeating: 0, count: base.count)
            for i in base.indices {
                let saved = h0
                if isCell { h0.c[i] += eps } else { h0.h[i] += eps }
                let lp = lossAt()
                h0 = saved
                if isCell { h0.c[i] -= eps } else { h0.h[i] -= eps }
                let lm = lossAt()
                h0 = saved
                numeric[i] = (lp - lm) / Double(2 * eps)
            }
            check(name, numeric, isCell ? dState.c : dState.h)
        }
        print("gradcheck \(c.testDescription): max normwise relative error \(worst)")
    }
}
