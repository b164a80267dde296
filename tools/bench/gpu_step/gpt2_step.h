// tools/bench/gpu_step/gpt2_step.h: one GPT-2 training step (forward, backward, AdamW) written directly against the
// kernel interface, templated on the kernel set: `Gpt2Step<CudaKernels>` is the GPU benchmark's step, and
// `Gpt2Step<CpuKernels>` runs the very same sequence on the CPU twins (tests/kernels/cuda/gpu_step_cpu_test.cc),
// which is how this file is checked on a machine without a GPU. It is a benchmark harness in llm.c's style (flat
// buffers, llm.c's parameter order), not the engine: the engine's autograd model is resbm/.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/context.h"

namespace gpu_step {

struct Config {
  int max_T = 1024, V = 50257, Vp = 50304, L = 12, NH = 12, C = 768;
};

// Parameter tensors in llm.c's order; sizes in elements.
inline std::vector<size_t> param_sizes(const Config& c) {
  const size_t C = c.C, L = c.L;
  return {c.Vp * C, c.max_T * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C,
          L * C, L * C, L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C};
}

inline size_t num_params(const Config& c) {
  size_t n = 0;
  for (size_t s : param_sizes(c)) n += s;
  return n;
}

// GPT-2's initialisation of the num_params(c) parameters, in llm.c's order (normal 0.02, residual projections
// scaled by 1/sqrt(2L), layernorms 1/0, biases 0) from a fixed-seed LCG + Box-Muller: the same bits on every backend,
// and the same for the fp32 step (below) and the bf16 step (gpt2_step_bf16.h), so that the two can be compared.
// std_scale multiplies the standard deviations (the CPU gradient check uses larger weights so that every
// nonlinearity matters).
// The initialisations' random numbers: a 64-bit LCG and Box-Muller, the same bits on every machine.
class InitRng {
 public:
  explicit InitRng(uint64_t seed) : state_(seed * 2862933555777941757ull + 3037000493ull) {}
  double uniform() {  // in (0, 1)
    state_ = state_ * 6364136223846793005ull + 1442695040888963407ull;
    return (static_cast<double>(state_ >> 11) + 0.5) / 9007199254740992.0;
  }
  double normal(double std) {
    return std * std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform());
  }

 private:
  uint64_t state_;
};

inline std::vector<float> gpt2_init_params(const Config& c, uint64_t seed, double std_scale = 1.0) {
  std::vector<float> host(num_params(c));
  InitRng rng(seed);
  const auto sizes = param_sizes(c);
  size_t off = 0;
  for (size_t t = 0; t < sizes.size(); t++) {
    const bool is_ln_weight = t == 2 || t == 8 || t == 14;
    const bool is_bias = t == 3 || t == 5 || t == 7 || t == 9 || t == 11 || t == 13 || t == 15;
    const double std = std_scale * ((t == 6 || t == 12) ? 0.02 / std::sqrt(2.0 * c.L) : 0.02);
    for (size_t i = 0; i < sizes[t]; i++) {
      double v = 0.0;
      if (is_ln_weight) {
        v = 1.0;
      } else if (!is_bias) {
        v = rng.normal(std);
      }
      host[off + i] = static_cast<float>(v);
    }
    off += sizes[t];
  }
  return host;
}

// The kernels a step uses, as static members of a kernel-set struct: GPU_STEP_KERNELS(kernels::cuda) or (kernels::cpu).
#define GPU_STEP_KERNELS(ns)                                                         \
  static constexpr auto* embedding_forward = &ns::embedding_forward;                 \
  static constexpr auto* embedding_backward = &ns::embedding_backward;               \
  static constexpr auto* layernorm_forward = &ns::layernorm_forward;                 \
  static constexpr auto* layernorm_backward = &ns::layernorm_backward;               \
  static constexpr auto* matmul_forward = &ns::matmul_forward;                       \
  static constexpr auto* matmul_backward = &ns::matmul_backward;                     \
  static constexpr auto* attention_forward = &ns::attention_forward;                 \
  static constexpr auto* attention_backward = &ns::attention_backward;               \
  static constexpr auto* gelu_forward = &ns::gelu_forward;                           \
  static constexpr auto* gelu_backward = &ns::gelu_backward;                         \
  static constexpr auto* add_forward = &ns::add_forward;                             \
  static constexpr auto* fill = &ns::fill;                                           \
  static constexpr auto* softmax_crossentropy_forward = &ns::softmax_crossentropy_forward;   \
  static constexpr auto* softmax_crossentropy_backward = &ns::softmax_crossentropy_backward; \
  static constexpr auto* mean_forward = &ns::mean_forward;                           \
  static constexpr auto* sum_squares = &ns::sum_squares;                             \
  static constexpr auto* adamw_update = &ns::adamw_update;

