// CPU forward kernels against naive double-precision loops, on odd sizes.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu_test_util.h"

namespace kernels::cpu {
namespace {

using testing::context;
using testing::expect_close;
using testing::randint;
using testing::randn;

TEST(CpuForward, Embedding) {
  const int B = 3, T = 5, C = 13, Vp = 11, maxT = 7;
  auto wte = randn(Vp * C, 1), wpe = randn(maxT * C, 2);
  auto tokens = randint(B * T, 3, Vp);
  std::vector<float> out(B * T * C, -1.0f);
  embedding_forward(context(), out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  std::vector<double> ref(B * T * C);
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++)
      for (int c = 0; c < C; c++)
        ref[(b * T + t) * C + c] = static_cast<double>(wte[tokens[b * T + t] * C + c]) + wpe[t * C + c];
  expect_close(out, ref, 1e-6, 1e-6, "embedding");
}

TEST(CpuForward, Layernorm) {
  const int N = 7, C = 13;
  auto x = randn(N * C, 4, 3.0f), w = randn(C, 5), b = randn(C, 6);
  for (int c = 0; c < C; c++) x[c] += 100.0f;  // a row with a large mean
  std::vector<float> out(N * C), mean(N), rstd(N);
  layernorm_forward(context(), out.data(), mean.data(), rstd.data(), x.data(), w.data(), b.data(), N, C);
  std::vector<double> ref(N * C), ref_mean(N), ref_rstd(N);
  for (int n = 0; n < N; n++) {
    double m = 0.0, v = 0.0;
    for (int c = 0; c < C; c++) m += x[n * C + c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[n * C + c] - m) * (x[n * C + c] - m);
    v /= C;
    const double s = 1.0 / std::sqrt(v + 1e-5);
    for (int c = 0; c < C; c++) ref[n * C + c] = (x[n * C + c] - m) * s * w[c] + b[c];
    ref_mean[n] = m;
    ref_rstd[n] = s;
  }
  expect_close(out, ref, 1e-5, 1e-5, "layernorm out");
  expect_close(mean, ref_mean, 1e-5, 1e-6, "layernorm mean");
  expect_close(rstd, ref_rstd, 1e-6, 1e-5, "layernorm rstd");
}

void check_matmul(int N, int C, int OC, bool bias) {
  auto x = randn(N * C, 7), w = randn(OC * C, 8), b = randn(OC, 9);
  std::vector<float> out(N * OC, 123.0f);
  matmul_forward(context(), out.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, C, OC);
  std::vector<double> ref(N * OC);
  for (int n = 0; n < N; n++)
    for (int o = 0; o < OC; o++) {
      double acc = bias ? b[o] : 0.0;
      for (int c = 0; c < C; c++) acc += static_cast<double>(x[n * C + c]) * w[o * C + c];
      ref[n * OC + o] = acc;
    }
  expect_close(out, ref, 1e-4, 1e-5, "matmul");
}

TEST(CpuForward, MatmulWithBias) { check_matmul(7, 13, 9, true); }
TEST(CpuForward, MatmulNoBiasOverwrites) { check_matmul(5, 3, 17, false); }
TEST(CpuForward, MatmulLarger) { check_matmul(67, 129, 71, true); }

TEST(CpuForward, GemmAllTransposes) {
  const int M = 5, N = 7, K = 3;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      auto a = randn(M * K, 10), b = randn(K * N, 11), c = randn(M * N, 12);
      std::vector<double> ref(M * N);
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double acc = 0.0;
          for (int k = 0; k < K; k++) {
            const double aik = ta ? a[k * M + i] : a[i * K + k];
            const double bkj = tb ? b[j * K + k] : b[k * N + j];
            acc += aik * bkj;
          }
          ref[i * N + j] = 0.5 * acc - 2.0 * c[i * N + j];
        }
      gemm(context(), c.data(), a.data(), b.data(), M, N, K, ta, tb, 0.5f, -2.0f);
      expect_close(c, ref, 1e-5, 1e-5, ta ? (tb ? "gemm TT" : "gemm TN") : (tb ? "gemm NT" : "gemm NN"));
    }
  }
}

