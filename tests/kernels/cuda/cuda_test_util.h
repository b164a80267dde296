// tests/kernels/cuda/cuda_test_util.h: what every CUDA-vs-CPU kernel test needs: a visible skip without a device,
// a CUDA KernelContext, fresh printed seeds, "twin" buffers that hold the same data on the host (for the CPU kernel)
// and on the device (for the CUDA kernel), poisoning, tolerance checks and a bitwise determinism check.
//
// Plain C++ (g++): the tests call the CUDA runtime API only, never device code.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kernels/context.h"

namespace resbm_test {

// True when a CUDA device can be used; otherwise `why` says why not (no build support, no device, driver error).
bool cuda_device_available(std::string* why);

// Skips the test visibly (GTEST_SKIP with the reason) when there is no usable CUDA device.
#define REQUIRE_CUDA_DEVICE()                                                    \
  do {                                                                           \
    std::string resbm_why_;                                                      \
    if (!::resbm_test::cuda_device_available(&resbm_why_)) {                     \
      GTEST_SKIP() << "no CUDA device: " << resbm_why_;                          \
    }                                                                            \
  } while (0)

// A CUDA KernelContext (stream, cuBLAS + cuBLASLt handles, 64 MiB workspace) for one test; destroyed at scope end.
class CudaContext {
 public:
  CudaContext();
  ~CudaContext();
  CudaContext(const CudaContext&) = delete;
  CudaContext& operator=(const CudaContext&) = delete;
  const kernels::KernelContext& ctx() const { return ctx_; }
  void sync() const;

 private:
  kernels::KernelContext ctx_;
};

// The CPU twins' context: the machine's threads.
kernels::KernelContext cpu_context();

// Device memory helpers (abort on CUDA errors with file:line).
void* device_alloc(size_t bytes);
void device_free(void* p);
void to_device(void* dst, const void* src, size_t bytes);
void to_host(void* dst, const void* src, size_t bytes);

// A fresh seed per test (std::random_device), printed so that a failure can be replayed with RESBM_TEST_SEED=<n>.
class Rng {
 public:
  explicit Rng(const std::string& test_name);
  uint64_t seed() const { return seed_; }
  float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen_); }
  int32_t integer(int32_t lo, int32_t hi) { return std::uniform_int_distribution<int32_t>(lo, hi)(gen_); }
  std::vector<float> floats(size_t n, float lo = -1.0f, float hi = 1.0f);
  std::vector<int32_t> ints(size_t n, int32_t lo, int32_t hi);

 private:
  uint64_t seed_;
  std::mt19937_64 gen_;
};

// What the rerun check needs of an output, whatever its element type.
class DeviceOutput {
 public:
  virtual ~DeviceOutput() = default;
  virtual void reset_device() = 0;
  virtual std::vector<unsigned char> download_bytes() const = 0;
};

// The same data on the host and on the device. `initial` is kept so that outputs can be reset before a rerun.
template <typename T>
class Twin : public DeviceOutput {
 public:
  explicit Twin(std::vector<T> initial) : initial_(std::move(initial)), host_(initial_) {
    dev_ = static_cast<T*>(device_alloc(bytes()));
    reset_device();
  }
  ~Twin() { device_free(dev_); }
  Twin(const Twin&) = delete;
  Twin& operator=(const Twin&) = delete;

  // Outputs poisoned with NaN (forward kernels must overwrite every element).
  static std::vector<T> nans(size_t n) { return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN()); }

  T* cpu() { return host_.data(); }
  T* gpu() { return dev_; }
  size_t size() const { return initial_.size(); }
  size_t bytes() const { return initial_.size() * sizeof(T); }
  const std::vector<T>& host() const { return host_; }
  std::vector<T> download() const {
    std::vector<T> out(size());
    if (!out.empty()) to_host(out.data(), dev_, bytes());
    return out;
  }
  void reset_device() override {
    if (!initial_.empty()) to_device(dev_, initial_.data(), bytes());
  }
  std::vector<unsigned char> download_bytes() const override {
    std::vector<unsigned char> out(bytes());
    if (!out.empty()) to_host(out.data(), dev_, bytes());
    return out;
  }

 private:
  std::vector<T> initial_;
  std::vector<T> host_;
  T* dev_ = nullptr;
};

