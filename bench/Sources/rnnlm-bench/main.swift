// rnnlm-bench: times the numeric core on synthetic tokens (no I/O inside the timed region).
//
//   rnnlm-bench [--model gru] [--hidden 256] [--vocab 28] [--batch 32] [--steps 35] [--layers 1]
//               [--embed 0] [--dropout 0] [--repeats 30] [--threads 1] [--blas-threads 1] [--profile] [--gemm]
//               [--dense-gradient]
//
// --threads N > 1 splits the minibatch's streams across N threads (model replicas, as `rnnlm train --threads N`);
// --blas-threads N instead gives N threads to OpenBLAS inside one forward/backward (the pre-DataParallel way).
//
// Prints, for forward only, forward+backward, and a full training step as `Trainer` runs it (zeroing, forward+
// backward, the one-pass update: global norm, then SGD with 1/N and the clipping factor folded in): median, p10
// and p90 milliseconds per minibatch and tokens/s at the median. With an embedding (--embed E > 0), zeroing,
// the norm and SGD visit only the gradient's support (the table rows the minibatch reads, `GradientSupport`);
// --dense-gradient visits every value instead (the path before row-sparse gradients), for comparison.
// --profile adds the per-phase profile (thread CPU time) and the fraction of the FLOP limit; --gemm the rates of
// the decoder's three products at this shape.
import CPeak
import Foundation
import RNNCore

func option(_ name: String, _ fallback: String) -> String {
    let args = CommandLine.arguments
    if let i = args.firstIndex(of: "--" + name), i + 1 < args.count { return args[i + 1] }
    return fallback
}

let cell = CellKind(rawValue: option("model", "gru")) ?? {
    FileHandle.standardError.write(Data("unknown --model; use rnn, rnn-relu, gru, lstm\n".utf8)); exit(2)
}()
let H = Int(option("hidden", "256"))!, V = Int(option("vocab", "28"))!, B = Int(option("batch", "32"))!
let T = Int(option("steps", "35"))!, L = Int(option("layers", "1"))!, E = Int(option("embed", "0"))!
let repeats = Int(option("repeats", "30"))!, threads = Int(option("threads", "1"))!
let blas = Int(option("blas-threads", "1"))!
let dropoutP = Float(option("dropout", "0"))!
setBLASThreads(blas)

let config = ModelConfig(vocabSize: V, embedSize: E, hiddenSize: H, layers: L, cell: cell, dropout: dropoutP)
let dropoutKey = dropoutP > 0 ? DropoutKey(seed: 9, step: 1) : nil
let model = try LanguageModel(config: config)
var rng = RandomGenerator(seed: 1)
model.initialize(.pytorch, rng: &rng)
let inputs = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
let targets = (0..<(T * B)).map { _ in Int32(rng.int(below: V)) }
var state = RecurrentState.zeros(config, batch: B)
// --threads N: the streams split into N contiguous groups, one model replica (shared parameters) per thread, the
// gradients summed in group order, as RNNTrain's DataParallel does for `rnnlm train --threads N`.
let replicas = (1..<max(threads, 1)).map { _ in LanguageModel(sharingParametersOf: model) }
let groups = (0..<threads).map { g in (g * B / threads)..<((g + 1) * B / threads) }
var groupStates = groups.map { RecurrentState.zeros(config, batch: $0.count) }
let groupTokens = groups.map { r in
    (inputs: (0..<T).flatMap { t in r.map { inputs[t * B + $0] } }, targets: (0..<T).flatMap { t in r.map { targets[t * B + $0] } })
}
// The gradient's support: an untied embedding's rows of the minibatch's tokens (all rows with --dense-gradient).
let P = model.parameterCount
let table: SparseRowTensor? = E > 0 && !CommandLine.arguments.contains("--dense-gradient")
    ? SparseRowTensor(offset: model.layout["encoder.weight"].offset, rows: V, width: E) : nil
