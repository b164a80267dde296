// kernels/cuda/bf16_layernorm.cu: layernorm over C (eps 1e-5) on bf16 activations (bf16.cuh): forward, the fused
// residual add + forward, and backward. Statistics (mean, rstd) and every sum are fp32; bf16 outputs are rounded to
// nearest even once, when stored.
//
// One warp per row, 8 rows per block; each lane walks the row in packs of P channels (P = 8: 128-bit loads, when C
// is a multiple of 8 and the pointers are 16-byte aligned; else P = 1), so a GPT-2 row of 768 channels is 3 packs per
// lane. The later passes over a row re-read it from L1/L2, not from DRAM. The backward's dweight/dbias reduction
// over rows is layernorm.cu's, deterministic without atomics: pass 1 writes per-chunk partial sums (a chunk of
// kRowsPerChunk rows summed in order by one thread per pack of columns), pass 2 adds the partials in chunk order
// (column_sum.cuh's finishing kernel).
// Reduction orders differ from the CPU twin's sequential loops, so results agree to rounding, not bitwise.
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_vector.cuh"
#include "kernels/cuda/column_sum.cuh"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

namespace {

constexpr float kEps = 1e-5f;
constexpr int kWarpsPerBlock = 8;
// Rows summed by one thread in the dweight/dbias pass (fixed: the order depends on N only). 128 rows give
// B*T/128 = 512 chunks at GPT-2's 65536 rows: enough threads in flight to stream dout and inp at full bandwidth.
constexpr int kRowsPerChunk = 128;

// Mean and rstd of one row, in the CPU's formulas (two passes: the mean, then the centred squares). Every lane gets
// both. x is the row (C), read in packs of P starting at lane * P.
template <int P>
__device__ void row_statistics(const uint16_t* x, int C, int lane, float* mean, float* rstd) {
  float sum = 0.0f;
  for (int c = lane * P; c < C; c += 32 * P) {
    float v[P];
    load_pack<P>(v, x + c);
#pragma unroll
    for (int k = 0; k < P; k++) sum += v[k];
  }
  const float m = warp_sum(sum) / C;
  float var = 0.0f;
  for (int c = lane * P; c < C; c += 32 * P) {
    float v[P];
    load_pack<P>(v, x + c);
#pragma unroll
    for (int k = 0; k < P; k++) {
      const float d = v[k] - m;
      var += d * d;
    }
  }
  *mean = m;
  *rstd = 1.0f / sqrtf(warp_sum(var) / C + kEps);
}

// out = round((x - m) * s * weight + bias), the CPU's expression and order of operations.
template <int P>
__device__ void row_normalize(uint16_t* out, const uint16_t* x, const uint16_t* weight, const uint16_t* bias, int C,
                              int lane, float m, float s) {
  for (int c = lane * P; c < C; c += 32 * P) {
    float v[P], w[P], b[P], o[P];
    load_pack<P>(v, x + c);
    load_pack<P>(w, weight + c);
    load_pack<P>(b, bias + c);
#pragma unroll
    for (int k = 0; k < P; k++) o[k] = (v[k] - m) * s * w[k] + b[k];
    store_pack<P>(out + c, o);
  }
}

// out = layernorm(x) with x = inp1 (plain), or with kResidual x = residual = round(inp1 + inp2), stored first; the
// statistics and the output then read the ROUNDED residual back (each lane re-reads only the packs it wrote itself,
// so no synchronisation is needed).
template <int P, bool kResidual>
__global__ void layernorm_forward_kernel(uint16_t* residual, uint16_t* out, float* mean, float* rstd,
                                         const uint16_t* inp1, const uint16_t* inp2, const uint16_t* weight,
                                         const uint16_t* bias, int N, int C) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const size_t base = static_cast<size_t>(row) * C;
  const uint16_t* x = inp1 + base;
  if constexpr (kResidual) {
    for (int c = lane * P; c < C; c += 32 * P) {
      float u[P], v[P];
      load_pack<P>(u, inp1 + base + c);
      load_pack<P>(v, inp2 + base + c);
#pragma unroll
      for (int k = 0; k < P; k++) u[k] += v[k];
      store_pack<P>(residual + base + c, u);
    }
    x = residual + base;
  }
  float m, s;
  row_statistics<P>(x, C, lane, &m, &s);
  row_normalize<P>(out + base, x, weight, bias, C, lane, m, s);
  if (lane == 0) {
    mean[row] = m;
    rstd[row] = s;
  }
}

// dinp = round(dinp + s * (weight * dout - mean(dnorm) - norm * mean(dnorm * norm))), dnorm = weight * dout.
template <int P>
__global__ void layernorm_backward_dinp_kernel(uint16_t* dinp, const uint16_t* dout, const uint16_t* inp,
                                               const uint16_t* weight, const float* mean, const float* rstd, int N,
                                               int C) {
  const int row = blockIdx.x * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= N) return;
  const size_t base = static_cast<size_t>(row) * C;
  const float m = mean[row], s = rstd[row];
  float dnorm_mean = 0.0f, dnorm_norm_mean = 0.0f;
  for (int c = lane * P; c < C; c += 32 * P) {
    float x[P], d[P], w[P];
    load_pack<P>(x, inp + base + c);
    load_pack<P>(d, dout + base + c);
    load_pack<P>(w, weight + c);
#pragma unroll
    for (int k = 0; k < P; k++) {
      const float dnorm = w[k] * d[k];
      dnorm_mean += dnorm;
      dnorm_norm_mean += dnorm * (x[k] - m) * s;
    }
  }
  dnorm_mean = warp_sum(dnorm_mean) / C;
  dnorm_norm_mean = warp_sum(dnorm_norm_mean) / C;
  for (int c = lane * P; c < C; c += 32 * P) {
    float x[P], d[P], w[P], dx[P];
    load_pack<P>(x, inp + base + c);
    load_pack<P>(d, dout + base + c);
    load_pack<P>(w, weight + c);
    load_pack<P>(dx, dinp + base + c);
#pragma unroll
    for (int k = 0; k < P; k++) {
      const float norm = (x[k] - m) * s;
      dx[k] += s * (w[k] * d[k] - dnorm_mean - norm * dnorm_norm_mean);
    }
    store_pack<P>(dinp + base + c, dx);
  }
}

