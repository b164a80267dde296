// Tests of the ResBM bottleneck and its baselines: finite-difference gradients of every kind, resbm == linear at
// initialisation, x' = x P P^T at initialisation, the orthonormal basis, widths and validation.
#include "resbm/bottleneck.h"

#include "engine/ops.h"
#include "resbm/bottleneck_fused.h"

#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/memory.h"
#include "gtest/gtest.h"

namespace resbm {
namespace {

using engine::Graph;
using engine::ParamStore;
using engine::Tensor;
using engine::Var;

constexpr int kB = 2, kT = 3, kC = 16;  // small: finite differences stay accurate in fp32

// Encoder and decoder of one boundary in one store, as a test needs them (in a pipeline they sit on two stages).
struct Boundary {
  ParamStore trained{engine::Device::cpu}, fixed{engine::Device::cpu};
  BottleneckEncoder enc;
  BottleneckDecoder dec;
  Boundary(const BottleneckConfig& config, uint64_t seed) {
    enc = BottleneckEncoder(trained, fixed, config, 0, kC);
    dec = BottleneckDecoder(trained, fixed, config, 0, kC);
    if (!trained.params().empty()) trained.allocate();
    if (!fixed.params().empty()) fixed.allocate();
    enc.init(trained, fixed, seed);
    dec.init(trained, fixed, seed);
  }
  Var code(Graph& g, const Var& x) { return enc.forward(g, trained, fixed, x); }
  Var forward(Graph& g, const Var& x) { return dec.forward(g, trained, fixed, code(g, x)); }
};

class BottleneckTest : public ::testing::Test {
 protected:
  BottleneckTest() : device_(engine::Device::cpu, 1), leaves_("test leaves", 1 << 20) {}
  Var leaf(std::initializer_list<int64_t> shape, std::mt19937& rng, float scale) {
    Var v{leaves_.alloc(shape), leaves_.alloc(shape)};
    std::normal_distribution<float> normal(0.0f, scale);
    for (int64_t i = 0; i < v.value.numel(); ++i) v.value.f32()[i] = normal(rng);
    return v;
  }
  const kernels::KernelContext& ctx() const { return device_.ctx(); }
  engine::DeviceContext device_;
  engine::Arena leaves_;
};

double objective(const Var& out, const std::vector<float>& w) {
  double acc = 0.0;
  for (int64_t i = 0; i < out.value.numel(); ++i) acc += static_cast<double>(out.value.f32()[i]) * w[i];
  return acc;
}

// Central differences of sum(out * W) (W fixed random) against the tape's gradients, for every input (x first,
// then parameters named in `names`), up to `per_input` elements each. Returns the number of elements checked.
int fd_check(const kernels::KernelContext& ctx, const std::vector<Var>& inputs, const std::vector<std::string>& names,
             const std::function<Var(Graph&)>& build, float eps, double tol, int per_input, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 0.5f);
  Graph g(ctx, engine::Device::cpu, 8 << 20);
  for (const Var& v : inputs) std::memset(v.grad.data, 0, v.grad.nbytes());
  Var out = build(g);
  std::vector<float> w(out.value.numel());
  for (float& v : w) v = normal(rng);
  Tensor wt;
  wt.data = w.data();
  wt.ndim = 1;
  wt.shape[0] = out.value.numel();
  g.backward_from(out, wt);
  int checked = 0;
  for (size_t k = 0; k < inputs.size(); ++k) {
    std::vector<float> analytic(inputs[k].grad.f32(), inputs[k].grad.f32() + inputs[k].grad.numel());
    const int64_t n = inputs[k].value.numel();
    const int64_t stride = n <= per_input ? 1 : n / per_input;
    for (int64_t i = 0; i < n; i += stride) {
      float* v = inputs[k].value.f32() + i;
      const float orig = *v;
      *v = orig + eps;
      g.reset();
      const double plus = objective(build(g), w);
      *v = orig - eps;
      g.reset();
      const double minus = objective(build(g), w);
      *v = orig;
      const double numeric = (plus - minus) / (2.0 * eps);
      EXPECT_LE(std::fabs(analytic[i] - numeric) / std::fmax(1.0, std::fabs(numeric)), tol)
          << "input " << names[k] << " element " << i << " analytic " << analytic[i] << " numeric " << numeric;
      ++checked;
    }
  }
  return checked;
}

// Inputs of a check: x, then every parameter of the store (randomised first, so that zero-initialised branches
// carry gradient everywhere).
void add_randomised_params(ParamStore& store, std::mt19937& rng, float scale, std::vector<Var>* inputs,
                           std::vector<std::string>* names) {
  std::normal_distribution<float> normal(0.0f, scale);
  for (auto& p : store.params()) {
    for (int64_t i = 0; i < p.var.value.numel(); ++i) p.var.value.f32()[i] += normal(rng);
    inputs->push_back(p.var);
    names->push_back(p.name);
  }
}

void check_gradients(const BottleneckConfig& config, const kernels::KernelContext& ctx, Var x) {
  Boundary b(config, 42);
  std::mt19937 rng(5);
  std::vector<Var> inputs = {x};
  std::vector<std::string> names = {"x"};
  add_randomised_params(b.trained, rng, 0.5f, &inputs, &names);
  // eps 1e-2 on O(1) values: truncation error O(eps^2) ~ 1e-4, fp32 rounding of a 96-term sum / (2 eps) ~ 1e-4;
  // 2e-3 relative to max(1, |numeric|) leaves an order of magnitude of margin.
  const int checked =
      fd_check(ctx, inputs, names, [&](Graph& g) { return b.forward(g, x); }, 1e-2f, 2e-3, 24, rng);
  EXPECT_GT(checked, 0);
}

BottleneckConfig make(BottleneckKind kind, IdentityPath identity = IdentityPath::slice) {
  BottleneckConfig c;
  c.kind = kind;
  c.ratio = 4;  // K = 4
  c.identity = identity;
  c.hidden = 8;
  return c;
}

TEST_F(BottleneckTest, GradientsOfEveryKind) {
  const std::vector<BottleneckConfig> configs = {
      make(BottleneckKind::none),
      make(BottleneckKind::quant),
      make(BottleneckKind::linear),
      make(BottleneckKind::linear, IdentityPath::orthogonal),
      make(BottleneckKind::ae),
      make(BottleneckKind::resbm, IdentityPath::slice),
      make(BottleneckKind::resbm, IdentityPath::orthogonal),
      make(BottleneckKind::resbm, IdentityPath::learned),
  };
  std::mt19937 rng(3);
  for (const BottleneckConfig& c : configs) {
    SCOPED_TRACE(describe_bottleneck(c, kC));
    check_gradients(c, ctx(), leaf({kB, kT, kC}, rng, 1.0f));
  }
}

TEST_F(BottleneckTest, ResbmEqualsLinearAtInitialisation) {
  std::mt19937 rng(11);
  Var x = leaf({kB, kT, kC}, rng, 1.0f);
  for (IdentityPath id : {IdentityPath::slice, IdentityPath::orthogonal, IdentityPath::learned}) {
    SCOPED_TRACE(identity_path_name(id));
    Boundary resbm(make(BottleneckKind::resbm, id), 7);
    Boundary linear(make(BottleneckKind::linear, id), 7);
    Graph g1(ctx(), engine::Device::cpu, 1 << 20), g2(ctx(), engine::Device::cpu, 1 << 20);
    const Var z1 = resbm.code(g1, x), z2 = linear.code(g2, x);
    ASSERT_EQ(z1.value.numel(), int64_t{kB} * kT * (kC / 4));
    ASSERT_EQ(z2.value.numel(), z1.value.numel());
    EXPECT_EQ(0, std::memcmp(z1.value.data, z2.value.data, z1.value.nbytes())) << "codes differ";
    const Var x1 = resbm.dec.forward(g1, resbm.trained, resbm.fixed, z1);
    const Var x2 = linear.dec.forward(g2, linear.trained, linear.fixed, z2);
    ASSERT_EQ(x1.value.numel(), x.value.numel());
    EXPECT_EQ(0, std::memcmp(x1.value.data, x2.value.data, x1.value.nbytes())) << "decoded streams differ";
  }
}

TEST_F(BottleneckTest, DecodedIsProjectionAtInitialisation) {
  std::mt19937 rng(12);
  Var x = leaf({kB, kT, kC}, rng, 1.0f);
  const int K = kC / 4, N = kB * kT;
  for (IdentityPath id : {IdentityPath::slice, IdentityPath::orthogonal}) {
    SCOPED_TRACE(identity_path_name(id));
    Boundary b(make(BottleneckKind::resbm, id), 9);
    // U (C,K), independently of the module: one-hot columns, or the basis from orthonormal_basis_rows.
    std::vector<float> ut(static_cast<size_t>(K) * kC, 0.0f);  // U^T (K,C)
    if (id == IdentityPath::slice) {
      for (int k = 0; k < K; ++k) ut[k * kC + k] = 1.0f;
    } else {
      orthonormal_basis_rows(ut.data(), K, kC, 9, 0);
    }
    Graph g(ctx(), engine::Device::cpu, 1 << 20);
    const Var out = b.forward(g, x);
    for (int n = 0; n < N; ++n) {
      const float* xr = x.value.f32() + n * kC;
      for (int c = 0; c < kC; ++c) {
        double expect = 0.0;  // (x U U^T)[n, c] in double
        for (int k = 0; k < K; ++k) {
          double xu = 0.0;
          for (int j = 0; j < kC; ++j) xu += static_cast<double>(xr[j]) * ut[k * kC + j];
          expect += xu * ut[k * kC + c];
        }
        const float got = out.value.f32()[n * kC + c];
        if (id == IdentityPath::slice) {
          EXPECT_EQ(got, static_cast<float>(expect)) << "n " << n << " c " << c;  // exact: a copy and zeros
        } else {
          EXPECT_NEAR(got, expect, 1e-5) << "n " << n << " c " << c;  // fp32 sums of 16 products of O(1)
        }
      }
    }
  }
}

// The decoder's residual branch must see every degree of freedom of the code. A LayerNorm over z (the old
// decoder) erased them: at K = 1 the branch was a constant (x - mean = 0); at K = 4 it ignored adding the same
// value to every channel and scaling z. Here the branch f_dec(z) = x' - z P^T (resbm, slice: P^T pads) or x' (ae)
// must change under each of: one channel moved, all channels moved together, z scaled.
TEST_F(BottleneckTest, DecoderBranchChangesWithEveryCodeDirection) {
  for (BottleneckKind kind : {BottleneckKind::resbm, BottleneckKind::ae}) {
    for (int K : {1, 4}) {
      BottleneckConfig c = make(kind);
      c.ratio = kC / K;
      SCOPED_TRACE(describe_bottleneck(c, kC));
      Boundary b(c, 21);
      std::mt19937 rng(31 + K);
      std::vector<Var> unused;
      std::vector<std::string> unused_names;
      add_randomised_params(b.trained, rng, 0.5f, &unused, &unused_names);  // the zero-initialised V2, c2 too
      const Var z = leaf({kB, kT, K}, rng, 1.0f);
      // branch(z) (B*T, C) in double: the decoder's output less its identity part.
      auto branch = [&](const std::vector<float>& code) {
        std::memcpy(z.value.data, code.data(), code.size() * sizeof(float));
        Graph g(ctx(), engine::Device::cpu, 1 << 20);
        const Var out = b.dec.forward(g, b.trained, b.fixed, z);
        std::vector<double> r(out.value.f32(), out.value.f32() + out.value.numel());
        if (kind == BottleneckKind::resbm) {
          for (int n = 0; n < kB * kT; ++n) {
            for (int k = 0; k < K; ++k) r[n * kC + k] -= code[n * K + k];  // z P^T with the slice P
          }
        }
        return r;
      };
      const std::vector<float> base(z.value.f32(), z.value.f32() + z.value.numel());
      const std::vector<double> at_base = branch(base);
      std::vector<std::pair<std::string, std::vector<float>>> moves;
      for (int k = 0; k < K; ++k) {
        std::vector<float> m = base;
        for (int n = 0; n < kB * kT; ++n) m[n * K + k] += 0.5f;
        moves.push_back({"channel " + std::to_string(k), m});
      }
      std::vector<float> shifted = base, scaled = base;
      for (float& v : shifted) v += 0.5f;
      for (float& v : scaled) v *= 1.5f;
      moves.push_back({"all channels shifted", shifted});
      moves.push_back({"z scaled", scaled});
      for (const auto& [what, code] : moves) {
        const std::vector<double> moved = branch(code);
        double change = 0.0;
        for (size_t i = 0; i < moved.size(); ++i) change = std::fmax(change, std::fabs(moved[i] - at_base[i]));
        // The branch's weights are O(0.5) and the move is 0.5 per channel: a live branch moves by O(0.1-1);
        // fp32 noise of a constant branch would be ~1e-7. 1e-3 separates the two by orders of magnitude.
        EXPECT_GT(change, 1e-3) << what << ": the decoder branch ignores this change of the code";
      }
    }
  }
}

TEST(OrthonormalBasis, RowsAreOrthonormalAndDeterministic) {
  const int K = 6, C = 40;
  std::vector<float> a(K * C), b(K * C), other(K * C);
  orthonormal_basis_rows(a.data(), K, C, 1, 3);
  orthonormal_basis_rows(b.data(), K, C, 1, 3);
  orthonormal_basis_rows(other.data(), K, C, 1, 4);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, other) << "each boundary gets its own basis";
  for (int i = 0; i < K; ++i) {
    for (int j = 0; j < K; ++j) {
      double dot = 0.0;
      for (int c = 0; c < C; ++c) dot += static_cast<double>(a[i * C + c]) * a[j * C + c];
      EXPECT_NEAR(dot, i == j ? 1.0 : 0.0, 1e-6) << i << "," << j;  // rounding to fp32: ~1e-7 per entry
    }
  }
}

