// tests/kernels/cuda/bf16_ops_test.cc: the bf16 activation kernels of kernels/cuda/bf16.cuh (bf16_*.cu) against their
// CPU twins (kernels/cuda/bf16_cpu_twin.h): embedding, layernorm (plain, fused residual, backward), GELU, attention,
// the fused cross-entropy, add / accumulate / fill and the column slices. Fresh printed seeds, odd sizes (so that the
// 128-bit pack paths and their scalar fallbacks both run), one GPT-2-sized case per kernel (skipped under
// RESBM_TEST_SMALL), NaN-poisoned outputs, += outputs started from nonzero values, and a bitwise rerun.
//
// Tolerances: bitwise where the arithmetic is the same IEEE operations in the same order (copies, slices, fill, adds,
// the embedding). Elsewhere the two sides sum in different orders (warp trees, cuBLAS tiles vs sequential loops), so
// their fp32 values differ by a reduction bound, and rounding those to bf16 can land on neighbouring values: each bf16
// result is allowed one bf16 step (kBf16Step |cpu|) plus the fp32 bound derived next to each check.
#include <cmath>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_cpu_twin.h"
#include "kernels/cuda/bf16_rounding.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

using kernels::bf16::widen;

constexpr uint16_t kBf16NaN = 0x7FC0u;  // poison for bf16 outputs

std::vector<uint16_t> poisoned(size_t n) { return std::vector<uint16_t>(n, kBf16NaN); }

// Two-sided fp32 bound on a sum of n terms computed in two different orders: 2 (n+2) u times the sum of |terms|.
double gamma(int n) { return 2.0 * (n + 2) * kUnitRoundoff; }

// fp32_bound[i] = rel * |cpu[i]| + abs.
std::vector<double> relative_bound(const std::vector<uint16_t>& cpu, double rel, double abs) {
  std::vector<double> b(cpu.size());
  for (size_t i = 0; i < cpu.size(); i++) b[i] = rel * std::fabs(widen(cpu[i])) + abs;
  return b;
}

TEST(CudaBf16Ops, AddAccumulateFillBitExact) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16Ops.AddAccumulateFillBitExact");
  CudaContext cuda;
  const auto cpu = cpu_context();
  // 7, 13: the scalar path; 1000: packs of 8; the last: a GPT-2 activation (B*T*C at B*T = 8192).
  for (size_t n : cases<size_t>({7, 13, 1000, 8 * 1024 * 768}, 3)) {
    const std::string tag = " n=" + std::to_string(n);
    Twin<uint16_t> a(random_bf16(rng, n, -3.0f, 3.0f)), b(random_bf16(rng, n, -3.0f, 3.0f));
    Twin<uint16_t> out(poisoned(n)), dst(random_bf16(rng, n)), x(poisoned(n));
    const uint16_t value = kernels::bf16::round_nearest(rng.uniform(-10.0f, 10.0f));
    kernels::cpu::add_bf16(cpu, out.cpu(), a.cpu(), b.cpu(), n);
    kernels::cpu::accumulate_bf16(cpu, dst.cpu(), a.cpu(), n);
    kernels::cpu::fill_bf16(cpu, x.cpu(), value, n);
    auto run = [&] {
      kernels::cuda::add_bf16(cuda.ctx(), out.gpu(), a.gpu(), b.gpu(), n);
      kernels::cuda::accumulate_bf16(cuda.ctx(), dst.gpu(), a.gpu(), n);
      kernels::cuda::fill_bf16(cuda.ctx(), x.gpu(), value, n);
    };
    run();
    // One fp32 addition of two widened values (exact inputs), one rounding: the same bits on both sides.
    expect_bitwise_equal(out.download(), out.host(), "add_bf16" + tag);
    expect_bitwise_equal(dst.download(), dst.host(), "accumulate_bf16" + tag);
    expect_bitwise_equal(x.download(), x.host(), "fill_bf16" + tag);
    expect_rerun_same_bits(run, {&out, &dst, &x}, cuda);
  }
}

