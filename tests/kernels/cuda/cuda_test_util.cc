// tests/kernels/cuda/cuda_test_util.cc: device detection, the CUDA context, seeds and comparisons for the tests.
// Built a second time with RESBM_TEST_HOST_DEVICE (cuda_test_util_host in BUILD) for the kernels run on the CPU by
// cuda_emulation.h: then "device" memory is host memory, the context's workspace too, and the device is available.
#include "tests/kernels/cuda/cuda_test_util.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <omp.h>

#include "kernels/cuda/bf16_rounding.h"
#ifndef RESBM_TEST_HOST_DEVICE
#include "kernels/cuda/cuda_context.h"
#endif

#ifdef RESBM_HAVE_CUDA
#include "kernels/cuda/cuda_check.h"
#endif

namespace resbm_test {

namespace {
constexpr size_t kWorkspaceBytes = 64ull << 20;

[[maybe_unused]] [[noreturn]] void no_cuda_build() {
  std::fprintf(stderr, "CUDA test helper called in a build without CUDA (skip the test first)\n");
  std::abort();
}
}  // namespace

bool cuda_device_available(std::string* why) {
#if defined(RESBM_TEST_HOST_DEVICE)
  (void)why;
  return true;
#elif defined(RESBM_HAVE_CUDA)
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    *why = std::string("cudaGetDeviceCount failed: ") + cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky-free error so later calls start clean
    return false;
  }
  if (count == 0) {
    *why = "cudaGetDeviceCount returned 0";
    return false;
  }
  return true;
#else
  *why = "built without CUDA (--config=nocuda: RESBM_HAVE_CUDA undefined)";
  return false;
#endif
}

#ifdef RESBM_TEST_HOST_DEVICE
// The workspace filled with 0xFF bytes (NaN as fp32, fp64 and bf16): scratch read before it is written shows.
CudaContext::CudaContext() {
  ctx_.cuda_workspace = std::malloc(kWorkspaceBytes);
  ctx_.cuda_workspace_bytes = kWorkspaceBytes;
  std::memset(ctx_.cuda_workspace, 0xFF, kWorkspaceBytes);
}

CudaContext::~CudaContext() { std::free(ctx_.cuda_workspace); }
#else
CudaContext::CudaContext() : ctx_(kernels::cuda::make_cuda_context(kWorkspaceBytes)) {}

CudaContext::~CudaContext() {
#ifdef RESBM_HAVE_CUDA
  kernels::cuda::destroy_cuda_context(ctx_);
#endif
}
#endif

void CudaContext::sync() const {
#if defined(RESBM_HAVE_CUDA) && !defined(RESBM_TEST_HOST_DEVICE)
  CUDA_CHECK(cudaStreamSynchronize(static_cast<cudaStream_t>(ctx_.cuda_stream)));
#endif
}

kernels::KernelContext cpu_context() {
  kernels::KernelContext ctx;
  ctx.num_threads = omp_get_max_threads();
  return ctx;
}

#ifdef RESBM_TEST_HOST_DEVICE
// Host "device" memory for the emulated kernels: cudaMalloc's 256-byte alignment, with guard zones on both sides,
// checked when the buffer is freed: a kernel that writes out of bounds fails the test there, and one that reads out
// of bounds reads NaN. The guard is 0x7FA5 repeated: a signalling NaN as bf16 and fp32 (huge as fp64), which
// arithmetic does not pass on unchanged (it quiets it), so even a NaN computed from a guard and written back to one
// shows. Layout: [guard 256 (the size at its start) | buffer, rounded up to 256 | guard 256].
namespace {
constexpr size_t kGuardBytes = 256;
unsigned char guard_byte(size_t i) { return i % 2 == 0 ? 0xA5 : 0x7F; }
unsigned char* guarded_base(void* p) { return static_cast<unsigned char*>(p) - kGuardBytes; }
}  // namespace
#endif

void* device_alloc(size_t bytes) {
#if defined(RESBM_TEST_HOST_DEVICE)
  const size_t total = kGuardBytes + (bytes + 255) / 256 * 256 + kGuardBytes;
  unsigned char* base = static_cast<unsigned char*>(std::aligned_alloc(256, total));
  for (size_t i = 0; i < total; i++) base[i] = guard_byte(i);
  std::memcpy(base, &bytes, sizeof(bytes));  // the size, inside the front guard (which is checked past it)
  return base + kGuardBytes;
#elif defined(RESBM_HAVE_CUDA)
  void* p = nullptr;
  CUDA_CHECK(cudaMalloc(&p, bytes == 0 ? 1 : bytes));
  return p;
#else
  (void)bytes;
  no_cuda_build();
#endif
}

