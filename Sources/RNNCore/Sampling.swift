#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Index of the largest value (the first one on ties).
public func argmax(_ x: ArraySlice<Float>) -> Int {
    var best = x.startIndex
    for i in x.indices where x[i] > x[best] { best = i }
    return best - x.startIndex
}

/// Log-probabilities `log softmax(x)` in Double.
public func logSoftmax(_ x: ArraySlice<Float>) -> [Double] {
    let m = Double(x.max() ?? 0)
    var s = 0.0
    for v in x { s += exp(Double(v) - m) }
    let lse = m + log(s)
    return x.map { Double($0) - lse }
}

/// Draws a token from `softmax(logits / temperature)`, restricted to the `topK` most likely when
/// `topK > 0`. Temperature 0 is greedy (argmax).
public func sample(_ logits: ArraySlice<Float>, temperature: Float, topK: Int, rng: inout RandomGenerator) -> Int {
    if temperature <= 0 { return argmax(logits) }
    var candidates = Array(0..<logits.count)
    let base = logits.startIndex
    if topK > 0 && topK < candidates.count {
        candidates.sort { logits[base + $0] > logits[base + $1] || (logits[base + $0] == logits[base + $1] && $0 < $1) }
        candidates = Array(candidates.prefix(topK))
    }
    let m = candidates.map { Double(logits[base + $0]) }.max()!
    let weights = candidates.map { exp((Double(logits[base + $0]) - m) / Double(temperature)) }
    let total = weights.reduce(0, +)
    var u = rng.uniformDouble() * total
    for (i, w) in weights.enumerated() {
        u -= w
        if u < 0 { return candidates[i] }
    }
    return candidates.last!
}
