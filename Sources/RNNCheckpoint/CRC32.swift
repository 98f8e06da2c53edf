/// CRC-32 (IEEE 802.3, zlib's `crc32`): the checksum a checkpoint records over its data section, so a flipped byte
/// in a tensor is caught at load time rather than trained on. `zlib.crc32(data_section)` in Python gives the same value.
public struct CRC32 {
    public private(set) var value: UInt32 = 0

    public init() {}

    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    /// Continues the checksum over `bytes` (so a data section can be fed tensor by tensor).
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var c = ~value
        Self.table.withUnsafeBufferPointer { t in
            for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        }
        value = ~c
    }

    /// Continues over the little-endian bytes of `values`, as safetensors stores F32 data.
    public mutating func update(_ values: [Float]) {
        if Int(1).littleEndian == 1 {
            values.withUnsafeBytes { update($0) }
        } else {
            for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { update($0) } }
        }
    }

    /// The value as 8 lowercase hex digits, as the checkpoint's metadata records it.
    public var hex: String {
        let s = String(value, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
