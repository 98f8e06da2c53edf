import RNNCore
import RNNProtocol
import Testing

@Suite("Message size bounds")
struct MessageBoundsTests {
    @Test("a gradient carrying the state of every stream fits the bound, exactly", arguments: [CellKind.gru, .lstm])
    func gradientWithFullStateFits(_ cell: CellKind) throws {
        let model = ModelConfig(vocabSize: 30, embedSize: 0, hiddenSize: 24, layers: 2, cell: cell, dropout: 0)
        let batch = 64
        let parameters = try LanguageModel(config: model).parameterCount
        let state = model.layers * batch * model.hiddenSize * (model.cell.hasCell ? 2 : 1)  // every stream's carried state
        #expect(state == RecurrentState.zeros(model, batch: batch).h.count + RecurrentState.zeros(model, batch: batch).c.count)
        // With B·H·L large against P, the old bound (8 bytes a parameter + 1 MiB) would not be enough at scale;
        // this one grows with the state.
        #expect(state > parameters / 8)
        let gradient = [Float](repeating: 0.5, count: parameters)
        let frames = gradient.withUnsafeBufferPointer {
            Codec.encodeGradient(runID: 1, step: 1, lossSum: 1, tokens: 1, gradient: $0,
                                 state: [Float](repeating: 0.25, count: state), computeNanos: 0)
        }
        #expect(frames[1].count == MessageBounds.payloadBytes(parameters: parameters, stateValues: state))
        #expect(frames.allSatisfy { Int64($0.count) <= MessageBounds.maxMessageBytes(parameters: parameters, stateValues: state) })
        _ = try Codec.decode(frames, runID: 1, parameterCount: parameters)
    }

    @Test("the bound grows with the state: a huge B·H·L state needs more than the parameters' bytes")
    func stateDominates() {
        let model = ModelConfig(vocabSize: 30, embedSize: 0, hiddenSize: 512, layers: 4, cell: .lstm, dropout: 0)
        let state = model.layers * 4096 * model.hiddenSize * 2
        #expect(state == 4 * 4096 * 512 * 2)
        let parameters = 1_000_000
        #expect(MessageBounds.maxMessageBytes(parameters: parameters, stateValues: state) > Int64(parameters * 8 + 1 << 20))
    }
}
