// tools/bench/gpu_step/gpt2_step_bf16.h: the GPT-2 training step of gpt2_step.h in bf16 mixed precision, as llm.c's
// train_gpt2.cu does it: the MFU path of the GPU benchmark. Templated on the kernel set like Gpt2Step:
// `Gpt2StepBf16<CudaKernels>` on the GPU, `Gpt2StepBf16<CpuKernels>` on the bf16 CPU twins (tests/bench), which
// define what the CUDA kernels compute (kernels/cuda/bf16_cpu_twin.h).
//
// Precision, llm.c's rules:
// - fp32: the master weights and AdamW's m, v; the parameter gradients; layernorm statistics; the losses, their
//   mean and the gradient norm.
// - bf16: the model copy of the weights (written by AdamW with stochastic rounding, seeded by the step), every
//   activation and activation gradient, the residual stream included (its add is fused with the next layernorm,
//   residual_layernorm_forward_bf16, as in llm.c).
//
// Optional ResBM bottlenecks, to measure what they cost a single GPU (time and memory): `bottlenecks` stage
// boundaries spread evenly between the L blocks, each running the `module` layout with the `slice` identity of
// resbm/bottleneck.h, code width K = C / ratio, hidden width H = max(K, C/4):
//   encoder  z  = x[:, :K] + W2 gelu(W1 ln(x) + b1) + b2      (N,C) -> (N,K)
//   decoder  x' = pad(z)   + V2 gelu(V1 ln(z) + c1) + c2      (N,K) -> (N,C)
// W2, b2, V2, c2 start at zero, so x' = x at ratio 1. Single process: nothing crosses a wire here, the boundary is
// just the encoder followed by the decoder. Their 12 tensors per boundary are trained like the rest and stored
// after llm.c's 16, so the llm.c layout (and an llm.c model file) is unchanged.
//
// Attention, `attention`: flash (default) is the fused FlashAttention-2 kernel (flash_attention_*_bf16), which keeps
// only the row log-sum-exp (L,B,NH,T) fp32; cublas is attention_*_bf16, cuBLAS GEMMs around a softmax kernel, which
// stores the bf16 probabilities (L,B,NH,T,T) and needs as much scratch again for their gradient.
//
// Every buffer is allocated in the constructor; step() allocates nothing.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "kernels/context.h"
#include "kernels/cuda/bf16_rounding.h"
#include "tools/bench/gpu_step/gpt2_step.h"

