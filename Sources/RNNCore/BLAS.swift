import CBLAS
import CKernels
import Dispatch
import Foundation

/// Row-major single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, with `op(A)` of shape `[m, k]`
/// and `op(B)` of shape `[k, n]`. Leading dimensions are row strides of the stored (untransposed) matrices.
///
/// Large products with `alpha` 1 and `beta` 0 or 1 run on rnnlm's own blocked AVX-512 kernel (`rk_sgemm`) when the
/// CPU has it: on this project's shapes it is 1–11% faster than OpenBLAS's sgemm (the word-level decoder's products,
/// bench/README.md), and each entry's summation order is fixed, whatever the row count or the column split. Where
/// OpenBLAS is given several threads (a coordinator's evaluation) the columns are split across as many, so the
/// results are the same as on one thread, bit for bit. Otherwise, and where it declines, OpenBLAS.
@inline(__always)
public func sgemm(
    transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
    alpha: Float = 1, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, kernel: GEMMKernel = .automatic
) {
    guard m > 0, n > 0 else { return }
    if k == 0 {
        // BLAS would scale C by beta; keep that meaning for empty inner dimensions.
        if beta != 1 { for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } } }
        return
    }
    if kernel == .automatic, alpha == 1, beta == 0 || beta == 1, BlockedGEMM.preferred(m: m, n: n, k: k),
       BlockedGEMM.run(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb,
                       accumulate: beta == 1, c: c, ldc: ldc, threads: Int(openblas_get_num_threads())) {
        return
    }
    openBLASGemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                 beta: beta, c: c, ldc: ldc)
}

/// `sgemm`'s product on OpenBLAS.
@inline(__always)
private func openBLASGemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float, a: UnsafePointer<Float>,
                          lda: Int, b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>,
                          ldc: Int) {
    cblas_sgemm(
        CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
        Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// Sets how many threads OpenBLAS uses in this process (process-global).
public func setBLASThreads(_ n: Int) {
    openblas_set_num_threads(Int32(max(1, n)))
}

/// How many threads OpenBLAS will use.
public func blasThreads() -> Int { Int(openblas_get_num_threads()) }

/// Which implementation `sgemm` runs: `.automatic` as described there, or always OpenBLAS (the rate benchmarks quote
/// FLOP limits against).
public enum GEMMKernel: Sendable { case automatic, openBLAS }

/// When `sgemm` uses the blocked kernel instead of OpenBLAS.
public enum BlockedGEMM {
    /// The kernel runs on this CPU, and `RNNLM_GEMM=openblas` (a diagnostic, and the benchmarks' A/B switch) is not set.
    public static let available = rk_packed_gemm_available() != 0
        && ProcessInfo.processInfo.environment["RNNLM_GEMM"] != "openblas"
    /// Below this many multiply-adds (or 16 rows or columns) packing B costs more than it saves.
    static let minimumProduct = 1 << 20

    @inline(__always)
    static func preferred(m: Int, n: Int, k: Int) -> Bool {
        available && m >= 16 && n >= 16 && m * n * k >= minimumProduct
    }

    /// Runs the product on `rk_sgemm`, the columns split into up to `threads` slices of whole 32-column panels run at
    /// once (each entry is summed the same way in any slice). False, having written nothing, when the kernel
    /// declines (its packing buffer could not be allocated).
    public static func run(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
                    b: UnsafePointer<Float>, ldb: Int, accumulate: Bool, c: UnsafeMutablePointer<Float>, ldc: Int,
                    threads: Int) -> Bool {
        let ars = Int64(transA ? 1 : lda), acs = Int64(transA ? lda : 1)
        let brs = transB ? 1 : ldb, bcs = transB ? ldb : 1
        let slices = max(1, min(threads, n / 64))
        let width = ((n + slices - 1) / slices + 31) / 32 * 32
        guard slices > 1 else {
            return rk_sgemm(Int64(m), Int64(n), Int64(k), a, ars, acs, b, Int64(brs), Int64(bcs), c, Int64(ldc),
                            accumulate ? 1 : 0) != 0
        }
        // A slice the kernel declines is left to OpenBLAS, on its own columns (one thread each).
        let av = SendableConstPointer(a), bv = SendableConstPointer(b), cv = SendablePointer(c)
        DispatchQueue.concurrentPerform(iterations: slices) { s in
            let n0 = min(n, s * width), cols = min(n, n0 + width) - n0
            guard cols > 0 else { return }
            let bs = bv.base + n0 * bcs, cs = cv.at(n0)
            if rk_sgemm(Int64(m), Int64(cols), Int64(k), av.base, ars, acs, bs, Int64(brs), Int64(bcs), cs, Int64(ldc),
                        accumulate ? 1 : 0) == 0 {
                openBLASGemm(transA: transA, transB: transB, m: m, n: cols, k: k, alpha: 1, a: av.base, lda: lda, b: bs,
                             ldb: ldb, beta: accumulate ? 1 : 0, c: cs, ldc: ldc)
            }
        }
        return true
    }
}

/// A read-only pointer handed to `concurrentPerform` tasks.
struct SendableConstPointer<T>: @unchecked Sendable {
    let base: UnsafePointer<T>
    init(_ base: UnsafePointer<T>) { self.base = base }
}
