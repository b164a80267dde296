// tests/resbm/gpt2_oracle_test.cc: GPT-2 loaded from an llm.c checkpoint matches the float64 PyTorch oracle.
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/memory.h"
#include "engine/optim/adamw.h"
#include "resbm/gpt2.h"
#include "resbm/llmc_checkpoint.h"
#include "tests/resbm/gpt2_fixture.h"

namespace resbm {
namespace {

using testing::OracleFixture;

class GPT2OracleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fx_ = testing::read_fixture(testing::kSmallFixture);
    model_ = std::make_unique<GPT2>(fx_.config);
    load_llmc_checkpoint(testing::kSmallCheckpoint, *model_);
    tokens_ = testing::make_ids(inputs_, fx_.inputs, fx_.B, fx_.T);
    targets_ = testing::make_ids(inputs_, fx_.targets, fx_.B, fx_.T);
  }

  OracleFixture fx_;
  engine::DeviceContext device_{engine::Device::cpu, 2};
  engine::Arena inputs_{"inputs", 1 << 16};
  std::unique_ptr<GPT2> model_;
  engine::Tensor tokens_, targets_;
};

TEST_F(GPT2OracleTest, LogitsAndLossMatch) {
  engine::Graph g(device_.ctx(), engine::Device::cpu, model_->activation_bytes(fx_.B, fx_.T));
  engine::Var loss = model_->forward(g, tokens_, targets_);
  const engine::Var& logits = model_->logits();  // (B,T,Vp)
  ASSERT_EQ(logits.value.numel(), int64_t(fx_.logits.size()));
  // fp32 against a float64 reference: each logit is a chain of C=64..256-term dot products through two blocks,
  // so the expected error is a few ulp of the logits' scale (~1e-6 relative; measured 5e-7); 1e-5 leaves margin
  // and is still "well under 1e-4" (acceptance).
  const double logit_err = testing::scaled_max_error(logits.value.f32(), fx_.logits.data(), fx_.logits.size());
  EXPECT_LT(logit_err, 1e-5) << "logits differ from the oracle";
  const double loss_err = std::fabs(loss.value.f32()[0] - fx_.loss) / fx_.loss;
  EXPECT_LT(loss_err, 1e-5) << "loss " << loss.value.f32()[0] << " vs oracle " << fx_.loss;
  std::printf("logits scaled max error %.3g, loss relative error %.3g\n", logit_err, loss_err);
}

TEST_F(GPT2OracleTest, AllParameterGradientsMatch) {
  engine::Graph g(device_.ctx(), engine::Device::cpu, model_->activation_bytes(fx_.B, fx_.T));
  engine::Var loss = model_->forward(g, tokens_, targets_);
  g.backward(loss);
  size_t offset = 0;
  double worst = 0;
  for (const NamedShape& s : gpt2_llmc_layout(fx_.config)) {
    const int index = model_->params().find(s.name);
    ASSERT_GE(index, 0) << s.name;
    const engine::Tensor& grad = model_->params().param(index).var.grad;
    ASSERT_EQ(grad.numel(), s.numel()) << s.name;
    const float* ref = fx_.grads.data() + offset;
    // Relative to the tensor's largest gradient (see scaled_max_error). fp32 backward through softmax,
    // layernorm and attention loses a little more than the forward pass (sums of products of already-rounded
    // activations, cancellation in the layernorm and softmax Jacobians): errors of ~1e-6 are expected, while
    // any wrong term (a missing scale, a transposed weight, a dropped bias
    // gradient) gives O(1). Measured: worst 8e-7 over all tensors; 1e-5 keeps a 10x margin.
    const double err = testing::scaled_max_error(grad.f32(), ref, s.numel());
    EXPECT_LT(err, 1e-5) << "gradient of " << s.name;
    worst = std::fmax(worst, err);
    offset += s.numel();
  }
  EXPECT_EQ(offset, fx_.grads.size());
  std::printf("worst scaled gradient error %.3g\n", worst);
  // wte's padding rows get no gradient (their logits are outside the loss), in the oracle and here.
  const engine::Tensor& dwte = model_->params().var(model_->embeddings().wte).grad;
  const int64_t C = fx_.config.channels;
  for (int64_t i = int64_t{fx_.config.vocab_size} * C; i < dwte.numel(); ++i) ASSERT_EQ(dwte.f32()[i], 0.0f);
}

TEST_F(GPT2OracleTest, TenAdamWStepsMatch) {
  engine::optim::AdamWConfig cfg;
  cfg.beta1 = fx_.beta1;
  cfg.beta2 = fx_.beta2;
  cfg.eps = fx_.eps;
  cfg.weight_decay = fx_.weight_decay;  // the oracle decays exactly the 2-D tensors, as takes_weight_decay does
  engine::optim::AdamW opt(model_->params(), device_.ctx(), cfg);
  engine::Graph g(device_.ctx(), engine::Device::cpu, model_->activation_bytes(fx_.B, fx_.T));
  double worst = 0;
  for (int step = 0; step < fx_.steps; ++step) {
    g.reset();
    engine::Var loss = model_->forward(g, tokens_, targets_);
    const float got = loss.value.f32()[0];
    // Acceptance: 1e-4. fp32 parameter updates drift from the float64 trajectory by ~1e-7 relative per step;
    // over 10 steps the loss stays within ~1e-5 of the oracle's.
    EXPECT_NEAR(got, fx_.losses[step], 1e-4) << "loss before AdamW step " << step + 1;
    worst = std::fmax(worst, std::fabs(got - fx_.losses[step]));
    g.backward(loss);
    opt.step(fx_.lr);
    model_->params().zero_grads();
  }
  // The run must really have trained (lr 1e-3 on one batch), or matching losses would say little.
  EXPECT_LT(fx_.losses.back(), 0.7f * fx_.losses.front());
  std::printf("10 AdamW steps: worst loss difference %.3g (loss %.4f -> %.4f)\n", worst, fx_.losses.front(),
              fx_.losses.back());
}

}  // namespace
}  // namespace resbm
