// tests/kernels/cuda/bf16_test.cc: the bf16 CUDA kernels (kernels/cuda/bf16.cuh) against their CPU twins
// (kernels/cuda/bf16_cpu_twin.h): stochastic rounding (bitwise: same hash), AdamW with fp32 master weights and a
// stochastically rounded bf16 copy, and the bf16 GEMMs, with fresh seeds, odd sizes, poisoned outputs.
#include <cmath>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_cpu_twin.h"
#include "kernels/cuda/bf16_rounding.h"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

using kernels::bf16::round_nearest;
using kernels::bf16::widen;

TEST(CudaBf16, StochasticRoundingBitExact) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16.StochasticRoundingBitExact");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (size_t n : cases<size_t>({1, 77, 1000003}, 2)) {
    const uint64_t seed = rng.seed() + n;
    Twin<float> x(rng.floats(n, -100.0f, 100.0f));
    Twin<uint16_t> out(std::vector<uint16_t>(n, 0xFFFFu));
    kernels::cpu::float_to_bf16_stochastic(cpu, out.cpu(), x.cpu(), n, seed);
    kernels::cuda::float_to_bf16_stochastic(cuda.ctx(), out.gpu(), x.gpu(), n, seed);
    expect_bitwise_equal(out.download(), out.host(), "stochastic bf16 n=" + std::to_string(n));
  }
}

TEST(CudaBf16, AdamWMasterWeightsAndRoundedCopy) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16.AdamWMasterWeightsAndRoundedCopy");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (size_t n : cases<size_t>({1, 333, 1000003}, 2)) {
    std::vector<float> init = rng.floats(n);
    Twin<float> master(init), m(std::vector<float>(n, 0.0f)), v(std::vector<float>(n, 0.0f));
    Twin<uint16_t> params(std::vector<uint16_t>(n, 0xFFFFu));
    for (int t = 1; t <= 3; t++) {
      Twin<float> grads(rng.floats(n, -0.1f, 0.1f));
      const uint64_t seed = rng.seed() * 31 + t;
      kernels::cpu::adamw_update_bf16(cpu, params.cpu(), master.cpu(), grads.cpu(), m.cpu(), v.cpu(), n, 3e-4f, 0.9f,
                                      0.95f, 1e-8f, 0.1f, 1.0f, t, seed);
      kernels::cuda::adamw_update_bf16(cuda.ctx(), params.gpu(), master.gpu(), grads.gpu(), m.gpu(), v.gpu(), n,
                                       3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, t, seed);
    }
    // fp32 state: as the fp32 AdamW test (FMA contraction on the GPU only).
    const auto gm = master.download();
    expect_close(gm, master.host(), 1e-6, 1e-9, "adamw_bf16 master");
    expect_close(m.download(), m.host(), 1e-6, 1e-12, "adamw_bf16 m");
    expect_close(v.download(), v.host(), 1e-6, 1e-15, "adamw_bf16 v");
    // The bf16 copy uses the same random bits: equal wherever the masters are bitwise equal, else at most one
    // bf16 step apart (the master values straddle the random threshold).
    const auto gp = params.download();
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
      const bool same_master = std::memcmp(&gm[i], &master.host()[i], sizeof(float)) == 0;
      const int diff = std::abs(static_cast<int>(gp[i]) - static_cast<int>(params.host()[i]));
      if (same_master ? diff != 0 : diff > 1) bad++;
    }
    EXPECT_EQ(bad, 0u) << "bf16 parameter copies that the master weights do not explain";
  }
}

struct Shape { int N, C, OC; };

TEST(CudaBf16, MatmulForwardBackward) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaBf16.MatmulForwardBackward");
  CudaContext cuda;
  const auto cpu = cpu_context();
  // Odd shapes too: cuBLASLt must find bf16 algorithms for unaligned leading dimensions (or say so clearly).
  for (const Shape s : cases<Shape>({{8, 16, 8}, {7, 33, 17}, {256, 768, 3072}, {129, 768, 2304}}, 2)) {
    const size_t nc = static_cast<size_t>(s.N) * s.C, no = static_cast<size_t>(s.N) * s.OC;
    const size_t oc = static_cast<size_t>(s.OC) * s.C;
    Twin<uint16_t> inp(random_bf16(rng, nc)), w(random_bf16(rng, oc)), bias(random_bf16(rng, s.OC));
    Twin<uint16_t> out(std::vector<uint16_t>(no, 0x7FC0u));  // NaN poison
    kernels::cpu::matmul_forward_bf16(cpu, out.cpu(), inp.cpu(), w.cpu(), bias.cpu(), s.N, s.C, s.OC);
    kernels::cuda::matmul_forward_bf16(cuda.ctx(), out.gpu(), inp.gpu(), w.gpu(), bias.gpu(), s.N, s.C, s.OC);
    std::vector<float> mag(no);
    {
      const auto ai = widen_abs(inp.host()), aw = widen_abs(w.host()), ab = widen_abs(bias.host());
      kernels::cpu::matmul_forward(cpu, mag.data(), ai.data(), aw.data(), ab.data(), s.N, s.C, s.OC);
    }
    expect_bf16_close(out.download(), out.host(), mag, s.C + 1, "matmul_bf16 out");

    Twin<uint16_t> dout(random_bf16(rng, no)), dinp(random_bf16(rng, nc));
    Twin<float> dw(rng.floats(oc)), db(rng.floats(s.OC));
    kernels::cpu::matmul_backward_bf16(cpu, dinp.cpu(), dw.cpu(), db.cpu(), dout.cpu(), inp.cpu(), w.cpu(), s.N, s.C,
                                       s.OC);
    kernels::cuda::matmul_backward_bf16(cuda.ctx(), dinp.gpu(), dw.gpu(), db.gpu(), dout.gpu(), inp.gpu(), w.gpu(),
                                        s.N, s.C, s.OC);
    // Magnitudes as in matmul_test: |result| plus the products of absolute values.
    std::vector<float> mag_dinp = widen_abs(dinp.host()), mag_dw(oc), mag_db(s.OC);
    for (size_t i = 0; i < oc; i++) mag_dw[i] = std::fabs(dw.host()[i]);
    for (int j = 0; j < s.OC; j++) mag_db[j] = std::fabs(db.host()[j]);
    {
      const auto ad = widen_abs(dout.host()), ai = widen_abs(inp.host()), aw = widen_abs(w.host());
      kernels::cpu::matmul_backward(cpu, mag_dinp.data(), mag_dw.data(), mag_db.data(), ad.data(), ai.data(),
                                    aw.data(), s.N, s.C, s.OC);
    }
    expect_bf16_close(dinp.download(), dinp.host(), mag_dinp, s.OC + 1, "matmul_bf16 dinp");
    const auto gw = dw.download(), gb = db.download();
    for (const auto& [got, want, mg, K, what] :
         {std::make_tuple(&gw, &dw.host(), &mag_dw, s.N + 1, "matmul_bf16 dweight"),
          std::make_tuple(&gb, &db.host(), &mag_db, s.N + 1, "matmul_bf16 dbias")}) {
      size_t bad = 0;
      for (size_t i = 0; i < got->size(); i++) {
        const double bound = 2.0 * (K + 2) * kUnitRoundoff * (*mg)[i] + 1e-30;
        bad += !(std::fabs(static_cast<double>((*got)[i]) - (*want)[i]) <= bound);
      }
      EXPECT_EQ(bad, 0u) << what << ": elements beyond 2*K*u*|a||b|";
    }
  }
}

}  // namespace
}  // namespace resbm_test
