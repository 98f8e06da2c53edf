import Foundation
import RNNCore
import Testing

/// The encoder-decoder as a whole: central finite differences on every parameter tensor (see GradientCheckTests for
/// why 1e-2 normwise relative error is the bar; the tight check is ReferenceEncoderDecoderTests), what padding and
/// masked targets may not change, step-by-step decoding against the full forward, and torch_seq2seq.py's names.
@Suite("Encoder-decoder")
struct EncoderDecoderTests {
    static let tolerance = 1e-2

    struct Case: CustomTestStringConvertible, Sendable {
        let cell: CellKind, bidirectional: Bool, packed: Bool, dropout: Float
        var testDescription: String {
            "\(cell.rawValue) \(bidirectional ? "bi" : "uni") \(packed ? "packed" : "unpacked") p=\(dropout)"
        }
    }

    static let cases: [Case] = [CellKind.gru, .lstm].flatMap { cell in
        [false, true].flatMap { bi in
            [false, true].map { Case(cell: cell, bidirectional: bi, packed: $0, dropout: 0) }
        }
    } + [Case(cell: .gru, bidirectional: true, packed: true, dropout: 0.3),
         Case(cell: .lstm, bidirectional: true, packed: false, dropout: 0.3)]

    /// Ids 0..<4 are <unk> <pad> <bos> <eos>. Rows differ in source and target length; row 1's target is shorter
    /// than T and row 2's source is the shortest, so the encoder's packing and the loss's mask both matter.
    static let (S, T, B, V) = (5, 4, 3, 7)
    static let sourceLengths = [3, 5, 2], targetLengths = [4, 2, 3]

    static func model(_ c: Case, seed: UInt64 = 5) throws -> EncoderDecoder {
        // H = 6: with H = 4 a bidirectional LSTM's 2-wide directions pass ~1e-3 gradients to their first layer's
        // recurrent weights, where Float32 rounding of the loss (~16) makes central differences err by ~2e-5, i.e. 2%
        // (measured; the float64 reference agrees with those gradients to 1e-6). With 3-wide directions the
        // smallest tensor's gradients are ~1e-2 and the worst error is ~2e-3.
        let config = EncoderDecoderConfig(sourceVocabSize: V, targetVocabSize: V, embedSize: 3, hiddenSize: 6,
                                          layers: 2, cell: c.cell, bidirectional: c.bidirectional, dropout: c.dropout,
                                          packedSource: c.packed)
        let m = try EncoderDecoder(config: config)
        // Larger than the default init, so every nonlinearity is exercised away from zero.
        var rng = RandomGenerator(seed: seed)
        for i in 0..<m.parameterCount { m.parameters[i] = rng.uniform(-0.8, 0.8) }
        return m
    }

    static func batch(seed: UInt64 = 3) -> EncoderDecoder.Batch {
        var rng = RandomGenerator(seed: seed)
        var source = [Int32](repeating: 1, count: S * B), target = [Int32](repeating: 0, count: T * B)
        for t in 0..<S {
            for b in 0..<B where t < sourceLengths[b] { source[t * B + b] = Int32(3 + rng.int(below: V - 3)) }
        }
        for i in target.indices { target[i] = Int32(3 + rng.int(below: V - 3)) }
        // Teacher forcing: <bos>, then the target without its last token.
        let decoderInput = (0..<(T * B)).map { $0 < B ? Int32(2) : target[$0 - B] }
        return EncoderDecoder.Batch(source: source, sourceLengths: sourceLengths, decoderInput: decoderInput,
                                    target: target, targetLengths: targetLengths, sourceSteps: S, targetSteps: T,
                                    batch: B)
    }

    /// max |numeric − analytic| / max |analytic| over a tensor.
    static func error(_ numeric: [Double], _ exact: [Float]) -> Double {
        var diff = 0.0, scale = 0.0
        for i in exact.indices {
            diff = max(diff, abs(numeric[i] - Double(exact[i])))
            scale = max(scale, abs(Double(exact[i])))
        }
        return diff / max(scale, 1e-6)
    }

