// kernels/cuda/bf16_cpu_twin.cc: CPU twins of the bf16 kernels: widen to fp32, the fp32 CPU kernels, one rounding.
#include "kernels/cuda/bf16_cpu_twin.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu/kernels.h"
#include "kernels/cuda/bf16_rounding.h"

namespace kernels::cpu {

namespace {

std::vector<float> widen_all(const uint16_t* x, size_t n) {
  std::vector<float> out(n);
  for (size_t i = 0; i < n; i++) out[i] = kernels::bf16::widen(x[i]);
  return out;
}

// Every bf16 output is stored through these: one round to nearest even per element.
void round_all(uint16_t* out, const float* x, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = kernels::bf16::round_nearest(x[i]);
}

// For the `+=` outputs: the caller adds the fp32 result onto the widened old value, then this stores it once.
void store_accumulated(uint16_t* out, const std::vector<float>& widened_sum) {
  round_all(out, widened_sum.data(), widened_sum.size());
}

}  // namespace

void float_to_bf16_stochastic(const KernelContext& ctx, uint16_t* out, const float* inp, size_t N, uint64_t seed) {
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (size_t i = 0; i < N; i++) out[i] = kernels::bf16::round_stochastic(inp[i], seed, i);
}

void adamw_update_bf16(const KernelContext& ctx, uint16_t* params, float* master, const float* grads, float* m,
                       float* v, size_t N, float lr, float beta1, float beta2, float eps, float weight_decay,
                       float grad_scale, int t, uint64_t seed) {
  adamw_update(ctx, master, grads, m, v, N, lr, beta1, beta2, eps, weight_decay, grad_scale, t);
  float_to_bf16_stochastic(ctx, params, master, N, seed);
}

void matmul_forward_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* inp, const uint16_t* weight,
                         const uint16_t* bias, int N, int C, int OC) {
  const std::vector<float> x = widen_all(inp, static_cast<size_t>(N) * C);
  const std::vector<float> w = widen_all(weight, static_cast<size_t>(OC) * C);
  const std::vector<float> b = bias ? widen_all(bias, OC) : std::vector<float>();
  std::vector<float> y(static_cast<size_t>(N) * OC);
  matmul_forward(ctx, y.data(), x.data(), w.data(), bias ? b.data() : nullptr, N, C, OC);
  round_all(out, y.data(), y.size());
}

void matmul_backward_bf16(const KernelContext& ctx, uint16_t* dinp, float* dweight, float* dbias,
                          const uint16_t* dout, const uint16_t* inp, const uint16_t* weight, int N, int C, int OC) {
  const std::vector<float> d = widen_all(dout, static_cast<size_t>(N) * OC);
  const std::vector<float> x = widen_all(inp, static_cast<size_t>(N) * C);
  const std::vector<float> w = widen_all(weight, static_cast<size_t>(OC) * C);
  std::vector<float> dx;
  if (dinp != nullptr) dx = widen_all(dinp, static_cast<size_t>(N) * C);
  matmul_backward(ctx, dinp ? dx.data() : nullptr, dweight, dbias, d.data(), x.data(), w.data(), N, C, OC);
  if (dinp != nullptr) store_accumulated(dinp, dx);
}


// ---- The activation kernels of the bf16 training step. Each one: widen, the fp32 kernel, round once.

void embedding_forward_bf16(const KernelContext& ctx, uint16_t* out, const int32_t* tokens, const uint16_t* wte,
                            const uint16_t* wpe, int B, int T, int C) {
  // Only the rows the tokens use need widening, but the twin favours plainness over speed: widen the tables whole.
  // The largest token id bounds the wte rows read (Vp is not a parameter here).
  int32_t max_token = 0;
  for (int i = 0; i < B * T; i++) max_token = tokens[i] > max_token ? tokens[i] : max_token;
  const std::vector<float> wte_f = widen_all(wte, (static_cast<size_t>(max_token) + 1) * C);  // (max_token+1, C)
  const std::vector<float> wpe_f = widen_all(wpe, static_cast<size_t>(T) * C);                // (T, C)
  std::vector<float> y(static_cast<size_t>(B) * T * C);                                       // (B, T, C)
  embedding_forward(ctx, y.data(), tokens, wte_f.data(), wpe_f.data(), B, T, C);
  round_all(out, y.data(), y.size());
}

