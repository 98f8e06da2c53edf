import RNNCore
import Testing

/// The public numeric entry points stop with a message on input that would otherwise read or write outside their
/// buffers: token ids outside the vocabulary, states of the wrong size. Each case runs in a child process (an exit
/// test), since a failed precondition ends the process. (An optimised build drops a precondition's message, so the
/// children's stderr cannot say which check stopped them; the cases are the ones that ran on before the checks.)
@Suite("Shape checks at the API boundary")
struct ShapeCheckTests {
    static func languageModel() -> LanguageModel {
        try! LanguageModel(config: ModelConfig(vocabSize: 5, embedSize: 3, hiddenSize: 4, layers: 2, cell: .lstm))
    }

    static func encoderDecoder() -> EncoderDecoder {
        try! EncoderDecoder(config: EncoderDecoderConfig(sourceVocabSize: 6, targetVocabSize: 7, embedSize: 3,
                                                         hiddenSize: 4, layers: 1, cell: .lstm))
    }

    @Test("well-formed input passes the checks")
    func wellFormedInputRuns() {
        let lm = Self.languageModel()
        var state = RecurrentState.zeros(lm.config, batch: 2)
        #expect(lm.loss(inputs: [0, 1, 2, 4], targets: [1, 2, 3, 4], steps: 2, batch: 2, state: &state).count == 4)
        let ed = Self.encoderDecoder()
        var decoder = ed.encode(source: [3, 4, 5, 1], lengths: [2, 1], steps: 2, batch: 2)
        #expect(ed.decodeStep(tokens: [2, 6], state: &decoder).count == 2 * 7)
    }

    @Test func languageModelStateOfTheWrongSize() async {
        await #expect(processExitsWith: .failure) {
            let lm = ShapeCheckTests.languageModel()
            var state = RecurrentState.zeros(lm.config, batch: 2)
            state.c.removeLast()
            _ = lm.loss(inputs: [0, 1, 2, 3], targets: [1, 2, 3, 4], steps: 2, batch: 2, state: &state)
        }
    }

    @Test func languageModelTokenOutsideTheVocabulary() async {
        await #expect(processExitsWith: .failure) {
            let lm = ShapeCheckTests.languageModel()
            var state = RecurrentState.zeros(lm.config, batch: 2)
            _ = lm.logits(inputs: [0, 1, 5, 3], steps: 2, batch: 2, state: &state)
        }
    }

    @Test func encoderSourceIdOutsideTheVocabulary() async {
        await #expect(processExitsWith: .failure) {
            _ = ShapeCheckTests.encoderDecoder().encode(source: [3, 6], lengths: [2], steps: 2, batch: 1)
        }
    }

    @Test func encoderLengthLongerThanTheSource() async {
        await #expect(processExitsWith: .failure) {
            _ = ShapeCheckTests.encoderDecoder().encode(source: [3, 4], lengths: [3], steps: 2, batch: 1)
        }
    }

    @Test func decoderTokenOutsideTheVocabulary() async {
        await #expect(processExitsWith: .failure) {
            let ed = ShapeCheckTests.encoderDecoder()
            var state = ed.encode(source: [3, 4], lengths: [2], steps: 2, batch: 1)
            _ = ed.decodeStep(tokens: [7], state: &state)
        }
    }

    @Test("an LSTM decoder state without its cell is refused (it ran with a zero cell before)")
    func decoderStateWithoutItsCell() async {
        await #expect(processExitsWith: .failure) {
            let ed = ShapeCheckTests.encoderDecoder()
            var state = ed.encode(source: [3, 4], lengths: [2], steps: 2, batch: 1)
            state.c = []
            _ = ed.decodeStep(tokens: [2], state: &state)
        }
    }
}
