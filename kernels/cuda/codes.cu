// kernels/cuda/codes.cu: what crosses a pipeline link: 8-bit per-row codes (absmax scale) and bf16 codes. Each
// output is computed by the same arithmetic as the CPU twin (IEEE division, round half to even), so the codes match
// it bit for bit.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"
#include "kernels/int8_code.h"

namespace kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

// One warp per row: absmax and the non-finite flag, then the codes (kernels/int8_code.h's rules, as the CPU twin).
// stochastic: round each element from hash(seed, row*K + k), else to nearest even.
__global__ void quantize_rows_int8_kernel(int8_t* q, float* scales, const float* x, int N, int K, bool stochastic,
                                          uint64_t seed) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* r = x + static_cast<size_t>(row) * K;
  int8_t* qr = q + static_cast<size_t>(row) * K;
  float absmax = 0.0f, non_finite = 0.0f;
  for (int k = lane; k < K; k += 32) {
    absmax = fmaxf(absmax, fabsf(r[k]));  // fmaxf drops a NaN operand: the flag below catches it
    if (!(fabsf(r[k]) < INFINITY)) non_finite = 1.0f;  // NaN or inf (a NaN compares false)
  }
  absmax = warp_max(absmax);  // max is exact: the order does not matter
  non_finite = warp_max(non_finite);
  const float scale = int8_code::row_scale(absmax, non_finite > 0.0f);
  const uint64_t first = static_cast<uint64_t>(row) * static_cast<uint64_t>(K);
  for (int k = lane; k < K; k += 32) {
    qr[k] = stochastic ? int8_code::code_stochastic(r[k], scale, seed, first + k) : int8_code::code_nearest(r[k], scale);
  }
  if (lane == 0) scales[row] = scale;
}

__global__ void dequantize_rows_int8_kernel(float* x, const int8_t* q, const float* scales, int N, int K) {
  const size_t n = static_cast<size_t>(N) * K;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    x[i] = static_cast<float>(q[i]) * scales[i / K];
  }
}

// Round to nearest even on the bit pattern; a NaN stays a quiet NaN with its sign and top payload bits (the CPU
// twin's rule, rather than __float2bfloat16_rn's canonical NaN, so the codes compare bitwise).
__global__ void float_to_bf16_kernel(uint16_t* out, const float* inp, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint32_t bits = __float_as_uint(inp[i]);
    if ((bits & 0x7F800000u) == 0x7F800000u && (bits & 0x007FFFFFu) != 0) {
      out[i] = static_cast<uint16_t>((bits >> 16) | 0x0040u);
    } else {
      out[i] = static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
    }
  }
}

__global__ void bf16_to_float_kernel(float* out, const uint16_t* inp, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = __uint_as_float(static_cast<uint32_t>(inp[i]) << 16);
  }
}

}  // namespace

void quantize_rows_int8(const KernelContext& ctx, int8_t* q, float* scales, const float* x, int N, int K) {
  if (N == 0) return;
  quantize_rows_int8_kernel<<<ceil_div(N, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(
      q, scales, x, N, K, /*stochastic=*/false, 0);
  CUDA_CHECK_LAUNCH();
}

void quantize_rows_int8_stochastic(const KernelContext& ctx, int8_t* q, float* scales, const float* x, int N, int K,
                                   uint64_t seed) {
  if (N == 0) return;
  quantize_rows_int8_kernel<<<ceil_div(N, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(
      q, scales, x, N, K, /*stochastic=*/true, seed);
  CUDA_CHECK_LAUNCH();
}

void dequantize_rows_int8(const KernelContext& ctx, float* x, const int8_t* q, const float* scales, int N, int K) {
  const size_t n = static_cast<size_t>(N) * K;
  if (n == 0) return;
  dequantize_rows_int8_kernel<<<grid_for(n), 256, 0, stream_of(ctx)>>>(x, q, scales, N, K);
  CUDA_CHECK_LAUNCH();
}

void float_to_bf16(const KernelContext& ctx, uint16_t* out, const float* inp, size_t N) {
  if (N == 0) return;
  float_to_bf16_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(out, inp, N);
  CUDA_CHECK_LAUNCH();
}

void bf16_to_float(const KernelContext& ctx, float* out, const uint16_t* inp, size_t N) {
  if (N == 0) return;
  bf16_to_float_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(out, inp, N);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