TEST(BottleneckConfigTest, WidthsDtypesAndValidation) {
  BottleneckConfig c;
  c.kind = BottleneckKind::resbm;
  c.ratio = 128;
  EXPECT_EQ(code_width(c, 768), 6);
  EXPECT_EQ(hidden_width(c, 768), 192);
  c.kind = BottleneckKind::none;
  EXPECT_EQ(code_width(c, 768), 768);
  c.kind = BottleneckKind::quant;
  EXPECT_EQ(code_width(c, 768), 768);
  EXPECT_EQ(wire_dtype(c), engine::comm::WireDType::i8);
  c.kind = BottleneckKind::resbm;
  c.ratio = 7;
  EXPECT_THROW(validate_bottleneck(c, 768), std::invalid_argument);
  c.ratio = 0;
  EXPECT_THROW(validate_bottleneck(c, 768), std::invalid_argument);
  c.ratio = 4;
  c.layout = ResbmLayout::fused;
  EXPECT_NO_THROW(validate_bottleneck(c, 768));
  c.identity = IdentityPath::orthogonal;
  EXPECT_THROW(validate_bottleneck(c, 768), std::invalid_argument) << "fused keeps the slice identity";
  EXPECT_THROW(parse_bottleneck_kind("resnet"), std::invalid_argument);
  EXPECT_EQ(parse_bottleneck_kind("ae"), BottleneckKind::ae);
  EXPECT_EQ(parse_identity_path("orthogonal"), IdentityPath::orthogonal);
}

