// kernels/cuda/bf16_cpu_twin.h: the CPU twins of the bf16 kernels in kernels/cuda/bf16.cuh (same signatures, host
// pointers). They widen to fp32, run the fp32 CPU kernels, and round with the shared rules of bf16_rounding.h, so
// they define what the CUDA kernels must compute. Plain C++; builds with and without CUDA.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/context.h"

namespace kernels::cpu {

void float_to_bf16_stochastic(const KernelContext& ctx, uint16_t* out /*(N)*/, const float* inp /*(N)*/, size_t N,
                              uint64_t seed);
void adamw_update_bf16(const KernelContext& ctx, uint16_t* params /*(N) bf16*/, float* master /*(N)*/,
                       const float* grads /*(N)*/, float* m /*(N)*/, float* v /*(N)*/, size_t N, float lr, float beta1,
                       float beta2, float eps, float weight_decay, float grad_scale, int t, uint64_t seed);
void matmul_forward_bf16(const KernelContext& ctx, uint16_t* out /*(N,OC)*/, const uint16_t* inp /*(N,C)*/,
                         const uint16_t* weight /*(OC,C)*/, const uint16_t* bias /*(OC) or null*/, int N, int C,
                         int OC);
void matmul_backward_bf16(const KernelContext& ctx, uint16_t* dinp /*(N,C) += or null*/, float* dweight /*(OC,C) +=*/,
                          float* dbias /*(OC) += or null*/, const uint16_t* dout /*(N,OC)*/,
                          const uint16_t* inp /*(N,C)*/, const uint16_t* weight /*(OC,C)*/, int N, int C, int OC);

// ---- The bf16 activation kernels of the mixed-precision policy (docs/bf16_policy.md; engine/ops.cc calls them).
// One rule defines them all, and the CPU twins implement it literally: bf16 inputs are widened to fp32 (exact), the
// arithmetic is the fp32 CPU kernel's (kernels/cpu) in fp32, and every bf16 output is rounded to nearest even ONCE
// when it is stored; an output marked += widens its old value, adds the fp32 result, and rounds once. fp32 outputs
// (layernorm statistics, parameter gradients, losses) are never rounded to bf16. Where a kernel stores a bf16
// intermediate (attention's probabilities and its softmax gradient), the header says so: the CUDA kernels must round
// at the same points, so that the twins agree up to fp32 reduction order (and the bf16 step that order can flip).

// out (B,T,C) = wte[tokens] + wpe[t], the sum in fp32.
void embedding_forward_bf16(const KernelContext& ctx, uint16_t* out /*(B,T,C)*/, const int32_t* tokens /*(B,T)*/,
                            const uint16_t* wte /*(Vp,C)*/, const uint16_t* wpe /*(maxT,C)*/, int B, int T, int C);
// dwte, dwpe (fp32) += from a bf16 dout; deterministic, in the CPU's order (no atomics).
void embedding_backward_bf16(const KernelContext& ctx, float* dwte /*(Vp,C) +=*/, float* dwpe /*(maxT,C) +=*/,
                             const uint16_t* dout /*(B,T,C)*/, const int32_t* tokens /*(B,T)*/, int B, int T, int C);

// layernorm over C, eps 1e-5; mean and rstd in fp32.
void layernorm_forward_bf16(const KernelContext& ctx, uint16_t* out /*(N,C)*/, float* mean /*(N)*/,
                            float* rstd /*(N)*/, const uint16_t* inp /*(N,C)*/, const uint16_t* weight /*(C)*/,
                            const uint16_t* bias /*(C)*/, int N, int C);
// residual = round(inp1 + inp2) (stored), then out = layernorm(residual) computed from the ROUNDED residual.
void residual_layernorm_forward_bf16(const KernelContext& ctx, uint16_t* residual /*(N,C)*/, uint16_t* out /*(N,C)*/,
                                     float* mean /*(N)*/, float* rstd /*(N)*/, const uint16_t* inp1 /*(N,C)*/,
                                     const uint16_t* inp2 /*(N,C)*/, const uint16_t* weight /*(C)*/,
                                     const uint16_t* bias /*(C)*/, int N, int C);
void layernorm_backward_bf16(const KernelContext& ctx, uint16_t* dinp /*(N,C) +=*/, float* dweight /*(C) +=*/,
                             float* dbias /*(C) +=*/, const uint16_t* dout /*(N,C)*/, const uint16_t* inp /*(N,C)*/,
                             const uint16_t* weight /*(C)*/, const float* mean /*(N)*/, const float* rstd /*(N)*/,
                             int N, int C);

// GELU (tanh approximation, the CPU kernel's formula).
void gelu_forward_bf16(const KernelContext& ctx, uint16_t* out /*(N)*/, const uint16_t* inp /*(N)*/, size_t N);
void gelu_backward_bf16(const KernelContext& ctx, uint16_t* dinp /*(N) +=*/, const uint16_t* inp /*(N)*/,
                        const uint16_t* dout /*(N)*/, size_t N);

// Causal self-attention over a fused qkv (the fp32 kernel's layout and scale). Rounding points: att, the softmax
// probabilities, is stored in bf16 and out = round(att @ v) uses the STORED (rounded) att. Backward: the gradient of
// the probabilities, datt_f = dout @ v^T, stays fp32 inside the kernel; the softmax gradient
// dpreatt = att * (datt_f - sum(att * datt_f)) (att widened from bf16) is stored in datt (bf16, scratch), and
// dq += round(scale * dpreatt @ k), dk += round(scale * dpreatt^T @ q), dv += round(att^T @ dout) read the stored
// bf16 values.
void attention_forward_bf16(const KernelContext& ctx, uint16_t* out /*(B,T,C)*/, uint16_t* att /*(B,NH,T,T)*/,
                            const uint16_t* qkv /*(B,T,3C)*/, int B, int T, int C, int NH);
void attention_backward_bf16(const KernelContext& ctx, uint16_t* dqkv /*(B,T,3C) +=*/,
                             uint16_t* datt /*(B,NH,T,T) scratch*/, const uint16_t* dout /*(B,T,C)*/,
                             const uint16_t* qkv /*(B,T,3C)*/, const uint16_t* att /*(B,NH,T,T)*/, int B, int T,
                             int C, int NH);

// Fused causal attention, FlashAttention-2 style (CUDA: bf16_flash_attention.cu): the same qkv layout, causal mask
// and scale 1/sqrt(HS) as attention_forward_bf16, but the (T,T) probabilities are never stored. HS must be a
// multiple of 16, at most 128; every pointer 16-byte aligned (the CUDA kernel's limits; the twin takes any).
// Forward: s = scale q.k (fp32 from widened bf16), lse = log(sum_{j<=t} e^{s_j}) over the causal row (fp32, written:
// the backward recomputes p from it), p = e^{s - lse}, out = round(sum_j p_j v_j) summed in fp32. The twin keeps p
// in fp32 (NOT rounded: the difference from attention_forward_bf16's rule); the CUDA kernel feeds the tensor cores
// bf16 operands, so its p (relative to the running row maximum) is rounded to bf16 inside the product, and it sums
// in another order (online softmax over key tiles): the tests bound both.
// Backward (FlashAttention-2's): D_t = sum(dout_t * out_t) (fp32, from the bf16 values), p recomputed from lse,
// dp = dout.v, ds = p (dp - D), dq += round(scale ds k), dk += round(scale ds^T q), dv += round(p^T dout): each
// += output widens its old value, adds the fp32 sum, rounds once. The CUDA kernel rounds p and ds to bf16 as
// tensor-core operands (as above), is deterministic (no atomics) and needs B*NH*T*4 bytes of ctx.cuda_workspace.
void flash_attention_forward_bf16(const KernelContext& ctx, uint16_t* out /*(B,T,C)*/, float* lse /*(B,NH,T)*/,
                                  const uint16_t* qkv /*(B,T,3C)*/, int B, int T, int C, int NH);
void flash_attention_backward_bf16(const KernelContext& ctx, uint16_t* dqkv /*(B,T,3C) +=*/,
                                   const uint16_t* dout /*(B,T,C)*/, const uint16_t* out /*(B,T,C)*/,
                                   const float* lse /*(B,NH,T)*/, const uint16_t* qkv /*(B,T,3C)*/, int B, int T,
                                   int C, int NH);

// Fused softmax + cross-entropy + dlogits, in place (llm.c's): logits (N,Vp) bf16 in; losses (N) fp32 out (written);
// the same buffer is overwritten with dlogits = round(dloss_scale * (softmax(logits) - onehot(target))) for j < V and
// 0 for the padded columns j >= V. Softmax statistics (max, sum) in fp32.
void softmax_crossentropy_fused_bf16(const KernelContext& ctx, float* losses /*(N)*/,
                                     uint16_t* logits_dlogits /*(N,Vp) in: logits, out: dlogits*/,
                                     const int32_t* targets /*(N)*/, float dloss_scale, int N, int V, int Vp);

// Elementwise helpers.
void add_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* a, const uint16_t* b, size_t N);  // a + b
void accumulate_bf16(const KernelContext& ctx, uint16_t* dst /*+=*/, const uint16_t* src, size_t N);  // dst += src
void fill_bf16(const KernelContext& ctx, uint16_t* x, uint16_t value_bits, size_t N);  // x = value (raw bf16 bits)
// Column slices for the ResBM identity path P = [I_K; 0]: out[n,:] = inp[n, offset:offset+K] (an exact copy), and
// dinp[n, offset:offset+K] += dout[n,:].
void slice_columns_forward_bf16(const KernelContext& ctx, uint16_t* out /*(N,K)*/, const uint16_t* inp /*(N,C)*/,
                                int N, int C, int offset, int K);
void slice_columns_backward_bf16(const KernelContext& ctx, uint16_t* dinp /*(N,C) +=*/, const uint16_t* dout /*(N,K)*/,
                                 int N, int C, int offset, int K);
// Casts: float_to_bf16 / bf16_to_float (round to nearest even / exact) are in kernels.cuh and kernels/cpu.

}  // namespace kernels::cpu
