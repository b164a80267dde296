// tests/kernels/cuda/matmul_test.cc: CUDA (cuBLASLt) vs CPU (OpenBLAS) matmul forward/backward, the fused GELU
// epilogue, the general gemm, and the bf16 autocast of --dtype bf16, with fresh seeds, odd sizes, poisoned outputs
// and bitwise reruns.
//
// Tolerance: the two libraries sum the K products of each dot product in different orders. The rigorous bound for
// either is gamma_K * (|a| . |b|) with gamma_K ~ K * 2^-24; the difference of two such results is at most twice
// that. So each element is checked against 2 * K * 2^-24 * M, where M is the same product computed on absolute values
// (plus |bias| and the |accumulated| value), i.e. the bound is exact arithmetic, not a tuned number. A wrong index or
// a missed term makes errors of order M itself, far above it.
#include <cmath>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels.cuh"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

std::vector<float> abs_of(const std::vector<float>& x) {
  std::vector<float> a(x.size());
  for (size_t i = 0; i < x.size(); i++) a[i] = std::fabs(x[i]);
  return a;
}

// |gpu - cpu| <= slope * 2 K u * mag + atol (elementwise).
void expect_within_dot_bound(const std::vector<float>& gpu, const std::vector<float>& cpu,
                             const std::vector<float>& mag, int K, const std::string& what, double slope = 1.0,
                             double atol = 0.0) {
  ASSERT_EQ(gpu.size(), mag.size());
  const double c = slope * 2.0 * (K + 2) * kUnitRoundoff;
  size_t bad = 0, worst = 0;
  double max_rel = 0.0;
  for (size_t i = 0; i < gpu.size(); i++) {
    const double diff = std::fabs(static_cast<double>(gpu[i]) - cpu[i]);
    const double bound = c * mag[i] + atol + 1e-30;
    max_rel = std::max(max_rel, diff / (std::fabs(cpu[i]) + 1e-30));
    if (!(diff <= bound)) {
      if (bad++ == 0) worst = i;
    }
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " elements beyond 2*K*u*|a||b| (K=" << K << "); first at " << worst
                     << ": gpu " << gpu[worst] << " cpu " << cpu[worst] << " bound " << c * mag[worst];
  if (bad == 0) std::printf("[ compare  ] %-28s n=%-9zu max rel err %.3g (bound 2*K*u*|a||b|, K=%d)\n",
                            what.c_str(), gpu.size(), max_rel, K);
}

struct Shape { int N, C, OC; };
std::vector<Shape> shapes() {
  return cases<Shape>({{1, 1, 1}, {7, 33, 17}, {65, 129, 257}, {257, 768, 2304}, {1024, 768, 50304 / 16}}, 3);
}

TEST(CudaMatmul, ForwardWithAndWithoutBias) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaMatmul.ForwardWithAndWithoutBias");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (const Shape s : shapes()) {
    for (bool with_bias : {true, false}) {
      const size_t no = static_cast<size_t>(s.N) * s.OC;
      Twin<float> inp(rng.floats(static_cast<size_t>(s.N) * s.C)), w(rng.floats(static_cast<size_t>(s.OC) * s.C));
      Twin<float> bias(rng.floats(s.OC)), out(Twin<float>::nans(no));
      const float* bc = with_bias ? bias.cpu() : nullptr;
      const float* bg = with_bias ? bias.gpu() : nullptr;
      kernels::cpu::matmul_forward(cpu, out.cpu(), inp.cpu(), w.cpu(), bc, s.N, s.C, s.OC);
      auto run = [&] { kernels::cuda::matmul_forward(cuda.ctx(), out.gpu(), inp.gpu(), w.gpu(), bg, s.N, s.C, s.OC); };
      run();
      std::vector<float> mag(no);
      {
        const auto ai = abs_of(inp.host()), aw = abs_of(w.host()), ab = abs_of(bias.host());
        kernels::cpu::matmul_forward(cpu, mag.data(), ai.data(), aw.data(), with_bias ? ab.data() : nullptr, s.N, s.C,
                                     s.OC);
      }
      const auto o = out.download();
      expect_within_dot_bound(o, out.host(), mag, s.C + 1, "matmul out" + std::string(with_bias ? "+bias" : ""));
      expect_rerun_bitwise(run, {&out}, {o}, cuda);
    }
  }
}

