import Foundation
import RNNTransport
import Testing

/// The shared-memory slots local workers exchange payloads through: what one mapping writes another reads,
/// whole or not at all.
@Suite("Shared-memory payloads")
struct SharedPayloadTests {
    func path() -> String { NSTemporaryDirectory() + "rnnlm-shm-test-\(UUID().uuidString)" }

    @Test func whatOneMappingWritesAnotherReads() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let coordinator = try SharedPayloadRegion(path: p, capacity: 1000, create: true)
        let worker = try SharedPayloadRegion(path: p, capacity: 1000, create: false)
        #expect(worker.read(.toWorker) == nil, "a slot never written has no payload")
        let a: [UInt8] = Array(0..<200), b: [UInt8] = Array(repeating: 7, count: 800)
        try a.withUnsafeBytes { x in try b.withUnsafeBytes { y in try coordinator.write(.toWorker, [x, y]) } }
        #expect(worker.read(.toWorker) == a + b)
        #expect(coordinator.read(.toCoordinator) == nil, "the slots are separate")
        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try worker.write(.toCoordinator, [$0]) }
        #expect(coordinator.read(.toCoordinator) == [UInt8](repeating: 1, count: 10))
        try [UInt8](repeating: 2, count: 3).withUnsafeBytes { try coordinator.write(.toWorker, [$0]) }
        #expect(worker.read(.toWorker) == [2, 2, 2], "a rewrite replaces the payload and its length")
    }

    /// A payload past a megabyte is copied in two halves at once: every byte still lands in its place.
    @Test func aLargePayloadArrivesWhole() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let n = 3 * (1 << 20) + 13
        let coordinator = try SharedPayloadRegion(path: p, capacity: n + 5, create: true)
        let worker = try SharedPayloadRegion(path: p, capacity: n + 5, create: false)
        let big = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 7) }, tail: [UInt8] = [1, 2, 3, 4, 5]
        try big.withUnsafeBytes { x in try tail.withUnsafeBytes { y in try coordinator.write(.toWorker, [x, y]) } }
        #expect(worker.read(.toWorker) == big + tail)
    }

    /// A local process that truncates a region's file must not crash the coordinator with SIGBUS (its next read of
    /// the mapping past the new end): the coordinator's regions are sealed memfds, and the truncation is refused.
    @Test func aSealedRegionCannotBeTruncatedUnderItsMapping() throws {
        let coordinator = try SharedPayloadRegion(sealedName: "rnnlm-test", capacity: 4096)
        #expect(coordinator.path.hasPrefix("/proc/\(getpid())/fd/"))
        let worker = try SharedPayloadRegion(path: coordinator.path, capacity: 4096, create: false)
        let reader = try SharedPayloadRegion(path: coordinator.path, capacity: 4096, create: false, readOnly: true)
        let payload = [UInt8](repeating: 9, count: 4000)
        try payload.withUnsafeBytes { try worker.write(.toCoordinator, [$0]) }
        try payload.withUnsafeBytes { try coordinator.write(.toWorker, [$0]) }
        // The hostile process: opens the file read-write, as a worker can, and shrinks it (or grows it).
        let fd = open(coordinator.path, O_RDWR)
        #expect(fd >= 0, "a process of the same user opens the region: \(String(cString: strerror(errno)))")
        defer { if fd >= 0 { close(fd) } }
        let shrink = ftruncate(fd, 0), shrinkError = errno
        #expect(shrink == -1 && shrinkError == EPERM, "the seal refuses to shrink the file")
        #expect(truncate(coordinator.path, 100) == -1, "by path too")
        #expect(ftruncate(fd, 1 << 30) == -1, "nor may it grow")
        // On a truncated plain file, these reads are SIGBUS.
        #expect(coordinator.read(.toCoordinator) == payload)
        #expect(reader.read(.toWorker) == payload)
    }

    /// A worker that cannot open the coordinator's region is told why.
    @Test func aSealedRegionOfAnotherFileDescriptorIsAClearError() throws {
        let coordinator = try SharedPayloadRegion(sealedName: "rnnlm-test", capacity: 64)
        let missing = coordinator.path + "999"
        #expect {
            _ = try SharedPayloadRegion(path: missing, capacity: 64, create: false)
        } throws: { "\($0)".contains("cannot map shared memory \(missing)") && "\($0)".contains("No such file") }
    }

    @Test func aPayloadBeingRewrittenIsNotRead() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let r = try SharedPayloadRegion(path: p, capacity: 64, create: true)
        try [UInt8](repeating: 3, count: 64).withUnsafeBytes { try r.write(.toCoordinator, [$0]) }
        r.markWriting(.toCoordinator)
        #expect(r.read(.toCoordinator) == nil)
        try [UInt8](repeating: 4, count: 8).withUnsafeBytes { try r.write(.toCoordinator, [$0]) }
        #expect(r.read(.toCoordinator) == [UInt8](repeating: 4, count: 8), "the next complete write is readable again")
    }

    /// The length field is written by the other process: a hostile or broken one that stores any value (here every
    /// bit set, which does not fit an Int) gets its payload refused, not the reader crashed.
    @Test func aLengthBeyondTheSlotIsRefused() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let r = try SharedPayloadRegion(path: p, capacity: 64, create: true)
        try [UInt8](repeating: 5, count: 16).withUnsafeBytes { try r.write(.toWorker, [$0]) }
        let file = try #require(FileHandle(forUpdatingAtPath: p))
        for bad: UInt64 in [.max, 65, UInt64(Int.max) + 1] {
            try file.seek(toOffset: 8)  // the .toWorker slot's length, after its counter
            try file.write(contentsOf: withUnsafeBytes(of: bad.littleEndian) { Data($0) })
            #expect(r.read(.toWorker) == nil, "length \(bad)")
        }
        try file.close()
    }

    /// The shared weights region is mapped read-only by the workers: they read what the coordinator wrote and
    /// cannot write it themselves.
    @Test func aReadOnlyMappingReads() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let coordinator = try SharedPayloadRegion(path: p, capacity: 32, create: true)
        let worker = try SharedPayloadRegion(path: p, capacity: 32, create: false, readOnly: true)
        #expect(!worker.writable && coordinator.writable)
        try [UInt8](repeating: 9, count: 32).withUnsafeBytes { try coordinator.write(.toWorker, [$0]) }
        #expect(worker.read(.toWorker) == [UInt8](repeating: 9, count: 32))
    }

    /// A read in place that lasts (a worker computing from the shared weights) is trusted only if the slot was not
    /// written meanwhile: a rewrite, even of the same bytes, or a writer caught mid-copy, makes it untrustworthy.
    @Test func aLongReadInPlaceNoticesARewrite() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let coordinator = try SharedPayloadRegion(path: p, capacity: 64, create: true)
        let worker = try SharedPayloadRegion(path: p, capacity: 64, create: false, readOnly: true)
        #expect(worker.beginRead(.toWorker) == nil, "a slot never written has no payload")
        let bytes = [UInt8](repeating: 6, count: 48)
        try bytes.withUnsafeBytes { try coordinator.write(.toWorker, [$0]) }
        let whole = try #require(worker.beginRead(.toWorker))
        #expect(Array(whole.payload) == bytes, "read where it lies")
        #expect(worker.isUnchanged(whole) && worker.isUnchanged(whole))
        let torn = try #require(worker.beginRead(.toWorker))
        try bytes.withUnsafeBytes { try coordinator.write(.toWorker, [$0]) }  // the coordinator moved on
        #expect(!worker.isUnchanged(torn), "a rewrite while the payload was in use")
        coordinator.markWriting(.toWorker)
        #expect(worker.beginRead(.toWorker) == nil, "a payload being written is not begun")
    }

    /// A payload written in place (a worker's gradient computed straight into its slot) is invisible from the
    /// start of the write to its end, then readable whole; one too long for the slot leaves no payload at all.
    @Test func aPayloadWrittenInPlaceIsReadOnlyOnceWhole() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let coordinator = try SharedPayloadRegion(path: p, capacity: 100, create: true)
        let worker = try SharedPayloadRegion(path: p, capacity: 100, create: false)
        try [UInt8](repeating: 1, count: 10).withUnsafeBytes { try worker.write(.toCoordinator, [$0]) }
        let area = worker.beginWrite(.toCoordinator)
        #expect(area.count == 100 && Int(bitPattern: area.baseAddress!) % 64 == 0)
        #expect(coordinator.read(.toCoordinator) == nil, "being written")
        for i in 0..<12 { area[i] = UInt8(i) }
        #expect(coordinator.read(.toCoordinator) == nil, "still being written")
        try worker.endWrite(.toCoordinator, length: 12)
        #expect(coordinator.read(.toCoordinator) == (0..<12).map { UInt8($0) })
        let again = worker.beginWrite(.toCoordinator)
        again[0] = 99
        #expect(throws: TransportError.self) { try worker.endWrite(.toCoordinator, length: 101) }
        #expect(coordinator.read(.toCoordinator) == [], "an abandoned write leaves an empty payload, never a stale or partial one")
    }

    @Test func errorsNameTheProblem() throws {
        let p = path()
        defer { try? FileManager.default.removeItem(atPath: p) }
        let r = try SharedPayloadRegion(path: p, capacity: 16, create: true)
        #expect(throws: TransportError.self) { try [UInt8](repeating: 0, count: 17).withUnsafeBytes { try r.write(.toWorker, [$0]) } }
        do {
            _ = try SharedPayloadRegion(path: p + "-missing", capacity: 16, create: false)
            Issue.record("opening a missing file must fail")
        } catch {
            #expect("\(error)".contains("-missing"), "\(error)")
        }
        do {
            _ = try SharedPayloadRegion(path: p, capacity: 4096, create: false)
            Issue.record("a file smaller than the capacity must be refused")
        } catch {
            #expect("\(error)".contains("cannot map"), "\(error)")
        }
    }
}