TEST(CudaBf16Ops, SliceColumnsBitExact) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16Ops.SliceColumnsBitExact");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, C, offset, K; };
  // Scalar (odd sizes), packs of 8 (C, offset, K multiples of 8), scalar because of the offset alone, GPT-2 (the
  // first half of the channels).
  for (const Shape s : cases<Shape>({{7, 13, 3, 5}, {5, 48, 8, 16}, {3, 40, 4, 24}, {8192, 768, 0, 384}}, 3)) {
    const std::string tag = " N=" + std::to_string(s.N) + " C=" + std::to_string(s.C);
    const size_t nc = static_cast<size_t>(s.N) * s.C, nk = static_cast<size_t>(s.N) * s.K;
    Twin<uint16_t> inp(random_bf16(rng, nc)), out(poisoned(nk));
    Twin<uint16_t> dout(random_bf16(rng, nk)), dinp(random_bf16(rng, nc));  // += from nonzero values
    kernels::cpu::slice_columns_forward_bf16(cpu, out.cpu(), inp.cpu(), s.N, s.C, s.offset, s.K);
    kernels::cpu::slice_columns_backward_bf16(cpu, dinp.cpu(), dout.cpu(), s.N, s.C, s.offset, s.K);
    auto run = [&] {
      kernels::cuda::slice_columns_forward_bf16(cuda.ctx(), out.gpu(), inp.gpu(), s.N, s.C, s.offset, s.K);
      kernels::cuda::slice_columns_backward_bf16(cuda.ctx(), dinp.gpu(), dout.gpu(), s.N, s.C, s.offset, s.K);
    };
    run();
    // A copy, and one addition per element (columns outside the slice untouched): bitwise.
    expect_bitwise_equal(out.download(), out.host(), "slice fwd" + tag);
    expect_bitwise_equal(dinp.download(), dinp.host(), "slice bwd" + tag);
    expect_rerun_same_bits(run, {&out, &dinp}, cuda);
  }
}

TEST(CudaBf16Ops, Gelu) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16Ops.Gelu");
  CudaContext cuda;
  const auto cpu = cpu_context();
  constexpr float kSqrt2OverPi = 0.7978845608028654f, kCubic = 0.044715f;
  for (size_t n : cases<size_t>({7, 1000, 8 * 1024 * 3072}, 2)) {
    const std::string tag = " n=" + std::to_string(n);
    // [-5, 5]: both tails and the curved middle; e^{-2u} stays far from fp32 overflow.
    Twin<uint16_t> inp(random_bf16(rng, n, -5.0f, 5.0f)), out(poisoned(n));
    Twin<uint16_t> dout(random_bf16(rng, n)), dinp(random_bf16(rng, n));
    kernels::cpu::gelu_forward_bf16(cpu, out.cpu(), inp.cpu(), n);
    kernels::cpu::gelu_backward_bf16(cpu, dinp.cpu(), inp.cpu(), dout.cpu(), n);
    auto run = [&] {
      kernels::cuda::gelu_forward_bf16(cuda.ctx(), out.gpu(), inp.gpu(), n);
      kernels::cuda::gelu_backward_bf16(cuda.ctx(), dinp.gpu(), inp.gpu(), dout.gpu(), n);
    };
    run();
    // Forward x s, s = 1 / (1 + e), e = e^{-2u}: u may differ by a few roundings (the GPU contracts x + c x^3 into
    // an FMA, the CPU does not): 4 u |u| absolute, so e by 8 u |u| relative; expf (2 ulp) vs the CPU's vexp (a few
    // ulp): 8 u more. s moves by (1 - s) times e's relative error, and the product and division add 4 u:
    // relative bound 4 u + (1 - s)(8 u + 8 u |u|).
    std::vector<double> fwd_bound(n), bwd_bound(n);
    for (size_t i = 0; i < n; i++) {
      const double x = widen(inp.host()[i]);
      const double u = kSqrt2OverPi * (x + kCubic * x * x * x);
      const double sg = 1.0 / (1.0 + std::exp(-2.0 * u));
      const double s_rel = (1.0 - sg) * 8 * kUnitRoundoff * (1.0 + std::fabs(u));  // s's relative error
      fwd_bound[i] = (4 * kUnitRoundoff + s_rel) * std::fabs(x * sg);
      // Backward s + 2 x s (1 - s) k (1 + 3 c x^2) can cancel (gelu' has a zero near x = -0.75), so its error is
      // relative to the terms' magnitudes: (s_rel + 8 u) (|s| + 3 |second term|) (the second term has s twice
      // and 1 - s once) times |dout|, plus the += onto the old value (2 u).
      const double term = std::fabs(2.0 * x * sg * (1.0 - sg) * kSqrt2OverPi * (1.0 + 3.0 * kCubic * x * x));
      bwd_bound[i] = (s_rel + 8 * kUnitRoundoff) * (sg + 3 * term) * std::fabs(widen(dout.host()[i])) +
                     2 * kUnitRoundoff * std::fabs(widen(dinp.host()[i]));
    }
    expect_bf16_within(out.download(), out.host(), fwd_bound, "gelu_bf16 out" + tag);
    expect_bf16_within(dinp.download(), dinp.host(), bwd_bound, "gelu_bf16 dinp" + tag);
    expect_rerun_same_bits(run, {&out, &dinp}, cuda);
  }
}

