// tests/pipeline/replicas_test.cc: R local replicas of a pipeline (engine/pipeline/replicas.h). Synchronous data
// parallelism equals one pipeline at R times the batch (up to summation order) and keeps the replicas bitwise
// identical; DiLoCo with H = 1, outer lr 1 and no momentum is parameter averaging after every step; with H = 3 the
// replicas part between syncs and meet at each. The inner optimizer here is plain SGD, so that a rounding-level
// difference in a gradient stays rounding-level in the parameters (Adam's normalisation turns a gradient that
// should be 0 but rounds to 1e-12 into a full-size step).
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/replicas.h"
#include "gtest/gtest.h"
#include "resbm/stage_model.h"
#include "tests/resbm/stage_test_data.h"

namespace {

using engine::Tensor;
using engine::pipeline::DpSync;
using engine::pipeline::PipelineConfig;
using engine::pipeline::ReplicaConfig;
using engine::pipeline::StageModule;

constexpr uint64_t kSeed = 21;
constexpr int kS = 2, kM = 2, kB = 2, kT = 8, kR = 2;

using resbm_test::small_config;  // L = 3: stage 0 holds two blocks, stage 1 one

resbm::BottleneckConfig bottleneck() {
  resbm::BottleneckConfig b;
  b.kind = resbm::BottleneckKind::resbm;
  b.ratio = 8;
  return b;
}

PipelineConfig pipe() {
  PipelineConfig p;
  p.stages = kS;
  p.micro_batches = kM;
  return p;
}

// value -= lr * grad_scale * grad, every element (host loop: CPU stores).
class Sgd : public engine::pipeline::StageOptimizer {
 public:
  explicit Sgd(engine::ParamStore& params) : params_(params) {}
  void step(float lr, float grad_scale) override {
    const Tensor v = params_.all_values(), g = params_.all_grads();
    for (int64_t i = 0; i < v.numel(); ++i) v.f32()[i] -= lr * grad_scale * g.f32()[i];
  }

 private:
  engine::ParamStore& params_;
};

engine::pipeline::OptimizerFactory sgd() {
  return [](engine::ParamStore& p) { return std::unique_ptr<engine::pipeline::StageOptimizer>(new Sgd(p)); };
}

// A batch of `rows` sequences with a learnable target, seeded.
struct Batch : resbm_test::TokenBatch {
  Batch(int rows, uint32_t seed) : TokenBatch(rows, kT, seed, 64) {}
  static Tensor view(std::vector<int32_t>& v, int rows) { return TokenBatch::view(v, rows, kT); }
};

std::vector<std::unique_ptr<StageModule>> pipeline_stages(const PipelineConfig& p) {
  std::vector<std::unique_ptr<StageModule>> stages;
  for (auto& m : resbm::make_stage_models(small_config(), bottleneck(), p, kSeed)) stages.push_back(std::move(m));
  return stages;
}

// R pipelines, and the raw stage pointers [r][s] for inspection (the executor owns the stages).
struct Replicated {
  std::vector<std::vector<StageModule*>> raw;
  std::unique_ptr<engine::pipeline::Executor> exec;
  Replicated(const ReplicaConfig& rc, const engine::DeviceContext& device) {
    std::vector<std::vector<std::unique_ptr<StageModule>>> all;
    for (int r = 0; r < rc.replicas; ++r) {
      all.push_back(pipeline_stages(pipe()));
      raw.emplace_back();
      for (auto& s : all.back()) raw.back().push_back(s.get());
    }
    exec = engine::pipeline::make_replicated_local_executor(pipe(), rc, std::move(all), sgd(), device.ctx(), kB, kT);
  }
};

std::vector<float> values(StageModule& s) {
  const Tensor v = s.params().all_values();
  return std::vector<float>(v.f32(), v.f32() + v.numel());
}

TEST(Replicas, SyncDataParallelEqualsOnePipelineAtRTimesTheBatch) {
  engine::DeviceContext device(engine::Device::cpu, 1);
  ReplicaConfig rc;
  rc.replicas = kR;
  rc.sync = DpSync::step;
  Replicated dp(rc, device);
  // One pipeline over the same R*M*B rows per step, at batch R*B per micro-batch.
  std::vector<StageModule*> one_raw;
  auto stages = pipeline_stages(pipe());
  for (auto& s : stages) one_raw.push_back(s.get());
  auto one = engine::pipeline::make_local_executor(pipe(), std::move(stages), sgd(), device.ctx(), kR * kB, kT);
  for (uint32_t step = 0; step < 3; ++step) {
    Batch batch(kR * kM * kB, 50 + step);
    const float a = dp.exec->step(batch.tokens, batch.targets, 0.1f).loss;
    const float b = one->step(batch.tokens, batch.targets, 0.1f).loss;
    // The same mean over the same 64 positions, summed in another order: a few ulps of a loss near 4.2.
    EXPECT_NEAR(a, b, 2e-6f) << "step " << step;
  }
  for (int s = 0; s < kS; ++s) {
    const std::vector<float> ref = values(*one_raw[s]);
    for (int r = 0; r < kR; ++r) {
      const std::vector<float> got = values(*dp.raw[r][s]);
      // Gradients equal up to summation order (~1e-7 relative); three SGD steps of lr 0.1 keep the difference
      // far below 1e-6 on parameters of order 0.02-1.
      for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-6f) << "stage " << s << " element " << i;
    }
    EXPECT_EQ(values(*dp.raw[0][s]), values(*dp.raw[1][s])) << "the replicas stay bitwise identical";
  }
}

