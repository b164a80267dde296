// The bf16 policy's op paths (docs/bf16_policy.md) against the fp32 ops, on odd shapes, through the tape: forward
// values and every gradient. Both graphs read the SAME numbers: the fp32 inputs are bf16-representable (rounded
// first), the bf16 inputs are their bits, and both backward passes start from the same bf16-representable dout.
//
// Tolerances. A bf16 output that the kernel rounds once to nearest even is within half an ulp of the fp32 result:
// bf16 keeps 8 significant bits, so |bf16 - f32| <= 2^-8 |f32| (kHalfUlp). On top of that the bf16 kernels may sum
// in another order than the fp32 ones (the flash attention sums over lse, not stored probabilities), which moves a
// result by a few fp32 ulps of the largest term: kOrder * max|f32| absorbs that (and cancellation near zero). fp32
// outputs (parameter gradients, layernorm statistics, losses) get no rounding at all: kOrder alone.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/memory.h"
#include "engine/ops.h"
#include "gtest/gtest.h"
#include "kernels/cuda/bf16_rounding.h"
#include "tests/engine/gradcheck.h"

namespace engine {
namespace {

constexpr double kHalfUlp = 1.0 / 256.0;  // 2^-8: one round to nearest of an 8-significant-bit value
constexpr double kOrder = 1e-5;           // fp32 summation-order differences, relative to the tensor's max

// The same leaf in both precisions: f has f32 value and gradient; b has the value's bf16 bits and a gradient that is
// f32 for a weight (the policy's fp32 parameter gradients) and bf16 for an activation.
struct Pair {
  Var f, b;
};

class Leaves {
 public:
  Leaves() : arena_("bf16 test leaves", 16 << 20) {}

  Pair make(std::initializer_list<int64_t> shape, std::mt19937& rng, float scale, bool weight) {
    Pair p;
    p.f.value = arena_.alloc(shape);
    p.f.grad = arena_.alloc(shape);
    p.b.value = arena_.alloc(shape, DType::bf16);
    p.b.grad = arena_.alloc(shape, weight ? DType::f32 : DType::bf16);
    std::normal_distribution<float> normal(0.0f, scale);
    for (int64_t i = 0; i < p.f.value.numel(); i++) {
      const uint16_t h = kernels::bf16::round_nearest(normal(rng));
      p.b.value.u16()[i] = h;
      p.f.value.f32()[i] = kernels::bf16::widen(h);
    }
    return p;
  }
  Tensor ints(std::initializer_list<int64_t> shape, std::mt19937& rng, int32_t upper) {
    return ints_.ints(shape, rng, upper);
  }
  Tensor f32(int64_t n) { return arena_.alloc({n}); }
  Tensor bf16(int64_t n) { return arena_.alloc({n}, DType::bf16); }

