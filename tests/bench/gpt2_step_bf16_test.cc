// tests/bench/gpt2_step_bf16_test.cc: the bf16 mixed-precision training step of the GPU benchmark
// (tools/bench/gpu_step/gpt2_step_bf16.h) run on the bf16 CPU twins, on a tiny GPT-2: against the fp32 step
// (gpt2_step.h) from the same initial weights (with either attention: flash, the default, and cublas), run to run,
// and with ResBM bottlenecks (exact identity at ratio 1, still training at ratio 4). CPU only.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/context.h"
#include "kernels/cuda/bf16_rounding.h"
#include "tools/bench/gpu_step/cpu_kernel_set.h"
#include "tools/bench/gpu_step/gpt2_step.h"
#include "tools/bench/gpu_step/gpt2_step_bf16.h"

namespace {

using gpu_step::CpuKernels;
using Fp32Step = gpu_step::Gpt2Step<CpuKernels>;
using Bf16Step = gpu_step::Gpt2StepBf16<CpuKernels>;

constexpr int B = 2, T = 16;
constexpr uint64_t kSeed = 1337;

gpu_step::Config tiny() {
  gpu_step::Config c;
  c.max_T = T, c.V = 97, c.Vp = 128, c.L = 2, c.NH = 4, c.C = 64;
  return c;
}

struct Batch {
  std::vector<int32_t> tokens, targets;  // (B,T) each
};

Batch random_batch(uint64_t seed, int V) {
  std::mt19937_64 gen(seed);
  Batch b;
  for (int i = 0; i < B * T; i++) b.tokens.push_back(static_cast<int32_t>(gen() % V));
  for (int i = 0; i < B * T; i++) b.targets.push_back(static_cast<int32_t>(gen() % V));
  return b;
}

kernels::KernelContext cpu_context() {
  kernels::KernelContext ctx;
  ctx.num_threads = 2;
  return ctx;
}

// ||a - b|| / ||b|| over n floats.
double relative_error(const float* a, const float* b, size_t n) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; i++) diff += (double(a[i]) - b[i]) * (double(a[i]) - b[i]), ref += double(b[i]) * b[i];
  return std::sqrt(diff / ref);
}

// Trains `steps` AdamW steps on one repeated batch; returns the losses.
template <class Step>
std::vector<float> train(Step& model, const Batch& batch, int steps, float lr) {
  model.set_batch(batch.tokens.data(), batch.targets.data());
  std::vector<float> losses;
  for (int t = 1; t <= steps; t++) {
    model.step(t, lr);
    losses.push_back(model.loss());
  }
  return losses;
}

