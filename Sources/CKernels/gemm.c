#include "rnnlm_kernels.h"
#include <pthread.h>
#include <stdlib.h>
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

// Packs the [kc, nc] block of op(B) whose first column is n0, with op(B)[k][n] = b[k·brs + n·bcs] (one stride 1),
// into panels of the layout above, the last one zero-padded: the per-step packings below and each block of the
// blocked GEMM.
static void pack_block(const float *b, int64_t brs, int64_t bcs, int64_t kc, int64_t n0, int64_t nc, float *dst) {
    for (int64_t p = 0; p * RK_NR < nc; p++, dst += kc * RK_NR) {
        int64_t c0 = n0 + p * RK_NR, w = nc - p * RK_NR < RK_NR ? nc - p * RK_NR : RK_NR;
        if (bcs == 1) {  // rows of op(B) are contiguous: a piece of each row per panel row
            for (int64_t k = 0; k < kc; k++) {
                memcpy(dst + k * RK_NR, b + k * brs + c0, sizeof(float) * (size_t)w);
                for (int64_t j = w; j < RK_NR; j++) dst[k * RK_NR + j] = 0;
            }
        } else {  // columns of op(B) are contiguous (op(B) = Wᵀ): each fills one lane of the panel (column by
                  // column: the decoder's forward product ran 3-4% faster than with blocks of 16 k)
            for (int64_t j = 0; j < RK_NR; j++) {
                const float *col = b + (c0 + j) * bcs;
                for (int64_t k = 0; k < kc; k++) dst[k * RK_NR + j] = j < w ? col[k * brs] : 0;
            }
        }
    }
}

// Column n of op(B) = Wᵀ is row n of W [N, K] (the forward product h · W_hhᵀ).
void rk_pack_transposed(const float *w, int64_t N, int64_t K, float *packed) { pack_block(w, 1, K, K, 0, N, packed); }

// op(B) = W [K, N] itself (the backward product dG · W_hh).
void rk_pack(const float *w, int64_t K, int64_t N, float *packed) { pack_block(w, N, 1, K, 0, N, packed); }

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define RK_AVX512 __attribute__((target("avx512f")))

// C[mr rows, 16·nv cols] (+)= A · panel[K, 32] with A[i][k] = a[i·ars + k·acs]; `m0`/`m1` limit the stored columns
// of each 16-column half (nv = 1 computes only the first half: a panel 16 or fewer columns wide costs half as much).
static inline __attribute__((always_inline)) RK_AVX512 void
kernel(int mr, int nv, int64_t K, const float *a, int64_t ars, int64_t acs, const float *panel, float *c, int64_t ldc,
       int beta, __mmask16 m0, __mmask16 m1) {
    __m512 acc0[RK_MR], acc1[RK_MR];
    for (int i = 0; i < mr; i++) { acc0[i] = _mm512_setzero_ps(); acc1[i] = _mm512_setzero_ps(); }
    if (beta)  // C's lines arrive while the products run (a large C, e.g. a decoder's dW, is in memory, not cache)
        for (int i = 0; i < mr; i++) {
            _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
            if (nv > 1) _mm_prefetch((const char *)(c + i * ldc + 16), _MM_HINT_T0);
        }
    for (int64_t k = 0; k < K; k++) {
        __m512 b0 = _mm512_loadu_ps(panel + k * RK_NR), b1 = nv > 1 ? _mm512_loadu_ps(panel + k * RK_NR + 16) : b0;
        const float *ak = a + k * acs;
        for (int i = 0; i < mr; i++) {
            __m512 x = _mm512_set1_ps(ak[i * ars]);
            acc0[i] = _mm512_fmadd_ps(x, b0, acc0[i]);
            if (nv > 1) acc1[i] = _mm512_fmadd_ps(x, b1, acc1[i]);
        }
    }
    for (int i = 0; i < mr; i++) {
        float *row = c + i * ldc;
        if (beta) acc0[i] = _mm512_add_ps(acc0[i], _mm512_maskz_loadu_ps(m0, row));
        _mm512_mask_storeu_ps(row, m0, acc0[i]);
        if (nv > 1) {
            if (beta) acc1[i] = _mm512_add_ps(acc1[i], _mm512_maskz_loadu_ps(m1, row + 16));
            _mm512_mask_storeu_ps(row + 16, m1, acc1[i]);
        }
    }
}

