// Wire format, version 5 (version 1 sent a language model's configuration and tokens in the welcome; version 2
// sends the task's description as one blob; version 3 sends row-sparse tables' gradients as their touched rows:
// a gradient's metadata ends with the number of Int32 row words, its payload is the support's values, the row
// words (`GradientSupport.wireRows`: table count, each table's row count, the rows), the carried values; a lone
// head's reserved byte 7 may say where its payload waits in shared memory; version 4 sends payloads in frames of
// at most 1 MiB, joined on receipt; version 5 lets weights carry only what changed since a base step's weights:
// their metadata adds a row-word count and the base step, their payload is the values outside the row-sparse
// tables, the changed rows and the row words; and a worker may say that a step's weights arrived). Every message is a ZeroMQ multipart message of one or two frames:
//   frame 1: a 40-byte header, then `metaLength` bytes of metadata
//   frame 2: `payloadLength` bytes of raw little-endian data (Float32 weights/gradients, Int32 tokens), optional
// Header (little-endian): magic "RNLM" u32 | version u16 | type u8 | reserved u8 (0) | runID u64 | step u64 |
//   metaLength u32 | payloadLength u32 | aux u64 (type-specific: epoch/batch for weights, token count for
//   gradients).
// Receivers validate every field and reject the message with a specific `ProtocolError`.

public enum MessageType: UInt8, Sendable, CaseIterable {
    case hello = 1, welcome = 2, weights = 3, gradient = 4, stop = 5, heartbeat = 6, columns = 7, weightsReceived = 8
}

/// How a gradient's values travel: Float32 (exact), or bfloat16 (`--gradient-compression bf16`: half the bytes,
/// lossy; the worker carries what rounding lost into its next gradient).
public enum GradientEncoding: UInt32, Sendable, Codable, CaseIterable {
    case float32 = 0, bfloat16 = 1

    /// 4-byte words that `count` values of this encoding occupy in a payload (bfloat16 pairs share a word; an odd
    /// count ends with a zero half-word).
    public func words(_ count: Int) -> Int { self == .float32 ? count : (count + 1) / 2 }
}

public struct Header: Equatable, Sendable {
    public static let size = 40
    public static let magic: UInt32 = 0x4D4C_4E52  // "RNLM" as little-endian bytes
    public static let version: UInt16 = 5  // 4: payloads cross sockets in ≤ 1 MiB frames (ZMQSocket); 5: weights may carry changed rows only

    public var type: MessageType
    public var runID: UInt64
    public var step: UInt64
    public var metaLength: UInt32
    public var payloadLength: UInt32
    public var aux: UInt64
}

/// A decoded message.
public enum Message: Equatable, Sendable {
    /// Worker → coordinator: asks to join. `meta` is JSON (`WorkerHello`).
    case hello(WorkerHello)
    /// Coordinator → worker: the worker's assignment (JSON `meta`: task kind, index, rows) and the task's
    /// description (the payload: model structure and training data, as the task encodes them).
    case welcome(runID: UInt64, assignment: [UInt8], task: [UInt8])
    /// Coordinator → worker: parameters for step `step`; compute minibatch `batch` of epoch `epoch`.
    /// `resetState` zeroes the worker's streams first; a non-empty `state` (its columns, `[L, b, H]` h then c)
    /// replaces them (after a resume or a reassignment).
    case weights(runID: UInt64, step: UInt64, epoch: UInt32, batch: UInt32, resetState: Bool, parameters: [Float],
                 state: [Float])
    /// Worker → coordinator: Σ-loss gradient for step `step`, the loss sum and token count, the final
    /// hidden state of the worker's streams (so the coordinator can checkpoint and reassign them), and how long
    /// the worker computed (for the parameter server's share of step time). A task with row-sparse tables
    /// (`SparseRowTensor`, untied embeddings) sends only the table rows its minibatch touched: `rows` lists them
    /// per table (ascending) and `gradient` holds the values of that support (`GradientSupport.ranges` in
    /// order); otherwise `rows` is empty and `gradient` is every value.
    case gradient(runID: UInt64, step: UInt64, lossSum: Double, tokens: UInt32, gradient: [Float], state: [Float],
                  computeNanos: UInt64, rows: [[Int32]] = [])
    /// Coordinator → worker: training is over (or the worker is dismissed); `reason` is UTF-8.
    case stop(runID: UInt64, reason: String)
    case heartbeat(runID: UInt64)
    /// Coordinator → worker: from step `step` on, the worker owns these stream columns (a worker died, or one
    /// joined); their state arrives with the next weights.
    case columns(runID: UInt64, step: UInt64, columns: [Int32])
    /// Worker → coordinator: the weights of step `step` arrived (`--broadcast in-turn`: the next worker's may go).
    case weightsReceived(runID: UInt64, step: UInt64)

