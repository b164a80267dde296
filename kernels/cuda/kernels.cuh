// kernels/cuda/kernels.cuh: the CUDA twins of kernels/cpu/kernels.h (identical signatures, device pointers), plus
// the fused extras only the GPU has. Plain C++: declarations only, no CUDA headers, so engine code may include it.
//
// Semantics, shapes and conventions are those of kernels/cpu/kernels.h (forward kernels write, backward kernels
// accumulate, deterministic without atomics). Every pointer is device memory; every kernel is queued on
// ctx.cuda_stream and returns without synchronising. Scalar outputs (mean_forward, sum_squares) are device
// pointers too. Kernels that need scratch (embedding_backward, layernorm_backward, matmul_backward's dbias, the
// reductions) take it from ctx.cuda_workspace and abort with the size needed when it is too small.
// tests/kernels/cuda/signatures_test.cc checks at compile time that every twin's type equals the CPU one.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/context.h"

namespace kernels::cuda {

// ---- embedding (backward: positions bucketed by token with a stable radix sort, then summed in position order)
void embedding_forward(const KernelContext& ctx, float* out /*(B,T,C)*/, const int32_t* tokens /*(B,T)*/,
                       const float* wte /*(Vp,C)*/, const float* wpe /*(maxT,C)*/, int B, int T, int C);
void embedding_backward(const KernelContext& ctx, float* dwte /*(Vp,C) +=*/, float* dwpe /*(maxT,C) +=*/,
                        const float* dout /*(B,T,C)*/, const int32_t* tokens /*(B,T)*/, int B, int T, int C);

// ---- layernorm (eps 1e-5)
void layernorm_forward(const KernelContext& ctx, float* out /*(N,C)*/, float* mean /*(N)*/, float* rstd /*(N)*/,
                       const float* inp /*(N,C)*/, const float* weight /*(C)*/, const float* bias /*(C)*/, int N,
                       int C);
void layernorm_backward(const KernelContext& ctx, float* dinp /*(N,C) +=*/, float* dweight /*(C) +=*/,
                        float* dbias /*(C) +=*/, const float* dout /*(N,C)*/, const float* inp /*(N,C)*/,
                        const float* weight /*(C)*/, const float* mean /*(N)*/, const float* rstd /*(N)*/, int N,
                        int C);

// Fused extra (its CPU equivalent is add_forward then layernorm_forward): residual = a + b, out = layernorm(residual).
// One pass over each row instead of three; the transformer block's "x + attn(x)" followed by the next norm.
void residual_layernorm_forward(const KernelContext& ctx, float* residual /*(N,C)*/, float* out /*(N,C)*/,
                                float* mean /*(N)*/, float* rstd /*(N)*/, const float* a /*(N,C)*/,
                                const float* b /*(N,C)*/, const float* weight /*(C)*/, const float* bias /*(C)*/,
                                int N, int C);

// ---- matmul through cuBLASLt (fp32 compute, no TF32): out = inp @ weight^T + bias (bias epilogue)
void matmul_forward(const KernelContext& ctx, float* out /*(N,OC)*/, const float* inp /*(N,C)*/,
                    const float* weight /*(OC,C)*/, const float* bias /*(OC) or null*/, int N, int C, int OC);
void matmul_backward(const KernelContext& ctx, float* dinp /*(N,C) += or null*/, float* dweight /*(OC,C) +=*/,
                     float* dbias /*(OC) += or null*/, const float* dout /*(N,OC)*/, const float* inp /*(N,C)*/,
                     const float* weight /*(OC,C)*/, int N, int C, int OC);
// Fused extra (no CPU twin of its own: it equals matmul_forward then gelu_forward): out = gelu(inp @ weight^T +
// bias) through cuBLASLt's GELU_AUX_BIAS epilogue; pre_gelu keeps the pre-activation for gelu_backward.
void matmul_gelu_forward(const KernelContext& ctx, float* out /*(N,OC)*/, float* pre_gelu /*(N,OC)*/,
                         const float* inp /*(N,C)*/, const float* weight /*(OC,C)*/, const float* bias /*(OC)*/,
                         int N, int C, int OC);

// ---- GELU (tanh approximation)
void gelu_forward(const KernelContext& ctx, float* out /*(N)*/, const float* inp /*(N)*/, size_t N);
void gelu_backward(const KernelContext& ctx, float* dinp /*(N) +=*/, const float* inp /*(N)*/,
                   const float* dout /*(N)*/, size_t N);

// ---- elementwise helpers
void add_forward(const KernelContext& ctx, float* out, const float* a, const float* b, size_t N);  // out = a + b
void accumulate(const KernelContext& ctx, float* dst /*+=*/, const float* src, size_t N);         // dst += src
void scale_inplace(const KernelContext& ctx, float* x, float s, size_t N);                        // x *= s
void fill(const KernelContext& ctx, float* x, float value, size_t N);                             // x = value
void axpy(const KernelContext& ctx, float* dst /*(N) +=*/, const float* src /*(N)*/, float s, size_t N);  // dst += s*src

// ---- general row-major GEMM (Muon's Newton-Schulz): C (M,N) = alpha * op(A) @ op(B) + beta * C, via cuBLAS
void gemm(const KernelContext& ctx, float* c /*(M,N)*/, const float* a, const float* b, int M, int N, int K,
          bool trans_a, bool trans_b, float alpha, float beta);

// ---- causal attention: cuBLAS strided-batched GEMMs (per batch row, batched over heads) + a fused causal softmax
void attention_forward(const KernelContext& ctx, float* out /*(B,T,C)*/, float* att /*(B,NH,T,T)*/,
                       const float* qkv /*(B,T,3C)*/, int B, int T, int C, int NH);
void attention_backward(const KernelContext& ctx, float* dqkv /*(B,T,3C) +=*/, float* datt /*(B,NH,T,T) scratch*/,
                        const float* dout /*(B,T,C)*/, const float* qkv /*(B,T,3C)*/, const float* att /*(B,NH,T,T)*/,
                        int B, int T, int C, int NH);

// ---- fused softmax + cross-entropy over the first V of Vp columns
void softmax_crossentropy_forward(const KernelContext& ctx, float* losses /*(N)*/, float* probs /*(N,Vp)*/,
                                  const float* logits /*(N,Vp)*/, const int32_t* targets /*(N)*/, int N, int V,
                                  int Vp);
void softmax_crossentropy_backward(const KernelContext& ctx, float* dlogits /*(N,Vp) +=*/,
                                   const float* probs /*(N,Vp)*/, const int32_t* targets /*(N)*/,
                                   float dloss_scale, int N, int V, int Vp);

// ---- reductions in double, two passes (fixed per-block partials, then one block in order): deterministic
void mean_forward(const KernelContext& ctx, float* out /*(1)*/, const float* inp /*(N)*/, size_t N);
void sum_squares(const KernelContext& ctx, float* out /*(1)*/, const float* x /*(N)*/, size_t N);

// ---- column slices (the ResBM identity path)
void slice_columns_forward(const KernelContext& ctx, float* out /*(N,K)*/, const float* inp /*(N,C)*/, int N, int C,
                           int offset, int K);
void slice_columns_backward(const KernelContext& ctx, float* dinp /*(N,C) +=*/, const float* dout /*(N,K)*/, int N,
                            int C, int offset, int K);

// ---- codes on the wire
void quantize_rows_int8(const KernelContext& ctx, int8_t* q /*(N,K)*/, float* scales /*(N)*/,
                        const float* x /*(N,K)*/, int N, int K);
void quantize_rows_int8_stochastic(const KernelContext& ctx, int8_t* q /*(N,K)*/, float* scales /*(N)*/,
                                   const float* x /*(N,K)*/, int N, int K, uint64_t seed);
void dequantize_rows_int8(const KernelContext& ctx, float* x /*(N,K)*/, const int8_t* q /*(N,K)*/,
                          const float* scales /*(N)*/, int N, int K);
void float_to_bf16(const KernelContext& ctx, uint16_t* out /*(N)*/, const float* inp /*(N)*/, size_t N);
void bf16_to_float(const KernelContext& ctx, float* out /*(N)*/, const uint16_t* inp /*(N)*/, size_t N);

// ---- AdamW (fp32 parameters and state)
void adamw_update(const KernelContext& ctx, float* params /*(N)*/, const float* grads /*(N)*/, float* m /*(N)*/,
                  float* v /*(N)*/, size_t N, float lr, float beta1, float beta2, float eps, float weight_decay,
                  float grad_scale, int t);

}  // namespace kernels::cuda
