import Foundation
import RNNCheckpoint
import RNNCore

// Shape legend: B rows per minibatch (a language model's streams, a translation model's sentence pairs),
// C values carried per row between minibatches (a language model's hidden state; 0 for sentence pairs).
// Carried values are row-major `[B, C]`: row r's values are `carried[r*C ..< (r+1)*C]`.

/// A model family as the training machinery sees it: the trainer, `LocalGradient`, `DataParallel`, the
/// coordinator, the workers and checkpoints are written against this protocol and never name a model.
///
/// A minibatch is `rowsPerMinibatch` rows; the coordinator shards rows between workers, and each worker (or
/// thread) computes the gradient of its rows. Epoch `e`'s minibatches are fixed by the run seed and `e` alone,
/// so every process that holds the task draws the same ones.
public protocol TrainingTask: AnyObject {
    /// The model's structure, as checkpoints record it.
    var spec: ModelSpec { get }
    /// Every parameter (flat, `spec.layout` order). Replicas share this buffer.
    var parameters: FloatBuffer { get }
    /// The gradient of the summed loss, same layout; each replica has its own. `accumulateGradient` adds to it.
    var gradients: FloatBuffer { get }
    /// The tensors whose gradient is row-sparse (untied embedding tables), ascending by offset; empty when the
    /// gradient is dense. See `gradientSupport`.
    var sparseRows: [SparseRowTensor] { get }
    /// For each of `sparseRows`, the rows that `gradients` may hold non-zero values in (ascending, unique): every
    /// `accumulateGradient` adds the rows it touched, `zeroGradients` clears them, and whoever fills `gradients`
    /// another way (a sum of workers' contributions) sets them. Empty (or empty lists) when nothing is touched.
    var touchedRows: [[Int32]] { get set }
    /// `B`: rows in every minibatch (what the coordinator shards).
    var rowsPerMinibatch: Int { get }
    /// `C`: values carried per row from one minibatch to the next (0: nothing is carried).
    var carriedPerRow: Int { get }
    /// Minibatches in epoch `epoch` (0-based).
    func minibatchCount(epoch: Int) -> Int
    /// Whether every row's carried values restart from zero before minibatch `index` of `epoch`.
    func resetsCarried(epoch: Int, index: Int) -> Bool
    /// Accumulates `∂(Σ losses)/∂θ` over `rows` (global row indices, ascending) of minibatch `index` of `epoch`
    /// into `gradients`; `carried` (`[rows.count, C]`) holds those rows' carried values on entry and their next
    /// values on return. `step` is the optimizer step this gradient is for (dropout masks depend on it).
    func accumulateGradient(epoch: Int, index: Int, rows: [Int], step: Int, carried: inout [Float]) -> LossSum
    /// A replica for another thread: the same parameters, its own gradients and workspaces.
    func makeReplica() -> any TrainingTask
    /// Loss of a held-out split under the current parameters, without dropout; nil when the split is empty.
    func evaluate(_ split: DataSplit) -> LossSum?
    /// Scores of the validation split besides its loss, by name (translation: corpus `bleu`), for epoch lines and
    /// metrics; empty when the task has none.
    func validationScores() -> [String: Double]
    /// Whether epoch lines show the mean loss (translation, as D2L) rather than perplexity (language models).
    var reportsLoss: Bool { get }
    /// String lists the checkpoint's metadata carries for other tools (translation: `source_vocab`, `target_vocab`,
    /// which `torch_seq2seq.py --load` reads).
    var checkpointExports: [String: [String]] { get }
    /// Everything a worker needs to rebuild this task (model structure, training data), as one blob; see
    /// `TaskRegistry.task(kind:description:)`.
    func workerDescription() throws -> [UInt8]
    /// What the task records in checkpoints to rebuild itself on resume (vocabularies, data fingerprint).
    var record: TaskRecord { get }
    /// The carried values of all B rows as named checkpoint tensors, and back.
    func carriedTensors(_ carried: [Float]) -> [SafeTensor]
    func carried(from tensors: [SafeTensor]) throws -> [Float]
    /// One-line descriptions of the model and the data, printed when a run starts.
    var summary: [String] { get }
}

