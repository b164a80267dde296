// kernels/cpu/attention.cc: causal multi-head self-attention over a fused qkv tensor, forward and backward.
//
// Hand loops (the inner loops run over HS contiguous floats and vectorise). Each (b, head) writes only its own
// slices of out and dqkv, so the parallel loops need no reduction across threads: deterministic.
#include <cmath>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vecmath.h"

namespace kernels::cpu {

void attention_forward(const KernelContext& ctx, float* out, float* att, const float* qkv, int B, int T, int C,
                       int NH) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int64_t tasks = static_cast<int64_t>(B) * NH * T;
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(B) * T * T * C)) schedule(static)
  for (int64_t task = 0; task < tasks; task++) {
    const int t = static_cast<int>(task % T);
    const int h = static_cast<int>((task / T) % NH);
    const int b = static_cast<int>(task / (static_cast<int64_t>(T) * NH));
    const float* base = qkv + static_cast<int64_t>(b) * T * C3;
    const float* q = base + static_cast<int64_t>(t) * C3 + h * HS;  // (HS)
    float* a = att + task * T;                                       // (T): row t of head (b, h)
    float maxval = -INFINITY;
    for (int t2 = 0; t2 <= t; t2++) {
      const float* k = base + static_cast<int64_t>(t2) * C3 + C + h * HS;
      float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
      for (int i = 0; i < HS; i++) dot += q[i] * k[i];
      dot *= scale;
      a[t2] = dot;
      if (dot > maxval) maxval = dot;
    }
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int t2 = 0; t2 <= t; t2++) {
      const float e = vexp(a[t2] - maxval);
      a[t2] = e;
      sum += e;
    }
    const float inv = 1.0f / sum;
    for (int t2 = 0; t2 <= t; t2++) a[t2] *= inv;
    for (int t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;
    float* o = out + (static_cast<int64_t>(b) * T + t) * C + h * HS;  // (HS)
    for (int i = 0; i < HS; i++) o[i] = 0.0f;
    for (int t2 = 0; t2 <= t; t2++) {
      const float* v = base + static_cast<int64_t>(t2) * C3 + 2 * C + h * HS;
      const float w = a[t2];
      for (int i = 0; i < HS; i++) o[i] += w * v[i];
    }
  }
}

void attention_backward(const KernelContext& ctx, float* dqkv, float* datt, const float* dout, const float* qkv,
                        const float* att, int B, int T, int C, int NH) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const int64_t heads = static_cast<int64_t>(B) * NH;
#pragma omp parallel for num_threads(threads_for(ctx, static_cast<size_t>(B) * T * T * C)) schedule(static)
  for (int64_t bh = 0; bh < heads; bh++) {
    const int h = static_cast<int>(bh % NH);
    const int b = static_cast<int>(bh / NH);
    const float* base = qkv + static_cast<int64_t>(b) * T * C3;
    float* dbase = dqkv + static_cast<int64_t>(b) * T * C3;
    for (int t = 0; t < T; t++) {
      const float* a = att + (bh * T + t) * T;       // (T)
      float* da = datt + (bh * T + t) * T;           // (T)
      const float* d = dout + (static_cast<int64_t>(b) * T + t) * C + h * HS;  // (HS)
      // out = att @ v: datt = dout . v, dv += att * dout
      for (int t2 = 0; t2 <= t; t2++) {
        const float* v = base + static_cast<int64_t>(t2) * C3 + 2 * C + h * HS;
        float* dv = dbase + static_cast<int64_t>(t2) * C3 + 2 * C + h * HS;
        float dot = 0.0f;
        const float w = a[t2];
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < HS; i++) {
          dot += d[i] * v[i];
          dv[i] += w * d[i];
        }
        da[t2] = dot;
      }
      // softmax backward: dpre = att * (datt - sum(att * datt))
      float s = 0.0f;
#pragma omp simd reduction(+ : s)
      for (int t2 = 0; t2 <= t; t2++) s += a[t2] * da[t2];
      for (int t2 = 0; t2 <= t; t2++) da[t2] = a[t2] * (da[t2] - s) * scale;
      // pre = scale * q . k: dq += dpre * k, dk += dpre * q
      const float* q = base + static_cast<int64_t>(t) * C3 + h * HS;
      float* dq = dbase + static_cast<int64_t>(t) * C3 + h * HS;
      for (int t2 = 0; t2 <= t; t2++) {
        const float* k = base + static_cast<int64_t>(t2) * C3 + C + h * HS;
        float* dk = dbase + static_cast<int64_t>(t2) * C3 + C + h * HS;
        const float g = da[t2];
        for (int i = 0; i < HS; i++) {
          dq[i] += g * k[i];
          dk[i] += g * q[i];
        }
      }
    }
  }
}

}  // namespace kernels::cpu