// Every element: finite where the CPU result is finite, and |gpu - cpu| <= rtol * |cpu| + atol. Reports the worst
// element (index, both values) and the largest relative error seen. `what` names the tensor in the message.
void expect_close(const std::vector<float>& gpu, const std::vector<float>& cpu, double rtol, double atol,
                  const std::string& what);

// Every element within its own bound: |gpu - cpu| <= bound[i] (fp32 results of reductions whose bound is derived
// per element, e.g. gamma(n) times the sum of the terms' absolute values).
void expect_within(const std::vector<float>& gpu, const std::vector<float>& cpu, const std::vector<double>& bound,
                   const std::string& what);

// Bitwise equality (integer codes; bit-exact kernels).
template <typename T>
void expect_bitwise_equal(const std::vector<T>& gpu, const std::vector<T>& cpu, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  for (size_t i = 0; i < gpu.size(); i++) {
    if (std::memcmp(&gpu[i], &cpu[i], sizeof(T)) != 0) {
      ADD_FAILURE() << what << ": first difference at " << i << " of " << gpu.size() << ": gpu " << +gpu[i]
                    << " cpu " << +cpu[i];
      return;
    }
  }
}

// Determinism: resets the given outputs to their initial values, runs `run` again (on the GPU) and checks that
// every output is bitwise the same as after the first run (`first` holds those results, in the same order).
void expect_rerun_bitwise(const std::function<void()>& run, const std::vector<Twin<float>*>& outputs,
                          const std::vector<std::vector<float>>& first, const CudaContext& cuda);

// The same for outputs of any element type (bf16 and fp32 together): keeps what the outputs hold now (the first
// run's results), resets them, runs `run` again and checks every output bitwise against the first run.
void expect_rerun_same_bits(const std::function<void()>& run, const std::vector<DeviceOutput*>& outputs,
                            const CudaContext& cuda);

// ---- bf16 (stored as uint16_t, kernels/cuda/bf16_rounding.h)
constexpr double kUnitRoundoff = 1.0 / (1 << 24);  // fp32
// One bf16 step relative to a value: bf16 keeps 8 significant bits, so a value is rounded to within 2^-8 of itself
// (relative), and two neighbouring bf16 values differ by at most 2^-7 of the smaller one (the spacing at the bottom
// of a binade, e.g. 1 and 1 + 2^-7). Two sides that round fp32 values a hair apart to different neighbours differ by
// this much.
constexpr double kBf16Step = 1.0 / (1 << 7);

// Random values rounded to bf16 (nearest even).
std::vector<uint16_t> random_bf16(Rng& rng, size_t n, float lo = -1.0f, float hi = 1.0f);
// Widened to fp32 (exact), and their absolute values.
std::vector<float> widen_all(const std::vector<uint16_t>& x);
std::vector<float> widen_abs(const std::vector<uint16_t>& x);

// bf16 results that may differ by fp32 reduction order: every element within one bf16 step of |cpu| plus
// fp32_bound[i], the bound on the difference of the two fp32 values before rounding. Prints how many differ.
void expect_bf16_within(const std::vector<uint16_t>& gpu, const std::vector<uint16_t>& cpu,
                        const std::vector<double>& fp32_bound, const std::string& what);
// The same for dot products of length K: fp32 bound 2 (K+2) u mag[i], mag the sum of the products' absolute values.
void expect_bf16_close(const std::vector<uint16_t>& gpu, const std::vector<uint16_t>& cpu,
                       const std::vector<float>& mag, int K, const std::string& what);

// Under a sanitizer (RESBM_TEST_SMALL=1, set by tools/gpu/check.sh) only the first `keep` cases of a test run: the
// small, odd ones, which reach every code path at a fraction of the instrumented time. Otherwise all of them.
bool small_cases_only();
template <typename T>
std::vector<T> cases(std::initializer_list<T> all, size_t keep) {
  std::vector<T> v(all);
  if (small_cases_only() && v.size() > keep) v.resize(keep);
  return v;
}

// Largest |x|, for tolerances that scale with the data.
float max_abs(const std::vector<float>& x);

}  // namespace resbm_test