// The fused (IOTA) layout, through its pieces: encoder block (attention half, K-wide MLP) then the next stage's
// decoder block (attention on gelu(z W_dec), z padded back, MLP half). Finite differences of sum(out * W) against
// the tape for x and every parameter, all randomised; and z = h[..., :K] at initialisation.
// --code-width sets K directly (any 1 <= K <= C), so that a ratio in bytes, scales included, is reachable: at d12
// (C = 768, fp32: 3072 bytes per token) an int8 code of K = 20 plus its 4-byte scale is 24 bytes: exactly 128x,
// where --ratio 32 with int8 gives 3072 / (24 + 4) = 109.7x.
TEST(BottleneckConfigTest, CodeWidthReachesExactByteRatios) {
  const int C = 768;
  BottleneckConfig c;
  c.kind = BottleneckKind::resbm;
  c.code_dtype = engine::comm::WireDType::i8;
  c.ratio = 32;
  EXPECT_EQ(code_width(c, C), 24);
  EXPECT_NEAR(C * 4.0 / engine::comm::encoded_bytes(c.code_dtype, 1, code_width(c, C)), 3072.0 / 28.0, 1e-12);
  c.code_channels = 20;
  validate_bottleneck(c, C);
  EXPECT_EQ(code_width(c, C), 20);
  EXPECT_EQ(engine::comm::encoded_bytes(c.code_dtype, 1, 20), 24u);
  EXPECT_EQ(C * 4.0 / engine::comm::encoded_bytes(c.code_dtype, 1, code_width(c, C)), 128.0);
  EXPECT_EQ(describe_bottleneck(c, C).find("r="), std::string::npos) << "K is set directly: no ratio to show";
  for (int bad : {-1, C + 1}) {
    c.code_channels = bad;
    EXPECT_THROW(validate_bottleneck(c, C), std::invalid_argument) << bad;
  }
  c.code_channels = 7;  // not a divisor of C: fine with --code-width
  EXPECT_NO_THROW(validate_bottleneck(c, C));
  c.kind = BottleneckKind::none;  // none and quant send every channel: --code-width is an error there
  EXPECT_THROW(validate_bottleneck(c, C), std::invalid_argument);
}

