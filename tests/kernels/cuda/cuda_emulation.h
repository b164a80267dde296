// tests/kernels/cuda/cuda_emulation.h: just enough of CUDA to run a kernel's source on the CPU, so that its indexing,
// masking, tiling and synchronisation are tested on machines without a GPU. Used by the *_emulated tests
// (tests/kernels/cuda/BUILD, emulated_cuda_test in emulated_cuda_test.bzl): a sed script rewrites a .cu file and the
// device headers it includes (common.cuh, bf16_vector.cuh, column_sum.cuh, adamw.cuh, token_sort.cuh): the CUDA headers
// become this one, every launch `k<<<grid, block, smem, stream>>>(args)` becomes `emulated_launch(emulated_config(grid,
// block, smem, stream), [=](auto... a) { k(a...); }, args)`, and every `__shared__ T name[n];` becomes `auto& name =
// emulated_static_shared<T[n]>();`.
//
// The model: blocks run one after the other (x fastest, then y, then z); each thread of a block is a fiber (ucontext)
// on the test's own OS thread, and runs until it waits at a barrier (__syncthreads; __syncwarp, which shuffles and WMMA
// products also are) or exits. A thread that exits leaves the barriers, as on sm_70+ where exited threads no longer
// count. The schedule is deterministic and adversarial: when a barrier opens, the threads it releases run next, so the
// first warp runs as far ahead as it can (to the next __syncthreads) before the next warp starts, and within a warp
// lane 0 runs to the next __syncwarp before lane 1. Blocks and launches alternate between ascending and descending
// thread order, so a missing barrier shows whichever side of it the reader is on: the reader runs before the writer and
// reads poison or a stale value (the tests' bitwise reruns see the two orders disagree). A barrier that not every live
// thread reaches is a deadlock, reported (with where each thread waits) instead of hanging.
//
// WMMA fragments hold the whole 16x16 tile in every lane, so a warp-collective load or product is computed by each lane
// on its own (the real fragment layout is opaque to the kernel anyway). Only the product is a warp barrier (it
// exchanges the lanes' fragments); loads and stores are not, and a store writes only the lane's own eighth of the tile:
// reading another lane's part, or overwriting memory other lanes still read, needs the kernel's own __syncwarp, as the
// CUDA memory model requires. Products sum in k order in fp32, bf16 operands widened exactly: the hardware's order
// differs, which the test's bounds allow for. All of a block's shared memory, dynamic and static (__shared__ arrays,
// allocated from the top of the same 256 KiB), is filled with 0xFF bytes (NaN as fp32, fp64 and bf16) before each
// block, so that a read of a value never written shows.
//
// What this cannot show: timing, bank conflicts, register or shared-memory limits, memory coalescing, alignment faults
// of vector accesses (float4 / 16-byte packs are plain loads here); races between barriers that need true concurrency
// (two threads' non-atomic read-modify-writes of one address never interleave here: a lost update does not happen,
// though the two orders may round differently); and the GPU's arithmetic: the host compiler does not contract a*b+c
// into FMAs, and expf/tanhf/sqrtf are glibc's, not CUDA's (the tests' bounds cover both).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "kernels/context.h"
#include "kernels/cuda/bf16_rounding.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

// The vector types the kernels use (16-byte aligned like CUDA's; their loads are plain loads here).
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// Device math and bit casts that plain C++ spells differently (fmaxf, expf, rintf... are <cmath>'s, glibc's).
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline unsigned __float_as_uint(float x) {
  unsigned u;
  std::memcpy(&u, &x, sizeof(u));
  return u;
}
inline float __uint_as_float(unsigned u) {
  float x;
  std::memcpy(&x, &u, sizeof(x));
  return x;
}
template <typename T>
T __ldg(const T* p) {
  return *p;
}

// The runtime API the kernel files call on the host. Errors cannot happen here: the checks only evaluate the call.
using cudaStream_t = void*;
using cudaError_t = int;
constexpr cudaError_t cudaSuccess = 0;
constexpr int cudaFuncAttributeMaxDynamicSharedMemorySize = 0;
template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel, int, int) {
  return cudaSuccess;
}
#define CUDA_CHECK(call) (void)(call)
#define CUDA_CHECK_LAUNCH() (void)0

namespace cuda_emulation {

constexpr size_t kSharedBytes = 256 * 1024;  // more than an H100/H200 block may have (227 KiB)
constexpr int kMaxWarps = 32;

// __syncthreads (the block's) or __syncwarp (a warp's): the calling thread waits until every thread of the group
// that has not exited arrives (cuda_emulation.cc).
void barrier_wait(int group);  // group: 0..kMaxWarps-1 a warp, kMaxWarps the block
constexpr int kBlockGroup = kMaxWarps;

struct BlockState {
  uint64_t shuffle[kMaxWarps][32] = {};  // one 8-byte slot per lane: float, int, double
  dim3 grid_dim, block_dim, block_idx;
  size_t dynamic_bytes = 0;  // the launch's dynamic shared memory, at the bottom of `shared`
  alignas(128) char shared[kSharedBytes];
};
BlockState& block_state();    // the block that runs now (one at a time)
dim3& thread_idx();           // the running thread's threadIdx
size_t& static_shared_top();  // where the running thread's next __shared__ array ends (from the top of `shared`)

// Runs one block: `threads` fibers calling body(arg), scheduled as described in the header comment; `reverse`
// picks the order. Aborts on a deadlock (threads waiting at a barrier that no running thread can reach).
void run_block(int threads, bool reverse, void (*body)(void*), void* arg);

}  // namespace cuda_emulation

#define threadIdx (::cuda_emulation::thread_idx())
#define blockIdx (::cuda_emulation::block_state().block_idx)
#define blockDim (::cuda_emulation::block_state().block_dim)
#define gridDim (::cuda_emulation::block_state().grid_dim)