namespace gpu_step {

// The bf16 kernels the step uses (on top of GPU_STEP_KERNELS' fill, mean_forward, sum_squares), as static members of
// a kernel-set struct: GPU_STEP_BF16_KERNELS(kernels::cuda) or (kernels::cpu).
#define GPU_STEP_BF16_KERNELS(ns)                                                                     \
  static constexpr auto* adamw_update_bf16 = &ns::adamw_update_bf16;                                  \
  static constexpr auto* matmul_forward_bf16 = &ns::matmul_forward_bf16;                              \
  static constexpr auto* matmul_backward_bf16 = &ns::matmul_backward_bf16;                            \
  static constexpr auto* embedding_forward_bf16 = &ns::embedding_forward_bf16;                        \
  static constexpr auto* embedding_backward_bf16 = &ns::embedding_backward_bf16;                      \
  static constexpr auto* layernorm_forward_bf16 = &ns::layernorm_forward_bf16;                        \
  static constexpr auto* residual_layernorm_forward_bf16 = &ns::residual_layernorm_forward_bf16;      \
  static constexpr auto* layernorm_backward_bf16 = &ns::layernorm_backward_bf16;                      \
  static constexpr auto* gelu_forward_bf16 = &ns::gelu_forward_bf16;                                  \
  static constexpr auto* gelu_backward_bf16 = &ns::gelu_backward_bf16;                                \
  static constexpr auto* attention_forward_bf16 = &ns::attention_forward_bf16;                        \
  static constexpr auto* attention_backward_bf16 = &ns::attention_backward_bf16;                      \
  static constexpr auto* flash_attention_forward_bf16 = &ns::flash_attention_forward_bf16;            \
  static constexpr auto* flash_attention_backward_bf16 = &ns::flash_attention_backward_bf16;          \
  static constexpr auto* softmax_crossentropy_fused_bf16 = &ns::softmax_crossentropy_fused_bf16;      \
  static constexpr auto* add_bf16 = &ns::add_bf16;                                                    \
  static constexpr auto* fill_bf16 = &ns::fill_bf16;                                                  \
  static constexpr auto* slice_columns_forward_bf16 = &ns::slice_columns_forward_bf16;                \
  static constexpr auto* slice_columns_backward_bf16 = &ns::slice_columns_backward_bf16;

// Which attention kernels the step runs (see the top of this file).
enum class Attention { flash, cublas };

inline const char* attention_name(Attention a) { return a == Attention::flash ? "flash" : "cublas"; }

// "flash" or "cublas"; throws std::invalid_argument otherwise.
inline Attention parse_attention(const std::string& name) {
  if (name == "flash") return Attention::flash;
  if (name == "cublas") return Attention::cublas;
  throw std::invalid_argument("--attention " + name + ": must be flash or cublas");
}

// The ResBM bottlenecks of the benchmark: `count` boundaries (stages - 1), code width K = C / ratio.
struct Bottlenecks {
  int count = 0;
  int ratio = 1;
};

// The 12 tensors of one boundary, in storage order (appended after llm.c's 16 per boundary).
enum BottleneckTensor {
  kEncLnW, kEncLnB, kEncW1, kEncB1, kEncW2, kEncB2,  // C; C; (H,C); H; (K,H); K
  kDecLnW, kDecLnB, kDecV1, kDecC1, kDecV2, kDecC2,  // K; K; (H,K); H; (C,H); C
  kBottleneckTensors
};

inline int code_width(const Config& c, const Bottlenecks& bn) { return c.C / bn.ratio; }                // K
inline int hidden_width(const Config& c, const Bottlenecks& bn) { return std::max(c.C / bn.ratio, c.C / 4); }  // H

// Sizes in elements of one boundary's tensors, in BottleneckTensor order.
inline std::vector<size_t> bottleneck_param_sizes(const Config& c, const Bottlenecks& bn) {
  const size_t C = c.C, K = code_width(c, bn), H = hidden_width(c, bn);
  return {C, C, H * C, H, K * H, K, K, K, H * K, H, C * H, C};
}

// Throws std::invalid_argument naming what is wrong.
inline void validate(const Config& c, const Bottlenecks& bn, Attention attention = Attention::flash) {
  const int HS = c.C / c.NH;
  if (attention == Attention::flash && (c.C % c.NH != 0 || HS % 16 != 0 || HS > 128)) {
    throw std::invalid_argument("--attention flash: the head size C/NH = " + std::to_string(HS) +
                                " must be a multiple of 16 and at most 128 (use --attention cublas)");
  }
  if (bn.count < 0 || bn.count >= c.L) {
    throw std::invalid_argument("--bottlenecks " + std::to_string(bn.count) + ": must be in [0, L-1] = [0, " +
                                std::to_string(c.L - 1) + "] (every stage needs at least one block)");
  }
  if (bn.ratio < 1 || c.C % bn.ratio != 0) {
    throw std::invalid_argument("--ratio " + std::to_string(bn.ratio) + ": must be >= 1 and divide C = " +
                                std::to_string(c.C));
  }
}

template <class K>
class Gpt2StepBf16 : public StepBase<K> {
  using Base = StepBase<K>;
  using Base::B_, Base::T_, Base::c_, Base::ctx_, Base::falloc, Base::halloc, Base::loss_, Base::norm_,
      Base::targets_, Base::tokens_;

