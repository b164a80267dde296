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

// g.batch must be 1. Aborts with the shape when cuBLASLt has no algorithm for it.
void lt_matmul(const KernelContext& ctx, const GemmDesc& g, const char* who);

// fp32, no epilogue: cublasSgemmStridedBatched over g.batch products.
void sgemm_strided_batched(const KernelContext& ctx, const GemmDesc& g, const char* who);

}  // namespace kernels::cuda
