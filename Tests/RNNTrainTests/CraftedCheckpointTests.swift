import Foundation
import RNNCheckpoint
import RNNCore
import Testing

/// Checkpoint headers crafted to overflow: rejected with a `CheckpointError`, never a trap.
@Suite("crafted checkpoint headers")
struct CraftedCheckpointTests {
    /// A safetensors file with this JSON header and `body` bytes of data.
    func file(header: String, body: Int = 0) throws -> String {
        var json = Array(header.utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var bytes = withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) } + json
        bytes += [UInt8](repeating: 0, count: body)
        let path = temporaryDirectory() + "/crafted.safetensors"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("dimensions whose product overflows Int are rejected, by SafeTensors.read and by rnnlm generate")
    func overflowingShape() throws {
        for shape in ["[4294967296, 4294967296]", "[3037000500, 3037000500]", "[9223372036854775807, 2]",
                      "[2305843009213693952]"] {  // the last one overflows only once multiplied by 4 bytes
            let path = try file(header: #"{"w":{"dtype":"F32","shape":\#(shape),"data_offsets":[0,0]}}"#)
            #expect {
                _ = try SafeTensors.read(path)
            } throws: { e in
                (e as? CheckpointError)?.problem.contains("overflows") == true
            }
            let r = try run(try rnnlmBinary(), ["generate", "--checkpoint", path, "--prefix", "the"], timeout: 30)
            #expect(r.status == 1 && r.stderr.contains("overflows"), "status \(r.status): \(r.stderr)")
        }
        #expect(SafeTensors.elementCount([3, 4, 5]) == 60)
        #expect(SafeTensors.elementCount([Int.max, 2]) == nil)
        #expect(SafeTensors.elementCount([-1]) == nil)
    }

    @Test("a record whose model is too large to lay out is rejected before its layout is built")
    func overflowingSpec() throws {
        let config = ModelConfig(vocabSize: 5, embedSize: 3, hiddenSize: 4, layers: 1, cell: .gru)
        let model = try LanguageModel(config: config)
        let ck = Checkpoint(model: config, parameters: model.parameters.array, optimizer: nil, optimizerStep: 0,
                            optimizerSlots: [], state: RecurrentState.zeros(config, batch: 1), extra: Note(step: 0, vocabulary: []))
        let path = temporaryDirectory() + "/big.safetensors"
        try ck.write(to: path)
        var (tensors, metadata) = try SafeTensors.read(path)
        let record = try #require(metadata["rnnlm"])
        #expect(record.contains(#""hiddenSize":4"#))
        metadata["rnnlm"] = record.replacingOccurrences(of: #""hiddenSize":4"#, with: #""hiddenSize":4611686018427387904"#)
        try SafeTensors.write(tensors, metadata: metadata, to: path)
        tensors = []
        #expect {
            _ = try Checkpoint<Note>.read(from: path)
        } throws: { e in
            (e as? CheckpointError)?.problem.contains("larger than rnnlm supports") == true
        }
    }
}
