// tests/kernels/cuda/gemm_plans_test.cc: runs on every machine (no GPU). Executes the GEMM descriptors that the CUDA
// kernels hand to cuBLAS (kernels/cuda/gemm_plans.h) with a bounds-checked reference implementation of cuBLAS's
// column-major semantics, and compares the results with the CPU kernels: this checks every transpose, leading
// dimension, batch stride and pointer offset of matmul, gemm and attention without a GPU. (The GPU run of
// tests/kernels/cuda/*_test then checks cuBLAS itself.)
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/gemm_plans.h"
#include "tests/kernels/cuda/reference_gemm.h"

namespace {

using kernels::cuda::GemmDesc;

// The buffers a descriptor may touch; every element access is checked against them.
struct Buffers {
  std::vector<std::pair<const float*, size_t>> spans;
  void add(const std::vector<float>& v) { spans.emplace_back(v.data(), v.size()); }
  void check(const float* p, const char* what) const {
    for (const auto& [base, n] : spans) {
      if (p >= base && p < base + n) return;
    }
    FAIL() << "descriptor reads or writes outside every buffer (" << what << ")";
  }
};

// reference_gemm.h's GEMM, every element access checked against the buffers.
void reference_gemm(const GemmDesc& g, const Buffers& buffers) {
  resbm_test::reference_gemm(g, [&](const float* p, const char* what) { buffers.check(p, what); });
}

std::vector<float> randoms(std::mt19937_64& gen, size_t n) {
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

// Both sides are sums of K products of values <= 1 in size (plus the accumulated value): the CPU's fp32 rounding
// is at most K * 2^-24 * (sum of |terms|) <= K * 2^-24 * (K + |initial|); with K <= 200 here that is < 3e-3 worst
// case; 1e-4 + 1e-5 relative is used (typical errors are sqrt(K) * 2^-24 ~ 1e-6), far below a layout error (O(1)).
void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  double worst = 0.0;
  for (size_t i = 0; i < got.size(); i++) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    worst = std::max(worst, d);
    ASSERT_LE(d, 1e-4 + 1e-5 * std::fabs(want[i])) << what << " at " << i << ": " << got[i] << " vs " << want[i];
  }
  std::printf("[ compare  ] %-24s max abs err %.3g\n", what.c_str(), worst);
}

class GemmPlans : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    seed_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
    gen_.seed(seed_);
    std::printf("[ seed     ] %s: %llu\n", ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                static_cast<unsigned long long>(seed_));
    cpu_.num_threads = 1;
  }
  uint64_t seed_ = 0;
  std::mt19937_64 gen_;
  kernels::KernelContext cpu_;
};

TEST_F(GemmPlans, MatmulForwardAndBackward) {
  for (auto [N, C, OC] : {std::tuple{1, 1, 1}, std::tuple{7, 33, 17}, std::tuple{20, 64, 96}}) {
    const auto inp = randoms(gen_, static_cast<size_t>(N) * C), w = randoms(gen_, static_cast<size_t>(OC) * C);
    const auto bias = randoms(gen_, OC), dout = randoms(gen_, static_cast<size_t>(N) * OC);
    std::vector<float> out(static_cast<size_t>(N) * OC, NAN), want(out.size());
    Buffers buf;
    buf.add(inp), buf.add(w), buf.add(out);
    reference_gemm(kernels::cuda::matmul_forward_desc(out.data(), inp.data(), w.data(), bias.data(), N, C, OC), buf);
    kernels::cpu::matmul_forward(cpu_, want.data(), inp.data(), w.data(), bias.data(), N, C, OC);
    expect_near_all(out, want, "matmul forward");

    auto dinp = randoms(gen_, static_cast<size_t>(N) * C), dw = randoms(gen_, static_cast<size_t>(OC) * C);
    auto want_dinp = dinp, want_dw = dw;
    Buffers b2;
    b2.add(inp), b2.add(w), b2.add(dout), b2.add(dinp), b2.add(dw);
    reference_gemm(kernels::cuda::matmul_dinp_desc(dinp.data(), dout.data(), w.data(), N, C, OC), b2);
    reference_gemm(kernels::cuda::matmul_dweight_desc(dw.data(), dout.data(), inp.data(), N, C, OC), b2);
    kernels::cpu::matmul_backward(cpu_, want_dinp.data(), want_dw.data(), nullptr, dout.data(), inp.data(), w.data(), N,
                                  C, OC);
    expect_near_all(dinp, want_dinp, "matmul dinp");
    expect_near_all(dw, want_dw, "matmul dweight");
  }
}

