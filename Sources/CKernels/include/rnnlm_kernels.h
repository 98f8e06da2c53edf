#ifndef RNNLM_KERNELS_H
#define RNNLM_KERNELS_H
#include <stdint.h>

// Elementwise hot loops of the recurrent cells and the loss, in C so that the compiler vectorises them
// (Swift's SIMD types scalarise parts of the same code; measured 3x slower, see bench/README.md).
// Shape legend: B batch rows, H hidden, G gates; a gate row holds G blocks of H, PyTorch order
// (GRU r, z, n; LSTM i, f, g, o). Every pointer is row-major with the row stride stated.

/// exp, logistic sigmoid and tanh as used by every kernel below (about 1 ulp / 1e-7 absolute).
float rk_exp(float x);
float rk_sigmoid(float x);
float rk_tanh(float x);

/// Plain RNN step: `out = act(gx + gh)`, act = tanh, or ReLU when `relu` != 0.
/// gx, gh: [B, H] with row stride `ld`; out: [B, H] dense.
void rk_rnn_forward(int64_t B, int64_t H, int relu, const float *gx, const float *gh, int64_t ld, float *out);

/// Plain RNN step backward: `dpre = (dh + dout) * act'(h)` from the step's output h, into dpre [B, H] stride `ld`.
void rk_rnn_backward(int64_t B, int64_t H, int relu, const float *dh, const float *dout, const float *h,
                     float *dpre, int64_t ld);

/// GRU step. gx, gh: [B, 3H] (x- and h-side pre-activations, biases included); hprev, out: [B, H].
/// Stores act [B, 3H] = (r, z, n) and hn [B, H] = W_hn h + b_hn for the backward.
void rk_gru_forward(int64_t B, int64_t H, const float *gx, const float *gh, const float *hprev,
                    float *act, float *hn, float *out);

/// GRU step backward. dx, dhh: [B, 3H] gradients of the x- and h-side pre-activations; dhprev [B, H]
/// receives the direct path `d * z` (the caller adds dhh · W_hh onto it).
void rk_gru_backward(int64_t B, int64_t H, const float *dh, const float *dout, const float *act,
                     const float *hn, const float *hprev, float *dx, float *dhh, float *dhprev);

/// LSTM step. gx, gh: [B, 4H]; cprev, cout, tanhc, out: [B, H]. Stores act [B, 4H] = (i, f, g, o).
void rk_lstm_forward(int64_t B, int64_t H, const float *gx, const float *gh, const float *cprev,
                     float *act, float *cout, float *tanhc, float *out);

/// LSTM step backward. dc [B, H] holds ∂L/∂c_t on entry and ∂L/∂c_{t-1} on return; dx [B, 4H].
void rk_lstm_backward(int64_t B, int64_t H, const float *dh, const float *dout, const float *act,
                      const float *tanhc, const float *cprev, float *dc, float *dx);

/// Fused log-softmax + cross-entropy over `rows` rows of [rows, V] logits; returns the loss sum. When `bias` [V] is
/// not null it is first added to every row (so a decoder's GEMM can skip copying it into all rows beforehand).
/// When `write_gradient` != 0, overwrites the logits with `scale * (softmax - onehot(target))` and, when
/// `column_sums` [V] is not null, adds each gradient row into it (a decoder's bias gradient, formed while the row
/// is in cache instead of in another pass over [rows, V]).
double rk_cross_entropy(float *logits, const int32_t *targets, int64_t rows, int64_t V, const float *bias,
                        int write_gradient, float scale, float *column_sums);

/// Like rk_cross_entropy with a per-row weight `mask` [rows] (0 or 1 in practice): row r adds
/// `mask[r] * loss_r` to the sum, and its gradient row becomes `mask[r] * scale * (softmax - onehot)`; a row whose
/// weight is 0 is not read (its target may be any value; without write_gradient its logits stay as they were,
/// bias not added), gets a zero gradient row and adds nothing to `column_sums`. The unmasked path stays in rk_cross_entropy so that it pays nothing for the mask.
double rk_cross_entropy_masked(float *logits, const int32_t *targets, const float *mask, int64_t rows, int64_t V,
                               const float *bias, int write_gradient, float scale, float *column_sums);

/// Counter-based inverted dropout over a time-major [T*B, n] matrix: element (t, b, j) is kept iff a hash of
/// (key, rows[b], t, j) maps below 1 - p; kept elements are scaled by 1/(1 - p). `key` already mixes the seed,
/// step and site (see DropoutKey); `rows[b]` is the GLOBAL row index of local column b, so a row's mask does not
/// depend on which other rows share the minibatch. Writes mask [T*B, n] (0 or 1/(1-p)) and out = x * mask
/// (out may alias x).
void rk_dropout_forward(const float *x, float *out, float *mask, int64_t T, int64_t B, int64_t n,
                        const int64_t *rows, uint64_t key, float p);