 public:
  Gpt2StepBf16(const kernels::KernelContext& ctx, const Config& cfg, int B, int T, const Bottlenecks& bn = {},
               Attention attention = Attention::flash)
      : Base(ctx, cfg, B, T), bn_(bn), attention_(attention) {
    validate(cfg, bn, attention);
    const size_t N = static_cast<size_t>(B) * T, C = cfg.C, L = cfg.L, NH = cfg.NH;
    const size_t Kw = code_width(cfg, bn), H = hidden_width(cfg, bn);
    // Stage s (of count+1) ends after block ((s+1) L / (count+1)) - 1.
    boundary_after_.assign(L, -1);
    for (int s = 0; s < bn.count; s++) boundary_after_[((s + 1) * cfg.L) / (bn.count + 1) - 1] = s;

    // Parameters: llm.c's 16 tensors, then 12 per boundary. Master, grads, m, v in fp32; the model copy in bf16.
    std::vector<size_t> sizes = param_sizes(cfg);
    n_gpt2_params_ = num_params(cfg);
    for (int b = 0; b < bn.count; b++) {
      for (size_t s : bottleneck_param_sizes(cfg, bn)) sizes.push_back(s);
    }
    n_params_ = 0;
    for (size_t s : sizes) n_params_ += s;
    master_ = falloc(n_params_), grads_ = falloc(n_params_), m_ = falloc(n_params_), v_ = falloc(n_params_);
    params_ = halloc(n_params_);
    size_t off = 0;
    for (size_t s : sizes) p_.push_back(params_ + off), g_.push_back(grads_ + off), off += s;
    bottleneck_bytes_ = (n_params_ - n_gpt2_params_) * (4 * sizeof(float) + sizeof(uint16_t));

    // Forward activations, bf16 unless noted; (L, ...) stacks the layers.
    encoded_ = halloc(N * C);                                 // (B,T,C)
    ln1_ = halloc(L * N * C), ln1_stats_ = falloc(L * 2 * N);  // (L,B,T,C); fp32 (L, mean|rstd, B*T)
    qkv_ = halloc(L * N * 3 * C);                             // (L,B,T,3C)
    atty_ = halloc(L * N * C);                                // (L,B,T,C)
    if (attention == Attention::flash) {
      lse_ = falloc(L * B * NH * T);                          // fp32 (L,B,NH,T)
    } else {
      att_ = halloc(L * B * NH * T * T);                      // (L,B,NH,T,T)
    }
    residual2_ = halloc(L * N * C);                           // (L,B,T,C)
    ln2_ = halloc(L * N * C), ln2_stats_ = falloc(L * 2 * N);  // (L,B,T,C); fp32 (L,2,B*T)
    fch_ = halloc(L * N * 4 * C), fch_gelu_ = halloc(L * N * 4 * C);  // (L,B,T,4C)
    residual3_ = halloc(L * N * C);                           // (L,B,T,C)
    proj_ = halloc(N * C);                     // (B,T,C): attproj, then fcproj, consumed at once by the fused add
    lnf_ = halloc(N * C), lnf_stats_ = falloc(2 * N);  // (B,T,C); fp32 (2,B*T)
    logits_ = halloc(N * cfg.Vp);              // (B,T,Vp): logits, then dlogits in place
    losses_ = falloc(N);                       // fp32 (B*T)
    // Backward scratch (bf16).
    d_residual_ = halloc(N * C), d_residual_alt_ = halloc(N * C), d_btc_ = halloc(N * C);  // (B,T,C)
    d_bt4c_a_ = halloc(N * 4 * C), d_bt4c_b_ = halloc(N * 4 * C);  // (B,T,4C); the bottlenecks' (B,T,H) too
    d_bt3c_ = halloc(N * 3 * C);                                   // (B,T,3C)
    if (attention == Attention::cublas) datt_ = halloc(B * NH * T * T);  // (B,NH,T,T)
    // Bottleneck activations, per boundary (bf16 unless noted), and their scratch.
    const size_t before = this->buffer_bytes();
    for (int b = 0; b < bn.count; b++) {
      Boundary x;
      x.enc_ln = halloc(N * C), x.enc_stats = falloc(2 * N);  // (B,T,C); fp32 (2,B*T)
      x.h1 = halloc(N * H), x.h1_gelu = halloc(N * H);         // (B,T,H)
      x.z = halloc(N * Kw), x.zn = halloc(N * Kw), x.dec_stats = falloc(2 * N);  // (B,T,K); fp32 (2,B*T)
      x.g1 = halloc(N * H), x.g1_gelu = halloc(N * H);         // (B,T,H)
      x.xprime = halloc(N * C);                                // (B,T,C)
      boundaries_.push_back(x);
    }
    if (bn.count > 0) {
      z_id_ = halloc(N * Kw), z_branch_ = halloc(N * Kw);  // (B,T,K) forward scratch
      d_k_a_ = halloc(N * Kw), d_k_b_ = halloc(N * Kw);    // (B,T,K) backward scratch
    }
    bottleneck_bytes_ += this->buffer_bytes() - before;
  }

