#include <stdint.h>

/// Runs `iterations` rounds of 12 independent 16-lane fused multiply-adds held in registers (no memory traffic) and
/// returns the floating-point operations done (2·16·12 per round), or 0 where the CPU lacks AVX-512. Timed by the
/// caller: the core's fp32 FMA peak, the ceiling no GEMM passes.
double fma_peak_flops(int64_t iterations);
