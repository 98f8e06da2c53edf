#include "rnnlm_kernels.h"
#include <string.h>

// A small-M GEMM for the per-step recurrent products, with the weight matrix packed once per minibatch.
// OpenBLAS re-packs its B operand (the whole recurrent weight, 1 MB for an H=256 LSTM) on every call, and at
// M = B = 16..64 rows that packing is a large share of the call; here the packing happens once per minibatch
// and each of the 2T per-step products streams the packed panels directly.
//
// Packed layout: panels of RK_NR columns, panel p holding rows k = 0..K-1 of columns p*NR .. p*NR+NR-1
// contiguously ([K][NR] per panel), the last panel zero-padded.

#define RK_NR 32
#define RK_MR 8

int64_t rk_packed_size(int64_t N, int64_t K) { return ((N + RK_NR - 1) / RK_NR) * K * RK_NR; }

void rk_pack_transposed(const float *w, int64_t N, int64_t K, float *packed) {
    // Column n of op(B) = Wᵀ is row n of W [N, K].
    int64_t panels = (N + RK_NR - 1) / RK_NR;
    // Blocks of 16 k keep the 16 destination rows being filled in L1 while 32 source rows are read.
    for (int64_t p = 0; p < panels; p++) {
        float *dst = packed + p * K * RK_NR;
        for (int64_t k0 = 0; k0 < K; k0 += 16) {
            int64_t k1 = K - k0 < 16 ? K : k0 + 16;
            for (int64_t c = 0; c < RK_NR; c++) {
                int64_t n = p * RK_NR + c;
                const float *row = w + n * K;
                for (int64_t k = k0; k < k1; k++) dst[k * RK_NR + c] = n < N ? row[k] : 0;
            }
        }
    }
}

void rk_pack(const float *w, int64_t K, int64_t N, float *packed) {
    // op(B) = W [K, N] itself: each panel row is a contiguous piece of a row of W.
    int64_t panels = (N + RK_NR - 1) / RK_NR;
    for (int64_t p = 0; p < panels; p++) {
        float *dst = packed + p * K * RK_NR;
        int64_t n0 = p * RK_NR, w_ = N - n0 < RK_NR ? N - n0 : RK_NR;
        for (int64_t k = 0; k < K; k++) {
            memcpy(dst + k * RK_NR, w + k * N + n0, sizeof(float) * (size_t)w_);
            for (int64_t c = w_; c < RK_NR; c++) dst[k * RK_NR + c] = 0;
        }
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define RK_AVX512 __attribute__((target("avx512f")))

// C[mr rows, 32 cols] (+)= A[mr, K] · panel[K, 32]; `mask` limits the stored columns of each half.
static inline __attribute__((always_inline)) RK_AVX512 void
kernel(int mr, int64_t K, const float *a, int64_t lda, const float *panel, float *c, int64_t ldc, int beta,
       __mmask16 m0, __mmask16 m1) {
    __m512 acc0[RK_MR], acc1[RK_MR];
    for (int i = 0; i < mr; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); }
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(panel + k * RK_NR), b1 = _mm512_loadu_ps(panel + k * RK_NR + 16);
        for (int i = 0; i < mr; i++) {
            __m512 x = _mm512_set1_ps(a[i * lda + k]);
            acc0[i] = _mm512_fmadd_ps(x, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(x, b1, acc1[i]);
        }
    }
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        if (beta) {
            acc0[i] = _mm512_add_ps(acc0[i], _mm512_maskz_loadu_ps(m0, row));
            acc1[i] = _mm512_add_ps(acc1[i], _mm512_maskz_loadu_ps(m1, row + 16));
        }
        _mm512_mask_storeu_ps(row, m0, acc0[i]);
        _mm512_mask_storeu_ps(row + 16, m1, acc1[i]);
    }
}

static RK_AVX512 void gemm_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                                  const float *packed, float *C, int64_t ldc, int beta) {
    int64_t panels = (N + RK_NR - 1) / RK_NR;
    for (int64_t p = 0; p < panels; p++) {
        const float *panel = packed + p * K * RK_NR;
        int64_t n0 = p * RK_NR, w = N - n0 < RK_NR ? N - n0 : RK_NR;
        __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1);
        __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : w <= 16 ? 0 : (1u << (w - 16)) - 1);
        for (int64_t m = 0; m < M; m += RK_MR) {
            int mr = M - m < RK_MR ? (int)(M - m) : RK_MR;
            const float *a = A + m * lda;
            float *c = C + m * ldc + n0;
            switch (mr) {  // constant row counts, so each case keeps its accumulators in registers
            case 8: kernel(8, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            case 7: kernel(7, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            case 6: kernel(6, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            case 5: kernel(5, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            case 4: kernel(4, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            case 3: kernel(3, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            case 2: kernel(2, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            default: kernel(1, K, a, lda, panel, c, ldc, beta, m0, m1); break;
            }
        }
    }
}

int rk_packed_gemm_available(void) {
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") ? 1 : 0;
    }
    return cached;
}

void rk_gemm_packed(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *packed, float *C,
                    int64_t ldc, int beta) {
    gemm_avx512(M, N, K, A, lda, packed, C, ldc, beta);
}
#else
int rk_packed_gemm_available(void) { return 0; }
void rk_gemm_packed(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *packed, float *C,
                    int64_t ldc, int beta) {
    // Portable fallback (callers use BLAS when rk_packed_gemm_available() is 0; kept correct regardless).
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            const float *panel = packed + (n / RK_NR) * K * RK_NR;
            float s = 0;
            for (int64_t k = 0; k < K; k++) s += A[m * lda + k] * panel[k * RK_NR + n % RK_NR];
            C[m * ldc + n] = beta ? C[m * ldc + n] + s : s;
        }
}
#endif