 private:
  Arena arena_;
  testing::Leaves ints_;  // token ids and targets, as the fp32 gradient checks make them
};

std::vector<double> widened(const Tensor& t) {
  std::vector<double> out(t.numel());
  for (int64_t i = 0; i < t.numel(); i++) {
    out[i] = t.dtype == DType::bf16 ? kernels::bf16::widen(t.u16()[i]) : t.f32()[i];
  }
  return out;
}

// |got - want| <= rel * |want| + abs_rel * max|want| elementwise; rel = kHalfUlp for a rounded bf16 tensor.
void expect_close(const Tensor& got, const Tensor& want, const char* what, double abs_rel = kOrder) {
  ASSERT_EQ(got.numel(), want.numel()) << what;
  const double rel = got.dtype == DType::bf16 ? kHalfUlp : 0.0;
  const std::vector<double> g = widened(got), w = widened(want);
  double scale = 0.0;
  for (double x : w) scale = std::fmax(scale, std::fabs(x));
  ASSERT_GT(scale, 0.0) << what << ": the reference is all zeros, the test proves nothing";
  int bad = 0;
  for (size_t i = 0; i < g.size(); i++) {
    const double bound = rel * std::fabs(w[i]) + abs_rel * scale;
    if (std::fabs(g[i] - w[i]) > bound && bad++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: bf16 path " << g[i] << ", fp32 " << w[i] << ", bound " << bound;
    }
  }
  EXPECT_EQ(bad, 0) << what;
}

void zero_grads(const std::vector<Pair>& leaves) {
  for (const Pair& p : leaves) {
    std::memset(p.f.grad.data, 0, p.f.grad.nbytes());
    std::memset(p.b.grad.data, 0, p.b.grad.nbytes());
  }
}

// Runs build on the fp32 leaves and on the bf16 leaves, backpropagates the same dout (random, bf16-representable;
// a scalar loss gets dloss 0.75 so the scale reaches the kernels), and compares the output and every leaf gradient
// (grad_abs_rel: the gradients' allowance relative to their largest element, kOrder unless a test explains more).
template <typename Build>
void compare(const std::vector<Pair>& leaves, Build build, double grad_abs_rel = kOrder, uint32_t seed = 11) {
  DeviceContext dc(Device::cpu, 2);
  Graph gf(dc.ctx(), Device::cpu, 32 << 20);
  Graph gb(dc.ctx(), Device::cpu, 32 << 20);
  zero_grads(leaves);
  Var of = build(gf, false);
  Var ob = build(gb, true);
  ASSERT_EQ(ob.value.dtype, of.value.numel() == 1 ? DType::f32 : DType::bf16);
  expect_close(ob.value, of.value, "output");
  if (of.value.numel() == 1) {
    gf.backward(of, 0.75f);
    gb.backward(ob, 0.75f);
  } else {
    Leaves douts;
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t n = of.value.numel();
    Tensor df = douts.f32(n), db = douts.bf16(n);
    for (int64_t i = 0; i < n; i++) {
      db.u16()[i] = kernels::bf16::round_nearest(normal(rng));
      df.f32()[i] = kernels::bf16::widen(db.u16()[i]);
    }
    gf.backward_from(of, df);
    gb.backward_from(ob, db);
  }
  for (size_t k = 0; k < leaves.size(); k++) {
    SCOPED_TRACE("leaf " + std::to_string(k));
    expect_close(leaves[k].b.grad, leaves[k].f.grad, "gradient", grad_abs_rel);
  }
}

const Var& pick(const Pair& p, bool bf16) { return bf16 ? p.b : p.f; }

TEST(OpsBf16, Embedding) {
  std::mt19937 rng(1);
  Leaves l;
  const int B = 2, T = 5, C = 13, Vp = 11, maxT = 7;
  Tensor tokens = l.ints({B, T}, rng, Vp);
  tokens.i32()[3] = tokens.i32()[0];  // a repeated token accumulates twice
  Pair wte = l.make({Vp, C}, rng, 1.0f, true), wpe = l.make({maxT, C}, rng, 1.0f, true);
  compare({wte, wpe}, [&](Graph& g, bool b) { return embedding(g, tokens, pick(wte, b), pick(wpe, b)); });
}

TEST(OpsBf16, Layernorm) {
  std::mt19937 rng(2);
  Leaves l;
  Pair x = l.make({2, 5, 13}, rng, 2.0f, false);
  Pair w = l.make({13}, rng, 1.0f, true), bias = l.make({13}, rng, 1.0f, true);
  compare({x, w, bias}, [&](Graph& g, bool b) { return layernorm(g, pick(x, b), pick(w, b), pick(bias, b)); });
}

TEST(OpsBf16, MatmulWithBias) {
  std::mt19937 rng(3);
  Leaves l;
  Pair x = l.make({2, 5, 13}, rng, 1.0f, false);
  Pair w = l.make({9, 13}, rng, 0.5f, true), bias = l.make({9}, rng, 1.0f, true);
  compare({x, w, bias}, [&](Graph& g, bool b) { return matmul(g, pick(x, b), pick(w, b), pick(bias, b)); });
}

TEST(OpsBf16, MatmulNoBias) {
  std::mt19937 rng(4);
  Leaves l;
  Pair x = l.make({7, 13}, rng, 1.0f, false);
  Pair w = l.make({6, 13}, rng, 0.5f, true);
  compare({x, w}, [&](Graph& g, bool b) { return matmul(g, pick(x, b), pick(w, b)); });
}

TEST(OpsBf16, Gelu) {
  std::mt19937 rng(5);
  Leaves l;
  Pair x = l.make({7, 13}, rng, 2.0f, false);
  compare({x}, [&](Graph& g, bool b) { return gelu(g, pick(x, b)); });
}

TEST(OpsBf16, Add) {
  std::mt19937 rng(6);
  Leaves l;
  Pair a = l.make({7, 13}, rng, 1.0f, false), c = l.make({7, 13}, rng, 1.0f, false);
  compare({a, c}, [&](Graph& g, bool b) { return add(g, pick(a, b), pick(c, b)); });
  // a on both sides: its gradient accumulates twice (the residual stream's pattern), 2 dout, exact in bf16.
  compare({a}, [&](Graph& g, bool b) { return add(g, pick(a, b), pick(a, b)); });
}

// The fused residual add + layernorm: bit for bit add() then layernorm(), values and every gradient, in either
// precision (the fused bf16 kernel rounds the sum, then normalises the rounded sum, as the two ops do).
TEST(OpsBf16, AddLayernormIsAddThenLayernormBitwise) {
  std::mt19937 rng(12);
  Leaves l;
  Pair a = l.make({2, 5, 13}, rng, 1.0f, false), c = l.make({2, 5, 13}, rng, 1.0f, false);
  Pair w = l.make({13}, rng, 1.0f, true), bias = l.make({13}, rng, 1.0f, true);
  Pair head = l.make({3, 13}, rng, 1.0f, true);
  Tensor targets = l.ints({2, 5}, rng, 3);
  for (const bool bf16 : {false, true}) {
    SCOPED_TRACE(bf16 ? "bf16" : "fp32");
    DeviceContext dc(Device::cpu, 2);
    std::vector<std::vector<uint8_t>> results[2];  // [fused?]: the sum, the normed output, then every gradient
    for (const bool fused : {false, true}) {
      Graph g(dc.ctx(), Device::cpu, 1 << 20);
      zero_grads({a, c, w, bias, head});
      Var sum, normed;
      if (fused) {
        const AddLayernorm r = add_layernorm(g, pick(a, bf16), pick(c, bf16), pick(w, bf16), pick(bias, bf16));
        sum = r.sum, normed = r.normed;
      } else {
        sum = add(g, pick(a, bf16), pick(c, bf16));
        normed = layernorm(g, sum, pick(w, bf16), pick(bias, bf16));
      }
      // A loss that reads both outputs, so both nodes' backward passes run: mean of (sum + normed) over a matmul.
      Var both = add(g, sum, normed);
      Var logits = matmul(g, both, pick(head, bf16));
      g.backward(softmax_crossentropy(g, logits, targets, 3), 1.0f);
      for (const Tensor& t : {sum.value, normed.value, pick(a, bf16).grad, pick(c, bf16).grad, pick(w, bf16).grad,
                              pick(bias, bf16).grad}) {
        const uint8_t* p = static_cast<const uint8_t*>(t.data);
        results[fused].emplace_back(p, p + t.nbytes());
      }
    }
    ASSERT_EQ(results[0].size(), results[1].size());
    for (size_t k = 0; k < results[0].size(); ++k) EXPECT_TRUE(results[0][k] == results[1][k]) << "result " << k;
  }
}

TEST(OpsBf16, Attention) {
  std::mt19937 rng(7);
  Leaves l;
  const int B = 2, T = 7, NH = 3, C = 15;  // head size 5: the twin takes any (the CUDA kernel needs 16k)
  Pair qkv = l.make({B, T, 3 * C}, rng, 1.0f, false);
  // The gradients get half an ulp of their largest element on top of their own: flash attention's backward takes
  // D_t = sum_c dout_tc out_tc from the ROUNDED output (FlashAttention-2's rule, bf16_cpu_twin.h), where the fp32
  // kernel sums the probabilities against their gradient. That D is off by up to 2^-8 of its terms, and it enters
  // every dq, dk, dv of the row through ds = p (dp - D): an error of the row's scale, not of the element's.
  compare({qkv}, [&](Graph& g, bool b) { return attention(g, pick(qkv, b), NH); }, kHalfUlp);
}

TEST(OpsBf16, SoftmaxCrossentropy) {
  std::mt19937 rng(8);
  Leaves l;
  const int B = 2, T = 5, V = 11, Vp = 16;  // padded columns must get a zero gradient
  Pair logits = l.make({B, T, Vp}, rng, 2.0f, false);
  Tensor targets = l.ints({B, T}, rng, V);
  compare({logits}, [&](Graph& g, bool b) { return softmax_crossentropy(g, pick(logits, b), targets, V); });
}

// The ResBM identity path's column ops (slice: the encoder's x [I_K; 0]; pad: the decoder's z [I_K, 0]): exact copies
// forward, and backward a slice (exact) or an add into the input's gradient (one rounding, within kHalfUlp).
TEST(OpsBf16, SliceColumns) {
  std::mt19937 rng(9);
  Leaves l;
  Pair x = l.make({2, 5, 13}, rng, 1.0f, false);
  compare({x}, [&](Graph& g, bool b) { return slice_columns(g, pick(x, b), 3, 7); });
  compare({x}, [&](Graph& g, bool b) { return slice_columns(g, pick(x, b), 0, 13); });  // the whole row
}

TEST(OpsBf16, PadColumns) {
  std::mt19937 rng(10);
  Leaves l;
  Pair z = l.make({2, 5, 3}, rng, 1.0f, false);
  compare({z}, [&](Graph& g, bool b) { return pad_columns(g, pick(z, b), 0, 11); });
  compare({z}, [&](Graph& g, bool b) { return pad_columns(g, pick(z, b), 8, 11); });  // at the right edge
  // z both padded and added to itself padded: its gradient accumulates twice (as the fused decoder's z does).
  compare({z}, [&](Graph& g, bool b) {
    return add(g, pad_columns(g, pick(z, b), 1, 11), pad_columns(g, pick(z, b), 0, 11));
  });
}

// A weight whose value is bf16 must come with an fp32 gradient; an f32 activation into bf16 weights is refused.
TEST(OpsBf16, MixedPrecisionIsRefused) {
  std::mt19937 rng(9);
  Leaves l;
  Pair x = l.make({7, 13}, rng, 1.0f, false), w = l.make({9, 13}, rng, 1.0f, true);
  DeviceContext dc(Device::cpu, 1);
  Graph g(dc.ctx(), Device::cpu, 1 << 20);
  EXPECT_DEATH(matmul(g, x.f, w.b), "weight must be f32");
  EXPECT_DEATH(matmul(g, x.b, w.f), "weight must be bf16");
}

}  // namespace
}  // namespace engine
