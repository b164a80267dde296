// tests/kernels/cuda/embedding_layernorm_test.cc: CUDA vs CPU twins for the embedding (forward, deterministic
// backward) and layernorm (forward, backward with the two-pass dweight/dbias reduction), with fresh seeds, odd
// sizes, poisoned outputs and a bitwise rerun check.
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/kernels.cuh"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

struct EmbShape { int B, T, C, Vp, maxT; };

TEST(CudaEmbedding, ForwardBackward) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaEmbedding.ForwardBackward");
  CudaContext cuda;
  const auto cpu = cpu_context();
  // A vocabulary of 3 forces many repeated tokens (long groups); 50304 is GPT-2's padded vocabulary.
  for (const EmbShape s :
       cases<EmbShape>({{1, 1, 1, 3, 1}, {3, 17, 33, 3, 19}, {4, 64, 257, 50304, 64}, {2, 1023, 768, 101, 1024}}, 3)) {
    const size_t btc = static_cast<size_t>(s.B) * s.T * s.C;
    Twin<int32_t> tokens(rng.ints(static_cast<size_t>(s.B) * s.T, 0, s.Vp - 1));
    Twin<float> wte(rng.floats(static_cast<size_t>(s.Vp) * s.C)), wpe(rng.floats(static_cast<size_t>(s.maxT) * s.C));
    Twin<float> out(Twin<float>::nans(btc)), dout(rng.floats(btc));
    Twin<float> dwte(rng.floats(static_cast<size_t>(s.Vp) * s.C)), dwpe(rng.floats(static_cast<size_t>(s.maxT) * s.C));
    kernels::cpu::embedding_forward(cpu, out.cpu(), tokens.cpu(), wte.cpu(), wpe.cpu(), s.B, s.T, s.C);
    kernels::cpu::embedding_backward(cpu, dwte.cpu(), dwpe.cpu(), dout.cpu(), tokens.cpu(), s.B, s.T, s.C);
    auto run = [&] {
      kernels::cuda::embedding_forward(cuda.ctx(), out.gpu(), tokens.gpu(), wte.gpu(), wpe.gpu(), s.B, s.T, s.C);
      kernels::cuda::embedding_backward(cuda.ctx(), dwte.gpu(), dwpe.gpu(), dout.gpu(), tokens.gpu(), s.B, s.T, s.C);
    };
    run();
    // The GPU adds in exactly the CPU's order (positions ascending per row), so all three match bit for bit.
    const auto o = out.download(), dw = dwte.download(), dp = dwpe.download();
    expect_bitwise_equal(o, out.host(), "embedding out");
    expect_bitwise_equal(dw, dwte.host(), "embedding dwte");
    expect_bitwise_equal(dp, dwpe.host(), "embedding dwpe");
    expect_rerun_bitwise(run, {&out, &dwte, &dwpe}, {o, dw, dp}, cuda);
  }
}

