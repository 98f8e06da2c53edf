#if canImport(Glibc)
import Glibc
#endif

/// Wall time spent in each phase of forward and backward, accumulated over calls (only when a model's
/// `profile` is set; otherwise no clock is read). For choosing the next optimisation by data.
public final class PhaseProfile {
    public enum Phase: Int, CaseIterable, Sendable {
        case inputProjection, recurrence, decoderSoftmax, weightGradients, other
        public var name: String {
            switch self {
            case .inputProjection: return "input projection (x·W_ihᵀ, all T steps)"
            case .recurrence: return "recurrence (per-step h·W_hhᵀ + gates, forward and backward)"
            case .decoderSoftmax: return "decoder + softmax cross-entropy (forward and backward)"
            case .weightGradients: return "weight gradients (dW, db, dX over T·B rows)"
            case .other: return "embedding, dropout, state copies"
            }
        }
    }

    public private(set) var seconds = [Double](repeating: 0, count: Phase.allCases.count)
    private var last: UInt64 = 0

    public init() {}

    /// Starts timing (call before the first phase).
    @inline(__always) func start() { last = now() }

    /// Charges the time since the previous mark to `phase`.
    @inline(__always) func mark(_ phase: Phase) {
        let t = now()
        seconds[phase.rawValue] += Double(t &- last) / 1e9
        last = t
    }

    public func reset() { for i in seconds.indices { seconds[i] = 0 } }

    public var total: Double { seconds.reduce(0, +) }

    @inline(__always) private func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