// K: a kernel set (static functions with the kernels' signatures) plus memory: alloc(bytes) -> void*, release(p),
// upload(dst, src, bytes), download(dst, src, bytes).
//
// StepBase: what the fp32 step below and the bf16 step (gpt2_step_bf16.h) share: the buffers they own (freed with
// the step and counted), the batch, the loss and the gradient norm.
template <class K>
class StepBase {
 public:
  StepBase(const kernels::KernelContext& ctx, const Config& cfg, int B, int T) : ctx_(ctx), c_(cfg), B_(B), T_(T) {
    const size_t N = static_cast<size_t>(B) * T;
    tokens_ = static_cast<int32_t*>(alloc(N * sizeof(int32_t)));   // (B,T)
    targets_ = static_cast<int32_t*>(alloc(N * sizeof(int32_t)));  // (B,T)
    loss_ = falloc(1), norm_ = falloc(1);                           // the mean loss, the squared gradient norm
  }
  ~StepBase() {
    for (void* q : owned_) K::release(q);
  }
  StepBase(const StepBase&) = delete;
  StepBase& operator=(const StepBase&) = delete;

  void set_batch(const int32_t* tokens, const int32_t* targets) {
    const size_t N = static_cast<size_t>(B_) * T_;
    K::upload(tokens_, tokens, N * sizeof(int32_t));
    K::upload(targets_, targets, N * sizeof(int32_t));
  }

  float loss() const {  // synchronous read of the last forward's mean loss
    float h = 0.0f;
    K::download(&h, loss_, sizeof(float));
    return h;
  }

  size_t buffer_bytes() const { return bytes_; }  // everything the step allocated (all of it in its constructor)

 protected:
  void* alloc(size_t bytes) {
    void* q = K::alloc(bytes);
    owned_.push_back(q);
    bytes_ += bytes;
    return q;
  }
  float* falloc(size_t n) { return static_cast<float*>(alloc(n * sizeof(float))); }
  uint16_t* halloc(size_t n) { return static_cast<uint16_t*>(alloc(n * sizeof(uint16_t))); }  // bf16

  const kernels::KernelContext& ctx_;
  Config c_;
  int B_, T_;
  int32_t *tokens_, *targets_;
  float *loss_, *norm_;

 private:
  std::vector<void*> owned_;
  size_t bytes_ = 0;
};

template <class K>
class Gpt2Step : public StepBase<K> {
  using Base = StepBase<K>;
  using Base::B_, Base::T_, Base::c_, Base::ctx_, Base::falloc, Base::loss_, Base::norm_, Base::targets_,
      Base::tokens_;

 public:
  Gpt2Step(const kernels::KernelContext& ctx, const Config& cfg, int B, int T) : Base(ctx, cfg, B, T) {
    const size_t N = static_cast<size_t>(B) * T, C = cfg.C, L = cfg.L, NH = cfg.NH;
    n_params_ = num_params(cfg);
    params_ = falloc(n_params_), grads_ = falloc(n_params_), m_ = falloc(n_params_), v_ = falloc(n_params_);
    float* p = params_;
    for (size_t s : param_sizes(cfg)) p_.push_back(p), p += s;
    float* g = grads_;
    for (size_t s : param_sizes(cfg)) g_.push_back(g), g += s;
    encoded_ = falloc(N * C);
    ln1_ = falloc(L * N * C), ln1_stats_ = falloc(2 * L * N), qkv_ = falloc(L * N * 3 * C), atty_ = falloc(L * N * C);
    att_ = falloc(L * B * NH * T * T), attproj_ = falloc(N * C), residual2_ = falloc(L * N * C);
    ln2_ = falloc(L * N * C), ln2_stats_ = falloc(2 * L * N), fch_ = falloc(L * N * 4 * C);
    fch_gelu_ = falloc(L * N * 4 * C), fcproj_ = falloc(N * C), residual3_ = falloc(L * N * C);
    lnf_ = falloc(N * C), lnf_stats_ = falloc(2 * N), logits_ = falloc(N * cfg.Vp), probs_ = falloc(N * cfg.Vp);
    losses_ = falloc(N);
    d_btc_a_ = falloc(N * C), d_btc_b_ = falloc(N * C), d_residual_ = falloc(N * C), d_bt4c_a_ = falloc(N * 4 * C);
    d_bt4c_b_ = falloc(N * 4 * C), d_bt3c_ = falloc(N * 3 * C), datt_ = falloc(B * NH * T * T);
  }