TEST(Replicas, DilocoOneInnerStepLrOneNoMomentumIsParameterAveraging) {
  engine::DeviceContext device(engine::Device::cpu, 1);
  ReplicaConfig rc;
  rc.replicas = kR;
  rc.sync = DpSync::diloco;
  rc.inner_steps = 1;
  rc.outer.outer_lr = 1.0f;
  rc.outer.outer_momentum = 0.0f;
  Replicated dp(rc, device);
  // The reference: R separate pipelines on their own rows, their parameters averaged by hand after every step.
  std::vector<std::unique_ptr<engine::pipeline::Executor>> refs;
  std::vector<std::vector<StageModule*>> ref_raw(kR);
  for (int r = 0; r < kR; ++r) {
    auto stages = pipeline_stages(pipe());
    for (auto& s : stages) ref_raw[r].push_back(s.get());
    refs.push_back(engine::pipeline::make_local_executor(pipe(), std::move(stages), sgd(), device.ctx(), kB, kT));
  }
  const int rows = kM * kB;
  for (uint32_t step = 0; step < 3; ++step) {
    Batch batch(kR * rows, 70 + step);
    dp.exec->step(batch.tokens, batch.targets, 0.1f);
    for (int r = 0; r < kR; ++r) {
      std::vector<int32_t> tok(batch.tok.begin() + r * rows * kT, batch.tok.begin() + (r + 1) * rows * kT);
      std::vector<int32_t> tgt(batch.tgt.begin() + r * rows * kT, batch.tgt.begin() + (r + 1) * rows * kT);
      refs[r]->step(Batch::view(tok, rows), Batch::view(tgt, rows), 0.1f);
    }
    for (int s = 0; s < kS; ++s) {
      std::vector<Tensor> v;
      for (int r = 0; r < kR; ++r) v.push_back(ref_raw[r][s]->params().all_values());
      for (int64_t i = 0; i < v[0].numel(); ++i) {
        double mean = 0.0;
        for (const Tensor& t : v) mean += t.f32()[i];
        for (const Tensor& t : v) t.f32()[i] = static_cast<float>(mean / kR);
      }
    }
    for (int s = 0; s < kS; ++s) {
      const std::vector<float> ref = values(*ref_raw[0][s]);
      for (int r = 0; r < kR; ++r) {
        const std::vector<float> got = values(*dp.raw[r][s]);
        // theta - (theta - mean) against mean: two roundings of values below 2 per step, 3 steps.
        for (size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-6f) << "step " << step << " s " << s;
      }
    }
  }
}

TEST(Replicas, DilocoReplicasPartBetweenSyncsAndMeetAtEach) {
  engine::DeviceContext device(engine::Device::cpu, 1);
  ReplicaConfig rc;
  rc.replicas = kR;
  rc.sync = DpSync::diloco;
  rc.inner_steps = 3;
  Replicated dp(rc, device);
  for (uint32_t step = 1; step <= 6; ++step) {
    Batch batch(kR * kM * kB, 90 + step);
    dp.exec->step(batch.tokens, batch.targets, 0.1f);
    const bool synced = step % 3 == 0;
    for (int s = 0; s < kS; ++s) {
      EXPECT_EQ(values(*dp.raw[0][s]) == values(*dp.raw[1][s]), synced)
          << "step " << step << ": replicas on different rows differ until the sync, and equal after it";
    }
  }
  EXPECT_EQ(engine::pipeline::parse_dp_sync("diloco"), DpSync::diloco);
  EXPECT_THROW(engine::pipeline::parse_dp_sync("async"), std::invalid_argument);
}

