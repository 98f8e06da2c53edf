import Foundation

/// One line of `metrics.jsonl`: named values in a fixed order (readers and diffs rely on the order), each key and value
/// encoded by `JSONEncoder`, so strings are escaped; a value that is not finite is written as `null`.
public struct MetricsRecord: Sendable {
    public enum Value: Sendable, Equatable {
        case int(Int)
        case double(Double)
        case string(String)
        case null

        /// `nil` → `.null`; numbers that are not finite → `.null`.
        public init(_ any: Any?) {
            switch any {
            case let i as Int: self = .int(i)
            case let d as Double: self = d.isFinite ? .double(d) : .null
            // Through its shortest decimal form, so a learning rate of 0.1 is written 0.1, not 0.10000000149011612.
            case let f as Float: self = f.isFinite ? .double(Double(f.description) ?? Double(f)) : .null
            case let s as String: self = .string(s)
            case nil: self = .null
            default: self = .string("\(any!)")
            }
        }

        /// The value as a number, if it is one.
        public var number: Double? {
            switch self {
            case .int(let i): return Double(i)
            case .double(let d): return d
            case .string, .null: return nil
            }
        }
    }

    public var fields: [(name: String, value: Value)]

    public init(_ fields: [(String, Any?)]) {
        self.fields = fields.map { (name: $0.0, value: Value($0.1)) }
    }

    /// The first value named `name`.
    public subscript(name: String) -> Value? { fields.first { $0.name == name }?.value }

    /// The record as one JSON object, without a line break.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        func encoded<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
        let members = try fields.map { field -> String in
            let value: String
            switch field.value {
            case .int(let i): value = try encoded(i)
            case .double(let d): value = try encoded(d)
            case .string(let s): value = try encoded(s)
            case .null: value = "null"
            }
            return try encoded(field.name) + ":" + value
        }
        return "{" + members.joined(separator: ",") + "}"
    }

    /// Fields that name the record rather than measure training: not TensorBoard scalars.
    static let bookkeeping: Set<String> = ["kind", "step", "epoch", "time", "wall_time"]

    /// The record's measurements as TensorBoard scalars: every numeric field but the bookkeeping ones, tagged
    /// `train/<name>` for a logging interval (`kind` "step") and `epoch/<name>` for an epoch (`epoch/val_perplexity`).
    public var tensorBoardScalars: [(tag: String, value: Float)] {
        let group = self["kind"] == .string("epoch") ? "epoch" : "train"
        return fields.compactMap { field in
            guard !Self.bookkeeping.contains(field.name), let v = field.value.number else { return nil }
            return (tag: group + "/" + field.name, value: Float(v))
        }
    }
}