TEST_F(BottleneckTest, FusedLayoutGradients) {
  GPT2Config config;
  config.channels = kC;
  config.num_heads = 2;
  config.num_layers = 2;
  config.max_seq_len = kT;
  config.vocab_size = 8;
  config.padded_vocab_size = 8;
  const int K = 4;
  ParamStore store(engine::Device::cpu);
  const BlockParams enc = declare_fused_encoder_block(store, "h.0.", config, K);
  const int w_dec = declare_fused_decoder(store, 0, config, K);
  const BlockParams dec = declare_block(store, "h.1.", config);
  store.allocate();
  init_fused_encoder_block(store, enc, config, 3);
  init_normal(store, w_dec, 0.02f, 3);
  init_block(store, dec, config, 3);
  std::mt19937 rng(21);
  Var x = leaf({kB, kT, kC}, rng, 1.0f);
  {
    Graph g(ctx(), engine::Device::cpu, 4 << 20);
    const Var h = block_attention_forward(g, store, enc, x, config);
    const Var z = fused_encoder_mlp(g, store, enc, h, K);
    for (int n = 0; n < kB * kT; ++n) {
      for (int k = 0; k < K; ++k) EXPECT_EQ(z.value.f32()[n * K + k], h.value.f32()[n * kC + k]);
    }
  }
  auto build = [&](Graph& g) {
    const Var h = block_attention_forward(g, store, enc, x, config);
    const Var z = fused_encoder_mlp(g, store, enc, h, K);                  // (B,T,K): what crosses
    const Var a = fused_decoder_attention(g, store, dec, w_dec, z, config);  // (B,T,C)
    return engine::add(g, a, block_mlp_branch(g, store, dec, a));
  };
  std::vector<Var> inputs = {x};
  std::vector<std::string> names = {"x"};
  add_randomised_params(store, rng, 0.3f, &inputs, &names);
  // Attention and two layernorms deep: eps 1e-2 keeps truncation ~1e-4; 5e-3 relative leaves margin over fp32.
  EXPECT_GT(fd_check(ctx(), inputs, names, build, 1e-2f, 5e-3, 12, rng), 0);
}

}  // namespace
}  // namespace resbm
