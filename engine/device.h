// engine/device.h: DeviceContext, which makes (and owns) the one KernelContext of a device, and the explicit
// host <-> device copies.
#pragma once

#include <memory>
#include <string>

#include "engine/tensor.h"
#include "kernels/context.h"

namespace kernels::cpu {
class GemmPlans;
}

namespace engine {

class KernelProfiler;

// Threads for the CPU kernels: OMP_NUM_THREADS when set, else the cores this process may run on.
int default_num_threads();

// Whether OpenMP's idle threads sleep rather than spin: OMP_WAIT_POLICY or GOMP_SPINCOUNT is set. libgomp reads
// these variables once, when it is loaded, so a program must get them from its environment (see
// reexec_with_passive_openmp). Passive workers leave the cores to other processes between parallel regions (the
// pipeline's ranks share the machine's cores); the GEMMs run on the same team (oneDNN), so nothing of our own
// competes with a spinning worker.
bool openmp_wait_policy_set();

// For main(), first thing: when neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, sets OMP_WAIT_POLICY=PASSIVE
// and re-executes the program (/proc/self/exe, same argv, same pid) so that libgomp starts with it. Returns
// normally when nothing needs doing or the exec fails. Call before MPI_Init and before starting threads.
void reexec_with_passive_openmp(char** argv);

// One line for run tables: the CPU GEMM library (oneDNN's version and ISA) and what --dtype bf16 does on this CPU
// (bf16 operands in hardware, or operands rounded to bf16 for an fp32 GEMM).
std::string cpu_gemm_description(const kernels::KernelContext& ctx);

class DeviceContext {
 public:
  // CPU: num_threads (0 = default_num_threads()) OpenMP threads for the loops and the oneDNN GEMMs, and the GEMM
  // plans (oneDNN primitives cached per shape). Reruns at the same thread count give the same bits; the GEMMs'
  // summation order (and so their last bits) may change with the thread count.
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
  // Times every kernel call made with ctx() from now on (engine/kernel_profiler.h); nullptr stops. The profiler is
  // the caller's and must outlive the calls it times. Objects holding ctx() (models, optimizers, backends) see it
  // at once: they keep a reference.
  void set_profiler(KernelProfiler* profiler) { ctx_.profiler = profiler; }
  void synchronize() const;  // CUDA: wait for the stream; CPU: nothing to wait for

 private:
  void release_gemm_scratch();

  Device device_;
  kernels::KernelContext ctx_;
  std::unique_ptr<kernels::cpu::GemmPlans> cpu_gemm_plans_;  // CPU only; ctx_.cpu_gemm_plans points here
};

// Explicit copies between host memory and a tensor on any device (src.nbytes() / dst.nbytes() bytes). On CUDA they
// wait for the copy (and so for the work queued before it).
void copy_to_host(void* dst, const Tensor& src);
void copy_from_host(const Tensor& dst, const void* src);
// Tensor to tensor of the same size, any devices.
void copy_tensor(const Tensor& dst, const Tensor& src);

}  // namespace engine
