import Foundation
import RNNCore

/// A training checkpoint: parameters under PyTorch names, optimizer state, the carried hidden state, and a
/// versioned JSON record (in `__metadata__["rnnlm"]`) of everything else needed to continue exactly.
///
/// Tensors: the model's (`encoder.weight`, `rnn.weight_ih_l0`, …, `decoder.bias`), then
/// `optimizer.<slot>.<name>` for each optimizer slot (e.g. `optimizer.exp_avg.rnn.weight_hh_l0`), then
/// `state.h` / `state.c` `[L, B, H]` when a hidden state is carried. To load the model into PyTorch:
/// `{k: v for k, v in load_file(f).items() if not k.startswith(("optimizer.", "state."))}`.
public struct Checkpoint<Extra: Codable & Equatable>: Equatable {
    public static var formatVersion: Int { 1 }

    public var model: ModelConfig
    public var parameters: [Float]
    public var optimizer: OptimizerKind?
    public var optimizerStep: Int
    public var optimizerSlots: [[Float]]
    public var state: RecurrentState?
    /// The caller's own record (vocabulary, step, epoch, RNG states, data cursor, …).
    public var extra: Extra

    public init(model: ModelConfig, parameters: [Float], optimizer: OptimizerKind?, optimizerStep: Int,
                optimizerSlots: [[Float]], state: RecurrentState?, extra: Extra) {
        self.model = model; self.parameters = parameters; self.optimizer = optimizer
        self.optimizerStep = optimizerStep; self.optimizerSlots = optimizerSlots; self.state = state; self.extra = extra
    }

    struct Record: Codable {
        var format: String
        var version: Int
        var model: ModelConfig
        var optimizer: OptimizerKind?
        var optimizerStep: Int
        var optimizerSlots: [String]
        var stateBatch: Int?
        var extra: Extra
    }

    public func write(to path: String) throws {
        let layout = ParameterLayout(model: model)
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
        if let s = state {
            tensors.append(SafeTensor(name: "state.h", shape: [s.layers, s.batch, s.hidden], values: s.h))
            if s.hasCell { tensors.append(SafeTensor(name: "state.c", shape: [s.layers, s.batch, s.hidden], values: s.c)) }
        }
        let record = Record(format: "rnnlm-checkpoint", version: Self.formatVersion, model: model, optimizer: optimizer,
                            optimizerStep: optimizerStep, optimizerSlots: slotNames, stateBatch: state?.batch, extra: extra)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = String(decoding: try encoder.encode(record), as: UTF8.self)
        try SafeTensors.write(tensors, metadata: ["format": "rnnlm", "rnnlm": json], to: path)
    }

    public static func read(from path: String) throws -> Checkpoint {
        let (tensors, metadata) = try SafeTensors.read(path)
        guard let json = metadata["rnnlm"] else {
            throw CheckpointError(path: path, "has no rnnlm record in __metadata__: it was not written by rnnlm (a bare PyTorch state_dict cannot be resumed)")
        }
        let record: Record
        do { record = try JSONDecoder().decode(Record.self, from: Data(json.utf8)) } catch {
            throw CheckpointError(path: path, "its rnnlm record cannot be decoded (\(error)); written by an incompatible rnnlm version?")
        }
        guard record.format == "rnnlm-checkpoint", record.version == formatVersion else {
            throw CheckpointError(path: path, "format \(record.format) version \(record.version); this rnnlm reads version \(formatVersion)")
        }
        do { try record.model.validate() } catch { throw CheckpointError(path: path, "records an invalid model: \(error)") }
        let layout = ParameterLayout(model: record.model)
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
        var state: RecurrentState?
        if let b = record.stateBatch {
            let m = record.model
            var s = RecurrentState(layers: m.layers, batch: b, hidden: m.hiddenSize, hasCell: m.cell.hasCell)
            s.h = try tensor("state.h", shape: [m.layers, b, m.hiddenSize])
            if m.cell.hasCell { s.c = try tensor("state.c", shape: [m.layers, b, m.hiddenSize]) }
            state = s
        }
        for (name, p) in [("parameters", params)] + slots.enumerated().map({ ("optimizer slot \($0.offset)", $0.element) }) {
            if !allFinite(p) {
                throw CheckpointError(path: path, "\(name) contain NaN or Inf: the run diverged before this was saved; resume from an earlier checkpoint or lower --lr")
            }
        }
        return Checkpoint(model: record.model, parameters: params, optimizer: record.optimizer,
                          optimizerStep: record.optimizerStep, optimizerSlots: slots, state: state, extra: record.extra)
    }
}

extension Checkpoint: Sendable where Extra: Sendable {}
