import Foundation
import RNNCore
import Testing

@Suite("Optimizers, clipping, schedules")
struct OptimizerTests {
    @Test func sgdPlainStep() {
        let p = FloatBuffer([1, -2, 3]), g = FloatBuffer([0.5, 0.25, -1])
        Optimizer(.sgd(momentum: 0, weightDecay: 0), parameterCount: 3).update(params: p, grads: g, lr: 0.1)
        #expect(p.array == [0.95, -2.025, 3.1])
    }

    @Test func sgdMomentumAndWeightDecayTwoSteps() {
        // Hand computation, PyTorch semantics: d = g + wd·p; buf = d (step 1), μ·buf + d after; p -= lr·buf.
        let p = FloatBuffer([1.0]), g = FloatBuffer([0.5])
        let opt = Optimizer(.sgd(momentum: 0.9, weightDecay: 0.1), parameterCount: 1)
        opt.update(params: p, grads: g, lr: 0.1)
        // d = 0.5 + 0.1 = 0.6; buf = 0.6; p = 1 - 0.06 = 0.94
        #expect(abs(p[0] - 0.94) < 1e-7)
        opt.update(params: p, grads: g, lr: 0.1)
        // d = 0.5 + 0.094 = 0.594; buf = 0.54 + 0.594 = 1.134; p = 0.94 - 0.1134 = 0.8266
        #expect(abs(p[0] - 0.8266) < 1e-6)
        #expect(abs(opt.slots[0][0] - 1.134) < 1e-6)
    }

    @Test func adamTwoSteps() {
        let p = FloatBuffer([1.0, -1.0]), opt = Optimizer(.adam(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0), parameterCount: 2)
        opt.update(params: p, grads: FloatBuffer([0.5, -2]), lr: 0.01)
        // First Adam step moves each parameter by lr·sign(g) (up to eps).
        #expect(abs(p[0] - 0.99) < 1e-6 && abs(p[1] + 0.99) < 1e-6)
        opt.update(params: p, grads: FloatBuffer([0.1, -2]), lr: 0.01)
        // m = 0.9·0.05 + 0.01 = 0.055 → m̂ = 0.055/0.19; v = 0.999·0.00025 + 0.001·0.01 = 0.00025975 → v̂ = v/0.001999
        let mHat = 0.055 / 0.19, vHat = 0.00025975 / (1 - 0.999 * 0.999)
        let expected = 0.99 - 0.01 * mHat / (vHat.squareRoot() + 1e-8)
        #expect(abs(Double(p[0]) - expected) < 1e-6, "Adam step 2 gave \(p[0]), hand value \(expected)")
        #expect(abs(p[1] + 0.98) < 1e-6)
    }

    /// The gradient scale folded into the update equals scaling the gradient first, and splitting the update over
    /// threads changes nothing: every element against a Float64 evaluation of the same formula.
    @Test(arguments: [OptimizerKind.sgd(momentum: 0, weightDecay: 0), .sgd(momentum: 0.9, weightDecay: 0.01),
                      .adam(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.001)])
    func scaledThreadedUpdateMatchesTheFormula(_ kind: OptimizerKind) {
        let n = 3 * (1 << 16) + 5, scale: Float = 0.37, lr: Float = 0.05
        var rng = RandomGenerator(seed: 3)
        let p0 = (0..<n).map { _ in rng.uniform(-1, 1) }, g = FloatBuffer((0..<n).map { _ in rng.uniform(-1, 1) })
        let one = FloatBuffer(p0), many = FloatBuffer(p0)
        let o1 = Optimizer(kind, parameterCount: n), o2 = Optimizer(kind, parameterCount: n)
        for _ in 0..<2 {
            o1.update(params: one, grads: g, lr: lr, gradScale: scale, threads: 1)
            o2.update(params: many, grads: g, lr: lr, gradScale: scale, threads: 3)
        }
        #expect(one.array == many.array, "the thread split changed the update")
        // Float64 reference of two steps.
        var worst = 0.0
        for i in stride(from: 0, to: n, by: 997) {
            var p = Double(p0[i]), m = 0.0, v = 0.0, buf = 0.0
            for t in 1...2 {
                switch kind {
                case .sgd(let mu, let wd):
                    let d = Double(scale) * Double(g[i]) + Double(wd) * p
                    buf = (mu == 0 || t == 1) ? d : Double(mu) * buf + d
                    p -= Double(lr) * buf
                case .adam(let b1, let b2, let eps, let wd):
                    let d = Double(scale) * Double(g[i]) + Double(wd) * p
                    m = Double(b1) * m + (1 - Double(b1)) * d; v = Double(b2) * v + (1 - Double(b2)) * d * d
                    let mHat = m / (1 - pow(Double(b1), Double(t))), vHat = v / (1 - pow(Double(b2), Double(t)))
                    p -= Double(lr) * mHat / (vHat.squareRoot() + Double(eps))
                }
            }
            worst = max(worst, abs(p - Double(one[i])))
        }
        #expect(worst < 1e-5, "largest difference from the Float64 formula: \(worst)")
    }

