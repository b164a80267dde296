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

}  // namespace kernels::cpu
