// kernels/cpu/vecmath.h: exp written so that GCC vectorises the loops calling it (libm's expf/tanhf stop that).
// Internal to kernels/cpu. Accurate to a few ulp; same inputs give the same bits (no data-dependent paths).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace kernels::cpu {

// e^x: 2^n * p(r), n = round(x / ln 2), r = x - n ln 2 (two-part ln 2), p the Cephes expf polynomial.
// x < -87.3 gives 0, x > 88 gives e^88 (not inf); NaN stays NaN.
inline float vexp(float x) {
  const bool underflow = x < -87.3f;
  x = x > 88.0f ? 88.0f : x;
  x = x < -87.3f ? -87.3f : x;
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return underflow ? 0.0f : p * scale;
}

}  // namespace kernels::cpu
