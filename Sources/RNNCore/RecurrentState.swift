/// The hidden state of every layer for B streams: `h` `[L, B, H]` and, for LSTM, `c` `[L, B, H]`.
/// Carried from one minibatch to the next in truncated BPTT (its gradient is not carried: D2L's detach).
public struct RecurrentState: Equatable, Sendable {
    public let layers: Int, batch: Int, hidden: Int
    public var h: [Float]
    public var c: [Float]

    public init(layers: Int, batch: Int, hidden: Int, hasCell: Bool) {
        self.layers = layers; self.batch = batch; self.hidden = hidden
        h = [Float](repeating: 0, count: layers * batch * hidden)
        c = hasCell ? [Float](repeating: 0, count: layers * batch * hidden) : []
    }

    /// All-zero state for `batch` streams of a model.
    public static func zeros(_ config: ModelConfig, batch: Int) -> RecurrentState {
        RecurrentState(layers: config.layers, batch: batch, hidden: config.hiddenSize, hasCell: config.cell.hasCell)
    }

    public var hasCell: Bool { !c.isEmpty }

    /// The state of streams `columns` (in that order) as a new state of `columns.count` streams.
    public func selecting(columns: [Int]) -> RecurrentState {
        var out = RecurrentState(layers: layers, batch: columns.count, hidden: hidden, hasCell: hasCell)
        for l in 0..<layers {
            for (dst, src) in columns.enumerated() {
                let s = (l * batch + src) * hidden, d = (l * columns.count + dst) * hidden
                for j in 0..<hidden {
                    out.h[d + j] = h[s + j]
                    if hasCell { out.c[d + j] = c[s + j] }
                }
            }
        }
        return out
    }

    /// Writes the streams of `part` into columns `columns` of this state.
    public mutating func assign(columns: [Int], from part: RecurrentState) {
        precondition(part.batch == columns.count && part.layers == layers && part.hidden == hidden,
                     "state part of \(part.batch) streams does not fit \(columns.count) columns")
        for l in 0..<layers {
            for (src, dst) in columns.enumerated() {
                let s = (l * part.batch + src) * hidden, d = (l * batch + dst) * hidden
                for j in 0..<hidden {
                    h[d + j] = part.h[s + j]
                    if hasCell { c[d + j] = part.c[s + j] }
                }
            }
        }
    }

    /// Resets every value to zero (a new sequence).
    public mutating func reset() {
        for i in h.indices { h[i] = 0 }
        for i in c.indices { c[i] = 0 }
    }
}
