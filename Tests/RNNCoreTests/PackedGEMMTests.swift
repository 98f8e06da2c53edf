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

/// The blocked GEMM `sgemm` runs for large products (`rk_sgemm`) against a plain triple loop in Double, in every
/// layout of A and B, on shapes that straddle each blocking edge: rows around the 8-row kernel, columns around the
/// 16- and 32-column panel halves and the 512-column block, depths around the 512-deep block; padded leading
/// dimensions, with and without accumulation.
@Suite("Blocked GEMM")
struct BlockedGEMMTests {
    static let shapes = [(1, 1, 1), (7, 15, 3), (9, 17, 511), (8, 16, 512), (17, 33, 513), (3, 513, 40), (40, 200, 1030),
                         (25, 1100, 9)]

    @Test(arguments: shapes)
    func matchesTheDefinition(_ shape: (Int, Int, Int)) throws {
        guard rk_packed_gemm_available() != 0 else {
            // Without AVX-512 the kernel declines and sgemm uses OpenBLAS; nothing else to check here.
            var c: [Float] = [0]
            #expect(rk_sgemm(1, 1, 1, [1], 1, 1, [1], 1, 1, &c, 1, 0) == 0)
            return
        }
        let (M, N, K) = shape
        var rng = RandomGenerator(seed: UInt64(M * 1_000_000 + N * 1000 + K))
        let pad = 3  // leading dimensions wider than the rows, so a stride mix-up reads the wrong entries
        for transA in [false, true] {
            for transB in [false, true] {
                let lda = (transA ? M : K) + pad, ldb = (transB ? K : N) + pad, ldc = N + pad
                let a = (0..<((transA ? K : M) * lda)).map { _ in rng.uniform(-1, 1) }
                let b = (0..<((transB ? N : K) * ldb)).map { _ in rng.uniform(-1, 1) }
                let c0 = (0..<(M * ldc)).map { _ in rng.uniform(-1, 1) }
                for beta in [0, 1] {
                    var c = c0
                    let done = rk_sgemm(Int64(M), Int64(N), Int64(K), a, Int64(transA ? 1 : lda), Int64(transA ? lda : 1),
                                        b, Int64(transB ? 1 : ldb), Int64(transB ? ldb : 1), &c, Int64(ldc), Int32(beta))
                    try #require(done == 1)
                    var worst = 0.0
                    for m in 0..<M {
                        for n in 0..<N {
                            var s = beta == 1 ? Double(c0[m * ldc + n]) : 0
                            for k in 0..<K {
                                s += Double(transA ? a[k * lda + m] : a[m * lda + k])
                                    * Double(transB ? b[n * ldb + k] : b[k * ldb + n])
                            }
                            worst = max(worst, abs(s - Double(c[m * ldc + n])))
                        }
                        // The padding past each row of C is never written.
                        for n in N..<ldc { #expect(c[m * ldc + n] == c0[m * ldc + n]) }
                    }
                    #expect(worst <= 1e-5 * Double(K), "\(shape) transA=\(transA) transB=\(transB) beta=\(beta): error \(worst)")
                }
            }
        }
    }

    /// Each entry is summed in one order whatever the row count, so splitting the rows (as threads and workers do)
    /// gives bit-identical results; and `sgemm` agrees with OpenBLAS on a decoder-sized product.
    @Test func rowSplitIsBitIdenticalAndAgreesWithOpenBLAS() {
        let M = 96, N = 700, K = 530
        var rng = RandomGenerator(seed: 11)
        let a = FloatBuffer(count: M * K), b = FloatBuffer(count: N * K)
        for i in 0..<a.count { a[i] = rng.uniform(-1, 1) }
        for i in 0..<b.count { b[i] = rng.uniform(-1, 1) }
        let whole = FloatBuffer(count: M * N), halves = FloatBuffer(count: M * N), blas = FloatBuffer(count: M * N)
        sgemm(transB: true, m: M, n: N, k: K, a: a.pointer, lda: K, b: b.pointer, ldb: K, beta: 0, c: whole.pointer, ldc: N)
        for (r0, r1) in [(0, 37), (37, M)] {
            sgemm(transB: true, m: r1 - r0, n: N, k: K, a: a.pointer + r0 * K, lda: K, b: b.pointer, ldb: K, beta: 0,
                  c: halves.pointer + r0 * N, ldc: N)
        }
        sgemm(transB: true, m: M, n: N, k: K, a: a.pointer, lda: K, b: b.pointer, ldb: K, beta: 0, c: blas.pointer, ldc: N,
              kernel: .openBLAS)
        var worst: Float = 0
        for i in 0..<(M * N) { worst = max(worst, abs(whole[i] - blas[i])) }
        #expect(worst <= 1e-5 * Float(K), "blocked vs OpenBLAS: \(worst)")
        if BlockedGEMM.available {
            #expect((0..<(M * N)).allSatisfy { whole[$0] == halves[$0] }, "rows split 37 + 59 differ from all 96 at once")
            // Columns split across threads (a coordinator whose OpenBLAS has several), in every layout of B and with
            // accumulation: the same bits as one call.
            for transB in [false, true] {
                let bt = FloatBuffer(count: N * K)  // B stored [K, N] for transB false
                for kk in 0..<K { for j in 0..<N { bt[kk * N + j] = b[j * K + kk] } }
                let (bp, ldb) = transB ? (b.pointer, K) : (bt.pointer, N)
                let one = FloatBuffer(count: M * N), split = FloatBuffer(count: M * N)
                for i in 0..<(M * N) { one[i] = Float(i % 7); split[i] = Float(i % 7) }
                #expect(BlockedGEMM.run(transA: false, transB: transB, m: M, n: N, k: K, a: a.pointer, lda: K, b: bp,
                                        ldb: ldb, accumulate: true, c: one.pointer, ldc: N, threads: 1))
                #expect(BlockedGEMM.run(transA: false, transB: transB, m: M, n: N, k: K, a: a.pointer, lda: K, b: bp,
                                        ldb: ldb, accumulate: true, c: split.pointer, ldc: N, threads: 3))
                #expect((0..<(M * N)).allSatisfy { one[$0] == split[$0] }, "transB \(transB): 3 column slices differ from one call")
                #expect((0..<(M * N)).allSatisfy { abs(one[$0] - whole[$0] - Float($0 % 7)) <= 1e-3 }, "transB \(transB): wrong product")
            }
        }
    }
}