    /// Loss and gradients of one forward-backward from zeroed gradients.
    static func lossAndGradients(_ m: EncoderDecoder, _ b: EncoderDecoder.Batch,
                                 dropout: DropoutKey? = nil) -> (LossSum, [Float]) {
        m.gradients.zero()
        let loss = m.forwardBackward(b, dropout: dropout)
        return (loss, m.gradients.array)
    }

    // MARK: Finite differences

    @Test("every parameter tensor against central differences", arguments: cases)
    func gradientsMatchFiniteDifferences(_ c: Case) throws {
        let m = try Self.model(c), b = Self.batch()
        let key = c.dropout > 0 ? DropoutKey(seed: 9, step: 2) : nil
        let (loss, analytic) = Self.lossAndGradients(m, b, dropout: key)
        #expect(loss.count == Self.targetLengths.reduce(0, +))
        if key == nil { #expect(m.loss(b) == loss, "loss(_:) and forwardBackward disagree") }
        let objective = { m.forwardBackward(b, dropout: key).sum }
        let eps: Float = 1e-2
        var worst = 0.0, worstName = ""
        for v in m.layout.tensors {
            let numeric = (0..<v.count).map { i -> Double in
                let old = m.parameters[v.offset + i]
                m.parameters[v.offset + i] = old + eps
                let lp = objective()
                m.parameters[v.offset + i] = old - eps
                let lm = objective()
                m.parameters[v.offset + i] = old
                return (lp - lm) / Double(2 * eps)
            }
            let exact = Array(analytic[v.offset..<(v.offset + v.count)])
            #expect(exact.contains { $0 != 0 }, "\(c.testDescription): \(v.name) has no gradient at all")
            let err = Self.error(numeric, exact)
            if err > worst { worst = err; worstName = v.name }
            #expect(err < Self.tolerance, "\(c.testDescription): \(v.name) analytic vs numeric differ by \(err)")
        }
        print("encoder-decoder gradcheck \(c.testDescription): max normwise relative error \(worst) (\(worstName))")
    }

    // MARK: Padding and masking

    @Test("packed: a source id at a padded position changes neither loss nor gradients",
          arguments: [CellKind.gru, .lstm])
    func paddedSourceIsNotRead(_ cell: CellKind) throws {
        for bi in [false, true] {
            let packed = try Self.model(Case(cell: cell, bidirectional: bi, packed: true, dropout: 0.3))
            let unpacked = try Self.model(Case(cell: cell, bidirectional: bi, packed: false, dropout: 0.3))
            let key = DropoutKey(seed: 4, step: 1)
            var b = Self.batch()
            let before = Self.lossAndGradients(packed, b, dropout: key)
            let unpackedBefore = Self.lossAndGradients(unpacked, b, dropout: key)
            // Row 0 (length 3) at t = 4, row 2 (length 2) at t = 2.
            for (t, r) in [(4, 0), (2, 2)] { b.source[t * Self.B + r] = 6 }
            let after = Self.lossAndGradients(packed, b, dropout: key)
            #expect(before.0 == after.0 && before.1 == after.1, "\(cell) bi=\(bi): padding changed the packed encoder")
            // The unpacked encoder (D2L's) does read the padding: the change is visible there.
            #expect(Self.lossAndGradients(unpacked, b, dropout: key).0 != unpackedBefore.0)
        }
    }

    @Test("a target or decoder input at a masked position changes nothing", arguments: cases)
    func maskedTargetsChangeNothing(_ c: Case) throws {
        let m = try Self.model(c)
        let key = c.dropout > 0 ? DropoutKey(seed: 4, step: 1) : nil
        var b = Self.batch()
        let before = Self.lossAndGradients(m, b, dropout: key)
        // Row 1 (target length 2) at t = 2 and 3, row 2 (length 3) at t = 3.
        for (t, r) in [(2, 1), (3, 1), (3, 2)] {
            b.target[t * Self.B + r] = b.target[t * Self.B + r] == 4 ? 5 : 4
        }
        let afterTarget = Self.lossAndGradients(m, b, dropout: key)
        #expect(before.0 == afterTarget.0 && before.1 == afterTarget.1,
                "\(c.testDescription): a masked target mattered")
        // The decoder is causal: its input at a masked step only feeds masked steps.
        for (t, r) in [(2, 1), (3, 1), (3, 2)] { b.decoderInput[t * Self.B + r] = 0 }
        let afterInput = Self.lossAndGradients(m, b, dropout: key)
        #expect(before.0 == afterInput.0 && before.1 == afterInput.1,
                "\(c.testDescription): a decoder input at a masked step mattered")
        // A valid target does matter.
        b.target[0] = b.target[0] == 4 ? 5 : 4
        #expect(Self.lossAndGradients(m, b, dropout: key).0 != before.0)
    }

    // MARK: Step-by-step decoding

    @Test("encode + decodeStep with teacher forcing reproduces the full forward's loss",
          arguments: cases.filter { $0.dropout == 0 })
    func stepwiseDecodingMatchesForward(_ c: Case) throws {
        let m = try Self.model(c), b = Self.batch()
        let (S, T, B, V) = (Self.S, Self.T, Self.B, Self.V)
        var state = m.encode(source: b.source, lengths: b.sourceLengths, steps: S, batch: B)
        var sum = 0.0, count = 0
        for t in 0..<T {
            let logits = m.decodeStep(tokens: Array(b.decoderInput[(t * B)..<((t + 1) * B)]), state: &state)
            #expect(logits.count == B * V)
            for r in 0..<B where t < b.targetLengths[r] {
                let row = logits[(r * V)..<((r + 1) * V)].map(Double.init)
                let top = row.max()!
                let logSumExp = top + log(row.reduce(0) { $0 + exp($1 - top) })
                sum += logSumExp - row[Int(b.target[t * B + r])]
                count += 1
            }
        }
        let full = m.loss(b)
        #expect(count == full.count)
        let err = abs(sum - full.sum) / abs(full.sum)
        #expect(err < 1e-5, "\(c.testDescription): step-wise loss \(sum) vs full forward \(full.sum)")
        print("encoder-decoder step-wise decoding \(c.testDescription): relative loss error \(err)")
    }

    @Test("a selected subset of rows (as beam search keeps) decodes as those rows of the full batch",
          arguments: [Case(cell: .lstm, bidirectional: true, packed: true, dropout: 0),
                      Case(cell: .gru, bidirectional: false, packed: false, dropout: 0)])
    func selectedRowsDecodeAsInTheFullBatch(_ c: Case) throws {
        let m = try Self.model(c), b = Self.batch()
        let (S, T, B, V) = (Self.S, Self.T, Self.B, Self.V)
        var full = m.encode(source: b.source, lengths: b.sourceLengths, steps: S, batch: B)
        let rows = [2, 0, 2]
        var part = full.selecting(rows: rows, layers: m.config.layers, hidden: m.config.hiddenSize)
        for t in 0..<T {
            let tokens = Array(b.decoderInput[(t * B)..<((t + 1) * B)])
            let all = m.decodeStep(tokens: tokens, state: &full)
            let some = m.decodeStep(tokens: rows.map { tokens[$0] }, state: &part)
            for (i, r) in rows.enumerated() {
                for j in 0..<V {
                    #expect(abs(some[i * V + j] - all[r * V + j]) <= 1e-5 * max(1, abs(all[r * V + j])),
                            "\(c.testDescription): step \(t), row \(r), logit \(j)")
                }
            }
        }
    }

    // MARK: Parameter names

    /// `torch_seq2seq.py`'s `Seq2Seq().state_dict()` for Vs = 11, Vt = 13, E = 5, H = 6, L = 2, written out from its
    /// modules: `nn.Embedding(Vs, E)`, `nn.GRU/LSTM(E, H/D, L, bidirectional)` (gates stacked: GRU 3, LSTM 4; each
    /// layer's forward tensors then its `_reverse` ones), `nn.Embedding(Vt, E)`, `nn.GRU/LSTM(E + H, H, L)`,
    /// `nn.Linear(H, Vt)`.
    static let bidirectionalGRUStateDict: [(String, [Int])] = [
        ("encoder.embedding.weight", [11, 5]),
        ("encoder.rnn.weight_ih_l0", [9, 5]), ("encoder.rnn.weight_hh_l0", [9, 3]),
        ("encoder.rnn.bias_ih_l0", [9]), ("encoder.rnn.bias_hh_l0", [9]),
        ("encoder.rnn.weight_ih_l0_reverse", [9, 5]), ("encoder.rnn.weight_hh_l0_reverse", [9, 3]),
        ("encoder.rnn.bias_ih_l0_reverse", [9]), ("encoder.rnn.bias_hh_l0_reverse", [9]),
        ("encoder.rnn.weight_ih_l1", [9, 6]), ("encoder.rnn.weight_hh_l1", [9, 3]),
        ("encoder.rnn.bias_ih_l1", [9]), ("encoder.rnn.bias_hh_l1", [9]),
        ("encoder.rnn.weight_ih_l1_reverse", [9, 6]), ("encoder.rnn.weight_hh_l1_reverse", [9, 3]),
        ("encoder.rnn.bias_ih_l1_reverse", [9]), ("encoder.rnn.bias_hh_l1_reverse", [9]),
        ("decoder.embedding.weight", [13, 5]),
        ("decoder.rnn.weight_ih_l0", [18, 11]), ("decoder.rnn.weight_hh_l0", [18, 6]),
        ("decoder.rnn.bias_ih_l0", [18]), ("decoder.rnn.bias_hh_l0", [18]),
        ("decoder.rnn.weight_ih_l1", [18, 6]), ("decoder.rnn.weight_hh_l1", [18, 6]),
        ("decoder.rnn.bias_ih_l1", [18]), ("decoder.rnn.bias_hh_l1", [18]),
        ("decoder.dense.weight", [13, 6]), ("decoder.dense.bias", [13]),
    ]

    static let lstmStateDict: [(String, [Int])] = [
        ("encoder.embedding.weight", [11, 5]),
        ("encoder.rnn.weight_ih_l0", [24, 5]), ("encoder.rnn.weight_hh_l0", [24, 6]),
        ("encoder.rnn.bias_ih_l0", [24]), ("encoder.rnn.bias_hh_l0", [24]),
        ("encoder.rnn.weight_ih_l1", [24, 6]), ("encoder.rnn.weight_hh_l1", [24, 6]),
        ("encoder.rnn.bias_ih_l1", [24]), ("encoder.rnn.bias_hh_l1", [24]),
        ("decoder.embedding.weight", [13, 5]),
        ("decoder.rnn.weight_ih_l0", [24, 11]), ("decoder.rnn.weight_hh_l0", [24, 6]),
        ("decoder.rnn.bias_ih_l0", [24]), ("decoder.rnn.bias_hh_l0", [24]),
        ("decoder.rnn.weight_ih_l1", [24, 6]), ("decoder.rnn.weight_hh_l1", [24, 6]),
        ("decoder.rnn.bias_ih_l1", [24]), ("decoder.rnn.bias_hh_l1", [24]),
        ("decoder.dense.weight", [13, 6]), ("decoder.dense.bias", [13]),
    ]

    @Test("the layout is torch_seq2seq.py's state_dict: names, shapes, order, contiguous",
          arguments: [(CellKind.gru, true), (.lstm, false)])
    func layoutIsTorchStateDict(_ cell: CellKind, _ bidirectional: Bool) throws {
        let m = try EncoderDecoder(config: EncoderDecoderConfig(
            sourceVocabSize: 11, targetVocabSize: 13, embedSize: 5, hiddenSize: 6, layers: 2, cell: cell,
            bidirectional: bidirectional))
        let expected = cell == .gru ? Self.bidirectionalGRUStateDict : Self.lstmStateDict
        #expect(m.layout.tensors.map(\.name) == expected.map(\.0))
        #expect(m.layout.tensors.map(\.shape) == expected.map(\.1))
        var offset = 0
        for v in m.layout.tensors {
            #expect(v.offset == offset, "\(v.name) at \(v.offset), expected \(offset)")
            offset += v.count
        }
        #expect(offset == m.parameterCount && m.parameters.count == offset && m.gradients.count == offset)
    }
}
