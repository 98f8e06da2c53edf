/// The size of the largest message a run sends, from one place: weights or a gradient for P parameters, with
/// up to S carried values. S is the carried values of all B rows (a language model's `[L, B, H]` h, and as much
/// again for an LSTM's c): one worker can own every row. The coordinator's socket bound (on a whole message, which crosses in
/// frames of at most 1 MiB: `ZMQSocket`) and the shared-memory payload slots are both sized from here.
public enum MessageBounds {
    /// Bytes of the largest payload frame: P + S Float32 values, and `rowWords` Int32 values when the gradients
    /// of row-sparse tables travel as their touched rows (`GradientSupport.maxWireRows`; the rows' values are
    /// within P).
    public static func payloadBytes(parameters: Int, stateValues: Int, rowWords: Int = 0) -> Int {
        4 * (parameters + stateValues + rowWords)
    }

    /// Room above the payload for the head frame (a `Header.size` header and its meta) and for the hello, whose
    /// JSON is the largest message without a payload.
    public static let headroomBytes = 1 << 20

    /// The per-message limit for a socket that receives these messages.
    public static func maxMessageBytes(parameters: Int, stateValues: Int, rowWords: Int = 0) -> Int64 {
        Int64(payloadBytes(parameters: parameters, stateValues: stateValues, rowWords: rowWords) + headroomBytes)
    }
}
