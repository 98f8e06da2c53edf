import Foundation
import RNNCheckpoint
import RNNCore
import RNNProtocol
import RNNText
import RNNTrain
import Testing

/// Files and peers of the previous release: a format-1 checkpoint still loads, generates and resumes; a worker
/// that speaks another protocol version is refused with both versions named.
@Suite("Format and protocol versions")
struct FormatVersionTests {
    /// Written by rnnlm 0.1 (checkpoint format 1): `rnnlm train --dataset timemachine --max-tokens 3000 --model lstm
    /// --layers 2 --embed 4 --hidden 6 --batch-size 4 --num-steps 5 --epochs 1 --seed 3 --optimizer adam --lr 0.01`.
    static let v1Path = Bundle.module.path(forResource: "v1-lstm", ofType: "safetensors", inDirectory: "Fixtures")!

    @Test("a format-1 checkpoint loads with its model, optimizer state, carried state and record")
    func formatOneLoads() throws {
        let ck = try Checkpoint<TrainingRecord>.read(from: Self.v1Path)
        let config = try #require(ck.model)
        #expect(config.cell == .lstm && config.layers == 2 && config.embedSize == 4 && config.hiddenSize == 6)
        #expect(ck.parameters.count == ck.layout.count && ck.optimizerSlots.count == 2)
        #expect(ck.extra.step == 149 && ck.extra.epoch == 1)
        let state = try #require(ck.state)
        #expect(state.batch == 4 && state.hasCell && state.h.contains { $0 != 0 })
        let data = try LanguageModelTask.dataRecord(ck.extra.task)
        #expect(data.vocabulary.count == config.vocabSize && data.tokenizer.kind == .char)
        // Generation reads it as the previous release did (its own output for this call).
        let m = try TrainedModel(checkpointPath: Self.v1Path)
        #expect(try m.generate(prefix: "time traveller", count: 30, decoding: .sample(temperature: 1, topK: 0, seed: 4))
                == "time travellero a in  aaiuh shathoplahpannao")
    }

    @Test("a format-1 checkpoint resumes, and the next checkpoint is written in format 2")
    func formatOneResumes() throws {
        let ck = try Checkpoint<TrainingRecord>.read(from: Self.v1Path)
        var o = ck.extra.options
        o.epochs = 2
        o.checkpointDir = temporaryDirectory()
        let task = try TaskRegistry.task(resuming: ck.extra.task, options: o, dataDir: sharedDataDirectory())
        var resumed = ck
        resumed.extra.options = o
        let trainer = try Trainer(resuming: resumed, task: task, log: { _ in })
        #expect(trainer.carried == (try task.carried(from: ck.carried)))
        try trainer.run()
        #expect(trainer.record.epoch == 2 && trainer.record.step > 149)
        let written = try #require(latestCheckpoint(in: o.checkpointDir!))
        let json = try #require(try SafeTensors.read(written).metadata["rnnlm"])
        #expect(json.contains("\"version\":2") && json.contains("\"spec\""))
        let back = try Checkpoint<TrainingRecord>.read(from: written)
        #expect(back.spec == ck.spec && back.extra.task == ck.extra.task)
    }

    @Test("a checkpoint whose tensor list does not match its model spec is refused, naming the tensor")
    func mismatchedTensorListRefused() throws {
        let ck = try Checkpoint<TrainingRecord>.read(from: Self.v1Path)
        let path = temporaryDirectory() + "/bad.safetensors"
        // Write a format-2 file, then change the hidden width its record states: the tensors no longer fit.
        try ck.write(to: path)
        var (tensors, meta) = try SafeTensors.read(path)
        var record = try #require(try JSONSerialization.jsonObject(with: Data(meta["rnnlm"]!.utf8)) as? [String: Any])
        var spec = try #require(record["spec"] as? [String: Any])
        var lm = try #require(spec["languageModel"] as? [String: Any])
        var config = try #require(lm["_0"] as? [String: Any])
        config["hiddenSize"] = 7
        lm["_0"] = config; spec["languageModel"] = lm; record["spec"] = spec
        meta["rnnlm"] = String(decoding: try JSONSerialization.data(withJSONObject: record), as: UTF8.self)
        tensors = tensors.filter { _ in true }
        try SafeTensors.write(tensors, metadata: meta, to: path)
        let e = #expect(throws: CheckpointError.self) { try Checkpoint<TrainingRecord>.read(from: path) }
        #expect(e?.description.contains("tensor list does not match") == true, "\(e?.description ?? "no error")")
    }

    @Test("a hello in protocol version 1 is answered with a version-1 stop naming both versions")
    func olderWorkerRefused() throws {
        var machine = CoordinatorMachine(runID: 9, expectedWorkers: 1, batchSize: 4, parameterCount: 3,
                                         stateValuesPerStream: 2, joinTimeout: 10, stepTimeout: 10, now: 0)
        var hello = Codec.encode(.hello(WorkerHello(name: "old", host: "h", pid: 1, protocolVersion: 1)))
        hello[0][4] = 1; hello[0][5] = 0  // the header of a version-1 peer
        let actions = machine.handle(.received(peer: [1], frames: hello, now: 1))
        let reply = try #require(actions.compactMap { a -> [[UInt8]]? in
            if case .sendFrames(let p, let f) = a, p == [1] { return f } else { return nil } }.first)
        #expect(Codec.declaredVersion(reply[0]) == 1)
        // Decoded as a version-1 peer would: the header is unchanged, so patch the version to ours to read it.
        var readable = reply
        readable[0][4] = UInt8(Header.version & 0xFF); readable[0][5] = UInt8(Header.version >> 8)
        guard case .stop(_, let reason) = try Codec.decode(readable) else { Issue.record("not a stop"); return }
        #expect(reason.contains("version 1") && reason.contains("version \(Header.version)"), "\(reason)")
        #expect(actions.contains { if case .log(let l) = $0 { return l.contains("version 1") } else { return false } })
    }
}
