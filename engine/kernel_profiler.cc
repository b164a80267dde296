// engine/kernel_profiler.cc: KernelProfiler (steady_clock on the CPU, event pairs on CUDA) and the kernel-name ->
// phase table.
#include "engine/kernel_profiler.h"

#include "engine/check.h"

#ifdef RESBM_HAVE_CUDA
#include "kernels/cuda/cuda_check.h"  // CUDA_CHECK: host-only
#endif

namespace engine {

namespace {

// Substring of a kernel name -> its phase; the first match wins, so the more specific patterns come first. The
// names are those engine/ops.cc, engine/optim and engine/pipeline pass to KERNEL (kernels/cpu/kernels.h).
struct Rule {
  const char* pattern;
  const char* category;
};
constexpr Rule kRules[] = {
    {"matmul", "GEMMs"},
    {"gemm", "GEMMs"},
    {"attention_forward", "attention forward"},  // flash_attention_forward_bf16, and fp32's attention_forward
    {"attention_backward", "attention backward"},
    {"layernorm", "layernorm"},
    {"embedding", "embedding"},
    {"softmax_crossentropy", "cross-entropy"},
    {"mean_forward", "cross-entropy"},  // the mean of the per-token losses
    {"adamw", "optimizer"},
    {"muon", "optimizer"},
    {"sum_squares", "optimizer"},  // the gradient norm (clipping) and Muon's normalisation
    // The boundary codes: encoding and decoding what crosses a stage boundary (engine/pipeline/wire_layout.cc, the
    // bottlenecks' slices and pads, the wire round trip in engine/ops.cc).
    {"quantize", "boundary codes"},
    {"float_to_bf16", "boundary codes"},
    {"bf16_to_float", "boundary codes"},
    {"slice_columns", "boundary codes"},
    {"gelu", "elementwise"},
    {"add", "elementwise"},
    {"accumulate", "elementwise"},
    {"axpy", "elementwise"},
    {"scale", "elementwise"},
    {"fill", "elementwise"},
};

}  // namespace

const char* kernel_category(const std::string& name) {
  for (const Rule& r : kRules) {
    if (name.find(r.pattern) != std::string::npos) return r.category;
  }
  return "other";
}

const std::vector<std::string>& kernel_categories() {
  static const std::vector<std::string> all = {
      "GEMMs",     "attention forward", "attention backward", "layernorm",      "embedding",
      "elementwise", "cross-entropy",   "optimizer",          "boundary codes", "other"};
  return all;
}

KernelProfiler::KernelProfiler(Device device, size_t capacity) : device_(device), names_(capacity) {
  if (device_ == Device::cpu) {
    cpu_ms_.resize(capacity);
    return;
  }
#ifdef RESBM_HAVE_CUDA
  events_.resize(2 * capacity);
  for (void*& e : events_) {
    cudaEvent_t event;
    CUDA_CHECK(cudaEventCreate(&event));
    e = event;
  }
#else
  ENGINE_FATAL("KernelProfiler on CUDA, but this binary was built without CUDA (build without --config=nocuda)");
#endif
}

KernelProfiler::~KernelProfiler() {
#ifdef RESBM_HAVE_CUDA
  for (void* e : events_) cudaEventDestroy(static_cast<cudaEvent_t>(e));
#endif
}

void KernelProfiler::begin(const kernels::KernelContext& ctx, const char* name) {
  ENGINE_CHECK(!open_, "KernelProfiler: kernel %s began inside %s (KERNEL calls do not nest)", name,
               names_[recorded_]);
  if (recorded_ == names_.size()) {
    ++dropped_;
    return;
  }
  open_ = true;
  names_[recorded_] = name;
  if (device_ == Device::cpu) {
    cpu_start_ = std::chrono::steady_clock::now();
    return;
  }
#ifdef RESBM_HAVE_CUDA
  CUDA_CHECK(
      cudaEventRecord(static_cast<cudaEvent_t>(events_[2 * recorded_]), static_cast<cudaStream_t>(ctx.cuda_stream)));
#else
  (void)ctx;
#endif
}

void KernelProfiler::end(const kernels::KernelContext& ctx) {
  if (!open_) return;  // begin() found the recording full
  open_ = false;
  if (device_ == Device::cpu) {
    cpu_ms_[recorded_] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - cpu_start_).count();
  } else {
#ifdef RESBM_HAVE_CUDA
    CUDA_CHECK(cudaEventRecord(static_cast<cudaEvent_t>(events_[2 * recorded_ + 1]),
                                        static_cast<cudaStream_t>(ctx.cuda_stream)));
#else
    (void)ctx;
#endif
  }
  ++recorded_;
}

void KernelProfiler::collect() {
  ENGINE_CHECK(!open_, "KernelProfiler::collect inside a kernel call (%s)", names_[recorded_]);
  for (size_t i = 0; i < recorded_; ++i) {
    double ms = 0.0;
    if (device_ == Device::cpu) {
      ms = cpu_ms_[i];
    } else {
#ifdef RESBM_HAVE_CUDA
      const auto stop = static_cast<cudaEvent_t>(events_[2 * i + 1]);
      CUDA_CHECK(cudaEventSynchronize(stop));
      float elapsed = 0.0f;
      CUDA_CHECK(cudaEventElapsedTime(&elapsed, static_cast<cudaEvent_t>(events_[2 * i]), stop));
      ms = elapsed;
#endif
    }
    Total& t = totals_[names_[i]];
    t.name = names_[i];
    ++t.calls;
    t.ms += ms;
  }
  recorded_ = 0;
}

std::vector<KernelProfiler::Total> KernelProfiler::totals() const {
  std::vector<Total> out;
  for (const auto& kv : totals_) out.push_back(kv.second);
  return out;
}

std::vector<KernelProfiler::Total> KernelProfiler::by_category() const {
  std::vector<Total> out;
  for (const std::string& category : kernel_categories()) {
    Total sum;
    sum.name = category;
    for (const auto& kv : totals_) {
      if (category != kernel_category(kv.first)) continue;
      sum.calls += kv.second.calls;
      sum.ms += kv.second.ms;
    }
    if (sum.calls > 0) out.push_back(sum);
  }
  return out;
}

void KernelProfiler::clear() {
  totals_.clear();
  dropped_ = 0;
}

}  // namespace engine
