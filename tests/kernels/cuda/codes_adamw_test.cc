// tests/kernels/cuda/codes_adamw_test.cc: CUDA vs CPU for the wire codes (int8 per-row, bf16; bit-exact) and
// AdamW, with fresh seeds, odd sizes, poisoned outputs and bitwise reruns.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels.cuh"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

TEST(CudaCodes, Int8RowsBitExact) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaCodes.Int8RowsBitExact");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, K; };
  for (const Shape s : cases<Shape>({{1, 1}, {7, 33}, {129, 24}, {1000, 768}}, 3)) {
    const size_t nk = static_cast<size_t>(s.N) * s.K;
    std::vector<float> x = rng.floats(nk, -4.0f, 4.0f);
    for (int k = 0; k < s.K; k++) x[k] = 0.0f;  // an all-zero row: scale 1
    Twin<float> xt(x), scales(Twin<float>::nans(s.N)), back(Twin<float>::nans(nk));
    Twin<int8_t> q(std::vector<int8_t>(nk, static_cast<int8_t>(-128)));  // -128 is never a valid code: poison
    kernels::cpu::quantize_rows_int8(cpu, q.cpu(), scales.cpu(), xt.cpu(), s.N, s.K);
    kernels::cpu::dequantize_rows_int8(cpu, back.cpu(), q.cpu(), scales.cpu(), s.N, s.K);
    kernels::cuda::quantize_rows_int8(cuda.ctx(), q.gpu(), scales.gpu(), xt.gpu(), s.N, s.K);
    kernels::cuda::dequantize_rows_int8(cuda.ctx(), back.gpu(), q.gpu(), scales.gpu(), s.N, s.K);
    // Same IEEE operations (division, round half to even, one product) in the same order: bit-exact.
    expect_bitwise_equal(q.download(), q.host(), "int8 codes");
    expect_bitwise_equal(scales.download(), scales.host(), "int8 scales");
    expect_bitwise_equal(back.download(), back.host(), "int8 dequantized");
  }
}

// The stochastic code (code gradients) and non-finite rows: the same hash bits and the same IEEE operations as the
// CPU twin, so bit-exact; a row with a NaN or an inf has a NaN scale and decodes to NaN on both.
TEST(CudaCodes, Int8StochasticAndNonFiniteRowsBitExact) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaCodes.Int8StochasticAndNonFiniteRowsBitExact");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, K; };
  for (const Shape s : cases<Shape>({{3, 1}, {7, 33}, {129, 24}, {1000, 768}}, 3)) {
    const size_t nk = static_cast<size_t>(s.N) * s.K;
    std::vector<float> x = rng.floats(nk, -4.0f, 4.0f);
    x[nk - 1] = std::numeric_limits<float>::quiet_NaN();             // the last row: NaN
    if (s.N > 2) x[s.K] = -std::numeric_limits<float>::infinity();   // the second row: -inf
    const uint64_t seed = static_cast<uint64_t>(rng.integer(1, 1 << 30)) * 2654435761u;  // a fresh rounding seed
    for (bool stochastic : {true, false}) {
      Twin<float> xt(x), scales(Twin<float>::nans(s.N)), back(Twin<float>::nans(nk));
      Twin<int8_t> q(std::vector<int8_t>(nk, static_cast<int8_t>(-128)));  // -128 is never a valid code: poison
      if (stochastic) {
        kernels::cpu::quantize_rows_int8_stochastic(cpu, q.cpu(), scales.cpu(), xt.cpu(), s.N, s.K, seed);
        kernels::cuda::quantize_rows_int8_stochastic(cuda.ctx(), q.gpu(), scales.gpu(), xt.gpu(), s.N, s.K, seed);
      } else {
        kernels::cpu::quantize_rows_int8(cpu, q.cpu(), scales.cpu(), xt.cpu(), s.N, s.K);
        kernels::cuda::quantize_rows_int8(cuda.ctx(), q.gpu(), scales.gpu(), xt.gpu(), s.N, s.K);
      }
      kernels::cpu::dequantize_rows_int8(cpu, back.cpu(), q.cpu(), scales.cpu(), s.N, s.K);
      kernels::cuda::dequantize_rows_int8(cuda.ctx(), back.gpu(), q.gpu(), scales.gpu(), s.N, s.K);
      expect_bitwise_equal(q.download(), q.host(), stochastic ? "stochastic int8 codes" : "int8 codes, NaN rows");
      expect_bitwise_equal(scales.download(), scales.host(), "int8 scales");
      const std::vector<float> decoded = back.download();
      expect_bitwise_equal(decoded, back.host(), "int8 dequantized");
      EXPECT_TRUE(std::isnan(decoded[nk - 1])) << "a NaN row must decode to NaN";
    }
  }
}

