// tests/kernels/cuda/signatures_test.cc: every CUDA twin has exactly the CPU kernel's type (checked at compile time,
// so this builds only if they agree; the declarations exist with and without CUDA), and the build flag is visible.
#include <gtest/gtest.h>

#include <type_traits>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_cpu_twin.h"
#include "kernels/cuda/kernels.cuh"

#define SAME_SIGNATURE(name)                                                                        \
  static_assert(std::is_same_v<decltype(&kernels::cpu::name), decltype(&kernels::cuda::name)>,      \
                "kernels::cuda::" #name " must have the signature of kernels::cpu::" #name)

SAME_SIGNATURE(embedding_forward);
SAME_SIGNATURE(embedding_backward);
SAME_SIGNATURE(layernorm_forward);
SAME_SIGNATURE(layernorm_backward);
SAME_SIGNATURE(matmul_forward);
SAME_SIGNATURE(matmul_backward);
SAME_SIGNATURE(gelu_forward);
SAME_SIGNATURE(gelu_backward);
SAME_SIGNATURE(add_forward);
SAME_SIGNATURE(accumulate);
SAME_SIGNATURE(scale_inplace);
SAME_SIGNATURE(fill);
SAME_SIGNATURE(axpy);
SAME_SIGNATURE(gemm);
SAME_SIGNATURE(attention_forward);
SAME_SIGNATURE(attention_backward);
SAME_SIGNATURE(softmax_crossentropy_forward);
SAME_SIGNATURE(softmax_crossentropy_backward);
SAME_SIGNATURE(mean_forward);
SAME_SIGNATURE(sum_squares);
SAME_SIGNATURE(slice_columns_forward);
SAME_SIGNATURE(slice_columns_backward);
SAME_SIGNATURE(quantize_rows_int8);
SAME_SIGNATURE(quantize_rows_int8_stochastic);
SAME_SIGNATURE(dequantize_rows_int8);
SAME_SIGNATURE(float_to_bf16);
SAME_SIGNATURE(bf16_to_float);
SAME_SIGNATURE(adamw_update);
// bf16 kernels and their twins in kernels/cuda/bf16_cpu_twin.h
SAME_SIGNATURE(float_to_bf16_stochastic);
SAME_SIGNATURE(adamw_update_bf16);
SAME_SIGNATURE(matmul_forward_bf16);
SAME_SIGNATURE(matmul_backward_bf16);
SAME_SIGNATURE(embedding_forward_bf16);
SAME_SIGNATURE(embedding_backward_bf16);
SAME_SIGNATURE(layernorm_forward_bf16);
SAME_SIGNATURE(residual_layernorm_forward_bf16);
SAME_SIGNATURE(layernorm_backward_bf16);
SAME_SIGNATURE(gelu_forward_bf16);
SAME_SIGNATURE(gelu_backward_bf16);
SAME_SIGNATURE(attention_forward_bf16);
SAME_SIGNATURE(attention_backward_bf16);
SAME_SIGNATURE(flash_attention_forward_bf16);
SAME_SIGNATURE(flash_attention_backward_bf16);
SAME_SIGNATURE(softmax_crossentropy_fused_bf16);
SAME_SIGNATURE(add_bf16);
SAME_SIGNATURE(accumulate_bf16);
SAME_SIGNATURE(fill_bf16);
SAME_SIGNATURE(slice_columns_forward_bf16);
SAME_SIGNATURE(slice_columns_backward_bf16);

namespace {

// The library defines RESBM_HAVE_CUDA exactly when it was compiled with nvcc; this records which build ran.
TEST(CudaBuild, FlagMatchesBuildConfig) {
#ifdef RESBM_HAVE_CUDA
  std::printf("RESBM_HAVE_CUDA defined: //kernels/cuda:kernels holds the nvcc-compiled kernels\n");
  SUCCEED();
#else
  GTEST_SKIP() << "built with --config=nocuda: //kernels/cuda:kernels is empty (nothing to check)";
#endif
}

}  // namespace
