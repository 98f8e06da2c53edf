import CLinux
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// A file-backed shared-memory channel between the coordinator and one worker on the same host, carrying the
/// large payloads (weights out, gradients back) that would otherwise cross ZeroMQ: no socket copies, no hand-off
/// through ZeroMQ's I/O threads. The small message headers still travel over ZeroMQ, flagged "payload in shared
/// memory", so ordering, liveness, heartbeats and errors work exactly as without it. The run's shared weights
/// region is one more of these, of which only the `.toWorker` slot is used: a synchronous run's parameters live
/// there (the coordinator's update writes them in place), and every local worker computes from them through its own
/// read-only mapping.
///
/// Two slots, one per direction, each `[counter, length, payload…]` under a seqlock: a reader that catches the
/// writer mid-copy gets nil instead of a torn payload. A payload can also be used in place for longer
/// (`beginRead`/`isUnchanged`: a worker's compute from the weights) or written in place (`beginWrite`/`endWrite`:
/// a worker's gradient computed straight into its slot), under the same seqlock.
public final class SharedPayloadRegion {
    public enum Slot: Int { case toWorker = 0, toCoordinator = 1 }
    public let path: String
    /// Payload bytes each slot holds.
    public let capacity: Int
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int
    private let stride: Int
    private static let headerBytes = 64  // counter and length, on their own cache line
    /// Counts the payload bytes this side writes (sent) and reads back whole (received), when set.
    public var meter: TrafficMeter?

    /// Whether this mapping may write (a worker maps the run's shared weights region read-only).
    public let writable: Bool
    /// A sealed region's file descriptor, open while the region lives (it is what `path` names).
    private let descriptor: Int32?

    /// Creates (`create`) or opens (a worker) the region file at `path`; `readOnly` maps an opened file without
    /// write access (the shared weights, which no worker may change for the others). A created plain file can be
    /// truncated by any process that can open it, which turns this mapping's next access into SIGBUS: the coordinator
    /// creates its regions with `init(sealedName:capacity:)` instead.
    public init(path: String, capacity: Int, create: Bool, readOnly: Bool = false) throws {
        precondition(!(create && readOnly), "a region is created writable")
        precondition(capacity > 0, "a shared payload region needs a positive capacity")
        self.path = path
        self.capacity = capacity
        stride = Self.stride(capacity)
        mappedBytes = 2 * stride
        writable = !readOnly
        descriptor = nil
        guard let p = rnnlm_map_shared(path, UInt64(mappedBytes), create ? 1 : readOnly ? 2 : 0) else {
            throw TransportError(message: "cannot map shared memory \(path) (\(mappedBytes) bytes): \(String(cString: strerror(errno)))")
        }
        base = p
    }

    /// Creates a region (the coordinator's side) in an anonymous shared-memory file sealed against shrinking and
    /// growing (`memfd_create`, `F_SEAL_SHRINK | F_SEAL_GROW`): no process can truncate it under the mapping, so a
    /// buggy or hostile local process cannot kill the coordinator with SIGBUS. Its `path` is
    /// `/proc/PID/fd/FD`, which workers of the same user open with `init(path:capacity:create: false)`.
    /// `name` labels the file (it shows in /proc/PID/maps).
    public init(sealedName name: String, capacity: Int) throws {
        precondition(capacity > 0, "a shared payload region needs a positive capacity")
        self.capacity = capacity
        stride = Self.stride(capacity)
        mappedBytes = 2 * stride
        writable = true
        var fd: Int32 = -1
        guard let p = rnnlm_map_sealed(name, UInt64(mappedBytes), &fd) else {
            throw TransportError(message: "cannot create sealed shared memory \(name) (\(mappedBytes) bytes): \(String(cString: strerror(errno)))")
        }
        base = p
        descriptor = fd
        path = "/proc/\(getpid())/fd/\(fd)"
    }

    private static func stride(_ capacity: Int) -> Int { headerBytes + (capacity + 63) / 64 * 64 }

    deinit {
        rnnlm_unmap_shared(base, UInt64(mappedBytes))
        if let fd = descriptor { close(fd) }
    }

    private func counter(_ s: Slot) -> UnsafeMutablePointer<UInt64> {
        (base + s.rawValue * stride).assumingMemoryBound(to: UInt64.self)
    }

    /// Writes `parts`, concatenated, as the slot's payload.
    public func write(_ s: Slot, _ parts: [UnsafeRawBufferPointer]) throws {
        precondition(writable, "\(path) is mapped read-only")
        let total = parts.reduce(0) { $0 + $1.count }
        guard total <= capacity else {
            throw TransportError(message: "a \(total)-byte payload does not fit the \(capacity)-byte shared memory slot of \(path)")
        }
        let c = counter(s)
        let odd = rnnlm_seq_begin_read(c) | 1
        rnnlm_seq_begin_write(c, odd)
        (c + 1).pointee = UInt64(total)
        var at = UnsafeMutableRawPointer(c) + Self.headerBytes
        for p in parts where p.count > 0 {
            Self.copy(to: at, from: p)
            at += p.count
        }
        rnnlm_seq_end_write(c, odd &+ 1)
        meter?.didSend(total)
    }

