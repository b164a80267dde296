// tests/bench/bf16_twin_test.cc: the CPU twins of the bf16 activation kernels (kernels/cuda/bf16_cpu_twin.h), each
// against an independent float64 computation on the widened inputs, on odd sizes (B=3, T=7, C=12, NH=3, V=37,
// Vp=40). CPU only: these twins are what the CUDA kernels and the bf16 training step are defined by.
//
// The bound every bf16 output must meet. The twin computes an fp32 value f and stores round_nearest(f). Round to
// nearest moves f by at most half a bf16 spacing: bf16 keeps 8 significant bits, so in [2^e, 2^(e+1)) the spacing is
// 2^(e-7) and half of it is 2^(e-8) <= 2^-8 |f|. f itself differs from the float64 value r by the fp32 arithmetic
// error, at most about 2 (K + 8) u mag for a K-term sum (u = 2^-24; mag = the sum of the terms' magnitudes; the +8
// covers the few ulp of exp and the final products). Hence
//   |widen(out) - r| <= 2^-8 |r| + (1 + 2^-8) 2 (K + 8) u mag.
// A wrong formula, a wrong index or a missed/extra rounding shows as an error far above that (one extra bf16
// rounding of an intermediate already costs up to 2^-8 of that intermediate, which mag does not cover).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/context.h"
#include "kernels/cuda/bf16_cpu_twin.h"
#include "kernels/cuda/bf16_rounding.h"

