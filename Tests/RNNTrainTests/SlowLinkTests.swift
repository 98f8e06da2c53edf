import Foundation
import RNNCore
import RNNDistributed
import RNNTransport
import Testing

struct SlowLinkError: Error { let reason: String }

/// A TCP relay on 127.0.0.1 for one connection to `targetPort`, one direction throttled to `bytesPerSecond`
/// (back to the client, or with `upload` toward the server): a slow link between a worker and its coordinator.
final class SlowLink: @unchecked Sendable {
    let port: Int
    private let listener: Int32

    init(targetPort: Int, bytesPerSecond: Int, upload: Bool = false) throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        listener = fd
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &addr) { a in
            a.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(fd, sa, len) == 0 && listen(fd, 1) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        guard ok else { throw SlowLinkError(reason: "cannot listen: \(String(cString: strerror(errno)))") }
        port = Int(UInt16(bigEndian: addr.sin_port))
        Thread.detachNewThread {
            let client = accept(fd, nil, nil)
            let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_addr.s_addr = inet_addr("127.0.0.1")
            to.sin_port = UInt16(targetPort).bigEndian
            let connected = withUnsafePointer(to: &to) { a in
                a.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(server, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            guard client >= 0, connected else { close(client); close(server); return }
            let slow = (chunk: max(1, bytesPerSecond / 20), pause: UInt32(50_000)), fast = (chunk: 1 << 16, pause: UInt32(0))
            let up = upload ? slow : fast, down = upload ? fast : slow
            Thread.detachNewThread { SlowLink.pump(from: client, to: server, chunk: up.chunk, pause: up.pause) }
            SlowLink.pump(from: server, to: client, chunk: down.chunk, pause: down.pause)
        }
    }

    deinit { close(listener) }

    /// Copies until either side closes, `chunk` bytes at a time with `pause` microseconds after each.
    static func pump(from: Int32, to: Int32, chunk: Int, pause: UInt32) {
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, chunk) }
            guard n > 0 else { break }
            var sent = 0
            while sent < n {
                // (send, not write: a peer that went away must not SIGPIPE the test process)
                let w = buffer.withUnsafeBytes { send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                guard w > 0 else { shutdown(from, Int32(SHUT_RDWR)); return }
                sent += w
            }
            if pause > 0 { usleep(pause) }
        }
        shutdown(to, Int32(SHUT_RDWR))
    }
}

/// Heartbeats on a slow link: a peer busy receiving one large message is healthy, not lost.
@Suite("Heartbeats on a slow link", .serialized)
struct SlowLinkTests {
    /// One context for the suite, never terminated (terminating it waits on the handshake monitor's socket).
    static let context = ZMQContext()

    /// A coordinator sends a worker a 2.4 MB message over a 200 kB/s link (12 s). libzmq resets its heartbeat timer
    /// only when a message has arrived whole, so a worker socket whose heartbeat timeout is shorter than the transfer
    /// (the fixed 10 s it had) drops the healthy connection mid-message; it now uses `workerHeartbeatTimeout` of its
    /// `--timeout`. (The same transfer with a 1 s timeout ends in a disconnection: checked by hand, see the commit.)
    func transfer(workerHeartbeat: Double) throws -> (received: Bool, disconnected: Bool) {
        let context = Self.context
        let router = try ZMQSocket(context, kind: .router, heartbeatTimeout: 5)
        try router.bind("tcp://127.0.0.1:*")
        let port = Int(router.lastEndpoint.split(separator: ":").last!)!
        let link = try SlowLink(targetPort: port, bytesPerSecond: 200_000)
        let dealer = try ZMQSocket(context, kind: .dealer, heartbeatTimeout: workerHeartbeat)
        let monitor = try dealer.monitorHandshakes()
        try dealer.connect("tcp://127.0.0.1:\(link.port)")
        try dealer.send([[1]])
        let hello = try #require(try router.receive(timeoutMs: 5000), "the hello crosses the link")
        let big = [UInt8](repeating: 7, count: 2_400_000)
        try router.send([[2], big], to: hello[0])
        let deadline = Date().addingTimeInterval(40)
        while Date() < deadline {
            _ = monitor.handshakeFailure()
            if monitor.disconnected { return (false, true) }
            if let m = try dealer.receive(timeoutMs: 100) { return (m.count == 2 && m[1] == big, monitor.disconnected) }
        }
        return (false, monitor.disconnected)
    }

    @Test("the worker's heartbeat timeout follows its --timeout: the large message arrives and the link stays up")
    func theWorkersHeartbeatTimeoutOutlastsTheTransfer() throws {
        #expect(workerHeartbeatTimeout(900) == 900 && workerHeartbeatTimeout(1) == 10)
        let r = try transfer(workerHeartbeat: workerHeartbeatTimeout(60))
        #expect(r.received && !r.disconnected, "\(r)")
    }

