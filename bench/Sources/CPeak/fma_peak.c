#include "fma_peak.h"

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>

static __attribute__((target("avx512f"))) double run(int64_t iterations) {
    __m512 acc[12];
    for (int i = 0; i < 12; i++) acc[i] = _mm512_set1_ps(0.001f * (float)i);
    __m512 b = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.0001f);
    for (int64_t k = 0; k < iterations; k++)
        for (int i = 0; i < 12; i++) acc[i] = _mm512_fmadd_ps(acc[i], b, c);
    float sink = 0;
    for (int i = 0; i < 12; i++) sink += _mm512_reduce_add_ps(acc[i]);
    __asm__ volatile("" : : "x"(sink));  // keep the chains live
    return 2.0 * 16 * 12 * (double)iterations;
}

double fma_peak_flops(int64_t iterations) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? run(iterations) : 0;
}
#else
double fma_peak_flops(int64_t iterations) { (void)iterations; return 0; }
#endif
