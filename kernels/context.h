// kernels/context.h: KernelContext, the one explicit handle every kernel takes (CPU and CUDA twins alike).
#pragma once

#include <cstddef>

namespace kernels {

// What a kernel needs beyond its arguments. The CPU kernels use only num_threads; the CUDA kernels use the stream,
// the cuBLASLt handle and the workspace. Built once per process (engine/device.h) and passed by reference, so that
// no kernel touches global mutable state. The pointers are opaque here so that this header needs no CUDA headers.
struct KernelContext {
  int num_threads = 1;                    // CPU: threads for the OpenMP loops (OpenBLAS: engine/device.h)
  void* cuda_stream = nullptr;            // cudaStream_t
  void* cublaslt_handle = nullptr;        // cublasLtHandle_t
  void* cublas_handle = nullptr;          // cublasHandle_t (batched GEMMs in attention)
  void* cuda_workspace = nullptr;         // device scratch for cuBLASLt
  size_t cuda_workspace_bytes = 0;
};

}  // namespace kernels
