import CZeroMQ
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A CURVE key pair (Z85 text, 40 characters each). The coordinator's public key is what workers need; each
/// worker's public key is what the coordinator authorises.
public struct CurveKeyPair: Equatable, Sendable {
    public let publicKey: String
    public let secretKey: String

    public static func generate() throws -> CurveKeyPair {
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else {
            throw TransportError(message: "cannot generate a CURVE key pair: libzmq was built without CURVE (libsodium)")
        }
        return CurveKeyPair(publicKey: string(pub), secretKey: string(sec))
    }

    /// A key pair from its secret key (the public key is derived).
    public init(secretKey: String) throws {
        guard isZ85Key(secretKey) else { throw TransportError(message: "not a CURVE secret key (40 Z85 characters expected)") }
        var pub = [CChar](repeating: 0, count: 41)
        guard zmq_curve_public(&pub, secretKey) == 0 else { throw TransportError(message: "cannot derive the public key from that secret key") }
        self.init(publicKey: string(pub), secretKey: secretKey)
    }

    init(publicKey: String, secretKey: String) { self.publicKey = publicKey; self.secretKey = secretKey }

    /// Writes `NAME.secret` (mode 0600: both keys) and `NAME.public` (the public key) into `dir`.
    public func write(to dir: String, name: String) throws -> (secret: String, public: String) {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let secretPath = dir + "/" + name + ".secret", publicPath = dir + "/" + name + ".public"
        let secretText = "# rnnlm CURVE key pair \"\(name)\". Keep this file private.\npublic-key = \"\(publicKey)\"\nsecret-key = \"\(secretKey)\"\n"
        // Created with mode 0600 by open(2) itself, so the secret is never readable by others, not even briefly.
        _ = unlink(secretPath)
        let fd = open(secretPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw TransportError(message: "cannot write \(secretPath): \(String(cString: strerror(errno)))") }
        let bytes = Array(secretText.utf8)
        #if canImport(Glibc)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        #else
        let written = bytes.withUnsafeBytes { Darwin.write(fd, $0.baseAddress, $0.count) }
        #endif
        let synced = fsync(fd) == 0
        close(fd)
        guard written == bytes.count && synced else { throw TransportError(message: "cannot write \(secretPath) (disk full?)") }
        try ("# rnnlm CURVE public key \"\(name)\"\npublic-key = \"\(publicKey)\"\n").write(toFile: publicPath, atomically: true, encoding: .utf8)
        return (secretPath, publicPath)
    }

