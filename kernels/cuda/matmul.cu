// kernels/cuda/matmul.cu: out = inp @ weight^T + bias through cuBLASLt (bias and GELU epilogues), its backward, and
// the general row-major gemm (Muon). With ctx.gemm_precision bf16 (--dtype bf16, kernels/context.h) matmul_forward
// and matmul_backward cast their operands to bf16 into ctx.gemm_scratch and run the same layouts on tensor cores with
// fp32 accumulation and fp32 outputs. The GEMM layouts are built in gemm_plans.cc (checked on the CPU by
// tests/kernels/cuda/gemm_plans_test.cc); this file runs them and reduces dbias.
#include "kernels/cuda/blas.h"
#include "kernels/cuda/column_sum.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

bool bf16_gemms(const KernelContext& ctx) { return ctx.gemm_precision == GemmPrecision::bf16; }

// ctx.gemm_scratch (device) carved into consecutive bf16 operand copies (round to nearest even: float_to_bf16,
// the same rule as the CPU kernels' rounding). Aborts with the sizes when the scratch is too small.
class Bf16Operands {
 public:
  Bf16Operands(const KernelContext& ctx, size_t needed_elements, const char* who) : ctx_(ctx) {
    require_gemm_scratch(ctx, needed_elements * sizeof(uint16_t), who);
  }
  const uint16_t* round(const float* x, size_t n) {
    // 256-byte aligned starts, so that cuBLASLt may use its fastest kernels (its heuristics read the alignment).
    uint16_t* dst = static_cast<uint16_t*>(ctx_.gemm_scratch) + used_;
    used_ += (n + 127) / 128 * 128;
    float_to_bf16(ctx_, dst, x, n);
    return dst;
  }

 private:
  const KernelContext& ctx_;
  size_t used_ = 0;
};

// Operand slack of the 256-byte alignment above: 3 operands, at most 127 elements each.
constexpr size_t kAlignSlack = 3 * 128;

}  // namespace

void matmul_forward(const KernelContext& ctx, float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
  if (bf16_gemms(ctx)) {  // autocast (kernels/context.h): bf16 operands on tensor cores, fp32 accumulate and output
    if (N == 0) return;
    Bf16Operands ops(ctx, static_cast<size_t>(N) * C + static_cast<size_t>(OC) * C + kAlignSlack,
                     "cuda::matmul_forward");
    GemmDesc g = matmul_forward_desc(out, ops.round(inp, static_cast<size_t>(N) * C),
                                     ops.round(weight, static_cast<size_t>(OC) * C), bias, N, C, OC);
    g.a_type = g.b_type = GemmType::bf16;
    lt_matmul(ctx, g, "cuda::matmul_forward(bf16)");
    return;
  }
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
  if (bf16_gemms(ctx)) {
    const size_t nc = static_cast<size_t>(N) * C, oc_c = static_cast<size_t>(OC) * C, n_oc = static_cast<size_t>(N) * OC;
    Bf16Operands ops(ctx, bf16_gemm_scratch_elements(N, C, OC) + kAlignSlack, "cuda::matmul_backward");
    const uint16_t* dout16 = ops.round(dout, n_oc);
    if (dinp != nullptr) {
      GemmDesc g = matmul_dinp_desc(dinp, dout16, ops.round(weight, oc_c), N, C, OC);
      g.a_type = g.b_type = GemmType::bf16;
      lt_matmul(ctx, g, "cuda::matmul_backward(dinp, bf16)");
    }
    GemmDesc g = matmul_dweight_desc(dweight, dout16, ops.round(inp, nc), N, C, OC);
    g.a_type = g.b_type = GemmType::bf16;
    lt_matmul(ctx, g, "cuda::matmul_backward(dweight, bf16)");
    // dbias from the unrounded fp32 gradient, as the CPU kernel does.
    if (dbias != nullptr) column_sum_accumulate(ctx, dbias, dout, N, OC, "cuda::matmul_backward(dbias)");
    return;
  }
  if (dinp != nullptr) lt_matmul(ctx, matmul_dinp_desc(dinp, dout, weight, N, C, OC), "cuda::matmul_backward(dinp)");
  lt_matmul(ctx, matmul_dweight_desc(dweight, dout, inp, N, C, OC), "cuda::matmul_backward(dweight)");
  if (dbias != nullptr) column_sum_accumulate(ctx, dbias, dout, N, OC, "cuda::matmul_backward(dbias)");
}

void gemm(const KernelContext& ctx, float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta) {
  lt_matmul(ctx, rowmajor_gemm_desc(c, a, b, M, N, K, trans_a, trans_b, alpha, beta), "cuda::gemm");
}

}  // namespace kernels::cuda
