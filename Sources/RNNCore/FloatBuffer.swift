import CKernels
import Dispatch

/// A fixed-size, contiguous, zero-initialised Float32 buffer that owns its memory.
/// Parameters, gradients, optimizer state and workspaces are all `FloatBuffer`s, so kernels get raw
/// pointers with no copy-on-write checks inside their loops.
///
/// For the span of `borrowing(_:_:)` the buffer's values are somewhere else (a local worker computes straight
/// from the run's shared weights and into its shared-memory slot): whoever reads `pointer` during that span,
/// including a replica sharing the buffer, sees the borrowed memory.
public final class FloatBuffer {
    public let count: Int
    /// Where the values are: the buffer's own memory, or memory lent by `borrowing`. Read it at the point of use
    /// (as kernels do, once per call), not once for the buffer's lifetime.
    public private(set) var pointer: UnsafeMutablePointer<Float>
    private let own: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer needs a non-negative count, got \(count)")
        self.count = count
        // 64-byte aligned (a cache line): threads splitting a buffer in 64-value ranges never share a line.
        own = UnsafeMutableRawPointer.allocate(byteCount: 4 * max(count, 1), alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
        own.initialize(repeating: 0, count: max(count, 1))
        pointer = own
    }

    /// `body`'s result with the buffer's `count` values at `storage` instead of its own memory, which is left
    /// untouched and back in place when `body` returns. `storage` must hold `count` values and stay valid during
    /// `body`; when it is read-only (a mapping of the shared weights), nothing may write the buffer meanwhile.
    /// Not nested: one borrow at a time.
    public func borrowing<R>(_ storage: UnsafeMutablePointer<Float>, _ body: () throws -> R) rethrows -> R {
        precondition(pointer == own, "a FloatBuffer lends one borrowed storage at a time")
        pointer = storage
        defer { pointer = own }
        return try body()
    }

    /// Reads and writes the values at `storage`, which must already hold them (`copyCheckingFinite(to:)`) and stay
    /// valid, until `reclaim()`: the coordinator's parameters live in the shared weights region, so its update
    /// writes them where the workers read them.
    public func relocate(to storage: UnsafeMutablePointer<Float>) {
        precondition(pointer == own, "a FloatBuffer is relocated from its own memory")
        pointer = storage
    }

    /// Ends a `relocate`: copies the values back into the buffer's own memory and uses that again.
    public func reclaim() {
        guard pointer != own else { return }
        own.update(from: pointer, count: count)
        pointer = own
    }

    /// Whether the values are in the buffer's own memory (not borrowed).
    public var isOwnStorage: Bool { pointer == own }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { UnsafeMutableRawPointer(own).deallocate() }

    public subscript(i: Int) -> Float {
        get { pointer[i] }
        set { pointer[i] = newValue }
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: pointer, count: count) }

    public func zero() { pointer.update(repeating: 0, count: count) }

    public func copy(from other: FloatBuffer) {
        precondition(other.count == count, "copy between buffers of \(other.count) and \(count) floats")
        pointer.update(from: other.pointer, count: count)
    }

    public func copy(from values: UnsafeBufferPointer<Float>) {
        precondition(values.count == count, "copy of \(values.count) floats into a buffer of \(count)")
        if count > 0 { pointer.update(from: values.baseAddress!, count: count) }
    }

    public var array: [Float] { Array(buffer) }

    /// Sum of squares accumulated in Double, in a fixed order whatever `threads` is: blocks of
    /// `sumOfSquaresBlock` values (each with 16 interleaved partial sums, see rk_sum_squares), the blocks' sums
    /// added in buffer order. `threads` only shares the blocks out. (`sumOfSquares(_:threads:)` on every value.)
    public func sumOfSquares(threads: Int = 1) -> Double { sumOfSquares(.dense(count), threads: threads) }

    /// Values per block of `sumOfSquares` (fixed: the result must not depend on the thread count).
    public static let sumOfSquaresBlock = 1 << 15

    /// `self += values`, elementwise.
    public func add(_ values: UnsafeBufferPointer<Float>) {
        precondition(values.count == count, "adding \(values.count) floats to a buffer of \(count)")
        if count > 0 { rk_add(pointer, values.baseAddress!, Int64(count)) }
    }

    public func scale(by factor: Float) {
        let p = pointer
        for i in 0..<count { p[i] *= factor }
    }

    /// Copies the values to `destination` (`count` of them), in up to `threads` ranges at once (one core alone does
    /// not reach the memory's bandwidth here), and says whether all were finite: one pass for both.
    public func copyCheckingFinite(to destination: UnsafeMutablePointer<Float>, threads: Int = 1) -> Bool {
        let src = SendablePointer(pointer), dst = SendablePointer(destination)
        return allRanges(count: count, threads: threads, minimum: 1 << 18) { r in
            copyAllFinite(from: src.at(r.lowerBound), to: dst.at(r.lowerBound), count: r.count)
        }
    }

    /// True when every element is finite, checked in up to `threads` ranges at once.
    public func allFinite(threads: Int) -> Bool {
        let src = SendablePointer(pointer)
        return allRanges(count: count, threads: threads, minimum: 1 << 18) { r in
            RNNCore.allFinite(UnsafeBufferPointer(start: src.at(r.lowerBound), count: r.count))
        }
    }

    /// True when every element is finite.
    public func allFinite() -> Bool { RNNCore.allFinite(UnsafeBufferPointer(buffer)) }
}
