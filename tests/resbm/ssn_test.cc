// tests/resbm/ssn_test.cc: Subspace Networks (--bottleneck ssn, resbm/ssn.h) in the stage model: the frozen basis
// is orthonormal and the same on every stage; the stream minus its frozen part stays in span(U) at every boundary
// (at step 0 and after 50 steps of AdamW and of Muon), and a write that leaves span(U) is caught; the pipelined
// model (codes between stages) equals one graph without codes, in the loss and every gradient, and the gradient
// on the wire is U^T times the full-width one; the parameter count follows the closed formula.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/memory.h"
#include "engine/ops.h"
#include "engine/optim/muon.h"
#include "engine/pipeline/pipeline.h"
#include "gtest/gtest.h"
#include "resbm/ssn.h"
#include "resbm/stage_model.h"
#include "tests/resbm/stage_test_data.h"

namespace {

using engine::Tensor;
using engine::Var;
using resbm::BottleneckConfig;
using resbm::BottleneckKind;

constexpr uint64_t kSeed = 7;
constexpr int kB = 2, kT = 8, kS = 3, kK = 4;

// small_config: three stages of one block each (first, middle, last), so that two boundaries and a middle stage
// are tested; C = 32, K = C / 8 = 4.
using resbm_test::small_config;

BottleneckConfig ssn(bool match_params = false) {
  BottleneckConfig b;
  b.kind = BottleneckKind::ssn;
  b.ratio = 8;  // K = 4
  b.ssn_match_params = match_params;
  return b;
}

engine::pipeline::PipelineConfig pipe(int stages = kS) {
  engine::pipeline::PipelineConfig p;
  p.stages = stages;
  return p;
}

using Stages = std::vector<std::unique_ptr<resbm::StageModel>>;

std::vector<float> host(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  engine::copy_to_host(v.data(), t);
  return v;
}

// Ids over the whole real vocabulary [0, 64).
struct Batch : resbm_test::TokenBatch {
  explicit Batch(uint32_t seed) : TokenBatch(kB, kT, seed, 64) {}
};

// A leaf (B,T,width) with a zeroed gradient: the code as it arrives at the next stage.
Var leaf(engine::Arena& arena, const Tensor& from) {
  Var v{arena.alloc({kB, kT, from.dim(2)}), arena.alloc({kB, kT, from.dim(2)})};
  std::memcpy(v.value.data, from.data, from.nbytes());
  std::fill(v.grad.f32(), v.grad.f32() + v.grad.numel(), 0.0f);
  return v;
}

// The residual stream of every non-last stage at its boundary (B*T*C values each), the codes passed along.
std::vector<std::vector<float>> boundary_streams(const std::vector<resbm::StageModel*>& stages, const Batch& batch) {
  engine::DeviceContext device(engine::Device::cpu, 1);
  engine::Arena leaves("codes", 1 << 16);
  std::vector<std::vector<float>> out;
  Var code;
  for (int s = 0; s + 1 < kS; ++s) {
    engine::Graph g(device.ctx(), engine::Device::cpu, stages[s]->activation_bytes(kB, kT));
    const Var input = s == 0 ? Var{} : code;
    out.push_back(host(stages[s]->stream(g, batch.tokens, input).value));
    code = leaf(leaves, stages[s]->forward(g, batch.tokens, batch.targets, input).value);
  }
  return out;
}

// ||d - d U U^T|| / ||d|| over all rows, d = x - F[tok] - F_pos, in double: how far the stream leaves span(U).
double leak(resbm::StageModel& stage, const std::vector<float>& x, const Batch& batch) {
  engine::ParamStore& fixed = stage.fixed_params();
  const std::vector<float> ut = host(fixed.var(fixed.find("ssn.basis_t")).value);  // (K,C)
  const std::vector<float> F = host(fixed.var(fixed.find("ssn.frozen_wte")).value);
  const std::vector<float> Fpos = host(fixed.var(fixed.find("ssn.frozen_wpe")).value);
  const int C = stage.config().channels;
  double outside = 0.0, total = 0.0;
  for (int row = 0; row < kB * kT; ++row) {
    const int tok = batch.tok[row], t = row % kT;
    std::vector<double> d(C);
    for (int c = 0; c < C; ++c) {
      d[c] = double(x[size_t(row) * C + c]) - F[size_t(tok) * C + c] - Fpos[size_t(t) * C + c];
    }
    std::vector<double> r = d;
    for (int k = 0; k < kK; ++k) {
      double dot = 0.0;
      for (int c = 0; c < C; ++c) dot += d[c] * ut[size_t(k) * C + c];
      for (int c = 0; c < C; ++c) r[c] -= dot * ut[size_t(k) * C + c];
    }
    for (int c = 0; c < C; ++c) outside += r[c] * r[c], total += d[c] * d[c];
  }
  return std::sqrt(outside / total);
}

// fp32 precision: x = F + y U^T is rounded to ~6e-8 of |x| per value, and |x| is a few times |d| here, so a stream
// in span(U) leaks ~1e-7 of its norm; 1e-5 leaves two orders of margin, and a real leak (below) is ~1e-2.
constexpr double kInSpan = 1e-5;

double max_leak(const std::vector<resbm::StageModel*>& stages, const Batch& batch) {
  const std::vector<std::vector<float>> x = boundary_streams(stages, batch);
  double worst = 0.0;
  for (int s = 0; s + 1 < kS; ++s) worst = std::max(worst, leak(*stages[s], x[s], batch));
  return worst;
}

class MuonAdapter : public engine::pipeline::StageOptimizer {
 public:
  MuonAdapter(engine::ParamStore& params, const kernels::KernelContext& ctx)
      : muon_(params, ctx, engine::optim::MuonConfig{}) {}
  // Matrices at Muon's usual 0.02 when the schedule gives AdamW 3e-3 (as the trainer scales --muon-lr).
  void step(float lr, float grad_scale) override { muon_.step(lr * (0.02f / 3e-3f), lr, grad_scale); }