namespace {

using kernels::bf16::round_nearest;
using kernels::bf16::widen;

constexpr double kHalfBf16Spacing = 1.0 / 256;      // 2^-8: round to nearest, relative to the value
constexpr double kUnitRoundoff = 1.0 / (1 << 24);  // fp32

constexpr int B = 3, T = 7, C = 12, NH = 3, HS = C / NH, N = B * T, V = 37, Vp = 40;

class Inputs {
 public:
  explicit Inputs(const std::string& name) : gen_(std::hash<std::string>()(name)) {}
  std::vector<uint16_t> bf16(size_t n, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> u(lo, hi);
    std::vector<uint16_t> v(n);
    for (auto& x : v) x = round_nearest(static_cast<float>(u(gen_)));
    return v;
  }
  std::vector<float> f32(size_t n, double lo = -1.0, double hi = 1.0) {
    std::uniform_real_distribution<double> u(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(u(gen_));
    return v;
  }
  std::vector<int32_t> ints(size_t n, int hi) {
    std::uniform_int_distribution<int> u(0, hi - 1);
    std::vector<int32_t> v(n);
    for (auto& x : v) x = u(gen_);
    return v;
  }

 private:
  std::mt19937_64 gen_;
};

double w(uint16_t x) { return widen(x); }

// The float64 reference of one output and what bounds its fp32 error (see the file comment).
struct Ref {
  std::vector<double> value;
  std::vector<double> mag;
  explicit Ref(size_t n) : value(n, 0.0), mag(n, 0.0) {}
};

// bf16 outputs: one rounding of an fp32 value that is within 2 (K+8) u mag of the reference.
void expect_rounded_once(const std::vector<uint16_t>& got, const Ref& ref, int K, const std::string& what) {
  ASSERT_EQ(got.size(), ref.value.size());
  size_t bad = 0, first = 0;
  double worst = 0.0;  // the largest error as a fraction of its bound, printed for the record
  for (size_t i = 0; i < got.size(); i++) {
    const double r = ref.value[i];
    const double bound = kHalfBf16Spacing * std::fabs(r) +
                         (1 + kHalfBf16Spacing) * 2.0 * (K + 8) * kUnitRoundoff * ref.mag[i] + 1e-300;
    const double err = std::fabs(w(got[i]) - r);
    worst = std::max(worst, err / bound);
    if (!(err <= bound) && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": first at " << first << ": got " << w(got[first]) << " want " << ref.value[first];
  std::printf("[ bound    ] %-24s n=%-5zu worst error = %.3f of the bound\n", what.c_str(), got.size(), worst);
}

// fp32 outputs (parameter gradients, statistics, losses): no bf16 rounding, only the fp32 arithmetic error.
void expect_fp32_close(const std::vector<float>& got, const Ref& ref, int K, const std::string& what) {
  ASSERT_EQ(got.size(), ref.value.size());
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); i++) {
    const double bound = 2.0 * (K + 8) * kUnitRoundoff * ref.mag[i] + 1e-300;
    if (!(std::fabs(got[i] - ref.value[i]) <= bound) && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": first at " << first << ": got " << got[first] << " want " << ref.value[first];
}

kernels::KernelContext cpu_context() {
  kernels::KernelContext ctx;
  ctx.num_threads = 2;
  return ctx;
}

TEST(Bf16Twin, Embedding) {
  Inputs in("Bf16Twin.Embedding");
  const auto ctx = cpu_context();
  const std::vector<int32_t> tokens = in.ints(N, V);  // (B, T)
  const std::vector<uint16_t> wte = in.bf16(static_cast<size_t>(Vp) * C), wpe = in.bf16(static_cast<size_t>(T) * C);
  std::vector<uint16_t> out(static_cast<size_t>(N) * C, 0xFFFF);  // poisoned: every element must be written
  kernels::cpu::embedding_forward_bf16(ctx, out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  Ref ref(out.size());
  for (int n = 0; n < N; n++) {
    for (int c = 0; c < C; c++) {
      const double a = w(wte[tokens[n] * C + c]), b = w(wpe[(n % T) * C + c]);
      ref.value[n * C + c] = a + b;
      ref.mag[n * C + c] = std::fabs(a) + std::fabs(b);
    }
  }
  expect_rounded_once(out, ref, 1, "embedding_forward");

  // Backward: fp32 parameter gradients += the widened dout, summed over the positions that used each row.
  const std::vector<uint16_t> dout = in.bf16(static_cast<size_t>(N) * C);
  std::vector<float> dwte = in.f32(static_cast<size_t>(Vp) * C), dwpe = in.f32(static_cast<size_t>(T) * C);
  Ref rwte(dwte.size()), rwpe(dwpe.size());
  for (size_t i = 0; i < dwte.size(); i++) rwte.value[i] = dwte[i], rwte.mag[i] = std::fabs(dwte[i]);
  for (size_t i = 0; i < dwpe.size(); i++) rwpe.value[i] = dwpe[i], rwpe.mag[i] = std::fabs(dwpe[i]);
  for (int n = 0; n < N; n++) {
    for (int c = 0; c < C; c++) {
      const double d = w(dout[n * C + c]);
      rwte.value[tokens[n] * C + c] += d, rwte.mag[tokens[n] * C + c] += std::fabs(d);
      rwpe.value[(n % T) * C + c] += d, rwpe.mag[(n % T) * C + c] += std::fabs(d);
    }
  }
  kernels::cpu::embedding_backward_bf16(ctx, dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
  expect_fp32_close(dwte, rwte, N, "embedding_backward dwte");
  expect_fp32_close(dwpe, rwpe, B, "embedding_backward dwpe");
}

// The float64 layernorm of one widened row: mean, rstd, xhat.
struct RowStats {
  double mean = 0, rstd = 0, absmax = 0;
};
RowStats row_stats(const uint16_t* x) {
  RowStats s;
  for (int c = 0; c < C; c++) s.mean += w(x[c]) / C, s.absmax = std::max(s.absmax, std::fabs(w(x[c])));
  double var = 0;
  for (int c = 0; c < C; c++) var += (w(x[c]) - s.mean) * (w(x[c]) - s.mean) / C;
  s.rstd = 1.0 / std::sqrt(var + 1e-5);
  return s;
}

// out = layernorm(x) from the widened x; the fp32 error of (x - mean) * rstd is up to about C u absmax * rstd (the
// mean and variance sums), hence that term in mag.
void check_layernorm(const std::vector<uint16_t>& x, const std::vector<uint16_t>& weight,
                     const std::vector<uint16_t>& bias, const std::vector<uint16_t>& out,
                     const std::vector<float>& mean, const std::vector<float>& rstd, const std::string& what) {
  Ref ref(out.size()), rmean(N), rrstd(N);
  for (int n = 0; n < N; n++) {
    const RowStats s = row_stats(&x[n * C]);
    rmean.value[n] = s.mean, rmean.mag[n] = s.absmax;
    rrstd.value[n] = s.rstd, rrstd.mag[n] = 2 * s.rstd;  // rstd: relative error of the variance sum and sqrt
    for (int c = 0; c < C; c++) {
      const double xhat = (w(x[n * C + c]) - s.mean) * s.rstd;
      ref.value[n * C + c] = xhat * w(weight[c]) + w(bias[c]);
      ref.mag[n * C + c] = (std::fabs(xhat) + s.absmax * s.rstd) * std::fabs(w(weight[c])) + std::fabs(w(bias[c]));
    }
  }
  expect_rounded_once(out, ref, C, what + " out");
  expect_fp32_close(mean, rmean, C, what + " mean");
  expect_fp32_close(rstd, rrstd, C, what + " rstd");
}

TEST(Bf16Twin, LayernormForward) {
  Inputs in("Bf16Twin.LayernormForward");
  const auto ctx = cpu_context();
  const auto x = in.bf16(static_cast<size_t>(N) * C, -2, 3), weight = in.bf16(C, 0.5, 1.5), bias = in.bf16(C);
  std::vector<uint16_t> out(x.size(), 0xFFFF);
  std::vector<float> mean(N, NAN), rstd(N, NAN);
  kernels::cpu::layernorm_forward_bf16(ctx, out.data(), mean.data(), rstd.data(), x.data(), weight.data(),
                                       bias.data(), N, C);
  check_layernorm(x, weight, bias, out, mean, rstd, "layernorm_forward");
}

TEST(Bf16Twin, ResidualLayernormForward) {
  Inputs in("Bf16Twin.ResidualLayernormForward");
  const auto ctx = cpu_context();
  const auto a = in.bf16(static_cast<size_t>(N) * C, -2, 3), b = in.bf16(a.size());
  const auto weight = in.bf16(C, 0.5, 1.5), bias = in.bf16(C);
  std::vector<uint16_t> residual(a.size(), 0xFFFF), out(a.size(), 0xFFFF);
  std::vector<float> mean(N, NAN), rstd(N, NAN);
  kernels::cpu::residual_layernorm_forward_bf16(ctx, residual.data(), out.data(), mean.data(), rstd.data(), a.data(),
                                                b.data(), weight.data(), bias.data(), N, C);
  Ref rres(a.size());
  for (size_t i = 0; i < a.size(); i++) rres.value[i] = w(a[i]) + w(b[i]), rres.mag[i] = std::fabs(rres.value[i]);
  expect_rounded_once(residual, rres, 1, "residual = a + b");
  // The layernorm reads the STORED residual: its reference is computed from the twin's bf16 residual.
  check_layernorm(residual, weight, bias, out, mean, rstd, "residual_layernorm");
}

TEST(Bf16Twin, LayernormBackward) {
  Inputs in("Bf16Twin.LayernormBackward");
  const auto ctx = cpu_context();
  const auto x = in.bf16(static_cast<size_t>(N) * C, -2, 3), weight = in.bf16(C, 0.5, 1.5), bias = in.bf16(C);
  const auto dout = in.bf16(x.size());
  std::vector<uint16_t> out(x.size());
  std::vector<float> mean(N), rstd(N);
  kernels::cpu::layernorm_forward_bf16(ctx, out.data(), mean.data(), rstd.data(), x.data(), weight.data(),
                                       bias.data(), N, C);
  std::vector<uint16_t> dinp = in.bf16(x.size());  // old values: the kernel accumulates
  std::vector<float> dweight = in.f32(C), dbias = in.f32(C);
  // dx = rstd (dnorm - mean(dnorm) - xhat mean(dnorm xhat)), dnorm = weight * dout, from the saved fp32 mean, rstd.
  Ref rdx(x.size()), rdw(C), rdb(C);
  for (int c = 0; c < C; c++) rdw.value[c] = dweight[c], rdw.mag[c] = std::fabs(dweight[c]);
  for (int c = 0; c < C; c++) rdb.value[c] = dbias[c], rdb.mag[c] = std::fabs(dbias[c]);
  for (int n = 0; n < N; n++) {
    double mdn = 0, mdnx = 0, absdn = 0;
    std::vector<double> xhat(C), dn(C);
    for (int c = 0; c < C; c++) {
      xhat[c] = (w(x[n * C + c]) - mean[n]) * rstd[n];
      dn[c] = w(weight[c]) * w(dout[n * C + c]);
      mdn += dn[c] / C, mdnx += dn[c] * xhat[c] / C, absdn += std::fabs(dn[c]) * (1 + std::fabs(xhat[c])) / C;
      rdw.value[c] += w(dout[n * C + c]) * xhat[c], rdw.mag[c] += std::fabs(w(dout[n * C + c]) * xhat[c]);
      rdb.value[c] += w(dout[n * C + c]), rdb.mag[c] += std::fabs(w(dout[n * C + c]));
    }
    for (int c = 0; c < C; c++) {
      const double old = w(dinp[n * C + c]);
      rdx.value[n * C + c] = old + rstd[n] * (dn[c] - mdn - xhat[c] * mdnx);
      rdx.mag[n * C + c] = std::fabs(old) + rstd[n] * (std::fabs(dn[c]) + absdn * (1 + std::fabs(xhat[c])));
    }
  }
  kernels::cpu::layernorm_backward_bf16(ctx, dinp.data(), dweight.data(), dbias.data(), dout.data(), x.data(),
                                        weight.data(), mean.data(), rstd.data(), N, C);
  expect_rounded_once(dinp, rdx, C, "layernorm_backward dinp");
  expect_fp32_close(dweight, rdw, N, "layernorm_backward dweight");
  expect_fp32_close(dbias, rdb, N, "layernorm_backward dbias");
}

TEST(Bf16Twin, Gelu) {
  Inputs in("Bf16Twin.Gelu");
  const auto ctx = cpu_context();
  const size_t n = 1001;
  const auto x = in.bf16(n, -4, 4), dout = in.bf16(n);
  std::vector<uint16_t> out(n, 0xFFFF), dinp = in.bf16(n);
  Ref rout(n), rdx(n);
  const double k = std::sqrt(2.0 / M_PI);
  for (size_t i = 0; i < n; i++) {
    const double xi = w(x[i]), u = k * (xi + 0.044715 * xi * xi * xi), th = std::tanh(u);
    rout.value[i] = 0.5 * xi * (1 + th);
    // The tanh-free fp32 formula x / (1 + e^{-2u}) errs by a few ulp of |x| (exp, the division).
    rout.mag[i] = std::fabs(xi);
    const double grad = 0.5 * (1 + th) + 0.5 * xi * (1 - th * th) * k * (1 + 3 * 0.044715 * xi * xi);
    rdx.value[i] = w(dinp[i]) + grad * w(dout[i]);
    const double dgrad_max = 1 + 2 * std::fabs(xi) * k * (1 + 3 * 0.044715 * xi * xi);  // bounds |grad|'s terms
    rdx.mag[i] = std::fabs(w(dinp[i])) + dgrad_max * std::fabs(w(dout[i]));
  }
  kernels::cpu::gelu_forward_bf16(ctx, out.data(), x.data(), n);
  kernels::cpu::gelu_backward_bf16(ctx, dinp.data(), x.data(), dout.data(), n);
  expect_rounded_once(out, rout, 1, "gelu_forward");
  expect_rounded_once(dinp, rdx, 1, "gelu_backward");
}

// Index helpers for the fused qkv (B, T, 3C) and att (B, NH, T, T) layouts.
size_t qkv_at(int b, int t, int part, int h, int i) {
  return (static_cast<size_t>(b) * T + t) * 3 * C + part * C + h * HS + i;
}
size_t att_at(int b, int h, int t, int t2) { return ((static_cast<size_t>(b) * NH + h) * T + t) * T + t2; }

TEST(Bf16Twin, AttentionForward) {
  Inputs in("Bf16Twin.AttentionForward");
  const auto ctx = cpu_context();
  const auto qkv = in.bf16(static_cast<size_t>(N) * 3 * C, -2, 2);
  std::vector<uint16_t> out(static_cast<size_t>(N) * C, 0xFFFF), att(static_cast<size_t>(B) * NH * T * T, 0xFFFF);
  kernels::cpu::attention_forward_bf16(ctx, out.data(), att.data(), qkv.data(), B, T, C, NH);
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  Ref ratt(att.size()), rout(out.size());
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      for (int t = 0; t < T; t++) {
        std::vector<double> pre(t + 1);
        double maxv = -INFINITY, sum = 0, absdot = 0;
        for (int t2 = 0; t2 <= t; t2++) {
          for (int i = 0; i < HS; i++) {
            const double qk = scale * w(qkv[qkv_at(b, t, 0, h, i)]) * w(qkv[qkv_at(b, t2, 1, h, i)]);
            pre[t2] += qk;
            absdot = std::max(absdot, std::fabs(qk));
          }
          maxv = std::max(maxv, pre[t2]);
        }
        for (int t2 = 0; t2 <= t; t2++) sum += std::exp(pre[t2] - maxv);
        for (int t2 = 0; t2 < T; t2++) {
          const double p = t2 <= t ? std::exp(pre[t2] - maxv) / sum : 0.0;
          // p's fp32 relative error: that of its logits (HS-term dots, up to HS absdot each) and of the T-term sum.
          ratt.value[att_at(b, h, t, t2)] = p;
          ratt.mag[att_at(b, h, t, t2)] = p * (1 + 2 * HS * absdot);
        }
        // out from the STORED att: the reference reads the twin's bf16 probabilities.
        for (int i = 0; i < HS; i++) {
          double o = 0, m = 0;
          for (int t2 = 0; t2 <= t; t2++) {
            o += w(att[att_at(b, h, t, t2)]) * w(qkv[qkv_at(b, t2, 2, h, i)]);
            m += std::fabs(w(att[att_at(b, h, t, t2)]) * w(qkv[qkv_at(b, t2, 2, h, i)]));
          }
          rout.value[(b * T + t) * C + h * HS + i] = o;
          rout.mag[(b * T + t) * C + h * HS + i] = m;
        }
      }
    }
  }
  expect_rounded_once(att, ratt, T, "attention_forward att");
  expect_rounded_once(out, rout, T, "attention_forward out");
}

TEST(Bf16Twin, AttentionBackward) {
  Inputs in("Bf16Twin.AttentionBackward");
  const auto ctx = cpu_context();
  const auto qkv = in.bf16(static_cast<size_t>(N) * 3 * C, -2, 2), dout = in.bf16(static_cast<size_t>(N) * C);
  std::vector<uint16_t> out(dout.size()), att(static_cast<size_t>(B) * NH * T * T);
  kernels::cpu::attention_forward_bf16(ctx, out.data(), att.data(), qkv.data(), B, T, C, NH);
  std::vector<uint16_t> dqkv = in.bf16(qkv.size()), datt(att.size(), 0xFFFF);
  const std::vector<uint16_t> dqkv_old = dqkv;
  kernels::cpu::attention_backward_bf16(ctx, dqkv.data(), datt.data(), dout.data(), qkv.data(), att.data(), B, T, C,
                                        NH);
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  Ref rdatt(att.size()), rdqkv(qkv.size());
  for (size_t i = 0; i < qkv.size(); i++) rdqkv.value[i] = w(dqkv_old[i]), rdqkv.mag[i] = std::fabs(w(dqkv_old[i]));
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < NH; h++) {
      for (int t = 0; t < T; t++) {
        // dpreatt = att (datt_f - sum(att datt_f)), datt_f = dout[t] . v[t2]; the masked t2 > t are 0.
        std::vector<double> g(T, 0.0), gabs(T, 0.0);
        double s = 0, sabs = 0;
        for (int t2 = 0; t2 <= t; t2++) {
          for (int i = 0; i < HS; i++) {
            const double d = w(dout[(b * T + t) * C + h * HS + i]), v = w(qkv[qkv_at(b, t2, 2, h, i)]);
            g[t2] += d * v, gabs[t2] += std::fabs(d * v);
          }
          s += w(att[att_at(b, h, t, t2)]) * g[t2], sabs += w(att[att_at(b, h, t, t2)]) * gabs[t2];
        }
        for (int t2 = 0; t2 < T; t2++) {
          const double a = w(att[att_at(b, h, t, t2)]);
          rdatt.value[att_at(b, h, t, t2)] = t2 <= t ? a * (g[t2] - s) : 0.0;
          rdatt.mag[att_at(b, h, t, t2)] = a * (gabs[t2] + sabs);
        }
        // dq, dk, dv from the STORED bf16 att and dpreatt.
        for (int t2 = 0; t2 <= t; t2++) {
          const double dp = scale * w(datt[att_at(b, h, t, t2)]), a = w(att[att_at(b, h, t, t2)]);
          for (int i = 0; i < HS; i++) {
            const double q = w(qkv[qkv_at(b, t, 0, h, i)]), k = w(qkv[qkv_at(b, t2, 1, h, i)]);
            const double d = w(dout[(b * T + t) * C + h * HS + i]);
            rdqkv.value[qkv_at(b, t, 0, h, i)] += dp * k, rdqkv.mag[qkv_at(b, t, 0, h, i)] += std::fabs(dp * k);
            rdqkv.value[qkv_at(b, t2, 1, h, i)] += dp * q, rdqkv.mag[qkv_at(b, t2, 1, h, i)] += std::fabs(dp * q);
            rdqkv.value[qkv_at(b, t2, 2, h, i)] += a * d, rdqkv.mag[qkv_at(b, t2, 2, h, i)] += std::fabs(a * d);
          }
        }
      }
    }
  }
  expect_rounded_once(datt, rdatt, HS + T, "attention_backward dpreatt");
  expect_rounded_once(dqkv, rdqkv, T, "attention_backward dqkv");
}

TEST(Bf16Twin, SoftmaxCrossEntropyFused) {
  Inputs in("Bf16Twin.SoftmaxCrossEntropyFused");
  const auto ctx = cpu_context();
  const float dloss_scale = 1.0f / N;  // the mean over the N positions, as the training step uses it
  std::vector<uint16_t> logits = in.bf16(static_cast<size_t>(N) * Vp, -4, 4);  // padded columns hold junk too
  const std::vector<uint16_t> logits_in = logits;
  const std::vector<int32_t> targets = in.ints(N, V);
  std::vector<float> losses(N, NAN);
  kernels::cpu::softmax_crossentropy_fused_bf16(ctx, losses.data(), logits.data(), targets.data(), dloss_scale, N, V,
                                                Vp);
  Ref rloss(N), rd(logits.size());
  for (int n = 0; n < N; n++) {
    double maxv = -INFINITY, sum = 0, absmax = 0;
    for (int j = 0; j < V; j++) maxv = std::max(maxv, w(logits_in[n * Vp + j]));
    for (int j = 0; j < V; j++) sum += std::exp(w(logits_in[n * Vp + j]) - maxv);
    for (int j = 0; j < V; j++) absmax = std::max(absmax, std::fabs(w(logits_in[n * Vp + j])));
    rloss.value[n] = std::log(sum) - (w(logits_in[n * Vp + targets[n]]) - maxv);
    rloss.mag[n] = 2 * absmax + std::log(sum);  // the terms of log(sum) - (x - max)
    for (int j = 0; j < Vp; j++) {
      const double p = j < V ? std::exp(w(logits_in[n * Vp + j]) - maxv) / sum : 0.0;
      rd.value[n * Vp + j] = j < V ? dloss_scale * (p - (j == targets[n])) : 0.0;
      // p's relative fp32 error: exp of (x - max), whose rounding is relative to absmax, and the V-term sum.
      rd.mag[n * Vp + j] = dloss_scale * (p * (1 + 2 * absmax) + (j == targets[n]));
    }
  }
  expect_fp32_close(losses, rloss, V, "crossentropy losses");
  expect_rounded_once(logits, rd, V, "crossentropy dlogits");
  for (int n = 0; n < N; n++) {
    for (int j = V; j < Vp; j++) EXPECT_EQ(logits[n * Vp + j], 0u) << "padded column " << j << " of row " << n;
  }
}

TEST(Bf16Twin, Elementwise) {
  Inputs in("Bf16Twin.Elementwise");
  const auto ctx = cpu_context();
  const size_t n = 777;
  const auto a = in.bf16(n, -3, 3), b = in.bf16(n);
  std::vector<uint16_t> sum(n, 0xFFFF), acc = a;
  Ref ref(n);
  for (size_t i = 0; i < n; i++) ref.value[i] = w(a[i]) + w(b[i]), ref.mag[i] = std::fabs(w(a[i])) + std::fabs(w(b[i]));
  kernels::cpu::add_bf16(ctx, sum.data(), a.data(), b.data(), n);
  kernels::cpu::accumulate_bf16(ctx, acc.data(), b.data(), n);
  expect_rounded_once(sum, ref, 1, "add_bf16");
  expect_rounded_once(acc, ref, 1, "accumulate_bf16");

  std::vector<uint16_t> x(n, 0);
  kernels::cpu::fill_bf16(ctx, x.data(), round_nearest(-0.375f), n);
  for (size_t i = 0; i < n; i++) ASSERT_EQ(w(x[i]), -0.375) << i;
}

TEST(Bf16Twin, SliceColumns) {
  Inputs in("Bf16Twin.SliceColumns");
  const auto ctx = cpu_context();
  const int K = 5, offset = 4;  // an odd slice not starting at 0 catches a wrong stride or offset
  const auto x = in.bf16(static_cast<size_t>(N) * C), dz = in.bf16(static_cast<size_t>(N) * K);
  std::vector<uint16_t> z(dz.size(), 0xFFFF), dx = in.bf16(x.size());
  const std::vector<uint16_t> dx_old = dx;
  kernels::cpu::slice_columns_forward_bf16(ctx, z.data(), x.data(), N, C, offset, K);
  kernels::cpu::slice_columns_backward_bf16(ctx, dx.data(), dz.data(), N, C, offset, K);
  Ref ref(dx.size());
  for (int n = 0; n < N; n++) {
    for (int c = 0; c < C; c++) {
      const bool in_slice = c >= offset && c < offset + K;
      if (in_slice) {
        ASSERT_EQ(z[n * K + c - offset], x[n * C + c]) << "the forward slice is an exact copy";
      }
      const double d = in_slice ? w(dz[n * K + c - offset]) : 0.0;
      ref.value[n * C + c] = w(dx_old[n * C + c]) + d;
      ref.mag[n * C + c] = std::fabs(w(dx_old[n * C + c])) + std::fabs(d);
      if (!in_slice) {
        ASSERT_EQ(dx[n * C + c], dx_old[n * C + c]) << "outside the slice dinp is untouched";
      }
    }
  }
  expect_rounded_once(dx, ref, 1, "slice_columns_backward");
}

}  // namespace
