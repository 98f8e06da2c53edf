import Foundation
import RNNCheckpoint
import RNNCore
import RNNTrain
import Testing

/// An untied embedding's gradient is row-sparse: only the rows of the tokens a minibatch reads are non-zero.
/// Zeroing, summing across threads and workers, the norm, plain SGD and the wire visit only those rows; these
/// tests hold that to the dense computation it replaces, and to finite differences.
@Suite("Row-sparse embedding gradients", .serialized)
struct SparseEmbeddingTests {
    static func wordOptions(_ configure: (inout TrainOptions) -> Void = { _ in }) -> TrainOptions {
        timeMachineOptions {
            $0.tokenizer = .word; $0.maxTokens = 3000; $0.embed = 12; $0.hidden = 16; $0.layers = 2; $0.model = .lstm
            $0.batchSize = 6; $0.numSteps = 8; $0.epochs = 2; $0.lr = 2; $0.clip = 1; $0.validFraction = 0.1
            configure(&$0)
        }
    }

    static func task(_ o: TrainOptions) throws -> LanguageModelTask {
        try LanguageModelTask(options: o, data: try TextData.load(o, dataDir: sharedDataDirectory()))
    }

    /// The sum of the losses of `rows` of minibatch 0 of epoch 0, in Double, at the task's parameters.
    static func lossSum(_ t: LanguageModelTask, rows: [Int]) -> Double {
        var carried = [Float](repeating: 0, count: rows.count * t.carriedPerRow)
        let saved = t.gradients.array
        defer { saved.withUnsafeBufferPointer { t.gradients.copy(from: $0) } }
        return t.accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried).sum
    }

    @Test("the gradient is zero outside the touched rows, equals the densely zeroed one, and matches finite differences")
    func touchedRowsHoldTheWholeGradient() throws {
        let t = try Self.task(Self.wordOptions())
        let table = try #require(t.sparseRows.first)
        #expect(t.sparseRows.count == 1 && table.rows == t.data.vocabulary.count && table.width == 12 && table.rows > 200)
        let rows = Array(0..<t.rowsPerMinibatch)
        var carried = t.zeroCarried
        // Dirty the buffer through one minibatch, then zero it through the support and compute another: no value
        // of the first may survive outside the second's rows.
        _ = t.accumulateGradient(epoch: 0, index: 1, rows: rows, step: 1, carried: &carried)
        t.zeroGradients()
        #expect(t.touchedRows.allSatisfy(\.isEmpty) && t.gradients.array.allSatisfy { $0 == 0 }, "zeroGradients leaves a non-zero value")
        carried = t.zeroCarried
        _ = t.accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried)
        let mb = t.epochBatches(0)[0]
        #expect(t.touchedRows == [Array(Set(mb.inputs)).sorted()], "the touched rows are the minibatch's distinct input tokens")
        let g = t.gradients.array
        let touched = Set(t.touchedRows[0])
        for r in 0..<table.rows where !touched.contains(Int32(r)) {
            #expect(g[table.rowRange(Int32(r))].allSatisfy { $0 == 0 }, "row \(r) was not read but has a gradient")
        }
        // The same gradient with the whole buffer zeroed first (the dense path): bit for bit.
        let dense = try Self.task(Self.wordOptions())
        dense.gradients.zero()
        carried = dense.zeroCarried
        _ = dense.accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried)
        #expect(dense.gradients.array.map(\.bitPattern) == g.map(\.bitPattern))
        // Central differences in Double on a touched row and an untouched one.
        let eps: Float = 1e-2
        let someTouched = try #require(t.touchedRows[0].dropFirst(t.touchedRows[0].count / 2).first)
        let untouched = try #require((0..<Int32(table.rows)).first { !touched.contains($0) })
        for (row, j) in [(someTouched, 0), (someTouched, 7), (untouched, 3)] {
            let i = table.rowRange(row).lowerBound + j
            let saved = t.parameters[i]
            t.parameters[i] = saved + eps
            let up = Self.lossSum(t, rows: rows)
            t.parameters[i] = saved - eps
            let down = Self.lossSum(t, rows: rows)
            t.parameters[i] = saved
            let fd = (up - down) / Double(2 * eps)
            print("row \(row) [\(j)]: analytic \(g[i]), finite difference \(fd)")
            #expect(abs(fd - Double(g[i])) <= 2e-2 * max(1, abs(fd)), "row \(row) value \(j): analytic \(g[i]) vs finite difference \(fd)")
        }
    }

    @Test("norm and plain SGD over the support equal the dense computation; the norm does not depend on threads")
    func sparseNormAndUpdateMatchDense() throws {
        let t = try Self.task(Self.wordOptions())
        var carried = t.zeroCarried
        t.zeroGradients()
        _ = t.accumulateGradient(epoch: 0, index: 0, rows: Array(0..<t.rowsPerMinibatch), step: 1, carried: &carried)
        let support = t.gradientSupport
        let table = try #require(t.sparseRows.first)
        #expect(support.valueCount < t.parameterCount - table.rows * table.width / 2, "the support skips most of the table")
        let sparse1 = t.gradients.sumOfSquares(support, threads: 1), sparse2 = t.gradients.sumOfSquares(support, threads: 2)
        let dense = t.gradients.array.reduce(0.0) { $0 + Double($1) * Double($1) }
        #expect(sparse1.bitPattern == sparse2.bitPattern, "the norm changed with the thread count")
        #expect(abs(sparse1 - dense) <= 1e-9 * dense)
        // Plain SGD over the support against the dense update: bit-identical (a zero gradient moves nothing).
        for threads in [1, 2] {
            let a = FloatBuffer(t.parameters.array), b = FloatBuffer(t.parameters.array)
            Optimizer(.sgd(momentum: 0, weightDecay: 0), parameterCount: t.parameterCount)
                .update(params: a, grads: t.gradients, lr: 0.5, gradScale: 0.25, threads: threads, support: support)
            Optimizer(.sgd(momentum: 0, weightDecay: 0), parameterCount: t.parameterCount)
                .update(params: b, grads: t.gradients, lr: 0.5, gradScale: 0.25, threads: 1)
            #expect(a.array.map(\.bitPattern) == b.array.map(\.bitPattern), "sparse SGD on \(threads) thread(s) differs from dense")
        }
        // Rules that move parameters whose gradient is zero ignore the support.
        for kind in [OptimizerKind.sgd(momentum: 0.9, weightDecay: 0), .sgd(momentum: 0, weightDecay: 0.1),
                     .adam(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)] {
            let a = FloatBuffer(t.parameters.array), b = FloatBuffer(t.parameters.array)
            Optimizer(kind, parameterCount: t.parameterCount).update(params: a, grads: t.gradients, lr: 0.5, support: support)
            Optimizer(kind, parameterCount: t.parameterCount).update(params: b, grads: t.gradients, lr: 0.5)
            #expect(a.array.map(\.bitPattern) == b.array.map(\.bitPattern), "\(kind) must update every parameter")
        }
    }

    @Test("word model with an embedding: one worker bit-identical; workers, threads, momentum and Adam within 1e-5")
    func everyPathMatchesTheReference() throws {
        for (name, configure) in [("sgd", { (_: inout TrainOptions) in }),
                                  ("momentum", { (o: inout TrainOptions) in o.momentum = 0.5; o.lr = 0.5 }),
                                  // (Adam at lr 0.01 drifts past 1e-5 from summation order alone, one-hot input too.)
                                  ("adam", { (o: inout TrainOptions) in o.optimizer = .adam; o.lr = 0.002 })] as [(String, (inout TrainOptions) -> Void)] {
            let o = Self.wordOptions(configure)
            let ref = try InProcessDistributedTests.train(workers: 0, options: withDir(o))
            #expect(ref.extra.step > 20)
            let one = try InProcessDistributedTests.train(workers: 1, options: withDir(o))
            #expect(one.parameters.map(\.bitPattern) == ref.parameters.map(\.bitPattern), "\(name): W=1 must be bit-identical")
            let two = try InProcessDistributedTests.train(workers: 2, options: withDir(o))
            let threads = try InProcessDistributedTests.train(workers: 0, options: withDir(o), threads: 2)
            var paths = [("2 workers", two), ("2 threads", threads)]
            if name == "sgd" {  // workers that split their rows over threads merge their replicas' touched rows
                paths.append(("2 workers × 2 threads", try InProcessDistributedTests.train(workers: 2, options: withDir(o), threads: 2)))
            }
            for (path, ck) in paths {
                let d = InProcessDistributedTests.maxRelativeDifference(ck.parameters, ref.parameters)
                print("row-sparse embedding, \(name), \(path): max relative parameter difference \(d)")
                #expect(ck.extra.step == ref.extra.step)
                #expect(d <= 1e-5, "\(name), \(path): max relative parameter difference \(d)")
            }
        }
    }

    @Test("async with one worker (every gradient applied at staleness 0) matches the single process")
    func asyncAppliesTheTouchedRows() throws {
        func train(_ extra: [String]) throws -> Checkpoint<TrainingRecord> {
            let dir = temporaryDirectory() + "/ck"
            let r = try run(try rnnlmBinary(), ["train", "--dataset", "timemachine", "--tokenizer", "word", "--max-tokens", "3000",
                                                "--embed", "12", "--hidden", "16", "--batch-size", "6", "--num-steps", "8",
                                                "--epochs", "2", "--lr", "2", "--clip", "1", "--seed", "8", "--checkpoint-dir", dir,
                                                "--data-dir", sharedDataDirectory()] + extra, timeout: 180)
            #expect(r.status == 0, "\(extra): \(r.stderr)")
            return try Checkpoint<TrainingRecord>.read(from: try #require(latestCheckpoint(in: dir)))
        }
        let ref = try train([])
        let async = try train(["--workers", "1", "--mode", "async"])
        #expect(async.extra.step == ref.extra.step && ref.extra.step > 20)
        let d = InProcessDistributedTests.maxRelativeDifference(async.parameters, ref.parameters)
        #expect(d <= 1e-5, "async, one worker: max relative parameter difference \(d)")
    }

    @Test("translation: both embeddings' gradients live in the rows of the source and decoder-input tokens")
    func translationTablesAreRowSparse() throws {
        let o = TranslationTests.options()
        let t = try TaskRegistry.task(for: o, dataDir: sharedDataDirectory())
        #expect(t.sparseRows.count == 2)
        let rows = Array(0..<t.rowsPerMinibatch)
        var carried = t.zeroCarried
        _ = t.accumulateGradient(epoch: 0, index: 1, rows: rows, step: 1, carried: &carried)
        t.zeroGradients()
        #expect(t.gradients.array.allSatisfy { $0 == 0 }, "zeroGradients leaves a non-zero value")
        _ = t.accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried)
        let g = t.gradients.array
        for (table, touched) in zip(t.sparseRows, t.touchedRows) {
            #expect(!touched.isEmpty && touched.count < table.rows)
            let set = Set(touched)
            for r in 0..<Int32(table.rows) where !set.contains(r) {
                #expect(g[table.rowRange(r)].allSatisfy { $0 == 0 }, "row \(r) of the table at \(table.offset) was not read but has a gradient")
            }
        }
        let dense = try TaskRegistry.task(for: o, dataDir: sharedDataDirectory())
        dense.gradients.zero()
        _ = dense.accumulateGradient(epoch: 0, index: 0, rows: rows, step: 1, carried: &carried)
        #expect(dense.gradients.array.map(\.bitPattern) == g.map(\.bitPattern))
        #expect(t.gradientSupport.valueCount < t.parameterCount)
    }

    func withDir(_ o: TrainOptions) -> TrainOptions {
        var o = o
        o.checkpointDir = temporaryDirectory() + "/ck"
        return o
    }
}
