// tests/kernels/cuda/lt_plan_cache_test.cc: the cuBLASLt plan cache (kernels/cuda/blas.h) on the GPU: one plan per
// GEMM shape, each call's own pointers, the same bits as planning every call. (Not emulated: the emulation replaces
// cuBLAS by a host reference, which has no plans.)
#include <vector>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/kernels.cuh"
#include "tests/kernels/cuda/cuda_test_util.h"

namespace resbm_test {
namespace {

// The cuBLASLt plan cache (ctx.cuda_gemm_plans, made by make_cuda_context): one plan per shape, and a cached plan
// takes each call's own pointers. Against a context without the cache (every call builds its plan): the same
// algorithm, so the same bits; a second bias buffer of the same shape must change the result through the cached
// descriptor (a stale bias pointer would not).
TEST(CudaLtPlanCache, ReusesPlansWithEachCallsPointers) {
  REQUIRE_CUDA_DEVICE();
  Rng rng("CudaLtPlanCache.ReusesPlansWithEachCallsPointers");
  CudaContext cuda;
  ASSERT_NE(cuda.ctx().cuda_gemm_plans, nullptr);
  const auto& cache = *static_cast<const kernels::cuda::LtPlanCache*>(cuda.ctx().cuda_gemm_plans);
  kernels::KernelContext uncached = cuda.ctx();
  uncached.cuda_gemm_plans = nullptr;
  const int N = 65, C = 768, OC = 3072;  // OC a multiple of 8 (the GELU epilogue's leading dimension)
  const size_t no = static_cast<size_t>(N) * OC;
  Twin<float> inp(rng.floats(static_cast<size_t>(N) * C)), w(rng.floats(static_cast<size_t>(OC) * C));
  Twin<float> bias1(rng.floats(OC)), bias2(rng.floats(OC));
  Twin<float> out(Twin<float>::nans(no)), pre(Twin<float>::nans(no)), ref(Twin<float>::nans(no));
  const size_t before = kernels::cuda::lt_plan_count(cache);
  for (Twin<float>* bias : {&bias1, &bias2}) {
    kernels::cuda::matmul_gelu_forward(cuda.ctx(), out.gpu(), pre.gpu(), inp.gpu(), w.gpu(), bias->gpu(), N, C, OC);
    const auto cached = out.download();
    kernels::cuda::matmul_gelu_forward(uncached, ref.gpu(), pre.gpu(), inp.gpu(), w.gpu(), bias->gpu(), N, C, OC);
    EXPECT_EQ(cached, ref.download()) << (bias == &bias1 ? "first bias" : "second bias");
  }
  EXPECT_EQ(kernels::cuda::lt_plan_count(cache), before + 1) << "one shape, one plan";
  // The two biases differ, so the two cached results must too: the descriptor took the second bias pointer.
  kernels::cuda::matmul_gelu_forward(cuda.ctx(), out.gpu(), pre.gpu(), inp.gpu(), w.gpu(), bias1.gpu(), N, C, OC);
  const auto first = out.download();
  kernels::cuda::matmul_gelu_forward(cuda.ctx(), out.gpu(), pre.gpu(), inp.gpu(), w.gpu(), bias2.gpu(), N, C, OC);
  EXPECT_NE(first, out.download());
  // Another shape: a second plan.
  kernels::cuda::matmul_forward(cuda.ctx(), out.gpu(), inp.gpu(), w.gpu(), nullptr, N, C, OC / 2);
  EXPECT_EQ(kernels::cuda::lt_plan_count(cache), before + 2);
}

}  // namespace
}  // namespace resbm_test
