// kernels/cuda/gemm_plans.cc: the GEMM descriptors of the CUDA kernels (see gemm_plans.h). A row-major (R, S) array
// is a column-major (S, R) one with the same leading dimension, so each row-major product is issued transposed.
#include "kernels/cuda/gemm_plans.h"

#include <cmath>
#include <cstddef>

namespace kernels::cuda {

GemmDesc matmul_forward_desc(void* out, const void* inp, const void* weight, const void* bias, int N, int C, int OC) {
  // out^T (OC, N) = weight^T-as-stored... : weight (OC,C) row-major is (C, OC) column-major, transposed to (OC, C);
  // inp (N,C) row-major is inp^T (C, N) column-major. The bias runs along the rows of out^T (length OC).
  GemmDesc g;
  g.trans_a = true;
  g.m = OC, g.n = N, g.k = C;
  g.a = weight, g.lda = C;
  g.b = inp, g.ldb = C;
  g.c = out, g.ldc = OC;
  g.bias = bias;
  return g;
}

GemmDesc matmul_dinp_desc(void* dinp, const void* dout, const void* weight, int N, int C, int OC) {
  // dinp^T (C, N) += weight-as-stored (C, OC) @ dout^T (OC, N)
  GemmDesc g;
  g.m = C, g.n = N, g.k = OC;
  g.a = weight, g.lda = C;
  g.b = dout, g.ldb = OC;
  g.c = dinp, g.ldc = C;
  g.beta = 1.0f;
  return g;
}

GemmDesc matmul_dweight_desc(void* dweight, const void* dout, const void* inp, int N, int C, int OC) {
  // dweight^T (C, OC) += inp^T (C, N) @ dout (N, OC); dout is stored as dout^T (OC, N), hence trans_b.
  GemmDesc g;
  g.trans_b = true;
  g.m = C, g.n = OC, g.k = N;
  g.a = inp, g.lda = C;
  g.b = dout, g.ldb = OC;
  g.c = dweight, g.ldc = C;
  g.beta = 1.0f;
  return g;
}

GemmDesc rowmajor_gemm_desc(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a, bool trans_b,
                            float alpha, float beta) {
  // C^T (N, M) = op(B)^T @ op(A)^T; a row-major operand read column-major is already transposed, so B goes first
  // with its own flag, then A.
  GemmDesc g;
  g.trans_a = trans_b;
  g.trans_b = trans_a;
  g.m = N, g.n = M, g.k = K;
  g.a = b, g.lda = trans_b ? K : N;
  g.b = a, g.ldb = trans_a ? M : K;
  g.c = c, g.ldc = N;
  g.alpha = alpha, g.beta = beta;
  return g;
}

namespace {

// Attention's common shape: batch = NH heads, HS apart inside a row of qkv / out; att blocks T*T apart.
struct Heads {
  int HS, C3;
  long long TT;
  float scale;
  Heads(int T, int C, int NH)
      : HS(C / NH), C3(3 * C), TT(static_cast<long long>(T) * T),
        scale(1.0f / std::sqrt(static_cast<float>(C / NH))) {}
};

GemmDesc batched(int m, int n, int k, bool ta, bool tb, const float* a, int lda, long long sa, const float* b,
                 int ldb, long long sb, float* c, int ldc, long long sc, int batch, float alpha, float beta) {
  GemmDesc g;
  g.trans_a = ta, g.trans_b = tb;
  g.m = m, g.n = n, g.k = k;
  g.a = a, g.lda = lda, g.stride_a = sa;
  g.b = b, g.ldb = ldb, g.stride_b = sb;
  g.c = c, g.ldc = ldc, g.stride_c = sc;
  g.batch = batch;
  g.alpha = alpha, g.beta = beta;
  return g;
}

}  // namespace

// Per head, column-major views: Q, K, V are (HS, T) with ld 3C; out/dout (HS, T) with ld C; att stored row-major
// (Tq, Ts) is column-major (Ts, Tq) with ld T, i.e. att^T.

GemmDesc attention_scores_desc(float* att, const float* qkv, int b, int T, int C, int NH) {
  const Heads h(T, C, NH);
  const float* q = qkv + static_cast<size_t>(b) * T * h.C3;
  // att^T (Ts, Tq) = scale * K^T (Ts, HS) @ Q (HS, Tq)
  return batched(T, T, h.HS, true, false, q + C, h.C3, h.HS, q, h.C3, h.HS, att + static_cast<size_t>(b) * NH * h.TT,
                 T, h.TT, NH, h.scale, 0.0f);
}

GemmDesc attention_out_desc(float* out, const float* att, const float* qkv, int b, int T, int C, int NH) {
  const Heads h(T, C, NH);
  const float* v = qkv + static_cast<size_t>(b) * T * h.C3 + 2 * C;
  // out (HS, Tq) = V (HS, Ts) @ att^T (Ts, Tq)
  return batched(h.HS, T, T, false, false, v, h.C3, h.HS, att + static_cast<size_t>(b) * NH * h.TT, T, h.TT,
                 out + static_cast<size_t>(b) * T * C, C, h.HS, NH, 1.0f, 0.0f);
}

GemmDesc attention_datt_desc(float* datt, const float* dout, const float* qkv, int b, int T, int C, int NH) {
  const Heads h(T, C, NH);
  const float* v = qkv + static_cast<size_t>(b) * T * h.C3 + 2 * C;
  // datt^T (Ts, Tq) = V^T (Ts, HS) @ dout (HS, Tq)
  return batched(T, T, h.HS, true, false, v, h.C3, h.HS, dout + static_cast<size_t>(b) * T * C, C, h.HS,
                 datt + static_cast<size_t>(b) * NH * h.TT, T, h.TT, NH, 1.0f, 0.0f);
}

GemmDesc attention_dv_desc(float* dqkv, const float* dout, const float* att, int b, int T, int C, int NH) {
  const Heads h(T, C, NH);
  // dV (HS, Ts) += dout (HS, Tq) @ (att^T)^T (Tq, Ts)
  return batched(h.HS, T, T, false, true, dout + static_cast<size_t>(b) * T * C, C, h.HS,
                 att + static_cast<size_t>(b) * NH * h.TT, T, h.TT, dqkv + static_cast<size_t>(b) * T * h.C3 + 2 * C,
                 h.C3, h.HS, NH, 1.0f, 1.0f);
}

GemmDesc attention_dq_desc(float* dqkv, const float* dpre, const float* qkv, int b, int T, int C, int NH) {
  const Heads h(T, C, NH);
  const float* k = qkv + static_cast<size_t>(b) * T * h.C3 + C;
  // dQ (HS, Tq) += scale * K (HS, Ts) @ dpre^T (Ts, Tq)
  return batched(h.HS, T, T, false, false, k, h.C3, h.HS, dpre + static_cast<size_t>(b) * NH * h.TT, T, h.TT,
                 dqkv + static_cast<size_t>(b) * T * h.C3, h.C3, h.HS, NH, h.scale, 1.0f);
}

GemmDesc attention_dk_desc(float* dqkv, const float* dpre, const float* qkv, int b, int T, int C, int NH) {
  const Heads h(T, C, NH);
  const float* q = qkv + static_cast<size_t>(b) * T * h.C3;
  // dK (HS, Ts) += scale * Q (HS, Tq) @ (dpre^T)^T (Tq, Ts)
  return batched(h.HS, T, T, false, true, q, h.C3, h.HS, dpre + static_cast<size_t>(b) * NH * h.TT, T, h.TT,
                 dqkv + static_cast<size_t>(b) * T * h.C3 + C, h.C3, h.HS, NH, h.scale, 1.0f);
}

}  // namespace kernels::cuda