  // GPT-2's initialisation (gpt2_init_params above): the same bits on every backend.
  void init_params(uint64_t seed, double std_scale = 1.0) { set_params(gpt2_init_params(c_, seed, std_scale).data()); }

  // Parameters from the host (num_parameters() floats in llm.c's order, e.g. an llm.c model file); AdamW restarts.
  void set_params(const float* host) {
    K::upload(params_, host, n_params_ * sizeof(float));
    std::vector<float> zeros(n_params_, 0.0f);
    K::upload(m_, zeros.data(), n_params_ * sizeof(float));
    K::upload(v_, zeros.data(), n_params_ * sizeof(float));
  }

  // Forward, backward and one AdamW step; returns nothing (read loss() after a sync).
  void step(int t, float lr) {
    forward();
    backward();
    K::sum_squares(ctx_, norm_, grads_, n_params_);  // the global grad norm (clipping would read it)
    K::adamw_update(ctx_, params_, grads_, m_, v_, n_params_, lr, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, t);
  }

  void forward() {
    const int N = B_ * T_, C = c_.C, L = c_.L, NH = c_.NH;
    const size_t NC = static_cast<size_t>(N) * C;
    K::embedding_forward(ctx_, encoded_, tokens_, p_[0], p_[1], B_, T_, C);
    const float* residual = encoded_;
    for (int l = 0; l < L; l++) {
      const size_t C_ = C;
      K::layernorm_forward(ctx_, ln1_ + l * NC, ln1_stats_ + 2 * l * N, ln1_stats_ + (2 * l + 1) * N, residual,
                           p_[2] + l * C_, p_[3] + l * C_, N, C);
      K::matmul_forward(ctx_, qkv_ + l * NC * 3, ln1_ + l * NC, p_[4] + l * 3 * C_ * C_, p_[5] + l * 3 * C_, N, C,
                        3 * C);
      K::attention_forward(ctx_, atty_ + l * NC, att_ + l * att_size(), qkv_ + l * NC * 3, B_, T_, C, NH);
      K::matmul_forward(ctx_, attproj_, atty_ + l * NC, p_[6] + l * C_ * C_, p_[7] + l * C_, N, C, C);
      K::add_forward(ctx_, residual2_ + l * NC, residual, attproj_, NC);
      K::layernorm_forward(ctx_, ln2_ + l * NC, ln2_stats_ + 2 * l * N, ln2_stats_ + (2 * l + 1) * N,
                           residual2_ + l * NC, p_[8] + l * C_, p_[9] + l * C_, N, C);
      K::matmul_forward(ctx_, fch_ + l * NC * 4, ln2_ + l * NC, p_[10] + l * 4 * C_ * C_, p_[11] + l * 4 * C_, N, C,
                        4 * C);
      K::gelu_forward(ctx_, fch_gelu_ + l * NC * 4, fch_ + l * NC * 4, NC * 4);
      K::matmul_forward(ctx_, fcproj_, fch_gelu_ + l * NC * 4, p_[12] + l * C_ * 4 * C_, p_[13] + l * C_, N, 4 * C,
                        C);
      K::add_forward(ctx_, residual3_ + l * NC, residual2_ + l * NC, fcproj_, NC);
      residual = residual3_ + l * NC;
    }
    K::layernorm_forward(ctx_, lnf_, lnf_stats_, lnf_stats_ + N, residual, p_[14], p_[15], N, C);
    K::matmul_forward(ctx_, logits_, lnf_, p_[0], nullptr, N, C, c_.Vp);
    K::softmax_crossentropy_forward(ctx_, losses_, probs_, logits_, targets_, N, c_.V, c_.Vp);
    K::mean_forward(ctx_, loss_, losses_, N);
  }

