// tests/kernels/cuda/emulated_blas.h: what an emulated .cu file (emulated_cuda_test) sees instead of
// kernels/cuda/blas.h: the same functions without cuBLAS. sgemm_strided_batched (attention.cu's products) runs
// reference_gemm.h's host GEMM, so that the kernels between the GEMMs (the causal softmax) run emulated; cuBLAS itself
// is not tested here. lt_matmul (cuBLASLt: bf16 operands, GELU epilogues) is not emulated: calling it aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "kernels/context.h"
#include "kernels/cuda/gemm_plans.h"
#include "tests/kernels/cuda/reference_gemm.h"

namespace kernels::cuda {

[[noreturn]] inline void emulated_gemm_unavailable(const char* who) {
  std::fprintf(stderr, "%s: cuBLASLt GEMMs are not emulated on the CPU\n", who);
  std::abort();
}

inline void lt_matmul(const KernelContext&, const GemmDesc&, const char* who) { emulated_gemm_unavailable(who); }

inline void sgemm_strided_batched(const KernelContext&, const GemmDesc& g, const char* who) {
  if (g.a_type != GemmType::f32 || g.b_type != GemmType::f32 || g.c_type != GemmType::f32 || g.gelu) {
    emulated_gemm_unavailable(who);
  }
  resbm_test::reference_gemm(g, [](const float*, const char*) {});  // the guard zones catch strays past a buffer
}

}  // namespace kernels::cuda