#define RK_KERNEL_ROWS(NV)                                                                                             \
    switch (mr) { /* constant row counts, so each case keeps its accumulators in registers */                        \
    case 8: kernel(8, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                         \
    case 7: kernel(7, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                         \
    case 6: kernel(6, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                         \
    case 5: kernel(5, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                         \
    case 4: kernel(4, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                         \
    case 3: kernel(3, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                         \
    case 2: kernel(2, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                         \
    default: kernel(1, NV, K, a, ars, acs, panel, c, ldc, beta, m0, m1); break;                                        \
    }

// One tile: `mr` ≤ 8 rows of A against one panel whose first `w` ≤ 32 columns are real.
static RK_AVX512 void tile(int mr, int64_t w, int64_t K, const float *a, int64_t ars, int64_t acs, const float *panel,
                           float *c, int64_t ldc, int beta) {
    __mmask16 m0 = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1);
    __mmask16 m1 = (__mmask16)(w >= 32 ? 0xFFFF : w <= 16 ? 0 : (1u << (w - 16)) - 1);
    if (w > 16) { RK_KERNEL_ROWS(2) } else { RK_KERNEL_ROWS(1) }
}

static RK_AVX512 void gemm_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                                  const float *packed, float *C, int64_t ldc, int beta) {
    int64_t panels = (N + RK_NR - 1) / RK_NR;
    for (int64_t p = 0; p < panels; p++) {
        const float *panel = packed + p * K * RK_NR;
        int64_t n0 = p * RK_NR, w = N - n0 < RK_NR ? N - n0 : RK_NR;
        for (int64_t m = 0; m < M; m += RK_MR) {
            int mr = M - m < RK_MR ? (int)(M - m) : RK_MR;
            tile(mr, w, K, A + m * lda, lda, 1, panel, C + m * ldc + n0, ldc, beta);
        }
    }
}

// The blocked GEMM for large products (the decoder's three, the layers' batched ones). B is packed a [KC, NC] block at
// a time into panels of the layout above (the block stays in L2, each panel in L1 while it is used); A is read in
// place, either layout, since the kernel only broadcasts its scalars. Each C entry is one sequential sum over k
// within each KC block, blocks in order, so the result does not depend on M, on N or on how rows are split.
#define RK_KC 512
#define RK_NC 512

static pthread_key_t pack_key;
static pthread_once_t pack_once = PTHREAD_ONCE_INIT;
static void make_pack_key(void) { pthread_key_create(&pack_key, free); }

// This thread's [KC, NC] packing buffer (freed when the thread ends), or NULL when it cannot be allocated.
static float *pack_buffer(void) {
    pthread_once(&pack_once, make_pack_key);
    float *buf = pthread_getspecific(pack_key);
    if (!buf) {
        buf = aligned_alloc(64, sizeof(float) * RK_KC * RK_NC);
        if (buf && pthread_setspecific(pack_key, buf) != 0) { free(buf); buf = NULL; }
    }
    return buf;
}

static RK_AVX512 int sgemm_avx512(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs,
                                  const float *B, int64_t brs, int64_t bcs, float *C, int64_t ldc, int beta) {
    float *packed = pack_buffer();
    if (!packed) return 0;
    for (int64_t jc = 0; jc < N; jc += RK_NC) {
        int64_t nc = N - jc < RK_NC ? N - jc : RK_NC;
        for (int64_t pc = 0; pc < K; pc += RK_KC) {
            int64_t kc = K - pc < RK_KC ? K - pc : RK_KC;
            pack_block(B + pc * brs, brs, bcs, kc, jc, nc, packed);
            int accumulate = beta || pc > 0;
            // A read transposed (a column of op(A) is a row in memory) and larger than L2 (the decoder's dW = dyᵀ·x,
            // 17 MB of dy): its kc rows are strided streams that the hardware prefetcher does not follow, so the
            // cache lines two tiles ahead will start on are fetched ahead (dW 19.4 -> 17.8-18.4 ms, alternating).
            int prefetch_a = ars == 1 && M * kc * (int64_t)sizeof(float) > ((int64_t)2 << 20);
            for (int64_t ic = 0; ic < M; ic += RK_MR) {
                int mr = M - ic < RK_MR ? (int)(M - ic) : RK_MR;
                const float *a = A + ic * ars + pc * acs;
                if (prefetch_a && ic + 2 * RK_MR < M && ((ic + 2 * RK_MR) & 15) == 0) {
                    const float *ahead = A + (ic + 2 * RK_MR) + pc * acs;
                    for (int64_t k = 0; k < kc; k++) _mm_prefetch((const char *)(ahead + k * acs), _MM_HINT_T1);
                }
                for (int64_t p = 0; p * RK_NR < nc; p++) {
                    int64_t w = nc - p * RK_NR < RK_NR ? nc - p * RK_NR : RK_NR;
                    tile(mr, w, kc, a, ars, acs, packed + p * kc * RK_NR, C + ic * ldc + jc + p * RK_NR, ldc,
                         accumulate);
                }
            }
        }
    }
    return 1;
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

int rk_sgemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t brs,
             int64_t bcs, float *C, int64_t ldc, int beta) {
    if (!rk_packed_gemm_available()) return 0;
    return sgemm_avx512(M, N, K, A, ars, acs, B, brs, bcs, C, ldc, beta);
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
int rk_sgemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t brs,
             int64_t bcs, float *C, int64_t ldc, int beta) {
    return 0;  // no AVX-512 here: callers use BLAS
}
#endif
