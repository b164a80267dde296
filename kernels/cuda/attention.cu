// kernels/cuda/attention.cu: causal multi-head attention over a fused qkv tensor with cuBLAS strided-batched GEMMs
// and a fused causal softmax.
//
// qkv (B,T,3C) is read in place: for batch row b and head h, q is a (T, HS) row-major matrix with leading
// dimension 3C starting at qkv + b*T*3C + h*HS (k at +C, v at +2C). Heads are HS apart, batch rows T*3C apart: no
// single stride covers both, so each GEMM is one strided-batched call per batch row, batched over the NH heads. The
// scores go straight into att (B,NH,T,T) (full T x T products; the causal half is masked by the softmax) and the
// softmax runs in place. Causal positions s > t get probability 0, like the CPU twin.
#include <cmath>

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

// Column-major strided-batched SGEMM over the NH heads of one batch row.
void batched(cublasHandle_t h, bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
             long long sa, const float* b, int ldb, long long sb, float beta, float* c, int ldc, long long sc,
             int count) {
  CUBLAS_CHECK(cublasSgemmStridedBatched(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k,
                                         &alpha, a, lda, sa, b, ldb, sb, &beta, c, ldc, sc, count));
}

}  // namespace

void attention_forward(const KernelContext& ctx, float* out, float* att, const float* qkv, int B, int T, int C,
                       int NH) {
  if (B == 0 || T == 0) return;
  cublasHandle_t h = cublas_of(ctx, "cuda::attention_forward");
  const int HS = C / NH, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const long long TT = static_cast<long long>(T) * T;
  for (int b = 0; b < B; b++) {
    const float* q = qkv + static_cast<size_t>(b) * T * C3;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* a = att + static_cast<size_t>(b) * NH * TT;
    // scores^T (Ts, Tq) = K^T-as-stored... : column-major, K is (HS, T) ld 3C, so S^T = K^T(T,HS) @ Q(HS,T).
    batched(h, true, false, T, T, HS, scale, k, C3, HS, q, C3, HS, 0.0f, a, T, TT, NH);
    causal_softmax_kernel<<<ceil_div(static_cast<size_t>(NH) * T, kWarpsPerBlock), kWarpsPerBlock * 32, 0,
                            stream_of(ctx)>>>(a, NH * T, T);
    CUDA_CHECK_LAUNCH();
    // out (T, HS per head, ld C) : column-major O (HS, Tq) = V (HS, Ts) @ A^T-as-stored (Ts, Tq).
    batched(h, false, false, HS, T, T, 1.0f, v, C3, HS, a, T, TT, 0.0f, out + static_cast<size_t>(b) * T * C, C, HS,
            NH);
  }
}

void attention_backward(const KernelContext& ctx, float* dqkv, float* datt, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH) {
  if (B == 0 || T == 0) return;
  cublasHandle_t h = cublas_of(ctx, "cuda::attention_backward");
  const int HS = C / NH, C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const long long TT = static_cast<long long>(T) * T;
  for (int b = 0; b < B; b++) {
    const float* q = qkv + static_cast<size_t>(b) * T * C3;
    const float* k = q + C;
    const float* v = q + 2 * C;
    float* dq = dqkv + static_cast<size_t>(b) * T * C3;
    float* dk = dq + C;
    float* dv = dq + 2 * C;
    const float* a = att + static_cast<size_t>(b) * NH * TT;
    float* da = datt + static_cast<size_t>(b) * NH * TT;
    const float* d = dout + static_cast<size_t>(b) * T * C;
    // datt[t,s] = dout[t,:] . v[s,:]  ->  column-major datt^T (Ts, Tq) = V^T (Ts, HS) @ dO (HS, Tq)
    batched(h, true, false, T, T, HS, 1.0f, v, C3, HS, d, C, HS, 0.0f, da, T, TT, NH);
    // dv[s,:] += sum_t att[t,s] dout[t,:]  ->  dV (HS, Ts) += dO (HS, Tq) @ (A^T-as-stored)^T (Tq, Ts)
    batched(h, false, true, HS, T, T, 1.0f, d, C, HS, a, T, TT, 1.0f, dv, C3, HS, NH);
    causal_softmax_backward_kernel<<<ceil_div(static_cast<size_t>(NH) * T, kWarpsPerBlock), kWarpsPerBlock * 32, 0,
                                     stream_of(ctx)>>>(da, a, NH * T, T);
    CUDA_CHECK_LAUNCH();
    // dq[t,:] += scale * sum_s dpre[t,s] k[s,:]  ->  dQ (HS, Tq) += scale * K (HS, Ts) @ dP^T-as-stored (Ts, Tq)
    batched(h, false, false, HS, T, T, scale, k, C3, HS, da, T, TT, 1.0f, dq, C3, HS, NH);
    // dk[s,:] += scale * sum_t dpre[t,s] q[t,:]  ->  dK (HS, Ts) += scale * Q (HS, Tq) @ (dP^T-as-stored)^T
    batched(h, false, true, HS, T, T, scale, q, C3, HS, da, T, TT, 1.0f, dk, C3, HS, NH);
  }
}

}  // namespace kernels::cuda
