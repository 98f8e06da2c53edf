/// The asynchronous parameter server's rule: a gradient computed on weights version `v` is applied only if
/// at most `maxStaleness` updates happened since (`version − v ≤ S`); otherwise it is discarded. Pure.
public struct StalenessGate: Equatable, Sendable {
    public let maxStaleness: Int
    /// Number of updates applied so far (the version of the current weights).
    public private(set) var version: UInt64
    public private(set) var applied = 0
    public private(set) var discarded = 0
    /// The largest staleness among applied gradients (≤ `maxStaleness` by construction).
    public private(set) var maxAppliedStaleness = 0

    public init(maxStaleness: Int, version: UInt64 = 0) {
        precondition(maxStaleness >= 0, "max staleness must be 0 or more")
        self.maxStaleness = maxStaleness
        self.version = version
    }

    public enum Decision: Equatable { case apply(staleness: Int), discard(staleness: Int), fromTheFuture }

    /// Decides about a gradient computed on version `v`; on `.apply` the version advances.
    public mutating func admit(computedAt v: UInt64) -> Decision {
        guard v <= version else { return .fromTheFuture }
        let staleness = Int(version - v)
        guard staleness <= maxStaleness else {
            discarded += 1
            return .discard(staleness: staleness)
        }
        applied += 1
        version += 1
        maxAppliedStaleness = max(maxAppliedStaleness, staleness)
        return .apply(staleness: staleness)
    }
}
