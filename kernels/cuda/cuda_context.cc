// kernels/cuda/cuda_context.cc: make_cuda_context / destroy_cuda_context (see the header).
#include "kernels/cuda/cuda_context.h"

#include <cstdio>
#include <cstdlib>

#ifdef RESBM_HAVE_CUDA
#include "kernels/cuda/blas.h"
#include "kernels/cuda/cuda_check.h"
#endif

namespace kernels::cuda {

#ifdef RESBM_HAVE_CUDA

KernelContext make_cuda_context(size_t workspace_bytes) {
  KernelContext ctx;
  cudaStream_t stream;
  CUDA_CHECK(cudaStreamCreate(&stream));  // blocking: synchronous copies on the legacy stream order after it
  cublasLtHandle_t lt;
  CUBLAS_CHECK(cublasLtCreate(&lt));
  cublasHandle_t blas;
  CUBLAS_CHECK(cublasCreate(&blas));
  CUBLAS_CHECK(cublasSetStream(blas, stream));
  ctx.cuda_stream = stream;
  ctx.cublaslt_handle = lt;
  ctx.cublas_handle = blas;
  ctx.cuda_workspace_bytes = workspace_bytes;
  ctx.cuda_gemm_plans = create_lt_plan_cache();
  CUDA_CHECK(cudaMalloc(&ctx.cuda_workspace, workspace_bytes));
  return ctx;
}

void destroy_cuda_context(KernelContext& ctx) {
  CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(ctx.cuda_stream)));
  destroy_lt_plan_cache(static_cast<LtPlanCache*>(ctx.cuda_gemm_plans));
  CUDA_CHECK(cudaFree(ctx.cuda_workspace));
  CUBLAS_CHECK(cublasDestroy(static_cast<cublasHandle_t>(ctx.cublas_handle)));
  CUBLAS_CHECK(cublasLtDestroy(static_cast<cublasLtHandle_t>(ctx.cublaslt_handle)));
  CUDA_CHECK(cudaStreamDestroy(static_cast<cudaStream_t>(ctx.cuda_stream)));
  ctx = KernelContext();
}

#else

KernelContext make_cuda_context(size_t) {
  std::fprintf(stderr, "kernels::cuda::make_cuda_context: built without CUDA (--config=nocuda)\n");
  std::abort();
}

void destroy_cuda_context(KernelContext&) {}

#endif

}  // namespace kernels::cuda
