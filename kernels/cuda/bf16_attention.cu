// kernels/cuda/bf16_attention.cu: causal multi-head attention in bf16 (bf16.cuh) over a fused qkv (B,T,3C), read in
// place as attention.cu does: for batch row b and head h, q is a (T, HS) row-major matrix with leading dimension 3C
// at qkv + b*T*3C + h*HS (k at +C, v at +2C).
//
// The GEMMs are cuBLAS strided-batched products with bf16 operands and fp32 accumulation
// (cublasGemmStridedBatchedEx, CUBLAS_COMPUTE_32F). Rounding points (bf16.cuh):
//   forward:  scores = scale q k^T      fp32, in the workspace
//             att    = round(softmax)   bf16 (B,NH,T,T), the causal softmax kernel below
//             out    = round(att @ v)   bf16, the GEMM's fp32 result rounded once (att read as stored)
//   backward: datt_f = dout @ v^T       fp32, in the workspace
//             dv     = round(dv + att^T @ dout)                      (beta = 1: old value widened, one rounding)
//             datt   = round(att * (datt_f - sum(att * datt_f)))     bf16 scratch, the softmax backward kernel
//             dq     = round(dq + scale datt @ k), dk = round(dk + scale datt^T @ q)
// The T x T products are computed in full and the softmax kernels mask the causal half (s > t gets 0), like
// llm.c; the softmax kernels never read the masked half of the fp32 scores.
//
// Workspace: the fp32 scores (or datt_f) of NH*T*T per batch row (48 MiB at T = 1024, NH = 12). A chunk of as many
// batch rows as the workspace holds goes through each step together; at least one must fit, else the kernel aborts
// with the size. No single stride covers both batch rows (T*3C apart in qkv) and heads (HS apart), so a chunk of
// R rows is issued as NH calls batched over the rows, or R calls batched over the heads, whichever is fewer.
#include <cublas_v2.h>

#include <cmath>

#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_vector.cuh"
#include "kernels/cuda/blas.h"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

namespace {

constexpr int kWarpsPerBlock = 8;

// ---- The causal softmax kernels: one warp per row (b, h, t) of T columns, packs of P columns (P = 8 when T is a
// multiple of 8: two 16-byte fp32 loads, one 16-byte bf16 store). Only columns s <= t are read.

// att[row] = round(softmax(scores[row, :t+1])), zeros after: the CPU's max, e = exp(x - max), sum, p = e * (1/sum).
template <int P>
__global__ void causal_softmax_forward_kernel(uint16_t* att, const float* scores, int rows, int T) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int t = row % T;
  const float* x = scores + static_cast<size_t>(row) * T;  // (T)
  uint16_t* a = att + static_cast<size_t>(row) * T;         // (T)
  float maxval = -INFINITY;
  for (int s = lane * P; s <= t; s += 32 * P) {
    float v[P];
    load_pack<P>(v, x + s);
#pragma unroll
    for (int k = 0; k < P; k++) {
      if (s + k <= t) maxval = fmaxf(maxval, v[k]);
    }
  }
  maxval = warp_max(maxval);
  float sum = 0.0f;
  for (int s = lane * P; s <= t; s += 32 * P) {
    float v[P];
    load_pack<P>(v, x + s);
#pragma unroll
    for (int k = 0; k < P; k++) {
      if (s + k <= t) sum += expf(v[k] - maxval);
    }
  }
  const float inv = 1.0f / warp_sum(sum);
  for (int s = lane * P; s < T; s += 32 * P) {
    float p[P] = {};
    if (s <= t) {
      load_pack<P>(p, x + s);
#pragma unroll
      for (int k = 0; k < P; k++) p[k] = s + k <= t ? expf(p[k] - maxval) * inv : 0.0f;
    }
    store_pack<P>(a + s, p);
  }
}

// datt[row, s] = round(att * (datt_f - sum_{u<=t} att * datt_f)) for s <= t, zeros after; att widened from bf16.
template <int P>
__global__ void causal_softmax_backward_kernel(uint16_t* datt, const float* datt_f, const uint16_t* att, int rows,
                                               int T) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int t = row % T;
  const size_t base = static_cast<size_t>(row) * T;
  float dot = 0.0f;
  for (int s = lane * P; s <= t; s += 32 * P) {
    float a[P], d[P];
    load_pack<P>(a, att + base + s);
    load_pack<P>(d, datt_f + base + s);
#pragma unroll
    for (int k = 0; k < P; k++) {
      if (s + k <= t) dot += a[k] * d[k];
    }
  }
  dot = warp_sum(dot);
  for (int s = lane * P; s < T; s += 32 * P) {
    float g[P] = {};
    if (s <= t) {
      float a[P];
      load_pack<P>(a, att + base + s);
      load_pack<P>(g, datt_f + base + s);
#pragma unroll
      for (int k = 0; k < P; k++) g[k] = s + k <= t ? a[k] * (g[k] - dot) : 0.0f;
    }
    store_pack<P>(datt + base + s, g);
  }
}

