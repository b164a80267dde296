// kernels/cuda/elementwise.cu: elementwise kernels: GELU fwd/bwd, add, accumulate, scale, fill, axpy, and the
// column slices of the ResBM identity path. Each output element is written by one thread: deterministic.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi), as in the CPU twin
constexpr float kCubic = 0.044715f;

// Grid-stride loops: one launch size covers any N (size_t: activations of GPT-2 large exceed 2^31 elements).
#define GRID_STRIDE(i, n) \
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < (n); i += static_cast<size_t>(gridDim.x) * blockDim.x)

__global__ void gelu_forward_kernel(float* out, const float* inp, size_t n) {
  GRID_STRIDE(i, n) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    out[i] = 0.5f * x * (1.0f + tanhf(u));
  }
}

__global__ void gelu_backward_kernel(float* dinp, const float* inp, const float* dout, size_t n) {
  GRID_STRIDE(i, n) {
    const float x = inp[i];
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float th = tanhf(u);
    const float sech2 = 1.0f - th * th;
    const float grad = 0.5f * (1.0f + th) + 0.5f * x * sech2 * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    dinp[i] += grad * dout[i];
  }
}

__global__ void add_kernel(float* out, const float* a, const float* b, size_t n) {
  GRID_STRIDE(i, n) out[i] = a[i] + b[i];
}

__global__ void axpy_kernel(float* dst, const float* src, float s, size_t n) {
  GRID_STRIDE(i, n) dst[i] += s * src[i];
}

__global__ void scale_kernel(float* x, float s, size_t n) {
  GRID_STRIDE(i, n) x[i] *= s;
}

__global__ void fill_kernel(float* x, float value, size_t n) {
  GRID_STRIDE(i, n) x[i] = value;
}

// One thread per element of the (N, K) slice.
__global__ void slice_forward_kernel(float* out, const float* inp, int N, int C, int offset, int K) {
  GRID_STRIDE(i, static_cast<size_t>(N) * K) {
    const size_t n = i / K, k = i % K;
    out[i] = inp[n * C + offset + k];
  }
}

__global__ void slice_backward_kernel(float* dinp, const float* dout, int N, int C, int offset, int K) {
  GRID_STRIDE(i, static_cast<size_t>(N) * K) {
    const size_t n = i / K, k = i % K;
    dinp[n * C + offset + k] += dout[i];
  }
}

#undef GRID_STRIDE

}  // namespace

void gelu_forward(const KernelContext& ctx, float* out, const float* inp, size_t N) {
  if (N == 0) return;
  gelu_forward_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(out, inp, N);
  CUDA_CHECK_LAUNCH();
}

void gelu_backward(const KernelContext& ctx, float* dinp, const float* inp, const float* dout, size_t N) {
  if (N == 0) return;
  gelu_backward_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(dinp, inp, dout, N);
  CUDA_CHECK_LAUNCH();
}

void add_forward(const KernelContext& ctx, float* out, const float* a, const float* b, size_t N) {
  if (N == 0) return;
  add_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(out, a, b, N);
  CUDA_CHECK_LAUNCH();
}

void accumulate(const KernelContext& ctx, float* dst, const float* src, size_t N) { axpy(ctx, dst, src, 1.0f, N); }

void axpy(const KernelContext& ctx, float* dst, const float* src, float s, size_t N) {
  if (N == 0) return;
  // s == 1 gives dst + 1*src == dst + src exactly (the product is exact), so accumulate shares this kernel.
  axpy_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(dst, src, s, N);
  CUDA_CHECK_LAUNCH();
}

void scale_inplace(const KernelContext& ctx, float* x, float s, size_t N) {
  if (N == 0) return;
  scale_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(x, s, N);
  CUDA_CHECK_LAUNCH();
}

void fill(const KernelContext& ctx, float* x, float value, size_t N) {
  if (N == 0) return;
  fill_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(x, value, N);
  CUDA_CHECK_LAUNCH();
}

void slice_columns_forward(const KernelContext& ctx, float* out, const float* inp, int N, int C, int offset, int K) {
  const size_t n = static_cast<size_t>(N) * K;
  if (n == 0) return;
  slice_forward_kernel<<<grid_for(n), 256, 0, stream_of(ctx)>>>(out, inp, N, C, offset, K);
  CUDA_CHECK_LAUNCH();
}

void slice_columns_backward(const KernelContext& ctx, float* dinp, const float* dout, int N, int C, int offset,
                            int K) {
  const size_t n = static_cast<size_t>(N) * K;
  if (n == 0) return;
  slice_backward_kernel<<<grid_for(n), 256, 0, stream_of(ctx)>>>(dinp, dout, N, C, offset, K);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
