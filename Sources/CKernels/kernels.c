#include "rnnlm_kernels.h"
#include <math.h>
#include <string.h>

// Every function is scalar C over a contiguous inner loop: with -O3 (and the AVX2/FMA flags Package.swift
// passes on x86-64) clang vectorises the loops; without those flags the same code stays correct.
// RK_SIMD marks a loop whose pointers never overlap within an iteration range. Without it clang emits a runtime
// overlap check that fails conservatively for these row layouts and runs the scalar loop (measured: LSTM
// forward gates 200 µs per step instead of 29 µs at B=32, H=256).
#if defined(__clang__)
#define RK_SIMD _Pragma("clang loop vectorize(assume_safety)")
#else
#define RK_SIMD _Pragma("GCC ivdep")
#endif

static inline float k_exp(float x) {
    // Cody-Waite: x = n ln2 + r, |r| <= ln2/2; degree-6 polynomial for e^r; 2^n from the exponent bits.
    x = x < -87.33f ? -87.33f : x;
    x = x > 88.72f ? 88.72f : x;
    const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer held in the low bits
    float k = x * 1.44269504f + magic;
    float n = k - magic;
    float r = x - n * 0.693359375f;
    r = r - n * -2.1219444e-4f;
    float p = 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1;
    p = p * r + 1;
    int32_t kb;
    memcpy(&kb, &k, 4);
    int32_t eb = (kb - 0x4B400000 + 127) << 23;
    float two;
    memcpy(&two, &eb, 4);
    return p * two;
}

static inline float k_sigmoid(float x) { return 1.0f / (1.0f + k_exp(-x)); }

static inline float k_tanh(float x) {
    float e = k_exp(-2.0f * fabsf(x));
    float t = (1.0f - e) / (1.0f + e);
    return x < 0 ? -t : t;
}

float rk_exp(float x) { return k_exp(x); }
float rk_sigmoid(float x) { return k_sigmoid(x); }
float rk_tanh(float x) { return k_tanh(x); }

void rk_rnn_forward(int64_t B, int64_t H, int relu, const float *gx, const float *gh, int64_t ld, float *out) {
    for (int64_t b = 0; b < B; b++) {
        const float *restrict x = gx + b * ld, *restrict h = gh + b * ld;
        float *restrict o = out + b * H;
        if (relu) {
            RK_SIMD
            for (int64_t j = 0; j < H; j++) { float p = x[j] + h[j]; o[j] = p < 0 ? 0 : p; }
        } else {
            RK_SIMD
            for (int64_t j = 0; j < H; j++) o[j] = k_tanh(x[j] + h[j]);
        }
    }
}

void rk_rnn_backward(int64_t B, int64_t H, int relu, const float *dh, const float *dout, const float *h,
                     float *dpre, int64_t ld) {
    for (int64_t b = 0; b < B; b++) {
        const float *restrict d1 = dh + b * H, *restrict d2 = dout + b * H, *restrict hr = h + b * H;
        float *restrict o = dpre + b * ld;
        if (relu) {
            RK_SIMD
            for (int64_t j = 0; j < H; j++) o[j] = hr[j] > 0 ? d1[j] + d2[j] : 0;
        } else {
            RK_SIMD
            for (int64_t j = 0; j < H; j++) o[j] = (d1[j] + d2[j]) * (1 - hr[j] * hr[j]);
        }
    }
}

void rk_gru_forward(int64_t B, int64_t H, const float *gx, const float *gh, const float *hprev,
                    float *act, float *hn, float *out) {
    const int64_t GH = 3 * H;
    for (int64_t b = 0; b < B; b++) {
        const float *restrict x = gx + b * GH, *restrict h = gh + b * GH, *restrict hp = hprev + b * H;
        float *restrict a = act + b * GH, *restrict hnr = hn + b * H, *restrict o = out + b * H;
        RK_SIMD
        for (int64_t j = 0; j < H; j++) {
            float r = k_sigmoid(x[j] + h[j]);
            float z = k_sigmoid(x[H + j] + h[H + j]);
            float hnv = h[2 * H + j];
            float n = k_tanh(x[2 * H + j] + r * hnv);
            a[j] = r; a[H + j] = z; a[2 * H + j] = n;
            hnr[j] = hnv;
            o[j] = n + z * (hp[j] - n);
        }
    }
}

