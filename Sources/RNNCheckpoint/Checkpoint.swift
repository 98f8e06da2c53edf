import Foundation
import RNNCore

/// A training checkpoint: parameters under PyTorch names, optimizer state, the values the run carries per row
/// between minibatches, and a versioned JSON record (in `__metadata__["rnnlm"]`) of everything else needed to
/// continue exactly.
///
/// Tensors: the model's (for a language model `encoder.weight`, `rnn.weight_ih_l0`, …, `decoder.bias`), then
/// `optimizer.<slot>.<name>` for each optimizer slot (e.g. `optimizer.exp_avg.rnn.weight_hh_l0`), then the
/// carried tensors (`state.h` / `state.c` `[L, B, H]` for a language model). To load the model into PyTorch:
/// `{k: v for k, v in load_file(f).items() if not k.startswith(("optimizer.", "state."))}`.
///
/// Format version 2 records the model's structure (`spec`) and every tensor's name and shape; version 1 files
/// (language models only, written by rnnlm 0.1) still load.
public struct Checkpoint<Extra: Codable & Equatable>: Equatable {
    public static var formatVersion: Int { 2 }

    /// How the record writes (and reads back) infinite and NaN floats, which JSON has no literal for.
    static var nonFinite: JSONEncoder.NonConformingFloatEncodingStrategy {
        .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    }

