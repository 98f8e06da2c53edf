import CKernels
import RNNCore
import Testing

/// The packed-weight GEMM of the per-step recurrent products against a plain triple loop in Double, on shapes
/// that exercise every edge: row counts not a multiple of the 8-row kernel, column counts not a multiple of the
/// 32-column panel, odd K, both packings, with and without accumulation into C.
@Suite("Packed-weight GEMM")
struct PackedGEMMTests {
    @Test(arguments: [(1, 1, 1), (3, 5, 7), (8, 32, 16), (13, 100, 37), (16, 1024, 256), (17, 33, 64), (64, 70, 129)])
    func matchesTheDefinition(_ shape: (Int, Int, Int)) {
        // Runs the AVX-512 kernel where the CPU has it, the portable loop elsewhere; both must be right.
        let (M, N, K) = shape
        var rng = RandomGenerator(seed: UInt64(M * 10_000 + N * 100 + K))
        let a = (0..<(M * K)).map { _ in rng.uniform(-1, 1) }
        let w = (0..<(N * K)).map { _ in rng.uniform(-1, 1) }  // [N, K] for the transposed use, [K, N] otherwise
        let c0 = (0..<(M * N)).map { _ in rng.uniform(-1, 1) }
        for transposed in [true, false] {
            // NaN-filled: an entry the packing fails to write would turn results into NaN.
            var packed = [Float](repeating: .nan, count: Int(rk_packed_size(Int64(N), Int64(K))))
            if transposed { rk_pack_transposed(w, Int64(N), Int64(K), &packed) } else { rk_pack(w, Int64(K), Int64(N), &packed) }
            for beta in [0, 1] {
                var c = c0
                rk_gemm_packed(Int64(M), Int64(N), Int64(K), a, Int64(K), packed, &c, Int64(N), Int32(beta))
                var worst = 0.0
                for m in 0..<M {
                    for n in 0..<N {
                        var s = beta == 1 ? Double(c0[m * N + n]) : 0
                        for k in 0..<K { s += Double(a[m * K + k]) * Double(transposed ? w[n * K + k] : w[k * N + n]) }
                        worst = max(worst, abs(s - Double(c[m * N + n])))
                    }
                }
                #expect(worst <= 1e-5 * Double(K), "M=\(M) N=\(N) K=\(K) transposed=\(transposed) beta=\(beta): error \(worst)")
            }
        }
    }
}