void rk_gru_backward(int64_t B, int64_t H, const float *dh, const float *dout, const float *act,
                     const float *hn, const float *hprev, float *dx, float *dhh, float *dhprev) {
    const int64_t GH = 3 * H;
    for (int64_t b = 0; b < B; b++) {
        const float *restrict d1 = dh + b * H, *restrict d2 = dout + b * H, *restrict a = act + b * GH;
        const float *restrict hnr = hn + b * H, *restrict hp = hprev + b * H;
        float *restrict x = dx + b * GH, *restrict hh = dhh + b * GH, *restrict dp = dhprev + b * H;
        RK_SIMD
        for (int64_t j = 0; j < H; j++) {
            float d = d1[j] + d2[j];
            float r = a[j], z = a[H + j], n = a[2 * H + j];
            float dn = d * (1 - z) * (1 - n * n);
            float dz = d * (hp[j] - n) * z * (1 - z);
            float dr = dn * hnr[j] * r * (1 - r);
            x[j] = dr; x[H + j] = dz; x[2 * H + j] = dn;
            hh[j] = dr; hh[H + j] = dz; hh[2 * H + j] = dn * r;
            dp[j] = d * z;
        }
    }
}

void rk_lstm_forward(int64_t B, int64_t H, const float *gx, const float *gh, const float *cprev,
                     float *act, float *cout, float *tanhc, float *out) {
    const int64_t GH = 4 * H;
    for (int64_t b = 0; b < B; b++) {
        const float *restrict x = gx + b * GH, *restrict h = gh + b * GH, *restrict cp = cprev + b * H;
        float *restrict a = act + b * GH, *restrict co = cout + b * H, *restrict tc = tanhc + b * H;
        float *restrict o = out + b * H;
        RK_SIMD
        for (int64_t j = 0; j < H; j++) {
            float i = k_sigmoid(x[j] + h[j]);
            float f = k_sigmoid(x[H + j] + h[H + j]);
            float g = k_tanh(x[2 * H + j] + h[2 * H + j]);
            float og = k_sigmoid(x[3 * H + j] + h[3 * H + j]);
            float c = f * cp[j] + i * g;
            float t = k_tanh(c);
            a[j] = i; a[H + j] = f; a[2 * H + j] = g; a[3 * H + j] = og;
            co[j] = c; tc[j] = t; o[j] = og * t;
        }
    }
}

void rk_lstm_backward(int64_t B, int64_t H, const float *dh, const float *dout, const float *act,
                      const float *tanhc, const float *cprev, float *dc, float *dx) {
    const int64_t GH = 4 * H;
    for (int64_t b = 0; b < B; b++) {
        const float *restrict d1 = dh + b * H, *restrict d2 = dout + b * H, *restrict a = act + b * GH;
        const float *restrict tc = tanhc + b * H, *restrict cp = cprev + b * H;
        float *restrict dcr = dc + b * H, *restrict x = dx + b * GH;
        RK_SIMD
        for (int64_t j = 0; j < H; j++) {
            float d = d1[j] + d2[j];
            float i = a[j], f = a[H + j], g = a[2 * H + j], og = a[3 * H + j], t = tc[j];
            float dct = dcr[j] + d * og * (1 - t * t);
            x[j] = dct * g * i * (1 - i);
            x[H + j] = dct * cp[j] * f * (1 - f);
            x[2 * H + j] = dct * i * (1 - g * g);
            x[3 * H + j] = d * t * og * (1 - og);
            dcr[j] = dct * f;
        }
    }
}

// Row reductions in 16 independent lanes, combined at the end: a single running max or sum is a serial
// dependency clang will not reorder without -ffast-math, so it would stay scalar. The lanes fix the summation
// order, so results are the same on every run.
#define RK_LANES 16

