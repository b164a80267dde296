// Tests of the single-process pipeline executor on the tiny preset: splitting into stages changes no bit, GPipe
// and 1F1B agree bitwise, micro-batching accumulates the gradient of the mean loss, the tied wte copies stay
// equal, bytes on the wire follow B*T*K*bytes(dtype) and the measured compression ratio, evaluation matches.
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "engine/comm/codec.h"
#include "engine/device.h"
#include "engine/pipeline/pipeline.h"
#include "gtest/gtest.h"
#include "resbm/gpt2.h"
#include "resbm/stage_model.h"

namespace {

using engine::Tensor;
using engine::comm::Direction;
using engine::pipeline::PipelineConfig;
using engine::pipeline::Schedule;
using resbm::BottleneckConfig;
using resbm::BottleneckKind;

constexpr uint64_t kSeed = 1234;

struct Tokens {
  std::vector<int32_t> tok, tgt;
  Tensor tokens, targets;
  Tokens(int rows, int T, uint64_t seed) : tok(rows * T), tgt(rows * T) {
    std::mt19937 rng(static_cast<uint32_t>(seed));
    // A learnable task (the target is a fixed function of the current token), so that steps lower the loss.
    for (size_t i = 0; i < tok.size(); ++i) {
      tok[i] = static_cast<int32_t>(rng() % 64);
      tgt[i] = (tok[i] * 7 + 1) % 64;
    }
    tokens = view(tok, rows, T);
    targets = view(tgt, rows, T);
  }
  static Tensor view(std::vector<int32_t>& v, int rows, int T) {
    Tensor t;
    t.data = v.data();
    t.ndim = 2;
    t.shape[0] = rows;
    t.shape[1] = T;
    t.dtype = engine::DType::i32;
    return t;
  }
};

class LocalExecutorTest : public ::testing::Test {
 protected:
  LocalExecutorTest() : device_(engine::Device::cpu, 1), config_(resbm::gpt2_preset("tiny")) {}

  std::unique_ptr<engine::pipeline::Executor> make(const PipelineConfig& p, const BottleneckConfig& b, int B, int T) {
    std::vector<std::unique_ptr<engine::pipeline::StageModule>> stages;
    for (auto& m : resbm::make_stage_models(config_, b, p, kSeed)) stages.push_back(std::move(m));
    return engine::pipeline::make_local_executor(p, std::move(stages), engine::pipeline::default_adamw(device_.ctx()),
                                                 device_.ctx(), B, T);
  }
  // Losses of `steps` steps on fixed random batches (a new batch each step).
  std::vector<float> losses(const PipelineConfig& p, const BottleneckConfig& b, int B, int T, int steps) {
    auto exec = make(p, b, B, T);
    std::vector<float> out;
    for (int s = 0; s < steps; ++s) {
      Tokens data(p.micro_batches * B, T, 100 + s);
      out.push_back(exec->step(data.tokens, data.targets, 1e-3f).loss);
    }
    return out;
  }

  engine::DeviceContext device_;
  resbm::GPT2Config config_;
};

PipelineConfig pipe(int S, int M, Schedule sched = Schedule::gpipe, float clip = 1.0f) {
  PipelineConfig p;
  p.stages = S;
  p.micro_batches = M;
  p.schedule = sched;
  p.grad_clip = clip;
  return p;
}

BottleneckConfig kind(BottleneckKind k, int ratio = 32) {
  BottleneckConfig b;
  b.kind = k;
  b.ratio = ratio;
  return b;
}

// `none` at S = 1, 2, 4 runs the same ops on the same values: with clipping off (the grad norm's summation order
// is the one thing that depends on S) every step's loss is bitwise equal. And S = 1 equals the whole-model GPT2.
TEST_F(LocalExecutorTest, SplittingIntoStagesChangesNoBit) {
  const int B = 2, T = 16, steps = 3;
  const std::vector<float> one = losses(pipe(1, 1, Schedule::gpipe, 0.0f), kind(BottleneckKind::none), B, T, steps);
  for (int S : {2, 4}) {
    EXPECT_EQ(losses(pipe(S, 1, Schedule::gpipe, 0.0f), kind(BottleneckKind::none), B, T, steps), one) << "S=" << S;
  }
  resbm::GPT2 model(config_);
  model.init(kSeed);
  engine::Graph g(device_.ctx(), engine::Device::cpu, model.activation_bytes(B, T));
  Tokens data(B, T, 100);
  EXPECT_EQ(model.forward(g, data.tokens, data.targets).value.f32()[0], one[0]);
}

TEST_F(LocalExecutorTest, GpipeAndOneFOneBAgreeBitwise) {
  const BottleneckConfig b = kind(BottleneckKind::resbm);
  EXPECT_EQ(losses(pipe(4, 4, Schedule::gpipe), b, 2, 16, 3), losses(pipe(4, 4, Schedule::one_f_one_b), b, 2, 16, 3));
}

// An "optimizer" that records the gradient it is given (times the clip scale) instead of updating: what a step's
// backward pass accumulated, per stage.
class GradientRecorder : public engine::pipeline::StageOptimizer {
 public:
  GradientRecorder(engine::ParamStore& params, std::vector<std::vector<float>>* out) : params_(params), out_(out) {}
  void step(float, float grad_scale) override {
    const engine::Tensor g = params_.all_grads();
    out_->emplace_back(g.f32(), g.f32() + g.numel());
    for (float& x : out_->back()) x *= grad_scale;
  }