func support(_ tokens: [Int32]) -> GradientSupport { GradientSupport(count: P, table: table, rows: table == nil ? [] : uniqueSorted(tokens)) }
let fullSupport = support(inputs), groupSupports = groupTokens.map { support($0.inputs) }
struct Unchecked<V>: @unchecked Sendable { var value: V }
@MainActor @discardableResult
func forwardBackward() -> LossSum {
    if threads > 1 {
        var losses = [LossSum](repeating: LossSum(), count: threads)
        let box = Unchecked(value: (losses: UnsafeMutablePointer<LossSum>.allocate(capacity: threads),
                                    states: UnsafeMutablePointer<RecurrentState>.allocate(capacity: threads)))
        box.value.states.initialize(from: groupStates, count: threads)
        let models = Unchecked(value: [model] + replicas), tokens = Unchecked(value: groupTokens), rs = groups
        let supports = groupSupports
        DispatchQueue.concurrentPerform(iterations: threads) { g in
            let m = models.value[g]
            if g > 0 { m.gradients.zero(supports[g]) }
            box.value.losses[g] = m.forwardBackward(inputs: tokens.value[g].inputs, targets: tokens.value[g].targets,
                                                    steps: T, batch: rs[g].count, state: &box.value.states[g],
                                                    dropout: dropoutKey, rows: Array(rs[g]))
        }
        for g in 0..<threads {
            losses[g] = box.value.losses[g]
            groupStates[g] = box.value.states[g]
            if g > 0 { model.gradients.add(replicas[g - 1].gradients, on: groupSupports[g]) }
        }
        box.value.states.deinitialize(count: threads)
        box.value.losses.deallocate(); box.value.states.deallocate()
        return losses.reduce(LossSum(), +)
    }
    return model.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state, dropout: dropoutKey)
}
let optimizer = Optimizer(.sgd(momentum: 0, weightDecay: 0), parameterCount: model.parameterCount)

/// `Trainer.applyGradient`'s update: the norm over the support, then SGD with the mean and the clip (max norm 1)
/// folded into the gradient scale.
@MainActor func update(_ loss: LossSum) {
    let mean = 1 / Double(loss.count)
    let norm = model.gradients.sumOfSquares(fullSupport, threads: threads).squareRoot() * mean
    optimizer.update(params: model.parameters, grads: model.gradients, lr: 0.01,
                     gradScale: Float(mean * clipFactor(norm: norm, maxNorm: 1)), threads: threads, support: fullSupport)
}

func time(_ body: () -> Void) -> [Double] {
    for _ in 0..<3 { body() }  // warm-up: workspaces, caches, BLAS threads
    return (0..<repeats).map { _ in
        let t0 = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
    }.sorted()
}

func report(_ name: String, _ ms: [Double]) {
    let median = ms[ms.count / 2], p10 = ms[ms.count / 10], p90 = ms[(ms.count * 9) / 10]
    let tps = Double(T * B) / (median / 1000)
    let label = name.padding(toLength: 18, withPad: " ", startingAt: 0)
    print(label + String(format: "median %8.3f ms  p10 %8.3f  p90 %8.3f  %10.0f tokens/s", median, p10, p90, tps))
}

print("rnnlm-bench: \(cell.rawValue) L=\(L) H=\(H) V=\(V) E=\(E) B=\(B) T=\(T), \(model.parameterCount) parameters, threads \(threads), BLAS threads \(blas), \(repeats) repeats")
report("forward", time { _ = model.loss(inputs: inputs, targets: targets, steps: T, batch: B, state: &state) })
report("forward+backward", time {
    model.gradients.zero(fullSupport)
    forwardBackward()
})
let profileFlag = CommandLine.arguments.contains("--profile")
report("train step", time {
    model.gradients.zero(fullSupport)
    update(forwardBackward())
})

// Thread CPU time, not wall time: on a shared machine a descheduled thread would otherwise count as slow.
func cpuMs() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) * 1e3 + Double(ts.tv_nsec) / 1e6
}

/// GFLOP/s of `body` (`flops` per call): median of `repeats` calls after 3 warm-ups, in thread CPU time.
func gflops(_ name: String, flops: Double, _ body: () -> Void) -> Double {
    for _ in 0..<3 { body() }
    let ms = (0..<repeats).map { _ in let t0 = cpuMs(); body(); return cpuMs() - t0 }.sorted()
    let median = ms[ms.count / 2]
    print(name.padding(toLength: 44, withPad: " ", startingAt: 0)
          + String(format: "median %8.3f ms  %6.1f GFLOP/s", median, flops / median / 1e6))
    return flops / median / 1e6
}

/// Model FLOPs per token of the matrix products, forward + backward (3 × forward): per layer 2·G·H·(in + H) with
/// in = E (or V for one-hot input, counted as a GEMM as PyTorch runs it) below and H above, plus the decoder 2·H·V.
func flopsPerToken() -> Double {
    var f = 0.0
    for k in 0..<L { f += 2 * Double(cell.gates * H) * Double((k == 0 ? (E > 0 ? E : V) : H) + H) }
    return 3 * (f + 2 * Double(H) * Double(V))
}

/// The square 1024 sgemm through OpenBLAS: the rate the FLOP limit is quoted against (as bench/compare.py quotes it).
func squareRate() -> Double {
    let a = FloatBuffer(count: 1024 * 1024), b = FloatBuffer(count: 1024 * 1024), c = FloatBuffer(count: 1024 * 1024)
    for i in 0..<a.count { a[i] = Float(i % 7) - 3; b[i] = Float(i % 5) - 2 }
    return gflops("sgemm square 1024", flops: 2 * 1024 * 1024 * 1024) {
        sgemm(m: 1024, n: 1024, k: 1024, a: a.pointer, lda: 1024, b: b.pointer, ldb: 1024, beta: 0, c: c.pointer, ldc: 1024,
              kernel: .openBLAS)
    }
}

