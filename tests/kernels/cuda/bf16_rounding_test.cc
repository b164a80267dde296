// tests/kernels/cuda/bf16_rounding_test.cc: the bf16 rounding rules (kernels/cuda/bf16_rounding.h) on the CPU, so it
// runs everywhere: round-to-nearest-even equals the wire codec's float_to_bf16 bit for bit; stochastic rounding
// returns one of the two neighbours, is unbiased (a binomial bound), keeps inf and NaN, and is reproducible.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16_cpu_twin.h"
#include "kernels/cuda/bf16_rounding.h"

namespace {

using kernels::bf16::round_nearest;
using kernels::bf16::round_stochastic;
using kernels::bf16::widen;

uint64_t fresh_seed(const char* name) {
  std::random_device rd;
  const uint64_t seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  std::printf("[ seed     ] %s: %llu\n", name, static_cast<unsigned long long>(seed));
  return seed;
}

TEST(Bf16Rounding, NearestMatchesTheWireCodec) {
  const uint64_t seed = fresh_seed("Bf16Rounding.NearestMatchesTheWireCodec");
  std::mt19937_64 gen(seed);
  std::vector<float> x(100000);
  for (auto& v : x) {
    uint32_t bits = static_cast<uint32_t>(gen());
    std::memcpy(&v, &bits, sizeof(v));  // every bit pattern: normals, denormals, inf, NaN
  }
  std::vector<uint16_t> codec(x.size());
  kernels::KernelContext ctx;
  kernels::cpu::float_to_bf16(ctx, codec.data(), x.data(), x.size());
  for (size_t i = 0; i < x.size(); i++) ASSERT_EQ(round_nearest(x[i]), codec[i]) << "x bits index " << i;
}

TEST(Bf16Rounding, StochasticPicksANeighbourAndIsUnbiased) {
  const uint64_t seed = fresh_seed("Bf16Rounding.StochasticPicksANeighbourAndIsUnbiased");
  // x = 1 + f * 2^-7 (one bf16 ulp at 1 is 2^-7): rounds up with probability f.
  for (double f : {0.0, 0.1, 0.5, 0.9}) {
    const float x = static_cast<float>(1.0 + f / 128.0);
    const float lo = 1.0f, hi = 1.0f + 1.0f / 128.0f;
    const int n = 200000;
    int up = 0;
    for (int i = 0; i < n; i++) {
      const float r = widen(round_stochastic(x, seed, static_cast<uint64_t>(i)));
      ASSERT_TRUE(r == lo || r == hi) << "x=" << x << " rounded to " << r;
      up += r == hi;
    }
    // Binomial(n, f): 5 standard deviations (a false alarm about once in 3.5 million runs); f = 0 must never round up.
    const double sd = std::sqrt(n * f * (1.0 - f));
    EXPECT_NEAR(up, n * f, 5.0 * sd + 1e-9) << "f=" << f;
  }
}

TEST(Bf16Rounding, StochasticSpecialsAndReproducibility) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(widen(round_stochastic(inf, 7, 3)), inf);
  EXPECT_EQ(widen(round_stochastic(-inf, 7, 3)), -inf);
  EXPECT_TRUE(std::isnan(widen(round_stochastic(std::numeric_limits<float>::quiet_NaN(), 7, 3))));
  EXPECT_EQ(round_stochastic(0.0f, 7, 3), 0u);
  EXPECT_EQ(round_stochastic(1.5f, 7, 3), round_nearest(1.5f));  // exactly representable: never moves
  // The same (seed, index) gives the same bits; the twin kernel is the same function over an array.
  std::vector<float> x = {0.1f, -3.7f, 1e-20f, 123456.0f};
  std::vector<uint16_t> a(x.size()), b(x.size());
  kernels::KernelContext ctx;
  kernels::cpu::float_to_bf16_stochastic(ctx, a.data(), x.data(), x.size(), 99);
  for (size_t i = 0; i < x.size(); i++) b[i] = round_stochastic(x[i], 99, i);
  EXPECT_EQ(a, b);
}

}  // namespace
