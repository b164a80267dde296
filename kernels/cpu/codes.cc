// kernels/cpu/codes.cc: what crosses a pipeline link: column slices, 8-bit per-row codes, bf16 codes.
#include <cmath>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

void slice_columns_forward(const KernelContext& ctx, float* out, const float* inp, int N, int C, int offset, int K) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * K)) schedule(static)
  for (int n = 0; n < N; n++) {
    std::memcpy(out + static_cast<int64_t>(n) * K, inp + static_cast<int64_t>(n) * C + offset, sizeof(float) * K);
  }
}

void slice_columns_backward(const KernelContext& ctx, float* dinp, const float* dout, int N, int C, int offset,
                            int K) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * K)) schedule(static)
  for (int n = 0; n < N; n++) {
    float* d = dinp + static_cast<int64_t>(n) * C + offset;
    const float* s = dout + static_cast<int64_t>(n) * K;
    for (int k = 0; k < K; k++) d[k] += s[k];
  }
}

void quantize_rows_int8(const KernelContext& ctx, int8_t* q, float* scales, const float* x, int N, int K) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * K)) schedule(static)
  for (int n = 0; n < N; n++) {
    const float* row = x + static_cast<int64_t>(n) * K;
    int8_t* qrow = q + static_cast<int64_t>(n) * K;
    float absmax = 0.0f;
    for (int k = 0; k < K; k++) absmax = std::fmax(absmax, std::fabs(row[k]));
    const float scale = absmax > 0.0f ? absmax / 127.0f : 1.0f;
    for (int k = 0; k < K; k++) {
      float r = std::nearbyint(row[k] / scale);  // round half to even
      r = r > 127.0f ? 127.0f : (r < -127.0f ? -127.0f : r);
      qrow[k] = static_cast<int8_t>(r);
    }
    scales[n] = scale;
  }
}

void dequantize_rows_int8(const KernelContext& ctx, float* x, const int8_t* q, const float* scales, int N, int K) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * K)) schedule(static)
  for (int n = 0; n < N; n++) {
    const float s = scales[n];
    float* row = x + static_cast<int64_t>(n) * K;
    const int8_t* qrow = q + static_cast<int64_t>(n) * K;
    for (int k = 0; k < K; k++) row[k] = static_cast<float>(qrow[k]) * s;
  }
}

void float_to_bf16(const KernelContext& ctx, uint16_t* out, const float* inp, size_t N) {
#pragma omp parallel for num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) {
    uint32_t bits;
    std::memcpy(&bits, &inp[i], sizeof(bits));
    if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0) {
      out[i] = static_cast<uint16_t>((bits >> 16) | 0x0040u);  // NaN stays a (quiet) NaN
    } else {
      const uint32_t rounding_bias = 0x7FFFu + ((bits >> 16) & 1u);  // round to nearest, ties to even
      out[i] = static_cast<uint16_t>((bits + rounding_bias) >> 16);
    }
  }
}

void bf16_to_float(const KernelContext& ctx, float* out, const uint16_t* inp, size_t N) {
#pragma omp parallel for num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) {
    const uint32_t bits = static_cast<uint32_t>(inp[i]) << 16;
    std::memcpy(&out[i], &bits, sizeof(bits));
  }
}

}  // namespace kernels::cpu