TEST(CpuForward, Gelu) {
  const size_t N = 1001;
  auto x = randn(N, 13, 3.0f);
  x[0] = 0.0f;
  x[1] = -20.0f;
  x[2] = 20.0f;
  x[3] = -100.0f;  // exp saturation on both sides
  x[4] = 100.0f;
  std::vector<float> out(N);
  gelu_forward(context(), out.data(), x.data(), N);
  std::vector<double> ref(N);
  for (size_t i = 0; i < N; i++) {
    const double v = x[i];
    ref[i] = 0.5 * v * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v)));
  }
  expect_close(out, ref, 1e-6, 1e-5, "gelu");
}

std::vector<double> naive_attention(const std::vector<float>& qkv, std::vector<double>* att, int B, int T, int C,
                                    int NH) {
  const int HS = C / NH;
  std::vector<double> out(B * T * C, 0.0);
  att->assign(B * NH * T * T, 0.0);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++)
      for (int t = 0; t < T; t++) {
        std::vector<double> s(t + 1);
        double mx = -1e300;
        for (int u = 0; u <= t; u++) {
          double dot = 0.0;
          const float* q = &qkv[(b * T + t) * 3 * C + h * HS];
          const float* k = &qkv[(b * T + u) * 3 * C + C + h * HS];
          for (int i = 0; i < HS; i++) dot += static_cast<double>(q[i]) * k[i];
          s[u] = dot / std::sqrt(static_cast<double>(HS));
          mx = std::max(mx, s[u]);
        }
        double sum = 0.0;
        for (int u = 0; u <= t; u++) sum += (s[u] = std::exp(s[u] - mx));
        for (int u = 0; u <= t; u++) {
          const double p = s[u] / sum;
          (*att)[((b * NH + h) * T + t) * T + u] = p;
          const float* v = &qkv[(b * T + u) * 3 * C + 2 * C + h * HS];
          for (int i = 0; i < HS; i++) out[(b * T + t) * C + h * HS + i] += p * v[i];
        }
      }
  return out;
}

TEST(CpuForward, Attention) {
  const int B = 2, T = 5, C = 15, NH = 3;
  auto qkv = randn(B * T * 3 * C, 14);
  std::vector<float> out(B * T * C), att(B * NH * T * T, -1.0f);
  attention_forward(context(), out.data(), att.data(), qkv.data(), B, T, C, NH);
  std::vector<double> ref_att;
  const std::vector<double> ref = naive_attention(qkv, &ref_att, B, T, C, NH);
  expect_close(out, ref, 1e-5, 1e-5, "attention out");
  expect_close(att, ref_att, 1e-6, 1e-5, "attention probabilities (zero above the diagonal)");
}

TEST(CpuForward, AttentionLongerSequence) {
  const int B = 1, T = 37, C = 24, NH = 4;
  auto qkv = randn(B * T * 3 * C, 15, 2.0f);
  std::vector<float> out(B * T * C), att(B * NH * T * T);
  attention_forward(context(), out.data(), att.data(), qkv.data(), B, T, C, NH);
  std::vector<double> ref_att;
  expect_close(out, naive_attention(qkv, &ref_att, B, T, C, NH), 1e-5, 1e-5, "attention out");
}