 private:
  engine::ParamStore& params_;
  std::vector<std::vector<float>>* out_;
};

// M micro-batches of B rows give the gradient of the mean loss over the same M*B rows in one micro-batch: compared
// as gradients, with clipping off (clipping and AdamW's scale invariance would hide a factor M).
TEST_F(LocalExecutorTest, MicroBatchesAccumulateTheMeanGradient) {
  const BottleneckConfig b = kind(BottleneckKind::resbm);
  const int B = 4, T = 16;
  Tokens data(B, T, 100);  // the same 4 rows: one micro-batch of 4, or two of 2
  auto gradients = [&](int M) {
    std::vector<std::vector<float>> grads;
    const PipelineConfig p = pipe(2, M, Schedule::gpipe, /*clip=*/0.0f);
    std::vector<std::unique_ptr<engine::pipeline::StageModule>> stages;
    for (auto& m : resbm::make_stage_models(config_, b, p, kSeed)) stages.push_back(std::move(m));
    auto recorder = [&grads](engine::ParamStore& params) -> std::unique_ptr<engine::pipeline::StageOptimizer> {
      return std::make_unique<GradientRecorder>(params, &grads);
    };
    auto exec = engine::pipeline::make_local_executor(p, std::move(stages), recorder, device_.ctx(), B / M, T);
    exec->step(data.tokens, data.targets, 1e-3f);
    return grads;
  };
  const auto whole = gradients(1), split = gradients(2);
  ASSERT_EQ(whole.size(), 2u);
  ASSERT_EQ(split.size(), whole.size());
  for (size_t s = 0; s < whole.size(); ++s) {
    ASSERT_EQ(whole[s].size(), split[s].size());
    double dot = 0.0, norm_whole = 0.0, norm_split = 0.0, diff = 0.0;
    for (size_t i = 0; i < whole[s].size(); ++i) {
      dot += static_cast<double>(whole[s][i]) * split[s][i];
      norm_whole += static_cast<double>(whole[s][i]) * whole[s][i];
      norm_split += static_cast<double>(split[s][i]) * split[s][i];
      diff += (static_cast<double>(whole[s][i]) - split[s][i]) * (static_cast<double>(whole[s][i]) - split[s][i]);
    }
    ASSERT_GT(norm_whole, 0.0);
    // Same gradient up to fp32 rounding of a different summation order; a sum over micro-batches would be 2x.
    EXPECT_LT(std::sqrt(diff / norm_whole), 1e-4) << "stage " << s;
    EXPECT_NEAR(std::sqrt(norm_split / norm_whole), 1.0, 1e-4) << "stage " << s << ": mean, not sum";
    EXPECT_NEAR(dot / std::sqrt(norm_whole * norm_split), 1.0, 1e-6) << "stage " << s;
  }
}

TEST_F(LocalExecutorTest, TiedEmbeddingCopiesStayEqual) {
  auto exec = make(pipe(3, 2), kind(BottleneckKind::resbm), 2, 16);
  for (int s = 0; s < 3; ++s) {
    Tokens data(4, 16, 7 + s);
    exec->step(data.tokens, data.targets, 1e-2f);
  }
  auto& first = exec->local_stage(0);
  auto& last = exec->local_stage(2);
  const engine::Tensor a = first.params().var(first.tied_param()).value;
  const engine::Tensor c = last.params().var(last.tied_param()).value;
  ASSERT_EQ(a.numel(), c.numel());
  EXPECT_EQ(0, std::memcmp(a.data, c.data, a.nbytes()));
  // And they did move: the copies equal each other, not their initial values.
  resbm::StageModel fresh(config_, kind(BottleneckKind::resbm), 0, 3, 0, 2);
  fresh.init(kSeed);
  const engine::Tensor init = fresh.params().var(fresh.tied_param()).value;
  EXPECT_NE(0, std::memcmp(a.data, init.data, a.nbytes()));
}

// Bytes on the wire per step = (S-1) boundaries * M micro-batches * B*T*K*bytes(dtype) in each direction (int8
// adds one f32 scale per row); the printed ratio is (S-1)*M*B*T*C*4 over the counted bytes.
TEST_F(LocalExecutorTest, WireBytesFollowTheFormula) {
  const int B = 2, T = 16, S = 3, M = 2, C = config_.channels, rows = B * T;
  struct Case {
    BottleneckKind kind;
    int ratio;
    engine::comm::WireDType dtype;
    int K;                 // expected code width
    double bytes_per_row;  // expected, written out by hand: K * bytes per element (+ 4 for an int8 row's scale)
    int code_channels = 0; // --code-width (0: K = C / ratio)
  };
  using engine::comm::WireDType;
  const Case cases[] = {
      {BottleneckKind::none, 1, WireDType::f32, 128, 128 * 4},
      {BottleneckKind::quant, 1, WireDType::f32 /* forced to int8 */, 128, 128 + 4},
      {BottleneckKind::resbm, 128, WireDType::f32, 1, 1 * 4},
      {BottleneckKind::linear, 128, WireDType::f32, 1, 1 * 4},
      {BottleneckKind::ae, 128, WireDType::f32, 1, 1 * 4},
      {BottleneckKind::resbm, 32, WireDType::bf16, 4, 4 * 2},
      {BottleneckKind::resbm, 32, WireDType::i8, 4, 4 * 1 + 4},
      // --code-width: K set directly (not a divisor of C); bf16 K = 2 is 4 bytes per row, exactly 128x of 512.
      {BottleneckKind::resbm, 32, WireDType::i8, 5, 5 * 1 + 4, /*code_channels=*/5},
      {BottleneckKind::linear, 32, WireDType::f32, 3, 3 * 4, /*code_channels=*/3},
      {BottleneckKind::resbm, 32, WireDType::bf16, 2, 2 * 2, /*code_channels=*/2},
      // ssn sends its K subspace coordinates like any code (the token ids are known on every stage: not sent).
      {BottleneckKind::ssn, 128, WireDType::f32, 1, 1 * 4},
      {BottleneckKind::ssn, 32, WireDType::i8, 4, 4 * 1 + 4},
      {BottleneckKind::ssn, 32, WireDType::bf16, 5, 5 * 2, /*code_channels=*/5},
  };
  for (const Case& c : cases) {
    BottleneckConfig b = kind(c.kind, c.ratio);
    b.code_dtype = c.dtype;
    b.code_channels = c.code_channels;
    SCOPED_TRACE(resbm::describe_bottleneck(b, C));
    ASSERT_EQ(resbm::code_width(b, C), c.K);
    auto exec = make(pipe(S, M), b, B, T);
    Tokens data(M * B, T, 3);
    const engine::pipeline::StepStats st = exec->step(data.tokens, data.targets, 1e-3f);
    const uint64_t per_message = static_cast<uint64_t>(rows * c.bytes_per_row);
    for (Direction d : {Direction::forward, Direction::backward}) {
      const int di = static_cast<int>(d);
      for (int boundary = 0; boundary < S - 1; ++boundary) {
        EXPECT_EQ(st.wire.bytes[di][boundary], M * per_message) << "boundary " << boundary;
        EXPECT_EQ(st.wire.messages[di][boundary], static_cast<uint64_t>(M));
      }
      const double uncompressed = double(S - 1) * M * rows * C * 4;
      EXPECT_DOUBLE_EQ(st.compression_ratio(d), uncompressed / (double(S - 1) * M * per_message));
    }
    // The tied wte gradient crosses once each way between the first and the last stage; ssn's head is untied.
    EXPECT_EQ(st.wire.tied_bytes, c.kind == BottleneckKind::ssn ? 0ull : 2ull * config_.padded_vocab_size * C * 4);
    // Every stage reports its compute (what tools/wan_sim reads); the first step has no previous update, but the
    // grad-norm share is timed into it.
    ASSERT_EQ(st.phases.size(), static_cast<size_t>(S));
    for (const engine::pipeline::PhaseTimes& p : st.phases) {
      EXPECT_GT(p.forward_s, 0.0);
      EXPECT_GT(p.backward_s, 0.0);
      EXPECT_GT(p.update_s, 0.0);
    }
    if (c.code_channels == 2 && c.dtype == WireDType::bf16) {
      EXPECT_DOUBLE_EQ(st.compression_ratio(Direction::forward), 128.0);  // 512 bytes per row over 4
    }
    if (c.code_channels == 0 && c.kind != BottleneckKind::none && c.kind != BottleneckKind::quant &&
        c.dtype == WireDType::f32) {
      EXPECT_DOUBLE_EQ(st.compression_ratio(Direction::forward), 128.0);  // r = 128 at fp32: 128x measured
    }
  }
}

// untie_head: the last stage's head is lm_head.weight, starting equal to wte, so the first step's loss is bitwise
// the tied run's; nothing crosses the tied wire, and after the updates (each weight now gets only its own stage's
// gradient) the two runs part.
TEST_F(LocalExecutorTest, UntiedHeadStartsEqualAndExchangesNothing) {
  const int B = 2, T = 16;
  PipelineConfig untied = pipe(2, 1);
  untied.untie_head = true;
  auto tied_exec = make(pipe(2, 1), kind(BottleneckKind::resbm), B, T);
  auto untied_exec = make(untied, kind(BottleneckKind::resbm), B, T);
  EXPECT_EQ(untied_exec->local_stage(0).tied_param(), -1);
  EXPECT_EQ(untied_exec->local_stage(1).tied_param(), -1);
  auto& last = untied_exec->local_stage(1);
  ASSERT_GE(last.params().find("lm_head.weight"), 0);
  EXPECT_LT(last.params().find("wte"), 0) << "the untied last stage holds no copy of wte";
  std::vector<engine::pipeline::StepStats> tied_steps, untied_steps;
  for (int s = 0; s < 3; ++s) {
    Tokens data(B, T, 100 + s);
    tied_steps.push_back(tied_exec->step(data.tokens, data.targets, 1e-2f));
    untied_steps.push_back(untied_exec->step(data.tokens, data.targets, 1e-2f));
    EXPECT_EQ(untied_steps.back().wire.tied_bytes, 0u) << "step " << s + 1;
    EXPECT_GT(tied_steps.back().wire.tied_bytes, 0u) << "step " << s + 1;
  }
  EXPECT_EQ(untied_steps[0].loss, tied_steps[0].loss) << "same initial weights: bitwise the same first loss";
  EXPECT_NE(untied_steps[2].loss, tied_steps[2].loss) << "different gradients on wte/the head after the updates";
  // At S = 1 the one stage holds wte and a separate head, which starts equal to it (bitwise) and then moves apart.
  PipelineConfig one = pipe(1, 1);
  one.untie_head = true;
  auto single = make(one, kind(BottleneckKind::none), B, T);
  auto& stage = single->local_stage(0);
  const int wte = stage.params().find("wte"), head = stage.params().find("lm_head.weight");
  ASSERT_GE(wte, 0);
  ASSERT_GE(head, 0);
  const engine::Tensor a = stage.params().var(wte).value, h = stage.params().var(head).value;
  EXPECT_EQ(0, std::memcmp(a.data, h.data, a.nbytes()));
  Tokens data(B, T, 100);
  EXPECT_EQ(single->step(data.tokens, data.targets, 1e-2f).loss,
            losses(pipe(1, 1), kind(BottleneckKind::none), B, T, 1)[0]);
  EXPECT_NE(0, std::memcmp(a.data, h.data, a.nbytes()));
}

TEST_F(LocalExecutorTest, EvaluateMatchesTheStepsForwardLoss) {
  auto exec = make(pipe(2, 2, Schedule::one_f_one_b), kind(BottleneckKind::resbm, 32), 2, 16);
  Tokens data(4, 16, 9);
  const float before = exec->evaluate(data.tokens, data.targets);
  const engine::pipeline::StepStats st = exec->step(data.tokens, data.targets, 1e-2f);
  EXPECT_EQ(before, st.loss);
  EXPECT_EQ(st.wire.total_bytes(Direction::forward), 2u * 2 * 16 * 4 * 4) << "evaluation must not be counted";
  EXPECT_LT(exec->evaluate(data.tokens, data.targets), before) << "a step on this batch lowers its loss";
}

// The 8-bit code: forward codes and backward code gradients are quantised (straight-through); training still
// starts where fp32 does and moves the same way.
TEST_F(LocalExecutorTest, QuantisedCodesTrainLikeFullPrecision) {
  const std::vector<float> full = losses(pipe(2, 1), kind(BottleneckKind::none), 2, 16, 3);
  const std::vector<float> quant = losses(pipe(2, 1), kind(BottleneckKind::quant), 2, 16, 3);
  for (size_t i = 0; i < full.size(); ++i) {
    // int8 per-row codes of the residual stream change the loss by ~1e-3 at this size; 2e-2 is ten times that.
    EXPECT_NEAR(full[i], quant[i], 2e-2) << "step " << i + 1;
    EXPECT_NE(full[i], quant[i]) << "the quantisation must actually be applied";
  }
}

}  // namespace