if profileFlag {
    // One more pass of the same training step with the phase profile on; per-step means in thread CPU time (1 thread).
    let rate = squareRate()
    let profile = PhaseProfile()
    model.profile = profile
    var optimizerMs = 0.0, zeroMs = 0.0
    let n = repeats
    let t0 = cpuMs()
    for _ in 0..<n {
        let z0 = cpuMs()
        model.gradients.zero(fullSupport)
        zeroMs += cpuMs() - z0
        let loss = model.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state)
        let u0 = cpuMs()
        update(loss)
        optimizerMs += cpuMs() - u0
    }
    let total = cpuMs() - t0
    print("per-phase profile of one training step (mean of \(n), thread CPU time):")
    for phase in PhaseProfile.Phase.allCases {
        let ms = 1000 * profile.seconds[phase.rawValue]
        print(String(format: "  %7.3f ms  %5.1f%%  ", ms / Double(n), 100 * ms / total) + phase.name)
    }
    print(String(format: "  %7.3f ms  %5.1f%%  ", zeroMs / Double(n), 100 * zeroMs / total) + "gradient zeroing")
    print(String(format: "  %7.3f ms  %5.1f%%  ", optimizerMs / Double(n), 100 * optimizerMs / total) + "norm + clip + optimizer update (one pass each)")
    let step = total / Double(n), fpt = flopsPerToken(), limit = rate * 1e9 / fpt
    print(String(format: "  %7.3f ms  total: %.0f tokens/s; %.2f MFLOP/token, limit at %.1f GFLOP/s %.0f tokens/s: %.1f%% of it",
                 step, Double(T * B) / step * 1000, fpt / 1e6, rate, limit, 100 * Double(T * B) / step * 1000 / limit))
}

if CommandLine.arguments.contains("--gemm") {
    // The decoder's three products at this shape through each kernel `sgemm` can run (rnnlm's blocked one, which the
    // model uses where the CPU has AVX-512, and OpenBLAS), and the square 1024 OpenBLAS product the FLOP limit is
    // quoted against: GFLOP/s, median of `repeats` calls after 3 warm-ups, in thread CPU time.
    let N = T * B
    let x = FloatBuffer(count: N * H), w = FloatBuffer(count: V * H), dy = FloatBuffer(count: N * V)
    let dw = FloatBuffer(count: V * H), dx = FloatBuffer(count: N * H)
    for buf in [x, w, dy] { for i in 0..<buf.count { buf[i] = Float(rng.uniform(-1, 1)) } }
    func rate(_ name: String, flops: Double, _ body: () -> Void) { _ = gflops(name, flops: flops, body) }
    _ = squareRate()
    // The ceiling: 12 independent FMA chains in registers, 3 runs of ≈ 0.2 s, the fastest.
    let peak = (0..<3).map { _ in
        let t0 = cpuMs(), flops = fma_peak_flops(50_000_000)
        return flops / (cpuMs() - t0) / 1e6
    }.max() ?? 0
    if peak > 0 { print("fp32 FMA peak (registers only, AVX-512)".padding(toLength: 44, withPad: " ", startingAt: 0) + String(format: "                    %6.1f GFLOP/s", peak)) }
    let f = 2 * Double(N) * Double(V) * Double(H)
    let kernels: [(String, GEMMKernel)] = (BlockedGEMM.available ? [("blocked", .automatic)] : []) + [("OpenBLAS", .openBLAS)]
    for (label, kernel) in kernels {
        rate("decoder forward [N,H]·[V,H]ᵀ, \(label)", flops: f) {
            sgemm(transB: true, m: N, n: V, k: H, a: x.pointer, lda: H, b: w.pointer, ldb: H, beta: 1, c: dy.pointer,
                  ldc: V, kernel: kernel)
        }
        rate("decoder dW += [N,V]ᵀ·[N,H], \(label)", flops: f) {
            sgemm(transA: true, m: V, n: H, k: N, a: dy.pointer, lda: V, b: x.pointer, ldb: H, beta: 1, c: dw.pointer,
                  ldc: H, kernel: kernel)
        }
        rate("decoder dx += [N,V]·[V,H], \(label)", flops: f) {
            sgemm(m: N, n: H, k: V, a: dy.pointer, lda: V, b: w.pointer, ldb: H, beta: 1, c: dx.pointer, ldc: H,
                  kernel: kernel)
        }
    }
}