TEST(CudaMatmul, Backward) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaMatmul.Backward");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (const Shape s : shapes()) {
    for (bool full : {true, false}) {  // full: dinp and dbias too; else both null
      const size_t nc = static_cast<size_t>(s.N) * s.C, oc = static_cast<size_t>(s.OC) * s.C;
      Twin<float> inp(rng.floats(nc)), w(rng.floats(oc)), dout(rng.floats(static_cast<size_t>(s.N) * s.OC));
      Twin<float> dinp(rng.floats(nc)), dw(rng.floats(oc)), db(rng.floats(s.OC));
      kernels::cpu::matmul_backward(cpu, full ? dinp.cpu() : nullptr, dw.cpu(), full ? db.cpu() : nullptr, dout.cpu(),
                                    inp.cpu(), w.cpu(), s.N, s.C, s.OC);
      auto run = [&] {
        kernels::cuda::matmul_backward(cuda.ctx(), full ? dinp.gpu() : nullptr, dw.gpu(), full ? db.gpu() : nullptr,
                                       dout.gpu(), inp.gpu(), w.gpu(), s.N, s.C, s.OC);
      };
      run();
      const auto ai = abs_of(inp.host()), aw = abs_of(w.host()), ad = abs_of(dout.host());
      // Magnitudes: |initial| + |dout| @ |w| for dinp, |initial| + |dout|^T @ |inp| for dweight, |initial| + sum|dout|.
      std::vector<float> mag_dinp = abs_of(dinp.host()), mag_dw = abs_of(dw.host()), mag_db = abs_of(db.host());
      kernels::cpu::matmul_backward(cpu, mag_dinp.data(), mag_dw.data(), mag_db.data(), ad.data(), ai.data(),
                                    aw.data(), s.N, s.C, s.OC);
      // (they start from |cpu result| rather than |initial|: the two differ by far less than the bound)
      const auto gi = dinp.download(), gw = dw.download(), gb = db.download();
      if (full) expect_within_dot_bound(gi, dinp.host(), mag_dinp, s.OC + 1, "matmul dinp");
      expect_within_dot_bound(gw, dw.host(), mag_dw, s.N + 1, "matmul dweight");
      if (full) expect_within_dot_bound(gb, db.host(), mag_db, s.N + 1, "matmul dbias");
      expect_rerun_bitwise(run, {&dinp, &dw, &db}, {gi, gw, gb}, cuda);
    }
  }
}

// --dtype bf16 (kernels/context.h, GemmPrecision::bf16): both sides round the operands to bf16 by the same rule
// (round to nearest even), and a product of two bf16 values is exact in fp32, so CUDA (tensor cores) and CPU (sgemm
// on the rounded values) differ only by the order of the fp32 sums: the fp32 bound above, with magnitudes of the
// rounded operands (at most (1 + 2^-8)^2 of the unrounded ones: slope 1.01).
struct Bf16Contexts {
  explicit Bf16Contexts(const CudaContext& cuda, size_t elements)
      : host_scratch(elements + 3 * 128), device_scratch(device_alloc((elements + 3 * 128) * sizeof(uint16_t))) {
    cpu = cpu_context();
    cpu.gemm_precision = kernels::GemmPrecision::bf16;
    cpu.gemm_scratch = host_scratch.data();
    cpu.gemm_scratch_bytes = host_scratch.size() * sizeof(float);
    gpu = cuda.ctx();
    gpu.gemm_precision = kernels::GemmPrecision::bf16;
    gpu.gemm_scratch = device_scratch;
    gpu.gemm_scratch_bytes = (elements + 3 * 128) * sizeof(uint16_t);
  }
  ~Bf16Contexts() { device_free(device_scratch); }
  std::vector<float> host_scratch;
  void* device_scratch;
  kernels::KernelContext cpu, gpu;
};

TEST(CudaMatmul, Bf16AutocastForwardAndBackwardMatchCpu) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaMatmul.Bf16AutocastForwardAndBackwardMatchCpu");
  CudaContext cuda;
  for (const Shape s : shapes()) {
    const size_t nc = static_cast<size_t>(s.N) * s.C, oc = static_cast<size_t>(s.OC) * s.C;
    const size_t no = static_cast<size_t>(s.N) * s.OC;
    Bf16Contexts bf(cuda, kernels::bf16_gemm_scratch_elements(s.N, s.C, s.OC));
    Twin<float> inp(rng.floats(nc)), w(rng.floats(oc)), bias(rng.floats(s.OC)), out(Twin<float>::nans(no));
    kernels::cpu::matmul_forward(bf.cpu, out.cpu(), inp.cpu(), w.cpu(), bias.cpu(), s.N, s.C, s.OC);
    auto fwd = [&] { kernels::cuda::matmul_forward(bf.gpu, out.gpu(), inp.gpu(), w.gpu(), bias.gpu(), s.N, s.C, s.OC); };
    fwd();
    const auto cpu = cpu_context();
    const auto ai = abs_of(inp.host()), aw = abs_of(w.host()), ab = abs_of(bias.host());
    std::vector<float> mag(no);
    kernels::cpu::matmul_forward(cpu, mag.data(), ai.data(), aw.data(), ab.data(), s.N, s.C, s.OC);
    const auto o = out.download();
    expect_within_dot_bound(o, out.host(), mag, s.C + 1, "bf16 autocast matmul out", 1.01);
    expect_rerun_bitwise(fwd, {&out}, {o}, cuda);

    Twin<float> dout(rng.floats(no)), dinp(rng.floats(nc)), dw(rng.floats(oc)), db(rng.floats(s.OC));
    kernels::cpu::matmul_backward(bf.cpu, dinp.cpu(), dw.cpu(), db.cpu(), dout.cpu(), inp.cpu(), w.cpu(), s.N, s.C,
                                  s.OC);
    auto bwd = [&] {
      kernels::cuda::matmul_backward(bf.gpu, dinp.gpu(), dw.gpu(), db.gpu(), dout.gpu(), inp.gpu(), w.gpu(), s.N, s.C,
                                     s.OC);
    };
    bwd();
    const auto ad = abs_of(dout.host());
    std::vector<float> mag_dinp = abs_of(dinp.host()), mag_dw = abs_of(dw.host()), mag_db = abs_of(db.host());
    kernels::cpu::matmul_backward(cpu, mag_dinp.data(), mag_dw.data(), mag_db.data(), ad.data(), ai.data(), aw.data(),
                                  s.N, s.C, s.OC);
    const auto gi = dinp.download(), gw = dw.download(), gb = db.download();
    expect_within_dot_bound(gi, dinp.host(), mag_dinp, s.OC + 1, "bf16 autocast matmul dinp", 1.01);
    expect_within_dot_bound(gw, dw.host(), mag_dw, s.N + 1, "bf16 autocast matmul dweight", 1.01);
    expect_within_dot_bound(gb, db.host(), mag_db, s.N + 1, "bf16 autocast matmul dbias");
    expect_rerun_bitwise(bwd, {&dinp, &dw, &db}, {gi, gw, gb}, cuda);
  }
}

