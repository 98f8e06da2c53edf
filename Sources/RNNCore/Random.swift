#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The named random streams of a run. Each draws from its own generator derived from the run seed, so that
/// adding randomness in one place (say, a new dropout site) does not shift any other stream.
public enum RandomStream: UInt64, Sendable, CaseIterable {
    /// Parameter initialisation.
    case initialization = 0
    /// Each epoch's minibatch offsets and order (index: the epoch).
    case dataOrder = 1
    /// Dropout masks (counter-based: see `DropoutKey`, which mixes this stream into its hash).
    case dropout = 2
    /// Sampling during generation.
    case sampling = 3
}

/// A small, fast, seedable generator (xoshiro256**) whose stream is identical on every machine.
/// Every source of randomness in rnnlm (initialisation, dropout, data offsets, sampling) is one of these,
/// so a `--seed` reproduces a run exactly, and the state can be saved in a checkpoint and restored.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable, Codable {
    public var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Seeds the four state words with splitmix64, as the xoshiro authors recommend.
    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    /// A generator for an independent named stream derived from a run seed (e.g. the data order of epoch 7).
    public init(seed: UInt64, stream: UInt64, index: UInt64 = 0) {
        var g = RandomGenerator(seed: seed ^ (stream &* 0xD6E8_FEB8_6659_FD93))
        let mixed = g.next() ^ (index &* 0x9E37_79B9_7F4A_7C15)
        self.init(seed: mixed)
    }

    /// A generator for a named stream of a run seed; the same numbers as `init(seed:stream: stream.rawValue, index:)`.
    public init(seed: UInt64, stream: RandomStream, index: UInt64 = 0) {
        self.init(seed: seed, stream: stream.rawValue, index: index)
    }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func uniformDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// Uniform in [low, high).
    public mutating func uniform(_ low: Float, _ high: Float) -> Float { low + (high - low) * uniform() }

    /// Standard normal via Box-Muller (one value per call, so the stream is simple to reason about).
    public mutating func normal() -> Double {
        let u1 = 1.0 - uniformDouble()  // (0, 1]
        let u2 = uniformDouble()
        return (-2.0 * log(u1)).squareRoot() * cos(2.0 * Double.pi * u2)
    }

    /// Uniform integer in 0..<n without modulo bias (Lemire's method with rejection).
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0, "int(below:) needs a positive bound")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Fisher-Yates shuffle in place (the same permutation on every platform).
    public mutating func shuffle<T>(_ a: inout [T]) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            a.swapAt(i, int(below: i + 1))
        }
    }
}

