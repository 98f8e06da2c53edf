import RNNCore
import RNNProtocol
import Testing

@Suite("Step gather (coordinator logic without sockets)")
struct StepGatherTests {
    func contribution(_ g: [Float], loss: Double, tokens: Int, state: Int) -> StepGather.Contribution {
        .init(lossSum: loss, tokens: tokens, gradient: g, state: [Float](repeating: 0, count: state))
    }

    @Test func sumsInWorkerOrderWhateverTheArrivalOrder() {
        // Values whose float sum depends on the order: (a + b) + c ≠ (c + b) + a in Float32.
        let g0: [Float] = [1e8, 1], g1: [Float] = [1, -1e8], g2: [Float] = [-1e8, 3]
        var inOrder = StepGather(step: 5, expected: [0: 2, 1: 2, 2: 2])
        var reversed = inOrder
        for (w, g) in [(0, g0), (1, g1), (2, g2)] { #expect(inOrder.accept(worker: w, step: 5, contribution(g, loss: 1, tokens: 10, state: 2)) == .accepted) }
        for (w, g) in [(2, g2), (1, g1), (0, g0)] { #expect(reversed.accept(worker: w, step: 5, contribution(g, loss: 1, tokens: 10, state: 2)) == .accepted) }
        let a = FloatBuffer(count: 2), b = FloatBuffer(count: 2)
        let la = inOrder.sum(into: a), lb = reversed.sum(into: b)
        #expect(a.array == b.array)
        #expect(a.array == [((0 + 1e8) + 1) + -1e8, ((0 + 1) + -1e8) + 3] as [Float])
        #expect(la == lb && la.count == 30 && la.sum == 3)
    }

    /// Summing as contributions arrive (what the coordinator does while slower workers compute) gives bit for bit
    /// the sum of the finished gather, for every arrival order and with a dropped or forgotten worker.
    @Test func runningSumEqualsTheFinalSumInEveryArrivalOrder() {
        let grads: [[Float]] = [[1e8, 1], [1, -1e8], [-1e8, 3], [0.5, 7e7]]
        func permutations(_ a: [Int]) -> [[Int]] {
            a.count <= 1 ? [a] : a.indices.flatMap { i in permutations(Array(a[..<i] + a[(i + 1)...])).map { [a[i]] + $0 } }
        }
        for order in permutations([0, 1, 2, 3]) {
            for variant in 0..<3 {  // all answer; worker 1 dropped; worker 2 forgotten
                var g = StepGather(step: 3, expected: [0: 1, 1: 1, 2: 1, 3: 1])
                let running = FloatBuffer(count: 2)
                var summed: [Int] = [], loss = LossSum()
                for w in order {
                    if variant == 1 && w == 1 { g.drop(worker: 1) } else if variant == 2 && w == 2 { g.forget(worker: 2) } else {
                        #expect(g.accept(worker: w, step: 3, contribution(grads[w], loss: Double(w) + 0.1, tokens: w + 1, state: 1)) == .accepted)
                    }
                    let ready = g.summable(after: summed)
                    #expect(ready == ready.sorted() && Set(ready).isDisjoint(with: summed))
                    g.add(ready, into: running, total: &loss)
                    summed += ready
                }
                #expect(g.isComplete)
                #expect(summed == g.received.keys.sorted(), "order \(order), variant \(variant): summed \(summed)")
                let final = FloatBuffer(count: 2), finalLoss = g.sum(into: final)
                #expect(running.array == final.array, "order \(order), variant \(variant)")
                #expect(loss == finalLoss)
            }
        }
    }

    @Test func rejectsStaleDuplicateUnknownAndMisshapen() {
        var g = StepGather(step: 9, expected: [0: 4, 1: 4])
        #expect(g.accept(worker: 0, step: 8, contribution([1], loss: 1, tokens: 1, state: 4)) == .staleStep(8))
        #expect(g.accept(worker: 7, step: 9, contribution([1], loss: 1, tokens: 1, state: 4)) == .unexpectedWorker)
        #expect(g.accept(worker: 0, step: 9, contribution([1], loss: 1, tokens: 1, state: 3)) == .wrongStateSize(expected: 4, got: 3))
        #expect(g.accept(worker: 0, step: 9, contribution([1], loss: 1, tokens: 1, state: 4)) == .accepted)
        #expect(g.accept(worker: 0, step: 9, contribution([1], loss: 1, tokens: 1, state: 4)) == .duplicate)
        #expect(!g.isComplete && g.missing == [1])
    }

    @Test func columnsAreSplitEvenlyAndCoverEveryStream() {
        #expect(assignColumns(batch: 32, workers: 2) == [Array(0..<16), Array(16..<32)])
        let uneven = assignColumns(batch: 10, workers: 4)
        #expect(uneven.map(\.count) == [3, 3, 2, 2])
        #expect(uneven.flatMap { $0 } == Array(0..<10))
    }
}
