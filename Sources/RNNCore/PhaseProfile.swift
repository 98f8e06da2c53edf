#if canImport(Glibc)
import Glibc
#endif

/// Time spent in each phase of forward and backward, accumulated over calls (only when a model's `profile` is set;
/// otherwise no clock is read). For choosing the next optimisation by data. The clock is the calling thread's CPU
/// time, so that on a shared machine the time the thread spends descheduled is not charged to whichever phase it
/// was in (one profile per thread: a model and its replicas each have their own).
public final class PhaseProfile {
    public enum Phase: Int, CaseIterable, Sendable {
        case embedding, inputProjection, recurrence, weightGradients, decoderForward, softmax, decoderWeightGradient,
             decoderInputGradient, other
        public var name: String {
            switch self {
            case .embedding: return "embedding (row gather forward, scatter-add backward)"
            case .inputProjection: return "input projection (x·W_ihᵀ, all T steps)"
            case .recurrence: return "recurrence (per-step h·W_hhᵀ + gates, forward and backward)"
            case .weightGradients: return "recurrent weight gradients (dW, db, dX over T·B rows)"
            case .decoderForward: return "decoder forward (x·Wᵀ + b, [T·B, V] logits)"
            case .softmax: return "softmax cross-entropy (loss, ∂L/∂logits in place, db)"
            case .decoderWeightGradient: return "decoder weight gradient (dW = dyᵀ·x)"
            case .decoderInputGradient: return "decoder input gradient (dx = dy·W)"
            case .other: return "dropout, state copies, zeroing"
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
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }
}