TEST(CpuForward, SoftmaxCrossentropyPadded) {
  const int N = 7, V = 13, Vp = 16;
  auto logits = randn(N * Vp, 16, 4.0f);
  logits[0 * Vp + 2] = 80.0f;  // one dominant logit: other probabilities underflow toward 0
  auto targets = randint(N, 17, V);
  targets[0] = 5;              // whose target's probability is ~e^-80: the loss stays exact
  std::vector<float> losses(N), probs(N * Vp, -1.0f);
  softmax_crossentropy_forward(context(), losses.data(), probs.data(), logits.data(), targets.data(), N, V, Vp);
  std::vector<double> ref_loss(N), ref_probs(N * Vp, 0.0);
  for (int n = 0; n < N; n++) {
    double mx = -1e300, sum = 0.0;
    for (int j = 0; j < V; j++) mx = std::max(mx, static_cast<double>(logits[n * Vp + j]));
    for (int j = 0; j < V; j++) sum += std::exp(logits[n * Vp + j] - mx);
    for (int j = 0; j < V; j++) ref_probs[n * Vp + j] = std::exp(logits[n * Vp + j] - mx) / sum;
    ref_loss[n] = std::log(sum) - (logits[n * Vp + targets[n]] - mx);
  }
  expect_close(losses, ref_loss, 1e-5, 1e-5, "losses");
  expect_close(probs, ref_probs, 1e-6, 1e-5, "probs (padded columns 0)");
}

TEST(CpuForward, MeanAndSumSquares) {
  const size_t N = 100003;  // several reduction chunks and a ragged end
  auto x = randn(N, 18, 2.0f);
  float mean = 0.0f, ss = 0.0f;
  mean_forward(context(), &mean, x.data(), N);
  sum_squares(context(), &ss, x.data(), N);
  double m = 0.0, s = 0.0;
  for (float v : x) {
    m += v;
    s += static_cast<double>(v) * v;
  }
  EXPECT_NEAR(mean, m / N, 1e-6);
  EXPECT_NEAR(ss, s, 1e-6 * s);
  // Thread count does not change the bits.
  float ss1 = 0.0f, mean1 = 0.0f;
  sum_squares(context(1), &ss1, x.data(), N);
  mean_forward(context(1), &mean1, x.data(), N);
  EXPECT_EQ(ss1, ss);
  EXPECT_EQ(mean1, mean);
}

TEST(CpuForward, ElementwiseHelpers) {
  const size_t N = 37;
  auto a = randn(N, 19), b = randn(N, 20);
  std::vector<float> out(N), acc = a, sc = a, fl(N), ax = a;
  add_forward(context(), out.data(), a.data(), b.data(), N);
  accumulate(context(), acc.data(), b.data(), N);
  scale_inplace(context(), sc.data(), -1.5f, N);
  fill(context(), fl.data(), 0.25f, N);
  axpy(context(), ax.data(), b.data(), 3.0f, N);
  for (size_t i = 0; i < N; i++) {
    EXPECT_EQ(out[i], a[i] + b[i]);
    EXPECT_EQ(acc[i], a[i] + b[i]);
    EXPECT_EQ(sc[i], a[i] * -1.5f);
    EXPECT_EQ(fl[i], 0.25f);
    EXPECT_NEAR(ax[i], a[i] + 3.0 * b[i], 1e-6);
  }
}

TEST(CpuForward, SliceColumns) {
  const int N = 7, C = 13, offset = 4, K = 6;
  auto x = randn(N * C, 21);
  std::vector<float> out(N * K), back(N * C, 1.0f);
  slice_columns_forward(context(), out.data(), x.data(), N, C, offset, K);
  slice_columns_backward(context(), back.data(), out.data(), N, C, offset, K);
  for (int n = 0; n < N; n++) {
    for (int k = 0; k < K; k++) EXPECT_EQ(out[n * K + k], x[n * C + offset + k]);
    for (int c = 0; c < C; c++) {
      const bool inside = c >= offset && c < offset + K;
      EXPECT_EQ(back[n * C + c], inside ? 1.0f + x[n * C + c] : 1.0f);
    }
  }
}

