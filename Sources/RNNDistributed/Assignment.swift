import RNNProtocol

/// What the coordinator tells a worker when it joins (the JSON metadata of the welcome message; the task's own
/// description travels as the payload).
public struct WorkerAssignment: Codable, Equatable, Sendable {
    /// The task's kind (`TaskRegistry` rebuilds it from the payload).
    public var task: String
    public var workerIndex: Int
    public var workers: Int
    /// The rows (0..<B) of every minibatch this worker computes, ascending.
    public var rows: [Int]
    /// The shared-memory file for this worker's payloads, when it runs beside the coordinator (`SharedPayloadRegion`).
    public var sharedMemory: String?
    /// The shared-memory file every local worker reads a synchronous step's weights from (written once per step,
    /// whatever the number of local workers); its `.toWorker` slot holds the parameters.
    public var sharedWeights: String?
    /// How the worker sends its gradients (nil: Float32).
    public var gradientEncoding: GradientEncoding?
    /// `--broadcast in-turn`: say when a synchronous step's weights arrived across the socket (`.weightsReceived`),
    /// so that the coordinator sends the next worker's.
    public var acknowledgeWeights: Bool?
}
