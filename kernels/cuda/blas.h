// kernels/cuda/blas.h: the GEMM plumbing shared by matmul.cu and attention.cu: handles from the KernelContext
// (checked, bound to its stream) and one cuBLASLt matmul call with optional bias / GELU epilogues.
// Host-only C++; column-major (cuBLAS) conventions inside, row-major at the kernels' interface.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/context.h"

namespace kernels::cuda {

// The cuBLAS handle of the context, bound to its stream; aborts with a hint when the context has none.
cublasHandle_t cublas_of(const KernelContext& ctx, const char* who);

// One column-major GEMM through cuBLASLt, CUBLAS_COMPUTE_32F (fp32 accumulation, never TF32); operands fp32 by
// default, bf16 where a_type/b_type/c_type say so (the bias has c_type):
//   C (m,n) = alpha * op(A) @ op(B) + beta * C, then the epilogue (bias of length m added to each column; GELU).
// A is stored (m,k) with lda, or (k,m) when trans_a; B is stored (k,n), or (n,k) when trans_b.
struct LtGemm {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int lda = 0;
  const void* b = nullptr;
  int ldb = 0;
  void* c = nullptr;
  int ldc = 0;
  float alpha = 1.0f, beta = 0.0f;
  const void* bias = nullptr;  // (m) or null
  bool gelu = false;           // apply GELU (tanh) after the bias
  void* pre_gelu = nullptr;    // (m,n) ld ldc: the pre-activation, when gelu (cuBLASLt's aux output)
  cudaDataType_t a_type = CUDA_R_32F, b_type = CUDA_R_32F, c_type = CUDA_R_32F;
};
void lt_matmul(const KernelContext& ctx, const LtGemm& g, const char* who);

}  // namespace kernels::cuda
