// tests/kernels/cuda/cuda_emulation.h: just enough of CUDA to run a kernel's source on the CPU, so that its indexing,
// masking, tiling and synchronisation are tested on machines without a GPU. Used by bf16_flash_attention_emulated_test
// (tests/kernels/cuda/BUILD rewrites bf16_flash_attention.cu's launches `k<<<grid, block, smem, stream>>>(args)` into
// `emulated_launch(k, grid, block, smem, stream, args)` and includes this header instead of the CUDA ones).
//
// The model: blocks run one after the other; each thread of a block is an OS thread; __syncthreads and __syncwarp are
// barriers; a shuffle exchanges values through per-warp slots. WMMA fragments hold the whole 16x16 tile in every
// lane, so a warp-collective load, product or store is computed by each lane on its own (the real fragment layout
// is opaque to the kernel anyway); loads and stores of accumulators are also warp barriers, as on the hardware
// where the warp executes them together. Products sum in k order in fp32, bf16 operands widened exactly: the
// hardware's order differs, which the test's bounds allow for. Dynamic shared memory is filled with 0xFF bytes (NaN
// as fp32 and bf16) before each block, so that a read of a value never written shows.
//
// What this cannot show: timing, bank conflicts, register or shared-memory limits, and races that the hardware
// would expose but these OS threads happen not to.
#pragma once

#include <cmath>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "kernels/context.h"
#include "kernels/cuda/bf16_rounding.h"

#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(threads)

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint4 {
  unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
using cudaStream_t = void*;
constexpr int cudaFuncAttributeMaxDynamicSharedMemorySize = 0;
template <typename Kernel>
int cudaFuncSetAttribute(Kernel, int, int) {
  return 0;
}
#define CUDA_CHECK(call) (void)(call)
#define CUDA_CHECK_LAUNCH() (void)0

namespace cuda_emulation {

// A reusable barrier for n threads.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const long generation = generation_;
    if (++waiting_ == n_) {
      waiting_ = 0;
      generation_++;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int n_, waiting_ = 0;
  long generation_ = 0;
};

constexpr size_t kSharedBytes = 256 * 1024;  // more than an H100/H200 block may have (227 KiB)
constexpr int kMaxWarps = 32;

struct BlockState {
  Barrier* block_barrier = nullptr;
  Barrier* warp_barrier[kMaxWarps] = {};
  float shuffle[kMaxWarps][32] = {};
  alignas(128) char shared[kSharedBytes];
};
BlockState& block_state();  // one block runs at a time (cuda_emulation.cc)
dim3& thread_idx();         // this OS thread's threadIdx
dim3& block_idx();          // and blockIdx

}  // namespace cuda_emulation

#define threadIdx (::cuda_emulation::thread_idx())
#define blockIdx (::cuda_emulation::block_idx())

inline char* emulated_shared_memory() { return cuda_emulation::block_state().shared; }
inline void __syncthreads() { cuda_emulation::block_state().block_barrier->wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_emulation::block_state().warp_barrier[threadIdx.x / 32]->wait(); }
inline float __shfl_xor_sync(unsigned, float v, int lane_mask) {
  float* slots = cuda_emulation::block_state().shuffle[threadIdx.x / 32];
  const int lane = threadIdx.x % 32;
  slots[lane] = v;
  __syncwarp();
  const float other = slots[lane ^ lane_mask];
  __syncwarp();
  return other;
}

struct __nv_bfloat16 {
  uint16_t bits;
};
inline __nv_bfloat16 __float2bfloat16_rn(float x) { return {kernels::bf16::round_nearest(x)}; }

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// The whole 16x16 tile, row-major, in every lane.
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
  float x[256];
};

// WMMA's documented requirements: 256-bit aligned pointers, ldm a multiple of 16 bytes.
inline void check_operand(const void* p, unsigned ldm, unsigned element_bytes) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0 || (ldm * element_bytes) % 16 != 0) {
    std::fprintf(stderr, "wmma: pointer %p not 32-byte aligned or ldm %u not a multiple of 16 bytes\n", p, ldm);
    std::abort();
  }
}

template <typename Fragment>
void fill_fragment(Fragment& f, float v) {
  for (float& e : f.x) e = v;
}