  void backward() {
    const int N = B_ * T_, C = c_.C, L = c_.L, NH = c_.NH, Vp = c_.Vp;
    const size_t NC = static_cast<size_t>(N) * C, C_ = C;
    K::fill(ctx_, grads_, 0.0f, n_params_);
    // dlogits reuse the logits buffer (the forward is done with them); backward kernels accumulate: zero first.
    float* dlogits = logits_;
    K::fill(ctx_, dlogits, 0.0f, static_cast<size_t>(N) * Vp);
    K::softmax_crossentropy_backward(ctx_, dlogits, probs_, targets_, 1.0f / N, N, c_.V, Vp);
    K::fill(ctx_, d_btc_a_, 0.0f, NC);
    K::matmul_backward(ctx_, d_btc_a_, g_[0], nullptr, dlogits, lnf_, p_[0], N, C, Vp);
    K::fill(ctx_, d_residual_, 0.0f, NC);
    K::layernorm_backward(ctx_, d_residual_, g_[14], g_[15], d_btc_a_, residual3_ + (L - 1) * NC, p_[14],
                          lnf_stats_, lnf_stats_ + N, N, C);
    for (int l = L - 1; l >= 0; l--) {
      const float* residual = l == 0 ? encoded_ : residual3_ + (l - 1) * NC;
      // residual3 = residual2 + fcproj: d_residual is the gradient of both.
      K::fill(ctx_, d_bt4c_a_, 0.0f, NC * 4);
      K::matmul_backward(ctx_, d_bt4c_a_, g_[12] + l * C_ * 4 * C_, g_[13] + l * C_, d_residual_,
                         fch_gelu_ + l * NC * 4, p_[12] + l * C_ * 4 * C_, N, 4 * C, C);
      K::fill(ctx_, d_bt4c_b_, 0.0f, NC * 4);
      K::gelu_backward(ctx_, d_bt4c_b_, fch_ + l * NC * 4, d_bt4c_a_, NC * 4);
      K::fill(ctx_, d_btc_a_, 0.0f, NC);
      K::matmul_backward(ctx_, d_btc_a_, g_[10] + l * 4 * C_ * C_, g_[11] + l * 4 * C_, d_bt4c_b_, ln2_ + l * NC,
                         p_[10] + l * 4 * C_ * C_, N, C, 4 * C);
      K::layernorm_backward(ctx_, d_residual_, g_[8] + l * C_, g_[9] + l * C_, d_btc_a_, residual2_ + l * NC,
                            p_[8] + l * C_, ln2_stats_ + 2 * l * N, ln2_stats_ + (2 * l + 1) * N, N, C);
      // residual2 = residual + attproj
      K::fill(ctx_, d_btc_b_, 0.0f, NC);
      K::matmul_backward(ctx_, d_btc_b_, g_[6] + l * C_ * C_, g_[7] + l * C_, d_residual_, atty_ + l * NC,
                         p_[6] + l * C_ * C_, N, C, C);
      K::fill(ctx_, d_bt3c_, 0.0f, NC * 3);
      K::attention_backward(ctx_, d_bt3c_, datt_, d_btc_b_, qkv_ + l * NC * 3, att_ + l * att_size(), B_, T_, C, NH);
      K::fill(ctx_, d_btc_a_, 0.0f, NC);
      K::matmul_backward(ctx_, d_btc_a_, g_[4] + l * 3 * C_ * C_, g_[5] + l * 3 * C_, d_bt3c_, ln1_ + l * NC,
                         p_[4] + l * 3 * C_ * C_, N, C, 3 * C);
      K::layernorm_backward(ctx_, d_residual_, g_[2] + l * C_, g_[3] + l * C_, d_btc_a_, residual, p_[2] + l * C_,
                            ln1_stats_ + 2 * l * N, ln1_stats_ + (2 * l + 1) * N, N, C);
    }
    K::embedding_backward(ctx_, g_[0], g_[1], d_residual_, tokens_, B_, T_, C);
  }

  size_t num_parameters() const { return n_params_; }
  const float* grads() const { return grads_; }
  const float* params() const { return params_; }

 private:
  size_t att_size() const { return static_cast<size_t>(B_) * c_.NH * T_ * T_; }

  size_t n_params_ = 0;
  float *params_, *grads_, *m_, *v_;
  std::vector<float*> p_, g_;
  float *encoded_, *ln1_, *ln1_stats_, *qkv_, *atty_, *att_, *attproj_, *residual2_, *ln2_, *ln2_stats_, *fch_;
  float *fch_gelu_, *fcproj_, *residual3_, *lnf_, *lnf_stats_, *logits_, *probs_, *losses_;
  float *d_btc_a_, *d_btc_b_, *d_residual_, *d_bt4c_a_, *d_bt4c_b_, *d_bt3c_, *datt_;
};

}  // namespace gpu_step