    /// The reason of the stop a worker gets when it speaks to a coordinator that took it out of the run (it was
    /// declared lost, e.g. frozen past the heartbeat timeout): it should say hello again to rejoin as a new member.
    public static let takenOutReason = "this worker was taken out of the run; say hello to rejoin"
    /// Begins the reason of a stop sent because the run failed (a worker then exits with status 1, not 0).
    public static let runFailedPrefix = "the run failed: "

    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .welcome: return .welcome
        case .weights: return .weights
        case .gradient: return .gradient
        case .stop: return .stop
        case .heartbeat: return .heartbeat
        case .columns: return .columns
        case .weightsReceived: return .weightsReceived
        }
    }
}

public struct WorkerHello: Codable, Equatable, Sendable {
    public var name: String
    public var host: String
    public var pid: Int32
    public var protocolVersion: UInt16
    /// The coordinator-private folder this worker was started with (`rnnlm train --workers N`): it can map
    /// shared-memory files there, so payloads can bypass the socket.
    public var sharedMemory: String?
    public init(name: String, host: String, pid: Int32, protocolVersion: UInt16 = Header.version, sharedMemory: String? = nil) {
        self.name = name; self.host = host; self.pid = pid; self.protocolVersion = protocolVersion
        self.sharedMemory = sharedMemory
    }
}

/// Why a message was rejected. Each case names the field.
public enum ProtocolError: Error, Equatable, CustomStringConvertible, Sendable {
    case frameCount(Int)
    case shortHeader(Int)
    case badMagic(UInt32)
    case badVersion(UInt16)
    case unknownType(UInt8)
    case reservedNonZero(UInt8)
    case metaLength(declared: UInt32, actual: Int)
    case payloadLength(declared: UInt32, actual: Int)
    case payloadNotAligned(Int)
    case wrongRun(expected: UInt64, got: UInt64)
    case unexpectedPayload(MessageType)
    case missingPayload(MessageType)
    case badMeta(String)
    case parameterCount(expected: Int, got: Int)
    case stateCount(declared: UInt32, payload: Int)
    case nonFinite(String)
    case badColumns
    /// Weights that carry changed rows only, for a worker that does not hold their base step's weights.
    case weightsBase(base: UInt64, held: UInt64?)
    public var description: String {
        switch self {
        case .frameCount(let n): return "expected 1 or 2 frames, got \(n)"
        case .shortHeader(let n): return "header frame has \(n) bytes, needs at least \(Header.size)"
        case .badMagic(let m): return "bad magic 0x\(String(m, radix: 16)) (not an rnnlm peer?)"
        case .badVersion(let v): return "the peer speaks rnnlm protocol version \(v), this rnnlm speaks version \(Header.version); run the same rnnlm release on the coordinator and every worker"
        case .unknownType(let t): return "unknown message type \(t)"
        case .reservedNonZero(let r): return "reserved header byte is \(r), must be 0"
        case .metaLength(let d, let a): return "header declares \(d) metadata bytes, frame has \(a)"
        case .payloadLength(let d, let a): return "header declares \(d) payload bytes, frame has \(a)"
        case .payloadNotAligned(let n): return "payload of \(n) bytes is not a whole number of 4-byte values"
        case .wrongRun(let e, let g): return "run id \(String(g, radix: 16)) is not this run's \(String(e, radix: 16)) (a worker from another run?)"
        case .unexpectedPayload(let t): return "\(t) message carries a payload it must not have"
        case .missingPayload(let t): return "\(t) message lacks its payload"
        case .badMeta(let why): return "metadata: \(why)"
        case .parameterCount(let e, let g): return "carries \(g) values, the model has \(e) parameters"
        case .stateCount(let d, let p): return "declares \(d) state values, more than its \(p)-value payload"
        case .nonFinite(let what): return "\(what) contains NaN or Inf"
        case .badColumns: return "rows must be a non-empty list of distinct non-negative indices"
        case .weightsBase(let b, let h): return "weights that update step \(b)'s, but this worker holds \(h.map { "step \($0)'s" } ?? "no step's") (a coordinator bug: it sends changed rows only to a worker whose gradient for the base step it received)"
        }
    }
}