 private:
  engine::optim::Muon muon_;
};

TEST(Ssn, BasisIsOrthonormalAndTheSameOnEveryStage) {
  const resbm::GPT2Config config = small_config();
  Stages stages = resbm::make_stage_models(config, ssn(), pipe(), kSeed);
  engine::ParamStore& fixed = stages[0]->fixed_params();
  const std::vector<float> ut = host(fixed.var(fixed.find("ssn.basis_t")).value);  // (K,C)
  const std::vector<float> u = host(fixed.var(fixed.find("ssn.basis")).value);     // (C,K)
  const int C = config.channels;
  for (int i = 0; i < kK; ++i) {
    for (int j = 0; j < kK; ++j) {
      double dot = 0.0;  // (U^T U)_ij
      for (int c = 0; c < C; ++c) dot += double(ut[size_t(i) * C + c]) * ut[size_t(j) * C + c];
      // Rounding the double Gram-Schmidt rows to fp32 moves each entry by ~6e-8 relative: dots stay within 1e-6.
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-6) << i << "," << j;
    }
  }
  for (int c = 0; c < C; ++c) {
    for (int k = 0; k < kK; ++k) ASSERT_EQ(u[size_t(c) * kK + k], ut[size_t(k) * C + c]) << "U is U^T transposed";
  }
  // Every stage, and a stage built alone (as another rank builds it), holds the same frozen bits.
  const uint64_t h = stages[0]->frozen_hash();
  EXPECT_NE(h, 0u);
  for (auto& s : stages) EXPECT_EQ(s->frozen_hash(), h);
  EXPECT_EQ(resbm::make_stage_model(config, ssn(), pipe(), 2, kSeed)->frozen_hash(), h);
  EXPECT_NE(resbm::make_stage_model(config, ssn(), pipe(), 2, kSeed + 1)->frozen_hash(), h) << "seeded";
}

TEST(Ssn, StreamStaysInTheSubspaceAtEveryBoundaryWhileTraining) {
  const resbm::GPT2Config config = small_config();
  engine::DeviceContext device(engine::Device::cpu, 1);
  const engine::pipeline::OptimizerFactory muon = [&device](engine::ParamStore& p) {
    return std::unique_ptr<engine::pipeline::StageOptimizer>(new MuonAdapter(p, device.ctx()));
  };
  const Batch probe(1);
  for (const bool use_muon : {false, true}) {
    SCOPED_TRACE(use_muon ? "muon" : "adamw");
    Stages stages = resbm::make_stage_models(config, ssn(), pipe(), kSeed);
    std::vector<resbm::StageModel*> raw;
    std::vector<std::unique_ptr<engine::pipeline::StageModule>> modules;
    for (auto& s : stages) raw.push_back(s.get()), modules.push_back(std::move(s));
    EXPECT_LT(max_leak(raw, probe), kInSpan) << "step 0";
    auto exec = engine::pipeline::make_local_executor(
        pipe(), std::move(modules), use_muon ? muon : engine::pipeline::default_adamw(device.ctx()), device.ctx(),
        kB, kT);
    const Tensor before = raw[0]->params().all_values();
    const std::vector<float> start = host(before);
    float first_loss = 0.0f, last_loss = 0.0f;
    for (uint32_t step = 0; step < 50; ++step) {
      const Batch batch(100 + step % 4);
      const float loss = exec->step(batch.tokens, batch.targets, 3e-3f).loss;
      if (step == 0) first_loss = loss;
      last_loss = loss;
    }
    EXPECT_LT(last_loss, first_loss - 0.5f) << "the weights moved: the check below is not of an idle model";
    EXPECT_NE(host(raw[0]->params().all_values()), start);
    EXPECT_LT(max_leak(raw, probe), kInSpan) << "after 50 steps";  // the executor owns the stages: borrowed
  }
}

