// tests/kernels/cuda/emulated_blas.h: what an emulated .cu file (emulated_cuda_test) sees instead of
// kernels/cuda/blas.h: the same functions without cuBLAS. sgemm_strided_batched (attention.cu's products) and
// lt_matmul with fp32 operands (matmul.cu's) run reference_gemm.h's host GEMM, so that the kernels around the GEMMs
// (the causal softmax, the dbias column sums) run emulated; cuBLAS itself is not tested here. bf16 operands and the
// GELU epilogue are not emulated: such a call aborts.
#pragma once

#include <cstdio>
#include <cstdlib>

#include "kernels/context.h"
#include "kernels/cuda/gemm_plans.h"
#include "tests/kernels/cuda/reference_gemm.h"

namespace kernels::cuda {

[[noreturn]] inline void emulated_gemm_unavailable(const char* who) {
  std::fprintf(stderr, "%s: bf16 and GELU-epilogue GEMMs are not emulated on the CPU\n", who);
  std::abort();
}

// fp32 operands without the GELU epilogue only; the guard zones of the test's buffers catch strays past one.
inline void reference_gemm_or_die(const GemmDesc& g, const char* who) {
  if (g.a_type != GemmType::f32 || g.b_type != GemmType::f32 || g.c_type != GemmType::f32 || g.gelu) {
    emulated_gemm_unavailable(who);
  }
  resbm_test::reference_gemm(g, [](const float*, const char*) {});
}

inline void lt_matmul(const KernelContext&, const GemmDesc& g, const char* who) { reference_gemm_or_die(g, who); }
inline void sgemm_strided_batched(const KernelContext&, const GemmDesc& g, const char* who) {
  reference_gemm_or_die(g, who);
}

}  // namespace kernels::cuda
