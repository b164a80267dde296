// kernels/cpu/matmul.cc: out = inp @ weight^T + bias and its backward, plus a general GEMM; all through OpenBLAS.
//
// OpenBLAS runs its own threads (engine/device.cc sets how many). sgemm is never called from inside an OpenMP
// parallel region here: nested threads would fight over the same cores.
#include <cblas.h>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

void matmul_forward(const KernelContext& ctx, float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
  float beta = 0.0f;
  if (bias != nullptr) {
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * OC)) schedule(static)
    for (int n = 0; n < N; n++) {
      float* o = out + static_cast<int64_t>(n) * OC;
      for (int j = 0; j < OC; j++) o[j] = bias[j];
    }
    beta = 1.0f;
  }
  // out (N,OC) = inp (N,C) @ weight^T (C,OC) + beta * out
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

void matmul_backward(const KernelContext& ctx, float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC) {
  // dinp (N,C) += dout (N,OC) @ weight (OC,C)
  if (dinp != nullptr) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C, 1.0f, dinp, C);
  }
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
  // dbias (OC) += column sums of dout; each thread owns a block of columns and adds rows in order.
  if (dbias != nullptr) {
    constexpr int kBlock = 256;
    const int num_blocks = (OC + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(N) * OC)) schedule(static)
    for (int blk = 0; blk < num_blocks; blk++) {
      const int j0 = blk * kBlock;
      const int j1 = j0 + kBlock < OC ? j0 + kBlock : OC;
      float acc[kBlock] = {0};
      for (int n = 0; n < N; n++) {
        const float* d = dout + static_cast<int64_t>(n) * OC;
        for (int j = j0; j < j1; j++) acc[j - j0] += d[j];
      }
      for (int j = j0; j < j1; j++) dbias[j] += acc[j - j0];
    }
  }
}

void gemm(const KernelContext& /*ctx*/, float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta) {
  const int lda = trans_a ? M : K;
  const int ldb = trans_b ? K : N;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
              alpha, a, lda, b, ldb, beta, c, N);
}

}  // namespace kernels::cpu
