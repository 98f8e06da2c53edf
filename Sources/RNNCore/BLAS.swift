import CBLAS
import CKernels
import Foundation

/// Row-major single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, with `op(A)` of shape `[m, k]`
/// and `op(B)` of shape `[k, n]`. Leading dimensions are row strides of the stored (untransposed) matrices.
///
/// Large products with `alpha` 1 and `beta` 0 or 1 run on rnnlm's own blocked AVX-512 kernel (`rk_sgemm`) when the
/// CPU has it and OpenBLAS is single-threaded (training splits rows across threads, each with one BLAS thread): on
/// this project's shapes it is 1–11% faster than OpenBLAS's sgemm (the word-level decoder's products, bench/README.md),
/// and each entry's summation order is fixed, whatever the row count. Otherwise, and where it declines, OpenBLAS.
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
       rk_sgemm(Int64(m), Int64(n), Int64(k), a, Int64(transA ? 1 : lda), Int64(transA ? lda : 1),
                b, Int64(transB ? 1 : ldb), Int64(transB ? ldb : 1), c, Int64(ldc), beta == 1 ? 1 : 0) != 0 {
        return
    }
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
        available && m >= 16 && n >= 16 && m * n * k >= minimumProduct && openblas_get_num_threads() == 1
    }
}
