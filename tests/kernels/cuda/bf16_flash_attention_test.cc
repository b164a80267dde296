// tests/kernels/cuda/bf16_flash_attention_test.cc: flash attention in bf16 (bf16.cuh's flash_attention_*_bf16).
//
// 1. The CPU twin against the fp32 CPU attention (kernels/cpu/attention.cc) on the widened inputs: runs everywhere,
//    no GPU needed. The twin is what the CUDA kernel is compared with, so it must itself be the fp32 attention up to
//    its bf16 outputs: out within one bf16 rounding plus an fp32 bound, lse against a double-precision log-sum-exp,
//    dqkv within the fp32 bound that includes the one deliberate difference (D from the ROUNDED out).
// 2. The CUDA kernels against the twin (skipped without a device): fresh printed seeds, odd sizes (T not a multiple
//    of the 64-row tile, one row, one head, HS = 16, 32, 64, 128), NaN-poisoned out and lse, dqkv += onto nonzero
//    values, a bitwise rerun, and GPT-2's shape (B=2, T=1024, NH=12, HS=64) unless RESBM_TEST_SMALL.
//
// Bounds, all computed per element in double from the inputs (u = 2^-24, gamma(n) = 2 (n+2) u, bf16.cuh's rules):
//  - a score s = scale q.k (HS products) differs between two fp32 orders by X = gamma(HS) scale sum |q||k|;
//  - p = e^{s - lse} then differs relatively by the error of s - lse: X, lse's own error when it differs, and the
//    roundings of the subtraction and exp: 4 u (|s| + |lse| + 2);
//  - a sum over the causal row of n terms moves by gamma(n) times the sum of |terms|;
//  - the CUDA kernel feeds the tensor cores bf16 operands: its p (forward and dv) and ds (dq, dk) are rounded to
//    bf16, a relative 2^-8 of each term; the forward's online softmax rescales its sums once per 64-key tile
//    (nt = ceil(T/64) more roundings);
//  - a bf16 result is then allowed one bf16 step (expect_bf16_within) on top of the fp32 bound.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_cpu_twin.h"
#include "kernels/cuda/bf16_rounding.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

using kernels::bf16::widen;

constexpr uint16_t kBf16NaN = 0x7FC0u;      // poison for bf16 outputs
constexpr double kBf16Unit = 1.0 / (1 << 8);  // bf16 rounding to nearest: relative error <= 2^-8
const double u = kUnitRoundoff;

double gamma(int n) { return 2.0 * (n + 2) * u; }

struct Shape {
  int B, T, NH, HS;
  int C() const { return NH * HS; }
  std::string tag() const {
    return " B=" + std::to_string(B) + " T=" + std::to_string(T) + " NH=" + std::to_string(NH) +
           " HS=" + std::to_string(HS);
  }
};

// The widened tensors of one problem and double-precision views of them.
struct Problem {
  Shape s;
  double scale;
  std::vector<float> qkv, dout, out;  // (B,T,3C), (B,T,C), (B,T,C): widened bf16 (out: the twin's)
  double x(int b, int t, int h, int part, int i) const {
    return qkv[(static_cast<size_t>(b) * s.T + t) * 3 * s.C() + part * s.C() + h * s.HS + i];
  }
  double d(int b, int t, int h, int i) const { return dout[(static_cast<size_t>(b) * s.T + t) * s.C() + h * s.HS + i]; }
  double y(int b, int t, int h, int i) const { return out[(static_cast<size_t>(b) * s.T + t) * s.C() + h * s.HS + i]; }
  // s = scale q.k in double, and its fp32 error bound X.
  void score(int b, int h, int t, int j, double* sc, double* X) const {
    double dot = 0.0, mag = 0.0;
    for (int i = 0; i < s.HS; i++) {
      dot += x(b, t, h, 0, i) * x(b, j, h, 1, i);
      mag += std::fabs(x(b, t, h, 0, i) * x(b, j, h, 1, i));
    }
    *sc = scale * dot;
    *X = gamma(s.HS) * scale * mag;
  }
};

Problem make_problem(const Shape& s, const std::vector<uint16_t>& qkv) {
  Problem p{s, 1.0 / std::sqrt(static_cast<double>(s.HS)), widen_all(qkv), {}, {}};
  return p;
}

