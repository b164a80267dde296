// kernels/cpu/parallel.h: how many OpenMP threads a loop gets. Small loops run on one thread: waking the team
// costs more than the work (and far more on a loaded machine, where a descheduled thread stalls the barrier).
#pragma once

#include <cstddef>

#include "kernels/context.h"

namespace kernels::cpu {

constexpr size_t kParallelMinWork = size_t{1} << 15;  // about 10 us of simple float work

inline int threads_for(const KernelContext& ctx, size_t work) {
  return work >= kParallelMinWork ? ctx.num_threads : 1;
}

}  // namespace kernels::cpu