TEST(CpuForward, QuantizeRowsInt8) {
  const int N = 5, K = 13;
  auto x = randn(N * K, 22, 3.0f);
  for (int k = 0; k < K; k++) x[1 * K + k] = 0.0f;  // a zero row: scale 1, codes 0
  x[2 * K + 3] = -10.0f;                              // the absmax is negative: code -127
  std::vector<int8_t> q(N * K);
  std::vector<float> scales(N), back(N * K);
  quantize_rows_int8(context(), q.data(), scales.data(), x.data(), N, K);
  dequantize_rows_int8(context(), back.data(), q.data(), scales.data(), N, K);
  EXPECT_EQ(scales[1], 1.0f);
  EXPECT_EQ(q[2 * K + 3], -127);
  for (int n = 0; n < N; n++) {
    double absmax = 0.0;
    for (int k = 0; k < K; k++) absmax = std::max(absmax, std::fabs(static_cast<double>(x[n * K + k])));
    if (absmax > 0) EXPECT_NEAR(scales[n], absmax / 127.0, 1e-7 * absmax);
    for (int k = 0; k < K; k++) {
      const double code = std::nearbyint(x[n * K + k] / static_cast<double>(scales[n]));
      EXPECT_NEAR(q[n * K + k], code, 1.0) << n << "," << k;  // 1: a tie may round either way in float
      EXPECT_NEAR(back[n * K + k], x[n * K + k], scales[n] * 0.5 + 1e-6);
      EXPECT_EQ(back[n * K + k], q[n * K + k] * scales[n]);
    }
  }
}

// A row holding a NaN or an infinity must decode to NaN everywhere (the training loop's NaN check then stops the
// run); before, the NaN was dropped by fmax and cast to int8 (undefined behaviour). Other rows are untouched.
TEST(CpuForward, QuantizeRowsInt8NonFiniteRowsDecodeToNaN) {
  const int N = 4, K = 9;
  auto x = randn(N * K, 23, 2.0f);
  x[0 * K + 4] = std::numeric_limits<float>::quiet_NaN();
  x[1 * K + 0] = std::numeric_limits<float>::infinity();
  x[2 * K + 8] = -std::numeric_limits<float>::infinity();
  for (bool stochastic : {false, true}) {
    std::vector<int8_t> q(N * K, -128);
    std::vector<float> scales(N, 0.0f), back(N * K, 0.0f);
    if (stochastic) {
      quantize_rows_int8_stochastic(context(), q.data(), scales.data(), x.data(), N, K, 77);
    } else {
      quantize_rows_int8(context(), q.data(), scales.data(), x.data(), N, K);
    }
    dequantize_rows_int8(context(), back.data(), q.data(), scales.data(), N, K);
    for (int n = 0; n < 3; n++) {
      for (int k = 0; k < K; k++) EXPECT_TRUE(std::isnan(back[n * K + k])) << "row " << n << " element " << k;
    }
    for (int k = 0; k < K; k++) {
      EXPECT_TRUE(std::isfinite(back[3 * K + k])) << k;
      EXPECT_NEAR(back[3 * K + k], x[3 * K + k], scales[3] + 1e-6) << k;  // within one step of the code
    }
  }
}

