// DeviceContext: thread counts, the CPU GEMM plans, host copies; CUDA without CUDA is a clear error.
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
  // The OpenMP loops and the oneDNN GEMMs share the threads asked for, whatever the wait policy.
  EXPECT_EQ(dc.ctx().num_threads, 3);
  EXPECT_GE(default_num_threads(), 1);
  dc.synchronize();  // nothing to wait for on the CPU
}

TEST(DeviceContext, CpuContextHasGemmPlans) {
  DeviceContext dc(Device::cpu, 1);
  EXPECT_NE(dc.ctx().cpu_gemm_plans, nullptr);
  const std::string line = cpu_gemm_description(dc.ctx());
  EXPECT_NE(line.find("oneDNN"), std::string::npos) << line;
  EXPECT_NE(line.find("bf16 GEMMs: "), std::string::npos) << line;
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
