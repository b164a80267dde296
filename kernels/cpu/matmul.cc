// kernels/cpu/matmul.cc: out = inp @ weight^T + bias and its backward, plus a general GEMM; all through OpenBLAS.
// With ctx.gemm_precision bf16 (--dtype bf16, kernels/context.h) the matmuls first round their operands to bf16
// (kept as fp32 in ctx.gemm_scratch), so sgemm computes what a bf16 tensor core with fp32 accumulation computes.
//
// OpenBLAS runs its own threads (engine/device.cc sets how many). sgemm is never called from inside an OpenMP
// parallel region here: nested threads would fight over the same cores.
#include <cblas.h>

#include <cstdint>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

// Round to nearest even at bf16 precision, kept as fp32 (NaN stays NaN): the value a bf16 tensor core would read.
// Same rule as kernels/cuda/bf16_rounding.h's round_nearest followed by widen.
inline float round_to_bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, sizeof(b));
  if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x007FFFFFu) != 0) {
    b |= 0x00400000u;  // quiet NaN
  } else {
    b = b + 0x7FFFu + ((b >> 16) & 1u);
  }
  b &= 0xFFFF0000u;
  std::memcpy(&x, &b, sizeof(x));
  return x;
}

// ctx.gemm_scratch carved into consecutive operand copies; aborts with the sizes when the context's scratch is
// smaller than this matmul needs (DeviceContext sizes it for the model's largest matmul).
class Bf16Operands {
 public:
  Bf16Operands(const KernelContext& ctx, size_t needed_elements, const char* who) : ctx_(ctx) {
    require_gemm_scratch(ctx, needed_elements * sizeof(float), who);
  }
  // A rounded copy of x (n elements) in the next free part of the scratch.
  const float* round(const float* x, size_t n) {
    float* dst = static_cast<float*>(ctx_.gemm_scratch) + used_;
    used_ += n;
#pragma omp parallel for num_threads(threads_for(ctx_, n)) schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = round_to_bf16(x[i]);
    return dst;
  }

 private:
  const KernelContext& ctx_;
  size_t used_ = 0;
};

bool bf16_gemms(const KernelContext& ctx) { return ctx.gemm_precision == GemmPrecision::bf16; }

}  // namespace

void matmul_forward(const KernelContext& ctx, float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
  if (bf16_gemms(ctx)) {  // autocast: the operands rounded to bf16, fp32 accumulation and bias (kernels/context.h)
    Bf16Operands ops(ctx, static_cast<size_t>(N) * C + static_cast<size_t>(OC) * C, "cpu::matmul_forward");
    inp = ops.round(inp, static_cast<size_t>(N) * C);
    weight = ops.round(weight, static_cast<size_t>(OC) * C);
  }
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
  const float* dout_full = dout;  // dbias sums the unrounded fp32 gradient, as autocast does
  if (bf16_gemms(ctx)) {
    const size_t nc = static_cast<size_t>(N) * C, oc_c = static_cast<size_t>(OC) * C, n_oc = static_cast<size_t>(N) * OC;
    Bf16Operands ops(ctx, kernels::bf16_gemm_scratch_elements(N, C, OC), "cpu::matmul_backward");
    dout = ops.round(dout, n_oc);
    weight = dinp != nullptr ? ops.round(weight, oc_c) : weight;
    inp = ops.round(inp, nc);
  }
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
        const float* d = dout_full + static_cast<int64_t>(n) * OC;
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