TEST(CudaBf16Ops, EmbeddingBitExact) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16Ops.EmbeddingBitExact");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int B, T, C, Vp, maxT; };
  // A vocabulary of 3 forces long groups of repeated tokens; C = 13 runs the scalar path, 48 the packs of 8;
  // the last is GPT-2's (B*T = 8192, padded vocabulary).
  for (const Shape s : cases<Shape>({{1, 1, 1, 3, 1}, {3, 5, 13, 3, 7}, {2, 5, 48, 11, 9}, {8, 1024, 768, 50304, 1024}},
                                    3)) {
    const std::string tag = " C=" + std::to_string(s.C);
    const size_t btc = static_cast<size_t>(s.B) * s.T * s.C;
    Twin<int32_t> tokens(rng.ints(static_cast<size_t>(s.B) * s.T, 0, s.Vp - 1));
    Twin<uint16_t> wte(random_bf16(rng, static_cast<size_t>(s.Vp) * s.C));
    Twin<uint16_t> wpe(random_bf16(rng, static_cast<size_t>(s.maxT) * s.C));
    Twin<uint16_t> out(poisoned(btc)), dout(random_bf16(rng, btc));
    Twin<float> dwte(rng.floats(static_cast<size_t>(s.Vp) * s.C)), dwpe(rng.floats(static_cast<size_t>(s.maxT) * s.C));
    kernels::cpu::embedding_forward_bf16(cpu, out.cpu(), tokens.cpu(), wte.cpu(), wpe.cpu(), s.B, s.T, s.C);
    kernels::cpu::embedding_backward_bf16(cpu, dwte.cpu(), dwpe.cpu(), dout.cpu(), tokens.cpu(), s.B, s.T, s.C);
    auto run = [&] {
      kernels::cuda::embedding_forward_bf16(cuda.ctx(), out.gpu(), tokens.gpu(), wte.gpu(), wpe.gpu(), s.B, s.T, s.C);
      kernels::cuda::embedding_backward_bf16(cuda.ctx(), dwte.gpu(), dwpe.gpu(), dout.gpu(), tokens.gpu(), s.B, s.T,
                                             s.C);
    };
    run();
    // One addition per output element; the backward adds the widened rows in the CPU's order (positions ascending
    // per token, batch rows ascending per position): all bitwise.
    expect_bitwise_equal(out.download(), out.host(), "embedding_bf16 out" + tag);
    expect_bitwise_equal(dwte.download(), dwte.host(), "embedding_bf16 dwte" + tag);
    expect_bitwise_equal(dwpe.download(), dwpe.host(), "embedding_bf16 dwpe" + tag);
    expect_rerun_same_bits(run, {&out, &dwte, &dwpe}, cuda);
  }
}

