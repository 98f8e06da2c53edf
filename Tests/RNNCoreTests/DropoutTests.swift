import RNNCore
import Testing

/// Counter-based dropout: a mask element is a function of (seed, step, site, global row, t, unit) alone, so the
/// way a minibatch is split (threads, processes) cannot change which units are dropped.
@Suite("Counter-based dropout")
struct DropoutTests {
    /// The masks of `rows` for a `[T, rows.count, n]` activation of ones.
    func masks(_ d: Dropout, key: DropoutKey, steps T: Int, rows: [Int], width n: Int) -> [Float] {
        let B = rows.count
        let x = FloatBuffer([Float](repeating: 1, count: T * B * n)), out = FloatBuffer(count: T * B * n)
        let mask = FloatBuffer(count: T * B * n)
        rows.withUnsafeBufferPointer {
            d.forward(x.pointer, into: out.pointer, mask: mask.pointer, steps: T, batch: B, width: n, key: key,
                      rows: $0.baseAddress!)
        }
        #expect(out.array == mask.array)
        return mask.array
    }

    @Test func aRowsMaskIsTheSameInAnyBatch() {
        let d = Dropout(probability: 0.3, site: 2), key = DropoutKey(seed: 5, step: 9)
        let (T, n) = (4, 37)
        let rows = [0, 1, 2, 3, 4, 5, 6, 7]
        let all = masks(d, key: key, steps: T, rows: rows, width: n)
        for (b, r) in rows.enumerated() {
            let alone = masks(d, key: key, steps: T, rows: [r], width: n)
            for t in 0..<T {
                #expect(Array(all[((t * rows.count + b) * n)..<((t * rows.count + b + 1) * n)]) == Array(alone[(t * n)..<((t + 1) * n)]),
                        "row \(r), step \(t)")
            }
        }
        // The second half of the batch computed alone, as a second thread or worker would.
        let half = masks(d, key: key, steps: T, rows: [4, 5, 6, 7], width: n)
        for t in 0..<T {
            #expect(Array(all[((t * 8 + 4) * n)..<((t * 8 + 8) * n)]) == Array(half[(t * 4 * n)..<((t + 1) * 4 * n)]))
        }
    }

    @Test func masksDependOnSeedStepSiteAndKeepOneMinusP() {
        let (T, n) = (5, 64), rows = Array(0..<16)
        let base = masks(Dropout(probability: 0.3, site: 1), key: DropoutKey(seed: 1, step: 1), steps: T, rows: rows, width: n)
        let again = masks(Dropout(probability: 0.3, site: 1), key: DropoutKey(seed: 1, step: 1), steps: T, rows: rows, width: n)
        #expect(base == again)
        #expect(base != masks(Dropout(probability: 0.3, site: 1), key: DropoutKey(seed: 2, step: 1), steps: T, rows: rows, width: n))
        #expect(base != masks(Dropout(probability: 0.3, site: 1), key: DropoutKey(seed: 1, step: 2), steps: T, rows: rows, width: n))
        #expect(base != masks(Dropout(probability: 0.3, site: 2), key: DropoutKey(seed: 1, step: 1), steps: T, rows: rows, width: n))
        #expect(base.allSatisfy { $0 == 0 || abs($0 - 1 / 0.7) < 1e-6 })
        // Rows and positions are not copies of each other.
        #expect(Array(base[0..<n]) != Array(base[n..<(2 * n)]))
        #expect(Array(base[0..<n]) != Array(base[(16 * n)..<(17 * n)]))
        // The kept fraction over 2^17 draws is 0.7 within 5 standard deviations (0.0063).
        let big = masks(Dropout(probability: 0.3, site: 0), key: DropoutKey(seed: 3, step: 4), steps: 32, rows: Array(0..<64), width: 64)
        let kept = Double(big.filter { $0 != 0 }.count) / Double(big.count)
        #expect(abs(kept - 0.7) < 0.0063, "kept \(kept)")
    }

    func model(dropout: Float) throws -> (LanguageModel, [Int32], [Int32], RecurrentState) {
        let config = ModelConfig(vocabSize: 9, embedSize: 6, hiddenSize: 16, layers: 2, cell: .lstm, dropout: dropout)
        let model = try LanguageModel(config: config)
        var rng = RandomGenerator(seed: 3, stream: .initialization)
        model.initialize(.pytorch, rng: &rng)
        let (T, B) = (5, 6)
        let inputs = (0..<(T * B)).map { _ in Int32(rng.int(below: 9)) }
        let targets = (0..<(T * B)).map { _ in Int32(rng.int(below: 9)) }
        var state = RecurrentState.zeros(config, batch: B)
        for i in state.h.indices { state.h[i] = rng.uniform(-0.5, 0.5) }
        for i in state.c.indices { state.c[i] = rng.uniform(-0.5, 0.5) }
        return (model, inputs, targets, state)
    }

    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let scale = b.map { Double(abs($0)) }.max() ?? 0
        let err = zip(a, b).map { Double(abs($0 - $1)) }.max() ?? 0
        return scale == 0 ? err : err / scale
    }

    /// Rows computed apart (a thread's or a worker's share, `DataParallel` in RNNTrain) draw the masks they
    /// draw in the whole batch.
    @Test func someRowsAloneDropTheUnitsTheyDropInTheWholeBatch() throws {
        let (model, inputs, targets, start) = try model(dropout: 0.3)
        let key = DropoutKey(seed: 42, step: 7)
        var refState = start
        model.gradients.zero()
        _ = model.forwardBackward(inputs: inputs, targets: targets, steps: 5, batch: 6, state: &refState, dropout: key)
        // Columns 3..<6 passed alone, as global rows 3, 4, 5.
        var part = start.selecting(columns: [3, 4, 5])
        let cols = (0..<5).flatMap { t in (3..<6).map { t * 6 + $0 } }
        model.gradients.zero()
        _ = model.forwardBackward(inputs: cols.map { inputs[$0] }, targets: cols.map { targets[$0] }, steps: 5, batch: 3,
                                  state: &part, dropout: key, rows: [3, 4, 5])
        #expect(relativeError(part.h, refState.selecting(columns: [3, 4, 5]).h) < 1e-5)
    }

    @Test func dropoutChangesTheRunAndEvaluationIgnoresIt() throws {
        let (model, inputs, targets, start) = try model(dropout: 0.3)
        func run(_ key: DropoutKey?) -> (Double, [Float]) {
            var s = start
            model.gradients.zero()
            let l = model.forwardBackward(inputs: inputs, targets: targets, steps: 5, batch: 6, state: &s, dropout: key)
            return (l.sum, model.gradients.array)
        }
        let none = run(nil), a = run(DropoutKey(seed: 1, step: 1))
        #expect(none.0 != a.0 && none.1 != a.1, "a run with dropout must differ from one without")
        #expect(run(DropoutKey(seed: 1, step: 1)).1.map(\.bitPattern) == a.1.map(\.bitPattern), "same key, same masks")
        #expect(run(DropoutKey(seed: 1, step: 2)).1 != a.1, "the masks depend on the step")
        #expect(run(DropoutKey(seed: 2, step: 1)).1 != a.1, "the masks depend on the seed")
        var s = start
        let eval = model.loss(inputs: inputs, targets: targets, steps: 5, batch: 6, state: &s)
        #expect(abs(eval.sum - none.0) < 1e-9 * abs(none.0), "evaluation runs without dropout")
    }

    @Test func namedStreamsMatchTheirNumbers() {
        for s in RandomStream.allCases {
            var a = RandomGenerator(seed: 9, stream: s, index: 4), b = RandomGenerator(seed: 9, stream: s.rawValue, index: 4)
            #expect(a.next() == b.next())
        }
    }
}