TEST(Ssn, AWriteThatLeavesTheSubspaceIsCaught) {
  // The negative control: the blocks of stage 0 write through a basis that is no longer U (each entry moved by
  // N(0, 1e-2)), as a full-rank change to an output projection would. The check above must see it.
  const resbm::GPT2Config config = small_config();
  Stages stages = resbm::make_stage_models(config, ssn(), pipe(), kSeed);
  const Batch probe(1);
  const std::vector<resbm::StageModel*> raw = {stages[0].get(), stages[1].get(), stages[2].get()};
  ASSERT_LT(max_leak(raw, probe), kInSpan);
  engine::ParamStore& fixed = stages[0]->fixed_params();
  const Tensor& u = fixed.var(fixed.find("ssn.basis")).value;  // (C,K): the write map of the blocks and embedding
  std::vector<float> moved = host(u);
  std::mt19937 rng(3);
  std::normal_distribution<float> noise(0.0f, 1e-2f);
  for (float& v : moved) v += noise(rng);
  engine::copy_from_host(u, moved.data());
  EXPECT_GT(max_leak(raw, probe), 100 * kInSpan);
}

// Names -> indices of a block's tensors in a stage's store (ssn's K-wide projections or GPT-2's).
resbm::BlockParams block_by_name(engine::ParamStore& s, int layer, bool constrained) {
  const std::string p = resbm::block_prefix(layer), proj = constrained ? "c_proj_ssn" : "c_proj";
  resbm::BlockParams b;
  b.ln1_w = s.find(p + "ln_1.weight"), b.ln1_b = s.find(p + "ln_1.bias");
  b.qkv_w = s.find(p + "attn.c_attn.weight"), b.qkv_b = s.find(p + "attn.c_attn.bias");
  b.attn_proj_w = s.find(p + "attn." + proj + ".weight"), b.attn_proj_b = s.find(p + "attn." + proj + ".bias");
  b.ln2_w = s.find(p + "ln_2.weight"), b.ln2_b = s.find(p + "ln_2.bias");
  b.fc_w = s.find(p + "mlp.c_fc.weight"), b.fc_b = s.find(p + "mlp.c_fc.bias");
  b.fc_proj_w = s.find(p + "mlp." + proj + ".weight"), b.fc_proj_b = s.find(p + "mlp." + proj + ".bias");
  for (int i : {b.ln1_w, b.qkv_w, b.attn_proj_w, b.attn_proj_b, b.fc_w, b.fc_proj_w, b.fc_proj_b}) EXPECT_GE(i, 0);
  return b;
}

resbm::SsnFrozen frozen_by_name(engine::ParamStore& fixed) {
  resbm::SsnFrozen f;
  f.basis = fixed.find("ssn.basis"), f.basis_t = fixed.find("ssn.basis_t");
  f.token_table = fixed.find("ssn.frozen_wte"), f.position_table = fixed.find("ssn.frozen_wpe");
  return f;
}

float max_abs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

