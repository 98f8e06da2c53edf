import RNNTrain

/// A protocol-buffer message split into its fields, for tests to read back what `ProtobufWriter` wrote. Written from
/// the wire format's definition, independently of the writer.
struct ProtobufReader {
    enum Value: Equatable {
        case varint(UInt64), fixed64(UInt64), bytes([UInt8]), fixed32(UInt32)
    }

    var fields: [(number: Int, value: Value)] = []

    init(_ bytes: [UInt8]) throws {
        var at = 0
        func varint() throws -> UInt64 {
            var result: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard at < bytes.count, shift < 64 else { throw TrainingError("protobuf: truncated varint") }
                let b = bytes[at]; at += 1
                result |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return result }
                shift += 7
            }
        }
        func little(_ n: Int) throws -> UInt64 {
            guard bytes.count - at >= n else { throw TrainingError("protobuf: truncated fixed field") }
            defer { at += n }
            return (0..<n).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        }
        while at < bytes.count {
            let key = try varint()
            let number = Int(key >> 3)
            switch key & 7 {
            case 0: fields.append((number, .varint(try varint())))
            case 1: fields.append((number, .fixed64(try little(8))))
            case 5: fields.append((number, .fixed32(UInt32(try little(4)))))
            case 2:
                let n = Int(try varint())
                guard bytes.count - at >= n else { throw TrainingError("protobuf: truncated field \(number)") }
                fields.append((number, .bytes(Array(bytes[at..<at + n]))))
                at += n
            default: throw TrainingError("protobuf: wire type \(key & 7) of field \(number)")
            }
        }
    }

    func all(_ number: Int) -> [Value] { fields.filter { $0.number == number }.map(\.value) }
    func first(_ number: Int) -> Value? { all(number).first }

    func message(_ number: Int) throws -> ProtobufReader? {
        guard case .bytes(let b)? = first(number) else { return nil }
        return try ProtobufReader(b)
    }
    func messages(_ number: Int) throws -> [ProtobufReader] {
        var out: [ProtobufReader] = []
        for case .bytes(let b) in all(number) { out.append(try ProtobufReader(b)) }
        return out
    }
    func string(_ number: Int) -> String? {
        guard case .bytes(let b)? = first(number) else { return nil }
        return String(decoding: b, as: UTF8.self)
    }
    func double(_ number: Int) -> Double? {
        guard case .fixed64(let v)? = first(number) else { return nil }
        return Double(bitPattern: v)
    }
    func float(_ number: Int) -> Float? {
        guard case .fixed32(let v)? = first(number) else { return nil }
        return Float(bitPattern: v)
    }
    func int(_ number: Int) -> Int64? {
        guard case .varint(let v)? = first(number) else { return nil }
        return Int64(bitPattern: v)
    }
}
