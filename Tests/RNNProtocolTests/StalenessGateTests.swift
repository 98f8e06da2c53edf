import RNNProtocol
import Testing

@Suite("Staleness gate (async rule without sockets)")
struct StalenessGateTests {
    @Test func appliesWithinTheBoundAndDiscardsBeyond() {
        var g = StalenessGate(maxStaleness: 1)
        #expect(g.admit(computedAt: 0) == .apply(staleness: 0))  // version 1
        #expect(g.admit(computedAt: 0) == .apply(staleness: 1))  // version 2
        #expect(g.admit(computedAt: 0) == .discard(staleness: 2))
        #expect(g.admit(computedAt: 3) == .fromTheFuture)
        #expect(g.admit(computedAt: 2) == .apply(staleness: 0))
        #expect(g.version == 3 && g.applied == 3 && g.discarded == 1 && g.maxAppliedStaleness == 1)
    }

    @Test func randomArrivalsNeverExceedTheBound() {
        var g = StalenessGate(maxStaleness: 3)
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<10_000 {
            let v = g.version - UInt64.random(in: 0...min(g.version, 6), using: &rng)
            switch g.admit(computedAt: v) {
            case .apply(let s): #expect(s <= 3)
            case .discard(let s): #expect(s > 3)
            case .fromTheFuture: Issue.record("version \(v) ≤ \(g.version) reported as future")
            }
        }
        #expect(g.maxAppliedStaleness <= 3)
    }
}
