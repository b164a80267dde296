// tests/kernels/cuda/reference_gemm.h: cuBLAS's column-major GEMM semantics (kernels/cuda/gemm_plans.h's GemmDesc,
// fp32 operands, no epilogue but a bias) executed on the host, accumulated in double. Used by gemm_plans_test (which
// checks every element access against the buffers) and by emulated_blas.h (the GEMMs of emulated .cu files).
#pragma once

#include <cstddef>

#include "kernels/cuda/gemm_plans.h"

namespace resbm_test {

// C_i = alpha op(A_i) op(B_i) + beta C_i (+ bias), i < g.batch. beta == 0 ignores C's old contents, as cuBLAS does
// (so NaN poison in C is allowed). check(pointer, "A" / "B" / "C") is called before every element access.
template <typename Check>
void reference_gemm(const kernels::cuda::GemmDesc& g, Check check) {
  for (int i = 0; i < g.batch; i++) {
    const float* A = static_cast<const float*>(g.a) + i * g.stride_a;
    const float* B = static_cast<const float*>(g.b) + i * g.stride_b;
    float* C = static_cast<float*>(g.c) + i * g.stride_c;
    for (int col = 0; col < g.n; col++) {
      for (int row = 0; row < g.m; row++) {
        double acc = 0.0;
        for (int p = 0; p < g.k; p++) {
          const size_t r = row, q = p, j = col;
          const float* a = g.trans_a ? &A[q + r * g.lda] : &A[r + q * g.lda];
          const float* b = g.trans_b ? &B[j + q * g.ldb] : &B[q + j * g.ldb];
          check(a, "A");
          check(b, "B");
          acc += static_cast<double>(*a) * *b;
        }
        float* c = &C[row + static_cast<size_t>(col) * g.ldc];
        check(c, "C");
        double v = g.alpha * acc + (g.beta != 0.0f ? g.beta * static_cast<double>(*c) : 0.0);
        if (g.bias != nullptr) v += static_cast<const float*>(g.bias)[row];
        *c = static_cast<float>(v);
      }
    }
  }
}

}  // namespace resbm_test