/// y += x * m over n elements (the backward of an elementwise product with a fixed m).
void rk_mul_add(float *y, const float *x, const float *m, int64_t n);

/// out[j] += Σ_r m[r, j] over the [rows, n] matrix m, summed in row order.
void rk_column_sums(const float *m, int64_t rows, int64_t n, float *out);

/// One-hot input projection: gx[r, :] = bias + W[:, tokens[r]] for W [n, V]. Builds the V distinct rows in the
/// [V, n] scratch `table` first, so each of the `rows` rows is then one contiguous copy.
void rk_onehot_project(float *gx, const int32_t *tokens, int64_t rows, int64_t n, const float *w, int64_t V,
                       const float *bias, float *table);

/// One-hot weight gradient: dw[:, tokens[r]] += dgx[r, :] for dw [n, V], via the [V, n] scratch `acc`.
void rk_onehot_scatter(float *dw, const int32_t *tokens, int64_t rows, int64_t n, const float *dgx, int64_t V,
                       float *acc);

/// Σ x² in Double, as 16 interleaved partial sums (x[i] into sum i mod 16) added in a fixed order at the end:
/// deterministic, and not bound by one addition's latency per element.
double rk_sum_squares(const float *x, int64_t n);

/// 1 when all n values are finite (no NaN, no ±inf).
int rk_all_finite(const float *x, int64_t n);
/// Copies n values from src to dst (not overlapping); 1 when all of them are finite.
int rk_copy_all_finite(float *dst, const float *src, int64_t n);
// bfloat16 with error feedback: v = g[i] + residual[i]; out[i] = v rounded to the nearest bfloat16 (ties to even;
// a finite v that would round to infinity is truncated instead); residual[i] = v - out[i], exactly. Returns 0 when
// some v is not finite (out and residual are then unspecified).
int rk_bf16_compress(uint16_t *out, const float *g, float *residual, int64_t n);
// out[i] = the float of bfloat16 in[i] (exact); returns 0 when some value is not finite.
int rk_bf16_expand_all_finite(float *out, const uint16_t *in, int64_t n);

/// y += x over n elements.
void rk_add(float *y, const float *x, int64_t n);

/// Packed-weight GEMM for the per-step recurrent products (small M). 1 when this CPU runs it (AVX-512);
/// otherwise callers use BLAS.
int rk_packed_gemm_available(void);
/// Floats needed to pack an operand with N columns and K rows.
int64_t rk_packed_size(int64_t N, int64_t K);
/// Packs op(B) = Wᵀ for W [N, K] row-major (the forward product h · W_hhᵀ).
void rk_pack_transposed(const float *w, int64_t N, int64_t K, float *packed);
/// Packs op(B) = W for W [K, N] row-major (the backward product dG · W_hh).
void rk_pack(const float *w, int64_t K, int64_t N, float *packed);
/// C [M, N] = A [M, K] · op(B) (+ C when beta != 0), op(B) packed by one of the functions above.
void rk_gemm_packed(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *packed, float *C,
                    int64_t ldc, int beta);
/// C [M, N] = A · B (+ C when beta != 0) for large products, blocked for the caches, with op(A)[i][k] = A[i·ars + k·acs]
/// and op(B)[k][n] = B[k·brs + n·bcs] (one stride of each is 1: either layout, no transposed copy). Each entry of C is
/// summed in the same order whatever M and N are. Returns 0, having done nothing, where this CPU lacks AVX-512 or the
/// thread's packing buffer cannot be allocated: the caller uses BLAS then.
int rk_sgemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t ars, int64_t acs, const float *B, int64_t brs,
             int64_t bcs, float *C, int64_t ldc, int beta);
/// Adam (PyTorch's form, bias corrections folded into step_size = lr / (1 − β1^t) and bc2_sqrt = √(1 − β2^t)) and SGD
/// (plain when buf is null, else momentum with buf; first: the first step), in place over n parameters. The gradient
/// used is gscale·g (the trainer folds the mean's 1/tokens and the clipping factor into gscale: one pass, not three).
/// Both return 1 when every parameter they wrote is finite, 0 otherwise (checked in the same pass).
int rk_adam_update(float *p, const float *g, float *m, float *v, int64_t n, float gscale, float b1, float b2, float eps,
                   float wd, float step_size, float bc2_sqrt);
int rk_sgd_update(float *p, const float *g, float *buf, int64_t n, float gscale, float lr, float momentum, float wd,
                  int first);

#endif
