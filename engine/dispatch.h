// engine/dispatch.h: KERNEL(device, name, ctx, args...) calls kernels::cuda::name or kernels::cpu::name by device,
// timed by the context's KernelProfiler when it has one (engine/kernel_profiler.h).
//
// The CUDA kernels (kernels/cuda/kernels.cuh, target //kernels/cuda:kernels) have the CPU kernels' signatures. That
// target defines RESBM_HAVE_CUDA for everything that depends on it, so enabling them in the engine is one line:
// add "//kernels/cuda:kernels" to the deps of //engine:engine. Internal to the engine (and its optimizers).
//
// Every kernel takes its kernels::KernelContext first, so the macro finds the profiler there: a KernelScope
// temporary spans the call (it lives until the end of the full expression, i.e. past the call's return). Passing
// anything but a KernelContext first does not compile.
#pragma once

#include "engine/check.h"
#include "engine/kernel_profiler.h"
#include "engine/tensor.h"
#include "kernels/context.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16_cpu_twin.h"  // the bf16 policy's kernels: CPU twins in kernels::cpu, same names

namespace engine {

// Reports one kernel call to ctx's profiler, if any: begin here, end when the temporary dies after the call.
class KernelScope {
 public:
  KernelScope(const kernels::KernelContext& ctx, const char* name) : ctx_(ctx) {
    if (ctx_.profiler != nullptr) static_cast<KernelProfiler*>(ctx_.profiler)->begin(ctx_, name);
  }
  ~KernelScope() {
    if (ctx_.profiler != nullptr) static_cast<KernelProfiler*>(ctx_.profiler)->end(ctx_);
  }
  KernelScope(const KernelScope&) = delete;
  KernelScope& operator=(const KernelScope&) = delete;

 private:
  const kernels::KernelContext& ctx_;
};

}  // namespace engine

#define ENGINE_KERNEL_CONTEXT_(ctx, ...) (ctx)  // the first of the kernel's arguments

#ifdef RESBM_HAVE_CUDA
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/kernels.cuh"
#define KERNEL(device, name, ...)                                                                      \
  (::engine::KernelScope(ENGINE_KERNEL_CONTEXT_(__VA_ARGS__, 0), #name),                               \
   (device) == ::engine::Device::cuda ? ::kernels::cuda::name(__VA_ARGS__) : ::kernels::cpu::name(__VA_ARGS__))
#else
#define KERNEL(device, name, ...)                                                                            \
  (::engine::KernelScope(ENGINE_KERNEL_CONTEXT_(__VA_ARGS__, 0), #name),                                     \
   (device) == ::engine::Device::cuda                                                                        \
       ? ::engine::fatal_at(__FILE__, __LINE__,                                                              \
                            "kernel %s on a CUDA tensor, but this binary was built without CUDA (build on a " \
                            "machine with the CUDA toolkit, without --config=nocuda)",                       \
                            #name)                                                                           \
       : ::kernels::cpu::name(__VA_ARGS__))
#endif
