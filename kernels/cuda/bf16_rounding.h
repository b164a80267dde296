// kernels/cuda/bf16_rounding.h: the bf16 rounding rules shared bit for bit by the CUDA kernels and their CPU twins:
// round to nearest even, and stochastic rounding driven by a counter-based hash of (seed, index), so that the GPU
// and the CPU draw the same random bits for the same element and a run is reproducible from its seed.
// Plain C++ and CUDA alike (host+device functions when compiled by nvcc).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/counter_hash.h"

#ifdef __CUDACC__
#define RESBM_HD __host__ __device__ __forceinline__
#else
#define RESBM_HD inline
#endif

namespace kernels::bf16 {

RESBM_HD uint32_t float_bits(float x) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(x);
#else
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  return b;
#endif
}

RESBM_HD float bits_float(uint32_t b) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof(x));
  return x;
#endif
}

RESBM_HD bool is_nan_bits(uint32_t b) { return (b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu) != 0; }

// Round to nearest even (the wire codes' rule; NaN stays a quiet NaN).
RESBM_HD uint16_t round_nearest(float x) {
  const uint32_t b = float_bits(x);
  if (is_nan_bits(b)) return static_cast<uint16_t>((b >> 16) | 0x0040u);
  return static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

RESBM_HD float widen(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

// The counter-based hash of (seed, index) (kernels/counter_hash.h), shared with the int8 code.
using kernels::hash64;

// Stochastic rounding: adding 16 uniform random bits below the cut, then truncating, rounds up with probability
// equal to the discarded fraction, so E[widen(result)] = x (unbiased: small AdamW updates are not lost on average).
// NaN stays NaN; +-inf stays inf; finite values whose magnitude rounds past the largest bf16 become inf.
RESBM_HD uint16_t round_stochastic(float x, uint64_t seed, uint64_t index) {
  const uint32_t b = float_bits(x);
  if (is_nan_bits(b)) return static_cast<uint16_t>((b >> 16) | 0x0040u);
  if ((b & 0x7F800000u) == 0x7F800000u) return static_cast<uint16_t>(b >> 16);  // inf: no random carry into NaN
  const uint32_t r = static_cast<uint32_t>(hash64(seed, index) >> 48);  // 16 bits
  return static_cast<uint16_t>((b + r) >> 16);
}

}  // namespace kernels::bf16

#undef RESBM_HD
