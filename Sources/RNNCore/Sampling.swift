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

/// Draws a token from `softmax(logits / temperature)`, restricted to the `topK` most likely when `topK > 0`,
/// then to the nucleus when `topP < 1`: the fewest most likely tokens whose probability (after temperature and
/// top-k, renormalised) sums to at least `topP` (Holtzman et al., 2020). Temperature 0 is greedy (argmax).
public func sample(_ logits: ArraySlice<Float>, temperature: Float, topK: Int, topP: Double = 1,
                   rng: inout RandomGenerator) -> Int {
    if temperature <= 0 { return argmax(logits) }
    var candidates = Array(0..<logits.count)
    let base = logits.startIndex
    let nucleus = topP > 0 && topP < 1
    if (topK > 0 && topK < candidates.count) || nucleus {
        candidates.sort { logits[base + $0] > logits[base + $1] || (logits[base + $0] == logits[base + $1] && $0 < $1) }
        if topK > 0 { candidates = Array(candidates.prefix(topK)) }
    }
    let m = candidates.map { Double(logits[base + $0]) }.max()!
    var weights = candidates.map { exp((Double(logits[base + $0]) - m) / Double(temperature)) }
    if nucleus {
        // Candidates are sorted by probability: keep the shortest prefix reaching topP of the mass.
        let mass = weights.reduce(0, +)
        var cumulative = 0.0, keep = weights.count
        for (i, w) in weights.enumerated() {
            cumulative += w
            if cumulative >= topP * mass { keep = i + 1; break }
        }
        candidates = Array(candidates.prefix(keep)); weights = Array(weights.prefix(keep))
    }
    let total = weights.reduce(0, +)
    var u = rng.uniformDouble() * total
    for (i, w) in weights.enumerated() {
        u -= w
        if u < 0 { return candidates[i] }
    }
    return candidates.last!
}