    /// A worker uploads a 10 MB gradient over a 2 MB/s link (5 s) to a coordinator whose `--heartbeat-timeout` is 1 s.
    /// Sent as one frame, libzmq on the coordinator saw no whole frame for 5 s and dropped the healthy worker
    /// mid-upload (the default 5 s timeout does the same to an 80 MB gradient at 100 Mbit/s); in frames of
    /// `ZMQSocket.maxFrameBytes` one arrives every half second, and the payload is joined whole on receipt.
    @Test("the coordinator keeps a worker whose upload outlasts --heartbeat-timeout, and gets the payload whole")
    func aLongUploadKeepsItsConnection() throws {
        let context = Self.context
        let router = try ZMQSocket(context, kind: .router, maxMessageBytes: 11_000_000, heartbeatTimeout: 1)
        let routerMonitor = try router.monitorHandshakes()
        try router.bind("tcp://127.0.0.1:*")
        let port = Int(router.lastEndpoint.split(separator: ":").last!)!
        let link = try SlowLink(targetPort: port, bytesPerSecond: 2_000_000, upload: true)
        let dealer = try ZMQSocket(context, kind: .dealer, heartbeatTimeout: 60)
        try dealer.connect("tcp://127.0.0.1:\(link.port)")
        try dealer.send([[1]])
        _ = try #require(try router.receive(timeoutMs: 5000), "the hello crosses the link")
        var rng = RandomGenerator(seed: 4)
        let big = (0..<10_000_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        try dealer.send([[3], big])
        let deadline = Date().addingTimeInterval(40)
        var received: [[UInt8]]?
        while Date() < deadline, received == nil {
            _ = routerMonitor.handshakeFailure()
            received = try router.receive(timeoutMs: 100)
        }
        let m = try #require(received, "the upload did not arrive within 40 s (disconnected: \(routerMonitor.disconnected))")
        #expect(m.count == 3 && m[1] == [3] && m[2] == big, "frames \(m.map(\.count))")
        #expect(!routerMonitor.disconnected)
    }

    /// Frames that are not a chunked payload stay as they came (the decoder refuses a message of three frames),
    /// and a message past `maxMessageBytes` keeps only its head, followed by two empty frames that no decoder takes.
    @Test("extra frames are not joined; an oversized message arrives without its payload")
    func malformedFramingIsNotRepaired() throws {
        let context = Self.context
        let router = try ZMQSocket(context, kind: .router, maxMessageBytes: 3_000_000)
        try router.bind("tcp://127.0.0.1:*")
        let dealer = try ZMQSocket(context, kind: .dealer)
        try dealer.connect(router.lastEndpoint)
        func next() throws -> [[UInt8]] {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline { if let m = try router.receive(timeoutMs: 100) { return m } }
            throw SlowLinkError(reason: "nothing arrived")
        }
        try dealer.send([[1], [2, 2], []])
        #expect(try next().dropFirst() == [[1], [2, 2], []])
        let full = [UInt8](repeating: 5, count: ZMQSocket.maxFrameBytes)
        try dealer.send([[1], full + [6]])  // two frames on the wire, joined
        #expect(try next().dropFirst() == [[1], full + [6]])
        try dealer.send([[1], [UInt8](repeating: 7, count: 3_500_000)])
        #expect(try next().dropFirst() == [[1], [], []])
        try dealer.send([[9], [8]])  // the socket carries on
        #expect(try next().dropFirst() == [[9], [8]])
    }

    /// A payload cut into frames once from several parts (`PayloadFrames`: parts that straddle the 1 MiB frame
    /// boundaries, an empty part, an empty payload) arrives whole at every peer it is sent to, as often as it is sent.
    @Test("a payload cut into frames from parts arrives whole, at each peer and each send")
    func payloadFramesArriveWhole() throws {
        let context = Self.context
        let router = try ZMQSocket(context, kind: .router, maxMessageBytes: 8_000_000)
        try router.bind("tcp://127.0.0.1:*")
        let dealers = try (0..<2).map { _ in try ZMQSocket(context, kind: .dealer) }
        for d in dealers { try d.connect(router.lastEndpoint) }
        var peers: [[UInt8]] = []
        for (i, d) in dealers.enumerated() {
            try d.send([[UInt8(i)]])
            let deadline = Date().addingTimeInterval(10)
            while peers.count == i, Date() < deadline { if let m = try router.receive(timeoutMs: 100) { peers.append(m[0]) } }
        }
        try #require(peers.count == 2)
        let M = ZMQSocket.maxFrameBytes
        let sizes = [3, M - 1, 0, 5, 2 * M + 7]
        let parts = sizes.enumerated().map { i, n in (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ i) } }
        let whole = parts.flatMap { $0 }
        let frames = try withParts(parts) { try PayloadFrames($0) }
        #expect(frames.count == 4 && frames.byteCount == whole.count)
        let empty = try PayloadFrames([])
        for _ in 0..<2 {
            #expect(try router.broadcast(head: [7], frames: frames, to: peers).isEmpty)
            #expect(try router.broadcast(head: [8], frames: empty, to: [peers[1]]).isEmpty)
        }
        func next(_ d: ZMQSocket) throws -> [[UInt8]] {
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline { if let m = try d.receive(timeoutMs: 100) { return m } }
            throw SlowLinkError(reason: "nothing arrived")
        }
        for _ in 0..<2 {
            #expect(try next(dealers[0]) == [[7], whole])
            #expect(try next(dealers[1]) == [[7], whole])
            #expect(try next(dealers[1]) == [[8], []])
        }
    }

    /// `body` on the parts' bytes.
    func withParts<T>(_ parts: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) throws -> T) rethrows -> T {
        var pointers: [UnsafeRawBufferPointer] = []
        func step(_ i: Int) throws -> T {
            guard i < parts.count else { return try body(pointers) }
            return try parts[i].withUnsafeBytes { p in pointers.append(p); return try step(i + 1) }
        }
        return try step(0)
    }
}
