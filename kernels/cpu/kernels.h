// kernels/cpu/kernels.h: the CPU reference kernels, fp32. Every CUDA kernel in kernels/cuda/ has the same signature.
//
// Conventions, shared by the CUDA twins:
// - Raw pointers to contiguous row-major memory; shapes in the comments (B, T, C, NH, V, Vp as in GPT-2; N = rows).
// - Forward kernels write (=) their outputs.
// - Backward kernels ACCUMULATE (+=) into every gradient they produce, input and parameter gradients alike. The
//   autograd tape zeroes activation gradients once per step, so fan-out (the residual stream) needs no special case.
// - Deterministic: same inputs, same bits. No atomics in reductions; reduction order fixed for a given size.
// - Matmul weights use llm.c's layout: weight (OC, C), out = inp @ weight^T + bias.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/context.h"

namespace kernels::cpu {

// ---- embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:]
void embedding_forward(const KernelContext& ctx, float* out /*(B,T,C)*/, const int32_t* tokens /*(B,T)*/,
                       const float* wte /*(Vp,C)*/, const float* wpe /*(maxT,C)*/, int B, int T, int C);
void embedding_backward(const KernelContext& ctx, float* dwte /*(Vp,C) +=*/, float* dwpe /*(maxT,C) +=*/,
                        const float* dout /*(B,T,C)*/, const int32_t* tokens /*(B,T)*/, int B, int T, int C);

// ---- layernorm over the last dim, eps = 1e-5; mean and rstd are saved for the backward pass
void layernorm_forward(const KernelContext& ctx, float* out /*(N,C)*/, float* mean /*(N)*/, float* rstd /*(N)*/,
                       const float* inp /*(N,C)*/, const float* weight /*(C)*/, const float* bias /*(C)*/, int N,
                       int C);
void layernorm_backward(const KernelContext& ctx, float* dinp /*(N,C) +=*/, float* dweight /*(C) +=*/,
                        float* dbias /*(C) +=*/, const float* dout /*(N,C)*/, const float* inp /*(N,C)*/,
                        const float* weight /*(C)*/, const float* mean /*(N)*/, const float* rstd /*(N)*/, int N,
                        int C);

// ---- matmul: out = inp @ weight^T + bias (bias may be null). OpenBLAS sgemm on the CPU.
void matmul_forward(const KernelContext& ctx, float* out /*(N,OC)*/, const float* inp /*(N,C)*/,
                    const float* weight /*(OC,C)*/, const float* bias /*(OC) or null*/, int N, int C, int OC);
// dinp may be null (input needs no gradient); dbias may be null (no bias).
void matmul_backward(const KernelContext& ctx, float* dinp /*(N,C) += or null*/, float* dweight /*(OC,C) +=*/,
                     float* dbias /*(OC) += or null*/, const float* dout /*(N,OC)*/, const float* inp /*(N,C)*/,
                     const float* weight /*(OC,C)*/, int N, int C, int OC);

// ---- GELU, tanh approximation (GPT-2's)
void gelu_forward(const KernelContext& ctx, float* out /*(N)*/, const float* inp /*(N)*/, size_t N);
void gelu_backward(const KernelContext& ctx, float* dinp /*(N) +=*/, const float* inp /*(N)*/,
                   const float* dout /*(N)*/, size_t N);

// ---- elementwise helpers
void add_forward(const KernelContext& ctx, float* out, const float* a, const float* b, size_t N);  // out = a + b
void accumulate(const KernelContext& ctx, float* dst /*+=*/, const float* src, size_t N);         // dst += src
void scale_inplace(const KernelContext& ctx, float* x, float s, size_t N);                        // x *= s
void fill(const KernelContext& ctx, float* x, float value, size_t N);                             // x = value

// ---- causal multi-head self-attention over a fused qkv tensor (q, k, v each C = NH * HS wide, in that order).
// att keeps the softmax probabilities for the backward pass; scale 1/sqrt(HS); position t attends to 0..t.
void attention_forward(const KernelContext& ctx, float* out /*(B,T,C)*/, float* att /*(B,NH,T,T)*/,
                       const float* qkv /*(B,T,3C)*/, int B, int T, int C, int NH);
// datt is scratch of att's size (overwritten).
void attention_backward(const KernelContext& ctx, float* dqkv /*(B,T,3C) +=*/, float* datt /*(B,NH,T,T) scratch*/,
                        const float* dout /*(B,T,C)*/, const float* qkv /*(B,T,3C)*/, const float* att /*(B,NH,T,T)*/,
                        int B, int T, int C, int NH);

// ---- fused softmax + cross-entropy over the first V of Vp (padded) columns.
// losses[i] = -log softmax(logits[i,:V])[targets[i]]; probs keeps the softmax (padded columns 0).
void softmax_crossentropy_forward(const KernelContext& ctx, float* losses /*(N)*/, float* probs /*(N,Vp)*/,
                                  const float* logits /*(N,Vp)*/, const int32_t* targets /*(N)*/, int N, int V,
                                  int Vp);
// dlogits[i,j] += dloss_scale * (probs[i,j] - [j == targets[i]]) for j < V; padded columns get nothing.
void softmax_crossentropy_backward(const KernelContext& ctx, float* dlogits /*(N,Vp) +=*/,
                                   const float* probs /*(N,Vp)*/, const int32_t* targets /*(N)*/,
                                   float dloss_scale, int N, int V, int Vp);

// ---- reductions (fixed order: deterministic)
void mean_forward(const KernelContext& ctx, float* out /*(1)*/, const float* inp /*(N)*/, size_t N);
// out[0] = sum of x[i]^2, accumulated in double then rounded, in a fixed order (global grad norm).
void sum_squares(const KernelContext& ctx, float* out /*(1)*/, const float* x /*(N)*/, size_t N);

// ---- column slices, for the ResBM identity path P = [I_K; 0] (the first K of C channels)
// out[n,:] = inp[n, offset : offset+K]
void slice_columns_forward(const KernelContext& ctx, float* out /*(N,K)*/, const float* inp /*(N,C)*/, int N, int C,
                           int offset, int K);
// dinp[n, offset : offset+K] += dout[n,:]
void slice_columns_backward(const KernelContext& ctx, float* dinp /*(N,C) +=*/, const float* dout /*(N,K)*/, int N,
                            int C, int offset, int K);

// ---- 8-bit codes on the wire (kernels/int8_code.h): per-row absmax scale, q = round(x / scale), scale = absmax / 127
// (0 rows: scale 1; a row with a NaN or an inf: scale NaN, codes 0, so it decodes to NaN). Round to nearest even,
// or stochastically from hash(seed, n*K + k) (unbiased: for code gradients).
void quantize_rows_int8(const KernelContext& ctx, int8_t* q /*(N,K)*/, float* scales /*(N)*/,
                        const float* x /*(N,K)*/, int N, int K);
void quantize_rows_int8_stochastic(const KernelContext& ctx, int8_t* q /*(N,K)*/, float* scales /*(N)*/,
                                   const float* x /*(N,K)*/, int N, int K, uint64_t seed);
void dequantize_rows_int8(const KernelContext& ctx, float* x /*(N,K)*/, const int8_t* q /*(N,K)*/,
                          const float* scales /*(N)*/, int N, int K);

// ---- bf16 codes on the wire: round to nearest even (NaN stays NaN), and back (exact)
void float_to_bf16(const KernelContext& ctx, uint16_t* out /*(N)*/, const float* inp /*(N)*/, size_t N);
void bf16_to_float(const KernelContext& ctx, float* out /*(N)*/, const uint16_t* inp /*(N)*/, size_t N);

// ---- AdamW on one contiguous parameter block; t is the 1-based step. grad_scale multiplies the gradient first
// (gradient clipping); weight_decay is decoupled and the caller passes 0 for tensors that must not decay.
void adamw_update(const KernelContext& ctx, float* params /*(N)*/, const float* grads /*(N)*/, float* m /*(N)*/,
                  float* v /*(N)*/, size_t N, float lr, float beta1, float beta2, float eps, float weight_decay,
                  float grad_scale, int t);

// ---- added after the first interface commit (the CUDA twins follow the same signatures)
// dst += s * src (the backward pass of scale; optimizer momentum)
void axpy(const KernelContext& ctx, float* dst /*(N) +=*/, const float* src /*(N)*/, float s, size_t N);
// General row-major GEMM: C (M,N) = alpha * op(A) @ op(B) + beta * C, op(X) = X^T when trans_X. op(A) is (M,K),
// op(B) is (K,N); A is stored (M,K) or, transposed, (K,M); B (K,N) or (N,K). Muon's Newton-Schulz iteration.
void gemm(const KernelContext& ctx, float* c /*(M,N)*/, const float* a, const float* b, int M, int N, int K,
          bool trans_a, bool trans_b, float alpha, float beta);

}  // namespace kernels::cpu