TEST(CudaBf16Ops, Layernorm) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16Ops.Layernorm");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, C; };
  // C = 1, 13, 36: scalar; 48: packs of 8; GPT-2: B*T = 8192 rows of 768 (64 dweight chunks).
  for (const Shape s : cases<Shape>({{1, 1}, {7, 13}, {9, 48}, {300, 36}, {8192, 768}}, 4)) {
    const std::string tag = " N=" + std::to_string(s.N) + " C=" + std::to_string(s.C);
    const size_t nc = static_cast<size_t>(s.N) * s.C;
    // The fp32 layernorm test's bound (embedding_layernorm_test.cc): sums of C terms of size <= 3 in different
    // orders, 1e-5 relative plus 1e-5 sqrt(C/64 + 1) on O(1) values (outputs, mean, rstd).
    const double atol = 1e-5 * std::sqrt(s.C / 64.0 + 1.0);
    // Inputs with an offset, like a residual stream: the mean is not ~0.
    Twin<uint16_t> a(random_bf16(rng, nc, -1.0f, 3.0f)), b(random_bf16(rng, nc)), w(random_bf16(rng, s.C, 0.5f, 1.5f));
    Twin<uint16_t> bias(random_bf16(rng, s.C)), out(poisoned(nc)), residual(poisoned(nc));
    Twin<float> mean(Twin<float>::nans(s.N)), rstd(Twin<float>::nans(s.N));

    kernels::cpu::layernorm_forward_bf16(cpu, out.cpu(), mean.cpu(), rstd.cpu(), a.cpu(), w.cpu(), bias.cpu(), s.N,
                                         s.C);
    auto run_fwd = [&] {
      kernels::cuda::layernorm_forward_bf16(cuda.ctx(), out.gpu(), mean.gpu(), rstd.gpu(), a.gpu(), w.gpu(),
                                            bias.gpu(), s.N, s.C);
    };
    run_fwd();
    expect_bf16_within(out.download(), out.host(), relative_bound(out.host(), 1e-5, atol), "layernorm_bf16 out" + tag);
    expect_close(mean.download(), mean.host(), 1e-5, atol, "layernorm_bf16 mean");
    expect_close(rstd.download(), rstd.host(), 1e-5, atol, "layernorm_bf16 rstd");
    expect_rerun_same_bits(run_fwd, {&out, &mean, &rstd}, cuda);

    // Fused residual: the residual is one rounded addition (bitwise); the layernorm reads it back rounded.
    out.reset_device(), mean.reset_device(), rstd.reset_device();
    kernels::cpu::residual_layernorm_forward_bf16(cpu, residual.cpu(), out.cpu(), mean.cpu(), rstd.cpu(), a.cpu(),
                                                  b.cpu(), w.cpu(), bias.cpu(), s.N, s.C);
    auto run_res = [&] {
      kernels::cuda::residual_layernorm_forward_bf16(cuda.ctx(), residual.gpu(), out.gpu(), mean.gpu(), rstd.gpu(),
                                                     a.gpu(), b.gpu(), w.gpu(), bias.gpu(), s.N, s.C);
    };
    run_res();
    expect_bitwise_equal(residual.download(), residual.host(), "residual_layernorm_bf16 residual" + tag);
    expect_bf16_within(out.download(), out.host(), relative_bound(out.host(), 1e-5, atol),
                       "residual_layernorm_bf16 out" + tag);
    expect_close(mean.download(), mean.host(), 1e-5, atol, "residual_layernorm_bf16 mean");
    expect_close(rstd.download(), rstd.host(), 1e-5, atol, "residual_layernorm_bf16 rstd");
    expect_rerun_same_bits(run_res, {&residual, &out, &mean, &rstd}, cuda);

    // Backward from the CPU's statistics on both sides, so that only the backward kernel is compared; dinp,
    // dweight and dbias accumulate onto nonzero values.
    const std::vector<float> dw0 = rng.floats(s.C), db0 = rng.floats(s.C);  // the old values, kept for the bound
    Twin<float> mean_in(mean.host()), rstd_in(rstd.host()), dw(dw0), db(db0);
    Twin<uint16_t> dout(random_bf16(rng, nc)), dinp(random_bf16(rng, nc));
    kernels::cpu::layernorm_backward_bf16(cpu, dinp.cpu(), dw.cpu(), db.cpu(), dout.cpu(), residual.cpu(), w.cpu(),
                                          mean_in.cpu(), rstd_in.cpu(), s.N, s.C);
    auto run_bwd = [&] {
      kernels::cuda::layernorm_backward_bf16(cuda.ctx(), dinp.gpu(), dw.gpu(), db.gpu(), dout.gpu(), residual.gpu(),
                                             w.gpu(), mean_in.gpu(), rstd_in.gpu(), s.N, s.C);
    };
    run_bwd();
    // dinp: the fp32 test's bound on the fp32 result (old value + O(1) term), then the bf16 step.
    expect_bf16_within(dinp.download(), dinp.host(), relative_bound(dinp.host(), 1e-5, atol),
                       "layernorm_bf16 dinp" + tag);
    // dweight/dbias (fp32) sum N rows (chunks of 128, then the chunks, vs one sequential loop) onto the old value:
    // gamma(N + 1) times the sum of |old| and the terms' absolute values |x - mean| rstd |dout| and |dout|, plus
    // 4 u of each term for the product's roundings.
    std::vector<double> bound_w(s.C), bound_b(s.C);
    for (int c = 0; c < s.C; c++) bound_w[c] = std::fabs(dw0[c]), bound_b[c] = std::fabs(db0[c]);
    for (int r = 0; r < s.N; r++) {
      for (int c = 0; c < s.C; c++) {
        const size_t i = static_cast<size_t>(r) * s.C + c;
        const double d = std::fabs(widen(dout.host()[i]));
        bound_w[c] += std::fabs(widen(residual.host()[i]) - mean_in.host()[r]) * rstd_in.host()[r] * d;
        bound_b[c] += d;
      }
    }
    for (int c = 0; c < s.C; c++) bound_w[c] *= gamma(s.N + 1) + 4 * kUnitRoundoff, bound_b[c] *= gamma(s.N + 1);
    expect_within(dw.download(), dw.host(), bound_w, "layernorm_bf16 dweight");
    expect_within(db.download(), db.host(), bound_b, "layernorm_bf16 dbias");
    expect_rerun_same_bits(run_bwd, {&dinp, &dw, &db}, cuda);
  }
}