  // GPT-2's initialisation, bit for bit that of Gpt2Step::init_params (gpt2_init_params), then the bottlenecks'.
  void init_params(uint64_t seed, double std_scale = 1.0) {
    set_gpt2_params(gpt2_init_params(c_, seed, std_scale).data(), seed);
  }

  // llm.c's num_gpt2_parameters() floats from the host (e.g. an llm.c model file); the bottlenecks are initialised
  // from `seed` (W1, V1 normal 0.02, layernorms 1/0, the rest 0). Then as set_master_params.
  void set_gpt2_params(const float* gpt2, uint64_t seed) {
    std::vector<float> host(gpt2, gpt2 + n_gpt2_params_);
    host.resize(n_params_, 0.0f);
    InitRng rng(seed ^ 0x5DEECE66Dull);  // a stream of its own: the GPT-2 weights do not depend on the count
    const std::vector<size_t> sizes = bottleneck_param_sizes(c_, bn_);
    size_t off = n_gpt2_params_;
    for (int b = 0; b < bn_.count; b++) {
      for (int t = 0; t < kBottleneckTensors; t++) {
        for (size_t i = 0; i < sizes[t]; i++) {
          double v = 0.0;  // biases, and W2, V2 (zero: the branches start as exact zeros)
          if (t == kEncLnW || t == kDecLnW) v = 1.0;
          if (t == kEncW1 || t == kDecV1) v = rng.normal(0.02);
          host[off + i] = static_cast<float>(v);
        }
        off += sizes[t];
      }
    }
    set_master_params(host.data(), seed);
  }

  // All num_parameters() fp32 masters from the host. The bf16 model copy is their rounding to nearest; AdamW
  // restarts, its stochastic rounding seeded from `seed` and the step.
  void set_master_params(const float* host, uint64_t seed) {
    std::vector<uint16_t> copy(n_params_);
    for (size_t i = 0; i < n_params_; i++) copy[i] = kernels::bf16::round_nearest(host[i]);
    K::upload(master_, host, n_params_ * sizeof(float));
    K::upload(params_, copy.data(), n_params_ * sizeof(uint16_t));
    std::vector<float> zeros(n_params_, 0.0f);
    K::upload(m_, zeros.data(), n_params_ * sizeof(float));
    K::upload(v_, zeros.data(), n_params_ * sizeof(float));
    seed_ = seed;
  }

  // Forward, backward and one AdamW step (t is 1-based); read loss() afterwards.
  void step(int t, float lr) {
    forward();
    backward();
    K::sum_squares(ctx_, norm_, grads_, n_params_);  // the global grad norm (clipping would read it)
    const uint64_t round_seed = kernels::bf16::hash64(seed_, static_cast<uint64_t>(t));  // fresh bits every step
    K::adamw_update_bf16(ctx_, params_, master_, grads_, m_, v_, n_params_, lr, 0.9f, 0.95f, 1e-8f, 0.0f, 1.0f, t,
                         round_seed);
  }

