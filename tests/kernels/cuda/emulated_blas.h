// tests/kernels/cuda/emulated_blas.h: what an emulated .cu file (emulated_cuda_test) sees instead of
// kernels/cuda/blas.h: the same declarations without cuBLAS. The GEMMs are not emulated: calling one aborts, so
// only the custom kernels of a file that also issues GEMMs (bf16.cu) can run emulated.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "kernels/context.h"
#include "kernels/cuda/gemm_plans.h"

namespace kernels::cuda {

[[noreturn]] inline void emulated_gemm_unavailable(const char* who) {
  std::fprintf(stderr, "%s: the GEMMs (cuBLAS / cuBLASLt) are not emulated on the CPU\n", who);
  std::abort();
}

inline void lt_matmul(const KernelContext&, const GemmDesc&, const char* who) { emulated_gemm_unavailable(who); }
inline void sgemm_strided_batched(const KernelContext&, const GemmDesc&, const char* who) {
  emulated_gemm_unavailable(who);
}

}  // namespace kernels::cuda