// The bf16 step with the given attention against the fp32 step. The two attentions round at different points (cublas
// stores bf16 probabilities; flash keeps them fp32 in its twin and rounds only out and dqkv), both well inside the
// bounds below, which are set by the ~20-30 bf16 roundings in series of the whole step, not by attention's.
void expect_matches_fp32_step(gpu_step::Attention attention) {
  const auto ctx = cpu_context();
  const auto cfg = tiny();
  const Batch batch = random_batch(kSeed + 1, cfg.V);
  Fp32Step fp32(ctx, cfg, B, T);
  Bf16Step bf16(ctx, cfg, B, T, {}, attention);
  std::printf("[ attention] %s\n", gpu_step::attention_name(attention));
  // std_scale 4: weights ~0.08, so that attention, GELU and layernorm are all well away from linear and a wiring
  // error (a wrong buffer, a missing accumulation) moves the gradients by O(1), far above the rounding noise.
  fp32.init_params(kSeed, 4.0);
  bf16.init_params(kSeed, 4.0);
  ASSERT_EQ(0, std::memcmp(fp32.params(), bf16.master_params(), fp32.num_parameters() * sizeof(float)))
      << "the two steps must start from the same fp32 weights";
  fp32.set_batch(batch.tokens.data(), batch.targets.data());
  bf16.set_batch(batch.tokens.data(), batch.targets.data());
  fp32.forward(), fp32.backward();
  bf16.forward(), bf16.backward();

  // First loss. Every bf16 value (weights, activations) carries up to 2^-8 relative rounding error, and a logit
  // (here ~0.6 in size: lnf ~1 times wte rows of std 0.08 over C=64) collects those of ~20 roundings in series
  // through L=2 blocks; random in sign, they add like a walk: sqrt(20) * 2^-8 ~ 1.7%, ~0.01 on a logit. The loss
  // moves by at most 2 max|d logit| (d loss / d logits = p - onehot, l1 norm <= 2), but the errors of the V logits
  // and of the B*T=32 positions it averages are independent, so expect ~0.01 / sqrt(32) ~ 2e-3. Bound 0.02: ten
  // times that, and below the worst case of 2 * 0.01.
  const double loss_fp32 = fp32.loss(), loss_bf16 = bf16.loss();
  std::printf("[ measured ] first loss fp32 %.6f bf16 %.6f (|diff| %.2e)\n", loss_fp32, loss_bf16,
              std::fabs(loss_fp32 - loss_bf16));
  EXPECT_NEAR(loss_bf16, loss_fp32, 0.02);

  // Parameter gradients, tensor by tensor, in relative norm. A gradient is a sum over the B*T positions of products
  // of bf16 activations and activation gradients; the backward chain through L=2 blocks rounds each of those
  // ~20-30 times (2^-8 = 0.4% each, independent, so ~sqrt(25) * 0.4% / sqrt(3) ~ 1.2% in norm for uniform
  // rounding errors). Bound 5%: room for the compounding, while a wiring error gives O(1).
  const auto sizes = gpu_step::param_sizes(cfg);
  size_t off = 0;
  for (size_t t = 0; t < sizes.size(); t++) {
    const double err = relative_error(bf16.grads() + off, fp32.grads() + off, sizes[t]);
    std::printf("[ measured ] grad tensor %2zu relative error %.4f\n", t, err);
    EXPECT_LT(err, 0.05) << "parameter tensor " << t;
    off += sizes[t];
  }

  // 10 AdamW steps on the batch: the bf16 losses track the fp32 ones. AdamW's update is ~lr in size whatever the
  // gradient's scale, so gradient errors of a few % move the weights by a few % of lr per step; over 10 steps at
  // lr 1e-3 that shifts the loss by far less than the first loss's 0.02: bound 0.03 on every step.
  Fp32Step fp32_run(ctx, cfg, B, T);
  Bf16Step bf16_run(ctx, cfg, B, T, {}, attention);
  fp32_run.init_params(kSeed, 4.0);
  bf16_run.init_params(kSeed, 4.0);
  const std::vector<float> l32 = train(fp32_run, batch, 10, 1e-3f), l16 = train(bf16_run, batch, 10, 1e-3f);
  for (int i = 0; i < 10; i++) {
    std::printf("[ measured ] step %2d loss fp32 %.5f bf16 %.5f\n", i + 1, l32[i], l16[i]);
    EXPECT_NEAR(l16[i], l32[i], 0.03) << "step " << i + 1;
  }
  EXPECT_LT(l16.back(), l16.front() - 0.1) << "10 steps on one batch must lower the loss";
}

TEST(Gpt2StepBf16, MatchesFp32Step) { expect_matches_fp32_step(gpu_step::Attention::flash); }

TEST(Gpt2StepBf16, MatchesFp32StepWithCublasAttention) { expect_matches_fp32_step(gpu_step::Attention::cublas); }

// The two attentions compute the same function: the first loss and gradients of the two bf16 steps agree within the
// bounds above (each is within them of the fp32 step; a buffer mix-up in either wiring gives O(1)).
TEST(Gpt2StepBf16, FlashAndCublasAttentionAgree) {
  const auto ctx = cpu_context();
  const auto cfg = tiny();
  const Batch batch = random_batch(kSeed + 4, cfg.V);
  Bf16Step flash(ctx, cfg, B, T, {}, gpu_step::Attention::flash);
  Bf16Step cublas(ctx, cfg, B, T, {}, gpu_step::Attention::cublas);
  for (Bf16Step* m : {&flash, &cublas}) {
    m->init_params(kSeed, 4.0);
    m->set_batch(batch.tokens.data(), batch.targets.data());
    m->forward(), m->backward();
  }
  std::printf("[ measured ] first loss flash %.6f cublas %.6f\n", flash.loss(), cublas.loss());
  EXPECT_NEAR(flash.loss(), cublas.loss(), 0.02);
  const double err = relative_error(flash.grads(), cublas.grads(), flash.num_parameters());
  std::printf("[ measured ] all gradients, flash vs cublas: relative error %.4f\n", err);
  EXPECT_LT(err, 0.05);
  EXPECT_GT(err, 0.0) << "the two attentions round at different points: identical gradients mean one is not run";
}

TEST(Gpt2StepBf16, FlashAttentionRefusesHeadSizeNotMultipleOf16) {
  auto cfg = tiny();
  cfg.NH = 8;  // HS = 8
  EXPECT_THROW(Bf16Step(cpu_context(), cfg, B, T, {}, gpu_step::Attention::flash), std::invalid_argument);
  Bf16Step ok(cpu_context(), cfg, B, T, {}, gpu_step::Attention::cublas);  // cublas takes any head size
}

