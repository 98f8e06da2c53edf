import Foundation
import RNNCore
import Testing

/// The recurrent stack (bidirectional, per-row lengths, final-state gradient, one-hot input) and the masked loss
/// against the float64 NumPy reference in Fixtures/reference_grads.json ("stack_cases", "loss_cases";
/// regenerate: see tools/reference_grads.py).
struct StackReferenceCase: Decodable, CustomTestStringConvertible {
    let cell: String, layers: Int, bidirectional: Bool, input: Int, hidden: Int, steps: Int, batch: Int
    let lengths: [Int]?, tokens: [Int32]?
    let x: [Double], params: [String: [Double]], h0: [Double], c0: [Double]
    let wOut: [Double], wH: [Double], wC: [Double]
    let objective: Double, output: [Double], hT: [Double], cT: [Double]
    let grads: [String: [Double]], dx: [Double], dh0: [Double], dc0: [Double]

    var testDescription: String {
        "\(cell) L=\(layers) \(bidirectional ? "bi" : "uni") lengths=\(lengths.map { "\($0)" } ?? "-")\(tokens == nil ? "" : " one-hot")"
    }
}

struct MaskedLossReferenceCase: Decodable {
    let vocab: Int, rows: Int
    let logits: [Double], targets: [Int32], mask: [Double]
    let loss: Double, count: Int, grad: [Double]
}

struct LayerReferenceFile: Decodable {
    let stack_cases: [StackReferenceCase]
    let loss_cases: [MaskedLossReferenceCase]
}

func loadLayerReference() throws -> LayerReferenceFile {
    let url = try #require(Bundle.module.url(forResource: "reference_grads", withExtension: "json", subdirectory: "Fixtures"))
    return try JSONDecoder().decode(LayerReferenceFile.self, from: Data(contentsOf: url))
}

@Suite("NumPy float64 reference: layers")
struct ReferenceLayerTests {
    @Test("stack output, final state and every gradient match to 1e-5", arguments: try loadLayerReference().stack_cases)
    func stack(_ ref: StackReferenceCase) throws {
        let cell = try #require(CellKind(rawValue: ref.cell))
        let layout = ParameterLayout(shapes: RecurrentStack.parameterShapes(
            cell: cell, inputSize: ref.input, hidden: ref.hidden, layers: ref.layers, bidirectional: ref.bidirectional))
        #expect(layout.tensors.map(\.name).sorted() == ref.params.keys.sorted(), "tensor names differ from PyTorch's")
        let stack = RecurrentStack(cell: cell, inputSize: ref.input, hidden: ref.hidden, layers: ref.layers,
                                   bidirectional: ref.bidirectional, layout: layout)
        let params = FloatBuffer(count: layout.count), grads = FloatBuffer(count: layout.count)
        for v in layout.tensors {
            let values = try #require(ref.params[v.name])
            #expect(values.count == v.count, "\(v.name): \(values.count) values, layout says \(v.count)")
            for i in 0..<v.count { params[v.offset + i] = Float(values[i]) }
        }
        let f = { (a: [Double]) in FloatBuffer(a.map(Float.init)) }
        let x = f(ref.x), h0 = f(ref.h0), c0 = f(ref.c0), wOut = f(ref.wOut), wH = f(ref.wH), wC = f(ref.wC)
        let lstm = cell.hasCell, T = ref.steps, B = ref.batch
        let hT = FloatBuffer(count: h0.count), cT = FloatBuffer(count: c0.count)
        let dx = FloatBuffer(count: x.count), dh0 = FloatBuffer(count: h0.count), dc0 = FloatBuffer(count: c0.count)
        try (ref.tokens ?? []).withUnsafeBufferPointer { tokens in
            let input: LayerInput = ref.tokens != nil ? .oneHot(try #require(tokens.baseAddress)) : .dense(x.pointer)
            let out = stack.forward(input, steps: T, batch: B, parameters: params.pointer, initialH: h0.pointer,
                                    initialC: lstm ? c0.pointer : nil, finalH: hT.pointer, finalC: lstm ? cT.pointer : nil,
                                    lengths: ref.lengths)
            let output = Array(UnsafeBufferPointer(start: out, count: T * B * stack.outputSize))
            var objective = 0.0
            for i in output.indices { objective += Double(wOut[i]) * Double(output[i]) }
            for i in 0..<hT.count { objective += Double(wH[i]) * Double(hT[i]) }
            for i in 0..<cT.count { objective += Double(wC[i]) * Double(cT[i]) }
            let label = ref.testDescription
            #expect(abs(objective - ref.objective) <= 1e-5 * max(1, abs(ref.objective)), "\(label): objective \(objective) vs \(ref.objective)")
            #expect(normwiseRelativeError(output, ref.output) < 1e-5, "\(label): output")
            #expect(normwiseRelativeError(hT.array, ref.hT) < 1e-5, "\(label): final h")
            if lstm { #expect(normwiseRelativeError(cT.array, ref.cT) < 1e-5, "\(label): final c") }
            stack.backward(dOutput: wOut.pointer, dFinalH: wH.pointer, dFinalC: lstm ? wC.pointer : nil,
                           parameters: params.pointer, gradients: grads.pointer,
                           dInput: ref.tokens == nil ? dx.pointer : nil, dInitialH: dh0.pointer,
                           dInitialC: lstm ? dc0.pointer : nil)
            var worst = 0.0
            for v in layout.tensors {
                let err = normwiseRelativeError(Array(grads.buffer[v.offset..<(v.offset + v.count)]), ref.grads[v.name]!)
                worst = max(worst, err)
                #expect(err < 1e-5, "\(label): \(v.name) gradient differs by \(err)")
            }
            if ref.tokens == nil {
                let e = normwiseRelativeError(dx.array, ref.dx)
                worst = max(worst, e)
                #expect(e < 1e-5, "\(label): ∂J/∂x differs by \(e)")
            }
            let eh = normwiseRelativeError(dh0.array, ref.dh0)
            #expect(eh < 1e-5, "\(label): ∂J/∂h0 differs by \(eh)")
            worst = max(worst, eh)
            if lstm {
                let ec = normwiseRelativeError(dc0.array, ref.dc0)
                #expect(ec < 1e-5, "\(label): ∂J/∂c0 differs by \(ec)")
                worst = max(worst, ec)
            }
            print("reference stack \(label): max normwise relative error \(worst)")
        }
    }

    @Test("masked softmax cross-entropy matches to 1e-5")
    func maskedLoss() throws {
        for ref in try loadLayerReference().loss_cases {
            let logits = FloatBuffer(ref.logits.map(Float.init)), mask = ref.mask.map(Float.init)
            let loss = SoftmaxCrossEntropy(classes: ref.vocab).forwardBackward(logits.pointer, targets: ref.targets,
                                                                                rows: ref.rows, mask: mask)
            #expect(loss.count == ref.count)
            #expect(abs(loss.sum - ref.loss) / ref.loss < 1e-5, "masked loss \(loss.sum) vs \(ref.loss)")
            let e = normwiseRelativeError(logits.array, ref.grad)
            #expect(e < 1e-5, "masked loss gradient differs by \(e)")
            print("reference masked loss: loss relative error \(abs(loss.sum - ref.loss) / ref.loss), gradient \(e)")
        }
    }
}
