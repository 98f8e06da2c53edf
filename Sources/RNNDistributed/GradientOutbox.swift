import RNNCore
import RNNProtocol
import RNNTransport

/// Where a worker accumulates a step's gradient and how the gradient message leaves it: the worker side's one
/// place that knows the payload's layout (`Codec.gradientHead`'s: the gradient's values, the row words of its
/// row-sparse tables, then the carried values), so another layout changes this type and `Codec`, not the
/// worker's loop.
///
/// Through a shared-memory slot the Float32 gradient is accumulated straight into the slot's payload area, under
/// the slot's seqlock: the write begins before the gradient is zeroed and ends, with the row words and carried
/// values appended, before the head is sent, so a reader never takes a gradient being computed for a whole one
/// and sending is the flagged head alone (the coordinator reads only the support the row words name). Over the
/// socket, or compressed to bfloat16, it is accumulated in the task's own buffer and only the support's values
/// are encoded.
struct GradientOutbox {
    /// The worker's own slot (nil: frames over the socket).
    let slot: SharedPayloadRegion?
    /// `--gradient-compression bf16`: what rounding lost, for the next gradient (nil: Float32 values).
    let residual: FloatBuffer?

    init(slot: SharedPayloadRegion?, residual: FloatBuffer? = nil) {
        self.slot = slot; self.residual = residual
    }

    /// Whether the gradient is accumulated in the slot itself (Float32 into a slot); compressed values are written
    /// into the slot once compressed.
    var accumulatesInPlace: Bool { slot != nil && residual == nil }

    /// A gradient accumulated by `accumulate`, not yet sent.
    struct Pending {
        fileprivate let area: UnsafeMutableRawBufferPointer?
        let loss: LossSum
    }

    /// Runs `compute` (which zeroes `gradients` and accumulates into it) with `gradients` where the payload wants
    /// it. The result must go to `message` or, when it is not to be sent, to `discard`.
    func accumulate(into gradients: FloatBuffer, _ compute: () -> LossSum) -> Pending {
        guard accumulatesInPlace, let slot else { return Pending(area: nil, loss: compute()) }
        let area = slot.beginWrite(.toCoordinator)
        precondition(area.count >= 4 * gradients.count, "the shared-memory slot is smaller than the gradient")
        let g = area.baseAddress!.bindMemory(to: Float.self, capacity: gradients.count)
        return Pending(area: area, loss: gradients.borrowing(g) { compute() })
    }

    /// The frames to send for `pending`, whose gradient's non-zero values lie in `support`: with a slot, the
    /// payload is completed in the slot, its write ended, and the message is the flagged head alone.
    func message(_ pending: Pending, gradients: FloatBuffer, support: GradientSupport, carried: [Float], runID: UInt64,
                 step: UInt64, computeNanos: UInt64) throws -> [[UInt8]] {
        let loss = pending.loss, words = support.wireRows
        // (A gradient that is not finite is sent as Float32, for the coordinator to refuse.)
        let compressed = residual.flatMap { Codec.compress(UnsafeBufferPointer(gradients.buffer), support: support, residual: $0.buffer) }
        guard let slot else {
            return Codec.encodeGradient(runID: runID, step: step, lossSum: loss.sum, tokens: UInt32(loss.count),
                                        gradient: UnsafeBufferPointer(gradients.buffer), support: support,
                                        compressed: compressed, state: carried, computeNanos: computeNanos)
        }
        guard let area = pending.area else {
            // Compressed: the values of the support (or Float32 ones, when not finite) copied into the slot.
            try carried.withUnsafeBytes { st in
                try words.withUnsafeBytes { rows in
                    try (compressed ?? []).withUnsafeBytes { c in
                        try slot.write(.toCoordinator, Codec.gradientPayloadParts(UnsafeBufferPointer(gradients.buffer), support: support,
                                                                                 compressed: compressed == nil ? nil : c, rows: rows, state: st))
                    }
                }
            }
            return [Codec.flaggingSharedPayload(Codec.gradientHead(
                runID: runID, step: step, lossSum: loss.sum, tokens: UInt32(loss.count), gradientCount: support.valueCount,
                encoding: compressed == nil ? .float32 : .bfloat16, rowWords: words.count, stateCount: carried.count,
                computeNanos: computeNanos))]
        }
        // In place: the whole buffer is in the slot already; the row words (which say where it may be non-zero,
        // so the coordinator reads only that) and the carried values follow it.
        let g = 4 * gradients.count, length = g + 4 * words.count + 4 * carried.count
        guard length <= area.count else {
            discard(pending)
            throw DistributedError("a \(length)-byte gradient does not fit the \(area.count)-byte shared memory slot of \(slot.path)")
        }
        if !words.isEmpty {
            words.withUnsafeBytes { (area.baseAddress! + g).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        if !carried.isEmpty {
            carried.withUnsafeBytes { (area.baseAddress! + g + 4 * words.count).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        }
        try slot.endWrite(.toCoordinator, length: length)
        return [Codec.flaggingSharedPayload(Codec.gradientHead(
            runID: runID, step: step, lossSum: loss.sum, tokens: UInt32(loss.count), gradientCount: gradients.count,
            rowWords: words.count, stateCount: carried.count, computeNanos: computeNanos))]
    }

    /// Drops `pending` unsent: the slot's write ends with no payload a reader could take for a gradient.
    func discard(_ pending: Pending) {
        guard let slot, pending.area != nil else { return }
        try? slot.endWrite(.toCoordinator, length: 0)
    }
}