TEST_F(GemmPlans, RowMajorGemmAllTransposes) {
  const int M = 13, N = 9, K = 11;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const auto a = randoms(gen_, static_cast<size_t>(M) * K), b = randoms(gen_, static_cast<size_t>(K) * N);
      auto c = randoms(gen_, static_cast<size_t>(M) * N);
      auto want = c;
      Buffers buf;
      buf.add(a), buf.add(b), buf.add(c);
      reference_gemm(kernels::cuda::rowmajor_gemm_desc(c.data(), a.data(), b.data(), M, N, K, ta, tb, 0.7f, -0.3f), buf);
      kernels::cpu::gemm(cpu_, want.data(), a.data(), b.data(), M, N, K, ta, tb, 0.7f, -0.3f);
      expect_near_all(c, want, std::string("gemm ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0"));
    }
  }
}

// The CUDA softmax kernels' arithmetic, row by row (not under test here: only the GEMMs around them are).
void causal_softmax_rows(float* att, int rows, int T) {
  for (int r = 0; r < rows; r++) {
    float* a = att + static_cast<size_t>(r) * T;
    const int t = r % T;
    float mx = -INFINITY, sum = 0.0f;
    for (int s = 0; s <= t; s++) mx = std::max(mx, a[s]);
    for (int s = 0; s <= t; s++) sum += (a[s] = std::exp(a[s] - mx));
    for (int s = 0; s < T; s++) a[s] = s <= t ? a[s] / sum : 0.0f;
  }
}

void causal_softmax_backward_rows(float* datt, const float* att, int rows, int T) {
  for (int r = 0; r < rows; r++) {
    float* d = datt + static_cast<size_t>(r) * T;
    const float* a = att + static_cast<size_t>(r) * T;
    const int t = r % T;
    float dot = 0.0f;
    for (int s = 0; s <= t; s++) dot += a[s] * d[s];
    for (int s = 0; s < T; s++) d[s] = s <= t ? a[s] * (d[s] - dot) : 0.0f;
  }
}

TEST_F(GemmPlans, AttentionForwardAndBackward) {
  for (auto [B, T, C, NH] : {std::tuple{1, 1, 4, 1}, std::tuple{2, 5, 12, 3}, std::tuple{3, 9, 32, 4}}) {
    const size_t n3 = static_cast<size_t>(B) * T * 3 * C, n1 = static_cast<size_t>(B) * T * C;
    const size_t natt = static_cast<size_t>(B) * NH * T * T;
    const auto qkv = randoms(gen_, n3), dout = randoms(gen_, n1);
    std::vector<float> out(n1, NAN), att(natt, NAN), want_out(n1), want_att(natt);
    Buffers buf;
    buf.add(qkv), buf.add(out), buf.add(att), buf.add(dout);
    for (int b = 0; b < B; b++) {
      reference_gemm(kernels::cuda::attention_scores_desc(att.data(), qkv.data(), b, T, C, NH), buf);
      causal_softmax_rows(att.data() + static_cast<size_t>(b) * NH * T * T, NH * T, T);
      reference_gemm(kernels::cuda::attention_out_desc(out.data(), att.data(), qkv.data(), b, T, C, NH), buf);
    }
    kernels::cpu::attention_forward(cpu_, want_out.data(), want_att.data(), qkv.data(), B, T, C, NH);
    expect_near_all(att, want_att, "attention att");
    expect_near_all(out, want_out, "attention out");

    auto dqkv = randoms(gen_, n3);
    auto want_dqkv = dqkv;
    std::vector<float> datt(natt, NAN), want_datt(natt, 0.0f);
    Buffers b2;
    b2.add(qkv), b2.add(dout), b2.add(want_att), b2.add(dqkv), b2.add(datt);
    for (int b = 0; b < B; b++) {
      reference_gemm(kernels::cuda::attention_datt_desc(datt.data(), dout.data(), qkv.data(), b, T, C, NH), b2);
      reference_gemm(kernels::cuda::attention_dv_desc(dqkv.data(), dout.data(), want_att.data(), b, T, C, NH), b2);
      causal_softmax_backward_rows(datt.data() + static_cast<size_t>(b) * NH * T * T,
                                   want_att.data() + static_cast<size_t>(b) * NH * T * T, NH * T, T);
      reference_gemm(kernels::cuda::attention_dq_desc(dqkv.data(), datt.data(), qkv.data(), b, T, C, NH), b2);
      reference_gemm(kernels::cuda::attention_dk_desc(dqkv.data(), datt.data(), qkv.data(), b, T, C, NH), b2);
    }
    kernels::cpu::attention_backward(cpu_, want_dqkv.data(), want_datt.data(), dout.data(), qkv.data(),
                                     want_att.data(), B, T, C, NH);
    expect_near_all(dqkv, want_dqkv, "attention dqkv");
  }
}

}  // namespace
