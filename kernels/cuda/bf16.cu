// kernels/cuda/bf16.cu: the bf16 mixed-precision kernels declared in bf16.cuh: stochastic rounding, AdamW on fp32
// master weights with a stochastically rounded bf16 copy, and bf16 GEMMs through cuBLASLt with fp32 accumulation.
#include <cmath>

#include "kernels/cuda/adamw.cuh"
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_rounding.h"
#include "kernels/cuda/blas.h"
#include "kernels/cuda/column_sum.cuh"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

namespace {

__global__ void stochastic_round_kernel(uint16_t* out, const float* inp, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    out[i] = kernels::bf16::round_stochastic(inp[i], seed, i);
  }
}

// adamw_update's arithmetic (kernels/cuda/adamw.cu) on the master weights, then the rounded copy, in one pass.
__global__ void adamw_bf16_kernel(uint16_t* params, float* master, const float* grads, float* m, float* v, size_t n,
                                  float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                                  float bc1, float bc2, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const float p = adamw_element(master[i], grads[i], &m[i], &v[i], lr, beta1, beta2, eps, weight_decay, grad_scale,
                                  bc1, bc2);
    master[i] = p;
    params[i] = kernels::bf16::round_stochastic(p, seed, i);
  }
}

}  // namespace

void float_to_bf16_stochastic(const KernelContext& ctx, uint16_t* out, const float* inp, size_t N, uint64_t seed) {
  if (N == 0) return;
  stochastic_round_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(out, inp, N, seed);
  CUDA_CHECK_LAUNCH();
}

void adamw_update_bf16(const KernelContext& ctx, uint16_t* params, float* master, const float* grads, float* m,
                       float* v, size_t N, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float grad_scale, int t, uint64_t seed) {
  if (N == 0) return;
  const float bc1 = 1.0f - std::pow(beta1, static_cast<float>(t));  // as the CPU computes them
  const float bc2 = 1.0f - std::pow(beta2, static_cast<float>(t));
  adamw_bf16_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(params, master, grads, m, v, N, lr, beta1, beta2, eps,
                                                             weight_decay, grad_scale, bc1, bc2, seed);
  CUDA_CHECK_LAUNCH();
}

void matmul_forward_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* inp, const uint16_t* weight,
                         const uint16_t* bias, int N, int C, int OC) {
  GemmDesc g = matmul_forward_desc(out, inp, weight, bias, N, C, OC);
  g.a_type = g.b_type = g.c_type = GemmType::bf16;
  lt_matmul(ctx, g, "cuda::matmul_forward_bf16");
}

void matmul_backward_bf16(const KernelContext& ctx, uint16_t* dinp, float* dweight, float* dbias,
                          const uint16_t* dout, const uint16_t* inp, const uint16_t* weight, int N, int C, int OC) {
  if (N == 0) return;
  if (dinp != nullptr) {  // accumulated in fp32, stored bf16
    GemmDesc g = matmul_dinp_desc(dinp, dout, weight, N, C, OC);
    g.a_type = g.b_type = g.c_type = GemmType::bf16;
    lt_matmul(ctx, g, "cuda::matmul_backward_bf16(dinp)");
  }
  {  // bf16 operands, fp32 weight gradient
    GemmDesc g = matmul_dweight_desc(dweight, dout, inp, N, C, OC);
    g.a_type = g.b_type = GemmType::bf16;
    lt_matmul(ctx, g, "cuda::matmul_backward_bf16(dweight)");
  }
  if (dbias != nullptr) column_sum_accumulate(ctx, dbias, dout, N, OC, "cuda::matmul_backward_bf16(dbias)");
}

}  // namespace kernels::cuda