void device_free(void* p) {
#if defined(RESBM_TEST_HOST_DEVICE)
  unsigned char* base = guarded_base(p);
  size_t bytes;
  std::memcpy(&bytes, base, sizeof(bytes));
  const size_t total = kGuardBytes + (bytes + 255) / 256 * 256 + kGuardBytes;
  for (size_t i = sizeof(bytes); i < total; i++) {
    if (i == kGuardBytes) i += bytes;  // skip the buffer itself
    if (i < total && base[i] != guard_byte(i)) {
      const long offset = static_cast<long>(i) - static_cast<long>(kGuardBytes);
      ADD_FAILURE() << "a kernel wrote out of bounds of a " << bytes << "-byte device buffer, at byte offset "
                    << offset << " (guard byte changed to " << +base[i] << ")";
      break;
    }
  }
  std::free(base);
#elif defined(RESBM_HAVE_CUDA)
  CUDA_CHECK(cudaFree(p));
#else
  (void)p;
#endif
}

// Synchronous copies: they also order the test's host code after the kernels queued on the context's stream, since
// cudaMemcpy waits for the legacy default stream, which waits for blocking streams (cudaStreamCreate's default).
void to_device(void* dst, const void* src, size_t bytes) {
#if defined(RESBM_TEST_HOST_DEVICE)
  std::memcpy(dst, src, bytes);
#elif defined(RESBM_HAVE_CUDA)
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
#else
  (void)dst, (void)src, (void)bytes;
  no_cuda_build();
#endif
}

void to_host(void* dst, const void* src, size_t bytes) {
#if defined(RESBM_TEST_HOST_DEVICE)
  std::memcpy(dst, src, bytes);
#elif defined(RESBM_HAVE_CUDA)
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
#else
  (void)dst, (void)src, (void)bytes;
  no_cuda_build();
#endif
}

Rng::Rng(const std::string& test_name) {
  if (const char* env = std::getenv("RESBM_TEST_SEED")) {
    seed_ = std::strtoull(env, nullptr, 10);
  } else {
    std::random_device rd;
    seed_ = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }
  gen_.seed(seed_);
  std::printf("[ seed     ] %s: RESBM_TEST_SEED=%llu\n", test_name.c_str(), static_cast<unsigned long long>(seed_));
  std::fflush(stdout);
}

std::vector<float> Rng::floats(size_t n, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) x = uniform(lo, hi);
  return v;
}

std::vector<int32_t> Rng::ints(size_t n, int32_t lo, int32_t hi) {
  std::vector<int32_t> v(n);
  for (auto& x : v) x = integer(lo, hi);
  return v;
}

void expect_close(const std::vector<float>& gpu, const std::vector<float>& cpu, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  double worst_excess = 0.0, max_rel = 0.0;
  size_t worst = 0, bad = 0;
  for (size_t i = 0; i < gpu.size(); i++) {
    const double g = gpu[i], c = cpu[i];
    if (std::isnan(c) && std::isnan(g)) continue;  // both NaN (e.g. a NaN code): agree
    const double diff = std::fabs(g - c);
    const double bound = rtol * std::fabs(c) + atol;
    if (std::fabs(c) > 0) max_rel = std::max(max_rel, diff / std::fabs(c));
    if (!(diff <= bound)) {  // written so that a NaN diff (poison left in place) fails
      bad++;
      const double excess = std::isnan(diff) ? INFINITY : diff / bound;
      if (excess > worst_excess || bad == 1) worst_excess = excess, worst = i;
    }
  }
  if (bad > 0) {
    ADD_FAILURE() << what << ": " << bad << " of " << gpu.size() << " elements out of tolerance (rtol " << rtol
                  << ", atol " << atol << "); worst at " << worst << ": gpu " << gpu[worst] << " cpu " << cpu[worst];
  } else {
    std::printf("[ compare  ] %-28s n=%-9zu max rel err %.3g (rtol %.3g, atol %.3g)\n", what.c_str(), gpu.size(),
                max_rel, rtol, atol);
  }
}

