import CZeroMQ

#if canImport(Glibc)
import Glibc
#endif

/// A transport failure, worded for the user.
public struct TransportError: Error, CustomStringConvertible {
    public let description: String
    /// The peer is not connected any more (a ROUTER send to a vanished identity).
    public let unreachable: Bool
    /// `what`, libzmq's reason for the last failure, then `hint`.
    init(_ what: String, hint: String = "") {
        let e = zmq_errno()
        description = "\(what): \(String(cString: zmq_strerror(e)))\(hint)"
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
///
/// A message is a head frame and at most one payload frame. The payload crosses the wire as frames of at most
/// `maxFrameBytes`, joined again on receipt: libzmq resets a connection's heartbeat timer only when a whole frame has
/// arrived, so one 80 MB frame on a 100 Mbit/s link (6.4 s) outlasted a 5 s `--heartbeat-timeout` and dropped a
/// healthy worker mid-upload; in 1 MiB frames the timer is reset every 84 ms at that rate.
public final class ZMQSocket {
    /// The largest frame a payload is sent in.
    public static let maxFrameBytes = 1 << 20
    public enum Kind { case router, dealer }
    let handle: UnsafeMutableRawPointer
    public let kind: Kind
    private let context: ZMQContext  // keeps the context alive while the socket lives
    var contextRef: ZMQContext { context }
    /// Counts the frames this socket sends and receives (peer-identity frames excluded), when set.
    public var meter: TrafficMeter?

    /// The largest message (head and payload together) `receive` accepts, when set.
    let maxMessageBytes: Int64?

    /// `heartbeatTimeout`: seconds without ZMTP heartbeats after which libzmq drops the connection (a frozen
    /// peer); heartbeats go every second from libzmq's I/O thread, so a busy peer still answers.
    /// `maxMessageBytes`: a message larger than this (all its frames together) is not delivered: `receive` drains it
    /// and returns its head followed by two empty frames, which the decoder refuses (a message is one or two frames).
    /// Each frame is bounded too (ZMQ_MAXMSGSIZE, a payload frame and a head's room, past which libzmq drops the
    /// peer); libzmq itself holds a multipart message whole before it can be read, whatever its frame count, as it
    /// always did.
    public init(_ context: ZMQContext, kind: Kind, maxMessageBytes: Int64? = nil, heartbeatTimeout: Double = 10) throws {
        guard let s = zmq_socket(context.handle, kind == .router ? ZMQ_ROUTER : ZMQ_DEALER) else {
            throw TransportError("cannot create a ZeroMQ socket")
        }
        handle = s
        self.kind = kind
        self.context = context
        self.maxMessageBytes = maxMessageBytes
        try set(ZMQ_LINGER, Int32(0))
        // ZMTP heartbeats: a peer whose process is frozen (not just busy: libzmq's I/O thread answers while
        // the main thread computes) loses its connection after `heartbeatTimeout`, which the coordinator notices.
        try set(ZMQ_HEARTBEAT_IVL, Int32(1000))
        try set(ZMQ_HEARTBEAT_TIMEOUT, Int32(max(1000, heartbeatTimeout * 1000)))
        if kind == .router { try set(ZMQ_ROUTER_MANDATORY, Int32(1)) }
        if let m = maxMessageBytes { try set(ZMQ_MAXMSGSIZE, min(m, Int64(Self.maxFrameBytes + Self.headFrameBytes))) }
    }

    deinit { zmq_close(handle) }

    func set<T: FixedWidthInteger>(_ option: Int32, _ value: T) throws {
        var v = value
        guard zmq_setsockopt(handle, option, &v, MemoryLayout<T>.size) == 0 else {
            throw TransportError("setting ZeroMQ socket option \(option)")
        }
    }

    public func bind(_ endpoint: String) throws {
        guard zmq_bind(handle, endpoint) == 0 else {
            // ZeroMQ's tcp bind resolves no host names: "localhost" fails with "No such device".
            let named = zmq_errno() == ENODEV && endpoint.hasPrefix("tcp://")
            throw TransportError("cannot bind \(endpoint)", hint: named
                ? " (a tcp bind takes an IP address or an interface name, not a host name: e.g. tcp://127.0.0.1:5555, or tcp://*:5555 for every interface)"
                : Self.endpointHint(endpoint))
        }
    }

    public func connect(_ endpoint: String) throws {
        guard zmq_connect(handle, endpoint) == 0 else {
            throw TransportError("cannot connect to \(endpoint)", hint: Self.endpointHint(endpoint))
        }
    }

    /// What an endpoint ZeroMQ refused may lack: a transport, or a port.
    static func endpointHint(_ endpoint: String) -> String {
        guard endpoint.contains("://") else { return " (an endpoint is TRANSPORT://ADDRESS, e.g. tcp://HOST:5555 or ipc:///tmp/rnnlm.sock)" }
        if endpoint.hasPrefix("tcp://"), !endpoint.dropFirst(6).contains(":") { return " (a tcp endpoint needs a port: tcp://HOST:PORT)" }
        return ""
    }

    /// The endpoint actually bound (resolves `tcp://127.0.0.1:*` to the chosen port).
    public var lastEndpoint: String {
        var buf = [CChar](repeating: 0, count: 256)
        var len = buf.count
        zmq_getsockopt(handle, ZMQ_LAST_ENDPOINT, &buf, &len)
        return String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Bytes a head frame may take (a header, its meta, a hello's JSON): the per-frame bound above `maxFrameBytes`.
    public static let headFrameBytes = 1 << 20

    /// Sends `frames` (a head and at most one payload) as one multipart message, the payload in frames of at most
    /// `maxFrameBytes`; on a ROUTER, to peer `identity`.
    /// (Any frames before the last go as they are: tests send malformed messages through here.)
    public func send(_ frames: [[UInt8]], to identity: [UInt8]? = nil) throws {
        let leading = (identity.map { [$0] } ?? []) + frames.dropLast(frames.count >= 2 ? 1 : 0)
        if frames.count >= 2 {
            let payload = try frames.last!.withUnsafeBytes { try PayloadFrames([$0]) }
            try send(leading, more: true)
            try send(payload)
        } else {
            try send(leading, more: false)
        }
        meter?.didSend(frames.reduce(0) { $0 + $1.count })
    }

    /// Sends the same message to several ROUTER peers; the payload is copied into ZeroMQ messages once
    /// (`PayloadFrames`) and shared by reference with every peer, so a weight broadcast costs one copy whatever the
    /// number of workers.
    /// Returns the identities that are no longer connected (nothing was sent to them).
    @discardableResult
    public func broadcast(head: [UInt8], payload: UnsafeRawBufferPointer, to identities: [[UInt8]]) throws -> [[UInt8]] {
        try broadcast(head: head, frames: PayloadFrames([payload]), to: identities)
    }

    /// Sends `head` and a payload already cut into frames to each of `identities` (ROUTER peers); returns those
    /// no longer connected (nothing was sent to them).
    @discardableResult
    public func broadcast(head: [UInt8], frames: PayloadFrames, to identities: [[UInt8]]) throws -> [[UInt8]] {
        var unreachable: [[UInt8]] = []
        for id in identities {
            do { try send([id, head].map { $0 }, more: true) } catch let e as TransportError where e.unreachable {
                unreachable.append(id)
                continue
            }
            try send(frames)
            meter?.didSend(head.count + frames.byteCount)
        }
        return unreachable
    }

    /// Sends `payload`'s frames as the message's last ones, sharing their buffers (`zmq_msg_copy`).
    private func send(_ payload: PayloadFrames) throws {
        var part = zmq_msg_t()
        for c in 0..<payload.count {
            zmq_msg_init(&part)
            zmq_msg_copy(&part, payload.messages + c)
            guard zmq_msg_send(&part, handle, c + 1 < payload.count ? ZMQ_SNDMORE : 0) >= 0 else {
                zmq_msg_close(&part)
                throw TransportError("send failed")
            }
        }
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
        let headIndex = kind == .router ? 1 : 0
        var frames: [[UInt8]] = []
        var total = 0, oversize = false
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
            if frames.count >= headIndex { total += size }
            // Past the bound the rest is drained, not kept: the head stays, the payload goes.
            if let m = maxMessageBytes, total > m, frames.count > headIndex {
                if !oversize { frames.removeSubrange((headIndex + 1)...) }
                oversize = true
            } else {
                frames.append(size == 0 ? [] : Array(UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: size)))
            }
            let more = zmq_msg_more(msg)
            zmq_msg_close(msg)
            if more == 0 { break }
        } while true
        if oversize {
            frames += [[], []]  // three frames: refused by the decoder, whatever the head says
        } else if frames.count > headIndex + 2, frames[(headIndex + 1)..<(frames.count - 1)].allSatisfy({ $0.count == Self.maxFrameBytes }) {
            // A payload sent in frames (`sendChunked`): every frame but the last is full. Anything else with more
            // than one payload frame is left as it came, for the decoder to refuse.
            var payload: [UInt8] = []
            payload.reserveCapacity(frames[(headIndex + 1)...].reduce(0) { $0 + $1.count })
            for f in frames[(headIndex + 1)...] { payload.append(contentsOf: f) }
            frames.removeSubrange((headIndex + 1)...)
            frames.append(payload)
        }
        meter?.didReceive(total)
        return frames
    }
}
