// engine/device.h: DeviceContext, which makes (and owns) the one KernelContext of a device, and the explicit
// host <-> device copies.
#pragma once

#include "engine/tensor.h"
#include "kernels/context.h"

namespace engine {

// Threads for the CPU kernels: OMP_NUM_THREADS when set, else the cores this process may run on.
int default_num_threads();

// OpenBLAS (DYNAMIC_ARCH builds) falls back to its SSE3 "Prescott" kernels on CPUs newer than it knows (0.3.21 on
// Sapphire/Emerald Rapids), which makes sgemm about 5x slower. This picks the AVX-512 (SkylakeX) or AVX2 (Haswell)
// kernels instead when the CPU has them, unless OPENBLAS_CORETYPE is set. DeviceContext calls it; idempotent.
void select_blas_kernels();
const char* blas_core_name();  // the OpenBLAS kernel set in use, e.g. "SkylakeX" (for run tables)

class DeviceContext {
 public:
  // CPU: num_threads for the OpenMP loops and for OpenBLAS (0 = default_num_threads()).
  // CUDA: a stream, cuBLAS and cuBLASLt handles and a cuBLASLt workspace on the current GPU.
  explicit DeviceContext(Device device, int num_threads = 0);
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  const kernels::KernelContext& ctx() const { return ctx_; }
  Device device() const { return device_; }
  void synchronize() const;  // CUDA: wait for the stream; CPU: nothing to wait for

 private:
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
