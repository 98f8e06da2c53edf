import Foundation
import RNNCore
import Testing

/// The encoder-decoder against the float64 NumPy reference in Fixtures/reference_grads.json ("seq2seq_cases";
/// regenerate: see tools/reference_grads.py): the masked loss sum and the gradient of every parameter tensor.
struct EncoderDecoderReferenceCase: Decodable, CustomTestStringConvertible {
    let cell: String, bidirectional: Bool, packed: Bool
    let sourceVocab: Int, targetVocab: Int, embed: Int, hidden: Int, layers: Int
    let sourceSteps: Int, targetSteps: Int, batch: Int
    let source: [Int32], sourceLengths: [Int], decoderInput: [Int32], target: [Int32], targetLengths: [Int]
    let params: [String: [Double]]
    let loss: Double, count: Int
    let grads: [String: [Double]]

    var testDescription: String { "\(cell) \(bidirectional ? "bi" : "uni") \(packed ? "packed" : "unpacked")" }
}

struct EncoderDecoderReferenceFile: Decodable {
    let seq2seq_cases: [EncoderDecoderReferenceCase]
}

func loadEncoderDecoderReference() throws -> [EncoderDecoderReferenceCase] {
    let url = try #require(Bundle.module.url(forResource: "reference_grads", withExtension: "json",
                                             subdirectory: "Fixtures"))
    return try JSONDecoder().decode(EncoderDecoderReferenceFile.self, from: Data(contentsOf: url)).seq2seq_cases
}

@Suite("NumPy float64 reference: encoder-decoder")
struct ReferenceEncoderDecoderTests {
    @Test("masked loss and every gradient match to 1e-5", arguments: try loadEncoderDecoderReference())
    func matchesReference(_ ref: EncoderDecoderReferenceCase) throws {
        let cell = try #require(CellKind(rawValue: ref.cell))
        let config = EncoderDecoderConfig(sourceVocabSize: ref.sourceVocab, targetVocabSize: ref.targetVocab,
                                          embedSize: ref.embed, hiddenSize: ref.hidden, layers: ref.layers, cell: cell,
                                          bidirectional: ref.bidirectional, packedSource: ref.packed)
        let model = try EncoderDecoder(config: config)
        let label = ref.testDescription
        // JSON objects carry no order; EncoderDecoderTests checks the order against torch_seq2seq.py.
        #expect(model.layout.tensors.map(\.name).sorted() == ref.params.keys.sorted(),
                "\(label): tensor names differ from the reference's")
        for v in model.layout.tensors {
            let values = try #require(ref.params[v.name])
            #expect(values.count == v.count, "\(label): \(v.name) holds \(values.count) values, the layout \(v.count)")
            for i in 0..<v.count { model.parameters[v.offset + i] = Float(values[i]) }
        }
        let batch = EncoderDecoder.Batch(source: ref.source, sourceLengths: ref.sourceLengths,
                                         decoderInput: ref.decoderInput, target: ref.target,
                                         targetLengths: ref.targetLengths, sourceSteps: ref.sourceSteps,
                                         targetSteps: ref.targetSteps, batch: ref.batch)
        model.gradients.zero()
        let loss = model.forwardBackward(batch)
        #expect(loss.count == ref.count, "\(label): \(loss.count) valid tokens, the reference \(ref.count)")
        let lossError = abs(loss.sum - ref.loss) / abs(ref.loss)
        #expect(lossError < 1e-5, "\(label): loss \(loss.sum) vs \(ref.loss)")
        #expect(abs(model.loss(batch).sum - ref.loss) / abs(ref.loss) < 1e-5, "\(label): loss(_:) differs")
        var worst = 0.0
        for v in model.layout.tensors {
            let exact = try #require(ref.grads[v.name])
            let err = normwiseRelativeError(Array(model.gradients.buffer[v.offset..<(v.offset + v.count)]), exact)
            worst = max(worst, err)
            #expect(err < 1e-5, "\(label): \(v.name) gradient differs by \(err)")
        }
        print("reference encoder-decoder \(label): loss relative error \(lossError), max gradient error \(worst)")
    }
}