// Forward bounds. lse: |lse_a - lse_b| <= 2 Xmax + gamma(T) + 8 u (|lse| + 1) (the row's largest score error, the
// sum, the log and the addition). out (fp32, before rounding): p moves by the row's score and lse errors plus the
// subtraction and exp, and each side sums in its own order: sum_j p_j |v_j| (2 Xmax + X_j + gamma(T) + 4u (|s| +
// |lse| + 2) + gamma(T) + extra_rel), with extra_rel the CUDA kernel's own (bf16 p~, one rescale per tile). The
// factor 1.1 covers p taken from the reference lse rather than each side's.
void forward_bounds(const Problem& P, const std::vector<float>& lse, double extra_rel, double extra_lse,
                    std::vector<double>* out_bound, std::vector<double>* lse_bound) {
  const Shape& s = P.s;
  out_bound->assign(static_cast<size_t>(s.B) * s.T * s.C(), 0.0);
  lse_bound->assign(static_cast<size_t>(s.B) * s.NH * s.T, 0.0);
#pragma omp parallel for schedule(dynamic)
  for (int bh = 0; bh < s.B * s.NH; bh++) {
    const int b = bh / s.NH, h = bh % s.NH;
    std::vector<double> sc(s.T), X(s.T), acc(s.HS);
    for (int t = 0; t < s.T; t++) {
      const double L = lse[static_cast<size_t>(bh) * s.T + t];
      double Xmax = 0.0;
      for (int j = 0; j <= t; j++) {
        P.score(b, h, t, j, &sc[j], &X[j]);
        Xmax = std::max(Xmax, X[j]);
      }
      (*lse_bound)[static_cast<size_t>(bh) * s.T + t] = 2 * Xmax + gamma(s.T) + 8 * u * (std::fabs(L) + 1) + extra_lse;
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int j = 0; j <= t; j++) {
        const double p = std::exp(sc[j] - L);
        const double rel = 2 * Xmax + X[j] + 2 * gamma(s.T) + 4 * u * (std::fabs(sc[j]) + std::fabs(L) + 2) + extra_rel;
        for (int i = 0; i < s.HS; i++) acc[i] += 1.1 * p * rel * std::fabs(P.x(b, j, h, 2, i));
      }
      for (int i = 0; i < s.HS; i++) (*out_bound)[(static_cast<size_t>(b) * s.T + t) * s.C() + h * s.HS + i] = acc[i];
    }
  }
}

// Backward bounds on the fp32 gradients (before rounding). Per pair (t, j): p = e^{s - lse} moves by p_rel (the
// score error X plus the roundings of s - lse and exp, plus row_p_rel[t] when the two sides' p also come from
// different forward computations); dp = dout_t . v_j by gamma(HS) G (G = sum |dout_t||v_j|); D_t by dD[t];
// ds = p (dp - D) by |ds| p_rel + p (gamma(HS) G + dD[t]) + bf16_rel |ds|; then dq_t += scale sum_j ds k_j,
// dk_j += scale sum_t ds q_t, dv_j += sum_t p dout_t each sum their terms in their own order (gamma(T)), and the
// CUDA kernel's bf16 operands add bf16_rel of each term. old: 4 u |old| for the += (widen, add, round).
void backward_bounds(const Problem& P, const std::vector<float>& lse, const std::vector<double>& dD,
                     const std::vector<double>& row_p_rel, double bf16_rel, const std::vector<uint16_t>& old,
                     std::vector<double>* bound) {
  const Shape& s = P.s;
  const int C = s.C(), C3 = 3 * C;
  bound->assign(static_cast<size_t>(s.B) * s.T * C3, 0.0);
  for (size_t i = 0; i < old.size(); i++) (*bound)[i] = 4 * u * std::fabs(widen(old[i]));
#pragma omp parallel for schedule(dynamic)
  for (int bh = 0; bh < s.B * s.NH; bh++) {  // each (b, h) owns its head's columns
    const int b = bh / s.NH, h = bh % s.NH;
    auto at = [&](int t, int part, int i) -> double& {
      return (*bound)[(static_cast<size_t>(b) * s.T + t) * C3 + part * C + h * s.HS + i];
    };
    for (int t = 0; t < s.T; t++) {
      const size_t row = static_cast<size_t>(bh) * s.T + t;
      const double L = lse[row];
      double D = 0.0;
      for (int i = 0; i < s.HS; i++) D += P.d(b, t, h, i) * P.y(b, t, h, i);
      for (int j = 0; j <= t; j++) {
        double sc, X, dp = 0.0, G = 0.0;
        P.score(b, h, t, j, &sc, &X);
        for (int i = 0; i < s.HS; i++) {
          dp += P.d(b, t, h, i) * P.x(b, j, h, 2, i);
          G += std::fabs(P.d(b, t, h, i) * P.x(b, j, h, 2, i));
        }
        const double p = std::exp(sc - L), ds = p * (dp - D);
        const double p_rel = X + 4 * u * (std::fabs(sc) + std::fabs(L) + 2) + row_p_rel[row];
        const double dds = std::fabs(ds) * p_rel + p * (gamma(s.HS) * G + dD[row]);
        const double w = 1.1 * P.scale * (dds + (bf16_rel + gamma(s.T)) * std::fabs(ds));
        const double wv = 1.1 * p * (p_rel + bf16_rel + gamma(s.T));
        for (int i = 0; i < s.HS; i++) {
          at(t, 0, i) += w * std::fabs(P.x(b, j, h, 1, i));
          at(j, 1, i) += w * std::fabs(P.x(b, t, h, 0, i));
          at(j, 2, i) += wv * std::fabs(P.d(b, t, h, i));
        }
      }
    }
  }
}