    /// Reads a `.secret` file written by `rnnlm keygen`.
    public static func read(secretFile path: String) throws -> CurveKeyPair {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw TransportError(message: "cannot read the key file \(path) (make one with `rnnlm keygen`)")
        }
        guard let secret = field("secret-key", in: text) else {
            throw TransportError(message: "\(path) holds no secret-key; pass the .secret file written by `rnnlm keygen`, not the .public one")
        }
        do { return try CurveKeyPair(secretKey: secret) } catch {
            throw TransportError(message: "\(path): \(error)")
        }
    }

    /// A public key given as a `.public`/`.secret` file or as the 40-character Z85 text itself.
    public static func publicKey(fileOrKey: String) throws -> String {
        if isZ85Key(fileOrKey) && !FileManager.default.fileExists(atPath: fileOrKey) { return fileOrKey }
        guard let text = try? String(contentsOfFile: fileOrKey, encoding: .utf8) else {
            throw TransportError(message: "\(fileOrKey) is neither a readable key file nor a 40-character Z85 public key")
        }
        guard let key = field("public-key", in: text), isZ85Key(key) else {
            throw TransportError(message: "\(fileOrKey) holds no public-key line (expected a file written by `rnnlm keygen`)")
        }
        return key
    }

    /// The public keys of every `*.public` file in `dir`, with the file names (for logs).
    public static func authorizedKeys(in dir: String) throws -> [String: String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else {
            throw TransportError(message: "cannot list the authorized-keys folder \(dir)")
        }
        var keys: [String: String] = [:]
        for n in names.sorted() where n.hasSuffix(".public") {
            keys[try publicKey(fileOrKey: dir + "/" + n)] = String(n.dropLast(7))
        }
        guard !keys.isEmpty else {
            throw TransportError(message: "\(dir) holds no *.public worker keys; copy each worker's NAME.public there (see `rnnlm keygen`)")
        }
        return keys
    }

    static func field(_ name: String, in text: String) -> String? {
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if parts.count == 2, parts[0] == name { return parts[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        return nil
    }
}

func isZ85Key(_ s: String) -> Bool {
    let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
    return s.count == 40 && s.allSatisfy { alphabet.contains($0) }
}

func string(_ c: [CChar]) -> String { String(decoding: c.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) }

/// Z85 text of 32 raw key bytes.
func z85(_ bytes: [UInt8]) -> String {
    var out = [CChar](repeating: 0, count: bytes.count * 5 / 4 + 1)
    bytes.withUnsafeBufferPointer { _ = zmq_z85_encode(&out, $0.baseAddress, bytes.count) }
    return string(out)
}

/// The ZeroMQ authentication (ZAP) handler for a coordinator: a thread answering libzmq's requests on
/// `inproc://zeromq.zap.01`, admitting a CURVE client only if its public key is authorised. Every decision
/// is reported through `log` with the peer's address and the key's name.
public final class ZAPAuthenticator: @unchecked Sendable {
    private let context: ZMQContext
    private let keys: [String: String]
    private let log: @Sendable (String) -> Void
    private let lock = NSLock()
    private var stopping = false
    private var finished = false
    private var ready = false
    private var thread: Thread?
    public private(set) var accepted = 0
    public private(set) var denied = 0

    public init(context: ZMQContext, authorizedKeys: [String: String], log: @escaping @Sendable (String) -> Void) {
        self.context = context
        keys = authorizedKeys
        self.log = log
    }

    /// Binds the handler (before the server socket accepts anyone) and starts answering.
    public func start() throws {
        let t = Thread { [self] in self.serve() }
        t.name = "rnnlm-zap"
        thread = t
        t.start()
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            lock.lock(); let r = ready, f = finished; lock.unlock()
            if r { return }
            if f { break }
            usleep(1000)
        }
        throw TransportError(message: "the authentication handler did not start")
    }

    public func stop() {
        lock.lock(); stopping = true; lock.unlock()
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline { lock.lock(); let f = finished; lock.unlock(); if f || thread == nil { return }; usleep(1000) }
    }

    private func serve() {
        defer { lock.lock(); finished = true; lock.unlock() }
        guard let socket = zmq_socket(context.handle, ZMQ_REP) else { return }
        defer { zmq_close(socket) }
        var linger: Int32 = 0
        zmq_setsockopt(socket, ZMQ_LINGER, &linger, 4)
        guard zmq_bind(socket, "inproc://zeromq.zap.01") == 0 else { return }
        lock.lock(); ready = true; lock.unlock()
        let msg = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { msg.deallocate() }
        while true {
            lock.lock(); let s = stopping; lock.unlock()
            if s { return }
            var item = zmq_pollitem_t(socket: socket, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)
            guard zmq_poll(&item, 1, 200) > 0 else { continue }
            var frames: [[UInt8]] = []
            repeat {
                zmq_msg_init(msg)
                guard zmq_msg_recv(msg, socket, 0) >= 0 else { zmq_msg_close(msg); break }
                frames.append(Array(UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: zmq_msg_size(msg))))
                let more = zmq_msg_more(msg)
                zmq_msg_close(msg)
                if more == 0 { break }
            } while true
            // Request: version, request id, domain, address, routing id, mechanism, credentials…
            guard frames.count >= 6 else { continue }
            let requestID = frames[1]
            let address = String(decoding: frames[3], as: UTF8.self)
            let mechanism = String(decoding: frames[5], as: UTF8.self)
            var ok = false, why = "", user = ""
            if mechanism == "CURVE", frames.count >= 7, frames[6].count == 32 {
                let key = z85(frames[6])
                if let name = keys[key] { ok = true; user = name } else { why = "key \(key) is not in the authorized keys" }
            } else {
                why = "mechanism \(mechanism) (a CURVE key pair is required)"
            }
            lock.lock(); if ok { accepted += 1 } else { denied += 1 }; lock.unlock()
            log(ok ? "authenticated worker key '\(user)' from \(address)" : "rejected a peer from \(address): \(why)")
            let reply: [[UInt8]] = [Array("1.0".utf8), requestID, Array((ok ? "200" : "400").utf8),
                                    Array((ok ? "OK" : "not authorized").utf8), Array(user.utf8), []]
            for (i, f) in reply.enumerated() {
                _ = f.withUnsafeBytes { zmq_send(socket, $0.baseAddress, f.count, i + 1 < reply.count ? ZMQ_SNDMORE : 0) }
            }
        }
    }
}

