import CZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// A transport failure, worded for the user.
public struct TransportError: Error, CustomStringConvertible {
    public let description: String
    /// The peer is not connected any more (a ROUTER send to a vanished identity).
    public let unreachable: Bool
    init(_ what: String) {
        let e = zmq_errno()
        description = "\(what): \(String(cString: zmq_strerror(e)))"
        unreachable = e == EHOSTUNREACH
    }
    init(message: String) { description = message; unreachable = false }
}

/// A ZeroMQ context. Thread-safe by libzmq's contract.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() {
        handle = zmq_ctx_new()
    }

    deinit { zmq_ctx_term(handle) }
}

/// One ZeroMQ socket: ROUTER on the coordinator (one identity frame per peer), DEALER on a worker.
/// Not thread-safe: create and use it on one thread.
public final class ZMQSocket {
    public enum Kind { case router, dealer }
    let handle: UnsafeMutableRawPointer
    public let kind: Kind
    private let context: ZMQContext  // keeps the context alive while the socket lives
    var contextRef: ZMQContext { context }
    /// Counts the frames this socket sends and receives (peer-identity frames excluded), when set.
    public var meter: TrafficMeter?

    /// `heartbeatTimeout`: seconds without ZMTP heartbeats after which libzmq drops the connection (a frozen
    /// peer); heartbeats go every second from libzmq's I/O thread, so a busy peer still answers.
    public init(_ context: ZMQContext, kind: Kind, maxMessageBytes: Int64? = nil, heartbeatTimeout: Double = 10) throws {
        guard let s = zmq_socket(context.handle, kind == .router ? ZMQ_ROUTER : ZMQ_DEALER) else {
            throw TransportError("cannot create a ZeroMQ socket")
        }
        handle = s
        self.kind = kind
        self.context = context
        try set(ZMQ_LINGER, Int32(0))
        // ZMTP heartbeats: a peer whose process is frozen (not just busy: libzmq's I/O thread answers while
        // the main thread computes) loses its connection after `heartbeatTimeout`, which the coordinator notices.
        try set(ZMQ_HEARTBEAT_IVL, Int32(1000))
        try set(ZMQ_HEARTBEAT_TIMEOUT, Int32(max(1000, heartbeatTimeout * 1000)))
        if kind == .router { try set(ZMQ_ROUTER_MANDATORY, Int32(1)) }
        if let m = maxMessageBytes { try set(ZMQ_MAXMSGSIZE, m) }
    }

    deinit { zmq_close(handle) }

    func set<T: FixedWidthInteger>(_ option: Int32, _ value: T) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<T>.size) == 0 else {
            throw TransportError("setting ZeroMQ socket option \(option)")
        }
    }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else { throw TransportError("cannot bind \(endpoint)") }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else { throw TransportError("cannot connect to \(endpoint)") }
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*` to the chosen port).
    public var lastEndpoint: String {
        var buf = [CChar](repeating: 0, count: 256)
        var len = buf.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buf, &len)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sends `frames` as one multipart message; on a ROUTER, to peer `identity`.
    public func send(_ frames: [[UInt8]], to identity: [UInt8]? = nil) throws {
        try send(identity.map { [$0] + frames } ?? frames, more: false)
        meter?.didSend(frames.reduce(0) { $0 + $1.count })
    }

    /// Sends the same message to several ROUTER peers; the last (large) frame is copied into one ZeroMQ
    /// message once and shared by reference with every peer (`zmq_msg_copy` shares the buffer), so a weight
    /// broadcast costs one copy whatever the number of workers.
    /// Returns the identities that are no longer connected (nothing was sent to them).
    @discardableResult
    public func broadcast(head: [UInt8], payload: UnsafeRawBufferPointer, to identities: [[UInt8]]) throws -> [[UInt8]] {
        let shared = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { zmq_msg_close(shared); shared.deallocate() }
        guard zmq_msg_init_size(shared, payload.count) == 0 else { throw TransportError("cannot allocate a \(payload.count)-byte message") }
        if payload.count > 0 { zmq_msg_data(shared).copyMemory(from: payload.baseAddress!, byteCount: payload.count) }
        let part = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { part.deallocate() }
        var unreachable: [[UInt8]] = []
        for id in identities {
            do { try send([id, head].map { $0 }, more: true) } catch let e as TransportError where e.unreachable {
                unreachable.append(id)
                continue
            }
            zmq_msg_init(part)
            zmq_msg_copy(part, shared)
            guard zmq_msg_send(part, handle, 0) >= 0 else {
                zmq_msg_close(part)
                throw TransportError("broadcast send failed")
            }
            meter?.didSend(head.count + payload.count)
        }
        return unreachable
    }

    /// Sends the frames of one message; `more` leaves it open for a further frame.
    private func send(_ frames: [[UInt8]], more: Bool) throws {
        for (i, f) in frames.enumerated() {
            let flags = (i + 1 < frames.count || more) ? ZMQ_SNDMORE : 0
            let rc = f.withUnsafeBytes { zmq_send(handle, $0.baseAddress, f.count, flags) }
            guard rc >= 0 else { throw TransportError("send failed") }
        }
    }

    /// Waits up to `timeoutMs` for a message; returns its frames (a ROUTER's first frame is the peer
    /// identity) or nil on timeout or interruption by a signal.
    public func receive(timeoutMs: Int) throws -> [[UInt8]]? {
        var item = zmq_pollitem_t(socket: handle, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
        let rc = zmq_poll(&item, 1, timeoutMs)
        if rc < 0 {
            if zmq_errno() == EINTR { return nil }
            throw TransportError("poll failed")
        }
        guard rc > 0 else { return nil }
        var frames: [[UInt8]] = []
        let msg = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { msg.deallocate() }
        repeat {
            zmq_msg_init(msg)
            let n = zmq_msg_recv(msg, handle, frames.isEmpty ? ZMQ_DONTWAIT : 0)
            if n < 0 {
                zmq_msg_close(msg)
                if zmq_errno() == EAGAIN || zmq_errno() == EINTR { return frames.isEmpty ? nil : frames }
                throw TransportError("receive failed")
            }
            let size = zmq_msg_size(msg)
            frames.append(size == 0 ? [] : Array(UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: size)))
            let more = zmq_msg_more(msg)
            zmq_msg_close(msg)
            if more == 0 { break }
        } while true
        meter?.didReceive(frames.dropFirst(kind == .router ? 1 : 0).reduce(0) { $0 + $1.count })
        return frames
    }
}
