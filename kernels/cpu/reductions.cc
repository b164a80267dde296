// kernels/cpu/reductions.cc: mean and sum of squares, in double, over fixed-size chunks summed in order, so the
// result is the same bits whatever the thread count.
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

namespace {

constexpr size_t kChunk = 1 << 14;

// Sums f(x[i]) in double: chunk partial sums (each in index order), then the partials in chunk order.
template <typename F>
double chunked_sum(const KernelContext& ctx, const float* x, size_t N, F f) {
  const size_t num_chunks = (N + kChunk - 1) / kChunk;
  std::vector<double> partial(num_chunks, 0.0);
#pragma omp parallel for num_threads(threads_for(ctx, N)) schedule(static)
  for (size_t c = 0; c < num_chunks; c++) {
    const size_t i0 = c * kChunk;
    const size_t i1 = i0 + kChunk < N ? i0 + kChunk : N;
    double acc = 0.0;  // per-lane partial sums, combined in a fixed order: the same bits on every run
#pragma omp simd reduction(+ : acc)
    for (size_t i = i0; i < i1; i++) acc += f(x[i]);
    partial[c] = acc;
  }
  double total = 0.0;
  for (double p : partial) total += p;
  return total;
}

}  // namespace

void mean_forward(const KernelContext& ctx, float* out, const float* inp, size_t N) {
  const double sum = chunked_sum(ctx, inp, N, [](float v) { return static_cast<double>(v); });
  out[0] = N == 0 ? 0.0f : static_cast<float>(sum / static_cast<double>(N));
}

void sum_squares(const KernelContext& ctx, float* out, const float* x, size_t N) {
  out[0] = static_cast<float>(chunked_sum(ctx, x, N, [](float v) {
    const double d = v;
    return d * d;
  }));
}

}  // namespace kernels::cpu
