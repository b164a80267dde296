// tests/kernels/cpu_bf16_gemm_test.cc: matmul_forward / matmul_backward with GemmPrecision::bf16 (--dtype bf16) on
// the CPU: every product must be the exact product of the operands rounded to bf16 (round to nearest even), summed
// in fp32. The reference rounds with frexp/ldexp in double (an implementation independent of the kernels' bit
// trick) and sums in double; dbias sums the unrounded gradient. Both CPU paths are checked (kernels/cpu/gemm_plans.h):
// bf16 operands multiplied natively by oneDNN (skipped, visibly, where the CPU has no avx512_bf16 / AMX) and the
// operands rounded for an fp32 GEMM (the fallback, and the autocast twin); and the two against each other.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "kernels/cpu/gemm_plans.h"
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

using kernels::cpu::Bf16Path;

// A bf16 context whose GEMMs take the given path; 2 threads (the engine's default here).
struct Bf16Context {
  Bf16Context(size_t elements, Bf16Path path) : scratch(elements), plans(path) {
    ctx.num_threads = 2;
    ctx.gemm_precision = kernels::GemmPrecision::bf16;
    ctx.gemm_scratch = scratch.data();
    ctx.gemm_scratch_bytes = scratch.size() * sizeof(float);
    ctx.cpu_gemm_plans = &plans;
  }
  std::vector<float> scratch;
  kernels::cpu::GemmPlans plans;
  kernels::KernelContext ctx;
};

// Both CPU paths: the native one only where oneDNN multiplies bf16 in hardware.
class CpuBf16Gemm : public ::testing::TestWithParam<Bf16Path> {
 protected:
  void SetUp() override {
    if (GetParam() == Bf16Path::native && !kernels::cpu::cpu_has_native_bf16()) {
      GTEST_SKIP() << "this CPU has no avx512_bf16 / AMX (as oneDNN sees it): the native path cannot run here";
    }
  }
};

// fp32 sums of K products of magnitude <= |a||b|: error below (K+2) 2^-24 sum|a b| (the classic bound, doubled).
double tolerance(double abs_products_sum, int K) { return 2.0 * (K + 2) * std::ldexp(1.0, -24) * abs_products_sum; }

