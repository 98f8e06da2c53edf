import RNNCore

// TEMPORARY (replaced by RNNCore's counter-based dropout when the layers branch merges).
public struct DropoutKey: Sendable, Equatable {
    public var seed: UInt64
    public var step: UInt64
    public init(seed: UInt64, step: UInt64) { self.seed = seed; self.step = step }
}

extension LanguageModel {
    func forwardBackward(inputs: [Int32], targets: [Int32], steps: Int, batch: Int, state: inout RecurrentState,
                         dropout key: DropoutKey?, rows: [Int]) -> LossSum {
        guard let key else { return forwardBackward(inputs: inputs, targets: targets, steps: steps, batch: batch, state: &state) }
        var rng = RandomGenerator(seed: key.seed, stream: 2, index: key.step &* 1_000_003 &+ UInt64(rows.first ?? 0))
        return forwardBackward(inputs: inputs, targets: targets, steps: steps, batch: batch, state: &state, dropout: &rng)
    }
}