TEST(Ssn, PipelinedEqualsOneGraphWithoutCodesAndTheWireCarriesTheProjectedGradient) {
  const resbm::GPT2Config config = small_config();
  const int C = config.channels;
  engine::DeviceContext device(engine::Device::cpu, 1);
  const Batch batch(5);
  Stages piped = resbm::make_stage_models(config, ssn(), pipe(), kSeed);
  Stages whole = resbm::make_stage_models(config, ssn(), pipe(), kSeed);
  // Both start from trained-looking weights: the K-wide embeddings start at zero, which would hide their path.
  for (Stages* set : {&piped, &whole}) {
    engine::ParamStore& s0 = (*set)[0]->params();
    for (const char* name : {"ssn.wte", "ssn.wpe"}) resbm::init_normal(s0, s0.find(name), 0.02f, kSeed + 1);
  }

  // Pipelined: each stage in its own graph, the code copied across (an fp32 wire), gradients sent back.
  engine::Arena leaves("codes", 1 << 16);
  engine::Graph g0(device.ctx(), engine::Device::cpu, piped[0]->activation_bytes(kB, kT));
  engine::Graph g1(device.ctx(), engine::Device::cpu, piped[1]->activation_bytes(kB, kT));
  engine::Graph g2(device.ctx(), engine::Device::cpu, piped[2]->activation_bytes(kB, kT));
  const Var z0 = piped[0]->forward(g0, batch.tokens, batch.targets, Var{});  // (B,T,K)
  const Var in1 = leaf(leaves, z0.value);
  const Var z1 = piped[1]->forward(g1, batch.tokens, batch.targets, in1);
  const Var in2 = leaf(leaves, z1.value);
  const Var piped_loss = piped[2]->forward(g2, batch.tokens, batch.targets, in2);
  g2.backward(piped_loss);
  g1.backward_from(z1, in2.grad);
  g0.backward_from(z0, in1.grad);

  // One graph, no codes: stage 0's stream flows straight into stage 1's block and on to the head.
  engine::Graph g(device.ctx(), engine::Device::cpu,
                  whole[0]->activation_bytes(kB, kT) + whole[1]->activation_bytes(kB, kT) +
                      whole[2]->activation_bytes(kB, kT));
  const Var x0 = whole[0]->stream(g, batch.tokens, Var{});  // (B,T,C)
  engine::ParamStore& s1 = whole[1]->params();
  const Var x1 = resbm::ssn_block_forward(g, s1, whole[1]->fixed_params(), block_by_name(s1, 1, true),
                                          frozen_by_name(whole[1]->fixed_params()), x0, config);
  engine::ParamStore& s2 = whole[2]->params();
  const Var x2 = resbm::block_forward(g, s2, block_by_name(s2, 2, false), x1, config);
  const resbm::FinalNormParams norm{s2.find("ln_f.weight"), s2.find("ln_f.bias")};
  const Var whole_loss = resbm::head_loss(g, s2, norm, s2.find("lm_head.weight"), x2, batch.targets, config);
  g.backward(whole_loss);

  // Losses: the round trip x -> z -> x' rounds each value by ~1e-7 relative; the loss moves by less than 1e-6.
  EXPECT_NEAR(piped_loss.value.f32()[0], whole_loss.value.f32()[0], 1e-6f);
  // Every parameter's gradient, on every stage: the backward paths differ by the same roundings, amplified at most
  // a few times through three blocks; 1e-4 of the tensor's largest gradient bounds it (a wrong path, e.g. a
  // gradient that skipped U, is off by O(1)).
  for (int s = 0; s < kS; ++s) {
    engine::ParamStore& a = piped[s]->params();
    engine::ParamStore& b = whole[s]->params();
    ASSERT_EQ(a.params().size(), b.params().size());
    for (size_t i = 0; i < a.params().size(); ++i) {
      SCOPED_TRACE("stage " + std::to_string(s) + " " + a.param(int(i)).name);
      const std::vector<float> ga = host(a.params()[i].var.grad), gb = host(b.params()[i].var.grad);
      const float bound = 1e-4f * max_abs(gb) + 1e-10f;
      ASSERT_GT(max_abs(gb), 0.0f) << "every parameter gets a gradient";
      for (size_t j = 0; j < ga.size(); ++j) ASSERT_NEAR(ga[j], gb[j], bound) << j;
    }
  }
  // The wire: dL/dz at each boundary = (dL/dx, full width) U. And the full-width gradient really has a part
  // outside span(U), which the wire drops (otherwise the check says nothing).
  engine::ParamStore& fixed = whole[0]->fixed_params();
  const std::vector<float> u = host(fixed.var(fixed.find("ssn.basis")).value);  // (C,K)
  const std::pair<const Var*, const Var*> boundaries[] = {{&x0, &in1}, {&x1, &in2}};
  for (const auto& [full, wire] : boundaries) {
    const std::vector<float> gx = host(full->grad), gz = host(wire->grad);
    const float bound = 1e-4f * max_abs(gz);
    double outside = 0.0, total = 0.0;
    for (int row = 0; row < kB * kT; ++row) {
      for (int k = 0; k < kK; ++k) {
        double dot = 0.0;  // (g U)_k
        for (int c = 0; c < C; ++c) dot += double(gx[size_t(row) * C + c]) * u[size_t(c) * kK + k];
        ASSERT_NEAR(gz[size_t(row) * kK + k], dot, bound) << "row " << row << " k " << k;
      }
      for (int c = 0; c < C; ++c) {
        double proj = 0.0;
        for (int k = 0; k < kK; ++k) {
          double dot = 0.0;
          for (int j = 0; j < C; ++j) dot += double(gx[size_t(row) * C + j]) * u[size_t(j) * kK + k];
          proj += dot * u[size_t(c) * kK + k];
        }
        const double r = gx[size_t(row) * C + c] - proj;
        outside += r * r, total += double(gx[size_t(row) * C + c]) * gx[size_t(row) * C + c];
      }
    }
    EXPECT_GT(outside / total, 0.5) << "K = 4 of C = 32: most of a full-width gradient lies outside span(U)";
  }
}