TEST_P(CpuBf16Gemm, ForwardIsTheProductOfRoundedOperands) {
  const uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  const int N = 7, C = 37, OC = 13;  // odd sizes: no dimension divides a vector width
  const std::vector<float> x = random_vector(N * C, rng), w = random_vector(OC * C, rng), b = random_vector(OC, rng);
  Bf16Context bf(kernels::bf16_gemm_scratch_elements(N, C, OC), GetParam());
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

TEST_P(CpuBf16Gemm, BackwardUsesRoundedOperandsAndAccumulates) {
  const uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  const int N = 5, C = 19, OC = 11;
  const std::vector<float> x = random_vector(N * C, rng), w = random_vector(OC * C, rng);
  const std::vector<float> dout = random_vector(N * OC, rng);
  const std::vector<float> dinp0 = random_vector(N * C, rng), dw0 = random_vector(OC * C, rng),
                           db0 = random_vector(OC, rng);  // += outputs start from nonzero values
  std::vector<float> dinp = dinp0, dw = dw0, db = db0;
  Bf16Context bf(kernels::bf16_gemm_scratch_elements(N, C, OC), GetParam());
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

TEST_P(CpuBf16Gemm, TooSmallScratchIsAClearAbort) {
  const int N = 3, C = 4, OC = 5;
  std::vector<float> x(N * C, 1.0f), w(OC * C, 1.0f), out(N * OC);
  Bf16Context bf(kernels::bf16_gemm_scratch_elements(N, C, OC) / 4, GetParam());
  EXPECT_DEATH(kernels::cpu::matmul_forward(bf.ctx, out.data(), x.data(), w.data(), nullptr, N, C, OC),
               "bf16 GEMM needs .* bytes of gemm scratch, the context has");
}

// The native path against the autocast twin (operands rounded, fp32 GEMM) at GPT-2-like sizes: both sum the same
// exact products (two 8-bit significands multiply exactly in fp32) in fp32, in different orders, so each is within
// (K + 2) u sum|p| of the exact sum and they are within twice that of each other (u = 2^-24; bias and += starts
// counted in sum|p|). Outputs that differ by more than that mean a different rounding of the operands, not order.
TEST(CpuBf16GemmTwins, NativeEqualsRoundedFp32UpToSummationOrder) {
  if (!kernels::cpu::cpu_has_native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU: only the twin runs here";
  const uint32_t seed = fresh_seed();
  std::mt19937 rng(seed);
  const int N = 64, C = 192, OC = 577;  // C and N multiples of the vector widths, OC odd: both tails exercised
  const std::vector<float> x = random_vector(N * C, rng), w = random_vector(OC * C, rng), b = random_vector(OC, rng);
  const std::vector<float> dout = random_vector(N * OC, rng);
  const size_t elements = kernels::bf16_gemm_scratch_elements(N, C, OC) + 3 * 128;
  Bf16Context native(elements, Bf16Path::native), twin(elements, Bf16Path::rounded_fp32);
  struct Outputs {
    std::vector<float> out, dx, dw, db;
  };
  auto run = [&](const kernels::KernelContext& ctx) {
    Outputs o{std::vector<float>(N * OC, std::nanf("")), std::vector<float>(N * C, 0.5f),
              std::vector<float>(OC * C, -0.25f), std::vector<float>(OC, 0.0f)};
    kernels::cpu::matmul_forward(ctx, o.out.data(), x.data(), w.data(), b.data(), N, C, OC);
    kernels::cpu::matmul_backward(ctx, o.dx.data(), o.dw.data(), o.db.data(), dout.data(), x.data(), w.data(), N, C,
                                  OC);
    return o;
  };
  const Outputs a = run(native.ctx), t = run(twin.ctx);
  // Bounds from the rounded operands' absolute products (the same for both paths).
  auto bf = [](float v) { return std::fabs(reference_bf16(v)); };
  int misses = 0, differ = 0;
  auto check = [&](float got, float want, double abs_sum, int K, const char* what, int i) {
    if (got != want) differ++;
    if (!(std::fabs(static_cast<double>(got) - want) <= 2.0 * tolerance(abs_sum, K)) && misses++ < 5) {
      ADD_FAILURE() << "seed " << seed << " " << what << "[" << i << "]: native " << got << " twin " << want;
    }
  };
  for (int n = 0; n < N; n++) {
    for (int o = 0; o < OC; o++) {
      double s = std::fabs(b[o]);
      for (int c = 0; c < C; c++) s += bf(x[n * C + c]) * bf(w[o * C + c]);
      check(a.out[n * OC + o], t.out[n * OC + o], s, C, "out", n * OC + o);
    }
    for (int c = 0; c < C; c++) {
      double s = 0.5;
      for (int o = 0; o < OC; o++) s += bf(dout[n * OC + o]) * bf(w[o * C + c]);
      check(a.dx[n * C + c], t.dx[n * C + c], s, OC, "dinp", n * C + c);
    }
  }
  for (int o = 0; o < OC; o++) {
    for (int c = 0; c < C; c++) {
      double s = 0.25;
      for (int n = 0; n < N; n++) s += bf(dout[n * OC + o]) * bf(x[n * C + c]);
      check(a.dw[o * C + c], t.dw[o * C + c], s, N, "dweight", o * C + c);
    }
  }
  EXPECT_EQ(a.db, t.db) << "dbias sums the unrounded gradient with the same loop on both paths: bitwise";
  EXPECT_EQ(misses, 0);
  // Not a vacuous comparison: the paths really are two implementations (their summation orders differ somewhere).
  std::printf("native vs twin: %d of %d outputs differ in their last bits, all within the bound\n", differ,
              N * OC + N * C + OC * C);
}

INSTANTIATE_TEST_SUITE_P(Paths, CpuBf16Gemm, ::testing::Values(Bf16Path::native, Bf16Path::rounded_fp32),
                         [](const ::testing::TestParamInfo<Bf16Path>& info) {
                           return std::string(info.param == Bf16Path::native ? "native" : "rounded_fp32");
                         });

}  // namespace
