// rnnlm-bench: times the numeric core on synthetic tokens (no I/O inside the timed region).
//
//   rnnlm-bench [--model gru] [--hidden 256] [--vocab 28] [--batch 32] [--steps 35] [--layers 1]
//               [--embed 0] [--dropout 0] [--repeats 30] [--threads 1] [--blas-threads 1]
//
// --threads N > 1 splits the minibatch's streams across N threads (DataParallel, as `rnnlm train --threads N`);
// --blas-threads N instead gives N threads to OpenBLAS inside one forward/backward (the pre-DataParallel way).
//
// Prints, for forward only, forward+backward, and a full training step (forward+backward, 1/N scaling,
// global-norm clip, SGD update): median, p10 and p90 milliseconds per minibatch and tokens/s at the median.
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
let parallel = threads > 1 ? DataParallel(model: model, threads: threads) : nil
@MainActor @discardableResult
func forwardBackward() -> LossSum {
    if let parallel {
        return parallel.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state,
                                        dropout: dropoutKey)
    }
    return model.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state, dropout: dropoutKey)
}
let optimizer = Optimizer(.sgd(momentum: 0, weightDecay: 0), parameterCount: model.parameterCount)

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
    model.gradients.zero()
    forwardBackward()
})
let profileFlag = CommandLine.arguments.contains("--profile")
report("train step", time {
    model.gradients.zero()
    let loss = forwardBackward()
    model.gradients.scale(by: 1 / Float(loss.count))
    clipGlobalNorm(model.gradients, maxNorm: 1)
    optimizer.update(params: model.parameters, grads: model.gradients, lr: 0.01)
})

if profileFlag {
    // One more pass of the same training step with the phase profile on; per-step averages.
    let profile = PhaseProfile()
    model.profile = profile
    var optimizerSeconds = 0.0
    let n = repeats
    let t0 = DispatchTime.now().uptimeNanoseconds
    for _ in 0..<n {
        model.gradients.zero()
        let loss = model.forwardBackward(inputs: inputs, targets: targets, steps: T, batch: B, state: &state)
        let u0 = DispatchTime.now().uptimeNanoseconds
        model.gradients.scale(by: 1 / Float(loss.count))
        clipGlobalNorm(model.gradients, maxNorm: 1)
        optimizer.update(params: model.parameters, grads: model.gradients, lr: 0.01)
        optimizerSeconds += Double(DispatchTime.now().uptimeNanoseconds - u0) / 1e9
    }
    let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    print("per-phase profile of one training step (mean of \(n)):")
    for phase in PhaseProfile.Phase.allCases {
        let s = profile.seconds[phase.rawValue]
        print(String(format: "  %7.3f ms  %5.1f%%  ", 1000 * s / Double(n), 100 * s / wall) + phase.name)
    }
    print(String(format: "  %7.3f ms  %5.1f%%  ", 1000 * optimizerSeconds / Double(n), 100 * optimizerSeconds / wall) + "clip + optimizer update")
    print(String(format: "  %7.3f ms  total; the parameter-server exchange of a distributed run is printed by rnnlm train --workers N", 1000 * wall / Double(n)))
}
