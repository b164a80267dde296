// kernels/cuda/adamw.cuh: one element of AdamW, shared by the fp32 kernel (adamw.cu) and the bf16 one (bf16.cu), so
// that both compute the CPU twin's formula (kernels/cpu/adamw.cc) in the same order. Device code: .cu files only.
#pragma once

namespace kernels::cuda {

// Updates m[i], v[i] and returns the new parameter value (p is the current one); bc1, bc2 are the bias corrections.
__device__ __forceinline__ float adamw_element(float p, float grad, float* m, float* v, float lr, float beta1,
                                               float beta2, float eps, float weight_decay, float grad_scale, float bc1,
                                               float bc2) {
  const float g = grad * grad_scale;
  const float mi = beta1 * *m + (1.0f - beta1) * g;
  const float vi = beta2 * *v + (1.0f - beta2) * g * g;
  *m = mi;
  *v = vi;
  const float mhat = mi / bc1;
  const float vhat = vi / bc2;
  return p - lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * p);
}

}  // namespace kernels::cuda
