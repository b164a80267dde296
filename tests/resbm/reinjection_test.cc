// tests/resbm/reinjection_test.cc: token re-injection (BottleneckConfig::reinject) in the stage model: which stages
// get a table (the last re-uses its head: no new parameters), how tables start (zeros: x' unchanged; copy: wte's
// initial values), that the table learns only the rows of tokens seen, and the fused layout's refusal. Also the
// int8 code's stochastic gradient rounding through the pipeline: the same seed gives the same bits, another seed
// or round-to-nearest gives others.
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/memory.h"
#include "engine/pipeline/pipeline.h"
#include "gtest/gtest.h"
#include "resbm/stage_model.h"
#include "tests/resbm/stage_test_data.h"

namespace {

using engine::Tensor;
using engine::Var;
using resbm::BottleneckConfig;
using resbm::BottleneckKind;
using resbm::Reinjection;

constexpr uint64_t kSeed = 99;
constexpr int kB = 2, kT = 8, kS = 3;

using resbm_test::small_config;

BottleneckConfig resbm_with(Reinjection reinject) {
  BottleneckConfig b;
  b.kind = BottleneckKind::resbm;
  b.ratio = 8;  // K = 4
  b.reinject = reinject;
  return b;
}

engine::pipeline::PipelineConfig pipe() {
  engine::pipeline::PipelineConfig p;
  p.stages = kS;
  return p;
}

int64_t count(engine::ParamStore& store) {
  int64_t n = 0;
  for (auto& p : store.params()) n += p.var.value.numel();
  return n;
}

// Token ids 0..31 only: rows 32..63 of a table must never see a gradient.
struct Batch : resbm_test::TokenBatch {
  explicit Batch(uint32_t seed) : TokenBatch(kB, kT, seed, 32) {}
};

TEST(Reinjection, MiddleStagesGetATableTheLastReusesItsHead) {
  const resbm::GPT2Config config = small_config();
  auto off = resbm::make_stage_models(config, resbm_with(Reinjection::off), pipe(), kSeed);
  auto on = resbm::make_stage_models(config, resbm_with(Reinjection::copy), pipe(), kSeed);
  const int64_t table = int64_t{config.padded_vocab_size} * config.channels;
  EXPECT_EQ(count(on[0]->params()), count(off[0]->params())) << "the first stage embeds the tokens already";
  EXPECT_EQ(count(on[1]->params()), count(off[1]->params()) + table) << "a middle stage has a table of its own";
  EXPECT_EQ(count(on[2]->params()), count(off[2]->params())) << "the last stage re-uses its head's weight";
  EXPECT_GE(on[1]->params().find("reinject.1.weight"), 0);
}

TEST(Reinjection, TablesStartAtZerosOrAsWte) {
  const resbm::GPT2Config config = small_config();
  auto zeros = resbm::make_stage_models(config, resbm_with(Reinjection::zeros), pipe(), kSeed);
  auto copy = resbm::make_stage_models(config, resbm_with(Reinjection::copy), pipe(), kSeed);
  auto off = resbm::make_stage_models(config, resbm_with(Reinjection::off), pipe(), kSeed);
  const Tensor& z = zeros[1]->params().var(zeros[1]->params().find("reinject.1.weight")).value;
  const Tensor& c = copy[1]->params().var(copy[1]->params().find("reinject.1.weight")).value;
  const Tensor& wte = off[0]->params().var(off[0]->params().find("wte")).value;
  for (int64_t i = 0; i < z.numel(); ++i) ASSERT_EQ(z.f32()[i], 0.0f) << i;
  ASSERT_EQ(c.numel(), wte.numel());
  EXPECT_EQ(0, std::memcmp(c.data, wte.data, c.nbytes())) << "copy starts as wte's initial values (padding zero)";

  // The middle stage's output: zeros leaves x' (and so the code it sends) exactly as without re-injection; copy
  // changes it. Same input code for all three.
  engine::DeviceContext device(engine::Device::cpu, 1);
  engine::Arena leaves("inputs", 1 << 16);
  Var code{leaves.alloc({kB, kT, 4}), leaves.alloc({kB, kT, 4})};
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int64_t i = 0; i < code.value.numel(); ++i) code.value.f32()[i] = normal(rng);
  Batch batch(7);
  auto out = [&](resbm::StageModel& stage) {
    engine::Graph g(device.ctx(), engine::Device::cpu, stage.activation_bytes(kB, kT));
    const Var z = stage.forward(g, batch.tokens, batch.targets, code);
    return std::vector<float>(z.value.f32(), z.value.f32() + z.value.numel());
  };
  EXPECT_EQ(out(*zeros[1]), out(*off[1])) << "a zero table adds exactly nothing";
  EXPECT_NE(out(*copy[1]), out(*off[1]));
  // The last stage adds its head's rows even with `zeros` (it has no table of its own): the loss moves.
  EXPECT_NE(out(*zeros[2]), out(*off[2]));
}

