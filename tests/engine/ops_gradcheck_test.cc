// Finite-difference gradient checks, through the tape, for every op in engine/ops.h, on odd shapes.
#include <random>

#include "engine/ops.h"
#include "tests/engine/gradcheck.h"

namespace engine {
namespace {

using testing::gradcheck;
using testing::Leaves;

TEST(OpsGradcheck, Embedding) {
  std::mt19937 rng(1);
  Leaves leaves;
  const int B = 2, T = 5, C = 13, Vp = 11, maxT = 7;
  Tensor tokens = leaves.ints({B, T}, rng, Vp);
  tokens.i32()[3] = tokens.i32()[0];  // a repeated token accumulates twice
  Var wte = leaves.make({Vp, C}, rng);
  Var wpe = leaves.make({maxT, C}, rng);
  gradcheck({wte, wpe}, [&](Graph& g) { return embedding(g, tokens, wte, wpe); });
}

TEST(OpsGradcheck, Layernorm2D) {
  std::mt19937 rng(2);
  Leaves leaves;
  Var x = leaves.make({7, 13}, rng, 2.0f);
  Var w = leaves.make({13}, rng);
  Var b = leaves.make({13}, rng);
  gradcheck({x, w, b}, [&](Graph& g) { return layernorm(g, x, w, b); });
}

TEST(OpsGradcheck, Layernorm3D) {
  std::mt19937 rng(3);
  Leaves leaves;
  Var x = leaves.make({2, 5, 13}, rng);
  Var w = leaves.make({13}, rng);
  Var b = leaves.make({13}, rng);
  gradcheck({x, w, b}, [&](Graph& g) {
    Var out = layernorm(g, x, w, b);
    EXPECT_EQ(out.value.ndim, 3);
    return out;
  });
}

TEST(OpsGradcheck, MatmulWithBias) {
  std::mt19937 rng(4);
  Leaves leaves;
  Var x = leaves.make({7, 13}, rng);
  Var w = leaves.make({9, 13}, rng, 0.5f);
  Var b = leaves.make({9}, rng);
  gradcheck({x, w, b}, [&](Graph& g) { return matmul(g, x, w, b); });
}

TEST(OpsGradcheck, MatmulNoBias3D) {
  std::mt19937 rng(5);
  Leaves leaves;
  Var x = leaves.make({2, 5, 13}, rng);
  Var w = leaves.make({6, 13}, rng, 0.5f);
  gradcheck({x, w}, [&](Graph& g) {
    Var out = matmul(g, x, w);
    EXPECT_EQ(out.value.dim(2), 6);
    return out;
  });
}

TEST(OpsGradcheck, MatmulFrozenWeight) {
  std::mt19937 rng(6);
  Leaves leaves;
  Var x = leaves.make({7, 13}, rng);
  Var w = leaves.make({5, 13}, rng, 0.5f, /*requires_grad=*/false);
  gradcheck({x}, [&](Graph& g) { return matmul(g, x, w); });
}

TEST(OpsGradcheck, Gelu) {
  std::mt19937 rng(7);
  Leaves leaves;
  Var x = leaves.make({7, 13}, rng, 2.0f);
  gradcheck({x}, [&](Graph& g) { return gelu(g, x); });
}

TEST(OpsGradcheck, Add) {
  std::mt19937 rng(8);
  Leaves leaves;
  Var a = leaves.make({7, 13}, rng);
  Var b = leaves.make({7, 13}, rng);
  gradcheck({a, b}, [&](Graph& g) { return add(g, a, b); });
}

TEST(OpsGradcheck, AddSameInputTwice) {
  std::mt19937 rng(9);
  Leaves leaves;
  Var a = leaves.make({7, 13}, rng);
  gradcheck({a}, [&](Graph& g) { return add(g, a, a); });
}

TEST(OpsGradcheck, Scale) {
  std::mt19937 rng(10);
  Leaves leaves;
  Var x = leaves.make({7, 13}, rng);
  gradcheck({x}, [&](Graph& g) { return scale(g, x, -0.37f); });
}

TEST(OpsGradcheck, Attention) {
  std::mt19937 rng(11);
  Leaves leaves;
  const int B = 2, T = 5, C = 15, NH = 3;
  Var qkv = leaves.make({B, T, 3 * C}, rng);
  gradcheck({qkv}, [&](Graph& g) { return attention(g, qkv, NH); }, 1e-3f, 1e-2f, 3 * B * T * C);
}

TEST(OpsGradcheck, SoftmaxCrossentropyPadded) {
  std::mt19937 rng(12);
  Leaves leaves;
  const int B = 2, T = 5, V = 13, Vp = 16;
  Var logits = leaves.make({B, T, Vp}, rng, 2.0f);
  Tensor targets = leaves.ints({B, T}, rng, V);
  gradcheck({logits}, [&](Graph& g) { return softmax_crossentropy(g, logits, targets, V); }, 1e-3f, 1e-2f,
            B * T * Vp);
  // Padded columns get no gradient at all.
  DeviceContext dc(Device::cpu, 2);
  Graph g(dc.ctx(), Device::cpu, 1 << 20);
  for (int64_t i = 0; i < logits.grad.numel(); i++) logits.grad.f32()[i] = 0.0f;
  Var loss = softmax_crossentropy(g, logits, targets, V);
  g.backward(loss);
  for (int n = 0; n < B * T; n++) {
    for (int j = V; j < Vp; j++) EXPECT_EQ(logits.grad.f32()[n * Vp + j], 0.0f);
  }
}

TEST(OpsGradcheck, SliceColumns) {
  std::mt19937 rng(13);
  Leaves leaves;
  Var x = leaves.make({2, 5, 13}, rng);
  gradcheck({x}, [&](Graph& g) { return slice_columns(g, x, 3, 7); });
}

TEST(OpsGradcheck, PadColumns) {
  std::mt19937 rng(14);
  Leaves leaves;
  Var x = leaves.make({7, 5}, rng);
  gradcheck({x}, [&](Graph& g) {
    Var out = pad_columns(g, x, 4, 13);
    EXPECT_EQ(out.value.dim(1), 13);
    return out;
  });
}

TEST(OpsGradcheck, ChainOfOps) {
  // A small block: layernorm -> matmul -> gelu -> matmul, plus a residual add; gradients through the whole chain.
  std::mt19937 rng(15);
  Leaves leaves;
  const int N = 7, C = 13, H = 17;
  Var x = leaves.make({N, C}, rng);
  Var lw = leaves.make({C}, rng), lb = leaves.make({C}, rng);
  Var w1 = leaves.make({H, C}, rng, 0.3f), b1 = leaves.make({H}, rng);
  Var w2 = leaves.make({C, H}, rng, 0.3f), b2 = leaves.make({C}, rng);
  gradcheck({x, lw, lb, w1, b1, w2, b2}, [&](Graph& g) {
    Var h = gelu(g, matmul(g, layernorm(g, x, lw, lb), w1, b1));
    return add(g, x, matmul(g, h, w2, b2));
  });
}

// quantize_roundtrip is a step function: its gradient is defined as straight-through, so it is checked directly.
TEST(OpsQuantizeRoundtrip, ForwardMatchesKernelsAndGradientPassesThrough) {
  std::mt19937 rng(16);
  Leaves leaves;
  const int N = 7, K = 13;
  Var x = leaves.make({N, K}, rng);
  for (int k = 0; k < K; k++) x.value.f32()[2 * K + k] = 0.0f;  // an all-zero row (scale 1)
  DeviceContext dc(Device::cpu, 2);
  for (DType wire : {DType::f32, DType::bf16, DType::i8}) {
    for (bool quantize_grad : {false, true}) {
      Graph g(dc.ctx(), Device::cpu, 1 << 20);
      for (int64_t i = 0; i < x.grad.numel(); i++) x.grad.f32()[i] = 0.0f;
      Var out = quantize_roundtrip(g, x, wire, quantize_grad);
      for (int n = 0; n < N; n++) {
        float absmax = 0.0f;
        for (int k = 0; k < K; k++) absmax = std::fmax(absmax, std::fabs(x.value.f32()[n * K + k]));
        for (int k = 0; k < K; k++) {
          const float v = x.value.f32()[n * K + k], q = out.value.f32()[n * K + k];
          if (wire == DType::f32) {
            EXPECT_EQ(q, v);
          } else if (wire == DType::bf16) {
            EXPECT_NEAR(q, v, std::fabs(v) / 256.0f);  // 8 significant bits
          } else {
            EXPECT_NEAR(q, v, absmax / 127.0f * 0.5f + 1e-7f);
          }
        }
      }
      std::vector<float> dout(N * K);
      for (int i = 0; i < N * K; i++) dout[i] = 0.01f * static_cast<float>(i % 17) - 0.05f;
      Tensor d;
      d.data = dout.data();
      d.ndim = 2;
      d.shape[0] = N;
      d.shape[1] = K;
      g.backward_from(out, d);
      for (int i = 0; i < N * K; i++) {
        if (!quantize_grad || wire == DType::f32) {
          EXPECT_EQ(x.grad.f32()[i], dout[i]);
        } else {
          EXPECT_NEAR(x.grad.f32()[i], dout[i], 0.11f / 127.0f + std::fabs(dout[i]) / 256.0f);
        }
      }
    }
  }
}

}  // namespace
}  // namespace engine
