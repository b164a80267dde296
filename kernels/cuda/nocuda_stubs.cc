// kernels/cuda/nocuda_stubs.cc: what //kernels/cuda:kernels holds in a
// --config=nocuda build: every CUDA kernel declared in kernels.cuh and
// bf16.cuh, each aborting with a message. Code that includes those headers then
// links in both builds (the CUDA tests skip before any call; engine code checks
// RESBM_HAVE_CUDA first), and a call that slips through says what happened
// instead of failing to link.
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

[[noreturn]] void no_cuda(const char *kernel) {
  std::fprintf(stderr,
               "kernels::cuda::%s called in a build without CUDA (--config=nocuda)\n"
               "  hint: build on a machine with the CUDA toolkit, without "
               "--config=nocuda, or use the CPU device.\n",
               kernel);
  std::abort();
}

}  // namespace

void embedding_forward(const KernelContext&, float*, const int32_t*, const float*, const float*, int, int, int) {
  no_cuda("embedding_forward");
}

void embedding_backward(const KernelContext&, float*, float*, const float*, const int32_t*, int, int, int) {
  no_cuda("embedding_backward");
}

void layernorm_forward(const KernelContext&, float*, float*, float*, const float*, const float*, const float*,
                       int, int) {
  no_cuda("layernorm_forward");
}

void layernorm_backward(const KernelContext&, float*, float*, float*, const float*, const float*, const float*,
                        const float*, const float*, int, int) {
  no_cuda("layernorm_backward");
}

void residual_layernorm_forward(const KernelContext&, float*, float*, float*, float*, const float*, const float*,
                                const float*, const float*, int, int) {
  no_cuda("residual_layernorm_forward");
}

void matmul_forward(const KernelContext&, float*, const float*, const float*, const float*, int, int, int) {
  no_cuda("matmul_forward");
}

void matmul_backward(const KernelContext&, float*, float*, float*, const float*, const float*, const float*, int,
                     int, int) {
  no_cuda("matmul_backward");
}

void matmul_gelu_forward(const KernelContext&, float*, float*, const float*, const float*, const float*, int, int,
                         int) {
  no_cuda("matmul_gelu_forward");
}

void gelu_forward(const KernelContext&, float*, const float*, size_t) { no_cuda("gelu_forward"); }

void gelu_backward(const KernelContext&, float*, const float*, const float*, size_t) { no_cuda("gelu_backward"); }

void add_forward(const KernelContext&, float*, const float*, const float*, size_t) { no_cuda("add_forward"); }

void accumulate(const KernelContext&, float*, const float*, size_t) { no_cuda("accumulate"); }

void scale_inplace(const KernelContext&, float*, float, size_t) { no_cuda("scale_inplace"); }

void fill(const KernelContext&, float*, float, size_t) { no_cuda("fill"); }

void axpy(const KernelContext&, float*, const float*, float, size_t) { no_cuda("axpy"); }

void gemm(const KernelContext&, float*, const float*, const float*, int, int, int, bool, bool, float, float) {
  no_cuda("gemm");
}

void attention_forward(const KernelContext&, float*, float*, const float*, int, int, int, int) {
  no_cuda("attention_forward");
}

void attention_backward(const KernelContext&, float*, float*, const float*, const float*, const float*, int, int,
                        int, int) {
  no_cuda("attention_backward");
}

void softmax_crossentropy_forward(const KernelContext&, float*, float*, const float*, const int32_t*, int, int,
                                  int) {
  no_cuda("softmax_crossentropy_forward");
}

void softmax_crossentropy_backward(const KernelContext&, float*, const float*, const int32_t*, float, int, int,
                                   int) {
  no_cuda("softmax_crossentropy_backward");
}

void mean_forward(const KernelContext&, float*, const float*, size_t) { no_cuda("mean_forward"); }

void sum_squares(const KernelContext&, float*, const float*, size_t) { no_cuda("sum_squares"); }

void slice_columns_forward(const KernelContext&, float*, const float*, int, int, int, int) {
  no_cuda("slice_columns_forward");
}

void slice_columns_backward(const KernelContext&, float*, const float*, int, int, int, int) {
  no_cuda("slice_columns_backward");
}

void quantize_rows_int8(const KernelContext&, int8_t*, float*, const float*, int, int) {
  no_cuda("quantize_rows_int8");
}

void quantize_rows_int8_stochastic(const KernelContext&, int8_t*, float*, const float*, int, int, uint64_t) {
  no_cuda("quantize_rows_int8_stochastic");
}

void dequantize_rows_int8(const KernelContext&, float*, const int8_t*, const float*, int, int) {
  no_cuda("dequantize_rows_int8");
}