TEST(CudaBf16Ops, SoftmaxCrossEntropyFused) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16Ops.SoftmaxCrossEntropyFused");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, V, Vp; };
  // Vp = 1, 7, 1003: scalar; 40: packs of 8 with a pack that straddles V = 37; GPT-2's padded vocabulary (1024
  // rows: the CPU twin holds several fp32 copies of the logits).
  for (const Shape s : cases<Shape>({{1, 1, 1}, {5, 7, 7}, {6, 37, 40}, {17, 1000, 1003}, {1024, 50257, 50304}}, 4)) {
    const std::string tag = " V=" + std::to_string(s.V) + " Vp=" + std::to_string(s.Vp);
    const size_t nv = static_cast<size_t>(s.N) * s.Vp;
    // Logits with a spread like a trained head's (-8..8); padded columns random: they must be ignored.
    const std::vector<uint16_t> logits = random_bf16(rng, nv, -8.0f, 8.0f);
    Twin<uint16_t> x(logits);
    Twin<float> losses(Twin<float>::nans(s.N));
    Twin<int32_t> targets(rng.ints(s.N, 0, s.V - 1));
    const float scale = 1.0f / s.N;
    kernels::cpu::softmax_crossentropy_fused_bf16(cpu, losses.cpu(), x.cpu(), targets.cpu(), scale, s.N, s.V, s.Vp);
    auto run = [&] {
      kernels::cuda::softmax_crossentropy_fused_bf16(cuda.ctx(), losses.gpu(), x.gpu(), targets.gpu(), scale, s.N,
                                                     s.V, s.Vp);
    };
    run();
    // The sum of V exponentials in different orders (positive terms): relative 2 (V+2) u, plus expf (2 ulp) vs
    // vexp (a few ulp) per term: 8 u. The loss log(sum) - (x - max) moves by that relative error of the sum, plus
    // its own roundings (2 u |loss|).
    const double sum_rel = gamma(s.V) + 8 * kUnitRoundoff;
    const auto l = losses.download();
    expect_close(l, losses.host(), 2 * kUnitRoundoff, sum_rel, "xent_bf16 losses" + tag);
    // dlogits = scale p (- scale at the target): p moves by the sum's relative error plus the exponential's and
    // the products' roundings (4 u); the target's subtraction adds 2 u of scale. p from the fp32 CPU softmax.
    std::vector<float> probs(nv), unused(s.N);
    {
      const std::vector<float> xf = widen_all(logits);
      kernels::cpu::softmax_crossentropy_forward(cpu, unused.data(), probs.data(), xf.data(), targets.cpu(), s.N, s.V,
                                                 s.Vp);
    }
    std::vector<double> bound(nv);
    for (size_t i = 0; i < nv; i++) {
      const bool is_target = static_cast<int>(i % s.Vp) == targets.host()[i / s.Vp];
      bound[i] = scale * (probs[i] * (sum_rel + 4 * kUnitRoundoff) + (is_target ? 2 * kUnitRoundoff : 0.0));
    }
    expect_bf16_within(x.download(), x.host(), bound, "xent_bf16 dlogits" + tag);  // padded columns: 0 both sides
    expect_rerun_same_bits(run, {&x, &losses}, cuda);                              // x is reset to the logits
  }
}

