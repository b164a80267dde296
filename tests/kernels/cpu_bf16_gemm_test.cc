// tests/kernels/cpu_bf16_gemm_test.cc: matmul_forward / matmul_backward with GemmPrecision::bf16 (--dtype bf16) on
// the CPU: every product must be the exact product of the operands rounded to bf16 (round to nearest even), summed
// in fp32. The reference rounds with frexp/ldexp in double (an implementation independent of the kernels' bit
// trick) and sums in double; dbias sums the unrounded gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "kernels/context.h"
#include "kernels/cpu/kernels.h"

namespace {

// A fresh seed per run (printed; RESBM_TEST_SEED=<n> replays one).
uint32_t fresh_seed() {
  const char* env = std::getenv("RESBM_TEST_SEED");
  const uint32_t seed = env != nullptr ? static_cast<uint32_t>(std::strtoul(env, nullptr, 10)) : std::random_device{}();
  std::printf("RESBM_TEST_SEED=%u\n", seed);
  return seed;
}

// x rounded to 8 significant bits (bf16's precision), ties to even: nearbyint rounds half to even by default.
double reference_bf16(float x) {
  if (x == 0.0f || !std::isfinite(x)) return x;
  int e = 0;
  const double m = std::frexp(static_cast<double>(x), &e);  // x = m 2^e, 0.5 <= |m| < 1
  return std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8);
}

std::vector<float> random_vector(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

struct Bf16Context {
  explicit Bf16Context(size_t elements) : scratch(elements) {
    ctx.gemm_precision = kernels::GemmPrecision::bf16;
    ctx.gemm_scratch = scratch.data();
    ctx.gemm_scratch_bytes = scratch.size() * sizeof(float);
  }
  std::vector<float> scratch;
  kernels::KernelContext ctx;
};

// fp32 sums of K products of magnitude <= |a||b|: error below (K+2) 2^-24 sum|a b| (the classic bound, doubled).
double tolerance(double abs_products_sum, int K) { return 2.0 * (K + 2) * std::ldexp(1.0, -24) * abs_products_sum; }

TEST(CpuBf16Gemm, ForwardIsTheProductOfRoundedOperands) {
  const uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  const int N = 7, C = 37, OC = 13;  // odd sizes: no dimension divides a vector width
  const std::vector<float> x = random_vector(N * C, rng), w = random_vector(OC * C, rng), b = random_vector(OC, rng);
  Bf16Context bf(kernels::bf16_gemm_scratch_elements(N, C, OC));
  std::vector<float> out(N * OC, std::nanf(""));  // poisoned: every element must be written
  kernels::cpu::matmul_forward(bf.ctx, out.data(), x.data(), w.data(), b.data(), N, C, OC);
  int differs_from_fp32 = 0;
  for (int n = 0; n < N; n++) {
    for (int o = 0; o < OC; o++) {
      double ref = b[o], ref_fp32 = b[o], abs_sum = std::fabs(b[o]);
      for (int c = 0; c < C; c++) {
        ref += reference_bf16(x[n * C + c]) * reference_bf16(w[o * C + c]);
        ref_fp32 += static_cast<double>(x[n * C + c]) * w[o * C + c];
        abs_sum += std::fabs(reference_bf16(x[n * C + c]) * reference_bf16(w[o * C + c]));
      }
      const double got = out[n * OC + o];
      EXPECT_NEAR(got, ref, tolerance(abs_sum, C)) << "seed " << seed << " n=" << n << " o=" << o;
      // The rounding must really happen: unrounded operands move a sum of 37 unit normals by ~2^-9 sqrt(37) ~ 1e-2.
      if (std::fabs(got - ref_fp32) > 10 * tolerance(abs_sum, C)) differs_from_fp32++;
    }
  }
  EXPECT_GT(differs_from_fp32, N * OC / 2) << "seed " << seed << ": the results look like fp32 GEMMs";
}

TEST(CpuBf16Gemm, BackwardUsesRoundedOperandsAndAccumulates) {
  const uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  const int N = 5, C = 19, OC = 11;
  const std::vector<float> x = random_vector(N * C, rng), w = random_vector(OC * C, rng);
  const std::vector<float> dout = random_vector(N * OC, rng);
  const std::vector<float> dinp0 = random_vector(N * C, rng), dw0 = random_vector(OC * C, rng),
                           db0 = random_vector(OC, rng);  // += outputs start from nonzero values
  std::vector<float> dinp = dinp0, dw = dw0, db = db0;
  Bf16Context bf(kernels::bf16_gemm_scratch_elements(N, C, OC));
  kernels::cpu::matmul_backward(bf.ctx, dinp.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), N, C,
                                OC);
  for (int n = 0; n < N; n++) {
    for (int c = 0; c < C; c++) {  // dinp = dout @ w
      double ref = 0.0, abs_sum = 0.0;
      for (int o = 0; o < OC; o++) {
        const double p = reference_bf16(dout[n * OC + o]) * reference_bf16(w[o * C + c]);
        ref += p, abs_sum += std::fabs(p);
      }
      EXPECT_NEAR(dinp[n * C + c], dinp0[n * C + c] + ref,
                  tolerance(abs_sum + std::fabs(dinp0[n * C + c]), OC + 1))
          << "seed " << seed << " dinp n=" << n << " c=" << c;
    }
  }
  for (int o = 0; o < OC; o++) {
    for (int c = 0; c < C; c++) {  // dweight = dout^T @ x
      double ref = 0.0, abs_sum = 0.0;
      for (int n = 0; n < N; n++) {
        const double p = reference_bf16(dout[n * OC + o]) * reference_bf16(x[n * C + c]);
        ref += p, abs_sum += std::fabs(p);
      }
      EXPECT_NEAR(dw[o * C + c], dw0[o * C + c] + ref, tolerance(abs_sum + std::fabs(dw0[o * C + c]), N + 1))
          << "seed " << seed << " dweight o=" << o << " c=" << c;
    }
    double ref = db0[o], abs_sum = std::fabs(db0[o]);  // dbias: the fp32 gradient itself, unrounded
    for (int n = 0; n < N; n++) ref += dout[n * OC + o], abs_sum += std::fabs(dout[n * OC + o]);
    EXPECT_NEAR(db[o], ref, tolerance(abs_sum, N + 1)) << "seed " << seed << " dbias o=" << o;
  }
}

TEST(CpuBf16Gemm, TooSmallScratchIsAClearAbort) {
  const int N = 3, C = 4, OC = 5;
  std::vector<float> x(N * C, 1.0f), w(OC * C, 1.0f), out(N * OC);
  Bf16Context bf(kernels::bf16_gemm_scratch_elements(N, C, OC) / 4);
  EXPECT_DEATH(kernels::cpu::matmul_forward(bf.ctx, out.data(), x.data(), w.data(), nullptr, N, C, OC),
               "bf16 GEMM needs .* bytes of gemm scratch, the context has");
}

}  // namespace
