import CZeroMQ

/// A payload cut once into ZeroMQ messages of at most `ZMQSocket.maxFrameBytes`, copied from its parts in order
/// (no intermediate buffer), to send to one peer or several: every send shares the messages' buffers by reference
/// (`zmq_msg_copy`), so a payload costs one copy whatever the number of peers and sends.
public final class PayloadFrames {
    let messages: UnsafeMutablePointer<zmq_msg_t>
    /// Frames (at least one: an empty payload is one empty frame).
    public let count: Int
    /// Payload bytes in all.
    public let byteCount: Int

    public init(_ parts: [UnsafeRawBufferPointer]) throws {
        let size = ZMQSocket.maxFrameBytes
        let total = parts.reduce(0) { $0 + $1.count }
        byteCount = total
        count = max(1, (total + size - 1) / size)
        messages = .allocate(capacity: count)
        for c in 0..<count {
            guard zmq_msg_init_size(messages + c, min(size, total - c * size)) == 0 else {
                for m in 0..<c { zmq_msg_close(messages + m) }
                messages.deallocate()
                throw TransportError("cannot allocate a \(min(size, total - c * size))-byte message")
            }
        }
        var at = 0  // where the next byte goes, in the whole payload
        for p in parts where p.count > 0 {
            var from = 0
            while from < p.count {
                let frame = at / size, within = at % size, n = min(p.count - from, size - within)
                (zmq_msg_data(messages + frame) + within).copyMemory(from: p.baseAddress! + from, byteCount: n)
                from += n
                at += n
            }
        }
    }

    deinit {
        for c in 0..<count { zmq_msg_close(messages + c) }
        messages.deallocate()
    }
}
