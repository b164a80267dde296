// CPU backward kernels (and AdamW) against naive double-precision loops; every gradient ACCUMULATES (+=) into
// what was there, so each test starts from a non-zero gradient. Plus thread-count determinism.
#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu_test_util.h"

namespace kernels::cpu {
namespace {

using testing::context;
using testing::expect_close;
using testing::randint;
using testing::randn;

std::vector<double> as_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

TEST(CpuBackward, EmbeddingAccumulatesRepeatedTokens) {
  const int B = 2, T = 5, C = 13, Vp = 6, maxT = 7;
  auto dout = randn(B * T * C, 1);
  auto tokens = randint(B * T, 2, 3);  // only 3 distinct tokens: many repeats
  auto dwte = randn(Vp * C, 3), dwpe = randn(maxT * C, 4);
  std::vector<double> ref_wte = as_double(dwte), ref_wpe = as_double(dwpe);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++) {
        ref_wte[tokens[b * T + t] * C + c] += dout[(b * T + t) * C + c];
        ref_wpe[t * C + c] += dout[(b * T + t) * C + c];
      }
  embedding_backward(context(), dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
  expect_close(dwte, ref_wte, 1e-5, 1e-6, "dwte");
  expect_close(dwpe, ref_wpe, 1e-5, 1e-6, "dwpe");
}

TEST(CpuBackward, Layernorm) {
  const int N = 7, C = 13;
  auto x = randn(N * C, 5, 2.0f), w = randn(C, 6), b = randn(C, 7), dout = randn(N * C, 8);
  std::vector<float> out(N * C), mean(N), rstd(N);
  layernorm_forward(context(), out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
  auto dx = randn(N * C, 9), dw = randn(C, 10), db = randn(C, 11);
  std::vector<double> ref_dx = as_double(dx), ref_dw = as_double(dw), ref_db = as_double(db);
  for (int n = 0; n < N; n++) {
    double m = 0.0, v = 0.0;
    for (int c = 0; c < C; c++) m += x[n * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    const double s = 1.0 / std::sqrt(v / C + 1e-5);
    // dx_i = s/C * (C g_i - sum g - xhat_i sum g xhat), g = dout * w
    double sum_g = 0.0, sum_gx = 0.0;
    for (int c = 0; c < C; c++) {
      const double g = static_cast<double>(dout[n * C + c]) * w[c], xhat = (x[n * C + c] - m) * s;
      sum_g += g;
      sum_gx += g * xhat;
      ref_dw[c] += dout[n * C + c] * xhat;
      ref_db[c] += dout[n * C + c];
    }
    for (int c = 0; c < C; c++) {
      const double g = static_cast<double>(dout[n * C + c]) * w[c], xhat = (x[n * C + c] - m) * s;
      ref_dx[n * C + c] += s / C * (C * g - sum_g - xhat * sum_gx);
    }
  }
  layernorm_backward(context(), dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), mean.data(),
                     rstd.data(), N, C);
  expect_close(dx, ref_dx, 1e-5, 1e-5, "dx");
  expect_close(dw, ref_dw, 1e-5, 1e-5, "dweight");
  expect_close(db, ref_db, 1e-5, 1e-5, "dbias");
}

void check_matmul_backward(bool with_dinp, bool with_bias) {
  const int N = 7, C = 13, OC = 9;
  auto x = randn(N * C, 12), w = randn(OC * C, 13), dout = randn(N * OC, 14);
  auto dx = randn(N * C, 15), dw = randn(OC * C, 16), db = randn(OC, 17);
  std::vector<double> ref_dx = as_double(dx), ref_dw = as_double(dw), ref_db = as_double(db);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      const double d = dout[n * OC + o];
      ref_db[o] += d;
      for (int c = 0; c < C; c++) {
        ref_dx[n * C + c] += d * w[o * C + c];
        ref_dw[o * C + c] += d * x[n * C + c];
      }
    }
  const std::vector<float> dx_before = dx, db_before = db;
  matmul_backward(context(), with_dinp ? dx.data() : nullptr, dw.data(), with_bias ? db.data() : nullptr,
                  dout.data(), x.data(), w.data(), N, C, OC);
  expect_close(dw, ref_dw, 1e-5, 1e-5, "dweight");
  if (with_dinp) expect_close(dx, ref_dx, 1e-5, 1e-5, "dinp");
  if (!with_dinp) EXPECT_EQ(dx, dx_before);
  if (with_bias) expect_close(db, ref_db, 1e-5, 1e-5, "dbias");
  if (!with_bias) EXPECT_EQ(db, db_before);
}

TEST(CpuBackward, Matmul) { check_matmul_backward(true, true); }
TEST(CpuBackward, MatmulNoInputGradNoBias) { check_matmul_backward(false, false); }

TEST(CpuBackward, Gelu) {
  const size_t N = 1001;
  auto x = randn(N, 18, 3.0f), dout = randn(N, 19), dx = randn(N, 20);
  x[0] = 0.0f;
  x[1] = -30.0f;
  x[2] = 30.0f;
  std::vector<double> ref = as_double(dx);
  const double k = std::sqrt(2.0 / M_PI);
  for (size_t i = 0; i < N; i++) {
    const double v = x[i], u = k * (v + 0.044715 * v * v * v), th = std::tanh(u);
    const double grad = 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * k * (1 + 3 * 0.044715 * v * v);
    ref[i] += grad * dout[i];
  }
  gelu_backward(context(), dx.data(), x.data(), dout.data(), N);
  expect_close(dx, ref, 1e-5, 1e-5, "gelu dinp");
}

TEST(CpuBackward, Attention) {
  const int B = 2, T = 6, C = 15, NH = 3, HS = C / NH;
  auto qkv = randn(B * T * 3 * C, 21), dout = randn(B * T * C, 22), dqkv = randn(B * T * 3 * C, 23);
  std::vector<float> out(B * T * C), att(B * NH * T * T), datt(B * NH * T * T);
  attention_forward(context(), out.data(), att.data(), qkv.data(), B, T, C, NH);
  std::vector<double> ref = as_double(dqkv);
  const double scale = 1.0 / std::sqrt(static_cast<double>(HS));
  // q, k, v of position t, head h, element i (part 0, 1, 2 of the fused row)
  auto at = [&](int part, int b, int t, int h, int i) {
    return static_cast<double>(qkv[(b * T + t) * 3 * C + part * C + h * HS + i]);
  };
  auto Q = [&](int b, int t, int h, int i) { return at(0, b, t, h, i); };
  auto K = [&](int b, int t, int h, int i) { return at(1, b, t, h, i); };
  auto V = [&](int b, int t, int h, int i) { return at(2, b, t, h, i); };
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        // probabilities in double
        std::vector<double> p(t + 1), dp(t + 1);
        double mx = -1e300, sum = 0.0;
        for (int u = 0; u <= t; u++) {
          double dot = 0.0;
          for (int i = 0; i < HS; i++) dot += Q(b, t, h, i) * K(b, u, h, i);
          p[u] = dot * scale;
          mx = std::max(mx, p[u]);
        }
        for (int u = 0; u <= t; u++) sum += (p[u] = std::exp(p[u] - mx));
        for (int u = 0; u <= t; u++) p[u] /= sum;
        double pdp = 0.0;
        for (int u = 0; u <= t; u++) {
          double d = 0.0;
          for (int i = 0; i < HS; i++) {
            d += dout[(b * T + t) * C + h * HS + i] * V(b, u, h, i);
            ref[(b * T + u) * 3 * C + 2 * C + h * HS + i] += p[u] * dout[(b * T + t) * C + h * HS + i];
          }
          dp[u] = d;
          pdp += p[u] * d;
        }
        for (int u = 0; u <= t; u++) {
          const double dpre = p[u] * (dp[u] - pdp) * scale;
          for (int i = 0; i < HS; i++) {
            ref[(b * T + t) * 3 * C + h * HS + i] += dpre * K(b, u, h, i);
            ref[(b * T + u) * 3 * C + C + h * HS + i] += dpre * Q(b, t, h, i);
          }
        }
      }
  attention_backward(context(), dqkv.data(), datt.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
  expect_close(dqkv, ref, 1e-5, 1e-4, "dqkv");
}

TEST(CpuBackward, SoftmaxCrossentropyLeavesPaddingAlone) {
  const int N = 7, V = 13, Vp = 16;
  auto logits = randn(N * Vp, 24, 2.0f), dlogits = randn(N * Vp, 25);
  auto targets = randint(N, 26, V);
  std::vector<float> losses(N), probs(N * Vp);
  softmax_crossentropy_forward(context(), losses.data(), probs.data(), logits.data(), targets.data(), N, V, Vp);
  std::vector<double> ref = as_double(dlogits);
  const float s = 0.37f;
  for (int n = 0; n < N; n++)
    for (int j = 0; j < V; j++) ref[n * Vp + j] += s * (probs[n * Vp + j] - (j == targets[n] ? 1.0 : 0.0));
  softmax_crossentropy_backward(context(), dlogits.data(), probs.data(), targets.data(), s, N, V, Vp);
  expect_close(dlogits, ref, 1e-6, 1e-6, "dlogits");
}

TEST(CpuAdamW, MatchesNaiveUpdate) {
  const size_t N = 1003;
  auto p = randn(N, 27), g = randn(N, 28), m = randn(N, 29, 0.1f), v = randn(N, 30, 0.1f);
  for (float& e : v) e = std::fabs(e);
  std::vector<double> rp = as_double(p), rm = as_double(m), rv = as_double(v);
  const float lr = 1e-3f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
  const int t = 3;
  for (size_t i = 0; i < N; i++) {
    const double gi = static_cast<double>(g[i]) * gs;
    rm[i] = b1 * rm[i] + (1 - b1) * gi;
    rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
    const double mhat = rm[i] / (1 - std::pow(static_cast<double>(b1), t));
    const double vhat = rv[i] / (1 - std::pow(static_cast<double>(b2), t));
    rp[i] -= lr * (mhat / (std::sqrt(vhat) + eps) + wd * rp[i]);
  }
  adamw_update(context(), p.data(), g.data(), m.data(), v.data(), N, lr, b1, b2, eps, wd, gs, t);
  expect_close(p, rp, 1e-6, 1e-5, "params");
  expect_close(m, rm, 1e-7, 1e-5, "m");
  expect_close(v, rv, 1e-7, 1e-5, "v");
}

// Big enough that two threads really run (kernels/cpu/parallel.h): results are the same bits with one thread.
TEST(CpuDeterminism, SameBitsWithOneOrTwoThreads) {
  const int B = 4, T = 64, C = 144, NH = 4, Vp = 300, N = B * T;
  auto dout = randn(B * T * C, 31);
  auto tokens = randint(B * T, 32, 50);
  auto x = randn(N * C, 33), w = randn(C, 34), b = randn(C, 35);
  auto qkv = randn(B * T * 3 * C, 36);
  auto logits = randn(N * Vp, 37);
  auto targets = randint(N, 38, Vp);
  auto run = [&](int threads) {
    const KernelContext ctx = context(threads);
    std::vector<float> dwte(Vp * C, 0.0f), dwpe(T * C, 0.0f);
    embedding_backward(ctx, dwte.data(), dwpe.data(), dout.data(), tokens.data(), B, T, C);
    std::vector<float> out(N * C), mean(N), rstd(N), dx(N * C, 0.0f), dw(C, 0.0f), db(C, 0.0f);
    layernorm_forward(ctx, out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
    layernorm_backward(ctx, dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), mean.data(),
                       rstd.data(), N, C);
    std::vector<float> aout(N * C), att(B * NH * T * T), datt(B * NH * T * T), dqkv(B * T * 3 * C, 0.0f);
    attention_forward(ctx, aout.data(), att.data(), qkv.data(), B, T, C, NH);
    attention_backward(ctx, dqkv.data(), datt.data(), dout.data(), qkv.data(), att.data(), B, T, C, NH);
    std::vector<float> losses(N), probs(N * Vp), mdb(C, 0.0f), mdw(C * C, 0.0f);
    softmax_crossentropy_forward(ctx, losses.data(), probs.data(), logits.data(), targets.data(), N, Vp, Vp);
    matmul_backward(ctx, nullptr, mdw.data(), mdb.data(), dout.data(), x.data(), x.data(), N, C, C);
    return std::vector<std::vector<float>>{dwte, dwpe, dx, dw, db, aout, dqkv, losses, probs, mdb};
  };
  const auto one = run(1), two = run(2);
  for (size_t i = 0; i < one.size(); i++) EXPECT_EQ(one[i], two[i]) << "output " << i;
}

}  // namespace
}  // namespace kernels::cpu
