// kernels/counter_hash.h: the counter-based hash that drives every random rounding in the kernels (bf16 stochastic
// rounding, the int8 code's stochastic rounding): 64 well-mixed bits from (seed, index), no state, so the GPU and
// the CPU draw the same bits for the same element. Plain C++ and CUDA alike (host+device under nvcc).
#pragma once

#include <cstdint>

#ifdef __CUDACC__
#define RESBM_HASH_HD __host__ __device__ __forceinline__
#else
#define RESBM_HASH_HD inline
#endif

namespace kernels {

// splitmix64's finaliser over (seed, index).
RESBM_HASH_HD uint64_t hash64(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

}  // namespace kernels

#undef RESBM_HASH_HD
