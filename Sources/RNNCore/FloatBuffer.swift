import CKernels

/// A fixed-size, contiguous, zero-initialised Float32 buffer that owns its memory.
/// Parameters, gradients, optimizer state and workspaces are all `FloatBuffer`s, so kernels get raw
/// pointers with no copy-on-write checks inside their loops.
public final class FloatBuffer {
    public let count: Int
    public let pointer: UnsafeMutablePointer<Float>

    public init(count: Int) {
        precondition(count >= 0, "FloatBuffer needs a non-negative count, got \(count)")
        self.count = count
        // 64-byte aligned (a cache line): threads splitting a buffer in 64-value ranges never share a line.
        pointer = UnsafeMutableRawPointer.allocate(byteCount: 4 * max(count, 1), alignment: 64)
            .bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { pointer.update(from: $0.baseAddress!, count: values.count) }
    }

    deinit { UnsafeMutableRawPointer(pointer).deallocate() }

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
    /// added in buffer order. `threads` only shares the blocks out.
    public func sumOfSquares(threads: Int = 1) -> Double {
        let block = Self.sumOfSquaresBlock, blocks = (count + block - 1) / block
        guard blocks > 1 else { return rk_sum_squares(pointer, Int64(count)) }
        var sums = [Double](repeating: 0, count: blocks)
        let x = SendablePointer(pointer), n = count
        sums.withUnsafeMutableBufferPointer { out in
            let out = SendablePointer(out.baseAddress!)
            forEachRange(count: blocks, threads: threads, minimum: 2, alignment: 1) { r in
                for b in r { out.at(b).pointee = rk_sum_squares(x.at(b * block), Int64(min(block, n - b * block))) }
            }
        }
        return sums.reduce(0, +)
    }

    /// Values per block of `sumOfSquares` (fixed: the result must not depend on the thread count).
    public static let sumOfSquaresBlock = 1 << 15

    /// `self += values`, elementwise.
    public func add(_ values: UnsafeBufferPointer<Float>) {
        precondition(values.count == count, "adding \(values.count) floats to a buffer of \(count)")
        if count > 0 { rk_add(pointer, values.baseAddress!, Int64(count)) }
    }

    public func scale(by factor: Float) {
        for i in 0..<count { pointer[i] *= factor }
    }

    /// True when every element is finite.
    public func allFinite() -> Bool { RNNCore.allFinite(UnsafeBufferPointer(buffer)) }
}