  // Forward to the mean loss. The fused cross-entropy also leaves dlogits (in logits_) for backward().
  void forward() {
    const int N = B_ * T_, C = c_.C, L = c_.L, NH = c_.NH;
    const size_t NC = static_cast<size_t>(N) * C, C_ = C;
    K::embedding_forward_bf16(ctx_, encoded_, tokens_, p_[0], p_[1], B_, T_, C);
    K::layernorm_forward_bf16(ctx_, ln1_, ln1_mean(0), ln1_rstd(0), encoded_, p_[2], p_[3], N, C);
    for (int l = 0; l < L; l++) {
      K::matmul_forward_bf16(ctx_, qkv_ + l * NC * 3, ln1_ + l * NC, p_[4] + l * 3 * C_ * C_, p_[5] + l * 3 * C_, N,
                             C, 3 * C);
      if (attention_ == Attention::flash) {
        K::flash_attention_forward_bf16(ctx_, atty_ + l * NC, lse_ + l * lse_size(), qkv_ + l * NC * 3, B_, T_, C,
                                        NH);
      } else {
        K::attention_forward_bf16(ctx_, atty_ + l * NC, att_ + l * att_size(), qkv_ + l * NC * 3, B_, T_, C, NH);
      }
      K::matmul_forward_bf16(ctx_, proj_, atty_ + l * NC, p_[6] + l * C_ * C_, p_[7] + l * C_, N, C, C);
      // residual2 = block input + attproj, fused with ln2.
      K::residual_layernorm_forward_bf16(ctx_, residual2_ + l * NC, ln2_ + l * NC, ln2_mean(l), ln2_rstd(l),
                                         block_input(l), proj_, p_[8] + l * C_, p_[9] + l * C_, N, C);
      K::matmul_forward_bf16(ctx_, fch_ + l * NC * 4, ln2_ + l * NC, p_[10] + l * 4 * C_ * C_, p_[11] + l * 4 * C_,
                             N, C, 4 * C);
      K::gelu_forward_bf16(ctx_, fch_gelu_ + l * NC * 4, fch_ + l * NC * 4, NC * 4);
      K::matmul_forward_bf16(ctx_, proj_, fch_gelu_ + l * NC * 4, p_[12] + l * C_ * 4 * C_, p_[13] + l * C_, N,
                             4 * C, C);
      // residual3 = residual2 + fcproj, fused with the layernorm that reads it next: lnf after the last block, the
      // encoder's at a boundary, else the next block's ln1.
      uint16_t* residual3 = residual3_ + l * NC;
      if (l == L - 1) {
        K::residual_layernorm_forward_bf16(ctx_, residual3, lnf_, lnf_stats_, lnf_stats_ + N, residual2_ + l * NC,
                                           proj_, p_[14], p_[15], N, C);
      } else if (boundary_after_[l] >= 0) {
        const int b = boundary_after_[l];
        const Boundary& x = boundaries_[b];
        K::residual_layernorm_forward_bf16(ctx_, residual3, x.enc_ln, x.enc_stats, x.enc_stats + N,
                                           residual2_ + l * NC, proj_, bp(b, kEncLnW), bp(b, kEncLnB), N, C);
        boundary_forward(b, residual3);
        K::layernorm_forward_bf16(ctx_, ln1_ + (l + 1) * NC, ln1_mean(l + 1), ln1_rstd(l + 1), x.xprime,
                                  p_[2] + (l + 1) * C_, p_[3] + (l + 1) * C_, N, C);
      } else {
        K::residual_layernorm_forward_bf16(ctx_, residual3, ln1_ + (l + 1) * NC, ln1_mean(l + 1), ln1_rstd(l + 1),
                                           residual2_ + l * NC, proj_, p_[2] + (l + 1) * C_, p_[3] + (l + 1) * C_,
                                           N, C);
      }
    }
    K::matmul_forward_bf16(ctx_, logits_, lnf_, p_[0], nullptr, N, C, c_.Vp);  // the LM head, tied to wte
    K::softmax_crossentropy_fused_bf16(ctx_, losses_, logits_, targets_, 1.0f / N, N, c_.V, c_.Vp);
    K::mean_forward(ctx_, loss_, losses_, N);
  }