static inline float k_row_max(const float *restrict x, int64_t V) {
    float lane[RK_LANES];
    for (int i = 0; i < RK_LANES; i++) lane[i] = -INFINITY;
    int64_t j = 0;
    for (; j + RK_LANES <= V; j += RK_LANES)
        for (int i = 0; i < RK_LANES; i++) lane[i] = x[j + i] > lane[i] ? x[j + i] : lane[i];
    float m = -INFINITY;
    for (int i = 0; i < RK_LANES; i++) m = lane[i] > m ? lane[i] : m;
    for (; j < V; j++) m = x[j] > m ? x[j] : m;
    return m;
}

static inline float k_row_sum_exp(const float *restrict x, int64_t V, float m) {
    float lane[RK_LANES] = {0};
    int64_t j = 0;
    for (; j + RK_LANES <= V; j += RK_LANES)
        for (int i = 0; i < RK_LANES; i++) lane[i] += k_exp(x[j + i] - m);
    float s = 0;
    for (int i = 0; i < RK_LANES; i++) s += lane[i];
    for (; j < V; j++) s += k_exp(x[j] - m);
    return s;
}

// x[j] = exp(x[j] - m) in place; returns their sum, in k_row_sum_exp's lanes and order (so the loss is the same).
static inline float k_row_exp_store(float *restrict x, int64_t V, float m) {
    float lane[RK_LANES] = {0};
    int64_t j = 0;
    for (; j + RK_LANES <= V; j += RK_LANES)
        for (int i = 0; i < RK_LANES; i++) { float e = k_exp(x[j + i] - m); x[j + i] = e; lane[i] += e; }
    float s = 0;
    for (int i = 0; i < RK_LANES; i++) s += lane[i];
    for (; j < V; j++) { float e = k_exp(x[j] - m); x[j] = e; s += e; }
    return s;
}

// One row's loss lse - x[y], after x += bias when bias is given (the decoder's bias added here, while the row is
// in cache, instead of copied into every row before the GEMM); with `write`, x becomes ws · (softmax - onehot(y)) and, when colsum is given,
// colsum += that row. One exp per element: the exponentials of the sum pass are kept and scaled by ws / s.
static inline double k_xent_row(float *restrict x, int64_t y, int64_t V, const float *restrict bias, int write, float ws,
                                 float *restrict colsum) {
    if (bias) {
        RK_SIMD
        for (int64_t j = 0; j < V; j++) x[j] += bias[j];
    }
    float m = k_row_max(x, V);
    float xy = x[y];
    if (!write) return (double)m + log((double)k_row_sum_exp(x, V, m)) - (double)xy;
    float s = k_row_exp_store(x, V, m);
    float k = ws / s;
    if (colsum) {
        RK_SIMD
        for (int64_t j = 0; j < V; j++) { float g = x[j] * k; x[j] = g; colsum[j] += g; }
        colsum[y] -= ws;
    } else {
        RK_SIMD
        for (int64_t j = 0; j < V; j++) x[j] *= k;
    }
    x[y] -= ws;
    return (double)m + log((double)s) - (double)xy;
}

double rk_cross_entropy(float *logits, const int32_t *targets, int64_t rows, int64_t V, const float *bias,
                        int write_gradient, float scale, float *column_sums) {
    double total = 0;
    for (int64_t r = 0; r < rows; r++)
        total += k_xent_row(logits + r * V, targets[r], V, bias, write_gradient, scale, column_sums);
    return total;
}

double rk_cross_entropy_masked(float *logits, const int32_t *targets, const float *mask, int64_t rows, int64_t V,
                               const float *bias, int write_gradient, float scale, float *column_sums) {
    double total = 0;
    for (int64_t r = 0; r < rows; r++) {
        float *restrict x = logits + r * V;
        float w = mask[r];
        if (w == 0) {
            if (write_gradient) memset(x, 0, sizeof(float) * (size_t)V);
            continue;
        }
        total += (double)w * k_xent_row(x, targets[r], V, bias, write_gradient, w * scale, column_sums);
    }
    return total;
}