TEST(Ssn, ParameterCountFollowsTheClosedFormula) {
  const resbm::GPT2Config config = small_config();
  auto total = [&](const BottleneckConfig& b) {
    int64_t n = 0;
    for (auto& s : resbm::make_stage_models(config, b, pipe(), kSeed)) n += s->params().num_parameters();
    return n;
  };
  // By hand, C = 32, K = 4, Vp = 128, maxT = 16, two constrained blocks (stages 0, 1) and one dense (stage 2):
  //   embeddings (128 + 16) * 4 = 576
  //   constrained block: ln 4*32 = 128; qkv 3*32*32 + 96 = 3168; attn proj 4*32 + 4 = 132; fc 128*32 + 128 = 4224;
  //                      mlp proj 4*128 + 4 = 516: 8168, twice = 16336
  //   dense block: 12*32*32 + 13*32 = 12704;  ln_f 64;  untied head 128*32 = 4096
  //   total 576 + 16336 + 12704 + 64 + 4096 = 33776
  EXPECT_EQ(total(ssn()), 33776);
  EXPECT_EQ(resbm::ssn_num_parameters(config, kK, 4 * config.channels, 2), 33776);
  // `none` with an untied head, counted from its stores, is what the formula says, and --ssn-match-params comes
  // within one hidden unit per constrained block of it (never above).
  BottleneckConfig none;
  none.kind = BottleneckKind::none;
  engine::pipeline::PipelineConfig untied = pipe();
  untied.untie_head = true;
  int64_t none_total = 0;
  for (auto& s : resbm::make_stage_models(config, none, untied, kSeed)) none_total += s->params().num_parameters();
  EXPECT_EQ(resbm::untied_gpt2_num_parameters(config), none_total);
  const int64_t matched = total(ssn(/*match_params=*/true));
  EXPECT_LE(matched, none_total);
  EXPECT_GT(matched, none_total - 2 * (config.channels + 1 + kK));
  const int H = resbm::ssn_mlp_hidden(config, kK, 2, true);
  EXPECT_GT(H, 4 * config.channels);
  EXPECT_EQ(matched, resbm::ssn_num_parameters(config, kK, H, 2));
}

TEST(Ssn, RefusesWhatItCannotDo) {
  const resbm::GPT2Config config = small_config();
  EXPECT_THROW(resbm::make_stage_models(config, ssn(), pipe(1), kSeed), std::invalid_argument) << "no boundary";
  BottleneckConfig b = ssn();
  b.reinject = resbm::Reinjection::copy;
  EXPECT_THROW(resbm::validate_bottleneck(b, 32), std::invalid_argument);
  b = ssn();
  b.identity = resbm::IdentityPath::orthogonal;
  EXPECT_THROW(resbm::validate_bottleneck(b, 32), std::invalid_argument);
  b.kind = BottleneckKind::resbm;
  b.identity = resbm::IdentityPath::slice;
  b.ssn_match_params = true;
  EXPECT_THROW(resbm::validate_bottleneck(b, 32), std::invalid_argument) << "--ssn-match-params without ssn";
  EXPECT_EQ(resbm::parse_bottleneck_kind("ssn"), BottleneckKind::ssn);
  EXPECT_EQ(resbm::describe_bottleneck(ssn(true), 32), "ssn r=8 K=4 match-params code=fp32");
}

}  // namespace
