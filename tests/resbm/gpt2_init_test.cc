// tests/resbm/gpt2_init_test.cc: GPT-2 initialisation statistics, determinism, and the RNG behind it.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/params.h"
#include "resbm/gpt2.h"

namespace resbm {
namespace {

struct Moments {
  double mean = 0, std = 0;
  int64_t n = 0;
};

Moments moments(const float* x, int64_t n) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i], s2 += double(x[i]) * x[i];
  Moments m;
  m.n = n;
  m.mean = s / n;
  m.std = std::sqrt(s2 / n - m.mean * m.mean);
  return m;
}

// A sample of n normals has std within a relative ~1/sqrt(2n) of the truth and mean within std/sqrt(n): we allow
// 6 standard errors, so a correct init fails with probability ~1e-9 while a wrong scale (e.g. a missing
// 1/sqrt(2L) = 0.35 for L=4) is off by tens of standard errors.
void expect_normal(const engine::ParamStore& store, int index, int64_t count, double std) {
  const std::string& name = store.param(index).name;
  const Moments m = moments(store.param(index).var.value.f32(), count);
  EXPECT_NEAR(m.std, std, 6.0 * std / std::sqrt(2.0 * m.n)) << name;
  EXPECT_NEAR(m.mean, 0.0, 6.0 * std / std::sqrt(double(m.n))) << name;
}

void expect_constant(const engine::ParamStore& store, int index, float value) {
  const engine::Tensor& t = store.param(index).var.value;
  for (int64_t i = 0; i < t.numel(); ++i) ASSERT_EQ(t.f32()[i], value) << store.param(index).name << "[" << i << "]";
}

TEST(GPT2Init, StatisticsFollowGPT2) {
  const GPT2Config c = gpt2_preset("tiny");
  GPT2 model(c);
  model.init(1234);
  const engine::ParamStore& s = model.params();
  const int64_t C = c.channels;
  expect_normal(s, model.embeddings().wte, int64_t{c.vocab_size} * C, 0.02);
  expect_normal(s, model.embeddings().wpe, int64_t{c.max_seq_len} * C, 0.01);
  const double residual_std = 0.02 / std::sqrt(2.0 * c.num_layers);
  for (const BlockParams& b : model.blocks()) {
    expect_normal(s, b.qkv_w, 3 * C * C, 0.02);
    expect_normal(s, b.fc_w, 4 * C * C, 0.02);
    expect_normal(s, b.attn_proj_w, C * C, residual_std);
    expect_normal(s, b.fc_proj_w, 4 * C * C, residual_std);
    for (int gain : {b.ln1_w, b.ln2_w}) expect_constant(s, gain, 1.0f);
    for (int bias : {b.ln1_b, b.ln2_b, b.qkv_b, b.attn_proj_b, b.fc_b, b.fc_proj_b}) expect_constant(s, bias, 0.0f);
  }
  expect_constant(s, model.final_norm().lnf_w, 1.0f);
  expect_constant(s, model.final_norm().lnf_b, 0.0f);
  // wte's padding rows stay zero.
  const float* wte = s.param(model.embeddings().wte).var.value.f32();
  for (int64_t i = int64_t{c.vocab_size} * C; i < int64_t{c.padded_vocab_size} * C; ++i) ASSERT_EQ(wte[i], 0.0f);
}

TEST(GPT2Init, DeterministicAndSeedDependent) {
  GPT2Config c = gpt2_preset("tiny");
  c.num_layers = 1;
  GPT2 a(c), b(c), other(c);
  a.init(5);
  b.init(5);
  other.init(6);
  for (size_t i = 0; i < a.params().params().size(); ++i) {
    const engine::Tensor& ta = a.params().params()[i].var.value;
    EXPECT_EQ(std::memcmp(ta.data, b.params().params()[i].var.value.data, ta.nbytes()), 0);
  }
  const engine::Tensor& wa = a.params().var(a.blocks()[0].qkv_w).value;
  EXPECT_NE(std::memcmp(wa.data, other.params().var(other.blocks()[0].qkv_w).value.data, wa.nbytes()), 0);
  // Distinct tensors of the same shape draw distinct streams.
  EXPECT_NE(std::memcmp(a.params().var(a.blocks()[0].attn_proj_w).value.data,
                        a.params().var(a.blocks()[0].qkv_w).value.data, c.channels * c.channels * 4),
            0);
}

TEST(GPT2Init, StageStoreGetsTheWholeModelsValues) {
  // A pipeline stage declaring only block 2 (in another order, next to other tensors) must start with exactly the
  // whole model's block 2: each tensor's stream depends on (seed, name) only.
  const GPT2Config c = gpt2_preset("tiny");
  GPT2 whole(c);
  whole.init(99);
  engine::ParamStore stage;
  declare_final_norm(stage, c);
  const BlockParams b = declare_block(stage, block_prefix(2), c);
  stage.allocate();
  init_block(stage, b, c, 99);
  const BlockParams& w = whole.blocks()[2];
  for (auto [mine, ref] : {std::pair{b.qkv_w, w.qkv_w}, {b.attn_proj_w, w.attn_proj_w}, {b.fc_w, w.fc_w},
                           {b.fc_proj_w, w.fc_proj_w}}) {
    const engine::Tensor& t = stage.param(mine).var.value;
    EXPECT_EQ(std::memcmp(t.data, whole.params().param(ref).var.value.data, t.nbytes()), 0)
        << stage.param(mine).name;
  }
}

TEST(Rng, NormalsLookNormal) {
  Rng rng(42);
  const int n = 1000000;
  double s = 0, s2 = 0, s4 = 0;
  int within_one = 0;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal();
    s += x, s2 += x * x, s4 += x * x * x * x;
    within_one += std::fabs(x) < 1.0;
  }
  // Standard errors at n = 1e6: mean 1e-3, E[x^2] sqrt(2/n) = 1.4e-3, E[x^4] sqrt(96/n) = 9.8e-3,
  // P(|x| < 1) sqrt(p(1-p)/n) = 4.7e-4. Six of each.
  EXPECT_NEAR(s / n, 0.0, 6e-3);
  EXPECT_NEAR(s2 / n, 1.0, 8.5e-3);
  EXPECT_NEAR(s4 / n, 3.0, 0.06);
  EXPECT_NEAR(double(within_one) / n, 0.682689, 2.8e-3);
}

TEST(Rng, UniformsCoverTheUnitInterval) {
  Rng rng(0);  // seed 0 must work too (xorshift's state is never 0)
  int buckets[10] = {};
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = rng.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    ++buckets[int(u * 10)];
  }
  // Each bucket expects 10000 with standard deviation sqrt(n p (1-p)) = 95; six of them is 570.
  for (int b : buckets) EXPECT_NEAR(b, 10000, 570);
}

}  // namespace
}  // namespace resbm