// ---- 1. The twin against the fp32 CPU attention (runs without a GPU).

TEST(Bf16FlashAttentionTwin, MatchesFp32Attention) {
  Rng rng("Bf16FlashAttentionTwin.MatchesFp32Attention");
  const auto cpu = cpu_context();
  // T = 1 (one key), odd T past a 64-row tile, one head and several, HS = 16 and 64.
  for (const Shape s : {Shape{1, 1, 1, 16}, Shape{2, 17, 3, 16}, Shape{1, 65, 2, 64}, Shape{2, 40, 1, 64}}) {
    const int C = s.C(), C3 = 3 * C;
    const size_t n3 = static_cast<size_t>(s.B) * s.T * C3, n1 = static_cast<size_t>(s.B) * s.T * C;
    const size_t nr = static_cast<size_t>(s.B) * s.NH * s.T, natt = nr * s.T;
    const std::vector<uint16_t> qkv = random_bf16(rng, n3, -2.0f, 2.0f), dout = random_bf16(rng, n1);
    Problem P = make_problem(s, qkv);
    P.dout = widen_all(dout);

    // The fp32 attention on the widened inputs.
    std::vector<float> out_ref(n1), att_ref(natt), dqkv_ref(n3, 0.0f), datt_ref(natt);
    kernels::cpu::attention_forward(cpu, out_ref.data(), att_ref.data(), P.qkv.data(), s.B, s.T, C, s.NH);
    kernels::cpu::attention_backward(cpu, dqkv_ref.data(), datt_ref.data(), P.dout.data(), P.qkv.data(),
                                     att_ref.data(), s.B, s.T, C, s.NH);
    // The twin, dqkv += from zero (so that it is the gradient alone, rounded once).
    std::vector<uint16_t> out(n1, kBf16NaN), dqkv(n3, 0);
    std::vector<float> lse(nr, NAN);
    kernels::cpu::flash_attention_forward_bf16(cpu, out.data(), lse.data(), qkv.data(), s.B, s.T, C, s.NH);
    kernels::cpu::flash_attention_backward_bf16(cpu, dqkv.data(), dout.data(), out.data(), lse.data(), qkv.data(),
                                                s.B, s.T, C, s.NH);
    P.out = widen_all(out);

    // lse against a double-precision log-sum-exp of double scores: the twin's fp32 scores are off by X each.
    std::vector<float> lse_d(nr);
    std::vector<double> lse_bound(nr);
    for (int bh = 0; bh < s.B * s.NH; bh++) {
      for (int t = 0; t < s.T; t++) {
        double m = -INFINITY, sum = 0.0, Xmax = 0.0;
        std::vector<double> sc(t + 1), X(t + 1);
        for (int j = 0; j <= t; j++) {
          P.score(bh / s.NH, bh % s.NH, t, j, &sc[j], &X[j]);
          m = std::max(m, sc[j]);
          Xmax = std::max(Xmax, X[j]);
        }
        for (int j = 0; j <= t; j++) sum += std::exp(sc[j] - m);
        const size_t row = static_cast<size_t>(bh) * s.T + t;
        lse_d[row] = static_cast<float>(m + std::log(sum));
        // X (scores) + gamma(T) (the sum, relative: absolute after the log) + 8 u (|lse| + 1) (exp, log, add, and
        // lse_d's own rounding to float).
        lse_bound[row] = Xmax + gamma(s.T) + 8 * u * (std::fabs(lse_d[row]) + 1);
      }
    }
    expect_within(lse, lse_d, lse_bound, "twin lse vs double" + s.tag());

    // out: the fp32 bound from forward_bounds, then one bf16 rounding of the twin's value: 2^-8 (|ref| + bound).
    std::vector<double> out_bound, unused;
    forward_bounds(P, lse, 0.0, 0.0, &out_bound, &unused);
    for (size_t i = 0; i < n1; i++) out_bound[i] += kBf16Unit * (std::fabs(out_ref[i]) + out_bound[i]);
    expect_within(P.out, out_ref, out_bound, "twin out vs fp32" + s.tag());

    // dqkv: the twin's D = dout . out reads the ROUNDED out, the fp32 kernel's sum(att * datt) the exact one:
    // dD = sum |dout| |out_bf16 - out_fp32| (measured) + gamma(HS + T) (sum |dout||out| + sum_j p |dp|) (the two
    // orders). p on the two sides comes from different forward arithmetic (att vs e^{s - lse}): the forward's row
    // error 2 Xmax + gamma(T) + 16 u.
    std::vector<double> dD(nr, 0.0), row_p_rel(nr, 0.0);
    for (int bh = 0; bh < s.B * s.NH; bh++) {
      const int b = bh / s.NH, h = bh % s.NH;
      for (int t = 0; t < s.T; t++) {
        const size_t row = static_cast<size_t>(bh) * s.T + t;
        double mag = 0.0, pdp = 0.0, Xmax = 0.0;
        for (int i = 0; i < s.HS; i++) {
          const size_t at = (static_cast<size_t>(b) * s.T + t) * C + h * s.HS + i;
          dD[row] += std::fabs(P.dout[at]) * std::fabs(static_cast<double>(P.out[at]) - out_ref[at]);
          mag += std::fabs(P.dout[at] * P.out[at]);
        }
        for (int j = 0; j <= t; j++) {
          double sc, X, dp = 0.0;
          P.score(b, h, t, j, &sc, &X);
          for (int i = 0; i < s.HS; i++) dp += P.d(b, t, h, i) * P.x(b, j, h, 2, i);
          pdp += std::exp(sc - lse[row]) * std::fabs(dp);
          Xmax = std::max(Xmax, X);
        }
        dD[row] += gamma(s.HS + s.T) * (mag + pdp);
        row_p_rel[row] = 2 * Xmax + gamma(s.T) + 16 * u;
      }
    }
    std::vector<double> dqkv_bound;
    backward_bounds(P, lse, dD, row_p_rel, 0.0, std::vector<uint16_t>(n3, 0), &dqkv_bound);
    for (size_t i = 0; i < n3; i++) dqkv_bound[i] += kBf16Unit * (std::fabs(dqkv_ref[i]) + dqkv_bound[i]);
    expect_within(widen_all(dqkv), dqkv_ref, dqkv_bound, "twin dqkv vs fp32" + s.tag());
  }
}

