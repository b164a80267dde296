// tests/kernels/cuda/attention_test.cc: CUDA (cuBLAS batched GEMMs + fused causal softmax) vs CPU attention,
// forward (out and the probabilities) and backward (dqkv accumulated onto random values), with fresh seeds, odd
// sizes, NaN-poisoned outputs and scratch, and a bitwise rerun.
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels.cuh"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

struct Shape { int B, T, C, NH; };

TEST(CudaAttention, ForwardBackward) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaAttention.ForwardBackward");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (const Shape s : cases<Shape>({{1, 1, 4, 1}, {2, 7, 12, 3}, {3, 33, 96, 4}, {2, 129, 768, 12}}, 3)) {
    const int HS = s.C / s.NH;
    const size_t n3 = static_cast<size_t>(s.B) * s.T * 3 * s.C, n1 = static_cast<size_t>(s.B) * s.T * s.C;
    const size_t natt = static_cast<size_t>(s.B) * s.NH * s.T * s.T;
    Twin<float> qkv(rng.floats(n3, -2.0f, 2.0f)), out(Twin<float>::nans(n1)), att(Twin<float>::nans(natt));
    kernels::cpu::attention_forward(cpu, out.cpu(), att.cpu(), qkv.cpu(), s.B, s.T, s.C, s.NH);
    auto run_fwd = [&] {
      kernels::cuda::attention_forward(cuda.ctx(), out.gpu(), att.gpu(), qkv.gpu(), s.B, s.T, s.C, s.NH);
    };
    run_fwd();
    // Scores are HS-term dot products (|q||k| <= 4 each) summed in different orders, then exp; out sums T terms of
    // att * v. Bound: 1e-5 relative plus 8 * (HS + T) * u of the largest magnitude (the longest sums' worst-case
    // rounding, both sides), e.g. 8 * 192 * 6e-8 = 9e-5 absolute at HS=64, T=129 on values of size <= 2.
    const double tol = 8.0 * (HS + s.T) * kUnitRoundoff;
    const auto o = out.download(), a = att.download();
    expect_close(o, out.host(), 1e-5, tol * max_abs(out.host()), "attention out");
    expect_close(a, att.host(), 1e-5, tol, "attention att");  // probabilities <= 1; zeros above the diagonal exact
    expect_rerun_bitwise(run_fwd, {&out, &att}, {o, a}, cuda);

    // Backward from the CPU's probabilities on both sides, so that only the backward kernel is compared.
    Twin<float> att_in(att.host()), dout(rng.floats(n1)), dqkv(rng.floats(n3)), datt(Twin<float>::nans(natt));
    kernels::cpu::attention_backward(cpu, dqkv.cpu(), datt.cpu(), dout.cpu(), qkv.cpu(), att_in.cpu(), s.B, s.T, s.C,
                                     s.NH);
    auto run_bwd = [&] {
      kernels::cuda::attention_backward(cuda.ctx(), dqkv.gpu(), datt.gpu(), dout.gpu(), qkv.gpu(), att_in.gpu(), s.B,
                                        s.T, s.C, s.NH);
    };
    run_bwd();
    const auto d = dqkv.download();
    expect_close(d, dqkv.host(), 1e-5, 2.0 * tol * max_abs(dqkv.host()), "attention dqkv");
    expect_rerun_bitwise(run_bwd, {&dqkv}, {d}, cuda);
  }
}

}  // namespace
}  // namespace resbm_test
