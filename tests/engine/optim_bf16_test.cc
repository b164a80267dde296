// The bf16 parameter policy (docs/bf16_policy.md): ParamStore's fp32 master + bf16 copy, and AdamW's stochastic
// write-back of the copy: the masters follow fp32 AdamW bit for bit, the copy stays within one bf16 ulp of its
// master, and a rerun is bitwise.
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/optim/adamw.h"
#include "engine/optim/muon.h"
#include "engine/params.h"
#include "gtest/gtest.h"
#include "kernels/cuda/bf16_rounding.h"

namespace engine::optim {
namespace {

// A small store with odd sizes (padding between parameters in the flat blocks), in either policy.
struct Store {
  ParamStore params;
  explicit Store(Precision precision) : params(Device::cpu, precision) {
    params.declare("w", {7, 13}, ParamKind::matrix);
    params.declare("wte", {5, 3}, ParamKind::embedding);
    params.declare("b", {9}, ParamKind::vector);
    params.allocate();
  }
  void randomize(uint32_t seed, bool values, bool grads) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (Param& p : params.params()) {
      for (int64_t i = 0; i < p.var.value.numel(); i++) {
        if (values) p.var.value.f32()[i] = normal(rng);
        if (grads) p.var.grad.f32()[i] = normal(rng);
      }
    }
  }
};

std::vector<uint8_t> bytes(const Tensor& t) {
  const uint8_t* b = static_cast<const uint8_t*>(t.data);
  return std::vector<uint8_t>(b, b + t.nbytes());
}

TEST(ParamStoreBf16, ModelVarIsTheBf16CopyWithTheMastersGradient) {
  Store fp32(Precision::fp32), bf16(Precision::bf16);
  EXPECT_EQ(fp32.params.model_var(0).value.data, fp32.params.var(0).value.data);  // fp32: the parameter itself
  const Var& m = bf16.params.model_var(2);
  EXPECT_EQ(m.value.dtype, DType::bf16);
  EXPECT_EQ(m.value.numel(), 9);
  EXPECT_EQ(m.grad.data, bf16.params.var(2).grad.data);  // fp32 gradients under both policies
  EXPECT_EQ(m.grad.dtype, DType::f32);
  bf16.randomize(1, true, false);
  bf16.params.sync_model_copy();
  for (const Param& p : bf16.params.params()) {
    for (int64_t i = 0; i < p.var.value.numel(); i++) {
      ASSERT_EQ(p.model.value.u16()[i], kernels::bf16::round_nearest(p.var.value.f32()[i])) << p.name << i;
    }
  }
}

TEST(AdamWBf16, MastersFollowFp32AdamWAndTheCopyStaysWithinOneUlp) {
  DeviceContext dc(Device::cpu, 2);
  Store ref(Precision::fp32), s(Precision::bf16);
  ref.randomize(2, true, false);
  s.randomize(2, true, false);
  s.params.sync_model_copy();
  AdamWConfig cfg;
  cfg.weight_decay = 0.1f;
  cfg.rounding_seed = 42;
  AdamW a(ref.params, dc.ctx(), cfg), b(s.params, dc.ctx(), cfg);
  int rounded_up = 0, rounded_down = 0;
  for (int step = 0; step < 4; step++) {
    ref.randomize(10 + step, false, true);
    s.randomize(10 + step, false, true);
    a.step(1e-2f, 0.5f);
    b.step(1e-2f, 0.5f);
    // adamw_update_bf16 does adamw_update's arithmetic on the master: bitwise equal.
    ASSERT_EQ(bytes(s.params.all_values()), bytes(ref.params.all_values())) << "step " << step;
    // Stochastic rounding picks one of the two bf16 neighbours of the master (or the master itself if exact).
    for (const Param& p : s.params.params()) {
      for (int64_t i = 0; i < p.var.value.numel(); i++) {
        const float master = p.var.value.f32()[i];
        const uint16_t h = p.model.value.u16()[i];
        const uint16_t down = static_cast<uint16_t>(kernels::bf16::float_bits(master) >> 16);  // toward zero
        ASSERT_TRUE(h == down || h == static_cast<uint16_t>(down + 1)) << p.name << "[" << i << "] " << master;
        (h == down ? rounded_down : rounded_up)++;
      }
    }
  }
  // Both directions happen: the copy is rounded stochastically, not truncated nor always up.
  EXPECT_GT(rounded_up, 0);
  EXPECT_GT(rounded_down, 0);
}

TEST(AdamWBf16, RerunIsBitwiseAndTheSeedMatters) {
  DeviceContext dc(Device::cpu, 2);
  auto run = [&](uint64_t seed) {
    Store s(Precision::bf16);
    s.randomize(3, true, false);
    s.params.sync_model_copy();
    AdamWConfig cfg;
    cfg.rounding_seed = seed;
    AdamW opt(s.params, dc.ctx(), cfg);
    for (int step = 0; step < 5; step++) {
      s.randomize(20 + step, false, true);
      opt.step(3e-3f);
    }
    return bytes(s.params.all_model_values());
  };
  const std::vector<uint8_t> first = run(7);
  EXPECT_EQ(run(7), first);
  EXPECT_NE(run(8), first);  // other rounding bits: some copy differs (the masters do not)
}

TEST(AdamWBf16, SeedsDifferByStepAndParameter) {
  EXPECT_NE(bf16_rounding_seed(1, 1, 0), bf16_rounding_seed(1, 2, 0));
  EXPECT_NE(bf16_rounding_seed(1, 1, 0), bf16_rounding_seed(1, 1, 1));
  EXPECT_EQ(bf16_rounding_seed(1, 3, 2), bf16_rounding_seed(1, 3, 2));
}

TEST(MuonBf16, IsRefusedRatherThanLeavingTheCopyStale) {
  DeviceContext dc(Device::cpu, 1);
  Store s(Precision::bf16);
  EXPECT_DEATH(Muon(s.params, dc.ctx(), MuonConfig{}), "bf16 parameter policy is not supported");
}

}  // namespace
}  // namespace engine::optim
