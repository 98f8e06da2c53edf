import RNNCore
import RNNProtocol
import RNNTransport

// The two sides of the shared-memory payload exchange between the coordinator and its local workers
// (`SharedPayloadRegion`): what both must agree on, and putting a payload back before `Codec.decode`.

/// Bytes a shared-memory slot must hold: the parameters plus the largest carried values a worker can own (all
/// `carriedValues` of the B rows), plus the row words of row-sparse tables' gradients (`rowWords`,
/// `GradientSupport.maxWireRows`).
public func sharedPayloadCapacity(parameterCount: Int, carriedValues: Int, rowWords: Int = 0) -> Int {
    MessageBounds.payloadBytes(parameters: parameterCount, stateValues: carriedValues, rowWords: rowWords)
}

/// `frames` ready for `Codec.decode`: unchanged unless they are a flagged head from a peer with a `region`, in
/// which case the payload is read back from `slot`. Nil when that payload was being rewritten while read (or its
/// length is not the head's): the caller drops the message.
func restoringSharedPayload(_ frames: [[UInt8]], from region: SharedPayloadRegion?,
                            _ slot: SharedPayloadRegion.Slot) -> [[UInt8]]? {
    guard Codec.isSharedPayloadHead(frames), let region else { return frames }
    guard let payload = region.read(slot) else { return nil }
    return Codec.restoringSharedPayload(frames, payload: payload)
}
