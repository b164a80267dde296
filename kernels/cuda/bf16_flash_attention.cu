// kernels/cuda/bf16_flash_attention.cu: fused causal attention in bf16 (FlashAttention-2), declared in bf16.cuh.
// The (T, T) scores never reach global memory: each block keeps a 64 x 64 tile of them in shared memory, so the
// forward reads qkv once per query tile and writes out and the row log-sum-exp (lse); the backward recomputes the
// probabilities from lse.
//
// Layout (attention.cu's): for batch row b and head h, q is a (T, HS) row-major matrix with leading dimension 3C at
// qkv + b*T*3C + h*HS (k at +C, v at +2C); out, dout are (T, HS) at + b*T*C + h*HS with leading dimension C; lse and
// the backward's D are (B, NH, T).
//
// Tiles: a block of 4 warps owns 64 rows (query rows in the forward and in the dq pass, key rows in the dk/dv pass);
// warp w owns the 16 rows 16w..16w+15 of them. The other side streams through shared memory in tiles of 64 rows.
// The products run on the tensor cores through WMMA (16x16x16, bf16 operands, fp32 accumulators). Operands that are
// not bf16 already are rounded to bf16 for the tensor cores (as FlashAttention-2 does): the forward's
// p~ = exp(s - running max), and the backward's p and ds; sums stay fp32. bf16.cuh states what the twin computes
// and the tests bound the difference.
//
// Causality: with equal tile sizes, query tile i needs key tiles 0..i only; in the diagonal tile, warp w (rows
// 16w..16w+15 of it) needs only the 16-column blocks 0..w of the other side, and the element mask (key <= query,
// both < T) is applied to the scores. Rows past T are loaded as zeros, computed, masked and never stored.
//
// Determinism without atomics: the backward is two passes. Pass 1 (a block per key tile) loops over the query tiles
// and accumulates dk and dv for its keys in registers; pass 2 (a block per query tile) loops over the key tiles and
// accumulates dq. Each element of dqkv is written by exactly one thread, sums in a fixed order. The price is
// computing s and dp twice (7 tile products instead of 5).
//
// Shared memory per block (HS = 64): forward 70 KiB (3 blocks, 12 warps per SM on an H100/H200's 227 KiB), each
// backward pass 88.5 KiB (2 blocks, 8 warps per SM). Rows of bf16 tiles are padded by 8 elements (16 bytes)
// and fp32 rows by 4, so that WMMA's 16 rows of a fragment start in different banks.
//
// Workspace: the backward's D = rowsum(dout * out), B*NH*T fp32 (3 MiB at B = 64, NH = 12, T = 1024).
//
// Tests: tests/kernels/cuda/bf16_flash_attention_test.cc (on a GPU, against the CPU twin), and the same comparison
// with this file's source run on the CPU by tests/kernels/cuda/cuda_emulation.h (bf16_flash_attention_emulated_test),
// which rewrites the kernel launches: keep each launch on one line, and the shared memory declared as below.
#include <cuda_bf16.h>
#include <mma.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <initializer_list>

#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_rounding.h"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

