// kernels/cuda/reductions.cu: mean and sum of squares in double, in two passes (per-block partials over a fixed
// grid, then one block adds them in a fixed order), so the result is the same bits on every run. The grid size
// depends only on N. The orders differ from the CPU twin's chunked loop, so results agree to double rounding and are
// then rounded to float: equal or one float ulp apart.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

constexpr int kThreads = 256;
constexpr unsigned int kMaxBlocks = 1024;

template <bool kSquare>
__global__ void partial_sums_kernel(double* partial, const float* x, size_t n) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const double v = x[i];
    acc += kSquare ? v * v : v;
  }
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

__global__ void finish_kernel(float* out, const double* partial, int num_partials, double divisor) {
  __shared__ double shared[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < num_partials; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, shared);
  if (threadIdx.x == 0) out[0] = static_cast<float>(acc / divisor);
}

template <bool kSquare>
void reduce(const KernelContext& ctx, float* out, const float* x, size_t n, double divisor, const char* who) {
  const unsigned int blocks = n == 0 ? 1 : std::min<unsigned int>(kMaxBlocks, ceil_div(n, kThreads * 8));
  double* partial = static_cast<double*>(workspace_or_die(ctx, blocks * sizeof(double), who));
  partial_sums_kernel<kSquare><<<blocks, kThreads, 0, stream_of(ctx)>>>(partial, x, n);
  CUDA_CHECK_LAUNCH();
  finish_kernel<<<1, kThreads, 0, stream_of(ctx)>>>(out, partial, static_cast<int>(blocks), divisor);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void mean_forward(const KernelContext& ctx, float* out, const float* inp, size_t N) {
  // N == 0: the sum is 0 and dividing by 1 gives the CPU twin's 0.
  reduce<false>(ctx, out, inp, N, N == 0 ? 1.0 : static_cast<double>(N), "cuda::mean_forward");
}

void sum_squares(const KernelContext& ctx, float* out, const float* x, size_t N) {
  reduce<true>(ctx, out, x, N, 1.0, "cuda::sum_squares");
}

}  // namespace kernels::cuda
