// kernels/cpu/elementwise.cc: elementwise helpers (add, accumulate, scale, fill, axpy).
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

void add_forward(const KernelContext& ctx, float* out, const float* a, const float* b, size_t N) {
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void accumulate(const KernelContext& ctx, float* dst, const float* src, size_t N) {
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) dst[i] += src[i];
}

void scale_inplace(const KernelContext& ctx, float* x, float s, size_t N) {
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) x[i] *= s;
}

void fill(const KernelContext& ctx, float* x, float value, size_t N) {
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) x[i] = value;
}

void axpy(const KernelContext& ctx, float* dst, const float* src, float s, size_t N) {
#pragma omp parallel for simd num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t i = 0; i < N; i++) dst[i] += s * src[i];
}

}  // namespace kernels::cpu
