import Foundation
import RNNCore
import Testing

/// Loss, every parameter gradient, the initial-state gradient and the final state against the float64
/// NumPy reference in Fixtures/reference_grads.json (regenerate: see tools/reference_grads.py).
struct ReferenceCase: Decodable {
    let cell: String, layers: Int, embed: Int, vocab: Int, hidden: Int, steps: Int, batch: Int
    let inputs: [Int32], targets: [Int32]
    let params: [String: [Double]]
    let h0: [Double], c0: [Double]
    let loss: Double
    let grads: [String: [Double]]
    let dh0: [Double], dc0: [Double], hT: [Double], cT: [Double]

    var config: ModelConfig {
        ModelConfig(vocabSize: vocab, embedSize: embed, hiddenSize: hidden, layers: layers,
                    cell: CellKind(rawValue: cell)!)
    }
}

struct ReferenceFile: Decodable { let cases: [ReferenceCase] }

func loadReference() throws -> [ReferenceCase] {
    let url = try #require(Bundle.module.url(forResource: "reference_grads", withExtension: "json", subdirectory: "Fixtures"))
    return try JSONDecoder().decode(ReferenceFile.self, from: Data(contentsOf: url)).cases
}

/// max |a − b| / max |b|: a per-tensor relative error that is not blown up by near-zero entries.
func normwiseRelativeError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count, "compared tensors differ in size: \(a.count) vs \(b.count)")
    var diff = 0.0, scale = 0.0
    for i in a.indices { diff = max(diff, abs(Double(a[i]) - b[i])); scale = max(scale, abs(b[i])) }
    return scale == 0 ? diff : diff / scale
}

@Suite("NumPy float64 reference")
struct ReferenceGradientTests {
    @Test("loss, gradients, state gradients and final state match to 1e-5", arguments: try loadReference())
    func matchesReference(_ ref: ReferenceCase) throws {
        let model = try LanguageModel(config: ref.config)
        for v in model.layout.tensors {
            let values = try #require(ref.params[v.name], "fixture lacks \(v.name)")
            #expect(values.count == v.count, "\(v.name) has \(values.count) values, layout says \(v.count)")
            for i in 0..<v.count { model.parameters[v.offset + i] = Float(values[i]) }
        }
        #expect(Set(ref.params.keys) == Set(model.layout.tensors.map(\.name)), "tensor names differ from PyTorch's")
        var state = RecurrentState.zeros(ref.config, batch: ref.batch)
        state.h = ref.h0.map(Float.init)
        state.c = ref.c0.map(Float.init)
        var dState = state
        model.gradients.zero()
        let loss = model.forwardBackward(inputs: ref.inputs, targets: ref.targets, steps: ref.steps, batch: ref.batch,
                                         state: &state, initialStateGradient: &dState)
        let label = "\(ref.cell) L=\(ref.layers) E=\(ref.embed)"
        #expect(abs(loss.sum - ref.loss) / ref.loss < 1e-5, "\(label): loss \(loss.sum) vs \(ref.loss)")
        for v in model.layout.tensors {
            let g = Array(model.gradients.buffer[v.offset..<(v.offset + v.count)])
            let err = normwiseRelativeError(g, ref.grads[v.name]!)
            #expect(err < 1e-5, "\(label): \(v.name) gradient differs by \(err)")
        }
        #expect(normwiseRelativeError(dState.h, ref.dh0) < 1e-5, "\(label): ∂L/∂h0")
        #expect(normwiseRelativeError(state.h, ref.hT) < 1e-5, "\(label): final h")
        if ref.cell == "lstm" {
            #expect(normwiseRelativeError(dState.c, ref.dc0) < 1e-5, "\(label): ∂L/∂c0")
            #expect(normwiseRelativeError(state.c, ref.cT) < 1e-5, "\(label): final c")
        }
    }
}