// What a sync costs, computed here from the definitions in replicas.h: int8 sends one byte per value plus a 4-byte
// scale per block of 256 (a partial last block has its own scale); the link carries (R - 1) payloads.
TEST(Replicas, PayloadBytesAndLinkTime) {
  ReplicaConfig rc;
  rc.replicas = 2;
  EXPECT_EQ(engine::pipeline::dp_payload_bytes(rc, 1000), 4000u);
  rc.dp_code = engine::comm::WireDType::bf16;
  EXPECT_EQ(engine::pipeline::dp_payload_bytes(rc, 1000), 2000u);
  rc.dp_code = engine::comm::WireDType::i8;
  EXPECT_EQ(engine::pipeline::dp_payload_bytes(rc, 1000), 1000u + 4u * 4u);  // blocks 256, 256, 256, 232
  EXPECT_EQ(engine::pipeline::dp_payload_bytes(rc, 512), 512u + 2u * 4u);
  EXPECT_EQ(engine::pipeline::dp_sync_seconds(rc, 1000000), 0.0);  // no link
  rc.dp_link_mbps = 100.0;
  rc.dp_link_latency_ms = 5.0;
  EXPECT_NEAR(engine::pipeline::dp_sync_seconds(rc, 1000000), 8e6 / 100e6 + 0.005, 1e-12);
  rc.replicas = 3;
  EXPECT_NEAR(engine::pipeline::dp_sync_seconds(rc, 1000000), 2 * 8e6 / 100e6 + 0.005, 1e-12);
}

// DiLoCo with H = 1, outer lr 1, momentum 0 and an int8 payload: parameter averaging of the replicas' quantised
// changes. Against the fp32 payload from the same start on the same rows, after one sync every parameter is within
// one int8 step of the largest replica change (a block's absmax / 127 bounds each replica's rounding error, hence
// their mean's), and many differ: the payload really was rounded.
TEST(Replicas, DilocoInt8PayloadIsAveragingOfRoundedChanges) {
  engine::DeviceContext device(engine::Device::cpu, 1);
  ReplicaConfig rc;
  rc.replicas = kR;
  rc.sync = DpSync::diloco;
  rc.inner_steps = 2;
  rc.outer.outer_lr = 1.0f;
  rc.outer.outer_momentum = 0.0f;
  Replicated apart(rc, device);  // H = 2: after one step each replica still holds its own parameters
  rc.inner_steps = 1;
  Replicated exact(rc, device);
  rc.dp_code = engine::comm::WireDType::i8;
  rc.dp_code_seed = 5;
  Replicated rounded(rc, device);
  std::vector<std::vector<float>> start;
  for (int s = 0; s < kS; ++s) start.push_back(values(*exact.raw[0][s]));
  Batch batch(kR * kM * kB, 44);
  apart.exec->step(batch.tokens, batch.targets, 0.1f);
  const auto a = exact.exec->step(batch.tokens, batch.targets, 0.1f);
  const auto b = rounded.exec->step(batch.tokens, batch.targets, 0.1f);
  EXPECT_EQ(a.loss, b.loss);  // the same forward pass: the sync comes after it
  EXPECT_LT(b.dp_bytes, a.dp_bytes / 3);  // 1 byte + 4/256 per value against 4
  ASSERT_EQ(b.dp_stage_bytes.size(), static_cast<size_t>(kS));  // one replica's payload per stage
  uint64_t per_replica = 0;
  for (uint64_t bytes : b.dp_stage_bytes) per_replica += bytes;
  EXPECT_EQ(per_replica * kR, b.dp_bytes);
  for (int s = 0; s < kS; ++s) {
    double largest_change = 0.0;
    for (int r = 0; r < kR; ++r) {
      const std::vector<float> own = values(*apart.raw[r][s]);
      for (size_t i = 0; i < own.size(); ++i) {
        largest_change = std::max(largest_change, std::fabs(double(own[i]) - start[s][i]));
      }
    }
    ASSERT_GT(largest_change, 0.0);
    const double bound = largest_change / 127.0 + 1e-6;  // + float rounding of theta - delta near |theta| <= 2
    const std::vector<float> x = values(*exact.raw[0][s]), y = values(*rounded.raw[0][s]);
    size_t differ = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      ASSERT_LE(std::fabs(double(x[i]) - y[i]), bound) << "stage " << s << " element " << i;
      differ += x[i] != y[i];
    }
    EXPECT_GT(differ, x.size() / 10) << "stage " << s << ": the int8 payload changed almost nothing";
    EXPECT_EQ(values(*rounded.raw[1][s]), y) << "every replica continues from the same synced parameters";
  }
}

// The emulated data-parallel link holds a sync for its payload's time: a step with a sync takes at least that long.
TEST(Replicas, DpLinkDelaysASync) {
  engine::DeviceContext device(engine::Device::cpu, 1);
  ReplicaConfig rc;
  rc.replicas = kR;
  rc.sync = DpSync::step;
  rc.dp_link_mbps = 10.0;  // a few hundred KB of fp32 gradients: tens of ms at 10 Mbit/s
  rc.dp_link_latency_ms = 50.0;
  Replicated dp(rc, device);
  Batch batch(kR * kM * kB, 3);
  const auto stats = dp.exec->step(batch.tokens, batch.targets, 0.1f);
  size_t largest = 0;
  for (int s = 0; s < kS; ++s) largest = std::max(largest, dp.raw[0][s]->params().num_parameters() * sizeof(float));
  const double expected = (kR - 1) * 8.0 * largest / 10e6 + 0.050;
  EXPECT_GE(stats.seconds, expected);
}

}  // namespace
