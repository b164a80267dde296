// kernels/int8_code.h: the rules of the 8-bit wire code, shared bit for bit by the CPU kernels (kernels/cpu/codes.cc)
// and their CUDA twins (kernels/cuda/codes.cu). Plain C++ and CUDA alike (host+device functions under nvcc).
//
// A row x (K) is sent as K int8 values and one f32 scale: scale = absmax(x) / 127 (1 for an all-zero row), q =
// round(x / scale) in [-127, 127], decoded as q * scale.
//   - round to nearest even: the forward code (its error is bounded by scale / 2 and does not accumulate);
//   - stochastic rounding: the code's gradient on the way back. floor(v) + 1 with probability v - floor(v), so that
//     E[q * scale] = x: a biased (nearest) gradient would push every step's update the same way. The random bits
//     come from a counter-based hash of (seed, element index), so the CPU and the GPU draw the same bits and a run
//     is reproducible from its seed.
//   - a row with a NaN or an infinity decodes to NaN in every element (scale NaN, codes 0): the training loop's NaN
//     check then sees it, where a cast of NaN to int8 would be undefined behaviour.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/counter_hash.h"

#ifdef __CUDACC__
#define RESBM_INT8_HD __host__ __device__ __forceinline__
#else
#define RESBM_INT8_HD inline
#endif

namespace kernels::int8_code {

// The row's scale from its absmax (max of |x|, NaN-free) and whether any element was NaN or infinite.
RESBM_INT8_HD float row_scale(float absmax, bool non_finite) {
  if (non_finite) return NAN;
  return absmax > 0.0f ? absmax / 127.0f : 1.0f;
}

RESBM_INT8_HD float clamp127(float v) { return v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v); }

// Round to nearest, ties to even (rint in the default rounding mode). A NaN scale gives code 0.
RESBM_INT8_HD int8_t code_nearest(float x, float scale) {
  if (scale != scale) return 0;
  return static_cast<int8_t>(clamp127(rintf(x / scale)));
}

// Stochastic rounding of x / scale with 24 random bits of hash(seed, index): rounds up with probability equal to
// the fraction (to within 2^-24). A NaN scale gives code 0.
RESBM_INT8_HD int8_t code_stochastic(float x, float scale, uint64_t seed, uint64_t index) {
  if (scale != scale) return 0;
  const float v = x / scale;
  const float lower = floorf(v);
  const float u = static_cast<float>(kernels::hash64(seed, index) >> 40) * (1.0f / 16777216.0f);  // [0, 1), 24 bits
  return static_cast<int8_t>(clamp127(u < v - lower ? lower + 1.0f : lower));
}

}  // namespace kernels::int8_code

#undef RESBM_INT8_HD
