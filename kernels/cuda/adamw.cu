// kernels/cuda/adamw.cu: one AdamW step over a contiguous fp32 parameter block (decoupled weight decay), the twin of
// kernels/cpu/adamw.cc: the bias corrections are computed on the host exactly as the CPU does, the rest elementwise.
#include <cmath>

#include "kernels/cuda/adamw.cuh"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, float bc1, float bc2) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    params[i] = adamw_element(params[i], grads[i], &m[i], &v[i], lr, beta1, beta2, eps, weight_decay, grad_scale, bc1,
                              bc2);
  }
}

}  // namespace

void adamw_update(const KernelContext& ctx, float* params, const float* grads, float* m, float* v, size_t N,
                  float lr, float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t) {
  if (N == 0) return;
  const float bc1 = 1.0f - std::pow(beta1, static_cast<float>(t));
  const float bc2 = 1.0f - std::pow(beta2, static_cast<float>(t));
  adamw_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(params, grads, m, v, N, lr, beta1, beta2, eps, weight_decay,
                                                        grad_scale, bc1, bc2);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
