import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One F32 tensor as stored in a safetensors file.
public struct SafeTensor: Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var values: [Float]
    public init(name: String, shape: [Int], values: [Float]) {
        precondition(SafeTensors.elementCount(shape) == values.count, "tensor \(name): shape \(shape) does not hold \(values.count) values")
        self.name = name; self.shape = shape; self.values = values
    }
}

/// A problem with a checkpoint file, worded for the user: which file, what is wrong, what to do.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String
    public init(path: String, _ problem: String) { self.path = path; self.problem = problem }
    public var description: String { "checkpoint \(path): \(problem)" }
}

/// The safetensors format (8-byte little-endian header length, a JSON header, then raw little-endian
/// tensor data), restricted to what rnnlm writes: F32 tensors and a `__metadata__` string map.
public enum SafeTensors {
    /// The number of elements of a tensor of this shape; nil when a dimension is negative or the product overflows.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0, case (let p, false) = n.multipliedReportingOverflow(by: d) else { return nil }
            n = p
        }
        return n
    }

    /// Writes atomically: a temporary file beside `path`, fsync, rename over `path`, fsync the folder.
    /// A crash at any moment leaves either the old file or the new one, never a partial file.
    public static func write(_ tensors: [SafeTensor], metadata: [String: String], to path: String) throws {
        var header: [String: Any] = ["__metadata__": metadata]
        var offset = 0
        for t in tensors {
            let bytes = t.values.count * 4
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        // Pad with spaces so the data starts 8-byte aligned, as the reference implementation does.
        while (8 + json.count) % 8 != 0 { json.append(0x20) }
        var out = Data(capacity: 8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for t in tensors {
            t.values.withUnsafeBufferPointer { buf in
                if Int(1).littleEndian == 1 {
                    out.append(UnsafeBufferPointer(start: UnsafeRawPointer(buf.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                                   count: buf.count * 4))
                } else {
                    for v in buf { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
                }
            }
        }
        try writeAtomically(out, to: path)
    }

    /// Reads and validates every field; any inconsistency is a `CheckpointError` naming the file and the problem.
    public static func read(_ path: String) throws -> (tensors: [SafeTensor], metadata: [String: String]) {
        guard FileManager.default.fileExists(atPath: path) else {
            throw CheckpointError(path: path, "no such file (check --checkpoint / --checkpoint-dir)")
        }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw CheckpointError(path: path, "cannot be read: \(error.localizedDescription)")
        }
        return try parse(data, path: path)
    }

    /// Parses safetensors bytes (separate from `read` so tests can feed corrupted bytes).
    public static func parse(_ data: Data, path: String) throws -> (tensors: [SafeTensor], metadata: [String: String]) {
        let notOurs = "is not a safetensors file (or is truncated)"
        guard data.count >= 8 else { throw CheckpointError(path: path, "\(notOurs): only \(data.count) bytes") }
        let headerLen = data.prefix(8).withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard headerLen >= 2, headerLen <= UInt64(data.count - 8) else {
            throw CheckpointError(path: path, "\(notOurs): header length \(headerLen) does not fit a \(data.count)-byte file")
        }
        let headerData = data.subdata(in: 8..<(8 + Int(headerLen)))
        guard let header = try? JSONSerialization.jsonObject(with: headerData) as? [String: Any] else {
            throw CheckpointError(path: path, "\(notOurs): header is not a JSON object")
        }
        let body = data.count - 8 - Int(headerLen)
        var metadata: [String: String] = [:]
        if let m = header["__metadata__"] {
            guard let mm = m as? [String: String] else {
                throw CheckpointError(path: path, "__metadata__ must map strings to strings")
            }
            metadata = mm
        }
        var entries: [(name: String, shape: [Int], begin: Int, end: Int)] = []
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offs = info["data_offsets"] as? [Int], offs.count == 2 else {
                throw CheckpointError(path: path, "tensor '\(name)' has a malformed header entry")
            }
            guard dtype == "F32" else {
                throw CheckpointError(path: path, "tensor '\(name)' is \(dtype); rnnlm reads F32 tensors only (convert with tensor.float())")
            }
            guard shape.allSatisfy({ $0 >= 0 }), offs[0] >= 0, offs[1] >= offs[0], offs[1] <= body else {
                throw CheckpointError(path: path, "tensor '\(name)' data offsets \(offs) fall outside the \(body)-byte data section (file truncated?)")
            }
            // A crafted header's dimensions can multiply past Int.max: checked, never trapped.
            guard let elements = elementCount(shape), case (let bytes, false) = elements.multipliedReportingOverflow(by: 4) else {
                throw CheckpointError(path: path, "tensor '\(name)' of shape \(shape) has more elements than any file can hold (the product of its dimensions overflows); the header is corrupt or crafted")
            }
            guard bytes == offs[1] - offs[0] else {
                throw CheckpointError(path: path, "tensor '\(name)' of shape \(shape) needs \(bytes) bytes, header gives \(offs[1] - offs[0])")
            }
            entries.append((name, shape, offs[0], offs[1]))
        }
        entries.sort { $0.begin < $1.begin || ($0.begin == $1.begin && $0.name < $1.name) }
        var expected = 0
        for e in entries {
            guard e.begin == expected else {
                throw CheckpointError(path: path, "tensor '\(e.name)' data is not contiguous with the previous tensor (overlap or gap)")
            }
            expected = e.end
        }
        guard expected == body else {
            throw CheckpointError(path: path, "data section has \(body) bytes but the tensors cover \(expected) (file truncated or padded)")
        }
        let base = 8 + Int(headerLen)
        let tensors = data.withUnsafeBytes { raw -> [SafeTensor] in
            entries.map { e in
                let n = (e.end - e.begin) / 4
                var values = [Float](repeating: 0, count: n)
                for i in 0..<n {
                    let bits = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: base + e.begin + 4 * i, as: UInt32.self))
                    values[i] = Float(bitPattern: bits)
                }
                return SafeTensor(name: e.name, shape: e.shape, values: values)
            }
        }
        return (tensors, metadata)
    }
}

/// Temp file beside `path`, write, fsync, rename, fsync the folder.
public func writeAtomically(_ data: Data, to path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let tmp = (dir.isEmpty ? "." : dir) + "/." + (path as NSString).lastPathComponent + ".tmp.\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw CheckpointError(path: path, "cannot create \(tmp): \(String(cString: strerror(errno)))") }
    var ok = true
    data.withUnsafeBytes { raw in
        var done = 0
        while done < raw.count {
            let n = posixWrite(fd, raw.baseAddress! + done, raw.count - done)
            if n <= 0 { if errno == EINTR { continue }; ok = false; break }
            done += n
        }
    }
    let err = errno
    if !ok || fsync(fd) != 0 {
        close(fd); unlink(tmp)
        throw CheckpointError(path: path, "writing failed: \(String(cString: strerror(ok ? errno : err))) (disk full?)")
    }
    close(fd)
    guard rename(tmp, path) == 0 else {
        let e = errno
        unlink(tmp)
        throw CheckpointError(path: path, "cannot rename the temporary file into place: \(String(cString: strerror(e)))")
    }
    let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}

@inline(__always) private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    #if canImport(Glibc)
    return Glibc.write(fd, p, n)
    #else
    return Darwin.write(fd, p, n)
    #endif
}