    /// Copies `source` to `destination`, a large payload in two halves at once (the coordinator's broadcast, which
    /// the workers wait for: one core alone does not reach the memory's bandwidth here).
    private static func copy(to destination: UnsafeMutableRawPointer, from source: UnsafeRawBufferPointer) {
        let n = source.count, parallelBytes = 1 << 20
        guard n >= parallelBytes else { destination.copyMemory(from: source.baseAddress!, byteCount: n); return }
        let half = (n / 2 + 63) / 64 * 64
        let d = UnsafeSendableRaw(destination), s = UnsafeSendableRaw(UnsafeMutableRawPointer(mutating: source.baseAddress!))
        DispatchQueue.concurrentPerform(iterations: 2) { k in
            let lo = k == 0 ? 0 : half, hi = k == 0 ? half : n
            (d.base + lo).copyMemory(from: s.base + lo, byteCount: hi - lo)
        }
    }

    /// The slot's payload, or nil when it was never written or was being rewritten while read.
    public func read(_ s: Slot) -> [UInt8]? { withPayload(s) { [UInt8]($0) } }

    /// `body`'s result on the slot's payload read in place (no copy), or nil when the slot was never written or
    /// was rewritten while `body` ran, in which case whatever `body` made of the bytes must be thrown away.
    /// `metered: false` leaves the traffic count to the caller (which reads only part of the payload).
    public func withPayload<R>(_ s: Slot, metered: Bool = true, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R? {
        let c = counter(s)
        let before = rnnlm_seq_begin_read(c)
        guard before != 0, before & 1 == 0 else { return nil }
        let length = (c + 1).pointee  // written by the other side: checked before any use
        guard length <= UInt64(capacity) else { return nil }
        let n = Int(length)
        let result = try body(UnsafeRawBufferPointer(start: UnsafeRawPointer(c) + Self.headerBytes, count: n))
        guard rnnlm_seq_end_read(c) == before else { return nil }
        if metered { meter?.didReceive(n) }
        return result
    }

    /// A read of a slot's payload in place that outlasts one call (a worker computing straight from the shared
    /// weights): the payload as it was when the read began, trustworthy only if `isUnchanged` says so afterwards.
    public struct InPlaceRead {
        public let slot: Slot
        /// The payload's bytes in the mapping (read-only for a worker's shared weights).
        public let payload: UnsafeRawBufferPointer
        let counter: UInt64
    }

    /// Begins reading the slot's payload where it lies; nil when the slot was never written or is being written.
    /// Whatever is computed from `payload` must be thrown away unless `isUnchanged` is true once it is done.
    public func beginRead(_ s: Slot) -> InPlaceRead? {
        let c = counter(s)
        let before = rnnlm_seq_begin_read(c)
        guard before != 0, before & 1 == 0 else { return nil }
        let length = (c + 1).pointee  // written by the other side: checked before any use
        guard length <= UInt64(capacity) else { return nil }
        return InPlaceRead(slot: s, payload: UnsafeRawBufferPointer(start: UnsafeRawPointer(c) + Self.headerBytes,
                                                                    count: Int(length)), counter: before)
    }

    /// Whether the slot has not been written since `read` began, so everything read from its payload meanwhile
    /// was the payload whole (a seqlock read's second counter check, after a read that may have lasted long).
    public func isUnchanged(_ read: InPlaceRead) -> Bool {
        guard rnnlm_seq_end_read(counter(read.slot)) == read.counter else { return false }
        meter?.didReceive(read.payload.count)
        return true
    }

    /// Begins writing the slot's payload in place (a worker computing its gradient straight into its slot): from
    /// now until `endWrite`, a reader of the slot gets nil. Returns the slot's payload area, `capacity` bytes,
    /// 64-byte aligned.
    public func beginWrite(_ s: Slot) -> UnsafeMutableRawBufferPointer {
        precondition(writable, "\(path) is mapped read-only")
        let c = counter(s)
        rnnlm_seq_begin_write(c, rnnlm_seq_begin_read(c) | 1)
        return UnsafeMutableRawBufferPointer(start: UnsafeMutableRawPointer(c) + Self.headerBytes, count: capacity)
    }

    /// Ends a `beginWrite`: the payload is the area's first `length` bytes, readable from now on.
    public func endWrite(_ s: Slot, length: Int) throws {
        let c = counter(s)
        let odd = rnnlm_seq_begin_read(c)
        precondition(odd & 1 == 1, "endWrite without beginWrite on \(path)")
        guard length >= 0, length <= capacity else {
            (c + 1).pointee = 0  // the area holds part of something: no payload a reader could take for whole
            rnnlm_seq_end_write(c, odd &+ 1)
            throw TransportError(message: "a \(length)-byte payload does not fit the \(capacity)-byte shared memory slot of \(path)")
        }
        (c + 1).pointee = UInt64(length)
        rnnlm_seq_end_write(c, odd &+ 1)
        meter?.didSend(length)
    }

    /// Simulates a writer caught mid-copy (tests).
    public func markWriting(_ s: Slot) { rnnlm_seq_begin_write(counter(s), rnnlm_seq_begin_read(counter(s)) | 1) }
}

/// A raw pointer handed to the two halves of a parallel copy (disjoint ranges).
private struct UnsafeSendableRaw: @unchecked Sendable {
    let base: UnsafeMutableRawPointer
    init(_ base: UnsafeMutableRawPointer) { self.base = base }
}