TEST(CudaMatmul, FusedGeluEpilogueEqualsMatmulThenGelu) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaMatmul.FusedGeluEpilogueEqualsMatmulThenGelu");
  CudaContext cuda;
  const auto cpu = cpu_context();
  // OC a multiple of 8: cuBLASLt's aux (pre-GELU) output wants an aligned leading dimension.
  for (const Shape s : cases<Shape>({{7, 33, 16}, {65, 768, 3072}}, 1)) {
    const size_t no = static_cast<size_t>(s.N) * s.OC;
    Twin<float> inp(rng.floats(static_cast<size_t>(s.N) * s.C)), w(rng.floats(static_cast<size_t>(s.OC) * s.C));
    Twin<float> bias(rng.floats(s.OC)), pre(Twin<float>::nans(no)), out(Twin<float>::nans(no));
    kernels::cpu::matmul_forward(cpu, pre.cpu(), inp.cpu(), w.cpu(), bias.cpu(), s.N, s.C, s.OC);
    kernels::cpu::gelu_forward(cpu, out.cpu(), pre.cpu(), no);
    auto run = [&] {
      kernels::cuda::matmul_gelu_forward(cuda.ctx(), out.gpu(), pre.gpu(), inp.gpu(), w.gpu(), bias.gpu(), s.N, s.C,
                                         s.OC);
    };
    run();
    std::vector<float> mag(no);
    {
      const auto ai = abs_of(inp.host()), aw = abs_of(w.host()), ab = abs_of(bias.host());
      kernels::cpu::matmul_forward(cpu, mag.data(), ai.data(), aw.data(), ab.data(), s.N, s.C, s.OC);
    }
    const auto p = pre.download(), o = out.download();
    expect_within_dot_bound(p, pre.host(), mag, s.C + 1, "matmul_gelu pre");
    // GELU's slope is at most ~1.13, so the pre-activation bound carries over (x1.2), plus GELU's own 1e-6 (see the
    // elementwise test) and cuBLASLt's GELU formula, which is the same tanh approximation.
    expect_within_dot_bound(o, out.host(), mag, s.C + 1, "matmul_gelu out", /*slope=*/1.2, /*atol=*/2e-6);
    expect_rerun_bitwise(run, {&pre, &out}, {p, o}, cuda);
  }
}

TEST(CudaMatmul, GemmAllTransposes) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaMatmul.GemmAllTransposes");
  CudaContext cuda;
  const auto cpu = cpu_context();
  const int M = 37, N = 53, K = 29;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const float alpha = rng.uniform(-2.0f, 2.0f), beta = rng.uniform(-1.0f, 1.0f);
      Twin<float> a(rng.floats(static_cast<size_t>(M) * K)), b(rng.floats(static_cast<size_t>(K) * N));
      Twin<float> c(rng.floats(static_cast<size_t>(M) * N));
      kernels::cpu::gemm(cpu, c.cpu(), a.cpu(), b.cpu(), M, N, K, ta, tb, alpha, beta);
      kernels::cuda::gemm(cuda.ctx(), c.gpu(), a.gpu(), b.gpu(), M, N, K, ta, tb, alpha, beta);
      std::vector<float> mag = abs_of(c.host());  // |result| + |alpha| |A||B| + |beta C0| bounded below
      {
        const auto aa = abs_of(a.host()), ab = abs_of(b.host());
        std::vector<float> prod(static_cast<size_t>(M) * N, 0.0f);
        kernels::cpu::gemm(cpu, prod.data(), aa.data(), ab.data(), M, N, K, ta, tb, std::fabs(alpha), 0.0f);
        for (size_t i = 0; i < mag.size(); i++) mag[i] += prod[i] + std::fabs(beta);
      }
      expect_within_dot_bound(c.download(), c.host(), mag, K + 2,
                              std::string("gemm ta=") + (ta ? "1" : "0") + " tb=" + (tb ? "1" : "0"));
    }
  }
}

}  // namespace
}  // namespace resbm_test