// The head size must be a multiple of 16 (the tensor-core tile): refused with a message before any CUDA call, so
// this runs without a device.
TEST(Bf16FlashAttentionDeath, RefusesHeadSizeNotMultipleOf16) {
#ifdef RESBM_HAVE_CUDA
  kernels::KernelContext ctx;
  uint16_t* p = nullptr;
  float* f = nullptr;
  EXPECT_DEATH(kernels::cuda::flash_attention_forward_bf16(ctx, p, f, p, 1, 8, 48, 2), "multiple of 16");
  EXPECT_DEATH(kernels::cuda::flash_attention_backward_bf16(ctx, p, p, p, f, p, 1, 8, 40, 1), "multiple of 16");
#else
  GTEST_SKIP() << "built without CUDA (--config=nocuda): the kernels are stubs";
#endif
}

// ---- 2. CUDA against the twin.

TEST(CudaBf16FlashAttention, MatchesTwin) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16FlashAttention.MatchesTwin");
  CudaContext cuda;
  const auto cpu = cpu_context();
  // T = 1, 5, 17: one partial tile; 64: exactly one; 65, 130: a partial last tile after full ones (and the causal
  // diagonal of several); NH = 1, 3; HS = 16, 32, 64 (the 4-fragment kernels) and 128 (the 8-fragment ones).
  for (const Shape s : cases<Shape>({{1, 1, 1, 16},
                                     {2, 5, 3, 16},
                                     {3, 17, 1, 64},
                                     {1, 64, 3, 64},
                                     {2, 65, 3, 16},
                                     {1, 130, 1, 64},
                                     {2, 33, 2, 32},
                                     {1, 70, 2, 128},
                                     {3, 130, 3, 64},
                                     {2, 1024, 12, 64}},
                                    8)) {
    const int C = s.C(), C3 = 3 * C, T = s.T;
    const size_t n3 = static_cast<size_t>(s.B) * T * C3, n1 = static_cast<size_t>(s.B) * T * C;
    const size_t nr = static_cast<size_t>(s.B) * s.NH * T;
    const int tiles = (T + 63) / 64;

    Twin<uint16_t> qkv(random_bf16(rng, n3, -2.0f, 2.0f)), out(std::vector<uint16_t>(n1, kBf16NaN));
    Twin<float> lse(Twin<float>::nans(nr));
    kernels::cpu::flash_attention_forward_bf16(cpu, out.cpu(), lse.cpu(), qkv.cpu(), s.B, T, C, s.NH);
    auto run_fwd = [&] {
      kernels::cuda::flash_attention_forward_bf16(cuda.ctx(), out.gpu(), lse.gpu(), qkv.gpu(), s.B, T, C, s.NH);
    };
    run_fwd();
    cuda.sync();
    Problem P = make_problem(s, qkv.host());
    P.out = widen_all(out.host());
    // The kernel's own: p~ rounded to bf16 (2^-8), one rescale of the running sums per tile and the final 1/l
    // ((tiles + 2) u each for out and l, so 2 (tiles + 2) u), expf's 2 ulp vs the CPU's 1 (4 u).
    std::vector<double> out_bound, lse_bound;
    forward_bounds(P, lse.host(), kBf16Unit + 2 * (tiles + 2) * u + 4 * u, 2 * (tiles + 2) * u, &out_bound,
                   &lse_bound);
    expect_within(lse.download(), lse.host(), lse_bound, "flash lse" + s.tag());
    expect_bf16_within(out.download(), out.host(), out_bound, "flash out" + s.tag());
    expect_rerun_same_bits(run_fwd, {&out, &lse}, cuda);

    // Backward from the twin's out and lse on both sides (only the backward is compared); dqkv += onto nonzero
    // values.
    Twin<uint16_t> out_in(out.host()), dout(random_bf16(rng, n1)), dqkv(random_bf16(rng, n3));
    Twin<float> lse_in(lse.host());
    const std::vector<uint16_t> old = dqkv.host();
    kernels::cpu::flash_attention_backward_bf16(cpu, dqkv.cpu(), dout.cpu(), out_in.cpu(), lse_in.cpu(), qkv.cpu(),
                                                s.B, T, C, s.NH);
    auto run_bwd = [&] {
      kernels::cuda::flash_attention_backward_bf16(cuda.ctx(), dqkv.gpu(), dout.gpu(), out_in.gpu(), lse_in.gpu(),
                                                   qkv.gpu(), s.B, T, C, s.NH);
    };
    run_bwd();
    cuda.sync();
    P.dout = widen_all(dout.host());
    // D = dout . out in two orders: gamma(HS) sum |dout||out|; p from the same lse on both sides (row_p_rel 0);
    // p and ds are bf16 operands of the kernel's products (2^-8).
    std::vector<double> dD(nr, 0.0);
    for (size_t row = 0; row < nr; row++) {
      const size_t bh = row / T, t = row % T, b = bh / s.NH, h = bh % s.NH;
      for (int i = 0; i < s.HS; i++) {
        const size_t at = (b * T + t) * C + h * s.HS + i;
        dD[row] += gamma(s.HS) * std::fabs(P.dout[at] * P.out[at]);
      }
    }
    std::vector<double> dqkv_bound;
    backward_bounds(P, lse.host(), dD, std::vector<double>(nr, 0.0), kBf16Unit, old, &dqkv_bound);
    expect_bf16_within(dqkv.download(), dqkv.host(), dqkv_bound, "flash dqkv" + s.tag());
    expect_rerun_same_bits(run_bwd, {&dqkv}, cuda);
  }
}

}  // namespace
}  // namespace resbm_test
