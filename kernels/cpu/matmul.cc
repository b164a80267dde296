// kernels/cpu/matmul.cc: out = inp @ weight^T + bias and its backward, plus a general GEMM; all through oneDNN's
// matmul primitive, cached per shape in the context's GemmPlans (kernels/cpu/gemm_plans.h).
//
// With ctx.gemm_precision bf16 (--dtype bf16, kernels/context.h) the matmuls multiply their operands rounded to
// bf16 (round to nearest even) with fp32 accumulation, as a bf16 tensor core does. Where the CPU multiplies bf16 in
// hardware the rounded operands are bf16 (uint16) copies in ctx.gemm_scratch and oneDNN multiplies them natively;
// elsewhere they are rounded values kept as fp32 and the GEMM is fp32. The products are exact either way (two
// 8-bit significands), so the two paths differ only in the order of the fp32 sums.
//
// The GEMMs run on the engine's OpenMP threads and are never called from inside a parallel region (the column-sum
// and rounding loops here are regions of their own, finished before a GEMM starts).
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>

#include "kernels/cpu/gemm_plans.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

// Round to nearest even at bf16 precision, kept as fp32 (NaN stays NaN): the value a bf16 tensor core would read.
// Same rule as kernels/cuda/bf16_rounding.h's round_nearest followed by widen, and as float_to_bf16 (codes.cc).
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

// ctx.gemm_scratch carved into consecutive rounded operand copies; aborts with the sizes when the context's scratch
// is smaller than this matmul needs (DeviceContext sizes it for the model's largest matmul, with room to spare).
// Where the room allows, each copy starts at a multiple of 64 bytes (whole cache lines for the GEMM's loads).
class Bf16Operands {
 public:
  // sizes: the element counts of the copies this matmul makes (0 for a copy it skips).
  Bf16Operands(const KernelContext& ctx, bool native, std::initializer_list<size_t> sizes, const char* who)
      : ctx_(ctx), native_(native) {
    size_t packed = 0, padded = 0;
    for (size_t n : sizes) packed += n * element_bytes(), padded += (n * element_bytes() + 63) / 64 * 64;
    pad_ = padded <= ctx.gemm_scratch_bytes;
    require_gemm_scratch(ctx, pad_ ? padded : packed, who);
  }
  GemmOperands type() const { return native_ ? GemmOperands::bf16 : GemmOperands::f32; }
  // A rounded copy of x (n elements) in the next free part of the scratch: bf16 when native, else fp32.
  const void* round(const float* x, size_t n) {
    char* dst = static_cast<char*>(ctx_.gemm_scratch) + used_;
    used_ += pad_ ? (n * element_bytes() + 63) / 64 * 64 : n * element_bytes();
    if (native_) {
      float_to_bf16(ctx_, reinterpret_cast<uint16_t*>(dst), x, n);
    } else {
      float* out = reinterpret_cast<float*>(dst);
#pragma omp parallel for num_threads(threads_for(ctx_, n)) schedule(static)
      for (size_t i = 0; i < n; i++) out[i] = round_to_bf16(x[i]);
    }
    return dst;
  }

 private:
  size_t element_bytes() const { return native_ ? 2 : 4; }

  const KernelContext& ctx_;
  bool native_;
  bool pad_ = false;
  size_t used_ = 0;
};

bool bf16_gemms(const KernelContext& ctx) { return ctx.gemm_precision == GemmPrecision::bf16; }

}  // namespace

void matmul_forward(const KernelContext& ctx, float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
  std::unique_ptr<GemmPlans> own;
  GemmPlans& plans = plans_of(ctx, own);
  // out (N,OC) = inp (N,C) @ weight^T (C,OC) + bias: weight (OC,C) is B stored transposed, no copy.
  GemmShape s = dense_gemm(N, OC, C, /*trans_a=*/false, /*trans_b=*/true);
  s.bias = bias != nullptr;
  const void* a = inp;
  const void* b = weight;
  if (bf16_gemms(ctx)) {  // autocast: the operands rounded to bf16, fp32 accumulation and bias (kernels/context.h)
    const size_t nc = static_cast<size_t>(N) * C, oc_c = static_cast<size_t>(OC) * C;
    Bf16Operands ops(ctx, plans.bf16_native(), {nc, oc_c}, "cpu::matmul_forward");
    a = ops.round(inp, nc);
    b = ops.round(weight, oc_c);
    s.operands = ops.type();
  }
  plans.run(s, a, b, bias, out, ctx.num_threads);
}

void matmul_backward(const KernelContext& ctx, float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC) {
  std::unique_ptr<GemmPlans> own;
  GemmPlans& plans = plans_of(ctx, own);
  const void* d = dout;  // dbias below sums the unrounded fp32 gradient, as autocast does
  const void* w = weight;
  const void* x = inp;
  GemmOperands type = GemmOperands::f32;
  if (bf16_gemms(ctx)) {
    const size_t nc = static_cast<size_t>(N) * C, oc_c = static_cast<size_t>(OC) * C, n_oc = static_cast<size_t>(N) * OC;
    Bf16Operands ops(ctx, plans.bf16_native(), {n_oc, dinp != nullptr ? oc_c : 0, nc}, "cpu::matmul_backward");
    d = ops.round(dout, n_oc);
    w = dinp != nullptr ? ops.round(weight, oc_c) : weight;
    x = ops.round(inp, nc);
    type = ops.type();
  }
  // dinp (N,C) += dout (N,OC) @ weight (OC,C)
  if (dinp != nullptr) {
    GemmShape s = dense_gemm(N, C, OC, false, false, 1.0f, /*beta=*/1.0f);
    s.operands = type;
    plans.run(s, d, w, nullptr, dinp, ctx.num_threads);
  }
  // dweight (OC,C) += dout^T (OC,N) @ inp (N,C): dout (N,OC) is A stored transposed, no copy.
  GemmShape s = dense_gemm(OC, C, N, /*trans_a=*/true, false, 1.0f, /*beta=*/1.0f);
  s.operands = type;
  plans.run(s, d, x, nullptr, dweight, ctx.num_threads);
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
        const float* row = dout + static_cast<int64_t>(n) * OC;
        for (int j = j0; j < j1; j++) acc[j - j0] += row[j];
      }
      for (int j = j0; j < j1; j++) dbias[j] += acc[j - j0];
    }
  }
}

void gemm(const KernelContext& ctx, float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta) {
  std::unique_ptr<GemmPlans> own;
  plans_of(ctx, own).run(dense_gemm(M, N, K, trans_a, trans_b, alpha, beta), a, b, nullptr, c, ctx.num_threads);
}

}  // namespace kernels::cpu