// splitmix64's finaliser (Stafford's variant 13): a bijection on 64 bits with full avalanche.
static inline uint64_t k_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// MurmurHash3's 32-bit finaliser: 32-bit multiplies only, so the per-unit loop vectorises with AVX2.
static inline uint32_t k_mix32(uint32_t h) {
    h ^= h >> 16; h *= 0x85EBCA6Bu;
    h ^= h >> 13; h *= 0xC2B2AE35u;
    return h ^ (h >> 16);
}

void rk_dropout_forward(const float *x, float *out, float *mask, int64_t T, int64_t B, int64_t n,
                        const int64_t *rows, uint64_t key, float p) {
    // keep iff the top 24 bits of the hash, as a uniform u in [0, 1), satisfy u < 1 - p.
    const uint32_t threshold = (uint32_t)((double)(1.0f - p) * 16777216.0);
    const float scale = 1.0f / (1.0f - p);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t b = 0; b < B; b++) {
            // One 64-bit hash per (row, t); both halves then key a 32-bit hash of the unit index.
            uint64_t base = k_mix64(k_mix64(key ^ (uint64_t)rows[b]) + (uint64_t)t * 0x9E3779B97F4A7C15ull);
            const uint32_t lo = (uint32_t)base, hi = (uint32_t)(base >> 32);
            const int64_t off = (t * B + b) * n;
            // x and out may be the same buffer (element j is read before it is written): no restrict on them.
            const float *xr = x + off;
            float *o = out + off, *restrict m = mask + off;
            RK_SIMD
            for (int64_t j = 0; j < n; j++) {
                uint32_t h = k_mix32(k_mix32(lo ^ ((uint32_t)j * 0x9E3779B9u)) ^ hi);
                float mj = (h >> 8) < threshold ? scale : 0.0f;
                m[j] = mj;
                o[j] = xr[j] * mj;
            }
        }
    }
}

void rk_mul_add(float *y, const float *x, const float *m, int64_t n) {
    float *restrict yy = y;
    const float *restrict xx = x, *restrict mm = m;
    RK_SIMD
    for (int64_t i = 0; i < n; i++) yy[i] += xx[i] * mm[i];
}

void rk_column_sums(const float *m, int64_t rows, int64_t n, float *out) {
    // Blocks of 64 columns keep the partial sums in registers while the rows stream by.
    for (int64_t j0 = 0; j0 < n; j0 += 64) {
        int64_t w = n - j0 < 64 ? n - j0 : 64;
        float acc[64] = {0};
        for (int64_t r = 0; r < rows; r++) {
            const float *restrict row = m + r * n + j0;
            RK_SIMD
            for (int64_t j = 0; j < w; j++) acc[j] += row[j];
        }
        RK_SIMD
        for (int64_t j = 0; j < w; j++) out[j0 + j] += acc[j];
    }
}

void rk_onehot_project(float *gx, const int32_t *tokens, int64_t rows, int64_t n, const float *w, int64_t V,
                       const float *bias, float *table) {
    for (int64_t v = 0; v < V; v++) {
        float *restrict t = table + v * n;
        RK_SIMD
        for (int64_t j = 0; j < n; j++) t[j] = bias[j] + w[j * V + v];
    }
    for (int64_t r = 0; r < rows; r++) memcpy(gx + r * n, table + (int64_t)tokens[r] * n, sizeof(float) * (size_t)n);
}

void rk_onehot_scatter(float *dw, const int32_t *tokens, int64_t rows, int64_t n, const float *dgx, int64_t V,
                       float *acc) {
    memset(acc, 0, sizeof(float) * (size_t)(V * n));
    for (int64_t r = 0; r < rows; r++) {
        float *restrict dst = acc + (int64_t)tokens[r] * n;
        const float *restrict src = dgx + r * n;
        RK_SIMD
        for (int64_t j = 0; j < n; j++) dst[j] += src[j];
    }
    for (int64_t j = 0; j < n; j++) {
        float *restrict out = dw + j * V;
        for (int64_t v = 0; v < V; v++) out[v] += acc[v * n + j];
    }
}

