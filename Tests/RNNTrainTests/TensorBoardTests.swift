import Foundation
import RNNCore
import RNNTrain
import Testing

/// The TensorBoard event format, written by hand: CRC-32C, protobuf fields, TFRecord framing, and a MetricsWriter's
/// event file read back against its metrics.jsonl. (.ci/tensorboard checks the same files with TensorBoard itself.)
@Suite("TensorBoard event files and metrics records")
struct TensorBoardTests {
    @Test("CRC-32C: the check value and RFC 3720's vectors; TFRecord's mask")
    func crc32c() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).reversed().map { UInt8($0) }) == 0x113F_DB5C)
        // masked = rotate right 15 + 0xa282ead8; the CRC of nothing is 0, so its mask is the constant.
        #expect(CRC32C.masked([UInt8]()) == 0xA282_EAD8)
        let crc = CRC32C.checksum(Array("123456789".utf8))
        #expect(CRC32C.masked(Array("123456789".utf8)) == ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8)
    }

    @Test("protobuf fields as the encoding guide spells them")
    func protobuf() throws {
        var w = ProtobufWriter()
        w.int64(1, 150)
        #expect(w.bytes == [0x08, 0x96, 0x01])
        w = ProtobufWriter()
        w.string(2, "testing")
        #expect(w.bytes == [0x12, 0x07] + Array("testing".utf8))
        w = ProtobufWriter()
        w.int64(2, -2)   // ten bytes: two's complement as a 64-bit varint
        #expect(w.bytes == [0x10, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
        w = ProtobufWriter()
        w.float(2, 1.5)
        w.double(1, -0.25)
        w.message(3) { $0.int64(1, 300) }
        #expect(w.bytes == [0x15, 0x00, 0x00, 0xC0, 0x3F, 0x09, 0, 0, 0, 0, 0, 0, 0xD0, 0xBF, 0x1A, 0x03, 0x08, 0xAC, 0x02])
        let r = try ProtobufReader(w.bytes)
        let inner = try r.message(3)
        #expect(r.float(2) == 1.5 && r.double(1) == -0.25 && inner?.int(1) == 300)
    }

    @Test("TFRecord: length, masked CRCs, data; a damaged byte or a cut record is refused")
    func framing() throws {
        let data = Array("brain.Event:2".utf8)
        let framed = TFRecord.frame(data)
        #expect(framed.count == 8 + 4 + data.count + 4)
        #expect(Array(framed[0..<8]) == [UInt8(data.count), 0, 0, 0, 0, 0, 0, 0])
        let lengthCRC = CRC32C.masked(framed[0..<8])
        #expect(Array(framed[8..<12]) == [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: lengthCRC >> $0) })
        #expect(Array(framed[12..<12 + data.count]) == data)
        let dataCRC = CRC32C.masked(data)
        #expect(Array(framed.suffix(4)) == [0, 8, 16, 24].map { UInt8(truncatingIfNeeded: dataCRC >> $0) })
        #expect(TFRecord.frame([]).suffix(4) == [0xD8, 0xEA, 0x82, 0xA2])

        let stream = TFRecord.frame(data) + TFRecord.frame([]) + TFRecord.frame([1, 2, 3])
        #expect(try TFRecord.records(stream) == [data, [], [1, 2, 3]])
        for position in [3, 9, 14, framed.count - 1] {
            var bad = framed
            bad[position] ^= 0x40
            #expect(throws: TrainingError.self) { try TFRecord.records(bad) }
        }
        #expect(throws: TrainingError.self) { try TFRecord.records(Array(framed.dropLast())) }
    }

    @Test("events: file version, scalars and the text plugin's string tensor decode to what was written")
    func eventRoundTrip() throws {
        let version = try ProtobufReader(TensorBoardEvent.fileVersion(wallTime: 1_700_000_000.5))
        #expect(version.double(1) == 1_700_000_000.5 && version.string(3) == "brain.Event:2")

        let scalars = try ProtobufReader(TensorBoardEvent.scalars([("train/loss", 2.5), ("train/lr", 0.1)], step: 42, wallTime: 12.25))
        #expect(scalars.double(1) == 12.25 && scalars.int(2) == 42)
        let values = try #require(try scalars.message(5)).messages(1)
        #expect(values.map { $0.string(1) } == ["train/loss", "train/lr"])
        #expect(values.map { $0.float(2) } == [2.5, 0.1])

        let text = try ProtobufReader(TensorBoardEvent.text(tag: "run/settings", "hidden = 32", step: 0, wallTime: 1))
        let value = try #require(try text.message(5)?.messages(1).first)
        #expect(value.string(1) == "run/settings")
        #expect(try value.message(9)?.message(1)?.string(1) == "text")
        let tensor = try #require(try value.message(8))
        #expect(tensor.int(1) == 7 && tensor.string(8) == "hidden = 32")
    }

    @Test("a metrics record: fields in order, strings escaped, numbers that are not finite null")
    func metricsRecordJSON() throws {
        let record = MetricsRecord([("kind", "step"), ("note", "a \"quoted\" \\ path/with\nnewline\u{1}"), ("n", 3),
                                    ("lr", Float(0.1)), ("x", Double.nan), ("none", nil), ("y", 0.5)])
        let line = try record.json()
        #expect(line.hasPrefix("{\"kind\":\"step\",\"note\":"))
        #expect(line.hasSuffix(",\"n\":3,\"lr\":0.1,\"x\":null,\"none\":null,\"y\":0.5}"), "\(line)")
        let parsed = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(parsed["note"] as? String == "a \"quoted\" \\ path/with\nnewline\u{1}")
        #expect(record.tensorBoardScalars.map(\.tag) == ["train/n", "train/lr", "train/y"])
    }

    @Test("MetricsWriter: an event file beside metrics.jsonl with the same scalars, steps and wall times, and the settings")
    func writerMatchesMetrics() throws {
        let dir = temporaryDirectory()
        do {
            let writer = try MetricsWriter(path: dir + "/metrics.jsonl", every: 2, tensorBoard: ["hidden = 32", "model = \"gru\""], step: 0)
            writer.workers = { 2 }
            for step in 1...4 {
                writer.step(StepInfo(step: step, epoch: 0, index: step - 1, batchesPerEpoch: 4, loss: LossSum(sum: Double(10 * step), count: 5),
                                     gradientNorm: 0.5, clipped: step == 2, lr: 0.1))
            }
            writer.epoch(EpochReport(epoch: 1, trainPerplexity: 7.5, validPerplexity: 8.25, tokensPerSecond: 1000, lr: 0.1, seconds: 1,
                                     validScores: ["bleu": 0.25], showsLoss: true), step: 4)
        }
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 3)
        #expect(lines[0].hasPrefix("{\"kind\":\"step\",\"step\":2,\"epoch\":1,\"time\":") && lines[0].contains(",\"workers\":2,\"wall_time\":"))
        #expect(lines[2].contains("\"val_loss\":") && lines[2].contains("\"val_bleu\":0.25"))
        let records = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }

        let files = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasPrefix("events.out.tfevents.") }
        #expect(files.count == 1)
        let name = try #require(files.first)
        #expect(name.split(separator: ".").count >= 5 && Int(name.split(separator: ".")[3]) != nil, "\(name)")
        let events = try TFRecord.records(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/" + name)))).map { try ProtobufReader($0) }
        #expect(events.count == 3 + records.count)
        #expect(events[0].string(3) == "brain.Event:2")
        // SessionLog.START after the run's start step: TensorBoard drops what earlier files logged from there on.
        let start = try events[1].message(7)
        #expect(events[1].int(2) == 1 && start?.int(1) == 1)
        let settings = try #require(try events[2].message(5)?.messages(1).first?.message(8)?.string(8))
        #expect(settings.contains("hidden = 32\nmodel = \"gru\""))

        let bookkeeping: Set<String> = ["kind", "step", "epoch", "time", "wall_time"]
        for (record, event) in zip(records, events.dropFirst(3)) {
            let group = record["kind"] as? String == "epoch" ? "epoch" : "train"
            #expect(event.int(2) == Int64(record["step"] as? Int ?? -1))
            // JSONSerialization may round the 17th digit; the encoder writes the shortest exact form.
            #expect(abs((event.double(1) ?? 0) - (record["wall_time"] as? Double ?? -1)) < 1e-5)
            var expected: [String: Float] = [:]
            for (key, value) in record where !bookkeeping.contains(key) {
                if let n = value as? Double { expected[group + "/" + key] = Float(n) }
            }
            let values = try #require(try event.message(5)).messages(1)
            let got = Dictionary(uniqueKeysWithValues: values.map { ($0.string(1) ?? "", $0.float(2) ?? .nan) })
            #expect(got == expected)
        }
        #expect(records.allSatisfy { ($0["wall_time"] as? Double ?? 0) > 1_600_000_000 })
    }
}