void embedding_backward_bf16(const KernelContext& ctx, float* dwte, float* dwpe, const uint16_t* dout,
                             const int32_t* tokens, int B, int T, int C) {
  const std::vector<float> d = widen_all(dout, static_cast<size_t>(B) * T * C);  // (B, T, C)
  embedding_backward(ctx, dwte, dwpe, d.data(), tokens, B, T, C);
}

void layernorm_forward_bf16(const KernelContext& ctx, uint16_t* out, float* mean, float* rstd, const uint16_t* inp,
                            const uint16_t* weight, const uint16_t* bias, int N, int C) {
  const std::vector<float> x = widen_all(inp, static_cast<size_t>(N) * C);  // (N, C)
  const std::vector<float> w = widen_all(weight, C);
  const std::vector<float> b = widen_all(bias, C);
  std::vector<float> y(x.size());  // (N, C)
  layernorm_forward(ctx, y.data(), mean, rstd, x.data(), w.data(), b.data(), N, C);
  round_all(out, y.data(), y.size());
}

void residual_layernorm_forward_bf16(const KernelContext& ctx, uint16_t* residual, uint16_t* out, float* mean,
                                     float* rstd, const uint16_t* inp1, const uint16_t* inp2, const uint16_t* weight,
                                     const uint16_t* bias, int N, int C) {
  // The residual is rounded first and the layernorm reads the rounded value, so that the backward pass (which only
  // has the stored bf16 residual) differentiates exactly the function the forward pass computed.
  add_bf16(ctx, residual, inp1, inp2, static_cast<size_t>(N) * C);
  layernorm_forward_bf16(ctx, out, mean, rstd, residual, weight, bias, N, C);
}

void layernorm_backward_bf16(const KernelContext& ctx, uint16_t* dinp, float* dweight, float* dbias,
                             const uint16_t* dout, const uint16_t* inp, const uint16_t* weight, const float* mean,
                             const float* rstd, int N, int C) {
  const std::vector<float> d = widen_all(dout, static_cast<size_t>(N) * C);  // (N, C)
  const std::vector<float> x = widen_all(inp, static_cast<size_t>(N) * C);   // (N, C)
  const std::vector<float> w = widen_all(weight, C);
  std::vector<float> dx = widen_all(dinp, static_cast<size_t>(N) * C);  // (N, C): the old value, += in fp32
  layernorm_backward(ctx, dx.data(), dweight, dbias, d.data(), x.data(), w.data(), mean, rstd, N, C);
  store_accumulated(dinp, dx);
}

void gelu_forward_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* inp, size_t N) {
  const std::vector<float> x = widen_all(inp, N);
  std::vector<float> y(N);
  gelu_forward(ctx, y.data(), x.data(), N);
  round_all(out, y.data(), N);
}

void gelu_backward_bf16(const KernelContext& ctx, uint16_t* dinp, const uint16_t* inp, const uint16_t* dout,
                        size_t N) {
  const std::vector<float> x = widen_all(inp, N);
  const std::vector<float> d = widen_all(dout, N);
  std::vector<float> dx = widen_all(dinp, N);
  gelu_backward(ctx, dx.data(), x.data(), d.data(), N);
  store_accumulated(dinp, dx);
}

