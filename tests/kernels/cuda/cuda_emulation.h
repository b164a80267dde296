// tests/kernels/cuda/cuda_emulation.h: just enough of CUDA to run a kernel's source on the CPU, so that its indexing,
// masking, tiling and synchronisation are tested on machines without a GPU. Used by the *_emulated tests
// (tests/kernels/cuda/BUILD, emulated_cuda_test in emulated_cuda_test.bzl): a sed script rewrites a .cu file and the
// device headers it includes (common.cuh, bf16_vector.cuh, column_sum.cuh, adamw.cuh): the CUDA headers become this
// one, every launch `k<<<grid, block, smem, stream>>>(args)` becomes
// `emulated_launch(emulated_config(grid, block, smem, stream), [=](auto... a) { k(a...); }, args)`, and every
// `__shared__ T name[n];` becomes `auto& name = emulated_static_shared<T[n]>();`.
//
// The model: blocks run one after the other (x fastest, then y, then z); each thread of a block is an OS thread;
// __syncthreads and __syncwarp are barriers (a thread that returns leaves them, as on sm_70+, where exited threads
// no longer count); a shuffle exchanges values through per-warp slots. WMMA fragments hold the whole 16x16 tile in
// every lane, so a warp-collective load, product or store is computed by each lane on its own (the real fragment
// layout is opaque to the kernel anyway); loads and stores of accumulators are also warp barriers, as on the
// hardware where the warp executes them together. Products sum in k order in fp32, bf16 operands widened exactly:
// the hardware's order differs, which the test's bounds allow for. All of a block's shared memory, dynamic and
// static (__shared__ arrays, allocated from the top of the same 256 KiB), is filled with 0xFF bytes (NaN as fp32,
// fp64 and bf16) before each block, so that a read of a value never written shows.
//
// What this cannot show: timing, bank conflicts, register or shared-memory limits, memory coalescing, alignment
// faults of vector accesses (float4 / 16-byte packs are plain loads here), races that the hardware would expose but
// these OS threads happen not to, and the GPU's arithmetic: the host compiler does not contract a*b+c into FMAs and
// expf/tanhf/sqrtf are glibc's, not CUDA's (the tests' bounds cover both). Threads of a warp do not run in lockstep:
// code that relies on implicit warp synchrony without __syncwarp would fail here (as it may on sm_70+).
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

// A reusable barrier for n threads. A thread that exits leaves it (retire), as exited threads stop counting at
// __syncthreads on the hardware: so an early `return` of some threads does not hang the rest.
class Barrier {
 public:
  explicit Barrier(int n) : n_(n) {}
  void wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    const long generation = generation_;
    if (++waiting_ == n_) {
      release();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }
  void retire() {
    std::unique_lock<std::mutex> lock(mutex_);
    if (--n_ > 0 && waiting_ == n_) release();
  }

 private:
  void release() {
    waiting_ = 0;
    generation_++;
    cv_.notify_all();
  }
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
  uint64_t shuffle[kMaxWarps][32] = {};  // one 8-byte slot per lane: float, int, double
  dim3 grid_dim, block_dim;
  size_t dynamic_bytes = 0;  // the launch's dynamic shared memory, at the bottom of `shared`
  alignas(128) char shared[kSharedBytes];
};
BlockState& block_state();  // one block runs at a time (cuda_emulation.cc)
dim3& thread_idx();         // this OS thread's threadIdx
dim3& block_idx();          // and blockIdx
size_t& static_shared_top();  // this OS thread's next __shared__ array ends here (from the top of `shared`)

}  // namespace cuda_emulation

#define threadIdx (::cuda_emulation::thread_idx())
#define blockIdx (::cuda_emulation::block_idx())
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

inline void __syncthreads() { cuda_emulation::block_state().block_barrier->wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { cuda_emulation::block_state().warp_barrier[threadIdx.x / 32]->wait(); }

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

// The launch configuration <<<grid, block, shared_bytes, stream>>> (the last two optional, as in CUDA).
struct EmulatedConfig {
  dim3 grid, block;
  size_t shared_bytes;
};
inline EmulatedConfig emulated_config(dim3 grid, dim3 block, size_t shared_bytes = 0, cudaStream_t = nullptr) {
  return {grid, block, shared_bytes};
}

// kernel<<<config>>>(args...): every block in turn (x fastest), its threads as OS threads. `kernel` is called with
// the arguments (a lambda around the kernel's name, so that its template arguments are deduced from them, as in
// CUDA). Like a CUDA launch, the arguments are copied.
template <typename Kernel, typename... Args>
void emulated_launch(const EmulatedConfig& config, Kernel kernel, Args... args) {
  using namespace cuda_emulation;
  const dim3 grid = config.grid, block = config.block;
  const int threads = static_cast<int>(block.x), warps = (threads + 31) / 32;
  if (config.shared_bytes > kSharedBytes || block.y != 1 || block.z != 1 || warps > kMaxWarps || threads % 32 != 0 ||
      threads == 0) {
    std::fprintf(stderr, "emulated_launch: unsupported block (%u x %u x %u threads, %zu bytes of shared memory)\n",
                 block.x, block.y, block.z, config.shared_bytes);
    std::abort();
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
    std::fprintf(stderr, "emulated_launch: invalid grid %u x %u x %u (a CUDA launch would fail)\n", grid.x, grid.y,
                 grid.z);
    std::abort();
  }
  BlockState& state = block_state();
  state.grid_dim = grid;
  state.block_dim = block;
  state.dynamic_bytes = config.shared_bytes;
  for (unsigned bz = 0; bz < grid.z; bz++) {
    for (unsigned by = 0; by < grid.y; by++) {
      for (unsigned bx = 0; bx < grid.x; bx++) {
        std::memset(state.shared, 0xFF, kSharedBytes);
        Barrier block_barrier(threads);
        std::vector<std::unique_ptr<Barrier>> warp_barriers;
        for (int w = 0; w < warps; w++) warp_barriers.push_back(std::make_unique<Barrier>(32));
        state.block_barrier = &block_barrier;
        for (int w = 0; w < warps; w++) state.warp_barrier[w] = warp_barriers[w].get();
        std::vector<std::thread> pool;
        pool.reserve(threads);
        for (int t = 0; t < threads; t++) {
          pool.emplace_back([=, &state] {
            thread_idx() = dim3(t);
            block_idx() = dim3(bx, by, bz);
            static_shared_top() = kSharedBytes;
            kernel(args...);
            state.warp_barrier[t / 32]->retire();
            state.block_barrier->retire();
          });
        }
        for (std::thread& th : pool) th.join();
      }
    }
  }
}