TEST(CudaCodes, Bf16BitExactIncludingSpecials) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaCodes.Bf16BitExactIncludingSpecials");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (size_t n : cases<size_t>({1, 37, 1000003}, 2)) {
    std::vector<float> x = rng.floats(n, -1e4f, 1e4f);
    // A NaN whose payload is in the low 16 bits only (0x7F800001): rounding its bits as a number would give inf.
    const uint32_t low_nan_bits = 0x7F800001u;
    float low_nan;
    std::memcpy(&low_nan, &low_nan_bits, sizeof(low_nan));
    const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                              -std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN(),
                              1.00390625f /* a tie: 1 + 2^-8 */, 1.01171875f /* tie, rounds up to even */,
                              std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max(), low_nan};
    for (size_t i = 0; i < n && i < sizeof(specials) / sizeof(float); i++) x[i] = specials[i];
    Twin<float> xt(x), back(Twin<float>::nans(n));
    Twin<uint16_t> codes(std::vector<uint16_t>(n, 0xFFFFu));
    kernels::cpu::float_to_bf16(cpu, codes.cpu(), xt.cpu(), n);
    kernels::cpu::bf16_to_float(cpu, back.cpu(), codes.cpu(), n);
    kernels::cuda::float_to_bf16(cuda.ctx(), codes.gpu(), xt.gpu(), n);
    kernels::cuda::bf16_to_float(cuda.ctx(), back.gpu(), codes.gpu(), n);
    expect_bitwise_equal(codes.download(), codes.host(), "bf16 codes");
    expect_bitwise_equal(back.download(), back.host(), "bf16 back to float");
  }
}

TEST(CudaAdamW, MatchesCpuOverSteps) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaAdamW.MatchesCpuOverSteps");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (size_t n : cases<size_t>({1, 257, 1000003}, 2)) {
    Twin<float> params(rng.floats(n)), m(std::vector<float>(n, 0.0f)), v(std::vector<float>(n, 0.0f));
    const float weight_decay = n == 257 ? 0.0f : 0.1f;
    for (int t = 1; t <= 3; t++) {
      Twin<float> grads(rng.floats(n, -0.1f, 0.1f));
      const float grad_scale = t == 2 ? 0.5f : 1.0f;
      kernels::cpu::adamw_update(cpu, params.cpu(), grads.cpu(), m.cpu(), v.cpu(), n, 3e-4f, 0.9f, 0.95f, 1e-8f,
                                 weight_decay, grad_scale, t);
      kernels::cuda::adamw_update(cuda.ctx(), params.gpu(), grads.gpu(), m.gpu(), v.gpu(), n, 3e-4f, 0.9f, 0.95f,
                                  1e-8f, weight_decay, grad_scale, t);
    }
    // Same formula; the GPU contracts a*b+c into FMAs (one rounding instead of two), so m and v agree to ~1 ulp and
    // the parameters, which move by ~lr per step, agree to 1e-6 relative (a few ulp of values ~1).
    expect_close(m.download(), m.host(), 1e-6, 1e-12, "adamw m");
    expect_close(v.download(), v.host(), 1e-6, 1e-15, "adamw v");
    expect_close(params.download(), params.host(), 1e-6, 1e-9, "adamw params");
  }
}

}  // namespace
}  // namespace resbm_test
