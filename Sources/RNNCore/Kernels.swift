import CKernels

// The training hot loops (gates, loss, reductions) are C kernels in CKernels, which clang vectorises; Swift's
// SIMD types scalarised parts of the same code (measured 3x slower on the LSTM gates).

/// The exp, sigmoid and tanh every kernel uses (about 1 ulp; tanh and sigmoid within ~1e-7 absolute).
@inline(__always) public func expf32(_ x: Float) -> Float { rk_exp(x) }
@inline(__always) public func sigmoidf32(_ x: Float) -> Float { rk_sigmoid(x) }
@inline(__always) public func tanhf32(_ x: Float) -> Float { rk_tanh(x) }

/// Copies `bias` into every row of the `[rows, n]` matrix `m` (so a GEMM with beta 1 adds onto it).
@inline(__always)
func fillRows(_ m: UnsafeMutablePointer<Float>, rows: Int, n: Int, with bias: UnsafePointer<Float>) {
    for r in 0..<rows { (m + r * n).update(from: bias, count: n) }
}

/// True when every value is finite (vectorised; messages and checkpoints check whole buffers with it).
public func allFinite(_ values: UnsafeBufferPointer<Float>) -> Bool {
    guard let base = values.baseAddress else { return true }
    return rk_all_finite(base, Int64(values.count)) != 0
}

/// True when every value is finite.
public func allFinite(_ values: [Float]) -> Bool { values.withUnsafeBufferPointer { allFinite($0) } }

/// Copies `count` Float32 values from `source` (any alignment a Float32 array's bytes have) to `destination`, and
/// says whether all were finite: a received payload is checked as it is copied.
public func copyAllFinite(from source: UnsafeRawPointer, to destination: UnsafeMutablePointer<Float>, count: Int) -> Bool {
    count == 0 || rk_copy_all_finite(destination, source.assumingMemoryBound(to: Float.self), Int64(count)) != 0
}

/// Rounds `g + residual` to bfloat16 (ties to even) into `out`, keeping what rounding lost in `residual`
/// (error feedback: what is not sent now is sent with a later step). False when some value is not finite; the
/// residual is then reset to zero, so one bad step does not poison the next.
public func bf16Compress(_ g: UnsafePointer<Float>, residual: UnsafeMutablePointer<Float>, count: Int,
                         into out: UnsafeMutablePointer<UInt16>) -> Bool {
    guard count > 0 else { return true }
    if rk_bf16_compress(out, g, residual, Int64(count)) != 0 { return true }
    residual.update(repeating: 0, count: count)
    return false
}

/// Expands `count` bfloat16 values (any alignment a UInt16 array's bytes have) to Float32, exactly, and says
/// whether all were finite.
public func bf16Expand(from source: UnsafeRawPointer, to destination: UnsafeMutablePointer<Float>, count: Int) -> Bool {
    count == 0 || rk_bf16_expand_all_finite(destination, source.assumingMemoryBound(to: UInt16.self), Int64(count)) != 0
}

/// `out[j] += Σ_r m[r, j]` over the `[rows, n]` matrix `m`.
@inline(__always)
func columnSums(_ m: UnsafePointer<Float>, rows: Int, n: Int, into out: UnsafeMutablePointer<Float>) {
    rk_column_sums(m, Int64(rows), Int64(n), out)
}

/// `y[0..<count] += x[0..<count]`.
@inline(__always)
func addRow(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, count: Int) {
    rk_add(y, x, Int64(count))
}