void attention_forward_bf16(const KernelContext& ctx, uint16_t* out, uint16_t* att, const uint16_t* qkv, int B,
                            int T, int C, int NH) {
  // The probabilities are the fp32 kernel's (its out is discarded: it was computed from the unrounded att).
  const int HS = C / NH;
  const int C3 = 3 * C;
  const std::vector<float> x = widen_all(qkv, static_cast<size_t>(B) * T * C3);  // (B, T, 3C)
  std::vector<float> y(static_cast<size_t>(B) * T * C);                          // (B, T, C), unused
  std::vector<float> a(static_cast<size_t>(B) * NH * T * T);                     // (B, NH, T, T)
  attention_forward(ctx, y.data(), a.data(), x.data(), B, T, C, NH);
  round_all(att, a.data(), a.size());
  // out[b,t,h,:] = sum over t2 <= t of att_bf16[b,h,t,t2] * v[b,t2,h,:], summed in fp32 in t2 order.
  const int64_t rows = static_cast<int64_t>(B) * NH * T;  // one task per (b, h, t), as in the fp32 kernel
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (int64_t task = 0; task < rows; task++) {
    const int t = static_cast<int>(task % T);
    const int h = static_cast<int>((task / T) % NH);
    const int b = static_cast<int>(task / (static_cast<int64_t>(T) * NH));
    const uint16_t* arow = att + task * T;  // (T): row t of head (b, h)
    std::vector<float> o(HS, 0.0f);         // (HS)
    for (int t2 = 0; t2 <= t; t2++) {
      const float* v = x.data() + (static_cast<int64_t>(b) * T + t2) * C3 + 2 * C + h * HS;  // (HS)
      const float w = kernels::bf16::widen(arow[t2]);
      for (int i = 0; i < HS; i++) o[i] += w * v[i];
    }
    round_all(out + (static_cast<int64_t>(b) * T + t) * C + h * HS, o.data(), HS);
  }
}

void attention_backward_bf16(const KernelContext& ctx, uint16_t* dqkv, uint16_t* datt, const uint16_t* dout,
                             const uint16_t* qkv, const uint16_t* att, int B, int T, int C, int NH) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const std::vector<float> x = widen_all(qkv, static_cast<size_t>(B) * T * C3);  // (B, T, 3C)
  const std::vector<float> d = widen_all(dout, static_cast<size_t>(B) * T * C);  // (B, T, C)
  // The fp32 sums of dq, dk, dv over all (t, t2) pairs, then ONE rounding each onto the old dqkv.
  std::vector<float> acc = widen_all(dqkv, static_cast<size_t>(B) * T * C3);     // (B, T, 3C)
  const int64_t heads = static_cast<int64_t>(B) * NH;
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (int64_t bh = 0; bh < heads; bh++) {
    const int h = static_cast<int>(bh % NH);
    const int b = static_cast<int>(bh / NH);
    const float* base = x.data() + static_cast<int64_t>(b) * T * C3;
    std::vector<float> g(T);  // (T): datt_f of one row, fp32 (never stored)
    // Pass 1: dpreatt = att * (datt_f - sum(att * datt_f)), datt_f = dout[t] . v[t2] in fp32; stored bf16.
    for (int t = 0; t < T; t++) {
      const uint16_t* arow = att + (bh * T + t) * T;  // (T)
      uint16_t* darow = datt + (bh * T + t) * T;      // (T)
      const float* dt = d.data() + (static_cast<int64_t>(b) * T + t) * C + h * HS;  // (HS)
      float s = 0.0f;
      for (int t2 = 0; t2 <= t; t2++) {
        const float* v = base + static_cast<int64_t>(t2) * C3 + 2 * C + h * HS;
        float dot = 0.0f;
        for (int i = 0; i < HS; i++) dot += dt[i] * v[i];
        g[t2] = dot;
        s += kernels::bf16::widen(arow[t2]) * dot;
      }
      for (int t2 = 0; t2 <= t; t2++) {
        darow[t2] = kernels::bf16::round_nearest(kernels::bf16::widen(arow[t2]) * (g[t2] - s));
      }
      for (int t2 = t + 1; t2 < T; t2++) darow[t2] = 0;  // the masked positions: no gradient (+0 in bf16)
    }
    // Pass 2: dq, dk, dv from the stored bf16 att and dpreatt, accumulated in fp32 in (t, t2) order.
    float* abase = acc.data() + static_cast<int64_t>(b) * T * C3;
    for (int t = 0; t < T; t++) {
      const uint16_t* arow = att + (bh * T + t) * T;
      const uint16_t* darow = datt + (bh * T + t) * T;
      const float* q = base + static_cast<int64_t>(t) * C3 + h * HS;
      const float* dt = d.data() + (static_cast<int64_t>(b) * T + t) * C + h * HS;
      float* dq = abase + static_cast<int64_t>(t) * C3 + h * HS;
      for (int t2 = 0; t2 <= t; t2++) {
        const float* k = base + static_cast<int64_t>(t2) * C3 + C + h * HS;
        float* dk = abase + static_cast<int64_t>(t2) * C3 + C + h * HS;
        float* dv = abase + static_cast<int64_t>(t2) * C3 + 2 * C + h * HS;
        const float dp = scale * kernels::bf16::widen(darow[t2]);
        const float a = kernels::bf16::widen(arow[t2]);
        for (int i = 0; i < HS; i++) {
          dq[i] += dp * k[i];
          dk[i] += dp * q[i];
          dv[i] += a * dt[i];
        }
      }
    }
  }
  store_accumulated(dqkv, acc);
}