extension ZMQSocket {
    /// Makes this (ROUTER) socket a CURVE server with `keys`; authorisation is the ZAP handler's.
    public func makeCurveServer(_ keys: CurveKeyPair) throws {
        try set(ZMQ_CURVE_SERVER, Int32(1))
        try setString(ZMQ_CURVE_SECRETKEY, keys.secretKey)
        try setString(ZMQ_ZAP_DOMAIN, "rnnlm")
    }

    /// Makes this (DEALER) socket a CURVE client of the server whose public key is `serverKey`.
    public func makeCurveClient(serverKey: String, keys: CurveKeyPair) throws {
        guard isZ85Key(serverKey) else { throw TransportError(message: "the coordinator's public key must be 40 Z85 characters") }
        try setString(ZMQ_CURVE_SERVERKEY, serverKey)
        try setString(ZMQ_CURVE_PUBLICKEY, keys.publicKey)
        try setString(ZMQ_CURVE_SECRETKEY, keys.secretKey)
    }

    func setString(_ option: Int32, _ value: String) throws {
        let bytes = Array(value.utf8)
        guard bytes.withUnsafeBytes({ zmq_setsockopt(handle, option, $0.baseAddress, bytes.count) }) == 0 else {
            throw TransportError("setting ZeroMQ socket option \(option)")
        }
    }

    /// Watches this socket's handshakes; `handshakeFailure()` then reports why the peer refused us, if it did.
    public func monitorHandshakes() throws -> HandshakeMonitor {
        let endpoint = "inproc://rnnlm-monitor-\(UInt64.random(in: 0...UInt64.max))"
        let events = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
            | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED
        guard zmq_socket_monitor(handle, endpoint, events) == 0 else { throw TransportError("cannot monitor the socket") }
        return try HandshakeMonitor(context: contextRef, endpoint: endpoint)
    }
}

/// Reads a socket monitor's events.
public final class HandshakeMonitor {
    let socket: UnsafeMutableRawPointer
    /// Kept until this socket is closed: terminating a context waits for its sockets, so a context released
    /// first (an error thrown right after the monitor is made) would hang the process on exit.
    let context: ZMQContext

    init(context: ZMQContext, endpoint: String) throws {
        guard let s = zmq_socket(context.handle, ZMQ_PAIR) else { throw TransportError("cannot create a monitor socket") }
        var linger: Int32 = 0
        zmq_setsockopt(s, ZMQ_LINGER, &linger, 4)
        guard zmq_connect(s, endpoint) == 0 else { zmq_close(s); throw TransportError("cannot connect the monitor") }
        socket = s
        self.context = context
    }

    deinit { zmq_close(socket) }

    /// Whether the connection dropped since the last `handshakeFailure()` call.
    public private(set) var disconnected = false

    /// A description of the latest handshake failure since the last call, if any (non-blocking); also
    /// updates `disconnected`.
    public func handshakeFailure() -> String? {
        var failure: String?
        disconnected = false
        let msg = UnsafeMutablePointer<zmq_msg_t>.allocate(capacity: 1)
        defer { msg.deallocate() }
        while true {
            zmq_msg_init(msg)
            guard zmq_msg_recv(msg, socket, ZMQ_DONTWAIT) >= 0 else { zmq_msg_close(msg); break }
            let first = Array(UnsafeRawBufferPointer(start: zmq_msg_data(msg), count: zmq_msg_size(msg)))
            let more = zmq_msg_more(msg)
            zmq_msg_close(msg)
            if more != 0 { zmq_msg_init(msg); _ = zmq_msg_recv(msg, socket, 0); zmq_msg_close(msg) }  // endpoint frame
            guard first.count >= 6 else { continue }
            let event = Int32(first[0]) | Int32(first[1]) << 8
            let value = Int32(first[2]) | Int32(first[3]) << 8 | Int32(first[4]) << 16 | Int32(first[5]) << 24
            switch event {
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: failure = "the coordinator refused this worker's key (status \(value)): add this worker's .public file to the coordinator's --authorized-keys folder"
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: failure = "the security handshake failed (protocol error \(value))"
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: failure = "the security handshake failed (\(String(cString: zmq_strerror(value))))"
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED: failure = nil
            case ZMQ_EVENT_DISCONNECTED: disconnected = true
            default: break
            }
        }
        return failure
    }
}