extension TrainingTask {
    public var parameterCount: Int { parameters.count }
    public var sparseRows: [SparseRowTensor] { [] }
    public var touchedRows: [[Int32]] { get { [] } set {} }
    /// Where `gradients` may be non-zero (every value for a dense gradient).
    public var gradientSupport: GradientSupport { gradientSupport(rows: touchedRows) }
    /// The support of a gradient over the given touched rows of each of `sparseRows` (ascending, unique; an empty
    /// list of lists: none touched).
    public func gradientSupport(rows: [[Int32]]) -> GradientSupport {
        GradientSupport(count: parameterCount, tables: sparseRows, rows: rows)
    }
    /// Zeroes `gradients` (only where they may be non-zero) and clears `touchedRows`.
    public func zeroGradients() {
        gradients.zero(gradientSupport)
        if !touchedRows.isEmpty { touchedRows = [] }
    }
    /// `gradients += other.gradients` (a replica's), on the union of both supports.
    public func addGradients(of other: any TrainingTask) {
        let theirs = other.gradientSupport
        gradients.add(other.gradients, on: theirs)
        if !sparseRows.isEmpty { touchedRows = gradientSupport.union(theirs).rows }
    }
    /// `touchedRows` with `rows` (per table, any order) added.
    public func touch(_ rows: [[Int32]]) {
        touchedRows = zip(gradientSupport.rows, rows).map { mergedRows($0, uniqueSorted($1)) }
    }
    public func validationScores() -> [String: Double] { [:] }
    public var reportsLoss: Bool { false }
    public var checkpointExports: [String: [String]] { [:] }
    /// All rows' carried values, zero.
    public var zeroCarried: [Float] { [Float](repeating: 0, count: rowsPerMinibatch * carriedPerRow) }
}

/// A held-out part of the data.
public enum DataSplit: String, Sendable { case validation, test }

/// A task's own checkpoint record: its kind and a JSON document only the task reads.
public struct TaskRecord: Codable, Equatable, Sendable {
    public var kind: String
    public var json: String
    public init(kind: String, json: String) { self.kind = kind; self.json = json }

    /// `record` as JSON with its keys sorted, so the same run writes the same bytes.
    public init<Record: Encodable>(kind: String, encoding record: Record) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        self.init(kind: kind, json: String(decoding: try! encoder.encode(record), as: UTF8.self))
    }
}

/// The rows `rows` of row-major carried values (`perRow` values each), in that order.
public func carriedRows(_ carried: [Float], perRow: Int, rows: [Int]) -> [Float] {
    guard perRow > 0 else { return [] }
    var out = [Float]()
    out.reserveCapacity(rows.count * perRow)
    for r in rows { out.append(contentsOf: carried[(r * perRow)..<((r + 1) * perRow)]) }
    return out
}

/// Writes `part` (`[rows.count, perRow]`) into rows `rows` of `carried`.
public func assignCarriedRows(_ carried: inout [Float], perRow: Int, rows: [Int], from part: [Float]) {
    precondition(part.count == rows.count * perRow, "\(part.count) carried values do not fill \(rows.count) rows of \(perRow)")
    guard perRow > 0 else { return }
    for (i, r) in rows.enumerated() {
        carried.replaceSubrange((r * perRow)..<((r + 1) * perRow), with: part[(i * perRow)..<((i + 1) * perRow)])
    }
}

/// The framing of a task's worker description: `[UInt32 JSON length][JSON header][Int32 values…]`, the header
/// describing the model and the values holding the training data.
enum WorkerDescription {
    static func encode(_ header: some Encodable, values arrays: [[Int32]]) throws -> [UInt8] {
        let json = Array(try JSONEncoder().encode(header))
        var out = [UInt8]()
        out.reserveCapacity(4 + json.count + 4 * arrays.reduce(0) { $0 + $1.count })
        withUnsafeBytes(of: UInt32(json.count).littleEndian) { out += $0 }
        out += json
        for a in arrays { a.withUnsafeBytes { out += $0 } }
        return out
    }

    /// The header and the values of `d`; every malformed field is an error naming `family`'s description.
    static func decode<Header: Decodable>(_ d: [UInt8], as: Header.Type, family: String) throws -> (Header, [Int32]) {
        guard d.count >= 4 else { throw TrainingError("the \(family) description has \(d.count) bytes, fewer than its 4-byte header") }
        let n = Int(d.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(as: UInt32.self)) })
        guard n <= d.count - 4, (d.count - 4 - n) % 4 == 0 else {
            throw TrainingError("the \(family) description is malformed (header length \(n) of \(d.count) bytes)")
        }
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: Data(d[4..<(4 + n)])) } catch {
            throw TrainingError("the \(family) description cannot be decoded (\(error)); are coordinator and worker the same rnnlm version?")
        }
        let values = [Int32](unsafeUninitializedCapacity: (d.count - 4 - n) / 4) { buf, count in
            d.withUnsafeBytes { UnsafeMutableRawBufferPointer(buf).copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[(4 + n)...])) }
            count = (d.count - 4 - n) / 4
        }
        return (header, values)
    }
}
