// kernels/cpu/embedding.cc: token + position embedding, forward and backward.
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"

namespace kernels::cpu {

void embedding_forward(const KernelContext& ctx, float* out, const int32_t* tokens, const float* wte,
                       const float* wpe, int B, int T, int C) {
  const int64_t rows = static_cast<int64_t>(B) * T;
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(rows) * C)) schedule(static)
  for (int64_t bt = 0; bt < rows; bt++) {
    const int t = static_cast<int>(bt % T);
    float* o = out + bt * C;                                 // (C)
    const float* e = wte + static_cast<int64_t>(tokens[bt]) * C;  // (C)
    const float* p = wpe + static_cast<int64_t>(t) * C;        // (C)
    for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
  }
}

// Tokens repeat, so dwte rows can collide: each thread owns a block of channels and walks every position in order,
// which keeps the sum order fixed (deterministic) without atomics. dwpe[t] sums over b in order.
void embedding_backward(const KernelContext& ctx, float* dwte, float* dwpe, const float* dout,
                        const int32_t* tokens, int B, int T, int C) {
  const int64_t rows = static_cast<int64_t>(B) * T;
  constexpr int kBlock = 64;
  const int num_blocks = (C + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(rows) * C)) schedule(static)
  for (int blk = 0; blk < num_blocks; blk++) {
    const int c0 = blk * kBlock;
    const int c1 = c0 + kBlock < C ? c0 + kBlock : C;
    for (int64_t bt = 0; bt < rows; bt++) {
      const float* d = dout + bt * C;
      float* w = dwte + static_cast<int64_t>(tokens[bt]) * C;
      float* p = dwpe + static_cast<int64_t>(bt % T) * C;
      for (int c = c0; c < c1; c++) {
        w[c] += d[c];
        p[c] += d[c];
      }
    }
  }
}

}  // namespace kernels::cpu