// Pass 1: grid (column-pack blocks, chunks); one thread per pack of P columns sums its chunk's rows in order.
// partial_w / partial_b (chunks, C) fp32.
template <int P>
__global__ void layernorm_backward_partials_kernel(float* partial_w, float* partial_b, const uint16_t* dout,
                                                   const uint16_t* inp, const float* mean, const float* rstd, int N,
                                                   int C) {
  const int c = (blockIdx.x * blockDim.x + threadIdx.x) * P;
  if (c >= C) return;
  const int chunk = blockIdx.y;
  const int r0 = chunk * kRowsPerChunk;
  const int r1 = min(N, r0 + kRowsPerChunk);
  float dw[P] = {}, db[P] = {};
  for (int r = r0; r < r1; r++) {
    const size_t i = static_cast<size_t>(r) * C + c;
    const float m = mean[r], s = rstd[r];
    float x[P], d[P];
    load_pack<P>(x, inp + i);
    load_pack<P>(d, dout + i);
#pragma unroll
    for (int k = 0; k < P; k++) {
      dw[k] += (x[k] - m) * s * d[k];
      db[k] += d[k];
    }
  }
  store_pack<P>(partial_w + static_cast<size_t>(chunk) * C + c, dw);
  store_pack<P>(partial_b + static_cast<size_t>(chunk) * C + c, db);
}

unsigned int row_blocks(int N) { return ceil_div(N, kWarpsPerBlock); }

template <bool kResidual>
void forward(const KernelContext& ctx, uint16_t* residual, uint16_t* out, float* mean, float* rstd,
             const uint16_t* inp1, const uint16_t* inp2, const uint16_t* weight, const uint16_t* bias, int N, int C) {
  if (N == 0) return;
  auto kernel = pack_width(C, {residual, out, inp1, inp2, weight, bias}) == kPack
                    ? layernorm_forward_kernel<kPack, kResidual>
                    : layernorm_forward_kernel<1, kResidual>;
  kernel<<<row_blocks(N), kWarpsPerBlock * 32, 0, stream_of(ctx)>>>(residual, out, mean, rstd, inp1, inp2, weight,
                                                                    bias, N, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void layernorm_forward_bf16(const KernelContext& ctx, uint16_t* out, float* mean, float* rstd, const uint16_t* inp,
                            const uint16_t* weight, const uint16_t* bias, int N, int C) {
  forward<false>(ctx, nullptr, out, mean, rstd, inp, nullptr, weight, bias, N, C);
}

void residual_layernorm_forward_bf16(const KernelContext& ctx, uint16_t* residual, uint16_t* out, float* mean,
                                     float* rstd, const uint16_t* inp1, const uint16_t* inp2, const uint16_t* weight,
                                     const uint16_t* bias, int N, int C) {
  forward<true>(ctx, residual, out, mean, rstd, inp1, inp2, weight, bias, N, C);
}

void layernorm_backward_bf16(const KernelContext& ctx, uint16_t* dinp, float* dweight, float* dbias,
                             const uint16_t* dout, const uint16_t* inp, const uint16_t* weight, const float* mean,
                             const float* rstd, int N, int C) {
  if (N == 0 || C == 0) return;
  cudaStream_t stream = stream_of(ctx);
  const bool vec = pack_width(C, {dinp, dout, inp, weight}) == kPack;
  auto dinp_kernel = vec ? layernorm_backward_dinp_kernel<kPack> : layernorm_backward_dinp_kernel<1>;
  dinp_kernel<<<row_blocks(N), kWarpsPerBlock * 32, 0, stream>>>(dinp, dout, inp, weight, mean, rstd, N, C);
  CUDA_CHECK_LAUNCH();

  const int chunks = static_cast<int>(ceil_div(N, kRowsPerChunk));
  const size_t part = static_cast<size_t>(chunks) * C;
  float* partial_w =
      static_cast<float*>(workspace_or_die(ctx, 2 * part * sizeof(float), "cuda::layernorm_backward_bf16"));
  float* partial_b = partial_w + part;  // 16-byte aligned when C (hence part) is a multiple of 8
  auto partials_kernel = vec ? layernorm_backward_partials_kernel<kPack> : layernorm_backward_partials_kernel<1>;
  const int P = vec ? kPack : 1;
  partials_kernel<<<dim3(ceil_div(C / P, 128), chunks), 128, 0, stream>>>(partial_w, partial_b, dout, inp, mean, rstd,
                                                                          N, C);
  CUDA_CHECK_LAUNCH();
  // Pass 2 (column_sum.cuh): one thread per column adds the chunks' partials in chunk order into dweight / dbias.
  column_sum_finish_kernel<<<ceil_div(C, 128), 128, 0, stream>>>(dweight, partial_w, chunks, C);
  CUDA_CHECK_LAUNCH();
  column_sum_finish_kernel<<<ceil_div(C, 128), 128, 0, stream>>>(dbias, partial_b, chunks, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace kernels::cuda
