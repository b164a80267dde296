// DeviceContext: thread counts, OpenBLAS kernel choice, host copies; CUDA without CUDA is a clear error.
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/device.h"
#include "engine/memory.h"
#include "gtest/gtest.h"

namespace engine {
namespace {

TEST(DeviceContext, CpuThreads) {
  DeviceContext dc(Device::cpu, 3);
  EXPECT_EQ(dc.device(), Device::cpu);
  // OpenMP loops run multi-threaded only when the wait policy keeps idle workers from spinning.
  EXPECT_EQ(dc.ctx().num_threads, openmp_wait_policy_set() ? 3 : 1);
  EXPECT_GE(default_num_threads(), 1);
  dc.synchronize();  // nothing to wait for on the CPU
}

TEST(DeviceContext, OpenBlasUsesVectorKernelsOnVectorCpus) {
  DeviceContext dc(Device::cpu);
  const std::string core = blas_core_name();
  if (core == "unknown") GTEST_SKIP() << "this OpenBLAS does not report its kernels";
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr && std::string(std::getenv("OPENBLAS_CORETYPE")) == core &&
      core == "Prescott") {
    GTEST_SKIP() << "OPENBLAS_CORETYPE=Prescott asked for by the user";
  }
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    // The SSE3 fallback makes every sgemm ~5x slower (engine/device.h).
    EXPECT_NE(core, "Prescott");
    EXPECT_NE(core, "Core2");
    EXPECT_NE(core, "Nehalem");
  }
}

TEST(DeviceContext, HostCopies) {
  Arena arena("copies", 1024);
  Tensor a = arena.alloc({5}), b = arena.alloc({5});
  const float src[5] = {1, 2, 3, 4, 5};
  copy_from_host(a, src);
  copy_tensor(b, a);
  float dst[5] = {0};
  copy_to_host(dst, b);
  EXPECT_EQ(std::memcmp(src, dst, sizeof(src)), 0);
}

TEST(DeviceContextDeathTest, CudaWithoutCuda) {
#ifdef RESBM_HAVE_CUDA
  GTEST_SKIP() << "built with CUDA";
#else
  EXPECT_DEATH({ DeviceContext dc(Device::cuda); }, "built without it");
#endif
}

}  // namespace
}  // namespace engine
