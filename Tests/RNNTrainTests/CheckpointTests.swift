import Foundation
import RNNCheckpoint
import RNNCore
import Testing

struct Note: Codable, Equatable { var step: Int; var vocabulary: [String] }

func temporaryDirectory() -> String {
    let dir = NSTemporaryDirectory() + "rnnlm-test-\(UUID().uuidString)"
    try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}

@Suite("safetensors checkpoints")
struct CheckpointTests {
    func sample() throws -> Checkpoint<Note> {
        let config = ModelConfig(vocabSize: 5, embedSize: 3, hiddenSize: 4, layers: 2, cell: .lstm)
        let model = try LanguageModel(config: config)
        var rng = RandomGenerator(seed: 3)
        model.initialize(.pytorch, rng: &rng)
        let opt = Optimizer(.adam(beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0), parameterCount: model.parameterCount)
        for i in 0..<model.parameterCount { model.gradients[i] = rng.uniform(-1, 1) }
        opt.update(params: model.parameters, grads: model.gradients, lr: 0.01)
        var state = RecurrentState.zeros(config, batch: 2)
        for i in state.h.indices { state.h[i] = rng.uniform(-1, 1); state.c[i] = rng.uniform(-1, 1) }
        return Checkpoint(model: config, parameters: model.parameters.array, optimizer: opt.kind, optimizerStep: opt.step,
                          optimizerSlots: opt.slots.map(\.array), state: state,
                          extra: Note(step: 17, vocabulary: ["<unk>", " ", "e", "t", "\"quoted\"\n"]))
    }

    @Test func roundTripIsBitIdentical() throws {
        let dir = temporaryDirectory(), path = dir + "/a.safetensors"
        let ck = try sample()
        try ck.write(to: path)
        let back = try Checkpoint<Note>.read(from: path)
        #expect(back.parameters.map(\.bitPattern) == ck.parameters.map(\.bitPattern))
        #expect(back.optimizerSlots.map { $0.map(\.bitPattern) } == ck.optimizerSlots.map { $0.map(\.bitPattern) })
        #expect(back == ck)
        // No temporary file is left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["a.safetensors"])
    }

    @Test("a record holding an infinite or NaN value (a validation perplexity that overflowed) is written and read back")
    func nonFiniteRecordValuesRoundTrip() throws {
        struct Scores: Codable, Equatable { var perplexity: Double; var worst: Double; var unknown: Double }
        let base = try sample()
        let ck = Checkpoint(model: ModelConfig(vocabSize: 5, embedSize: 3, hiddenSize: 4, layers: 2, cell: .lstm),
                            parameters: base.parameters, optimizer: base.optimizer, optimizerStep: base.optimizerStep,
                            optimizerSlots: base.optimizerSlots, state: nil,
                            extra: Scores(perplexity: .infinity, worst: -.infinity, unknown: .nan))
        let path = temporaryDirectory() + "/inf.safetensors"
        try ck.write(to: path)
        let back = try Checkpoint<Scores>.read(from: path)
        #expect(back.extra.perplexity == .infinity && back.extra.worst == -.infinity && back.extra.unknown.isNaN)
    }

    @Test func headerIsStandardSafetensors() throws {
        let path = temporaryDirectory() + "/b.safetensors"
        try sample().write(to: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = Int(data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        #expect((8 + n) % 8 == 0)
        let header = try #require(try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any])
        let w = try #require(header["rnn.weight_hh_l1"] as? [String: Any])
        #expect(w["dtype"] as? String == "F32")
        #expect(w["shape"] as? [Int] == [16, 4])
    }

    @Test func truncatedFileIsRejectedByName() throws {
        let path = temporaryDirectory() + "/c.safetensors"
        try sample().write(to: path)
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        for cut in [0, 4, 8, 40, data.count / 2, data.count - 1] {
            let e = #expect(throws: CheckpointError.self) { try SafeTensors.parse(data.prefix(cut), path: path) }
            #expect(e?.description.contains(path) == true)
            #expect(e?.description.contains("truncated") == true, "cut \(cut): \(e?.description ?? "")")
        }
    }

    @Test func foreignFilesAreRejected() throws {
        let dir = temporaryDirectory()
        let text = dir + "/notes.txt"
        try "hello, this is not a checkpoint at all".write(toFile: text, atomically: true, encoding: .utf8)
        #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: text) }
        // A valid safetensors file that rnnlm did not write (no rnnlm record).
        let bare = dir + "/bare.safetensors"
        try SafeTensors.write([SafeTensor(name: "w", shape: [2], values: [1, 2])], metadata: [:], to: bare)
        let e = #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: bare) }
        #expect(e?.problem.contains("not written by rnnlm") == true)
        #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: dir + "/missing.safetensors") }
    }

    @Test func wrongShapeOrMissingTensorIsRejected() throws {
        let dir = temporaryDirectory(), path = dir + "/d.safetensors"
        try sample().write(to: path)
        var (tensors, metadata) = try SafeTensors.read(path)
        metadata["rnnlm_crc32"] = nil  // the data changes below on purpose: test the shape checks, not the checksum
        let i = try #require(tensors.firstIndex { $0.name == "decoder.bias" })
        tensors[i] = SafeTensor(name: "decoder.bias", shape: [6], values: [0, 0, 0, 0, 0, 0])
        try SafeTensors.write(tensors, metadata: metadata, to: path)
        let e = #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: path) }
        #expect(e?.problem.contains("decoder.bias") == true)
        tensors.remove(at: i)
        try SafeTensors.write(tensors, metadata: metadata, to: path)
        let m = #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: path) }
        #expect(m?.problem.contains("missing tensor 'decoder.bias'") == true)
        metadata["rnnlm"] = "{\"format\": \"rnnlm-checkpoint\", \"version\": 99}"
        #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: path) }
    }

    @Test func nonFiniteParametersAreRejected() throws {
        let path = temporaryDirectory() + "/e.safetensors"
        var ck = try sample()
        ck.parameters[3] = .nan
        try ck.write(to: path)
        let e = #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: path) }
        #expect(e?.problem.contains("NaN") == true)
        // The carried state too: a resume from it failed a step later, as divergence, pointing back to the checkpoint.
        var state = try sample()
        let h = try #require(state.carried.firstIndex { $0.name == "state.h" })
        state.carried[h].values[1] = .infinity
        try state.write(to: path)
        let carried = #expect(throws: CheckpointError.self) { try Checkpoint<Note>.read(from: path) }
        #expect(carried?.problem.contains("carried state.h contains NaN or Inf") == true, "\(String(describing: carried))")
    }
}
