// kernels/cpu/codes.cc: what crosses a pipeline link: column slices, 8-bit per-row codes, bf16 codes.
#include <cmath>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/int8_code.h"
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

namespace {

// The row's scale (kernels/int8_code.h): absmax / 127, 1 for a zero row, NaN if any element is NaN or infinite.
float int8_row_scale(const float* row, int K) {
  float absmax = 0.0f;
  bool non_finite = false;
  for (int k = 0; k < K; k++) {
    absmax = std::fmax(absmax, std::fabs(row[k]));
    non_finite |= !std::isfinite(row[k]);
  }
  return int8_code::row_scale(absmax, non_finite);
}

}  // namespace

void quantize_rows_int8(const KernelContext& ctx, int8_t* q, float* scales, const float* x, int N, int K) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * K)) schedule(static)
  for (int n = 0; n < N; n++) {
    const float* row = x + static_cast<int64_t>(n) * K;
    int8_t* qrow = q + static_cast<int64_t>(n) * K;
    const float scale = int8_row_scale(row, K);
    for (int k = 0; k < K; k++) qrow[k] = int8_code::code_nearest(row[k], scale);
    scales[n] = scale;
  }
}

void quantize_rows_int8_stochastic(const KernelContext& ctx, int8_t* q, float* scales, const float* x, int N, int K,
                                   uint64_t seed) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * K)) schedule(static)
  for (int n = 0; n < N; n++) {
    const float* row = x + static_cast<int64_t>(n) * K;
    int8_t* qrow = q + static_cast<int64_t>(n) * K;
    const float scale = int8_row_scale(row, K);
    const uint64_t first = static_cast<uint64_t>(n) * static_cast<uint64_t>(K);  // element index n*K + k
    for (int k = 0; k < K; k++) qrow[k] = int8_code::code_stochastic(row[k], scale, seed, first + k);
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
