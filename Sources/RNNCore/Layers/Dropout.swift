import CKernels

// Shape legend: T steps, B batch (local columns), n units per row. Activations are time-major `[T*B, n]`
// (row t*B + b). A "row" in the dropout sense is a sequence (a stream of the language model, a sentence of a
// translation batch), identified by its GLOBAL index in the whole minibatch, not by its local column.

/// What fixes a dropout mask: the run seed and the optimizer step. Together with the site (which dropout in the
/// model), the global row, the position and the unit, it determines every mask element by one hash, so a
/// minibatch split across threads or processes drops exactly the units that one process would.
public struct DropoutKey: Sendable, Equatable, Hashable {
    public var seed: UInt64
    public var step: UInt64
    public init(seed: UInt64, step: UInt64) { self.seed = seed; self.step = step }

    /// The 64-bit key of one site, mixing the seed (in the `.dropout` stream), the step and the site.
    func hash(site: UInt64) -> UInt64 {
        var z = mix64(seed ^ (RandomStream.dropout.rawValue &* 0xD6E8_FEB8_6659_FD93))
        z = mix64(z ^ (step &* 0x9E37_79B9_7F4A_7C15))
        return mix64(z ^ (site &* 0xC2B2_AE3D_27D4_EB4F))
    }
}

/// splitmix64's finaliser, the same function as `k_mix64` in the C kernel.
@inline(__always) func mix64(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// Inverted dropout with counter-based masks: element (t, b, j) is kept with probability 1 − p and then scaled by
/// 1/(1 − p), decided by a hash of (seed, step, site, global row, t, j) alone (see `rk_dropout_forward`).
public struct Dropout: Sendable {
    /// Probability `p` of dropping a unit, in [0, 1).
    public let probability: Float
    /// Which dropout of the model this is (distinct sites draw independent masks).
    public let site: UInt64

    public init(probability: Float, site: UInt64) {
        precondition(probability >= 0 && probability < 1, "dropout probability must be in [0, 1), got \(probability)")
        self.probability = probability
        self.site = site
    }

    /// `out = x ⊙ mask` for `x` `[T*B, n]`; writes `mask` `[T*B, n]` (0 or 1/(1 − p)) for the backward.
    /// `rows` `[B]` holds the global row index of each local column. `out` may be `x`.
    public func forward(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>,
                        mask: UnsafeMutablePointer<Float>, steps T: Int, batch B: Int, width n: Int,
                        key: DropoutKey, rows: UnsafePointer<Int>) {
        rows.withMemoryRebound(to: Int64.self, capacity: B) {
            rk_dropout_forward(x, out, mask, Int64(T), Int64(B), Int64(n), $0, key.hash(site: site), probability)
        }
    }

    /// `dx += dOut ⊙ mask` over `count` elements (`[T*B, n]`), with the mask of the forward.
    public func backward(_ dOut: UnsafePointer<Float>, mask: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>,
                         count: Int) {
        rk_mul_add(dx, dOut, mask, Int64(count))
    }
}