  // Backward from the dlogits forward() left; fp32 parameter gradients into grads(). The bf16 backward kernels
  // accumulate (+=), so every activation gradient is zeroed before its first write.
  void backward() {
    const int N = B_ * T_, C = c_.C, L = c_.L, NH = c_.NH;
    const size_t NC = static_cast<size_t>(N) * C, C_ = C;
    K::fill(ctx_, grads_, 0.0f, n_params_);
    K::fill_bf16(ctx_, d_btc_, 0, NC);
    K::matmul_backward_bf16(ctx_, d_btc_, g_[0], nullptr, logits_, lnf_, p_[0], N, C, c_.Vp);
    K::fill_bf16(ctx_, d_residual_, 0, NC);
    K::layernorm_backward_bf16(ctx_, d_residual_, g_[14], g_[15], d_btc_, residual3_ + (L - 1) * NC, p_[14],
                               lnf_stats_, lnf_stats_ + N, N, C);
    for (int l = L - 1; l >= 0; l--) {
      // d_residual: the gradient of residual3 = residual2 + fcproj, i.e. of both.
      K::fill_bf16(ctx_, d_bt4c_a_, 0, NC * 4);
      K::matmul_backward_bf16(ctx_, d_bt4c_a_, g_[12] + l * C_ * 4 * C_, g_[13] + l * C_, d_residual_,
                              fch_gelu_ + l * NC * 4, p_[12] + l * C_ * 4 * C_, N, 4 * C, C);
      K::fill_bf16(ctx_, d_bt4c_b_, 0, NC * 4);
      K::gelu_backward_bf16(ctx_, d_bt4c_b_, fch_ + l * NC * 4, d_bt4c_a_, NC * 4);
      K::fill_bf16(ctx_, d_btc_, 0, NC);
      K::matmul_backward_bf16(ctx_, d_btc_, g_[10] + l * 4 * C_ * C_, g_[11] + l * 4 * C_, d_bt4c_b_,
                              ln2_ + l * NC, p_[10] + l * 4 * C_ * C_, N, C, 4 * C);
      K::layernorm_backward_bf16(ctx_, d_residual_, g_[8] + l * C_, g_[9] + l * C_, d_btc_, residual2_ + l * NC,
                                 p_[8] + l * C_, ln2_mean(l), ln2_rstd(l), N, C);
      // d_residual: now the gradient of residual2 = block input + attproj.
      K::fill_bf16(ctx_, d_btc_, 0, NC);
      K::matmul_backward_bf16(ctx_, d_btc_, g_[6] + l * C_ * C_, g_[7] + l * C_, d_residual_, atty_ + l * NC,
                              p_[6] + l * C_ * C_, N, C, C);
      K::fill_bf16(ctx_, d_bt3c_, 0, NC * 3);
      if (attention_ == Attention::flash) {
        K::flash_attention_backward_bf16(ctx_, d_bt3c_, d_btc_, atty_ + l * NC, lse_ + l * lse_size(),
                                         qkv_ + l * NC * 3, B_, T_, C, NH);
      } else {
        K::attention_backward_bf16(ctx_, d_bt3c_, datt_, d_btc_, qkv_ + l * NC * 3, att_ + l * att_size(), B_, T_,
                                   C, NH);
      }
      K::fill_bf16(ctx_, d_btc_, 0, NC);
      K::matmul_backward_bf16(ctx_, d_btc_, g_[4] + l * 3 * C_ * C_, g_[5] + l * 3 * C_, d_bt3c_, ln1_ + l * NC,
                              p_[4] + l * 3 * C_ * C_, N, C, 3 * C);
      K::layernorm_backward_bf16(ctx_, d_residual_, g_[2] + l * C_, g_[3] + l * C_, d_btc_, block_input(l),
                                 p_[2] + l * C_, ln1_mean(l), ln1_rstd(l), N, C);
      // d_residual: the gradient of block l's input, which is x' if a boundary precedes the block.
      if (l > 0 && boundary_after_[l - 1] >= 0) boundary_backward(boundary_after_[l - 1], residual3_ + (l - 1) * NC);
    }
    K::embedding_backward_bf16(ctx_, g_[0], g_[1], d_residual_, tokens_, B_, T_, C);
  }

  size_t num_parameters() const { return n_params_; }            // with the bottlenecks'
  Attention attention() const { return attention_; }
  size_t num_gpt2_parameters() const { return n_gpt2_params_; }  // llm.c's 16 tensors
  size_t bottleneck_bytes() const { return bottleneck_bytes_; }  // of which the bottlenecks' (params + activations)
  const float* grads() const { return grads_; }                  // fp32 (num_parameters())
  const float* master_params() const { return master_; }         // fp32 (num_parameters())
  const uint16_t* params() const { return params_; }              // bf16 (num_parameters())

 private:
  // One boundary's forward activations (bf16 unless noted).
  struct Boundary {
    uint16_t* enc_ln;     // (B,T,C) ln(x)
    float* enc_stats;     // fp32 (2,B*T)
    uint16_t* h1;         // (B,T,H) W1 ln(x) + b1
    uint16_t* h1_gelu;    // (B,T,H)
    uint16_t* z;          // (B,T,K) the code: what would cross the link
    uint16_t* zn;         // (B,T,K) ln(z)
    float* dec_stats;     // fp32 (2,B*T)
    uint16_t* g1;         // (B,T,H) V1 ln(z) + c1
    uint16_t* g1_gelu;    // (B,T,H)
    uint16_t* xprime;     // (B,T,C) the next stage's residual stream
  };

