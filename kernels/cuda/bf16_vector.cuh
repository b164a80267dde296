// kernels/cuda/bf16_vector.cuh: packs of P consecutive values for the bf16 activation kernels (bf16_*.cu), so that
// one kernel body serves both paths: P = 8 moves 16 bytes of bf16 (or 2 x 16 bytes of fp32) per load or store, the
// widest access a thread can issue, and P = 1 is the scalar fallback for sizes or addresses that are not multiples
// of 8 elements / 16 bytes. The host picks P with pack_width(). Values are widened to fp32 on load (exact) and
// rounded to nearest even on store (bf16_rounding.h), so a pack changes only how memory is touched, never the
// arithmetic. Device code: include only from .cu files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "kernels/cuda/bf16_rounding.h"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

constexpr int kPack = 8;  // 8 bf16 = 16 bytes = one 128-bit access

// kPack when every row of `len` elements starting at each pointer is 16-byte aligned (len a multiple of 8 and the
// base addresses 16-byte aligned), else 1. Null pointers (optional operands) do not count.
inline int pack_width(size_t len, std::initializer_list<const void*> ptrs) {
  if (len % kPack != 0) return 1;
  for (const void* p : ptrs) {
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % 16 != 0) return 1;
  }
  return kPack;
}

// 16 bytes, as one vector access.
struct alignas(16) Bf16x8 {
  uint16_t h[8];
};

template <int P>
__device__ __forceinline__ void load_pack(float (&x)[P], const uint16_t* p) {
  if constexpr (P == kPack) {
    const Bf16x8 v = *reinterpret_cast<const Bf16x8*>(p);
#pragma unroll
    for (int i = 0; i < P; i++) x[i] = kernels::bf16::widen(v.h[i]);
  } else {
#pragma unroll
    for (int i = 0; i < P; i++) x[i] = kernels::bf16::widen(p[i]);
  }
}

template <int P>
__device__ __forceinline__ void load_pack(float (&x)[P], const float* p) {
  if constexpr (P == kPack) {
    const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
    x[0] = a.x, x[1] = a.y, x[2] = a.z, x[3] = a.w, x[4] = b.x, x[5] = b.y, x[6] = b.z, x[7] = b.w;
  } else {
#pragma unroll
    for (int i = 0; i < P; i++) x[i] = p[i];
  }
}

// Rounds each value to nearest even and stores the pack (bf16), or stores it as it is (fp32).
template <int P>
__device__ __forceinline__ void store_pack(uint16_t* p, const float (&x)[P]) {
  if constexpr (P == kPack) {
    Bf16x8 v;
#pragma unroll
    for (int i = 0; i < P; i++) v.h[i] = kernels::bf16::round_nearest(x[i]);
    *reinterpret_cast<Bf16x8*>(p) = v;
  } else {
#pragma unroll
    for (int i = 0; i < P; i++) p[i] = kernels::bf16::round_nearest(x[i]);
  }
}

template <int P>
__device__ __forceinline__ void store_pack(float* p, const float (&x)[P]) {
  if constexpr (P == kPack) {
    reinterpret_cast<float4*>(p)[0] = make_float4(x[0], x[1], x[2], x[3]);
    reinterpret_cast<float4*>(p)[1] = make_float4(x[4], x[5], x[6], x[7]);
  } else {
#pragma unroll
    for (int i = 0; i < P; i++) p[i] = x[i];
  }
}

}  // namespace kernels::cuda
