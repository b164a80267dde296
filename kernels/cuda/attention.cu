// kernels/cuda/attention.cu: causal multi-head attention over a fused qkv tensor with cuBLAS strided-batched GEMMs
// (their layouts: kernels/cuda/gemm_plans.cc) and a fused causal softmax.
//
// qkv (B,T,3C) is read in place: for batch row b and head h, q is a (T, HS) row-major matrix with leading
// dimension 3C starting at qkv + b*T*3C + h*HS (k at +C, v at +2C). Heads are HS apart, batch rows T*3C apart: no
// single stride covers both, so each GEMM is one strided-batched call per batch row, batched over the NH heads. The
// scores go straight into att (B,NH,T,T) (full T x T products; the causal half is masked by the softmax) and the
// softmax runs in place. Causal positions s > t get probability 0, like the CPU twin.
#include "kernels/cuda/blas.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

// In place over att: row (b,h,t) holds the scaled scores; softmax over s <= t, zeros after. One warp per row.
__global__ void causal_softmax_kernel(float* att, int rows, int T) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int t = row % T;
  float* a = att + static_cast<size_t>(row) * T;
  float maxval = -INFINITY;
  for (int s = lane; s <= t; s += 32) maxval = fmaxf(maxval, a[s]);
  maxval = warp_max(maxval);
  float sum = 0.0f;
  for (int s = lane; s <= t; s += 32) {
    const float e = expf(a[s] - maxval);
    a[s] = e;
    sum += e;
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int s = lane; s < T; s += 32) a[s] = s <= t ? a[s] * inv : 0.0f;
}

// In place over datt: dpre[t,s] = att[t,s] * (datt[t,s] - sum_u att[t,u] datt[t,u]) for s <= t, else 0. The 1/sqrt(HS)
// of the forward scores is applied by the GEMMs that consume dpre.
__global__ void causal_softmax_backward_kernel(float* datt, const float* att, int rows, int T) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int t = row % T;
  float* da = datt + static_cast<size_t>(row) * T;
  const float* a = att + static_cast<size_t>(row) * T;
  float dot = 0.0f;
  for (int s = lane; s <= t; s += 32) dot += a[s] * da[s];
  dot = warp_sum(dot);
  for (int s = lane; s < T; s += 32) da[s] = s <= t ? a[s] * (da[s] - dot) : 0.0f;
}

}  // namespace

void attention_forward(const KernelContext& ctx, float* out, float* att, const float* qkv, int B, int T, int C,
                       int NH) {
  if (B == 0 || T == 0) return;
  const size_t TT = static_cast<size_t>(T) * T;
  for (int b = 0; b < B; b++) {
    sgemm_strided_batched(ctx, attention_scores_desc(att, qkv, b, T, C, NH), "cuda::attention_forward(scores)");
    causal_softmax_kernel<<<ceil_div(static_cast<size_t>(NH) * T, kWarpsPerBlock), kWarpsPerBlock * 32, 0,
                            stream_of(ctx)>>>(att + b * NH * TT, NH * T, T);
    CUDA_CHECK_LAUNCH();
    sgemm_strided_batched(ctx, attention_out_desc(out, att, qkv, b, T, C, NH), "cuda::attention_forward(out)");
  }
}

void attention_backward(const KernelContext& ctx, float* dqkv, float* datt, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH) {
  if (B == 0 || T == 0) return;
  const size_t TT = static_cast<size_t>(T) * T;
  for (int b = 0; b < B; b++) {
    sgemm_strided_batched(ctx, attention_datt_desc(datt, dout, qkv, b, T, C, NH), "cuda::attention_backward(datt)");
    sgemm_strided_batched(ctx, attention_dv_desc(dqkv, dout, att, b, T, C, NH), "cuda::attention_backward(dv)");
    causal_softmax_backward_kernel<<<ceil_div(static_cast<size_t>(NH) * T, kWarpsPerBlock), kWarpsPerBlock * 32, 0,
                                     stream_of(ctx)>>>(datt + b * NH * TT, att + b * NH * TT, NH * T, T);
    CUDA_CHECK_LAUNCH();
    sgemm_strided_batched(ctx, attention_dq_desc(dqkv, datt, qkv, b, T, C, NH), "cuda::attention_backward(dq)");
    sgemm_strided_batched(ctx, attention_dk_desc(dqkv, datt, qkv, b, T, C, NH), "cuda::attention_backward(dk)");
  }
}

}  // namespace kernels::cuda