  // x (B,T,C) = residual3 of the boundary's last block, whose ln is already in enc_ln: z, then x'.
  void boundary_forward(int b, const uint16_t* x) {
    const int N = B_ * T_, C = c_.C, Kw = code_width(c_, bn_), H = hidden_width(c_, bn_);
    const Boundary& s = boundaries_[b];
    K::matmul_forward_bf16(ctx_, s.h1, s.enc_ln, bp(b, kEncW1), bp(b, kEncB1), N, C, H);
    K::gelu_forward_bf16(ctx_, s.h1_gelu, s.h1, static_cast<size_t>(N) * H);
    K::matmul_forward_bf16(ctx_, z_branch_, s.h1_gelu, bp(b, kEncW2), bp(b, kEncB2), N, H, Kw);
    K::slice_columns_forward_bf16(ctx_, z_id_, x, N, C, 0, Kw);  // the identity path x P, P = [I_K; 0]
    K::add_bf16(ctx_, s.z, z_id_, z_branch_, static_cast<size_t>(N) * Kw);
    K::layernorm_forward_bf16(ctx_, s.zn, s.dec_stats, s.dec_stats + N, s.z, bp(b, kDecLnW), bp(b, kDecLnB), N, Kw);
    K::matmul_forward_bf16(ctx_, s.g1, s.zn, bp(b, kDecV1), bp(b, kDecC1), N, Kw, H);
    K::gelu_forward_bf16(ctx_, s.g1_gelu, s.g1, static_cast<size_t>(N) * H);
    K::matmul_forward_bf16(ctx_, s.xprime, s.g1_gelu, bp(b, kDecV2), bp(b, kDecC2), N, H, C);
    // x' = branch + z P^T: adding z onto the first K channels is the slice's backward (+=), one rounding.
    K::slice_columns_backward_bf16(ctx_, s.xprime, s.z, N, C, 0, Kw);
  }

  // d_residual_ holds dL/dx' (B,T,C); leaves dL/dx (x = residual3 of the boundary's last block) in d_residual_.
  void boundary_backward(int b, const uint16_t* x) {
    const int N = B_ * T_, C = c_.C, Kw = code_width(c_, bn_), H = hidden_width(c_, bn_);
    const size_t NH_ = static_cast<size_t>(N) * H, NK = static_cast<size_t>(N) * Kw, NC = static_cast<size_t>(N) * C;
    const Boundary& s = boundaries_[b];
    uint16_t* d_hid_a = d_bt4c_a_;  // (B,T,H), H <= C
    uint16_t* d_hid_b = d_bt4c_b_;  // (B,T,H)
    // Decoder: x' = pad(z) + V2 gelu(V1 ln(z) + c1) + c2.
    K::fill_bf16(ctx_, d_hid_a, 0, NH_);
    K::matmul_backward_bf16(ctx_, d_hid_a, bg(b, kDecV2), bg(b, kDecC2), d_residual_, s.g1_gelu, bp(b, kDecV2), N,
                            H, C);
    K::fill_bf16(ctx_, d_hid_b, 0, NH_);
    K::gelu_backward_bf16(ctx_, d_hid_b, s.g1, d_hid_a, NH_);
    K::fill_bf16(ctx_, d_k_a_, 0, NK);
    K::matmul_backward_bf16(ctx_, d_k_a_, bg(b, kDecV1), bg(b, kDecC1), d_hid_b, s.zn, bp(b, kDecV1), N, Kw, H);
    K::slice_columns_forward_bf16(ctx_, d_k_b_, d_residual_, N, C, 0, Kw);  // dz from pad(z): a copy, no rounding
    K::layernorm_backward_bf16(ctx_, d_k_b_, bg(b, kDecLnW), bg(b, kDecLnB), d_k_a_, s.z, bp(b, kDecLnW),
                               s.dec_stats, s.dec_stats + N, N, Kw);
    // Encoder: z = x[:, :K] + W2 gelu(W1 ln(x) + b1) + b2.
    K::fill_bf16(ctx_, d_hid_a, 0, NH_);
    K::matmul_backward_bf16(ctx_, d_hid_a, bg(b, kEncW2), bg(b, kEncB2), d_k_b_, s.h1_gelu, bp(b, kEncW2), N, H, Kw);
    K::fill_bf16(ctx_, d_hid_b, 0, NH_);
    K::gelu_backward_bf16(ctx_, d_hid_b, s.h1, d_hid_a, NH_);
    K::fill_bf16(ctx_, d_btc_, 0, NC);
    K::matmul_backward_bf16(ctx_, d_btc_, bg(b, kEncW1), bg(b, kEncB1), d_hid_b, s.enc_ln, bp(b, kEncW1), N, C, H);
    K::fill_bf16(ctx_, d_residual_alt_, 0, NC);
    K::slice_columns_backward_bf16(ctx_, d_residual_alt_, d_k_b_, N, C, 0, Kw);  // the identity path
    K::layernorm_backward_bf16(ctx_, d_residual_alt_, bg(b, kEncLnW), bg(b, kEncLnB), d_btc_, x, bp(b, kEncLnW),
                               s.enc_stats, s.enc_stats + N, N, C);
    std::swap(d_residual_, d_residual_alt_);
  }

