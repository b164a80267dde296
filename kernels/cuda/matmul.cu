// kernels/cuda/matmul.cu: out = inp @ weight^T + bias through cuBLASLt (bias and GELU epilogues), its backward, and
// the general row-major gemm (Muon). The GEMM layouts are built in gemm_plans.cc (checked on the CPU by
// tests/kernels/cuda/gemm_plans_test.cc); this file runs them and reduces dbias.
#include "kernels/cuda/blas.h"
#include "kernels/cuda/column_sum.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

void matmul_forward(const KernelContext& ctx, float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
  lt_matmul(ctx, matmul_forward_desc(out, inp, weight, bias, N, C, OC), "cuda::matmul_forward");
}

void matmul_gelu_forward(const KernelContext& ctx, float* out, float* pre_gelu, const float* inp, const float* weight,
                         const float* bias, int N, int C, int OC) {
  GemmDesc g = matmul_forward_desc(out, inp, weight, bias, N, C, OC);
  g.gelu = true;
  g.pre_gelu = pre_gelu;
  lt_matmul(ctx, g, "cuda::matmul_gelu_forward");
}

void matmul_backward(const KernelContext& ctx, float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC) {
  if (N == 0) return;  // no rows: nothing to accumulate
  if (dinp != nullptr) lt_matmul(ctx, matmul_dinp_desc(dinp, dout, weight, N, C, OC), "cuda::matmul_backward(dinp)");
  lt_matmul(ctx, matmul_dweight_desc(dweight, dout, inp, N, C, OC), "cuda::matmul_backward(dweight)");
  if (dbias != nullptr) column_sum_accumulate(ctx, dbias, dout, N, OC, "cuda::matmul_backward(dbias)");
}

void gemm(const KernelContext& ctx, float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta) {
  lt_matmul(ctx, rowmajor_gemm_desc(c, a, b, M, N, K, trans_a, trans_b, alpha, beta), "cuda::gemm");
}

}  // namespace kernels::cuda
