import RNNCore
import RNNText
import RNNTrain
import Testing

/// `DataParallel` against the one-thread reference: the same minibatch, carried values and parameters must give
/// the same loss, gradient and next carried values up to float summation order (the rows are split, not the
/// maths), with dropout too, because masks are a function of the global row.
@Suite("Data parallelism inside a process")
struct DataParallelTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let cell: CellKind, layers: Int, embed: Int, batch: Int, threads: Int, dropout: Float
        var testDescription: String { "\(cell.rawValue) L=\(layers) E=\(embed) B=\(batch) threads=\(threads) dropout=\(dropout)" }
    }

    static let cases: [Case] = CellKind.allCases.map { Case(cell: $0, layers: 1, embed: 0, batch: 8, threads: 2, dropout: 0) } + [
        Case(cell: .lstm, layers: 2, embed: 5, batch: 7, threads: 3, dropout: 0),    // uneven groups 2, 2, 3
        Case(cell: .gru, layers: 2, embed: 0, batch: 3, threads: 4, dropout: 0),     // more threads than rows
        Case(cell: .lstm, layers: 2, embed: 5, batch: 7, threads: 3, dropout: 0.3),  // dropout: masks follow the row
    ]

    /// max |a − b| / max |b| over the whole buffer.
    func relativeError(_ a: [Float], _ b: [Float]) -> Double {
        let scale = b.map { Double(abs($0)) }.max() ?? 0
        let err = zip(a, b).map { Double(abs($0 - $1)) }.max() ?? 0
        return scale == 0 ? err : err / scale
    }

    /// A language-model task over a random 11-token corpus.
    static func task(_ c: Case, seed: UInt64 = 5) throws -> LanguageModelTask {
        var rng = RandomGenerator(seed: seed)
        let tokens = (0..<2000).map { _ in Int32(rng.int(below: 11)) }
        let data = TextData(tokenizer: Tokenizer(kind: .char), vocabulary: Vocabulary(tokens: (0..<11).map { "t\($0)" }),
                            train: tokens)
        var o = TrainOptions()
        o.corpus = "synthetic"; o.model = c.cell; o.layers = c.layers; o.embed = c.embed; o.hidden = 24
        o.batchSize = c.batch; o.numSteps = 6; o.dropout = c.dropout; o.seed = seed
        return try LanguageModelTask(options: o, data: data)
    }

    @Test(arguments: cases)
    func matchesOneThread(_ c: Case) throws {
        let task = try Self.task(c)
        var rng = RandomGenerator(seed: 9)
        let rows = Array(0..<c.batch)
        let start = (0..<(c.batch * task.carriedPerRow)).map { _ in rng.uniform(-0.5, 0.5) }
        var refCarried = start
        task.gradients.zero()
        let refLoss = task.accumulateGradient(epoch: 0, index: 3, rows: rows, step: 17, carried: &refCarried)
        let refGrad = task.gradients.array

        let parallel = DataParallel(task: task, threads: c.threads)
        #expect(parallel.groups(count: c.batch).count == min(c.threads, c.batch))
        for _ in 0..<2 {  // twice: replicas reuse their workspaces and must start from zeroed gradients
            var carried = start
            task.gradients.zero()
            let loss = parallel.accumulateGradient(epoch: 0, index: 3, rows: rows, step: 17, carried: &carried)
            #expect(loss.count == refLoss.count)
            #expect(abs(loss.sum - refLoss.sum) <= 1e-5 * abs(refLoss.sum), "loss \(loss.sum) vs \(refLoss.sum)")
            let e = relativeError(task.gradients.array, refGrad)
            #expect(e < 1e-5, "gradient differs from one thread by \(e)")
            #expect(relativeError(carried, refCarried) < 1e-5)
        }
    }

    @Test func groupsCoverTheRowsContiguouslyAndEvenly() throws {
        let task = try Self.task(Case(cell: .rnnTanh, layers: 1, embed: 0, batch: 4, threads: 1, dropout: 0))
        for threads in 1...5 {
            let p = DataParallel(task: task, threads: threads)
            for count in 1...13 {
                let g = p.groups(count: count)
                #expect(g.count == min(threads, count))
                #expect(g.first?.lowerBound == 0 && g.last?.upperBound == count)
                #expect(zip(g, g.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
                let sizes = g.map(\.count)
                #expect(sizes.min()! >= 1 && sizes.max()! - sizes.min()! <= 1, "threads \(threads) count \(count): \(sizes)")
            }
        }
    }

    @Test("dropout masks follow the seed and the step, not the split")
    func dropoutMasksFollowSeedAndStep() throws {
        let c = Case(cell: .lstm, layers: 2, embed: 4, batch: 6, threads: 2, dropout: 0.5)
        func gradient(seed: UInt64, step: Int) throws -> [Float] {
            let task = try Self.task(c, seed: seed)
            // The same parameters whatever the seed, so only the masks can differ.
            let reference = try Self.task(c, seed: 1)
            task.parameters.copy(from: UnsafeBufferPointer(reference.parameters.buffer))
            var carried = task.zeroCarried
            task.gradients.zero()
            _ = DataParallel(task: task, threads: 2)
                .accumulateGradient(epoch: 0, index: 0, rows: Array(0..<c.batch), step: step, carried: &carried)
            return task.gradients.array
        }
        let a = try gradient(seed: 1, step: 4), b = try gradient(seed: 1, step: 4)
        #expect(a.map(\.bitPattern) == b.map(\.bitPattern), "the same seed and step must give the same masks")
        #expect(a != (try gradient(seed: 2, step: 4)), "another seed must give other masks")
        #expect(a != (try gradient(seed: 1, step: 5)), "another step must give other masks")
        #expect(a.allSatisfy { $0.isFinite })
    }
}