void expect_within(const std::vector<float>& gpu, const std::vector<float>& cpu, const std::vector<double>& bound,
                   const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  ASSERT_EQ(bound.size(), cpu.size()) << what;
  size_t bad = 0, first = 0;
  double worst = 0.0;  // largest |gpu - cpu| / bound seen
  for (size_t i = 0; i < gpu.size(); i++) {
    const double diff = std::fabs(static_cast<double>(gpu[i]) - cpu[i]);
    if (!(diff <= bound[i]) && bad++ == 0) first = i;  // a NaN (poison left in place) fails
    if (bound[i] > 0) worst = std::max(worst, diff / bound[i]);
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << gpu.size() << " out of tolerance; first at " << first
                     << ": gpu " << gpu[first] << " cpu " << cpu[first] << " bound " << bound[first];
  std::printf("[ compare  ] %-28s n=%-9zu largest error %.3g of its bound\n", what.c_str(), gpu.size(), worst);
}

void expect_rerun_bitwise(const std::function<void()>& run, const std::vector<Twin<float>*>& outputs,
                          const std::vector<std::vector<float>>& first, const CudaContext& cuda) {
  ASSERT_EQ(outputs.size(), first.size());
  for (auto* t : outputs) t->reset_device();
  run();
  cuda.sync();
  for (size_t k = 0; k < outputs.size(); k++) {
    const std::vector<float> again = outputs[k]->download();
    ASSERT_EQ(again.size(), first[k].size());
    EXPECT_EQ(0, std::memcmp(again.data(), first[k].data(), again.size() * sizeof(float)))
        << "output " << k << " differs bitwise between two runs on the same inputs (non-deterministic kernel)";
  }
}

void expect_rerun_same_bits(const std::function<void()>& run, const std::vector<DeviceOutput*>& outputs,
                            const CudaContext& cuda) {
  std::vector<std::vector<unsigned char>> first;
  for (auto* o : outputs) first.push_back(o->download_bytes());
  for (auto* o : outputs) o->reset_device();
  run();
  cuda.sync();
  for (size_t k = 0; k < outputs.size(); k++) {
    EXPECT_TRUE(outputs[k]->download_bytes() == first[k])
        << "output " << k << " differs bitwise between two runs on the same inputs (non-deterministic kernel)";
  }
}

std::vector<uint16_t> random_bf16(Rng& rng, size_t n, float lo, float hi) {
  std::vector<uint16_t> v(n);
  for (auto& x : v) x = kernels::bf16::round_nearest(rng.uniform(lo, hi));
  return v;
}

std::vector<float> widen_all(const std::vector<uint16_t>& x) {
  std::vector<float> out(x.size());
  for (size_t i = 0; i < x.size(); i++) out[i] = kernels::bf16::widen(x[i]);
  return out;
}

std::vector<float> widen_abs(const std::vector<uint16_t>& x) {
  std::vector<float> out = widen_all(x);
  for (auto& v : out) v = std::fabs(v);
  return out;
}

void expect_bf16_within(const std::vector<uint16_t>& gpu, const std::vector<uint16_t>& cpu,
                        const std::vector<double>& fp32_bound, const std::string& what) {
  ASSERT_EQ(gpu.size(), cpu.size()) << what;
  ASSERT_EQ(fp32_bound.size(), cpu.size()) << what;
  size_t bad = 0, first = 0, differ = 0;
  for (size_t i = 0; i < gpu.size(); i++) {
    const double g = kernels::bf16::widen(gpu[i]), c = kernels::bf16::widen(cpu[i]);
    differ += gpu[i] != cpu[i];
    const double bound = kBf16Step * std::fabs(c) + fp32_bound[i] + 1e-30;
    if (!(std::fabs(g - c) <= bound) && bad++ == 0) first = i;  // a NaN (poison left in place) fails
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << gpu.size() << " out of tolerance; first at " << first
                     << ": gpu " << kernels::bf16::widen(gpu[first]) << " cpu " << kernels::bf16::widen(cpu[first])
                     << " fp32 bound " << fp32_bound[first];
  std::printf("[ compare  ] %-28s n=%-9zu %zu bf16 values differ (by at most a rounding step, allowed)\n",
              what.c_str(), gpu.size(), differ);
}

void expect_bf16_close(const std::vector<uint16_t>& gpu, const std::vector<uint16_t>& cpu,
                       const std::vector<float>& mag, int K, const std::string& what) {
  std::vector<double> bound(mag.size());
  for (size_t i = 0; i < mag.size(); i++) bound[i] = 2.0 * (K + 2) * kUnitRoundoff * mag[i];
  expect_bf16_within(gpu, cpu, bound, what);
}

bool small_cases_only() {
  const char* v = std::getenv("RESBM_TEST_SMALL");
  return v != nullptr && *v != '\0' && *v != '0';
}

float max_abs(const std::vector<float>& x) {
  float m = 0.0f;
  for (float v : x) m = std::max(m, std::fabs(v));
  return m;
}

}  // namespace resbm_test
