// kernels/cuda/gemm_plans.h: GemmDesc, one column-major (cuBLAS-convention) GEMM described as plain data, and the
// functions that build every GEMM the CUDA kernels issue (matmul fwd/bwd, the row-major gemm, attention's batched
// products). Plain C++ with no CUDA dependency, so that tests/kernels/cuda/gemm_plans_test.cc can execute the very
// same descriptors with a reference GEMM on the CPU and check all the transpose / leading-dimension / stride
// bookkeeping against the CPU kernels on a machine without a GPU.
#pragma once

#include <cstdint>

namespace kernels::cuda {

enum class GemmType : uint8_t { f32, bf16 };

// For i < batch: C_i (m,n) = alpha * op(A_i) @ op(B_i) + beta * C_i, then + bias[row] and GELU when asked.
// X_i = X + i * stride_x (elements). A_i is stored (m,k) with lda, or (k,m) when trans_a; B_i (k,n), or (n,k).
struct GemmDesc {
  bool trans_a = false, trans_b = false;
  int m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int lda = 0;
  long long stride_a = 0;
  const void* b = nullptr;
  int ldb = 0;
  long long stride_b = 0;
  void* c = nullptr;
  int ldc = 0;
  long long stride_c = 0;
  int batch = 1;
  float alpha = 1.0f, beta = 0.0f;
  const void* bias = nullptr;  // (m) of c_type, or null
  bool gelu = false;           // GELU (tanh) after the bias
  void* pre_gelu = nullptr;    // (m,n) ld ldc: the pre-activation, when gelu
  GemmType a_type = GemmType::f32, b_type = GemmType::f32, c_type = GemmType::f32;
};

// ---- matmul (row-major out (N,OC) = inp (N,C) @ weight^T + bias), issued as its column-major transpose
GemmDesc matmul_forward_desc(void* out, const void* inp, const void* weight, const void* bias, int N, int C, int OC);
// dinp (N,C) += dout (N,OC) @ weight (OC,C)
GemmDesc matmul_dinp_desc(void* dinp, const void* dout, const void* weight, int N, int C, int OC);
// dweight (OC,C) += dout^T (OC,N) @ inp (N,C)
GemmDesc matmul_dweight_desc(void* dweight, const void* dout, const void* inp, int N, int C, int OC);
// Row-major C (M,N) = alpha op(A) op(B) + beta C (kernels::cpu::gemm's contract).
GemmDesc rowmajor_gemm_desc(float* c, const float* a, const float* b, int M, int N, int K, bool trans_a, bool trans_b,
                            float alpha, float beta);

// ---- attention, for batch row b, batched over the NH heads (qkv (B,T,3C), att/datt (B,NH,T,T), out/dout (B,T,C))
GemmDesc attention_scores_desc(float* att, const float* qkv, int b, int T, int C, int NH);  // att = scale q k^T
GemmDesc attention_out_desc(float* out, const float* att, const float* qkv, int b, int T, int C, int NH);  // att v
GemmDesc attention_datt_desc(float* datt, const float* dout, const float* qkv, int b, int T, int C, int NH);
GemmDesc attention_dv_desc(float* dqkv, const float* dout, const float* att, int b, int T, int C, int NH);
// dpre (in datt, after the softmax backward) -> dq += scale dpre k, dk += scale dpre^T q
GemmDesc attention_dq_desc(float* dqkv, const float* dpre, const float* qkv, int b, int T, int C, int NH);
GemmDesc attention_dk_desc(float* dqkv, const float* dpre, const float* qkv, int b, int T, int C, int NH);

}  // namespace kernels::cuda
