// kernels/cuda/matmul.cu: out = inp @ weight^T + bias through cuBLASLt (bias and GELU epilogues), its backward, and
// the general row-major gemm (Muon). The GEMM layouts are built in gemm_plans.cc (checked on the CPU by
// tests/kernels/cuda/gemm_plans_test.cc); this file runs them and reduces dbias.
#include "kernels/cuda/blas.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/kernels.cuh"

namespace kernels::cuda {

namespace {

constexpr int kRowsPerChunk = 256;  // rows summed by one thread in the dbias pass (fixed: deterministic)

// dbias pass 1: grid (column blocks, chunks); partial (chunks, OC).
__global__ void column_sum_partials_kernel(float* partial, const float* dout, int N, int OC) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= OC) return;
  const int r0 = blockIdx.y * kRowsPerChunk;
  const int r1 = min(N, r0 + kRowsPerChunk);
  float acc = 0.0f;
  for (int r = r0; r < r1; r++) acc += dout[static_cast<size_t>(r) * OC + j];
  partial[static_cast<size_t>(blockIdx.y) * OC + j] = acc;
}

// dbias pass 2: partials added in chunk order.
__global__ void column_sum_finish_kernel(float* dbias, const float* partial, int chunks, int OC) {
  const int j = blockIdx.x * blockDim.x + threadIdx.x;
  if (j >= OC) return;
  float acc = 0.0f;
  for (int k = 0; k < chunks; k++) acc += partial[static_cast<size_t>(k) * OC + j];
  dbias[j] += acc;
}

}  // namespace

void matmul_forward(const KernelContext& ctx, float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
  lt_matmul(ctx, matmul_forward_desc(out, inp, weight, bias, N, C, OC), "cuda::matmul_forward");
}

void matmul_gelu_forward(const KernelContext& ctx, float* out, float* pre_gelu, const float* inp, const float* weight,
                         const float* bias, int N, int C, int OC) {
  GemmDesc g = matmul_forward_desc(out, inp, weight, bias, N, C, OC);
  g.gelu = true;
  g.pre_gelu = pre_gelu;
  lt_matmul(ctx, g, "cuda::matmul_gelu_forward");
}

void matmul_backward(const KernelContext& ctx, float* dinp, float* dweight, float* dbias, const float* dout,
                     const float* inp, const float* weight, int N, int C, int OC) {
  if (N == 0) return;  // no rows: nothing to accumulate
  if (dinp != nullptr) lt_matmul(ctx, matmul_dinp_desc(dinp, dout, weight, N, C, OC), "cuda::matmul_backward(dinp)");
  lt_matmul(ctx, matmul_dweight_desc(dweight, dout, inp, N, C, OC), "cuda::matmul_backward(dweight)");
  if (dbias != nullptr && OC > 0) {
    const int chunks = static_cast<int>(ceil_div(N, kRowsPerChunk));
    float* partial = static_cast<float*>(
        workspace_or_die(ctx, static_cast<size_t>(chunks) * OC * sizeof(float), "cuda::matmul_backward(dbias)"));
    cudaStream_t stream = stream_of(ctx);
    column_sum_partials_kernel<<<dim3(ceil_div(OC, 128), chunks), 128, 0, stream>>>(partial, dout, N, OC);
    CUDA_CHECK_LAUNCH();
    column_sum_finish_kernel<<<ceil_div(OC, 128), 128, 0, stream>>>(dbias, partial, chunks, OC);
    CUDA_CHECK_LAUNCH();
  }
}

void gemm(const KernelContext& ctx, float* c, const float* a, const float* b, int M, int N, int K, bool trans_a,
          bool trans_b, float alpha, float beta) {
  lt_matmul(ctx, rowmajor_gemm_desc(c, a, b, M, N, K, trans_a, trans_b, alpha, beta), "cuda::gemm");
}

}  // namespace kernels::cuda
