import Foundation
import RNNCheckpoint
import RNNDistributed
import RNNTrain
import Testing

/// Storage faults: damaged checkpoints at `--resume`, a full disk while saving, and the best model kept apart.
@Suite("Checkpoint faults: bad files at resume, a full disk, the best model", .serialized)
struct CheckpointFaultTests {
    func options(_ configure: (inout TrainOptions) -> Void = { _ in }) -> TrainOptions {
        timeMachineOptions {
            $0.maxTokens = 3000; $0.hidden = 16; $0.batchSize = 4; $0.epochs = 3
            configure(&$0)
        }
    }

    func run(_ start: TrainingRun.Start, _ output: CollectedOutput = CollectedOutput()) throws -> RunSummary {
        var s = TrainingRun.Settings(start: start)
        s.dataDir = sharedDataDirectory()
        return try TrainingRun(settings: s, output: output.sink, stop: .never).run()
    }

    func resume(_ dir: String, epochs: Int) -> TrainingRun.Start {
        .resume(checkpointDir: dir, reconcile: { var o = $0; o.epochs = epochs; return o },
                otherwise: { throw TrainingError("test: expected a checkpoint in \(dir)") })
    }

    /// A folder with the step checkpoints of epochs 1, 2 and 3, oldest first.
    func threeEpochs() throws -> (dir: String, files: [String]) {
        let dir = temporaryDirectory() + "/ck"
        _ = try run(.new(options { $0.checkpointDir = dir }))
        let files = checkpointFiles(in: dir).map(\.path)
        try #require(files.count == 3)
        return (dir, files)
    }

    enum Damage: CaseIterable { case truncated, flippedByte, wrongShape }

