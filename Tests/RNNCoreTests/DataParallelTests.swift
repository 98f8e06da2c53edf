import RNNCore
import Testing

/// `DataParallel` against the one-thread reference: the same minibatch, state and parameters must give the
/// same loss, gradient and final state up to float summation order (the streams are split, not the maths).
@Suite("Data parallelism inside a process")
struct DataParallelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let cell: CellKind, layers: Int, embed: Int, batch: Int, threads: Int
        var testDescription: String { "\(cell.rawValue) L=\(layers) E=\(embed) B=\(batch) threads=\(threads)" }
    }

    static let cases: [Case] = CellKind.allCases.map { Case(cell: $0, layers: 1, embed: 0, batch: 8, threads: 2) } + [
        Case(cell: .lstm, layers: 2, embed: 5, batch: 7, threads: 3),  // uneven groups 2, 2, 3
        Case(cell: .gru, layers: 2, embed: 0, batch: 3, threads: 4),   // more threads than streams
    ]

    /// max |a − b| / max |b| over the whole buffer.
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let scale = b.map { Double(abs($0)) }.max() ?? 0
        let err = zip(a, b).map { Double(abs($0 - $1)) }.max() ?? 0
        return scale == 0 ? err : err / scale
    }

    @Test(arguments: cases)
    func matchesOneThread(_ c: Case) throws {
        let config = ModelConfig(vocabSize: 11, embedSize: c.embed, hiddenSize: 24, layers: c.layers, cell: c.cell)
        let T = 6, B = c.batch
        let model = try LanguageModel(config: config)
        var rng = RandomGenerator(seed: 5)
        model.initialize(.pytorch, rng: &rng)
        let inputs = (0..<(T * B)).map { _ in Int32(rng.int(below: 11)) }
        let targets = (0..<(T * B)).map { _ in Int32(rng.int(below: 11)) }
        var start = RecurrentState.zeros(config, batch: B)
        for i in start.h.indices { start.h[i] = rng.uniform(-0.5, 0.5) }
        for i in start.c.indices { start.c[i] = rng.uniform(-0.5, 0.5) }

        var refState = start
        model.gradients.zero()
        let refLoss = model.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &refState)
        let refGrad = model.gradients.array

        let parallel = DataParallel(model: model, threads: c.threads)
        #expect(parallel.groups(batch: B).count == min(c.threads, B))
        for _ in 0..<2 {  // twice: replicas reuse their workspaces and must start from zeroed gradients
            var state = start
            model.gradients.zero()
            let loss = parallel.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state,
                                                dropout: nil)
            #expect(loss.count == refLoss.count)
            #expect(abs(loss.sum - refLoss.sum) <= 1e-5 * abs(refLoss.sum), "loss \(loss.sum) vs \(refLoss.sum)")
            let e = relativeError(model.gradients.array, refGrad)
            #expect(e < 1e-5, "gradient differs from one thread by \(e)")
            #expect(relativeError(state.h, refState.h) < 1e-5)
            #expect(relativeError(state.c, refState.c) < 1e-5)
        }
    }

    @Test func groupsCoverTheStreamsContiguouslyAndEvenly() {
        let model = try! LanguageModel(config: ModelConfig(vocabSize: 5, hiddenSize: 4, cell: .rnnTanh))
        for threads in 1...5 {
            let p = DataParallel(model: model, threads: threads)
            for batch in 1...13 {
                let g = p.groups(batch: batch)
                #expect(g.count == min(threads, batch))
                #expect(g.first?.lowerBound == 0 && g.last?.upperBound == batch)
                #expect(zip(g, g.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                let sizes = g.map(\.count)
                #expect(sizes.min()! >= 1 && sizes.max()! - sizes.min()! <= 1, "threads \(threads) batch \(batch): \(sizes)")
            }
        }
    }

    @Test func dropoutMasksFollowTheSeed() throws {
        let config = ModelConfig(vocabSize: 9, embedSize: 4, hiddenSize: 16, layers: 2, cell: .lstm, dropout: 0.5)
        let model = try LanguageModel(config: config)
        var rng = RandomGenerator(seed: 3)
        model.initialize(.pytorch, rng: &rng)
        let (T, B) = (5, 6)
        let inputs = (0..<(T * B)).map { _ in Int32(rng.int(below: 9)) }
        let targets = (0..<(T * B)).map { _ in Int32(rng.int(below: 9)) }
        let parallel = DataParallel(model: model, threads: 2)
        func run(_ seed: UInt64) -> [Float] {
            var state = RecurrentState.zeros(config, batch: B)
            model.gradients.zero()
            parallel.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state,
                                     dropout: DropoutKey(seed: seed, step: 1))
            return model.gradients.array
        }
        let a = run(1), b = run(1), c = run(2)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "the same seed must give the same masks and gradient")
        #expect(a != c, "a different seed must give different masks")
        #expect(a.allSatisfy { $0.isFinite })
    }
}
