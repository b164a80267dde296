// engine/device.h: DeviceContext, which makes (and owns) the one KernelContext of a device, and the explicit
// host <-> device copies.
#pragma once

#include "engine/tensor.h"
#include "kernels/context.h"

namespace engine {

// Threads for the CPU kernels: OMP_NUM_THREADS when set, else the cores this process may run on.
int default_num_threads();

// Whether OpenMP's idle threads sleep rather than spin: OMP_WAIT_POLICY or GOMP_SPINCOUNT is set. Under libgomp's
// default an idle worker spins for milliseconds after every OpenMP loop, on the core that the next sgemm (run by
// OpenBLAS's own threads) needs: measured here, a 256x768x768 sgemm right after a loop took 11.7 ms instead of
// 2.1 ms, and a GPT-2 124M step was ~1.5-2x slower. libgomp reads these variables once, when it is loaded, so a
// program must get them from its environment (see reexec_with_passive_openmp).
bool openmp_wait_policy_set();

// For main(), first thing: when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, sets OMP_WAIT_POLICY=PASSIVE
// and re-executes the program (/proc/self/exe, same argv, same pid) so that libgomp starts with it. Returns
// normally when nothing needs doing or the exec fails. Call before MPI_Init and before starting threads.
void reexec_with_passive_openmp(char** argv);

// OpenBLAS (DYNAMIC_ARCH builds) falls back to its SSE3 "Prescott" kernels on CPUs newer than it knows (0.3.21 on
// Sapphire/Emerald Rapids), which makes sgemm about 5x slower. This picks the AVX-512 (SkylakeX) or AVX2 (Haswell)
// kernels instead when the CPU has them, unless OPENBLAS_CORETYPE is set. DeviceContext calls it; idempotent.
// Not thread-safe against BLAS calls running elsewhere: make the first DeviceContext before starting threads.
void select_blas_kernels();
const char* blas_core_name();  // the OpenBLAS kernel set in use, e.g. "SkylakeX" (for run tables)

class DeviceContext {
 public:
  // CPU: OpenBLAS gets num_threads (0 = default_num_threads()). The OpenMP loops get as many when the OpenMP wait
  // policy is set (openmp_wait_policy_set()), else 1: spinning workers would slow every sgemm more than the loops
  // gain. Results are the same bits for any thread count.
  // CUDA: a stream, cuBLAS and cuBLASLt handles and a cuBLASLt workspace on the current GPU.
  explicit DeviceContext(Device device, int num_threads = 0);
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  // --dtype bf16: matmuls round their operands to bf16 (kernels/context.h's GemmPrecision). Allocates the operands'
  // scratch once, for a largest matmul of max_gemm_elements = max over the model's matmuls of
  // kernels::bf16_gemm_scratch_elements(N, C, OC). Call before the first step.
  void enable_bf16_gemms(size_t max_gemm_elements);

  const kernels::KernelContext& ctx() const { return ctx_; }
  Device device() const { return device_; }
  void synchronize() const;  // CUDA: wait for the stream; CPU: nothing to wait for

 private:
  void release_gemm_scratch();

  Device device_;
  kernels::KernelContext ctx_;
};

// Explicit copies between host memory and a tensor on any device (src.nbytes() / dst.nbytes() bytes). On CUDA they
// wait for the copy (and so for the work queued before it).
void copy_to_host(void* dst, const Tensor& src);
void copy_from_host(const Tensor& dst, const void* src);
// Tensor to tensor of the same size, any devices.
void copy_tensor(const Tensor& dst, const Tensor& src);

}  // namespace engine