    /// An update that overflows a parameter (a finite gradient and a huge rate) says so, whichever rule, thread split
    /// or support; a normal one does not. The one bad value sits in the last part, so a split that lost a part's
    /// answer would miss it.
    @Test(arguments: [OptimizerKind.sgd(momentum: 0, weightDecay: 0), .sgd(momentum: 0.9, weightDecay: 0),
                      .adam(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0)])
    func anUpdateThatOverflowsSaysSo(_ kind: OptimizerKind) {
        let n = 3 * (1 << 16) + 5, bad = n - 2
        for threads in [1, 3] {
            for sparse in [false, true] {
                let p = FloatBuffer(count: n), g = FloatBuffer(count: n)
                for i in 0..<n { p[i] = 0.5; g[i] = 1e-3 }
                p[bad] = -3e38; g[bad] = 1
                // Sparse: a table of 194 rows 1000 wide, two of them touched; the bad value is in the dense part after it.
                let table = SparseRowTensor(offset: 1000, rows: 194, width: 1000)
                let support = sparse ? GradientSupport(count: n, tables: [table], rows: [[3, 100]]) : nil
                let o = Optimizer(kind, parameterCount: n)
                #expect(o.update(params: p, grads: g, lr: 0.01, threads: threads, support: support), "\(kind) threads \(threads) sparse \(sparse): a normal step")
                #expect(!o.update(params: p, grads: g, lr: 1e38, threads: threads, support: support), "\(kind) threads \(threads) sparse \(sparse): the overflow went unseen")
            }
        }
    }

    @Test func clippingScalesToMaxNormAndReportsNormBefore() {
        let g = FloatBuffer([3, 4])
        let norm = clipGlobalNorm(g, maxNorm: 1)
        #expect(norm == 5)
        #expect(abs(g[0] - 0.6) < 1e-7 && abs(g[1] - 0.8) < 1e-7)
        let small = FloatBuffer([0.3, 0.4])
        #expect(abs(clipGlobalNorm(small, maxNorm: 1) - 0.5) < 1e-7)
        #expect(small.array == [0.3, 0.4])
    }

    @Test func stepSchedule() {
        var s = LearningRateSchedule(.step(start: 2, every: 2, factor: 0.5), lr: 1)
        let lrs = (1...6).map { s.endEpoch($0, validationLoss: nil) }
        #expect(lrs == [1, 0.5, 0.5, 0.25, 0.25, 0.125])
    }

    @Test func plateauSchedule() {
        var s = LearningRateSchedule(.plateau(factor: 0.1, patience: 1, minLR: 0.001), lr: 1)
        #expect(s.endEpoch(1, validationLoss: 2.0) == 1)  // best
        #expect(s.endEpoch(2, validationLoss: 1.5) == 1)  // improved
        #expect(s.endEpoch(3, validationLoss: 1.6) == 1)  // 1 bad epoch, patience 1
        #expect(abs(s.endEpoch(4, validationLoss: 1.6) - 0.1) < 1e-7)  // 2 bad → decay
        #expect(abs(s.endEpoch(5, validationLoss: 1.4) - 0.1) < 1e-7)
        var floor = LearningRateSchedule(.plateau(factor: 0.1, patience: 0, minLR: 0.05), lr: 0.1)
        floor.endEpoch(1, validationLoss: 1)
        #expect(floor.endEpoch(2, validationLoss: 1) == 0.05)
    }

    @Test func randomGeneratorIsReproducibleAndUnbiasedEnough() {
        var a = RandomGenerator(seed: 123), b = RandomGenerator(seed: 123)
        #expect((0..<100).map { _ in a.next() } == (0..<100).map { _ in b.next() })
        var r = RandomGenerator(seed: 1)
        var counts = [Int](repeating: 0, count: 10)
        for _ in 0..<100_000 { counts[r.int(below: 10)] += 1 }
        #expect(counts.allSatisfy { abs($0 - 10_000) < 500 }, "int(below:) counts \(counts)")
        let mean = (0..<100_000).map { _ in r.normal() }.reduce(0, +) / 100_000
        #expect(abs(mean) < 0.02)
    }

    @Test func fastMathKernelsAreAccurate() {
        for x in stride(from: Float(-20), through: 20, by: 0.37) {
            #expect(abs(expf32(x) - Float(exp(Double(x)))) <= 3e-7 * Float(exp(Double(x))), "exp(\(x))")
            #expect(abs(tanhf32(x) - Float(tanh(Double(x)))) < 2e-7, "tanh(\(x))")
            #expect(abs(sigmoidf32(x) - Float(1 / (1 + exp(-Double(x))))) < 2e-7, "sigmoid(\(x))")
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
