/// TFRecord framing, the container of TensorBoard event files. Each record is
/// `uint64 length | uint32 masked CRC-32C of the length | data | uint32 masked CRC-32C of the data`, little-endian.
public enum TFRecord {
    /// `data` framed as one record.
    public static func frame(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(data.count + 16)
        let length = littleEndian(UInt64(data.count))
        out += length
        out += littleEndian(CRC32C.masked(length))
        out += data
        out += littleEndian(CRC32C.masked(data))
        return out
    }

    /// The records of a TFRecord stream, in order. Throws on a truncated record or a checksum that does not match.
    public static func records(_ stream: [UInt8]) throws -> [[UInt8]] {
        var records: [[UInt8]] = []
        var at = 0
        while at < stream.count {
            guard stream.count - at >= 12 else { throw TrainingError("TFRecord at byte \(at): truncated length") }
            let lengthBytes = Array(stream[at..<at + 8])
            guard readUInt32(stream, at + 8) == CRC32C.masked(lengthBytes) else {
                throw TrainingError("TFRecord at byte \(at): the length's checksum does not match")
            }
            let length = lengthBytes.reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let start = at + 12
            guard UInt64(stream.count - start) >= length + 4 else { throw TrainingError("TFRecord at byte \(at): truncated data") }
            let data = Array(stream[start..<start + Int(length)])
            guard readUInt32(stream, start + Int(length)) == CRC32C.masked(data) else {
                throw TrainingError("TFRecord at byte \(at): the data's checksum does not match")
            }
            records.append(data)
            at = start + Int(length) + 4
        }
        return records
    }

    static func littleEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.littleEndian) { Array($0) }
    }

    static func readUInt32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }
    }
}
