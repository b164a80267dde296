// tests/kernels/cuda/elementwise_test.cc: CUDA vs CPU twins for GELU, add, accumulate, axpy, scale, fill and the
// column slices, on random data with a fresh seed, odd sizes and NaN-poisoned (or random, when accumulating)
// outputs; plus bitwise determinism of a rerun.
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels.cuh"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

// Sizes: 1, a prime below a warp, one above a block, and one that needs several grid-stride rounds.
std::vector<size_t> sizes() { return cases<size_t>({1, 31, 257, 1000003}, 3); }

TEST(CudaElementwise, GeluForwardBackward) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaElementwise.GeluForwardBackward");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (size_t n : sizes()) {
    Twin<float> inp(rng.floats(n, -6.0f, 6.0f)), dout(rng.floats(n));
    Twin<float> out(Twin<float>::nans(n)), dinp(rng.floats(n));
    kernels::cpu::gelu_forward(cpu, out.cpu(), inp.cpu(), n);
    kernels::cpu::gelu_backward(cpu, dinp.cpu(), inp.cpu(), dout.cpu(), n);
    auto run = [&] {
      kernels::cuda::gelu_forward(cuda.ctx(), out.gpu(), inp.gpu(), n);
      kernels::cuda::gelu_backward(cuda.ctx(), dinp.gpu(), inp.gpu(), dout.gpu(), n);
    };
    run();
    // tanhf (CUDA, 2 ulp) vs std::tanh (glibc, 1 ulp), and FMA contraction on the GPU only: for x << 0 the factor
    // 1 + tanh(u) cancels, so its absolute error (~3 ulp of 1, 2e-7) times |0.5 x| <= 3 bounds atol at 1e-6.
    const std::vector<float> o = out.download(), d = dinp.download();
    expect_close(o, out.host(), 1e-5, 1e-6, "gelu out n=" + std::to_string(n));
    // dinp: the same cancellation times |x| * sech^2 * ~0.8, plus the accumulated value's own rounding: 2e-6; and
    // sech^2 = 1 - tanh^2 cancels too (the CPU's sigmoid form does not): its absolute error (tanh's 2 ulp of 1
    // twice, plus the square's rounding: 5 u) is multiplied by 0.5 |x| k (1 + 3 c x^2) (up to ~9 at |x| ~ 5) and
    // |dout|. Seen at n = 1000003: 2.02e-6 at dinp ~ -1e-3.
    std::vector<double> dinp_bound(n);
    for (size_t i = 0; i < n; i++) {
      const double x = inp.host()[i], c = dinp.host()[i];
      const double factor = 0.5 * std::fabs(x) * 0.7978845608 * (1.0 + 3.0 * 0.044715 * x * x);
      dinp_bound[i] = 1e-5 * std::fabs(c) + 2e-6 + 5 * kUnitRoundoff * factor * std::fabs(dout.host()[i]);
    }
    expect_within(d, dinp.host(), dinp_bound, "gelu dinp n=" + std::to_string(n));
    expect_rerun_bitwise(run, {&out, &dinp}, {o, d}, cuda);
  }
}

TEST(CudaElementwise, AddAccumulateAxpyScaleFill) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaElementwise.AddAccumulateAxpyScaleFill");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (size_t n : sizes()) {
    Twin<float> a(rng.floats(n)), b(rng.floats(n));
    Twin<float> sum(Twin<float>::nans(n)), acc(rng.floats(n)), ax(rng.floats(n)), sc(rng.floats(n));
    Twin<float> filled(Twin<float>::nans(n));
    const float s = rng.uniform(-2.0f, 2.0f), value = rng.uniform(-5.0f, 5.0f);
    kernels::cpu::add_forward(cpu, sum.cpu(), a.cpu(), b.cpu(), n);
    kernels::cpu::accumulate(cpu, acc.cpu(), a.cpu(), n);
    kernels::cpu::axpy(cpu, ax.cpu(), a.cpu(), s, n);
    kernels::cpu::scale_inplace(cpu, sc.cpu(), s, n);
    kernels::cpu::fill(cpu, filled.cpu(), value, n);
    kernels::cuda::add_forward(cuda.ctx(), sum.gpu(), a.gpu(), b.gpu(), n);
    kernels::cuda::accumulate(cuda.ctx(), acc.gpu(), a.gpu(), n);
    kernels::cuda::axpy(cuda.ctx(), ax.gpu(), a.gpu(), s, n);
    kernels::cuda::scale_inplace(cuda.ctx(), sc.gpu(), s, n);
    kernels::cuda::fill(cuda.ctx(), filled.gpu(), value, n);
    // One IEEE operation per element: the results are identical to the CPU's, bit for bit.
    expect_bitwise_equal(sum.download(), sum.host(), "add");
    expect_bitwise_equal(acc.download(), acc.host(), "accumulate");
    expect_bitwise_equal(sc.download(), sc.host(), "scale");
    expect_bitwise_equal(filled.download(), filled.host(), "fill");
    // axpy: the GPU fuses s*src+dst into one FMA (one rounding instead of two): 1 ulp of |dst| + |s*src|.
    expect_close(ax.download(), ax.host(), 2.4e-7, 2.4e-7 * 2.0f, "axpy n=" + std::to_string(n));
  }
}

TEST(CudaElementwise, SliceColumns) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaElementwise.SliceColumns");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, C, offset, K; };
  for (const Shape sh : cases<Shape>({{1, 1, 0, 1}, {7, 33, 5, 17}, {129, 768, 0, 24}, {33, 101, 100, 1}}, 4)) {
    const size_t nc = static_cast<size_t>(sh.N) * sh.C, nk = static_cast<size_t>(sh.N) * sh.K;
    Twin<float> inp(rng.floats(nc)), dout(rng.floats(nk));
    Twin<float> out(Twin<float>::nans(nk)), dinp(rng.floats(nc));
    kernels::cpu::slice_columns_forward(cpu, out.cpu(), inp.cpu(), sh.N, sh.C, sh.offset, sh.K);
    kernels::cpu::slice_columns_backward(cpu, dinp.cpu(), dout.cpu(), sh.N, sh.C, sh.offset, sh.K);
    kernels::cuda::slice_columns_forward(cuda.ctx(), out.gpu(), inp.gpu(), sh.N, sh.C, sh.offset, sh.K);
    kernels::cuda::slice_columns_backward(cuda.ctx(), dinp.gpu(), dout.gpu(), sh.N, sh.C, sh.offset, sh.K);
    // Copies and single additions: exact.
    expect_bitwise_equal(out.download(), out.host(), "slice forward");
    expect_bitwise_equal(dinp.download(), dinp.host(), "slice backward");
  }
}

}  // namespace
}  // namespace resbm_test
