import RNNCore
import RNNProtocol
import RNNTransport

/// Where a worker accumulates a step's gradient and how the gradient message leaves it: the worker side's one
/// place that knows the payload's layout (`Codec.gradientHead`'s: the P gradient values, then the carried values),
/// so another layout changes this type and `Codec`, not the worker's loop.
///
/// Through a shared-memory slot the gradient is accumulated straight into the slot's payload area, under the
/// slot's seqlock: the write begins before the gradient is zeroed and ends, with the carried values appended,
/// before the head is sent, so a reader never takes a gradient being computed for a whole one and sending is the
/// flagged head alone. Over the socket it is accumulated in the task's own buffer and encoded into frames.
struct GradientOutbox {
    /// The worker's own slot (nil: frames over the socket).
    let slot: SharedPayloadRegion?

    /// A gradient accumulated by `accumulate`, not yet sent.
    struct Pending {
        fileprivate let area: UnsafeMutableRawBufferPointer?
        let loss: LossSum
    }

    /// Runs `compute` (which zeroes `gradients` and accumulates into it) with `gradients` where the payload wants
    /// it. The result must go to `message` or, when it is not to be sent, to `discard`.
    func accumulate(into gradients: FloatBuffer, _ compute: () -> LossSum) -> Pending {
        guard let slot else { return Pending(area: nil, loss: compute()) }
        let area = slot.beginWrite(.toCoordinator)
        precondition(area.count >= 4 * gradients.count, "the shared-memory slot is smaller than the gradient")
        let g = area.baseAddress!.bindMemory(to: Float.self, capacity: gradients.count)
        return Pending(area: area, loss: gradients.borrowing(g) { compute() })
    }

    /// The frames to send for `pending`: with a slot, the carried values are appended in the slot, its write
    /// ended, and the message is the flagged head alone.
    func message(_ pending: Pending, gradients: FloatBuffer, carried: [Float], runID: UInt64, step: UInt64,
                 computeNanos: UInt64) throws -> [[UInt8]] {
        let loss = pending.loss
        guard let slot, let area = pending.area else {
            return Codec.encodeGradient(runID: runID, step: step, lossSum: loss.sum, tokens: UInt32(loss.count),
                                        gradient: UnsafeBufferPointer(gradients.buffer), state: carried,
                                        computeNanos: computeNanos)
        }
        let g = 4 * gradients.count, length = g + 4 * carried.count
        guard length <= area.count else {
            discard(pending)
            throw DistributedError("a \(length)-byte gradient does not fit the \(area.count)-byte shared memory slot of \(slot.path)")
        }
        if !carried.isEmpty {
            carried.withUnsafeBytes { (area.baseAddress! + g).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        try slot.endWrite(.toCoordinator, length: length)
        return [Codec.flaggingSharedPayload(Codec.gradientHead(
            runID: runID, step: step, lossSum: loss.sum, tokens: UInt32(loss.count), gradientCount: gradients.count,
            stateCount: carried.count, computeNanos: computeNanos))]
    }

    /// Drops `pending` unsent: the slot's write ends with no payload a reader could take for a gradient.
    func discard(_ pending: Pending) {
        guard let slot, pending.area != nil else { return }
        try? slot.endWrite(.toCoordinator, length: 0)
    }
}
