import RNNCore
import RNNProtocol
import RNNText
import RNNTrain

/// What the coordinator tells a worker when it joins (sent as JSON in the welcome message, with the tokens).
public struct WorkerAssignment: Codable, Equatable, Sendable {
    public var model: ModelConfig
    public var seed: UInt64
    public var numSteps: Int
    /// Global batch size B (all workers' streams together).
    public var batchSize: Int
    public var partition: Partition
    public var workerIndex: Int
    public var workers: Int
    /// The stream columns (0..<B) this worker owns, in order.
    public var columns: [Int]
    /// The run's vocabulary (token strings by id), so a worker can name tokens in its messages and check ids.
    public var vocabulary: [String]
    /// The shared-memory file for this worker's payloads, when it runs beside the coordinator (`SharedPayloadRegion`).
    public var sharedMemory: String?
}


/// A worker's streams as a flat vector: h `[L, b, H]`, then c for LSTM (the wire layout of state).
public func flatten(_ s: RecurrentState) -> [Float] { s.h + s.c }

public func unflatten(_ v: [Float], like template: RecurrentState) -> RecurrentState? {
    guard v.count == template.h.count + template.c.count else { return nil }
    var s = template
    s.h = Array(v[0..<template.h.count])
    s.c = Array(v[template.h.count...])
    return s
}
