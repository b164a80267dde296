// engine/dispatch.h: KERNEL(device, name, args...) calls kernels::cuda::name or kernels::cpu::name by device.
//
// The CUDA kernels (kernels/cuda/kernels.cuh, target //kernels/cuda:kernels) have the CPU kernels' signatures. That
// target defines RESBM_HAVE_CUDA for everything that depends on it, so enabling them in the engine is one line:
// add "//kernels/cuda:kernels" to the deps of //engine:engine. Internal to the engine (and its optimizers).
#pragma once

#include "engine/check.h"
#include "engine/tensor.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16_cpu_twin.h"  // the bf16 policy's kernels: CPU twins in kernels::cpu, same names

#ifdef RESBM_HAVE_CUDA
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/kernels.cuh"
#define KERNEL(device, name, ...) \
  ((device) == ::engine::Device::cuda ? ::kernels::cuda::name(__VA_ARGS__) : ::kernels::cpu::name(__VA_ARGS__))
#else
#define KERNEL(device, name, ...)                                                                          \
  ((device) == ::engine::Device::cuda                                                                      \
       ? ::engine::fatal_at(__FILE__, __LINE__,                                                            \
                            "kernel %s on a CUDA tensor, but this binary was built without CUDA (build on a " \
                            "machine with the CUDA toolkit, without --config=nocuda)",                     \
                            #name)                                                                         \
       : ::kernels::cpu::name(__VA_ARGS__))
#endif
