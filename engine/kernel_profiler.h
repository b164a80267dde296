// engine/kernel_profiler.h: KernelProfiler, the optional timing of every engine kernel call by kernel name, and the
// phases (GEMMs, attention, layernorm, ...) those names are grouped into for a step's breakdown.
//
// How it is used (tools/bench/gpu_step): DeviceContext::set_profiler(&profiler), run steps, then collect() after
// the device has finished them; totals() and by_category() report. engine/dispatch.h's KERNEL macro calls begin()
// and end() around each kernel call whose KernelContext carries the profiler; a context without one (every
// training run) pays a null test before and after each call, nothing else.
//
// Timing: on the CPU a steady_clock interval around the call; on CUDA a pair of events recorded on the context's
// stream around the launch, read in collect(). A CUDA interval is the kernel's GPU time, plus, when the GPU waits on
// the host (a launch-bound step), the host's time to launch it; gaps between kernels belong to no kernel (the step
// report shows them as "outside kernels").
// The events are created once, in the constructor: recording allocates nothing. Calls beyond `capacity` between
// two collect()s are not timed, only counted (dropped()). One thread: the local executor runs its stages in order.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "kernels/context.h"

namespace engine {

// A kernel name's phase, for the step breakdown: "GEMMs", "attention forward", "attention backward", "layernorm",
// "embedding", "elementwise", "cross-entropy", "optimizer", "boundary codes", or "other". By name only: Muon's
// axpy updates count as elementwise, its Newton-Schulz products as GEMMs.
const char* kernel_category(const std::string& name);
// Every category, in report order ("other" last).
const std::vector<std::string>& kernel_categories();

class KernelProfiler {
 public:
  // Calls and total milliseconds of one kernel name, or of one category.
  struct Total {
    std::string name;
    int64_t calls = 0;
    double ms = 0.0;
  };

  explicit KernelProfiler(Device device, size_t capacity = 16384);
  ~KernelProfiler();
  KernelProfiler(const KernelProfiler&) = delete;
  KernelProfiler& operator=(const KernelProfiler&) = delete;

  // Around one kernel call (engine/dispatch.h). `name` must outlive the profiler (KERNEL passes a string literal).
  void begin(const kernels::KernelContext& ctx, const char* name);
  void end(const kernels::KernelContext& ctx);

  // Once the recorded calls have finished on the device (CUDA: after the stream is synchronized): adds their times
  // to the totals and empties the recording for the next calls. May allocate (not part of a timed step).
  void collect();
  // Everything collected so far, per kernel name (sorted by name) and per category (kernel_categories() order,
  // categories without calls left out); and the calls that found the recording full.
  std::vector<Total> totals() const;
  std::vector<Total> by_category() const;
  int64_t dropped() const { return dropped_; }
  void clear();  // totals and dropped back to zero

 private:
  Device device_;
  std::vector<const char*> names_;  // (capacity): the recorded calls' kernel names
  std::vector<double> cpu_ms_;      // (capacity): CPU intervals
  std::vector<void*> events_;       // (2 * capacity): CUDA start and stop events (cudaEvent_t)
  size_t recorded_ = 0;
  bool open_ = false;  // between begin() and end()
  std::chrono::steady_clock::time_point cpu_start_;
  int64_t dropped_ = 0;
  std::map<std::string, Total> totals_;
};

}  // namespace engine
