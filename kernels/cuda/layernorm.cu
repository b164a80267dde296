// kernels/cuda/layernorm.cu: layernorm over the last dimension (eps 1e-5), forward and backward.
//
// One warp per row. The backward's dweight/dbias reduction over rows is deterministic without atomics: pass 1 writes
// per-chunk partial sums (each chunk of rows summed in order by one thread per column), pass 2 adds the partials in
// chunk order. Reduction orders differ from the CPU twin (warp trees vs a sequential loop), so results agree to
// rounding, not bitwise.
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

constexpr float kEps = 1e-5f;
constexpr int kWarpsPerBlock = 8;
constexpr int kRowsPerChunk = 256;  // rows summed by one thread in the dweight/dbias pass (fixed: deterministic)

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                                         const float* bias, int N, int C) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* x = inp + static_cast<size_t>(row) * C;
  float sum = 0.0f;
  for (int c = lane; c < C; c += 32) sum += x[c];
  const float m = warp_sum(sum) / C;
  float var = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = x[c] - m;
    var += d * d;
  }
  const float s = 1.0f / sqrtf(warp_sum(var) / C + kEps);
  float* o = out + static_cast<size_t>(row) * C;
  for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * s * weight[c] + bias[c];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// Fused residual add + layernorm: residual = a + b is written and normalised in the same pass over the row.
__global__ void residual_layernorm_forward_kernel(float* residual, float* out, float* mean, float* rstd,
                                                  const float* a, const float* b, const float* weight,
                                                  const float* bias, int N, int C) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const size_t base = static_cast<size_t>(row) * C;
  float* x = residual + base;
  float sum = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float v = a[base + c] + b[base + c];
    x[c] = v;
    sum += v;
  }
  // Each lane re-reads only the elements it wrote itself: no synchronisation needed.
  const float m = warp_sum(sum) / C;
  float var = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float d = x[c] - m;
    var += d * d;
  }
  const float s = 1.0f / sqrtf(warp_sum(var) / C + kEps);
  float* o = out + base;
  for (int c = lane; c < C; c += 32) o[c] = (x[c] - m) * s * weight[c] + bias[c];
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

__global__ void layernorm_backward_dinp_kernel(float* dinp, const float* dout, const float* inp,
                                               const float* weight, const float* mean, const float* rstd, int N,
                                               int C) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const float* x = inp + static_cast<size_t>(row) * C;
  const float* d = dout + static_cast<size_t>(row) * C;
  float* dx = dinp + static_cast<size_t>(row) * C;
  const float m = mean[row], s = rstd[row];
  float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float dnorm = weight[c] * d[c];
    dnorm_mean += dnorm;
    dnorm_norm_mean += dnorm * (x[c] - m) * s;
  }
  dnorm_mean = warp_sum(dnorm_mean) / C;
  dnorm_norm_mean = warp_sum(dnorm_norm_mean) / C;
  for (int c = lane; c < C; c += 32) {
    const float norm = (x[c] - m) * s;
    dx[c] += s * (weight[c] * d[c] - dnorm_mean - norm * dnorm_norm_mean);
  }
}

// Pass 1: grid (column blocks, chunks). partial_w/partial_b (chunks, C).
__global__ void layernorm_backward_partials_kernel(float* partial_w, float* partial_b, const float* dout,
                                                   const float* inp, const float* mean, const float* rstd, int N,
                                                   int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  const int chunk = blockIdx.y;
  if (c >= C) return;
  const int r0 = chunk * kRowsPerChunk;
  const int r1 = min(N, r0 + kRowsPerChunk);
  float dw = 0.0f, db = 0.0f;
  for (int r = r0; r < r1; r++) {
    const size_t i = static_cast<size_t>(r) * C + c;
    dw += (inp[i] - mean[r]) * rstd[r] * dout[i];
    db += dout[i];
  }
  partial_w[static_cast<size_t>(chunk) * C + c] = dw;
  partial_b[static_cast<size_t>(chunk) * C + c] = db;
}

// Pass 2: one thread per column adds the chunks' partials in chunk order.
__global__ void layernorm_backward_finish_kernel(float* dweight, float* dbias, const float* partial_w,
                                                 const float* partial_b, int chunks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float dw = 0.0f, db = 0.0f;
  for (int k = 0; k < chunks; k++) {
    dw += partial_w[static_cast<size_t>(k) * C + c];
    db += partial_b[static_cast<size_t>(k) * C + c];
  }
  dweight[c] += dw;
  dbias[c] += db;
}

}  // namespace

void layernorm_forward(const KernelContext& ctx, float* out, float* mean, float* rstd, const float* inp,
                       const float* weight, const float* bias, int N, int C) {
  if (N == 0) return;
  layernorm_forward_kernel<<<ceil_div(N, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(
      out, mean, rstd, inp, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

void residual_layernorm_forward(const KernelContext& ctx, float* residual, float* out, float* mean, float* rstd,
                                const float* a, const float* b, const float* weight, const float* bias, int N, int C) {
  if (N == 0) return;
  residual_layernorm_forward_kernel<<<ceil_div(N, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(
      residual, out, mean, rstd, a, b, weight, bias, N, C);
  CUDA_CHECK_LAUNCH();
}

void layernorm_backward(const KernelContext& ctx, float* dinp, float* dweight, float* dbias, const float* dout,
                        const float* inp, const float* weight, const float* mean, const float* rstd, int N, int C) {
  if (N == 0 || C == 0) return;
  cudaStream_t stream = stream_of(ctx);
  layernorm_backward_dinp_kernel<<<ceil_div(N, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream>>>(
      dinp, dout, inp, weight, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  const int chunks = static_cast<int>(ceil_div(N, kRowsPerChunk));
  const size_t part = static_cast<size_t>(chunks) * C;
  float* partial_w =
      static_cast<float*>(workspace_or_die(ctx, 2 * part * sizeof(float), "cuda::layernorm_backward"));
  float* partial_b = partial_w + part;
  layernorm_backward_partials_kernel<<<dim3(ceil_div(C, 128), chunks), 128, 0, stream>>>(partial_w, partial_b, dout,
                                                                                         inp, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();
  layernorm_backward_finish_kernel<<<ceil_div(C, 128), 128, 0, stream>>>(dweight, dbias, partial_w, partial_b,
                                                                         chunks, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
