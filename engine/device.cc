// engine/device.cc: DeviceContext (CPU threads and GEMM plans; CUDA stream and BLAS handles) and host <-> device
// copies.
#include "engine/device.h"

#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/check.h"
#include "kernels/cpu/gemm_plans.h"

#ifdef RESBM_HAVE_CUDA
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "kernels/cuda/blas.h"

#define DEVICE_CUDA_CHECK(call)                                                                       \
  do {                                                                                                \
    cudaError_t err_ = (call);                                                                        \
    if (err_ != cudaSuccess) ENGINE_FATAL("CUDA error %s in %s", cudaGetErrorString(err_), #call);    \
  } while (0)
#define DEVICE_CUBLAS_CHECK(call)                                                    \
  do {                                                                               \
    int status_ = static_cast<int>(call);                                            \
    if (status_ != 0) ENGINE_FATAL("cuBLAS error %d in %s", status_, #call);         \
  } while (0)
#endif

namespace engine {

namespace {

[[noreturn]] void no_cuda(const char* what) {
  ENGINE_FATAL("%s needs CUDA, but this binary was built without it (RESBM_HAVE_CUDA unset; build on a machine "
               "with the CUDA toolkit, without --config=nocuda)",
               what);
}

#ifdef RESBM_HAVE_CUDA
constexpr size_t kCublasLtWorkspaceBytes = 64ull << 20;  // cuBLASLt and the kernels' scratch (kernels/cuda)
#endif

}  // namespace

int default_num_threads() {
  if (const char* env = std::getenv("OMP_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return omp_get_num_procs();
}

std::string cpu_gemm_description(const kernels::KernelContext& ctx) {
  if (ctx.cpu_gemm_plans == nullptr) return "no CPU GEMM plans in this context";
  return kernels::cpu::describe_cpu_gemms(*static_cast<const kernels::cpu::GemmPlans*>(ctx.cpu_gemm_plans));
}

bool openmp_wait_policy_set() {
  return std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr;
}

void reexec_with_passive_openmp(char** argv) {
  if (openmp_wait_policy_set() || argv == nullptr || argv[0] == nullptr) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);  // set before exec: the new image sees it and does not exec again
  execv("/proc/self/exe", argv);
  // exec failed (no /proc?): carry on with libgomp's defaults (idle workers spin for a while after each region).
}

DeviceContext::DeviceContext(Device device, int num_threads) : device_(device) {
  const int threads = num_threads > 0 ? num_threads : default_num_threads();
  // The OpenMP loops and the oneDNN GEMMs share these threads (one libgomp team: kernels/cpu/gemm_plans.h).
  ctx_.num_threads = threads;
  if (device == Device::cpu) {
    cpu_gemm_plans_ = std::make_unique<kernels::cpu::GemmPlans>();
    ctx_.cpu_gemm_plans = cpu_gemm_plans_.get();
  }
  if (device == Device::cuda) {
#ifdef RESBM_HAVE_CUDA
    cudaStream_t stream;
    DEVICE_CUDA_CHECK(cudaStreamCreate(&stream));
    cublasLtHandle_t lt;
    DEVICE_CUBLAS_CHECK(cublasLtCreate(&lt));
    cublasHandle_t blas;
    DEVICE_CUBLAS_CHECK(cublasCreate(&blas));
    DEVICE_CUBLAS_CHECK(cublasSetStream(blas, stream));
    void* workspace = nullptr;
    DEVICE_CUDA_CHECK(cudaMalloc(&workspace, kCublasLtWorkspaceBytes));
    ctx_.cuda_stream = stream;
    ctx_.cublaslt_handle = lt;
    ctx_.cublas_handle = blas;
    ctx_.cuda_workspace = workspace;
    ctx_.cuda_workspace_bytes = kCublasLtWorkspaceBytes;
    ctx_.cuda_gemm_plans = kernels::cuda::create_lt_plan_cache();  // each GEMM shape's heuristic runs once
#else
    no_cuda("DeviceContext(Device::cuda)");
#endif
  }
}

void DeviceContext::enable_bf16_gemms(size_t max_gemm_elements) {
  // + 3 x 128 elements: the CUDA kernels start each operand copy at a 256-byte boundary (kernels/cuda/matmul.cu).
  const size_t elements = max_gemm_elements + 3 * 128;
  if (ctx_.gemm_scratch != nullptr) release_gemm_scratch();
  if (device_ == Device::cuda) {
#ifdef RESBM_HAVE_CUDA
    ctx_.gemm_scratch_bytes = elements * sizeof(uint16_t);
    DEVICE_CUDA_CHECK(cudaMalloc(&ctx_.gemm_scratch, ctx_.gemm_scratch_bytes));
#else
    no_cuda("DeviceContext::enable_bf16_gemms");
#endif
  } else {
    // fp32 copies where the CPU has no bf16 (bf16 copies need half); 64-byte aligned for the GEMM's loads.
    ctx_.gemm_scratch_bytes = (elements * sizeof(float) + 63) / 64 * 64;
    ctx_.gemm_scratch = std::aligned_alloc(64, ctx_.gemm_scratch_bytes);
    if (ctx_.gemm_scratch == nullptr) {
      std::fprintf(stderr, "DeviceContext: cannot allocate %zu bytes for the bf16 GEMM operands\n",
                   ctx_.gemm_scratch_bytes);
      std::exit(1);
    }
  }
  ctx_.gemm_precision = kernels::GemmPrecision::bf16;
}

void DeviceContext::release_gemm_scratch() {
  if (ctx_.gemm_scratch == nullptr) return;
#ifdef RESBM_HAVE_CUDA
  if (device_ == Device::cuda) {
    cudaStreamSynchronize(static_cast<cudaStream_t>(ctx_.cuda_stream));
    cudaFree(ctx_.gemm_scratch);
  }
#endif
  if (device_ == Device::cpu) std::free(ctx_.gemm_scratch);
  ctx_.gemm_scratch = nullptr;
  ctx_.gemm_scratch_bytes = 0;
}

DeviceContext::~DeviceContext() {
  release_gemm_scratch();
#ifdef RESBM_HAVE_CUDA
  if (device_ == Device::cuda) {
    cudaStreamSynchronize(static_cast<cudaStream_t>(ctx_.cuda_stream));
    kernels::cuda::destroy_lt_plan_cache(static_cast<kernels::cuda::LtPlanCache*>(ctx_.cuda_gemm_plans));
    cudaFree(ctx_.cuda_workspace);
    cublasDestroy(static_cast<cublasHandle_t>(ctx_.cublas_handle));
    cublasLtDestroy(static_cast<cublasLtHandle_t>(ctx_.cublaslt_handle));
    cudaStreamDestroy(static_cast<cudaStream_t>(ctx_.cuda_stream));
  }
#endif
}

void DeviceContext::synchronize() const {
#ifdef RESBM_HAVE_CUDA
  if (device_ == Device::cuda) DEVICE_CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(ctx_.cuda_stream)));
#endif
}

void copy_to_host(void* dst, const Tensor& src) {
  if (src.device == Device::cuda) {
#ifdef RESBM_HAVE_CUDA
    DEVICE_CUDA_CHECK(cudaMemcpy(dst, src.data, src.nbytes(), cudaMemcpyDeviceToHost));
#else
    no_cuda("copy_to_host from a CUDA tensor");
#endif
  } else {
    std::memcpy(dst, src.data, src.nbytes());
  }
}

void copy_from_host(const Tensor& dst, const void* src) {
  if (dst.device == Device::cuda) {
#ifdef RESBM_HAVE_CUDA
    DEVICE_CUDA_CHECK(cudaMemcpy(dst.data, src, dst.nbytes(), cudaMemcpyHostToDevice));
#else
    no_cuda("copy_from_host to a CUDA tensor");
#endif
  } else {
    std::memcpy(dst.data, src, dst.nbytes());
  }
}

void copy_tensor(const Tensor& dst, const Tensor& src) {
  ENGINE_CHECK(dst.nbytes() == src.nbytes(), "copy_tensor: %s <- %s: sizes differ", dst.describe().c_str(),
               src.describe().c_str());
  if (dst.device == Device::cpu && src.device == Device::cpu) {
    std::memmove(dst.data, src.data, src.nbytes());
    return;
  }
#ifdef RESBM_HAVE_CUDA
  DEVICE_CUDA_CHECK(cudaMemcpy(dst.data, src.data, src.nbytes(), cudaMemcpyDefault));
#else
  no_cuda("copy_tensor with a CUDA tensor");
#endif
}

}  // namespace engine