// ---- Flash attention's twin: plain loops over the causal pairs, every sum in fp32 in key order (j = 0..t).

void flash_attention_forward_bf16(const KernelContext& ctx, uint16_t* out, float* lse, const uint16_t* qkv, int B,
                                  int T, int C, int NH) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const std::vector<float> x = widen_all(qkv, static_cast<size_t>(B) * T * C3);  // (B, T, 3C)
  const int64_t rows = static_cast<int64_t>(B) * NH * T;  // one task per (b, h, t): lse's index
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (int64_t task = 0; task < rows; task++) {
    const int t = static_cast<int>(task % T);
    const int h = static_cast<int>((task / T) % NH);
    const int b = static_cast<int>(task / (static_cast<int64_t>(T) * NH));
    const float* base = x.data() + static_cast<int64_t>(b) * T * C3;
    const float* q = base + static_cast<int64_t>(t) * C3 + h * HS;  // (HS)
    std::vector<float> s(t + 1);                                     // the causal row of scores
    float maxval = -INFINITY;
    for (int j = 0; j <= t; j++) {
      const float* k = base + static_cast<int64_t>(j) * C3 + C + h * HS;
      float dot = 0.0f;
      for (int i = 0; i < HS; i++) dot += q[i] * k[i];
      s[j] = scale * dot;
      maxval = std::max(maxval, s[j]);
    }
    float sum = 0.0f;
    for (int j = 0; j <= t; j++) sum += std::exp(s[j] - maxval);
    const float row_lse = maxval + std::log(sum);
    lse[task] = row_lse;
    std::vector<float> o(HS, 0.0f);  // (HS)
    for (int j = 0; j <= t; j++) {
      const float p = std::exp(s[j] - row_lse);  // fp32, never rounded
      const float* v = base + static_cast<int64_t>(j) * C3 + 2 * C + h * HS;
      for (int i = 0; i < HS; i++) o[i] += p * v[i];
    }
    round_all(out + (static_cast<int64_t>(b) * T + t) * C + h * HS, o.data(), HS);
  }
}

