// tests/kernels/cuda/loss_reduction_test.cc: CUDA vs CPU fused softmax + cross-entropy (forward, backward) and the
// deterministic reductions (mean, sum of squares), with fresh seeds, odd and padded sizes, poisoned outputs and
// bitwise reruns.
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels.cuh"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

TEST(CudaCrossEntropy, ForwardBackward) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaCrossEntropy.ForwardBackward");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, V, Vp; };
  for (const Shape s : cases<Shape>({{1, 1, 1}, {5, 7, 8}, {17, 1000, 1003}, {64, 50257, 50304}}, 3)) {
    const size_t nv = static_cast<size_t>(s.N) * s.Vp;
    // Logits with a spread like a trained head's (-8..8), padded columns random: they must be ignored.
    Twin<float> logits(rng.floats(nv, -8.0f, 8.0f)), probs(Twin<float>::nans(nv)), losses(Twin<float>::nans(s.N));
    Twin<int32_t> targets(rng.ints(s.N, 0, s.V - 1));
    kernels::cpu::softmax_crossentropy_forward(cpu, losses.cpu(), probs.cpu(), logits.cpu(), targets.cpu(), s.N, s.V,
                                               s.Vp);
    auto run_fwd = [&] {
      kernels::cuda::softmax_crossentropy_forward(cuda.ctx(), losses.gpu(), probs.gpu(), logits.gpu(), targets.gpu(),
                                                  s.N, s.V, s.Vp);
    };
    run_fwd();
    // Probabilities: expf (2 ulp) vs std::exp (1 ulp), one rounding of 1/sum, both sums in double: a few ulp, well
    // inside 1e-5 relative; atol 1e-12 only for probabilities that underflow differently near 0.
    const auto p = probs.download(), l = losses.download();
    expect_close(p, probs.host(), 1e-5, 1e-12, "softmax probs");
    // Loss = log(sum) - (x - max), all in double but sum's terms come from expf: 1e-6 absolute on losses of ~10.
    expect_close(l, losses.host(), 1e-5, 1e-6, "xent losses");
    expect_rerun_bitwise(run_fwd, {&probs, &losses}, {p, l}, cuda);

    Twin<float> probs_in(probs.host()), dlogits(rng.floats(nv));
    const float scale = 1.0f / s.N;
    kernels::cpu::softmax_crossentropy_backward(cpu, dlogits.cpu(), probs_in.cpu(), targets.cpu(), scale, s.N, s.V,
                                                s.Vp);
    auto run_bwd = [&] {
      kernels::cuda::softmax_crossentropy_backward(cuda.ctx(), dlogits.gpu(), probs_in.gpu(), targets.gpu(), scale,
                                                   s.N, s.V, s.Vp);
    };
    run_bwd();
    // dlogits = d + scale * p (an FMA on the GPU, two roundings on the CPU): within 1 ulp of |d| + |scale * p|, and
    // the padded columns are untouched bit for bit (checked through the same bound: they stay equal).
    const auto d = dlogits.download();
    expect_close(d, dlogits.host(), 1.2e-7, 1.2e-7 * (1.0 + scale), "xent dlogits");
    expect_rerun_bitwise(run_bwd, {&dlogits}, {d}, cuda);
  }
}

TEST(CudaReductions, MeanAndSumSquares) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaReductions.MeanAndSumSquares");
  CudaContext cuda;
  const auto cpu = cpu_context();
  for (size_t n : cases<size_t>({0, 1, 31, 16385, 3000017}, 4)) {
    Twin<float> x(rng.floats(n, -3.0f, 5.0f)), mean(Twin<float>::nans(1)), ss(Twin<float>::nans(1));
    kernels::cpu::mean_forward(cpu, mean.cpu(), x.cpu(), n);
    kernels::cpu::sum_squares(cpu, ss.cpu(), x.cpu(), n);
    auto run = [&] {
      kernels::cuda::mean_forward(cuda.ctx(), mean.gpu(), x.gpu(), n);
      kernels::cuda::sum_squares(cuda.ctx(), ss.gpu(), x.gpu(), n);
    };
    run();
    // Both sides sum in double (53-bit) and round once to float: the double results differ by ~n * 2^-53 relative
    // at worst (3e-10 for 3M terms), so the floats are equal or 1 float ulp apart: rtol 1.2e-7. The mean's terms
    // have both signs, so its bound is relative to the mean of |x| (<= 5): atol 5 * n * 2^-53 * 4.
    const auto m = mean.download(), s = ss.download();
    expect_close(m, mean.host(), 1.2e-7, 2.2e-15 * static_cast<double>(n) + 1e-30, "mean n=" + std::to_string(n));
    expect_close(s, ss.host(), 1.2e-7, 0.0, "sum_squares n=" + std::to_string(n));
    expect_rerun_bitwise(run, {&mean, &ss}, {m, s}, cuda);
  }
}

}  // namespace
}  // namespace resbm_test
