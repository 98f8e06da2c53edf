import Foundation
import RNNCore
import RNNProtocol
import RNNTransport

/// A synchronous step's weights for workers across a socket, as what changed since the last step's. A task with
/// row-sparse tables (untied embeddings) under plain SGD changes, each step, only the table rows some worker's
/// minibatch read (320 of the word model's 10,753): a worker that holds the last step's weights needs the values
/// outside the tables and those rows, not the whole tables (the word model's 19.8 MB of weights become ≈ 11.4 MB).
///
/// Exact by construction. Which rows changed is found by comparing the tables, bit for bit, with a copy of them as
/// last sent, so nothing depends on what the optimizer did: under momentum, weight decay or Adam every row changes
/// and the whole weights go. Only a worker whose gradient for the copy's step arrived is known to hold that step's
/// weights (it computed from them); every other worker gets the whole weights, and so does everyone when the rows
/// would not save a tenth of the bytes.
final class ChangedWeightRows {
    let tables: [SparseRowTensor]
    let parameterCount: Int
    /// The tables' values as of the weights of step `step` (table after table, each row-major).
    private var copy: [Float]
    private(set) var step: UInt64?
    /// What changed between the copy's previous step and `step` (nil: nothing known to compare with).
    private var change: (support: GradientSupport, base: UInt64)?
    /// The step of the weights each worker last sent a gradient for.
    private var held: [PeerID: UInt64] = [:]

    /// Nil for a task without row-sparse tables (nothing to save).
    init?(tables: [SparseRowTensor], parameterCount: Int) {
        guard !tables.isEmpty else { return nil }
        self.tables = tables
        self.parameterCount = parameterCount
        copy = [Float](repeating: 0, count: tables.reduce(0) { $0 + $1.rows * $1.width })
    }

    /// Brings the copy to the weights of `step` (the current `parameters`) and returns the rows that changed since
    /// the copy's previous step, as the support of a weights message, with that step; nil the first time, or when
    /// rows would not save a tenth of the weights' bytes. Called again for the same step, it returns the same.
    func advance(to step: UInt64, parameters: UnsafeBufferPointer<Float>) -> (support: GradientSupport, base: UInt64)? {
        precondition(parameters.count == parameterCount, "\(parameters.count) parameters, the run has \(parameterCount)")
        if step == self.step { return change }
        var changed = [[Int32]]()
        copy.withUnsafeMutableBufferPointer { c in
            var at = c.baseAddress!
            for t in tables {
                var rows = [Int32]()
                let bytes = 4 * t.width
                for r in 0..<t.rows {
                    let live = parameters.baseAddress! + t.offset + r * t.width
                    if memcmp(live, at, bytes) != 0 {
                        rows.append(Int32(r))
                        at.update(from: live, count: t.width)
                    }
                    at += t.width
                }
                changed.append(rows)
            }
        }
        let support = GradientSupport(count: parameterCount, tables: tables, rows: changed)
        let saves = support.valueCount + support.wireRows.count < parameterCount - parameterCount / 10
        change = self.step.flatMap { base in saves ? (support, base) : nil }
        self.step = step
        return change
    }

    /// `peer` sent its gradient for `step`: it holds that step's weights.
    func confirm(_ peer: PeerID, step: UInt64) { held[peer] = step }

    /// `peer` holds no known step's weights (it joined again, or left).
    func forget(_ peer: PeerID) { held[peer] = nil }

    /// Whether `peer` holds the weights of `step`.
    func holds(_ peer: PeerID, step: UInt64) -> Bool { held[peer] == step }

    /// Forgets every peer `keep` says no to.
    func forgetAll(except keep: (PeerID) -> Bool) {
        for peer in held.keys where !keep(peer) { held[peer] = nil }
    }
}