void flash_attention_backward_bf16(const KernelContext& ctx, uint16_t* dqkv, const uint16_t* dout,
                                   const uint16_t* out, const float* lse, const uint16_t* qkv, int B, int T, int C,
                                   int NH) {
  const int HS = C / NH;
  const int C3 = 3 * C;
  const float scale = 1.0f / std::sqrt(static_cast<float>(HS));
  const std::vector<float> x = widen_all(qkv, static_cast<size_t>(B) * T * C3);  // (B, T, 3C)
  const std::vector<float> d = widen_all(dout, static_cast<size_t>(B) * T * C);  // (B, T, C)
  const std::vector<float> y = widen_all(out, static_cast<size_t>(B) * T * C);   // (B, T, C)
  // The fp32 gradients alone, from zero; added to the widened old dqkv and rounded once at the end.
  std::vector<float> g(static_cast<size_t>(B) * T * C3, 0.0f);  // (B, T, 3C)
  const int64_t heads = static_cast<int64_t>(B) * NH;
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (int64_t bh = 0; bh < heads; bh++) {  // each (b, h) owns its head's columns of g
    const int h = static_cast<int>(bh % NH);
    const int b = static_cast<int>(bh / NH);
    const float* base = x.data() + static_cast<int64_t>(b) * T * C3;
    float* gbase = g.data() + static_cast<int64_t>(b) * T * C3;
    for (int t = 0; t < T; t++) {
      const float* q = base + static_cast<int64_t>(t) * C3 + h * HS;                // (HS)
      const float* dt = d.data() + (static_cast<int64_t>(b) * T + t) * C + h * HS;  // (HS)
      const float* yt = y.data() + (static_cast<int64_t>(b) * T + t) * C + h * HS;  // (HS)
      float D = 0.0f;  // sum_j p_j dp_j, computed as dout . out (FlashAttention-2's shortcut)
      for (int i = 0; i < HS; i++) D += dt[i] * yt[i];
      const float row_lse = lse[bh * T + t];
      float* dq = gbase + static_cast<int64_t>(t) * C3 + h * HS;
      for (int j = 0; j <= t; j++) {
        const float* k = base + static_cast<int64_t>(j) * C3 + C + h * HS;
        const float* v = base + static_cast<int64_t>(j) * C3 + 2 * C + h * HS;
        float* dk = gbase + static_cast<int64_t>(j) * C3 + C + h * HS;
        float* dv = gbase + static_cast<int64_t>(j) * C3 + 2 * C + h * HS;
        float dot = 0.0f, dp = 0.0f;
        for (int i = 0; i < HS; i++) {
          dot += q[i] * k[i];
          dp += dt[i] * v[i];
        }
        const float p = std::exp(scale * dot - row_lse);
        const float ds = p * (dp - D);
        for (int i = 0; i < HS; i++) {
          dq[i] += scale * ds * k[i];
          dk[i] += scale * ds * q[i];
          dv[i] += p * dt[i];
        }
      }
    }
  }
  std::vector<float> acc = widen_all(dqkv, g.size());  // (B, T, 3C): old + fp32 gradient, one rounding
  for (size_t i = 0; i < acc.size(); i++) acc[i] += g[i];
  store_accumulated(dqkv, acc);
}

void softmax_crossentropy_fused_bf16(const KernelContext& ctx, float* losses, uint16_t* logits_dlogits,
                                     const int32_t* targets, float dloss_scale, int N, int V, int Vp) {
  const size_t n = static_cast<size_t>(N) * Vp;
  const std::vector<float> x = widen_all(logits_dlogits, n);  // (N, Vp)
  std::vector<float> probs(n);                                 // (N, Vp), padded columns 0
  softmax_crossentropy_forward(ctx, losses, probs.data(), x.data(), targets, N, V, Vp);
  std::vector<float> d(n, 0.0f);  // (N, Vp): the backward kernel adds nothing to the padded columns, they stay 0
  softmax_crossentropy_backward(ctx, d.data(), probs.data(), targets, dloss_scale, N, V, Vp);
  round_all(logits_dlogits, d.data(), n);
}

void add_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* a, const uint16_t* b, size_t N) {
#pragma omp parallel for num_threads(ctx.num_threads) schedule(static)
  for (size_t i = 0; i < N; i++) {
    out[i] = kernels::bf16::round_nearest(kernels::bf16::widen(a[i]) + kernels::bf16::widen(b[i]));
  }
}

void accumulate_bf16(const KernelContext& ctx, uint16_t* dst, const uint16_t* src, size_t N) {
  add_bf16(ctx, dst, dst, src, N);  // element i reads and writes only index i: in place is safe
}

void fill_bf16(const KernelContext& ctx, uint16_t* x, uint16_t value_bits, size_t N) {
  (void)ctx;
  for (size_t i = 0; i < N; i++) x[i] = value_bits;
}

void slice_columns_forward_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* inp, int N, int C,
                                int offset, int K) {
  (void)ctx;
  for (int n = 0; n < N; n++) {
    for (int k = 0; k < K; k++) out[static_cast<int64_t>(n) * K + k] = inp[static_cast<int64_t>(n) * C + offset + k];
  }
}

void slice_columns_backward_bf16(const KernelContext& ctx, uint16_t* dinp, const uint16_t* dout, int N, int C,
                                 int offset, int K) {
  for (int n = 0; n < N; n++) {
    accumulate_bf16(ctx, dinp + static_cast<int64_t>(n) * C + offset, dout + static_cast<int64_t>(n) * K, K);
  }
}

}  // namespace kernels::cpu