    /// Reads a record, non-finite floats included.
    static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }

    public var spec: ModelSpec
    public var parameters: [Float]
    public var optimizer: OptimizerKind?
    public var optimizerStep: Int
    public var optimizerSlots: [[Float]]
    /// What the run carries per row between minibatches, as named tensors (`state.*`); empty when nothing is.
    public var carried: [SafeTensor]
    /// The caller's own record (vocabulary, step, epoch, data cursor, …).
    public var extra: Extra
    /// String lists written as top-level keys of the `rnnlm` metadata JSON for other tools (a translation model's
    /// `source_vocab` and `target_vocab`, which `torch_seq2seq.py --load` reads). Not read back.
    public var exports: [String: [String]]

    public init(spec: ModelSpec, parameters: [Float], optimizer: OptimizerKind?, optimizerStep: Int,
                optimizerSlots: [[Float]], carried: [SafeTensor], extra: Extra, exports: [String: [String]] = [:]) {
        self.spec = spec; self.parameters = parameters; self.optimizer = optimizer
        self.optimizerStep = optimizerStep; self.optimizerSlots = optimizerSlots; self.carried = carried; self.extra = extra
        self.exports = exports
    }

    /// A language model's checkpoint, its hidden state carried as `state.h` (and `state.c`).
    public init(model: ModelConfig, parameters: [Float], optimizer: OptimizerKind?, optimizerStep: Int,
                optimizerSlots: [[Float]], state: RecurrentState?, extra: Extra) {
        self.init(spec: .languageModel(model), parameters: parameters, optimizer: optimizer, optimizerStep: optimizerStep,
                  optimizerSlots: optimizerSlots, carried: state.flatMap { s in Checkpoint.tensors(of: s) } ?? [], extra: extra)
    }

    public var layout: ParameterLayout { spec.layout }

    /// The language model's shape; nil for another family.
    public var model: ModelConfig? {
        guard case .languageModel(let c) = spec else { return nil }
        return c
    }

    /// A language model's carried hidden state; nil when none is stored (or for another family).
    public var state: RecurrentState? {
        guard let m = model, let h = carried.first(where: { $0.name == "state.h" }), h.shape.count == 3 else { return nil }
        var s = RecurrentState(layers: m.layers, batch: h.shape[1], hidden: m.hiddenSize, hasCell: m.cell.hasCell)
        s.h = h.values
        if m.cell.hasCell { s.c = carried.first { $0.name == "state.c" }?.values ?? s.c }
        return s
    }

    static func tensors(of s: RecurrentState) -> [SafeTensor] {
        var out = [SafeTensor(name: "state.h", shape: [s.layers, s.batch, s.hidden], values: s.h)]
        if s.hasCell { out.append(SafeTensor(name: "state.c", shape: [s.layers, s.batch, s.hidden], values: s.c)) }
        return out
    }

    /// A tensor's name and shape, as the version 2 record lists them.
    struct TensorEntry: Codable, Equatable { var name: String; var shape: [Int] }

    struct Record: Codable {
        var format: String
        var version: Int
        var spec: ModelSpec
        var tensors: [TensorEntry]
        var optimizer: OptimizerKind?
        var optimizerStep: Int
        var optimizerSlots: [String]
        var carried: [TensorEntry]
        var extra: Extra
    }

    /// The version 1 record (language models only; the hidden state's batch in `stateBatch`).
    struct RecordV1: Codable {
        var format: String
        var version: Int
        var model: ModelConfig
        var optimizer: OptimizerKind?
        var optimizerStep: Int
        var optimizerSlots: [String]
        var stateBatch: Int?
        var extra: Extra
    }

    struct FormatProbe: Codable { var format: String; var version: Int }

    public func write(to path: String) throws {
        let layout = spec.layout
        precondition(parameters.count == layout.count, "checkpoint holds \(parameters.count) parameters, model needs \(layout.count)")
        var tensors = layout.tensors.map {
            SafeTensor(name: $0.name, shape: $0.shape, values: Array(parameters[$0.offset..<($0.offset + $0.count)]))
        }
        let slotNames = optimizer.map { Optimizer($0, parameterCount: 0).slotNames } ?? []
        precondition(slotNames.count == optimizerSlots.count, "optimizer has \(slotNames.count) slots, got \(optimizerSlots.count)")
        for (slot, values) in zip(slotNames, optimizerSlots) {
            for v in layout.tensors {
                tensors.append(SafeTensor(name: "optimizer.\(slot).\(v.name)", shape: v.shape,
                                          values: Array(values[v.offset..<(v.offset + v.count)])))
            }
        }
        tensors += carried
        let record = Record(format: "rnnlm-checkpoint", version: Self.formatVersion, spec: spec,
                            tensors: layout.tensors.map { TensorEntry(name: $0.name, shape: $0.shape) },
                            optimizer: optimizer, optimizerStep: optimizerStep, optimizerSlots: slotNames,
                            carried: carried.map { TensorEntry(name: $0.name, shape: $0.shape) }, extra: extra)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A record may hold an infinite perplexity (a validation text the model finds impossible): JSON has no
        // literal for it, so it is written as a string rather than failing the save.
        encoder.nonConformingFloatEncodingStrategy = Self.nonFinite
        var json = String(decoding: try encoder.encode(record), as: UTF8.self)
        if !exports.isEmpty {
            // Appended as further top-level keys of the same object (the record's own keys stay byte-identical).
            let extra = String(decoding: try encoder.encode(exports), as: UTF8.self)
            let fields: Set = ["format", "version", "spec", "tensors", "optimizer", "optimizerStep", "optimizerSlots", "carried", "extra"]
            precondition(fields.isDisjoint(with: exports.keys), "an export key would repeat a field of the checkpoint record")
            json = String(json.dropLast()) + "," + String(extra.dropFirst())
        }
        // The data section is the tensors' bytes in this order, so its checksum can be taken before it is laid out.
        var crc = CRC32()
        for t in tensors { crc.update(t.values) }
        try SafeTensors.write(tensors, metadata: ["format": "rnnlm", "rnnlm": json, Self.checksumKey: crc.hex], to: path)
    }

    /// `__metadata__` key of the CRC-32 of the data section (lowercase hex); files written before it existed lack it.
    public static var checksumKey: String { "rnnlm_crc32" }

    public static func read(from path: String) throws -> Checkpoint {
        let (tensors, metadata) = try SafeTensors.read(path)
        if let recorded = metadata[checksumKey] {
            // `SafeTensors.read` returns the tensors in data-section order.
            var crc = CRC32()
            for t in tensors { crc.update(t.values) }
            guard crc.hex == recorded else {
                throw CheckpointError(path: path, "its data fails the checksum (CRC-32 \(crc.hex), recorded \(recorded)): the file was damaged after it was written; resume from an earlier checkpoint")
            }
        }
        guard let json = metadata["rnnlm"] else {
            throw CheckpointError(path: path, "has no rnnlm record in __metadata__: it was not written by rnnlm (a bare PyTorch state_dict cannot be resumed)")
        }
        let probe: FormatProbe
        do { probe = try JSONDecoder().decode(FormatProbe.self, from: Data(json.utf8)) } catch {
            throw CheckpointError(path: path, "its rnnlm record cannot be decoded (\(error)); written by an incompatible rnnlm version?")
        }
        guard probe.format == "rnnlm-checkpoint", probe.version == 1 || probe.version == formatVersion else {
            throw CheckpointError(path: path, "format \(probe.format) version \(probe.version); this rnnlm reads versions 1 and \(formatVersion)")
        }
        let record: Record
        do {
            if probe.version == 1 {
                let v1 = try Self.decoder.decode(RecordV1.self, from: Data(json.utf8))
                let m = v1.model
                let carried = v1.stateBatch.map { b in
                    [TensorEntry(name: "state.h", shape: [m.layers, b, m.hiddenSize])]
                        + (m.cell.hasCell ? [TensorEntry(name: "state.c", shape: [m.layers, b, m.hiddenSize])] : [])
                } ?? []
                let spec = ModelSpec.languageModel(m)
                record = Record(format: v1.format, version: 1, spec: spec,
                                tensors: spec.layout.tensors.map { TensorEntry(name: $0.name, shape: $0.shape) },
                                optimizer: v1.optimizer, optimizerStep: v1.optimizerStep, optimizerSlots: v1.optimizerSlots,
                                carried: carried, extra: v1.extra)
            } else {
                record = try Self.decoder.decode(Record.self, from: Data(json.utf8))
            }
        } catch {
            throw CheckpointError(path: path, "its rnnlm record cannot be decoded (\(error)); written by an incompatible rnnlm version?")
        }
        do { try record.spec.validate() } catch { throw CheckpointError(path: path, "records an invalid \(record.spec.family): \(error)") }
        let layout = record.spec.layout
        let expected = layout.tensors.map { TensorEntry(name: $0.name, shape: $0.shape) }
        guard record.tensors == expected else {
            let first = zip(record.tensors, expected).first { $0 != $1 }
            throw CheckpointError(path: path, "its tensor list does not match the \(record.spec.family) it records\(first.map { ": '\($0.0.name)' \($0.0.shape) where '\($0.1.name)' \($0.1.shape) belongs" } ?? " (\(record.tensors.count) tensors, the model has \(expected.count))")")
        }
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func tensor(_ name: String, shape: [Int]) throws -> [Float] {
            guard let t = byName[name] else { throw CheckpointError(path: path, "is missing tensor '\(name)'") }
            guard t.shape == shape else {
                throw CheckpointError(path: path, "tensor '\(name)' has shape \(t.shape), the recorded model needs \(shape)")
            }
            return t.values
        }
        var params = [Float](); params.reserveCapacity(layout.count)
        for v in layout.tensors { params += try tensor(v.name, shape: v.shape) }
        var slots: [[Float]] = []
        for slot in record.optimizerSlots {
            var values = [Float](); values.reserveCapacity(layout.count)
            for v in layout.tensors { values += try tensor("optimizer.\(slot).\(v.name)", shape: v.shape) }
            slots.append(values)
        }
        let carried = try record.carried.map { SafeTensor(name: $0.name, shape: $0.shape, values: try tensor($0.name, shape: $0.shape)) }
        for (name, p) in [("parameters", params)] + slots.enumerated().map({ ("optimizer slot \($0.offset)", $0.element) })
            + carried.map({ ("carried \($0.name)", $0.values) }) {
            if !allFinite(p) {
                throw CheckpointError(path: path, "\(name) \(name.hasPrefix("carried") ? "contains" : "contain") NaN or Inf: the run diverged before this was saved; resume from an earlier checkpoint or lower --lr")
            }
        }
        return Checkpoint(spec: record.spec, parameters: params, optimizer: record.optimizer,
                          optimizerStep: record.optimizerStep, optimizerSlots: slots, carried: carried, extra: record.extra)
    }
}

extension Checkpoint: Sendable where Extra: Sendable {}