TEST(CudaLayernorm, ForwardBackward) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaLayernorm.ForwardBackward");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, C; };
  for (const Shape s : cases<Shape>({{1, 1}, {7, 33}, {65, 769}, {300, 1600}, {1031, 64}}, 3)) {
    const size_t nc = static_cast<size_t>(s.N) * s.C;
    // Inputs with an offset, like a residual stream: the mean is not ~0, so it is compared relatively.
    Twin<float> inp(rng.floats(nc, -1.0f, 3.0f)), w(rng.floats(s.C, 0.5f, 1.5f)), b(rng.floats(s.C));
    Twin<float> out(Twin<float>::nans(nc)), mean(Twin<float>::nans(s.N)), rstd(Twin<float>::nans(s.N));
    kernels::cpu::layernorm_forward(cpu, out.cpu(), mean.cpu(), rstd.cpu(), inp.cpu(), w.cpu(), b.cpu(), s.N, s.C);
    auto run_fwd = [&] {
      kernels::cuda::layernorm_forward(cuda.ctx(), out.gpu(), mean.gpu(), rstd.gpu(), inp.gpu(), w.gpu(), b.gpu(),
                                       s.N, s.C);
    };
    run_fwd();
    // Reduction order differs (warp tree vs sequential). Sums of C terms of size <= 3 in fp32 carry at most
    // ~C * 2^-24 relative error each way (worst case, typically sqrt(C)); for C = 1600 that is ~1e-4 worst case,
    // ~2.4e-6 typical. Bound used: rtol 1e-5 plus atol 1e-5 * sqrt(C/64) on O(1) values (normalized outputs, mean,
    // rstd ~ 0.9): 5e-5 at C = 1600.
    const double atol = 1e-5 * std::sqrt(s.C / 64.0 + 1.0);
    const auto o = out.download(), m = mean.download(), r = rstd.download();
    expect_close(o, out.host(), 1e-5, atol, "layernorm out C=" + std::to_string(s.C));
    expect_close(m, mean.host(), 1e-5, atol, "layernorm mean");
    expect_close(r, rstd.host(), 1e-5, atol, "layernorm rstd");
    expect_rerun_bitwise(run_fwd, {&out, &mean, &rstd}, {o, m, r}, cuda);

    // Backward from the CPU's saved statistics on both sides, so that only the backward kernel is compared.
    Twin<float> mean_in(mean.host()), rstd_in(rstd.host()), dout(rng.floats(nc));
    Twin<float> dinp(rng.floats(nc)), dw(rng.floats(s.C)), db(rng.floats(s.C));
    kernels::cpu::layernorm_backward(cpu, dinp.cpu(), dw.cpu(), db.cpu(), dout.cpu(), inp.cpu(), w.cpu(),
                                     mean_in.cpu(), rstd_in.cpu(), s.N, s.C);
    auto run_bwd = [&] {
      kernels::cuda::layernorm_backward(cuda.ctx(), dinp.gpu(), dw.gpu(), db.gpu(), dout.gpu(), inp.gpu(), w.gpu(),
                                        mean_in.gpu(), rstd_in.gpu(), s.N, s.C);
    };
    run_bwd();
    const auto di = dinp.download(), dwv = dw.download(), dbv = db.download();
    expect_close(di, dinp.host(), 1e-5, atol, "layernorm dinp");
    // dweight/dbias sum N rows (terms <= ~2): chunked order vs sequential; bound 2e-6 * sqrt(N) absolute.
    const double atol_rows = 2e-6 * std::sqrt(static_cast<double>(s.N)) + 1e-6;
    expect_close(dwv, dw.host(), 1e-5, atol_rows, "layernorm dweight");
    expect_close(dbv, db.host(), 1e-5, atol_rows, "layernorm dbias");
    expect_rerun_bitwise(run_bwd, {&dinp, &dw, &db}, {di, dwv, dbv}, cuda);
  }
}

TEST(CudaLayernorm, FusedResidualForwardEqualsAddThenLayernorm) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaLayernorm.FusedResidualForwardEqualsAddThenLayernorm");
  CudaContext cuda;
  const auto cpu = cpu_context();
  struct Shape { int N, C; };
  for (const Shape s : cases<Shape>({{1, 1}, {9, 47}, {257, 768}}, 2)) {
    const size_t nc = static_cast<size_t>(s.N) * s.C;
    Twin<float> a(rng.floats(nc, -1.0f, 3.0f)), b(rng.floats(nc)), w(rng.floats(s.C, 0.5f, 1.5f)), bias(rng.floats(s.C));
    Twin<float> residual(Twin<float>::nans(nc)), out(Twin<float>::nans(nc));
    Twin<float> mean(Twin<float>::nans(s.N)), rstd(Twin<float>::nans(s.N));
    kernels::cpu::add_forward(cpu, residual.cpu(), a.cpu(), b.cpu(), nc);
    kernels::cpu::layernorm_forward(cpu, out.cpu(), mean.cpu(), rstd.cpu(), residual.cpu(), w.cpu(), bias.cpu(), s.N,
                                    s.C);
    auto run = [&] {
      kernels::cuda::residual_layernorm_forward(cuda.ctx(), residual.gpu(), out.gpu(), mean.gpu(), rstd.gpu(), a.gpu(),
                                                b.gpu(), w.gpu(), bias.gpu(), s.N, s.C);
    };
    run();
    const auto r = residual.download(), o = out.download(), m = mean.download(), sd = rstd.download();
    expect_bitwise_equal(r, residual.host(), "fused residual");  // one IEEE addition per element
    const double atol = 1e-5 * std::sqrt(s.C / 64.0 + 1.0);      // as in ForwardBackward above
    expect_close(o, out.host(), 1e-5, atol, "fused layernorm out");
    expect_close(m, mean.host(), 1e-5, atol, "fused layernorm mean");
    expect_close(sd, rstd.host(), 1e-5, atol, "fused layernorm rstd");
    expect_rerun_bitwise(run, {&residual, &out, &mean, &rstd}, {r, o, m, sd}, cuda);
  }
}

}  // namespace
}  // namespace resbm_test