TEST(Reinjection, TheTableLearnsOnlyTheRowsOfTokensSeen) {
  const resbm::GPT2Config config = small_config();
  engine::DeviceContext device(engine::Device::cpu, 1);
  std::vector<std::unique_ptr<engine::pipeline::StageModule>> stages;
  for (auto& m : resbm::make_stage_models(config, resbm_with(Reinjection::zeros), pipe(), kSeed)) {
    stages.push_back(std::move(m));
  }
  engine::ParamStore& middle = stages[1]->params();
  const Tensor table = middle.var(middle.find("reinject.1.weight")).value;  // (Vp, C)
  auto exec = engine::pipeline::make_local_executor(pipe(), std::move(stages),
                                                    engine::pipeline::default_adamw(device.ctx()), device.ctx(), kB, kT);
  for (uint32_t s = 0; s < 3; ++s) {
    Batch batch(11 + s);
    exec->step(batch.tokens, batch.targets, 1e-2f);
  }
  const int C = config.channels;
  int moved_rows = 0;
  for (int row = 0; row < config.padded_vocab_size; ++row) {
    bool moved = false;
    for (int c = 0; c < C; ++c) moved |= table.f32()[int64_t{row} * C + c] != 0.0f;
    if (row >= 32) EXPECT_FALSE(moved) << "row " << row << " never appears as a token";
    moved_rows += moved;
  }
  EXPECT_GT(moved_rows, 16) << "the rows of the tokens seen must learn";
}

TEST(Reinjection, FusedLayoutIsRefusedWithAReason) {
  BottleneckConfig b = resbm_with(Reinjection::copy);
  b.layout = resbm::ResbmLayout::fused;
  try {
    resbm::validate_bottleneck(b, 32);
    FAIL() << "fused + re-injection must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--resbm-layout module"), std::string::npos) << e.what();
  }
  EXPECT_EQ(resbm::parse_reinjection("copy"), Reinjection::copy);
  EXPECT_THROW(resbm::parse_reinjection("yes"), std::invalid_argument);
}

// int8 codes: gradients round stochastically from (code_rounding_seed, step, stage, micro-batch). Losses of 4 steps.
std::vector<float> int8_losses(bool stochastic, uint64_t rounding_seed) {
  const resbm::GPT2Config config = small_config();
  engine::DeviceContext device(engine::Device::cpu, 1);
  BottleneckConfig b = resbm_with(Reinjection::off);
  b.code_dtype = engine::comm::WireDType::i8;
  engine::pipeline::PipelineConfig p = pipe();
  p.micro_batches = 2;
  p.stochastic_code_grads = stochastic;
  p.code_rounding_seed = rounding_seed;
  std::vector<std::unique_ptr<engine::pipeline::StageModule>> stages;
  for (auto& m : resbm::make_stage_models(config, b, p, kSeed)) stages.push_back(std::move(m));
  auto exec = engine::pipeline::make_local_executor(p, std::move(stages), engine::pipeline::default_adamw(device.ctx()),
                                                    device.ctx(), kB, kT);
  std::vector<float> losses;
  for (uint32_t s = 0; s < 4; ++s) {
    Batch first(21 + s), second(41 + s);
    std::vector<int32_t> tok = first.tok, tgt = first.tgt;  // (M*B, T): the two micro-batches stacked
    tok.insert(tok.end(), second.tok.begin(), second.tok.end());
    tgt.insert(tgt.end(), second.tgt.begin(), second.tgt.end());
    Tensor tokens = Batch::view(tok, kB, kT), targets = Batch::view(tgt, kB, kT);
    tokens.shape[0] = targets.shape[0] = 2 * kB;
    losses.push_back(exec->step(tokens, targets, 1e-2f).loss);
  }
  return losses;
}

TEST(CodeRounding, Int8GradientsAreReproducibleFromTheSeed) {
  const std::vector<float> a = int8_losses(true, 5), b = int8_losses(true, 5);
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float))) << "same seed, same bits";
  // The first loss precedes any update; from the second on, the rounded gradients have moved the weights.
  const std::vector<float> other_seed = int8_losses(true, 6), nearest = int8_losses(false, 5);
  EXPECT_EQ(a[0], other_seed[0]);
  EXPECT_NE(0, std::memcmp(a.data() + 1, other_seed.data() + 1, 3 * sizeof(float))) << "another seed, other bits";
  EXPECT_NE(0, std::memcmp(a.data() + 1, nearest.data() + 1, 3 * sizeof(float))) << "stochastic != nearest";
}

}  // namespace