TEST(Gpt2StepBf16, RunsAreBitwiseIdentical) {
  const auto ctx = cpu_context();
  const auto cfg = tiny();
  const Batch batch = random_batch(kSeed + 2, cfg.V);
  const gpu_step::Bottlenecks bn{1, 4};  // the bottleneck path too
  std::vector<float> losses[2], masters[2];
  std::vector<uint16_t> copies[2];
  for (int run = 0; run < 2; run++) {
    Bf16Step model(ctx, cfg, B, T, bn);
    model.init_params(kSeed);
    losses[run] = train(model, batch, 5, 1e-2f);
    masters[run].assign(model.master_params(), model.master_params() + model.num_parameters());
    copies[run].assign(model.params(), model.params() + model.num_parameters());
  }
  EXPECT_EQ(0, std::memcmp(losses[0].data(), losses[1].data(), losses[0].size() * sizeof(float)));
  EXPECT_EQ(masters[0], masters[1]);
  EXPECT_EQ(copies[0], copies[1]) << "the stochastic rounding of the bf16 copy is seeded: same bits";
}

TEST(Gpt2StepBf16, OverfitsOneBatch) {
  const auto ctx = cpu_context();
  const auto cfg = tiny();
  Bf16Step model(ctx, cfg, B, T);
  model.init_params(kSeed);
  const std::vector<float> losses = train(model, random_batch(kSeed + 3, cfg.V), 40, 1e-2f);
  std::printf("[ measured ] no bottleneck: loss %.4f -> %.4f in 40 steps\n", losses.front(), losses.back());
  // Small random weights predict near-uniformly: ln(V) = 4.57, within 0.2 (as the fp32 step's test).
  EXPECT_NEAR(losses.front(), std::log(static_cast<double>(cfg.V)), 0.2);
  // One fixed batch is memorised: the loss falls well below half its start in 40 AdamW steps.
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

TEST(Gpt2StepBf16, BottleneckAtRatioOneIsExactlyTheIdentityAtInit) {
  const auto ctx = cpu_context();
  const auto cfg = tiny();
  const Batch batch = random_batch(kSeed + 4, cfg.V);
  Bf16Step plain(ctx, cfg, B, T);
  Bf16Step with_bn(ctx, cfg, B, T, gpu_step::Bottlenecks{1, 1});
  plain.init_params(kSeed);
  with_bn.init_params(kSeed);
  ASSERT_GT(with_bn.num_parameters(), plain.num_parameters());
  for (Bf16Step* m : {&plain, &with_bn}) {
    m->set_batch(batch.tokens.data(), batch.targets.data());
    m->forward();
    m->backward();
  }
  // W2, b2, V2, c2 are zero: both branches add exact zeros, z = x and x' = x bit for bit (K = C), so the loss and
  // the GPT-2 gradients (whose backward crosses the zero branches the same way) are bitwise those without it.
  const float a = plain.loss(), b = with_bn.loss();
  EXPECT_EQ(0, std::memcmp(&a, &b, sizeof(float))) << a << " vs " << b;
  EXPECT_EQ(0, std::memcmp(plain.grads(), with_bn.grads(), plain.num_gpt2_parameters() * sizeof(float)));
  // The bottleneck's own last layers do get a gradient (they are trained): W2's is not all zero.
  double w2 = 0;
  const float* g = with_bn.grads() + plain.num_gpt2_parameters();
  const auto bsizes = gpu_step::bottleneck_param_sizes(cfg, gpu_step::Bottlenecks{1, 1});
  size_t off = 0;
  for (int t = 0; t < gpu_step::kEncW2; t++) off += bsizes[t];
  for (size_t i = 0; i < bsizes[gpu_step::kEncW2]; i++) w2 += std::fabs(g[off + i]);
  EXPECT_GT(w2, 0.0);
}

TEST(Gpt2StepBf16, BottleneckAtRatioFourTrains) {
  const auto ctx = cpu_context();
  const auto cfg = tiny();
  Bf16Step model(ctx, cfg, B, T, gpu_step::Bottlenecks{1, 4});  // K = 16 of C = 64 channels cross
  model.init_params(kSeed);
  const std::vector<float> losses = train(model, random_batch(kSeed + 5, cfg.V), 30, 1e-2f);
  std::printf("[ measured ] bottleneck r=4: loss %.4f -> %.4f in 30 steps\n", losses.front(), losses.back());
  EXPECT_LT(losses.back(), 0.5 * losses.front());
}

// Central differences along the gradient, restricted to the parameters [begin, end): the loss at the weights
// moved by -eps g and +eps g, against g . (w+ - w-) computed from the bf16 weights actually used (the copies are
// rounded: the move is what the rounding left of it). Returns the ratio, 1 for a gradient consistent with the
// loss. eps makes the predicted change 2 * 0.02. The bf16 loss is not smooth at the rounding level: moving the
// weights flips roundings of activations, a jitter of ~2e-3 in the difference (~5% of 0.04); the central difference
// cancels the second-order term and the third-order one is ~2% at this step for the smallest tensors (16 biases).
// Hence [0.9, 1.1]; a missing term of a backward pass shows as a zero gradient or a ratio far from 1.
double gradient_consistency(Bf16Step& model, const Batch& batch, size_t begin, size_t end) {
  const size_t n = model.num_parameters();
  const std::vector<float> masters(model.master_params(), model.master_params() + n);
  model.set_master_params(masters.data(), kSeed);
  model.set_batch(batch.tokens.data(), batch.targets.data());
  model.forward();
  model.backward();
  const std::vector<float> g(model.grads(), model.grads() + n);
  double g2 = 0;
  for (size_t i = begin; i < end; i++) g2 += double(g[i]) * g[i];
  if (!(g2 > 0)) {
    std::printf("[ measured ] params [%zu, %zu): the gradient is %g\n", begin, end, g2);
    return 0.0;  // no gradient (or NaN) where the loss depends on the parameters: inconsistent
  }
  const double eps = 0.02 / g2;
  std::vector<uint16_t> w[2];
  double loss[2];
  for (int side = 0; side < 2; side++) {
    std::vector<float> moved = masters;
    for (size_t i = begin; i < end; i++) moved[i] += static_cast<float>((side == 0 ? -eps : eps) * g[i]);
    model.set_master_params(moved.data(), kSeed);
    model.forward();
    loss[side] = model.loss();
    w[side].assign(model.params(), model.params() + n);
  }
  double predicted = 0;
  for (size_t i = begin; i < end; i++) {
    predicted += g[i] * (double(kernels::bf16::widen(w[1][i])) - kernels::bf16::widen(w[0][i]));
  }
  model.set_master_params(masters.data(), kSeed);  // back where it was: the next check starts from the same point
  std::printf("[ measured ] params [%zu, %zu): loss change %.5f, predicted %.5f, ratio %.3f\n", begin, end,
              loss[1] - loss[0], predicted, (loss[1] - loss[0]) / predicted);
  return (loss[1] - loss[0]) / predicted;
}

// The bottleneck's backward (its own gradients, and the gradient it passes back into stage 0) against its
// forward. Its weights are set to random values of a size where both branches matter as much as the identity path
// (at init W2, b2, V2, c2 are zero and the branches carry no gradient at all), then each of its 12 tensors, the
// blocks and the embeddings are checked on their own: a missing or misrouted term shows in its group.
TEST(Gpt2StepBf16, BottleneckGradientsAreConsistentWithTheLoss) {
  const auto ctx = cpu_context();
  const auto cfg = tiny();
  const gpu_step::Bottlenecks bn{1, 4};
  const Batch batch = random_batch(kSeed + 6, cfg.V);
  Bf16Step model(ctx, cfg, B, T, bn);
  model.init_params(kSeed, 4.0);
  std::vector<float> masters(model.master_params(), model.master_params() + model.num_parameters());
  std::mt19937_64 gen(kSeed + 7);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  const auto bsizes = gpu_step::bottleneck_param_sizes(cfg, bn);
  std::vector<size_t> begin = {model.num_gpt2_parameters()};  // where each bottleneck tensor starts
  for (int t = 0; t < gpu_step::kBottleneckTensors; t++) {
    const float center = (t == gpu_step::kEncLnW || t == gpu_step::kDecLnW) ? 1.0f : 0.0f;  // layernorm gains ~1
    for (size_t i = begin.back(); i < begin.back() + bsizes[t]; i++) masters[i] = center + normal(gen);
    begin.push_back(begin.back() + bsizes[t]);
  }
  model.set_master_params(masters.data(), kSeed);
  for (int t = 0; t < gpu_step::kBottleneckTensors; t++) {
    EXPECT_NEAR(gradient_consistency(model, batch, begin[t], begin[t + 1]), 1.0, 0.1) << "bottleneck tensor " << t;
  }
  // The blocks' stacked (L, ...) tensors (2..13): block 1 after the boundary, block 0 before it. Then wte and wpe,
  // whose gradient crossed everything.
  const auto sizes = gpu_step::param_sizes(cfg);
  const size_t blocks_begin = sizes[0] + sizes[1];
  size_t blocks_end = blocks_begin;
  for (int t = 2; t < 14; t++) blocks_end += sizes[t];
  EXPECT_NEAR(gradient_consistency(model, batch, blocks_begin, blocks_end), 1.0, 0.1) << "blocks";
  EXPECT_NEAR(gradient_consistency(model, batch, 0, blocks_begin), 1.0, 0.1) << "embeddings";
}

}  // namespace
