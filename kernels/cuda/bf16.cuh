// kernels/cuda/bf16.cuh: the bf16 mixed-precision kernels (CUDA), declared in plain C++. bf16 values are stored as
// uint16_t (the top half of an fp32). The rules: bf16 activations and weights, fp32 master weights, optimizer state,
// parameter gradients, reductions and losses; stochastic rounding when the master weights are written back to bf16.
// Each has a CPU twin with the same signature in kernels/cuda/bf16_cpu_twin.h (namespace kernels::cpu), which the
// tests (tests/kernels/cuda/bf16_test.cc) compare against.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/context.h"

namespace kernels::cuda {

// out = stochastic_round(inp), random bits from hash(seed, index) (kernels/cuda/bf16_rounding.h).
void float_to_bf16_stochastic(const KernelContext& ctx, uint16_t* out /*(N)*/, const float* inp /*(N)*/, size_t N,
                              uint64_t seed);

// AdamW on the fp32 master weights (exactly adamw_update's arithmetic), then the bf16 model copy
// params = stochastic_round(master, seed). grads are fp32.
void adamw_update_bf16(const KernelContext& ctx, uint16_t* params /*(N) bf16*/, float* master /*(N)*/,
                       const float* grads /*(N)*/, float* m /*(N)*/, float* v /*(N)*/, size_t N, float lr, float beta1,
                       float beta2, float eps, float weight_decay, float grad_scale, int t, uint64_t seed);

// out = inp @ weight^T + bias in bf16 through cuBLASLt (tensor cores, fp32 accumulation, bias epilogue; one
// rounding to bf16 at the end). bias may be null.
void matmul_forward_bf16(const KernelContext& ctx, uint16_t* out /*(N,OC)*/, const uint16_t* inp /*(N,C)*/,
                         const uint16_t* weight /*(OC,C)*/, const uint16_t* bias /*(OC) or null*/, int N, int C,
                         int OC);
// dinp (bf16) += dout @ weight; dweight (fp32) += dout^T @ inp; dbias (fp32) += column sums of dout (deterministic
// two-pass). bf16 inputs, fp32 accumulation. dinp and dbias may be null.
void matmul_backward_bf16(const KernelContext& ctx, uint16_t* dinp /*(N,C) += or null*/, float* dweight /*(OC,C) +=*/,
                          float* dbias /*(OC) += or null*/, const uint16_t* dout /*(N,OC)*/,
                          const uint16_t* inp /*(N,C)*/, const uint16_t* weight /*(OC,C)*/, int N, int C, int OC);

}  // namespace kernels::cuda