void float_to_bf16(const KernelContext&, uint16_t*, const float*, size_t) { no_cuda("float_to_bf16"); }

void bf16_to_float(const KernelContext&, float*, const uint16_t*, size_t) { no_cuda("bf16_to_float"); }

void adamw_update(const KernelContext&, float*, const float*, float*, float*, size_t, float, float, float, float,
                  float, float, int) {
  no_cuda("adamw_update");
}

void float_to_bf16_stochastic(const KernelContext&, uint16_t*, const float*, size_t, uint64_t) {
  no_cuda("float_to_bf16_stochastic");
}

void adamw_update_bf16(const KernelContext&, uint16_t*, float*, const float*, float*, float*, size_t, float,
                       float, float, float, float, float, int, uint64_t) {
  no_cuda("adamw_update_bf16");
}

void matmul_forward_bf16(const KernelContext&, uint16_t*, const uint16_t*, const uint16_t*, const uint16_t*, int,
                         int, int) {
  no_cuda("matmul_forward_bf16");
}

void matmul_backward_bf16(const KernelContext&, uint16_t*, float*, float*, const uint16_t*, const uint16_t*,
                          const uint16_t*, int, int, int) {
  no_cuda("matmul_backward_bf16");
}

// The bf16 activation kernels (bf16_*.cu).
void embedding_forward_bf16(const KernelContext&, uint16_t*, const int32_t*, const uint16_t*, const uint16_t*, int,
                            int, int) {
  no_cuda("embedding_forward_bf16");
}

void embedding_backward_bf16(const KernelContext&, float*, float*, const uint16_t*, const int32_t*, int, int, int) {
  no_cuda("embedding_backward_bf16");
}

void layernorm_forward_bf16(const KernelContext&, uint16_t*, float*, float*, const uint16_t*, const uint16_t*,
                            const uint16_t*, int, int) {
  no_cuda("layernorm_forward_bf16");
}

void residual_layernorm_forward_bf16(const KernelContext&, uint16_t*, uint16_t*, float*, float*, const uint16_t*,
                                     const uint16_t*, const uint16_t*, const uint16_t*, int, int) {
  no_cuda("residual_layernorm_forward_bf16");
}

void layernorm_backward_bf16(const KernelContext&, uint16_t*, float*, float*, const uint16_t*, const uint16_t*,
                             const uint16_t*, const float*, const float*, int, int) {
  no_cuda("layernorm_backward_bf16");
}

void gelu_forward_bf16(const KernelContext&, uint16_t*, const uint16_t*, size_t) { no_cuda("gelu_forward_bf16"); }

void gelu_backward_bf16(const KernelContext&, uint16_t*, const uint16_t*, const uint16_t*, size_t) {
  no_cuda("gelu_backward_bf16");
}

void attention_forward_bf16(const KernelContext&, uint16_t*, uint16_t*, const uint16_t*, int, int, int, int) {
  no_cuda("attention_forward_bf16");
}

void attention_backward_bf16(const KernelContext&, uint16_t*, uint16_t*, const uint16_t*, const uint16_t*,
                             const uint16_t*, int, int, int, int) {
  no_cuda("attention_backward_bf16");
}

void flash_attention_forward_bf16(const KernelContext&, uint16_t*, float*, const uint16_t*, int, int, int, int) {
  no_cuda("flash_attention_forward_bf16");
}

void flash_attention_backward_bf16(const KernelContext&, uint16_t*, const uint16_t*, const uint16_t*, const float*,
                                   const uint16_t*, int, int, int, int) {
  no_cuda("flash_attention_backward_bf16");
}

void softmax_crossentropy_fused_bf16(const KernelContext&, float*, uint16_t*, const int32_t*, float, int, int, int) {
  no_cuda("softmax_crossentropy_fused_bf16");
}

void add_bf16(const KernelContext&, uint16_t*, const uint16_t*, const uint16_t*, size_t) { no_cuda("add_bf16"); }

void accumulate_bf16(const KernelContext&, uint16_t*, const uint16_t*, size_t) { no_cuda("accumulate_bf16"); }

void fill_bf16(const KernelContext&, uint16_t*, uint16_t, size_t) { no_cuda("fill_bf16"); }

void slice_columns_forward_bf16(const KernelContext&, uint16_t*, const uint16_t*, int, int, int, int) {
  no_cuda("slice_columns_forward_bf16");
}

void slice_columns_backward_bf16(const KernelContext&, uint16_t*, const uint16_t*, int, int, int, int) {
  no_cuda("slice_columns_backward_bf16");
}

}  // namespace kernels::cuda
