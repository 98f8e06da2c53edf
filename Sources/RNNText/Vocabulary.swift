/// Token ↔ index map, D2L's `Vocab`: index 0 is `<unk>`, then the reserved tokens, then every token with
/// at least `minFreq` occurrences by decreasing frequency; ties keep first-occurrence order (as D2L's stable
/// sort over a `Counter`), so the same text always gives the same vocabulary.
public struct Vocabulary: Equatable, Sendable, Codable {
    public let tokens: [String]
    private let index: [String: Int32]

    public static let unknown = "<unk>"

    public init(tokens: [String]) {
        self.tokens = tokens
        var idx: [String: Int32] = [:]
        for (i, t) in tokens.enumerated() where idx[t] == nil { idx[t] = Int32(i) }
        index = idx
    }

    public init(counting stream: [String], minFreq: Int = 1, reserved: [String] = []) {
        var counts: [String: Int] = [:]
        var order: [String] = []
        for t in stream {
            if let c = counts[t] { counts[t] = c + 1 } else { counts[t] = 1; order.append(t) }
        }
        let firstSeen = Dictionary(uniqueKeysWithValues: order.enumerated().map { ($1, $0) })
        let sorted = order.sorted { a, b in
            let (ca, cb) = (counts[a]!, counts[b]!)
            return ca != cb ? ca > cb : firstSeen[a]! < firstSeen[b]!
        }
        var list = [Self.unknown] + reserved
        var seen = Set(list)
        for t in sorted where counts[t]! >= minFreq && !seen.contains(t) {
            list.append(t); seen.insert(t)
        }
        self.init(tokens: list)
    }

    public var count: Int { tokens.count }

    /// Whether `token` has an index of its own (otherwise it reads as `<unk>`).
    public func contains(_ token: String) -> Bool { index[token] != nil }

    /// Index of `token`, or of `<unk>` when it is not in the vocabulary.
    public func id(_ token: String) -> Int32 { index[token] ?? 0 }

    public func ids(_ stream: [String]) -> [Int32] { stream.map(id) }

    public func token(_ id: Int32) -> String { tokens[Int(id)] }

    enum CodingKeys: CodingKey { case tokens }
    public init(from decoder: Decoder) throws {
        self.init(tokens: try decoder.container(keyedBy: CodingKeys.self).decode([String].self, forKey: .tokens))
    }
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(tokens, forKey: .tokens)
    }
}