  // The input of block l: the embeddings, the previous block's residual3, or a boundary's x'.
  const uint16_t* block_input(int l) const {
    if (l == 0) return encoded_;
    if (boundary_after_[l - 1] >= 0) return boundaries_[boundary_after_[l - 1]].xprime;
    return residual3_ + static_cast<size_t>(l - 1) * B_ * T_ * c_.C;
  }
  float* ln1_mean(int l) const { return ln1_stats_ + static_cast<size_t>(2 * l) * B_ * T_; }
  float* ln1_rstd(int l) const { return ln1_stats_ + static_cast<size_t>(2 * l + 1) * B_ * T_; }
  float* ln2_mean(int l) const { return ln2_stats_ + static_cast<size_t>(2 * l) * B_ * T_; }
  float* ln2_rstd(int l) const { return ln2_stats_ + static_cast<size_t>(2 * l + 1) * B_ * T_; }
  uint16_t* bp(int b, int t) const { return p_[16 + kBottleneckTensors * b + t]; }  // bf16 weights of boundary b
  float* bg(int b, int t) const { return g_[16 + kBottleneckTensors * b + t]; }     // their fp32 gradients
  size_t att_size() const { return static_cast<size_t>(B_) * c_.NH * T_ * T_; }
  size_t lse_size() const { return static_cast<size_t>(B_) * c_.NH * T_; }

  Bottlenecks bn_;
  Attention attention_;
  uint64_t seed_ = 0;
  size_t n_params_ = 0, n_gpt2_params_ = 0, bottleneck_bytes_ = 0;
  std::vector<int> boundary_after_;  // (L): the boundary that follows block l, or -1
  std::vector<Boundary> boundaries_;
  float *master_, *grads_, *m_, *v_;
  uint16_t* params_;
  std::vector<uint16_t*> p_;
  std::vector<float*> g_;
  uint16_t *encoded_, *ln1_, *qkv_, *atty_, *residual2_, *ln2_, *fch_, *fch_gelu_, *residual3_, *proj_;
  uint16_t* att_ = nullptr;  // cublas: (L,B,NH,T,T) bf16 probabilities
  float* lse_ = nullptr;     // flash: (L,B,NH,T) fp32 row log-sum-exp
  uint16_t *lnf_, *logits_;
  float *ln1_stats_, *ln2_stats_, *lnf_stats_, *losses_;
  uint16_t *d_residual_, *d_residual_alt_, *d_btc_, *d_bt4c_a_, *d_bt4c_b_, *d_bt3c_;
  uint16_t* datt_ = nullptr;  // cublas: (B,NH,T,T) scratch
  uint16_t *z_id_ = nullptr, *z_branch_ = nullptr, *d_k_a_ = nullptr, *d_k_b_ = nullptr;
};

}  // namespace gpu_step