inline char* emulated_shared_memory() { return cuda_emulation::block_state().shared; }

// `__shared__ T name[n];`: every thread of the block declares the same arrays in the same order, so each gets the
// same address: the i-th declaration the i-th slot from the top of the block's shared memory (poisoned like it).
template <typename Array>
Array& emulated_static_shared() {
  using namespace cuda_emulation;
  size_t& top = static_shared_top();
  if (top < sizeof(Array) || (top - sizeof(Array)) / 16 * 16 < block_state().dynamic_bytes) {
    std::fprintf(stderr, "emulated_static_shared: static + dynamic shared memory exceed %zu bytes\n", kSharedBytes);
    std::abort();
  }
  top = (top - sizeof(Array)) / 16 * 16;
  return *reinterpret_cast<Array*>(block_state().shared + top);
}

inline void __syncthreads() { cuda_emulation::barrier_wait(cuda_emulation::kBlockGroup); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_emulation::barrier_wait(threadIdx.x / 32); }

// Shuffles: every lane of the warp must take part (full masks only, which is all the kernels use).
namespace cuda_emulation {
template <typename T, typename Source>
T shuffle(T v, Source source_lane) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>);
  uint64_t* slots = block_state().shuffle[threadIdx.x / 32];
  const int lane = threadIdx.x % 32;
  std::memcpy(&slots[lane], &v, sizeof(T));
  __syncwarp();
  const int src = source_lane(lane);
  T other = v;  // a source lane outside the warp: the lane keeps its own value (CUDA's rule for down/up)
  if (src >= 0 && src < 32) std::memcpy(&other, &slots[src], sizeof(T));
  __syncwarp();
  return other;
}
}  // namespace cuda_emulation
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask) {
  return cuda_emulation::shuffle(v, [=](int lane) { return lane ^ lane_mask; });
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta) {
  return cuda_emulation::shuffle(v, [=](int lane) { return lane + static_cast<int>(delta); });
}
template <typename T>
T __shfl_up_sync(unsigned, T v, unsigned delta) {
  return cuda_emulation::shuffle(v, [=](int lane) { return lane - static_cast<int>(delta); });
}
template <typename T>
T __shfl_sync(unsigned, T v, int src_lane) {
  return cuda_emulation::shuffle(v, [=](int) { return src_lane % 32; });
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
  for (int r = 0; r < 16; r++) {
    for (int c = 0; c < 16; c++) f.x[r * 16 + c] = p[r * ld + c];
  }
}

// Each lane stores its own eighth of the tile (elements r*16 + c = lane mod 32, as the hardware spreads an
// accumulator over the lanes), with no barrier: another lane's part may be read only after a __syncwarp, and a
// store may overwrite what other lanes have not read yet unless one precedes it.
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ld, layout_t) {
  check_operand(p, ld, 4);
  for (int e = threadIdx.x % 32; e < 256; e += 32) p[(e / 16) * ld + e % 16] = f.x[e];
}

template <typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, 16, 16, 16, float>& d,
              const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LayoutA>& a,
              const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LayoutB>& b,
              const fragment<accumulator, 16, 16, 16, float>& c) {
  __syncwarp();  // the product exchanges the lanes' fragments: the warp executes it together
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

// The launch configuration <<<grid, block, shared_bytes, stream>>> (the last two optional, as in CUDA).
struct EmulatedConfig {
  dim3 grid, block;
  size_t shared_bytes;
};
inline EmulatedConfig emulated_config(dim3 grid, dim3 block, size_t shared_bytes = 0, cudaStream_t = nullptr) {
  return {grid, block, shared_bytes};
}

// kernel<<<config>>>(args...): every block in turn (x fastest), its threads as fibers. `kernel` is called with the
// arguments (a lambda around the kernel's name, so that its template arguments are deduced from them, as in CUDA).
// Like a CUDA launch, the arguments are copied. Successive blocks, and successive launches of a kernel, alternate
// between ascending and descending thread order (so a rerun of the kernel sees the other order in every block).
template <typename Kernel, typename... Args>
void emulated_launch(const EmulatedConfig& config, Kernel kernel, Args... args) {
  using namespace cuda_emulation;
  const dim3 grid = config.grid, block = config.block;
  const int threads = static_cast<int>(block.x);
  if (config.shared_bytes > kSharedBytes || block.y != 1 || block.z != 1 || threads > 32 * kMaxWarps ||
      threads % 32 != 0 || threads == 0) {
    std::fprintf(stderr, "emulated_launch: unsupported block (%u x %u x %u threads, %zu bytes of shared memory)\n",
                 block.x, block.y, block.z, config.shared_bytes);
    std::abort();
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr, "emulated_launch: invalid grid %u x %u x %u (a CUDA launch would fail)\n", grid.x, grid.y,
                 grid.z);
    std::abort();
  }
  static unsigned launches = 0;
  const unsigned launch = launches++;
  BlockState& state = block_state();
  state.grid_dim = grid;
  state.block_dim = block;
  state.dynamic_bytes = config.shared_bytes;
  auto body = [&] { kernel(args...); };
  auto run = [](void* f) { (*static_cast<decltype(body)*>(f))(); };
  unsigned long long b = 0;
  for (unsigned bz = 0; bz < grid.z; bz++) {
    for (unsigned by = 0; by < grid.y; by++) {
      for (unsigned bx = 0; bx < grid.x; bx++, b++) {
        std::memset(state.shared, 0xFF, kSharedBytes);
        state.block_idx = dim3(bx, by, bz);
        run_block(threads, (launch + b) % 2 == 1, run, &body);
      }
    }
  }
}