struct AttentionShape {
  int B, T, C, NH;
  int workspace_rows;  // > 0: a workspace that holds only this many batch rows (several chunks); 0: the context's
};

// |a| and |b| as doubles, for the bounds below.
double ad(const std::vector<float>& x, size_t i) { return std::fabs(static_cast<double>(x[i])); }

TEST(CudaBf16Ops, Attention) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16Ops.Attention");
  CudaContext cuda;
  const auto cpu = cpu_context();
  // T = 1, 5: the scalar softmax; T = 8, 16: packs of 8. B = 13 >= NH: GEMMs batched over batch rows; otherwise
  // over heads. workspace_rows = 2 splits B = 5 into chunks of 2, 2, 1. GPT-2 124M's head shape at T = 1024 (one
  // batch row per chunk in the test's 64 MiB workspace: 48 MiB of fp32 scores each), and at T = 256 with 4 rows.
  for (const AttentionShape s : cases<AttentionShape>({{1, 1, 3, 1, 0},
                                                       {2, 5, 36, 3, 0},
                                                       {13, 8, 24, 2, 0},
                                                       {5, 16, 48, 3, 2},
                                                       {4, 256, 768, 12, 0},
                                                       {1, 1024, 768, 12, 0}},
                                                      4)) {
    const std::string tag = " B=" + std::to_string(s.B) + " T=" + std::to_string(s.T) + " NH=" + std::to_string(s.NH);
    const int HS = s.C / s.NH, C3 = 3 * s.C, T = s.T;
    const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
    const size_t n3 = static_cast<size_t>(s.B) * T * C3, n1 = static_cast<size_t>(s.B) * T * s.C;
    const size_t natt = static_cast<size_t>(s.B) * s.NH * T * T;
    kernels::KernelContext ctx = cuda.ctx();
    if (s.workspace_rows > 0) ctx.cuda_workspace_bytes = s.workspace_rows * static_cast<size_t>(s.NH) * T * T * 4;

    Twin<uint16_t> qkv(random_bf16(rng, n3, -2.0f, 2.0f)), out(poisoned(n1)), att(poisoned(natt));
    kernels::cpu::attention_forward_bf16(cpu, out.cpu(), att.cpu(), qkv.cpu(), s.B, T, s.C, s.NH);
    auto run_fwd = [&] {
      kernels::cuda::attention_forward_bf16(ctx, out.gpu(), att.gpu(), qkv.gpu(), s.B, T, s.C, s.NH);
    };
    run_fwd();
    const std::vector<float> x = widen_all(qkv.host());  // (B, T, 3C)
    auto q_at = [&](int b, int t, int h, int part, int i) { return ad(x, (static_cast<size_t>(b) * T + t) * C3 +
                                                                            part * s.C + h * HS + i); };
    const auto att_gpu = att.download();
    const std::vector<float> ac = widen_all(att.host()), ag = widen_all(att_gpu);
    // att: a score is an HS-term dot product: its two values differ by at most X = gamma(HS) scale max_s sum|q||k|
    // over the row; p = e^{x - max} / sum then moves by 2X (the score and the max) + gamma(T) (the sum) + 16 u (exp
    // on each side, the division), relative to p (1.01: p taken from the rounded att).
    std::vector<double> att_bound(natt, 0.0);
    // out = sum_s att[t,s] v[s]: each side reads its own rounded att, so the bound carries the att difference
    // itself, plus gamma(T) of the sum of |att||v|.
    std::vector<double> out_bound(n1, 0.0);
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < s.B * s.NH; bh++) {
      const int b = bh / s.NH, h = bh % s.NH;
      for (int t = 0; t < T; t++) {
        const size_t row = (static_cast<size_t>(bh) * T + t) * T;
        double X = 0.0;
        for (int s2 = 0; s2 <= t; s2++) {
          double dot = 0.0;
          for (int i = 0; i < HS; i++) dot += q_at(b, t, h, 0, i) * q_at(b, s2, h, 1, i);
          X = std::max(X, dot);
        }
        X *= gamma(HS) * scale;
        for (int s2 = 0; s2 <= t; s2++) att_bound[row + s2] = 1.01 * ac[row + s2] * (2 * X + gamma(T) + 16 * kUnitRoundoff);
        for (int i = 0; i < HS; i++) {
          double bound = 0.0;
          for (int s2 = 0; s2 <= t; s2++) {
            bound += (std::fabs(static_cast<double>(ag[row + s2]) - ac[row + s2]) + gamma(T) * ac[row + s2]) *
                     q_at(b, s2, h, 2, i);
          }
          out_bound[(static_cast<size_t>(b) * T + t) * s.C + h * HS + i] = bound;
        }
      }
    }
    expect_bf16_within(att_gpu, att.host(), att_bound, "attention_bf16 att" + tag);  // masked half: +0 both sides
    expect_bf16_within(out.download(), out.host(), out_bound, "attention_bf16 out" + tag);
    expect_rerun_same_bits(run_fwd, {&out, &att}, cuda);

    // Backward from the CPU's att on both sides, so that only the backward kernel is compared; dqkv += onto
    // nonzero values, datt (scratch) poisoned.
    Twin<uint16_t> att_in(att.host()), dout(random_bf16(rng, n1)), dqkv(random_bf16(rng, n3)), datt(poisoned(natt));
    kernels::cpu::attention_backward_bf16(cpu, dqkv.cpu(), datt.cpu(), dout.cpu(), qkv.cpu(), att_in.cpu(), s.B, T,
                                          s.C, s.NH);
    auto run_bwd = [&] {
      kernels::cuda::attention_backward_bf16(ctx, dqkv.gpu(), datt.gpu(), dout.gpu(), qkv.gpu(), att_in.gpu(), s.B, T,
                                             s.C, s.NH);
    };
    run_bwd();
    const std::vector<float> d = widen_all(dout.host());  // (B, T, C)
    auto d_at = [&](int b, int t, int h, int i) { return ad(d, (static_cast<size_t>(b) * T + t) * s.C + h * HS + i); };
    const auto datt_gpu = datt.download();
    const std::vector<float> dc = widen_all(datt.host()), dg = widen_all(datt_gpu);
    // datt = a (g - sum_u a_u g_u), g = dout . v (HS terms). With G the row's largest sum |dout||v| and A = sum |a|:
    // |dg| <= gamma(HS) G, the inner sum moves by A (gamma(T) + gamma(HS)) G, the two roundings by 4 u (1 + A) G:
    // bound |a| G (1 + A) (gamma(HS) + gamma(T) + 4 u).
    std::vector<double> datt_bound(natt, 0.0);
    // dq += scale sum_s datt[t,s] k[s], dk += scale sum_t datt[t,s] q[t], dv += sum_t att[t,s] dout[t]: each side
    // reads its own rounded datt, so the bounds carry the datt difference, plus gamma(T) of the sums of |terms|,
    // plus 4 u of the old value.
    std::vector<double> dqkv_bound(n3, 0.0);
    for (size_t i = 0; i < n3; i++) dqkv_bound[i] = 4 * kUnitRoundoff * std::fabs(widen(dqkv.host()[i]));
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < s.B * s.NH; bh++) {  // each (b, h) owns its rows of datt and its head's columns of dqkv
      const int b = bh / s.NH, h = bh % s.NH;
      auto dq = [&](int t, int part, int i) -> double& {
        return dqkv_bound[(static_cast<size_t>(b) * T + t) * C3 + part * s.C + h * HS + i];
      };
      for (int t = 0; t < T; t++) {
        const size_t row = (static_cast<size_t>(bh) * T + t) * T;
        double G = 0.0, A = 0.0;
        for (int s2 = 0; s2 <= t; s2++) {
          double g = 0.0;
          for (int i = 0; i < HS; i++) g += d_at(b, t, h, i) * q_at(b, s2, h, 2, i);
          G = std::max(G, g);
          A += ac[row + s2];
        }
        for (int s2 = 0; s2 <= t; s2++) {
          datt_bound[row + s2] = ac[row + s2] * G * (1 + A) * (gamma(HS) + gamma(T) + 4 * kUnitRoundoff);
          const double diff = std::fabs(static_cast<double>(dg[row + s2]) - dc[row + s2]);
          const double w = scale * (diff + gamma(T) * std::fabs(dc[row + s2]));
          for (int i = 0; i < HS; i++) {
            dq(t, 0, i) += w * q_at(b, s2, h, 1, i);
            dq(s2, 1, i) += w * q_at(b, t, h, 0, i);
            dq(s2, 2, i) += gamma(T) * ac[row + s2] * d_at(b, t, h, i);
          }
        }
      }
    }
    expect_bf16_within(datt_gpu, datt.host(), datt_bound, "attention_bf16 datt" + tag);
    expect_bf16_within(dqkv.download(), dqkv.host(), dqkv_bound, "attention_bf16 dqkv" + tag);
    expect_rerun_same_bits(run_bwd, {&dqkv, &datt}, cuda);
  }
}

}  // namespace
}  // namespace resbm_test
