// kernels/cuda/cuda_check.h: CUDA_CHECK and CUBLAS_CHECK, error checks that abort with file:line and a hint.
// Host-only (plain C++ may include it); every CUDA call in kernels/cuda and engine/ goes through one of these.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

namespace kernels::cuda {

// Aborts: a CUDA error leaves the context in an unknown state, so there is nothing sensible to return to.
[[noreturn]] inline void cuda_fail(cudaError_t err, const char* what, const char* file, int line) {
  std::fprintf(stderr,
               "%s:%d: CUDA error %s (%s) in %s\n"
               "  hint: no device / insufficient driver: is a GPU visible here (nvidia-smi), and the driver as new as\n"
               "  the toolkit the binary was built with? An illegal address or launch failure usually means a wrong\n"
               "  shape or an unallocated pointer: rerun under `compute-sanitizer --tool memcheck` or with\n"
               "  CUDA_LAUNCH_BLOCKING=1 to find the kernel.\n",
               file, line, cudaGetErrorName(err), cudaGetErrorString(err), what);
  std::abort();
}

[[noreturn]] inline void cublas_fail(cublasStatus_t status, const char* what, const char* file, int line) {
  std::fprintf(stderr,
               "%s:%d: cuBLAS error %d (%s) in %s\n"
               "  hint: NOT_SUPPORTED / INVALID_VALUE usually means a shape, leading dimension or alignment that\n"
               "  cuBLASLt has no algorithm for, or a workspace too small; NOT_INITIALIZED: no handle in the context.\n",
               file, line, static_cast<int>(status), cublasGetStatusString(status), what);
  std::abort();
}

}  // namespace kernels::cuda

#define CUDA_CHECK(call)                                                            \
  do {                                                                              \
    cudaError_t resbm_err_ = (call);                                                \
    if (resbm_err_ != cudaSuccess) ::kernels::cuda::cuda_fail(resbm_err_, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(call)                                                          \
  do {                                                                              \
    cublasStatus_t resbm_st_ = (call);                                              \
    if (resbm_st_ != CUBLAS_STATUS_SUCCESS) ::kernels::cuda::cublas_fail(resbm_st_, #call, __FILE__, __LINE__); \
  } while (0)

// Checks the launch of the kernel just queued (bad configuration), without synchronising.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
