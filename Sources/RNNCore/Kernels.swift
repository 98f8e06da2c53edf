// Elementwise kernels on SIMD8<Float>. With the package's x86-64-v3 flags these compile to AVX2/FMA;
// without them they stay correct, only slower.

public typealias F8 = SIMD8<Float>

@inline(__always)
func load8(_ p: UnsafePointer<Float>, _ n: Int) -> F8 {
    if n >= 8 { return UnsafeRawPointer(p).loadUnaligned(as: F8.self) }
    var v = F8(repeating: 0)
    for i in 0..<n { v[i] = p[i] }
    return v
}

@inline(__always)
func store8(_ v: F8, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    if n >= 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: F8.self); return }
    for i in 0..<n { p[i] = v[i] }
}

/// `exp(x)` to about 1 ulp: Cody-Waite reduction `x = n ln2 + r`, |r| ≤ ln2/2, then a degree-6
/// polynomial for `e^r` and `2^n` built in the exponent bits. Inputs are clamped to the finite range.
@inline(__always)
public func vexp(_ x0: F8) -> F8 {
    let x = x0.clamped(lowerBound: F8(repeating: -87.33), upperBound: F8(repeating: 88.72))
    // Round x·log2(e) to the nearest integer with the 1.5·2^23 trick; the integer sits in the low bits.
    let magic = F8(repeating: 12_582_912)
    let k = x * 1.442_695_04 + magic
    let n = k - magic
    var r = x - n * 0.693_359_375
    r = r - n * -2.121_944_4e-4
    var p = F8(repeating: 1.0 / 720)
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let kb = unsafeBitCast(k, to: SIMD8<Int32>.self)
    let twoN = unsafeBitCast((kb &- 0x4B40_0000 &+ 127) &<< 23, to: F8.self)
    return p * twoN
}

@inline(__always)
public func vsigmoid(_ x: F8) -> F8 { 1 / (1 + vexp(-x)) }

/// `tanh(x) = sign(x)·(1 − e)/(1 + e)` with `e = exp(−2|x|)`: no overflow, ~1e-7 absolute error.
@inline(__always)
public func vtanh(_ x: F8) -> F8 {
    let ax = x.replacing(with: -x, where: x .< 0)
    let e = vexp(-2 * ax)
    let t = (1 - e) / (1 + e)
    return t.replacing(with: -t, where: x .< 0)
}

/// Scalar versions of the same functions (used where a value is needed alone, e.g. tests, sampling).
@inline(__always) public func expf32(_ x: Float) -> Float { vexp(F8(repeating: x))[0] }
@inline(__always) public func sigmoidf32(_ x: Float) -> Float { vsigmoid(F8(repeating: x))[0] }
@inline(__always) public func tanhf32(_ x: Float) -> Float { vtanh(F8(repeating: x))[0] }

/// Adds `bias[j]` to every row of the `[rows, n]` matrix `m`.
@inline(__always)
func addRowBias(_ m: UnsafeMutablePointer<Float>, rows: Int, n: Int, bias: UnsafePointer<Float>) {
    for r in 0..<rows {
        let row = m + r * n
        var j = 0
        while j < n {
            let c = min(8, n - j)
            store8(load8(row + j, c) + load8(bias + j, c), row + j, c)
            j += 8
        }
    }
}

/// Copies `bias` into every row of the `[rows, n]` matrix `m` (so a GEMM with beta 1 adds onto it).
@inline(__always)
func fillRows(_ m: UnsafeMutablePointer<Float>, rows: Int, n: Int, with bias: UnsafePointer<Float>) {
    for r in 0..<rows { (m + r * n).update(from: bias, count: n) }
}

/// `out[j] += Σ_r m[r, j]` over the `[rows, n]` matrix `m`, summed in row order.
@inline(__always)
func accumulateColumnSums(_ m: UnsafePointer<Float>, rows: Int, n: Int, into out: UnsafeMutablePointer<Float>) {
    var j = 0
    while j < n {
        let c = min(8, n - j)
        var acc = F8(repeating: 0)
        for r in 0..<rows { acc += load8(m + r * n + j, c) }
        store8(load8(out + j, c) + acc, out + j, c)
        j += 8
    }
}
