// kernels/cuda/blas.h: runs the GEMMs that kernels/cuda/gemm_plans.h describes: cuBLASLt for single products (bias
// and GELU epilogues, fp32 or bf16 operands, always fp32 accumulation and never TF32) and cuBLAS strided-batched
// SGEMM for attention's per-head products; plus the checked handles of the KernelContext. Host-only C++.
#pragma once

#include <cublas_v2.h>

#include "kernels/context.h"
#include "kernels/cuda/gemm_plans.h"

namespace kernels::cuda {

// The cuBLAS handle of the context, bound to its stream; aborts with a hint when the context has none.
cublasHandle_t cublas_of(const KernelContext& ctx, const char* who);

// g.batch must be 1. Aborts with the shape when cuBLASLt has no algorithm for it. With ctx.cuda_gemm_plans set, the
// plan of each shape (descriptor, layouts, the heuristic's algorithm) is made once and reused.
void lt_matmul(const KernelContext& ctx, const GemmDesc& g, const char* who);

// cuBLASLt plans keyed by everything in a GemmDesc but its pointers (and alpha, beta), plus the pointers'
// alignments (the heuristic's choice depends on them): the heuristic runs once per shape, not once per GEMM. A
// step issues a few dozen shapes, so the cache is a short list. Not thread-safe: one per KernelContext.
class LtPlanCache;
LtPlanCache* create_lt_plan_cache();
void destroy_lt_plan_cache(LtPlanCache* cache);
size_t lt_plan_count(const LtPlanCache& cache);  // plans made so far

// fp32, no epilogue: cublasSgemmStridedBatched over g.batch products.
void sgemm_strided_batched(const KernelContext& ctx, const GemmDesc& g, const char* who);

}  // namespace kernels::cuda