// A (m, k) row-major at p[m*ld + k]; B (k, n) row-major at p[k*ld + n], column-major at p[n*ld + k].
template <typename Use, typename Layout>
void load_matrix_sync(fragment<Use, 16, 16, 16, __nv_bfloat16, Layout>& f, const __nv_bfloat16* p, unsigned ld) {
  check_operand(p, ld, 2);
  constexpr bool col = std::is_same_v<Layout, col_major>;
  for (int r = 0; r < 16; r++) {
    for (int c = 0; c < 16; c++) f.x[r * 16 + c] = kernels::bf16::widen(col ? p[c * ld + r].bits : p[r * ld + c].bits);
  }
}

inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ld, layout_t) {
  check_operand(p, ld, 4);
  __syncwarp();  // the warp loads together: no lane may see another lane's later store
  for (int r = 0; r < 16; r++) {
    for (int c = 0; c < 16; c++) f.x[r * 16 + c] = p[r * ld + c];
  }
  __syncwarp();
}

inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld, layout_t) {
  check_operand(p, ld, 4);
  __syncwarp();
  for (int r = 0; r < 16; r++) {
    for (int c = 0; c < 16; c++) p[r * ld + c] = f.x[r * 16 + c];
  }
  __syncwarp();
}

template <typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,
              const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB>& b,
              const fragment<accumulator, 16, 16, 16, float>& c) {
  float out[256];
  for (int m = 0; m < 16; m++) {
    for (int n = 0; n < 16; n++) {
      float s = c.x[m * 16 + n];
      for (int k = 0; k < 16; k++) s += a.x[m * 16 + k] * b.x[k * 16 + n];
      out[m * 16 + n] = s;
    }
  }
  std::memcpy(d.x, out, sizeof(out));
}

}  // namespace nvcuda::wmma

// The helpers of kernels/cuda/common.cuh that the kernel uses.
namespace kernels::cuda {
inline cudaStream_t stream_of(const KernelContext& ctx) { return ctx.cuda_stream; }
inline unsigned int ceil_div(size_t a, size_t b) { return static_cast<unsigned int>((a + b - 1) / b); }
inline void* workspace_or_die(const KernelContext& ctx, size_t bytes, const char* who) {
  if (bytes > ctx.cuda_workspace_bytes || (bytes > 0 && ctx.cuda_workspace == nullptr)) {
    std::fprintf(stderr, "%s: needs %zu bytes of workspace, the context has %zu\n", who, bytes,
                 ctx.cuda_workspace_bytes);
    std::abort();
  }
  return ctx.cuda_workspace;
}
inline float warp_sum(float v) {
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}
}  // namespace kernels::cuda

// kernel<<<grid, block, shared_bytes, stream>>>(args...): every block in turn, its threads as OS threads.
template <typename Kernel, typename... Args>
void emulated_launch(Kernel kernel, dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t, Args... args) {
  using namespace cuda_emulation;
  const int threads = static_cast<int>(block.x), warps = (threads + 31) / 32;
  if (shared_bytes > kSharedBytes || block.y != 1 || block.z != 1 || warps > kMaxWarps || threads % 32 != 0) {
    std::fprintf(stderr, "emulated_launch: unsupported block (%u threads, %zu bytes of shared memory)\n", block.x,
                 shared_bytes);
    std::abort();
  }
  BlockState& state = block_state();
  for (unsigned by = 0; by < grid.y; by++) {
    for (unsigned bx = 0; bx < grid.x; bx++) {
      std::memset(state.shared, 0xFF, kSharedBytes);
      Barrier block_barrier(threads);
      std::vector<std::unique_ptr<Barrier>> warp_barriers;
      for (int w = 0; w < warps; w++) warp_barriers.push_back(std::make_unique<Barrier>(32));
      state.block_barrier = &block_barrier;
      for (int w = 0; w < warps; w++) state.warp_barrier[w] = warp_barriers[w].get();
      std::vector<std::thread> pool;
      for (int t = 0; t < threads; t++) {
        pool.emplace_back([=] {
          thread_idx() = dim3(t);
          block_idx() = dim3(bx, by);
          kernel(args...);
        });
      }
      for (std::thread& th : pool) th.join();
    }
  }
}