    func damage(_ path: String, _ how: Damage) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        switch how {
        case .truncated:
            try data.prefix(data.count * 2 / 3).write(to: URL(fileURLWithPath: path))
        case .flippedByte:
            var d = data
            d[d.count - 37] ^= 0x10  // inside the last tensor's data: only the checksum can tell
            try d.write(to: URL(fileURLWithPath: path))
        case .wrongShape:
            // Same bytes, one tensor's shape transposed: a well-formed safetensors file whose model does not fit.
            let (tensors, metadata) = try SafeTensors.read(path)
            let reshaped = tensors.map { t in
                t.shape.count == 2 && t.shape[0] != t.shape[1] && !t.name.hasPrefix("optimizer.")
                    ? SafeTensor(name: t.name, shape: [t.shape[1], t.shape[0]], values: t.values) : t
            }
            try #require(reshaped != tensors)
            try SafeTensors.write(reshaped, metadata: metadata, to: path)
        }
    }

    @Test("a damaged newest checkpoint is set aside as .bad, reported, and the one before it resumes",
          arguments: Damage.allCases)
    func setsAsideDamagedNewest(_ how: Damage) throws {
        let (dir, files) = try threeEpochs()
        try damage(files[2], how)
        #expect(throws: CheckpointError.self) { try Checkpoint<TrainingRecord>.read(from: files[2]) }
        let output = CollectedOutput()
        let summary = try run(resume(dir, epochs: 4), output)
        #expect(summary.outcome == .trained && summary.epochs == 4)
        #expect(FileManager.default.fileExists(atPath: files[2] + ".bad"))
        #expect(output.standardError.contains("checkpoint \(files[2]):") && output.standardError.contains("set aside as \(files[2]).bad"),
                "\(output.standardError)")
        #expect(output.lines.contains { $0.hasPrefix("resuming \(files[1]): step ") && $0.hasSuffix(", after epoch 2") }, "\(output.standardOutput)")
        // The set-aside file is no longer a checkpoint of the folder.
        #expect(!checkpointFiles(in: dir).map(\.path).contains(files[2] + ".bad"))
    }

    @Test("when no checkpoint in the folder is valid, --resume is a clear error naming them, not a new run")
    func noneValid() throws {
        let (dir, files) = try threeEpochs()
        for (f, how) in zip(files, Damage.allCases) { try damage(f, how) }
        do {
            _ = try run(resume(dir, epochs: 4))
            Issue.record("resumed from damaged checkpoints")
        } catch {
            #expect("\(error)".contains("none of the 3 checkpoint(s) in \(dir) is valid"), "\(error)")
            #expect("\(error)".contains(files[0] + ".bad"))
        }
        #expect(checkpointFiles(in: dir).isEmpty)
        // The best epoch's model, intact, is offered (the message said only to start afresh).
        let best = dir + "/best.safetensors"
        try #require(FileManager.default.fileExists(atPath: best))
        try FileManager.default.removeItem(atPath: files[0] + ".bad")
        for f in [files[1], files[2]] { try FileManager.default.moveItem(atPath: f + ".bad", toPath: f) }
        do {
            _ = try run(resume(dir, epochs: 4))
            Issue.record("resumed from damaged checkpoints")
        } catch {
            #expect("\(error)".contains("\(best) is intact (epoch ") && "\(error)".contains("to resume from there"), "\(error)")
        }
    }

    @Test("a checkpoint records the CRC-32 of its data, as zlib computes it")
    func checksumIsZlibs() throws {
        var crc = CRC32()
        "123456789".utf8CString.dropLast().withUnsafeBytes { crc.update($0) }
        #expect(crc.hex == "cbf43926")
        let (_, files) = try threeEpochs()
        let (_, metadata) = try SafeTensors.read(files[0])
        #expect(metadata[Checkpoint<TrainingRecord>.checksumKey]?.count == 8)
    }

    /// A tmpfs of `kilobytes` at a new folder, unmounted by `body`'s end whatever happens.
    func withSmallDisk(kilobytes: Int, _ body: (String) throws -> Void) throws {
        let dir = temporaryDirectory()
        let mount = Process()
        mount.executableURL = URL(fileURLWithPath: "/bin/mount")
        mount.arguments = ["-t", "tmpfs", "-o", "size=\(kilobytes)k", "tmpfs", dir]
        try mount.run()
        mount.waitUntilExit()
        try #require(mount.terminationStatus == 0, "mounting a tmpfs needs root (CI runs as root)")
        defer {
            let umount = Process()
            umount.executableURL = URL(fileURLWithPath: "/bin/umount")
            umount.arguments = [dir]
            try? umount.run()
            umount.waitUntilExit()
        }
        try body(dir)
    }

    /// Writes zeros into `dir/filler` until the disk is full.
    func fill(_ dir: String) {
        let fd = open(dir + "/filler", O_WRONLY | O_CREAT | O_APPEND, 0o644)
        let block = [UInt8](repeating: 0, count: 4096)
        while block.withUnsafeBytes({ write(fd, $0.baseAddress!, 4096) }) > 0 {}
        while block.withUnsafeBytes({ write(fd, $0.baseAddress!, 1) }) > 0 {}
        close(fd)
    }

    @Test("a full disk while saving: the previous checkpoint stays intact, the failure is reported and retried, the third in a row stops the run with an error")
    func fullDisk() throws {
        try withSmallDisk(kilobytes: 512) { disk in
            let dir = disk + "/ck"
            var lines: [String] = []
            let trainer = try Trainer(options: options { $0.checkpointDir = dir; $0.checkpointEvery = 5; $0.epochs = 50 },
                                      task: try TaskRegistry.task(for: options(), dataDir: sharedDataDirectory()),
                                      log: { lines.append($0) })
            try trainer.run(maxSteps: 5)
            let good = try #require(latestCheckpoint(in: dir))
            let before = try Data(contentsOf: URL(fileURLWithPath: good))

            fill(disk)
            try trainer.run(maxSteps: 5)  // the save at step 10 fails, then the one on returning
            #expect(trainer.failedSaves == 2)
            #expect(lines.filter { $0.hasPrefix("warning: checkpoint not saved at step 10") }.count == 2, "\(lines)")
            #expect(lines.last?.contains("newest checkpoint on disk: \(good); retrying at the next checkpoint") == true)
            #expect(try Data(contentsOf: URL(fileURLWithPath: good)) == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp") }.isEmpty)

            try FileManager.default.removeItem(atPath: disk + "/filler")
            try trainer.run(maxSteps: 5)  // space again: the next save succeeds
            #expect(trainer.failedSaves == 0)
            #expect(latestCheckpoint(in: dir) == dir + "/" + checkpointName(step: 15))
            _ = try Checkpoint<TrainingRecord>.read(from: dir + "/" + checkpointName(step: 15))

            fill(disk)
            do {
                try trainer.run()
                Issue.record("trained on with a full disk")
            } catch {
                #expect("\(error)".contains("3 checkpoint saves failed in a row, stopping at step 30"), "\(error)")
                #expect("\(error)".contains("newest checkpoint on disk: \(dir)/\(checkpointName(step: 15))"), "\(error)")
            }
            _ = try Checkpoint<TrainingRecord>.read(from: dir + "/" + checkpointName(step: 15))
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains(".tmp") }.isEmpty)
        }
    }

    @Test("best.safetensors holds the epoch with the lowest validation perplexity, survives --keep-checkpoints, and --early-stop ends the run saying so")
    func bestAndEarlyStop() throws {
        let dir = temporaryDirectory() + "/ck"
        let output = CollectedOutput()
        // A tiny text, a wide model and a high rate: validation perplexity turns upwards within a few epochs.
        let summary = try run(.new(options {
            $0.checkpointDir = dir; $0.keepCheckpoints = 1; $0.epochs = 40; $0.earlyStop = 2
            $0.maxTokens = 2500; $0.validFraction = 0.2; $0.hidden = 96; $0.optimizer = .adam; $0.lr = 0.02
        }), output)
        let history = summary.history
        let bestEpoch = try #require(history.min { $0.validPerplexity! < $1.validPerplexity! }).epoch
        let best = try Checkpoint<TrainingRecord>.read(from: dir + "/" + bestCheckpointName)
        #expect(best.extra.history.last?.epoch == bestEpoch)
        #expect(best.extra.history.last?.validPerplexity == history[bestEpoch - 1].validPerplexity)
        #expect(checkpointFiles(in: dir).count == 1)
        // Stopped after two epochs without a new best, and said so.
        #expect(summary.epochs == bestEpoch + 2 && summary.epochs < 40, "\(history.map(\.line))")
        #expect(output.lines.contains { $0.hasPrefix("early stop: no improvement in validation loss for 2 epochs (--early-stop 2); best was epoch \(bestEpoch)") },
                "\(output.standardOutput)")
        // Resuming the stopped run does not train on; a larger --early-stop does.
        let again = CollectedOutput()
        _ = try run(resume(dir, epochs: 40), again)
        #expect(again.lines.contains { $0.hasPrefix("training already ended: early stop") }, "\(again.standardOutput)")
        let more = try run(.resume(checkpointDir: dir, reconcile: { var o = $0; o.earlyStop = 3; return o },
                                   otherwise: { throw TrainingError("no checkpoint") }))
        #expect(more.epochs > summary.epochs)
    }

    @Test("without a validation split the best model is chosen by training loss")
    func bestByTrainingLoss() throws {
        let dir = temporaryDirectory() + "/ck"
        let summary = try run(.new(options { $0.checkpointDir = dir; $0.keepCheckpoints = 1 }))
        let bestEpoch = try #require(summary.history.min { $0.trainPerplexity < $1.trainPerplexity }).epoch
        let best = try Checkpoint<TrainingRecord>.read(from: dir + "/" + bestCheckpointName)
        #expect(best.extra.history.last?.epoch == bestEpoch)
    }

    @Test("options saved before --early-stop existed still decode")
    func oldOptionsDecode() throws {
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(options())) as! [String: Any]
        json.removeValue(forKey: "earlyStop")
        let decoded = try JSONDecoder().decode(TrainOptions.self, from: JSONSerialization.data(withJSONObject: json))
        #expect(decoded.earlyStop == nil && decoded == options())
    }
}