// ---- The GEMMs.

// One operand: base pointer, element type, leading dimension, and the distances (elements) between batch rows and
// between heads.
struct Operand {
  const void* ptr;
  cudaDataType_t type;
  int ld;
  long long row_stride, head_stride;
};

size_t element_bytes(cudaDataType_t type) { return type == CUDA_R_16BF ? 2 : 4; }

const void* offset(const void* p, cudaDataType_t type, long long elements) {
  return static_cast<const char*>(p) + elements * static_cast<long long>(element_bytes(type));
}

// For every (row r < rows, head h < NH): C_rh (m,n) = alpha op(A_rh) op(B_rh) + beta C_rh, column-major (cuBLAS's
// convention: a row-major (T, HS) matrix with leading dimension 3C is the column-major (HS, T) one). Issued as the
// fewer of NH calls batched over rows and `rows` calls batched over heads.
void gemm_rows_heads(const KernelContext& ctx, bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const Operand& a, const Operand& b, float beta, const Operand& c, int rows, int NH,
                     const char* who) {
  if (m == 0 || n == 0 || rows == 0 || NH == 0) return;
  cublasHandle_t handle = cublas_of(ctx, who);
  const bool over_rows = rows >= NH;
  const int calls = over_rows ? NH : rows, batch = over_rows ? rows : NH;
  for (int i = 0; i < calls; i++) {
    auto at = [&](const Operand& o) { return offset(o.ptr, o.type, i * (over_rows ? o.head_stride : o.row_stride)); };
    auto stride = [&](const Operand& o) { return over_rows ? o.row_stride : o.head_stride; };
    CUBLAS_CHECK(cublasGemmStridedBatchedEx(
        handle, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, at(a),
        a.type, a.ld, stride(a), at(b), b.type, b.ld, stride(b), &beta, const_cast<void*>(at(c)), c.type, c.ld,
        stride(c), batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }
}

// The attention shapes, and the GEMM operands of a chunk that starts at batch row b0.
struct Heads {
  int T, C, NH, HS, C3;
  long long TT;
  float scale;
  Heads(int T_, int C_, int NH_)
      : T(T_), C(C_), NH(NH_), HS(C_ / NH_), C3(3 * C_), TT(static_cast<long long>(T_) * T_),
        scale(1.0f / std::sqrt(static_cast<float>(C_ / NH_))) {}
  // q, k or v (part 0, 1, 2) of qkv (or dqkv) from batch row b0: (HS, T) column-major per (row, head).
  Operand qkv_part(const uint16_t* qkv, int b0, int part) const {
    return {qkv + static_cast<size_t>(b0) * T * C3 + static_cast<size_t>(part) * C, CUDA_R_16BF, C3,
            static_cast<long long>(T) * C3, HS};
  }
  // out or dout (B,T,C) from b0: (HS, T) column-major per (row, head).
  Operand bth(const uint16_t* x, int b0) const {
    return {x + static_cast<size_t>(b0) * T * C, CUDA_R_16BF, C, static_cast<long long>(T) * C, HS};
  }
  // A (rows, NH, T, T) tensor whose row-major (Tq, Ts) slices are the column-major (Ts, Tq) matrices of cuBLAS.
  Operand tt(const void* x, cudaDataType_t type) const { return {x, type, T, NH * TT, TT}; }
};

// Batch rows whose fp32 T x T products fit in the workspace together (aborts when not even one does).
int rows_per_chunk(const KernelContext& ctx, const Heads& h, int B, const char* who) {
  const size_t per_row = static_cast<size_t>(h.NH) * h.TT * sizeof(float);
  workspace_or_die(ctx, per_row, who);
  const size_t fit = ctx.cuda_workspace_bytes / per_row;
  return static_cast<int>(fit < static_cast<size_t>(B) ? fit : B);
}

}  // namespace

void attention_forward_bf16(const KernelContext& ctx, uint16_t* out, uint16_t* att, const uint16_t* qkv, int B, int T,
                            int C, int NH) {
  if (B == 0 || T == 0) return;
  const char* who = "cuda::attention_forward_bf16";
  const Heads h(T, C, NH);
  const int chunk = rows_per_chunk(ctx, h, B, who);
  float* scores = static_cast<float*>(ctx.cuda_workspace);  // (chunk, NH, T, T) fp32
  const bool vec = pack_width(T, {att, scores}) == kPack;
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int R = B - b0 < chunk ? B - b0 : chunk;
    uint16_t* att_b = att + static_cast<size_t>(b0) * NH * h.TT;
    // scores^T (Ts, Tq) = scale * K^T (Ts, HS) @ Q (HS, Tq)
    gemm_rows_heads(ctx, true, false, T, T, h.HS, h.scale, h.qkv_part(qkv, b0, 1), h.qkv_part(qkv, b0, 0), 0.0f,
                    h.tt(scores, CUDA_R_32F), R, NH, who);
    const int rows = R * NH * T;
    if (vec) {
      causal_softmax_forward_kernel<kPack><<<ceil_div(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(
          att_b, scores, rows, T);
    } else {
      causal_softmax_forward_kernel<1><<<ceil_div(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(
          att_b, scores, rows, T);
    }
    CUDA_CHECK_LAUNCH();
    // out (HS, Tq) = V (HS, Ts) @ att^T (Ts, Tq), rounded once
    gemm_rows_heads(ctx, false, false, h.HS, T, T, 1.0f, h.qkv_part(qkv, b0, 2), h.tt(att_b, CUDA_R_16BF), 0.0f,
                    h.bth(out, b0), R, NH, who);
  }
}

void attention_backward_bf16(const KernelContext& ctx, uint16_t* dqkv, uint16_t* datt, const uint16_t* dout,
                             const uint16_t* qkv, const uint16_t* att, int B, int T, int C, int NH) {
  if (B == 0 || T == 0) return;
  const char* who = "cuda::attention_backward_bf16";
  const Heads h(T, C, NH);
  const int chunk = rows_per_chunk(ctx, h, B, who);
  float* datt_f = static_cast<float*>(ctx.cuda_workspace);  // (chunk, NH, T, T) fp32
  const bool vec = pack_width(T, {datt, att, datt_f}) == kPack;
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int R = B - b0 < chunk ? B - b0 : chunk;
    const size_t first = static_cast<size_t>(b0) * NH * h.TT;
    // datt_f^T (Ts, Tq) = V^T (Ts, HS) @ dout (HS, Tq)
    gemm_rows_heads(ctx, true, false, T, T, h.HS, 1.0f, h.qkv_part(qkv, b0, 2), h.bth(dout, b0), 0.0f,
                    h.tt(datt_f, CUDA_R_32F), R, NH, who);
    // dV (HS, Ts) += dout (HS, Tq) @ (att^T)^T (Tq, Ts)
    gemm_rows_heads(ctx, false, true, h.HS, T, T, 1.0f, h.bth(dout, b0), h.tt(att + first, CUDA_R_16BF), 1.0f,
                    h.qkv_part(dqkv, b0, 2), R, NH, who);
    const int rows = R * NH * T;
    if (vec) {
      causal_softmax_backward_kernel<kPack>
          <<<ceil_div(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(datt + first, datt_f,
                                                                                      att + first, rows, T);
    } else {
      causal_softmax_backward_kernel<1><<<ceil_div(rows, kWarpsPerBlock), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(
          datt + first, datt_f, att + first, rows, T);
    }
    CUDA_CHECK_LAUNCH();
    // dQ (HS, Tq) += scale * K (HS, Ts) @ datt^T (Ts, Tq)
    gemm_rows_heads(ctx, false, false, h.HS, T, T, h.scale, h.qkv_part(qkv, b0, 1), h.tt(datt + first, CUDA_R_16BF),
                    1.0f, h.qkv_part(dqkv, b0, 0), R, NH, who);
    // dK (HS, Ts) += scale * Q (HS, Tq) @ (datt^T)^T (Tq, Ts)
    gemm_rows_heads(ctx, false, true, h.HS, T, T, h.scale, h.qkv_part(qkv, b0, 0), h.tt(datt + first, CUDA_R_16BF),
                    1.0f, h.qkv_part(dqkv, b0, 1), R, NH, who);
  }
}

}  // namespace kernels::cuda