namespace {

using namespace nvcuda;

constexpr int kTile = 64;      // rows of a tile, both sides
constexpr int kWarps = 4;      // warps per block: 16 rows each
constexpr int kThreads = kWarps * 32;
constexpr int kFrag = 16;      // WMMA's m = n = k
constexpr int kMaxHeadSize = 128;
constexpr int kScorePad = 4;   // fp32 row padding (16 bytes)
constexpr int kBf16Pad = 8;    // bf16 row padding (16 bytes)
constexpr int kScoreLd = kTile + kScorePad;  // a warp's 16 x 64 fp32 scores
constexpr int kProbLd = kTile + kBf16Pad;    // a warp's 16 x 64 bf16 probabilities (or ds)

using FragA = wmma::fragment<wmma::matrix_a, kFrag, kFrag, kFrag, __nv_bfloat16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, __nv_bfloat16, wmma::row_major>;
using FragBCol = wmma::fragment<wmma::matrix_b, kFrag, kFrag, kFrag, __nv_bfloat16, wmma::col_major>;
using FragAcc = wmma::fragment<wmma::accumulator, kFrag, kFrag, kFrag, float>;

// The shapes every kernel needs, passed by value.
struct Dims {
  int B, T, C, NH, HS;
  int ld;         // leading dimension of a bf16 tile in shared memory: HS + 8
  float scale;    // 1/sqrt(HS)
};

// A shared-memory carve-out: regions one after the other, each 128-byte aligned (WMMA needs 32 bytes; 128 keeps
// the 16-byte vector stores aligned too).
struct Carve {
  char* p;
  template <typename T>
  __device__ T* take(size_t count) {
    T* r = reinterpret_cast<T*>(p);
    p += (count * sizeof(T) + 127) / 128 * 128;
    return r;
  }
};
size_t carve_bytes(size_t bytes) { return (bytes + 127) / 128 * 128; }

// Loads rows [row0, row0 + 64) of a (T, HS) slice with leading dimension `ld_global` (16 bytes at a time: HS is a
// multiple of 16 and the pointers 16-byte aligned) into a 64 x HS tile with leading dimension d.ld; rows >= T are
// zeros, so that padded rows contribute nothing to the products.
__device__ void load_tile(__nv_bfloat16* tile, const uint16_t* src, size_t ld_global, int row0, const Dims& d) {
  const int chunks = d.HS / 8;  // 16-byte chunks per row
  for (int idx = threadIdx.x; idx < kTile * chunks; idx += kThreads) {
    const int r = idx / chunks, c = idx % chunks;
    uint4 v = make_uint4(0, 0, 0, 0);
    if (row0 + r < d.T) v = *reinterpret_cast<const uint4*>(src + static_cast<size_t>(row0 + r) * ld_global + c * 8);
    *reinterpret_cast<uint4*>(tile + r * d.ld + c * 8) = v;
  }
}

// Loads the 64 per-row fp32 values (lse or D) of rows [row0, row0 + 64); rows >= T get 0 (masked anyway).
__device__ void load_row_values(float* dst, const float* src, int row0, int T) {
  for (int r = threadIdx.x; r < kTile; r += kThreads) dst[r] = row0 + r < T ? src[row0 + r] : 0.0f;
}

// S (16 x 64 fp32, leading dimension s_ld; column blocks [j0, nblocks)) = A_w (16 x HS) @ X^T for the 16-row blocks
// [j0, nblocks) of a 64-row tile X: both operands row-major (rows, HS) in shared memory, X read as column-major X^T.
__device__ void tile_product_nt(float* S, int s_ld, const __nv_bfloat16* a_rows, const __nv_bfloat16* x_tile,
                                int j0, int nblocks, const Dims& d) {
  for (int j = j0; j < nblocks; j++) {
    FragAcc acc;
    wmma::fill_fragment(acc, 0.0f);
    for (int f = 0; f < d.HS / kFrag; f++) {
      FragA a;
      FragBCol b;
      wmma::load_matrix_sync(a, a_rows + f * kFrag, d.ld);
      wmma::load_matrix_sync(b, x_tile + j * kFrag * d.ld + f * kFrag, d.ld);  // b(k, n) = X[16j + n][16f + k]
      wmma::mma_sync(acc, a, b, acc);
    }
    wmma::store_matrix_sync(S + j * kFrag, acc, s_ld, wmma::mem_row_major);
  }
}

// acc[f] += P (16 x 64 bf16, leading dimension kProbLd, blocks [j0, nblocks)) @ X (64 x HS row-major tile), for the
// column blocks f < HS/16 of the result. kMaxFrags >= HS/16 (a template parameter so that acc stays in registers).
template <int kMaxFrags>
__device__ void tile_product_nn(FragAcc (&acc)[kMaxFrags], const __nv_bfloat16* P, const __nv_bfloat16* x_tile,
                                int j0, int nblocks, const Dims& d) {
#pragma unroll
  for (int f = 0; f < kMaxFrags; f++) {
    if (f >= d.HS / kFrag) break;
    for (int j = j0; j < nblocks; j++) {
      FragA a;
      FragBRow b;
      wmma::load_matrix_sync(a, P + j * kFrag, kProbLd);
      wmma::load_matrix_sync(b, x_tile + j * kFrag * d.ld + f * kFrag, d.ld);  // b(k, n) = X[16j + k][16f + n]
      wmma::mma_sync(acc[f], a, b, acc[f]);
    }
  }
}

// ---- Forward. Block (b*NH + h, query tile); heavy (late) query tiles first, so that the causal triangle's long
// blocks start early and the short ones fill the tail. Per warp, the running row maximum m and sum l live in
// registers (two lanes per row), the output accumulator O (16 x HS fp32) in shared memory, because the online
// softmax rescales it by row and WMMA's register layout is opaque.
__global__ void __launch_bounds__(kThreads) flash_forward_kernel(uint16_t* out, float* lse, const uint16_t* qkv,
                                                                  Dims d) {
  extern __shared__ __align__(128) char smem[];
  const int nq = (d.T + kTile - 1) / kTile;
  const int bh = blockIdx.x, qt = nq - 1 - static_cast<int>(blockIdx.y);
  const int b = bh / d.NH, h = bh % d.NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t C3 = 3 * static_cast<size_t>(d.C);
  const uint16_t* q_g = qkv + static_cast<size_t>(b) * d.T * C3 + h * d.HS;  // (T, HS), leading dimension 3C

  Carve carve{smem};
  __nv_bfloat16* q_s = carve.take<__nv_bfloat16>(kTile * d.ld);              // (64, HS) this block's queries
  __nv_bfloat16* k_s = carve.take<__nv_bfloat16>(kTile * d.ld);              // (64, HS) a key tile
  __nv_bfloat16* v_s = carve.take<__nv_bfloat16>(kTile * d.ld);              // (64, HS) its values
  float* s_s = carve.take<float>(kWarps * kFrag * kScoreLd) + warp * kFrag * kScoreLd;              // (16, 64)
  __nv_bfloat16* p_s = carve.take<__nv_bfloat16>(kWarps * kFrag * kProbLd) + warp * kFrag * kProbLd;  // (16, 64)
  const int o_ld = d.HS + kScorePad;
  float* o_s = carve.take<float>(kWarps * kFrag * o_ld) + warp * kFrag * o_ld;  // (16, HS) this warp's output

  load_tile(q_s, q_g, C3, qt * kTile, d);
  // Two lanes per row: lane 2i and 2i+1 own row i of the warp's 16, each half of the columns.
  const int i = lane / 2, half = lane % 2;
  const int row = qt * kTile + warp * kFrag + i;  // the query index
  for (int c = half; c < d.HS; c += 2) o_s[i * o_ld + c] = 0.0f;
  float m = -INFINITY, l = 0.0f;

  for (int kt = 0; kt <= qt; kt++) {
    __syncthreads();  // the previous tile's k_s, v_s are no longer read (and q_s is written, at kt = 0)
    load_tile(k_s, q_g + d.C, C3, kt * kTile, d);
    load_tile(v_s, q_g + 2 * d.C, C3, kt * kTile, d);
    __syncthreads();
    // Diagonal tile: this warp's rows reach key column 16w + 15 at most.
    const int nblocks = kt == qt ? warp + 1 : kTile / kFrag;
    tile_product_nt(s_s, kScoreLd, q_s + warp * kFrag * d.ld, k_s, 0, nblocks, d);
    __syncwarp();

    // Online softmax over this tile's columns [0, 16 nblocks), half of them per lane.
    const int ncols = nblocks * kFrag;
    float tile_max = -INFINITY;
    for (int c = half; c < ncols; c += 2) {
      const int key = kt * kTile + c;
      if (key <= row && key < d.T) tile_max = fmaxf(tile_max, d.scale * s_s[i * kScoreLd + c]);
    }
    tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
    // Every row has a valid key in every tile it visits (key kt*64 <= row, and kt*64 < T), so m_new is finite.
    const float m_new = fmaxf(m, tile_max);
    const float alpha = expf(m - m_new);  // 0 on the first tile (m = -inf)
    float sum = 0.0f;
    for (int c = half; c < ncols; c += 2) {
      const int key = kt * kTile + c;
      const float p = key <= row && key < d.T ? expf(d.scale * s_s[i * kScoreLd + c] - m_new) : 0.0f;
      sum += p;  // the unrounded p: l is the exact (fp32) normaliser
      p_s[i * kProbLd + c] = __float2bfloat16_rn(p);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = alpha * l + sum;
    m = m_new;
    for (int c = half; c < d.HS; c += 2) o_s[i * o_ld + c] *= alpha;
    __syncwarp();

    // O (16 x HS) += P (16 x 16 nblocks) @ V (16 nblocks x HS), through the accumulator fragments.
    for (int f = 0; f < d.HS / kFrag; f++) {
      FragAcc acc;
      wmma::load_matrix_sync(acc, o_s + f * kFrag, o_ld, wmma::mem_row_major);
      for (int j = 0; j < nblocks; j++) {
        FragA a;
        FragBRow bv;
        wmma::load_matrix_sync(a, p_s + j * kFrag, kProbLd);
        wmma::load_matrix_sync(bv, v_s + j * kFrag * d.ld + f * kFrag, d.ld);
        wmma::mma_sync(acc, a, bv, acc);
      }
      wmma::store_matrix_sync(o_s + f * kFrag, acc, o_ld, wmma::mem_row_major);
    }
    __syncwarp();
  }

  if (row < d.T) {
    const float inv = 1.0f / l;
    uint16_t* o_g = out + (static_cast<size_t>(b) * d.T + row) * d.C + h * d.HS;  // (HS)
    for (int c = half; c < d.HS; c += 2) o_g[c] = kernels::bf16::round_nearest(o_s[i * o_ld + c] * inv);
    if (half == 0) lse[static_cast<size_t>(bh) * d.T + row] = m + logf(l);
  }
}

// ---- Backward.

// D[(b*NH + h)*T + t] = sum_i dout[b,t,h,i] * out[b,t,h,i] in fp32: a warp per (b, h, t).
__global__ void flash_backward_dot_kernel(float* D, const uint16_t* dout, const uint16_t* out, Dims d) {
  const size_t rows = static_cast<size_t>(d.B) * d.NH * d.T;
  const size_t r = static_cast<size_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (r >= rows) return;
  const int t = static_cast<int>(r % d.T);
  const int h = static_cast<int>((r / d.T) % d.NH);
  const size_t b = r / (static_cast<size_t>(d.T) * d.NH);
  const size_t at = (b * d.T + t) * d.C + h * d.HS;
  float sum = 0.0f;
  for (int c = lane; c < d.HS; c += 32) sum += kernels::bf16::widen(dout[at + c]) * kernels::bf16::widen(out[at + c]);
  sum = warp_sum(sum);
  if (lane == 0) D[r] = sum;
}

// dst[row r, columns of the head] = round(widen(dst) + factor * acc) for the warp's 16 rows (those < T), through
// fp32 scratch (16 x HS) since the accumulator layout is opaque. dst is the (T, HS) slice at leading dimension 3C.
template <int kMaxFrags>
__device__ void accumulate_rows(uint16_t* dst, FragAcc (&acc)[kMaxFrags], float factor, float* scratch,
                                int row0, const Dims& d) {
  const int ld = d.HS + kScorePad;
  __syncwarp();  // scratch may still be read by this warp's last softmax step
#pragma unroll
  for (int f = 0; f < kMaxFrags; f++) {
    if (f >= d.HS / kFrag) break;
    wmma::store_matrix_sync(scratch + f * kFrag, acc[f], ld, wmma::mem_row_major);
  }
  __syncwarp();
  const size_t C3 = 3 * static_cast<size_t>(d.C);
  for (int idx = threadIdx.x % 32; idx < kFrag * d.HS; idx += 32) {
    const int r = idx / d.HS, c = idx % d.HS;
    if (row0 + r >= d.T) continue;
    uint16_t* p = dst + static_cast<size_t>(row0 + r) * C3 + c;
    *p = kernels::bf16::round_nearest(kernels::bf16::widen(*p) + factor * scratch[r * ld + c]);
  }
  __syncwarp();  // scratch is reused by the next call
}

// The shared memory of both backward passes: the block's own 64 rows (two tiles: k, v in pass 1; q, dout in pass
// 2), the streamed tiles (the other two), their lse and D, and per warp fp32 s and dp (16 x 64) and bf16 p and ds
// (16 x 64). The dq/dk/dv epilogue reuses s (16 x max(64, HS) + 4 fp32).
struct BackwardSmem {
  __nv_bfloat16 *own0, *own1, *in0, *in1, *p, *ds;
  float *lse, *D, *s, *dp;
};

__device__ BackwardSmem carve_backward(char* smem, const Dims& d) {
  const int warp = threadIdx.x / 32;
  const int s_ld = (d.HS > kTile ? d.HS : kTile) + kScorePad;
  Carve carve{smem};
  BackwardSmem m;
  m.own0 = carve.take<__nv_bfloat16>(kTile * d.ld);
  m.own1 = carve.take<__nv_bfloat16>(kTile * d.ld);
  m.in0 = carve.take<__nv_bfloat16>(kTile * d.ld);
  m.in1 = carve.take<__nv_bfloat16>(kTile * d.ld);
  m.lse = carve.take<float>(kTile);
  m.D = carve.take<float>(kTile);
  m.s = carve.take<float>(kWarps * kFrag * s_ld) + warp * kFrag * s_ld;
  m.dp = carve.take<float>(kWarps * kFrag * kScoreLd) + warp * kFrag * kScoreLd;
  m.p = carve.take<__nv_bfloat16>(kWarps * kFrag * kProbLd) + warp * kFrag * kProbLd;
  m.ds = carve.take<__nv_bfloat16>(kWarps * kFrag * kProbLd) + warp * kFrag * kProbLd;
  return m;
}

size_t backward_smem_bytes(const Dims& d) {
  const size_t tile = carve_bytes(kTile * d.ld * 2), s_ld = (d.HS > kTile ? d.HS : kTile) + kScorePad;
  return 4 * tile + 2 * carve_bytes(kTile * 4) + carve_bytes(kWarps * kFrag * s_ld * 4) +
         carve_bytes(kWarps * kFrag * kScoreLd * 4) + 2 * carve_bytes(kWarps * kFrag * kProbLd * 2);
}

// Pass 1: dk, dv. Block (b*NH + h, key tile kt), warp w owns keys kt*64 + 16w + [0, 16). For each query tile
// qt >= kt: s^T = k q^T and dp^T = v dout^T (16 keys x 64 queries), p^T = exp(scale s^T - lse), ds^T = p^T (dp^T -
// D), then dv += p^T dout and dk += ds^T q in registers. In the diagonal tile, the warp needs query blocks w..3.
template <int kMaxFrags>
__global__ void __launch_bounds__(kThreads) flash_backward_dkdv_kernel(uint16_t* dqkv, const uint16_t* dout,
                                                                       const float* lse, const float* D,
                                                                       const uint16_t* qkv, Dims d) {
  extern __shared__ __align__(128) char smem[];
  const int nk = (d.T + kTile - 1) / kTile;
  const int bh = blockIdx.x, kt = blockIdx.y;  // early key tiles see the most query tiles: they go first
  const int b = bh / d.NH, h = bh % d.NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t C3 = 3 * static_cast<size_t>(d.C);
  const uint16_t* q_g = qkv + static_cast<size_t>(b) * d.T * C3 + h * d.HS;             // (T, HS), ld 3C
  const uint16_t* do_g = dout + static_cast<size_t>(b) * d.T * d.C + h * d.HS;          // (T, HS), ld C
  const float* lse_g = lse + static_cast<size_t>(bh) * d.T;                             // (T)
  const float* D_g = D + static_cast<size_t>(bh) * d.T;                                 // (T)
  BackwardSmem sm = carve_backward(smem, d);
  __nv_bfloat16 *k_s = sm.own0, *v_s = sm.own1, *q_s = sm.in0, *do_s = sm.in1;

  load_tile(k_s, q_g + d.C, C3, kt * kTile, d);
  load_tile(v_s, q_g + 2 * d.C, C3, kt * kTile, d);
  FragAcc dk[kMaxFrags], dv[kMaxFrags];
#pragma unroll
  for (int f = 0; f < kMaxFrags; f++) {
    wmma::fill_fragment(dk[f], 0.0f);
    wmma::fill_fragment(dv[f], 0.0f);
  }
  const int i = lane / 2, half = lane % 2;
  const int key = kt * kTile + warp * kFrag + i;  // this lane pair's key
  const int s_ld = (d.HS > kTile ? d.HS : kTile) + kScorePad;

  for (int qt = kt; qt < nk; qt++) {
    __syncthreads();  // the previous query tile is no longer read (and k_s, v_s are written, at qt = kt)
    load_tile(q_s, q_g, C3, qt * kTile, d);
    load_tile(do_s, do_g, d.C, qt * kTile, d);
    load_row_values(sm.lse, lse_g, qt * kTile, d.T);
    load_row_values(sm.D, D_g, qt * kTile, d.T);
    __syncthreads();
    const int j0 = qt == kt ? warp : 0;  // diagonal: queries below the warp's first key are all masked
    tile_product_nt(sm.s, s_ld, k_s + warp * kFrag * d.ld, q_s, j0, kTile / kFrag, d);
    tile_product_nt(sm.dp, kScoreLd, v_s + warp * kFrag * d.ld, do_s, j0, kTile / kFrag, d);
    __syncwarp();
    for (int c = j0 * kFrag + half; c < kTile; c += 2) {
      const int query = qt * kTile + c;
      const bool live = key <= query && query < d.T && key < d.T;
      const float p = live ? expf(d.scale * sm.s[i * s_ld + c] - sm.lse[c]) : 0.0f;
      const float ds = p * (sm.dp[i * kScoreLd + c] - sm.D[c]);
      sm.p[i * kProbLd + c] = __float2bfloat16_rn(p);
      sm.ds[i * kProbLd + c] = __float2bfloat16_rn(ds);
    }
    __syncwarp();
    tile_product_nn(dv, sm.p, do_s, j0, kTile / kFrag, d);  // dv (16 x HS) += p^T (16 x 64) @ dout (64 x HS)
    tile_product_nn(dk, sm.ds, q_s, j0, kTile / kFrag, d);  // dk (16 x HS) += ds^T (16 x 64) @ q (64 x HS)
  }
  const int row0 = kt * kTile + warp * kFrag;
  uint16_t* dq_g = dqkv + static_cast<size_t>(b) * d.T * C3 + h * d.HS;
  accumulate_rows(dq_g + d.C, dk, d.scale, sm.s, row0, d);
  accumulate_rows(dq_g + 2 * d.C, dv, 1.0f, sm.s, row0, d);
}

// Pass 2: dq. Block (b*NH + h, query tile qt), warp w owns queries qt*64 + 16w + [0, 16). For each key tile
// kt <= qt: s = q k^T, dp = dout v^T (16 queries x 64 keys), p, ds as in pass 1, dq += ds k. In the diagonal tile
// the warp needs key blocks 0..w.
template <int kMaxFrags>
__global__ void __launch_bounds__(kThreads) flash_backward_dq_kernel(uint16_t* dqkv, const uint16_t* dout,
                                                                     const float* lse, const float* D,
                                                                     const uint16_t* qkv, Dims d) {
  extern __shared__ __align__(128) char smem[];
  const int nq = (d.T + kTile - 1) / kTile;
  const int bh = blockIdx.x, qt = nq - 1 - static_cast<int>(blockIdx.y);  // long (late) query tiles first
  const int b = bh / d.NH, h = bh % d.NH;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const size_t C3 = 3 * static_cast<size_t>(d.C);
  const uint16_t* q_g = qkv + static_cast<size_t>(b) * d.T * C3 + h * d.HS;     // (T, HS), ld 3C
  const uint16_t* do_g = dout + static_cast<size_t>(b) * d.T * d.C + h * d.HS;  // (T, HS), ld C
  BackwardSmem sm = carve_backward(smem, d);
  __nv_bfloat16 *q_s = sm.own0, *do_s = sm.own1, *k_s = sm.in0, *v_s = sm.in1;

  load_tile(q_s, q_g, C3, qt * kTile, d);
  load_tile(do_s, do_g, d.C, qt * kTile, d);
  load_row_values(sm.lse, lse + static_cast<size_t>(bh) * d.T, qt * kTile, d.T);
  load_row_values(sm.D, D + static_cast<size_t>(bh) * d.T, qt * kTile, d.T);
  FragAcc dq[kMaxFrags];
#pragma unroll
  for (int f = 0; f < kMaxFrags; f++) wmma::fill_fragment(dq[f], 0.0f);
  const int i = lane / 2, half = lane % 2;
  const int r = warp * kFrag + i, query = qt * kTile + r;  // this lane pair's row in the tile, and its query
  const int s_ld = (d.HS > kTile ? d.HS : kTile) + kScorePad;

  for (int kt = 0; kt <= qt; kt++) {
    __syncthreads();  // the previous key tile is no longer read (and the block's own tiles are written, at kt = 0)
    load_tile(k_s, q_g + d.C, C3, kt * kTile, d);
    load_tile(v_s, q_g + 2 * d.C, C3, kt * kTile, d);
    __syncthreads();
    const int nblocks = kt == qt ? warp + 1 : kTile / kFrag;
    tile_product_nt(sm.s, s_ld, q_s + warp * kFrag * d.ld, k_s, 0, nblocks, d);
    tile_product_nt(sm.dp, kScoreLd, do_s + warp * kFrag * d.ld, v_s, 0, nblocks, d);
    __syncwarp();
    const float row_lse = sm.lse[r], row_D = sm.D[r];
    for (int c = half; c < nblocks * kFrag; c += 2) {
      const int key = kt * kTile + c;
      const bool live = key <= query && key < d.T;
      const float p = live ? expf(d.scale * sm.s[i * s_ld + c] - row_lse) : 0.0f;
      sm.ds[i * kProbLd + c] = __float2bfloat16_rn(p * (sm.dp[i * kScoreLd + c] - row_D));
    }
    __syncwarp();
    tile_product_nn(dq, sm.ds, k_s, 0, nblocks, d);  // dq (16 x HS) += ds (16 x 64) @ k (64 x HS)
  }
  uint16_t* dq_g = dqkv + static_cast<size_t>(b) * d.T * C3 + h * d.HS;
  accumulate_rows(dq_g, dq, d.scale, sm.s, qt * kTile + warp * kFrag, d);
}

// ---- Host side.

// tiles: the bf16 tensors the tiles load and store 16 bytes at a time; lse (fp32, read and written one float at a
// time) needs only its own alignment.
Dims dims_or_die(int B, int T, int C, int NH, std::initializer_list<const void*> tiles, const float* lse,
                 const char* who) {
  const int HS = NH > 0 ? C / NH : 0;
  if (NH <= 0 || C % NH != 0 || HS % kFrag != 0 || HS > kMaxHeadSize) {
    std::fprintf(stderr,
                 "%s: head size C/NH = %d/%d is not supported: it must be a multiple of 16 (the tensor-core tile) "
                 "and at most %d.\n  hint: use attention_forward_bf16 / attention_backward_bf16 (cuBLAS) instead.\n",
                 who, C, NH, kMaxHeadSize);
    std::abort();
  }
  for (const void* p : tiles) {
    if (reinterpret_cast<uintptr_t>(p) % 16 != 0) {
      std::fprintf(stderr, "%s: the bf16 tensors must be 16-byte aligned (the tiles load 16 bytes at a time).\n",
                   who);
      std::abort();
    }
  }
  if (reinterpret_cast<uintptr_t>(lse) % alignof(float) != 0) {
    std::fprintf(stderr, "%s: lse must be 4-byte aligned (fp32).\n", who);
    std::abort();
  }
  // blockIdx.x = b*NH + h; blockIdx.y = the tile (at most 65535 tiles: T < 4 million).
  if (static_cast<long long>(B) * NH > 0x7fffffffLL || (T + kTile - 1) / kTile > 65535) {
    std::fprintf(stderr, "%s: B*NH = %lld or T = %d exceeds the grid limits.\n", who,
                 static_cast<long long>(B) * NH, T);
    std::abort();
  }
  return Dims{B, T, C, NH, HS, HS + kBf16Pad, 1.0f / std::sqrt(static_cast<float>(HS))};
}

size_t forward_smem_bytes(const Dims& d) {
  return 3 * carve_bytes(kTile * d.ld * 2) + carve_bytes(kWarps * kFrag * kScoreLd * 4) +
         carve_bytes(kWarps * kFrag * kProbLd * 2) + carve_bytes(kWarps * kFrag * (d.HS + kScorePad) * 4);
}

// Kernels using more than 48 KiB of dynamic shared memory must say so first (per kernel; cheap to repeat).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

}  // namespace

void flash_attention_forward_bf16(const KernelContext& ctx, uint16_t* out, float* lse, const uint16_t* qkv, int B,
                                  int T, int C, int NH) {
  if (B == 0 || T == 0) return;
  const Dims d = dims_or_die(B, T, C, NH, {out, qkv}, lse, "cuda::flash_attention_forward_bf16");
  const size_t smem = forward_smem_bytes(d);
  allow_smem(flash_forward_kernel, smem);
  const dim3 grid(static_cast<unsigned>(B * NH), static_cast<unsigned>((T + kTile - 1) / kTile));
  flash_forward_kernel<<<grid, kThreads, smem, stream_of(ctx)>>>(out, lse, qkv, d);
  CUDA_CHECK_LAUNCH();
}

namespace {

template <int kMaxFrags>
void backward_passes(const KernelContext& ctx, uint16_t* dqkv, const uint16_t* dout, const float* lse,
                     const float* D, const uint16_t* qkv, const Dims& d) {
  const size_t smem = backward_smem_bytes(d);
  const dim3 grid(static_cast<unsigned>(d.B * d.NH), static_cast<unsigned>((d.T + kTile - 1) / kTile));
  allow_smem(flash_backward_dkdv_kernel<kMaxFrags>, smem);
  flash_backward_dkdv_kernel<kMaxFrags><<<grid, kThreads, smem, stream_of(ctx)>>>(dqkv, dout, lse, D, qkv, d);
  CUDA_CHECK_LAUNCH();
  allow_smem(flash_backward_dq_kernel<kMaxFrags>, smem);
  flash_backward_dq_kernel<kMaxFrags><<<grid, kThreads, smem, stream_of(ctx)>>>(dqkv, dout, lse, D, qkv, d);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void flash_attention_backward_bf16(const KernelContext& ctx, uint16_t* dqkv, const uint16_t* dout,
                                   const uint16_t* out, const float* lse, const uint16_t* qkv, int B, int T, int C,
                                   int NH) {
  if (B == 0 || T == 0) return;
  const char* who = "cuda::flash_attention_backward_bf16";
  const Dims d = dims_or_die(B, T, C, NH, {dqkv, dout, out, qkv}, lse, who);
  const size_t rows = static_cast<size_t>(B) * NH * T;
  float* D = static_cast<float*>(workspace_or_die(ctx, rows * sizeof(float), who));  // (B, NH, T)
  flash_backward_dot_kernel<<<ceil_div(rows, kWarps), kThreads, 0, stream_of(ctx)>>>(D, dout, out, d);
  CUDA_CHECK_LAUNCH();
  // Two instantiations: 4 accumulator fragments per output cover HS <= 64 (GPT-2) at GPT-2's register budget;
  // 8 cover HS <= 128.
  if (d.HS <= 64) {
    backward_passes<4>(ctx, dqkv, dout, lse, D, qkv, d);
  } else {
    backward_passes<8>(ctx, dqkv, dout, lse, D, qkv, d);
  }
}

}  // namespace kernels::cuda