void rk_add(float *y, const float *x, int64_t n) {
    float *restrict yy = y;
    const float *restrict xx = x;
    RK_SIMD
    for (int64_t i = 0; i < n; i++) yy[i] += xx[i];
}

int rk_all_finite(const float *x, int64_t n) {
    // x * 0 is 0 for finite x and NaN for NaN or ±inf; the OR of the bit patterns stays 0 only if all were 0.
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float z = x[i] * 0.0f;
        uint32_t b;
        memcpy(&b, &z, 4);
        bad |= b & 0x7fffffffu;
    }
    return bad == 0;
}

int rk_bf16_compress(uint16_t *restrict out, const float *restrict g, float *restrict residual, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = g[i] + residual[i];
        uint32_t u;
        memcpy(&u, &v, 4);
        bad |= ((u >> 23) & 0xffu) == 0xffu;
        uint32_t r = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        if (((r >> 7) & 0xffu) == 0xffu) r = u >> 16;  // rounding would overflow to infinity: truncate
        out[i] = (uint16_t)r;
        uint32_t back = r << 16;
        float q;
        memcpy(&q, &back, 4);
        residual[i] = v - q;
    }
    return bad == 0;
}

int rk_bf16_expand_all_finite(float *restrict out, const uint16_t *restrict in, int64_t n) {
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u = (uint32_t)in[i] << 16;
        bad |= ((u >> 23) & 0xffu) == 0xffu;
        memcpy(&out[i], &u, 4);
    }
    return bad == 0;
}

int rk_copy_all_finite(float *restrict dst, const float *restrict src, int64_t n) {
    // rk_all_finite's test on the values as they are copied: one pass over a received payload instead of two.
    uint32_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float v = src[i];
        dst[i] = v;
        float z = v * 0.0f;
        uint32_t b;
        memcpy(&b, &z, 4);
        bad |= b & 0x7fffffffu;
    }
    return bad == 0;
}

double rk_sum_squares(const float *x, int64_t n) {
    double part[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        RK_SIMD
        for (int j = 0; j < 16; j++) part[j] += (double)x[i + j] * (double)x[i + j];
    }
    for (int j = 0; i + j < n; j++) part[j] += (double)x[i + j] * (double)x[i + j];
    double s = 0;
    for (int j = 0; j < 16; j++) s += part[j];
    return s;
}

// 1 when x is ±inf or NaN (exponent bits all ones): an integer test, so the callers' OR over it vectorises.
static inline int32_t k_nonfinite(float x) {
    uint32_t b;
    memcpy(&b, &x, 4);
    return (int32_t)(((b >> 23) & 0xFF) == 0xFF);
}

int rk_adam_update(float *restrict p, const float *restrict g, float *restrict m, float *restrict v, int64_t n,
                   float gscale, float b1, float b2, float eps, float wd, float step_size, float bc2_sqrt) {
    int32_t bad = 0;
    RK_SIMD
    for (int64_t i = 0; i < n; i++) {
        float d = gscale * g[i] + wd * p[i];
        m[i] = b1 * m[i] + (1 - b1) * d;
        v[i] = b2 * v[i] + (1 - b2) * d * d;
        float q = p[i] - step_size * m[i] / (sqrtf(v[i]) / bc2_sqrt + eps);
        p[i] = q;
        bad |= k_nonfinite(q);
    }
    return !bad;
}

int rk_sgd_update(float *restrict p, const float *restrict g, float *restrict buf, int64_t n, float gscale, float lr,
                  float momentum, float wd, int first) {
    int32_t bad = 0;
    if (buf == 0) {
        RK_SIMD
        for (int64_t i = 0; i < n; i++) {
            float q = p[i] - lr * (gscale * g[i] + wd * p[i]);
            p[i] = q;
            bad |= k_nonfinite(q);
        }
        return !bad;
    }
    RK_SIMD
    for (int64_t i = 0; i < n; i++) {
        float d = gscale * g[i] + wd * p[i];
        buf[i] = first ? d : momentum * buf[i] + d;
        float q = p[i] - lr * buf[i];
        p[i] = q;
        bad |= k_nonfinite(q);
    }
    return !bad;
}