// Stochastic rounding of code gradients: unbiased over many draws (where round-to-nearest is not), each code the
// floor or the ceiling of x / scale, and the same bits for the same seed.
TEST(CpuForward, QuantizeRowsInt8StochasticIsUnbiasedAndReproducible) {
  const int N = 3, K = 7;
  auto x = randn(N * K, 24, 1.0f);
  x[0] = 0.3f * (x[1] >= 0 ? 1.0f : -1.0f) * std::fabs(x[1]);  // fractions away from 0 and 1/2
  const int draws = 4000;
  std::vector<double> mean(N * K, 0.0), nearest_err(N * K, 0.0);
  std::vector<int8_t> q(N * K), q2(N * K), qn(N * K);
  std::vector<float> scales(N), back(N * K), backn(N * K);
  quantize_rows_int8(context(), qn.data(), scales.data(), x.data(), N, K);
  dequantize_rows_int8(context(), backn.data(), qn.data(), scales.data(), N, K);
  for (int d = 0; d < draws; d++) {
    const uint64_t seed = 1000 + d;
    quantize_rows_int8_stochastic(context(), q.data(), scales.data(), x.data(), N, K, seed);
    dequantize_rows_int8(context(), back.data(), q.data(), scales.data(), N, K);
    for (int i = 0; i < N * K; i++) {
      const double v = x[i] / static_cast<double>(scales[i / K]);
      EXPECT_TRUE(q[i] == std::floor(v) || q[i] == std::ceil(v)) << "code " << int(q[i]) << " for " << v;
      mean[i] += back[i] / static_cast<double>(draws);
    }
    if (d < 3) {  // reproducible: the same seed gives the same codes
      quantize_rows_int8_stochastic(context(), q2.data(), scales.data(), x.data(), N, K, seed);
      EXPECT_EQ(0, std::memcmp(q.data(), q2.data(), q.size()));
    }
  }
  int nearest_biased = 0;
  for (int i = 0; i < N * K; i++) {
    const double scale = scales[i / K];
    // One draw's error is (1 - f) or -f steps with probabilities f, 1 - f: variance f (1 - f) scale^2 <= scale^2/4.
    // The mean of `draws` independent draws has SE <= scale / (2 sqrt(draws)); 5 SE bounds a false failure at
    // ~1e-6 per element. The 24-bit uniform adds a bias below 2^-24 scale.
    const double bound = 5.0 * scale / (2.0 * std::sqrt(static_cast<double>(draws))) + scale * 0x1p-24;
    EXPECT_LE(std::fabs(mean[i] - x[i]), bound) << "element " << i;
    if (std::fabs(backn[i] - x[i]) > bound) nearest_biased++;
  }
  // Negative control: round-to-nearest's deterministic error exceeds the same bound for most elements.
  EXPECT_GT(nearest_biased, N * K / 2);
  quantize_rows_int8_stochastic(context(), q.data(), scales.data(), x.data(), N, K, 1);
  quantize_rows_int8_stochastic(context(), q2.data(), scales.data(), x.data(), N, K, 2);
  EXPECT_NE(0, std::memcmp(q.data(), q2.data(), q.size())) << "different seeds must draw different bits";
}

TEST(CpuForward, Bf16RoundToNearestEven) {
  auto bits_of = [](uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
  };
  std::vector<float> in = {
      1.0f,
      bits_of(0x3F808000u),  // exactly halfway between two bf16 values, lower is even: rounds down
      bits_of(0x3F818000u),  // halfway, lower is odd: rounds up
      bits_of(0x3F808001u),  // just above halfway: rounds up
      -2.5f,
      std::numeric_limits<float>::infinity(),
      std::numeric_limits<float>::quiet_NaN(),
      bits_of(0x7F800001u),  // a signalling NaN whose payload sits in the low bits: must stay NaN
      bits_of(0x7F7FFFFFu),  // the largest float rounds up to inf (as RNE says)
  };
  std::vector<uint16_t> out(in.size());
  float_to_bf16(context(), out.data(), in.data(), in.size());
  EXPECT_EQ(out[0], 0x3F80u);
  EXPECT_EQ(out[1], 0x3F80u);
  EXPECT_EQ(out[2], 0x3F82u);
  EXPECT_EQ(out[3], 0x3F81u);
  EXPECT_EQ(out[4], 0xC020u);
  EXPECT_EQ(out[5], 0x7F80u);
  std::vector<float> back(in.size());
  bf16_to_float(context(), back.data(), out.data(), out.size());
  EXPECT_TRUE(std::isnan(back[6]));
  EXPECT_TRUE(std::isnan(back[7]));
  EXPECT_TRUE(std::isinf(back[8]));
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[4], -2.5f);
}

}  // namespace
}  // namespace kernels::cpu
