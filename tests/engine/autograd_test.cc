// The tape: a 2-layer MLP's gradients equal manual backprop; gradients accumulate across graphs (micro-batches);
// a reset graph reuses its memory; a full tape is a clear error.
#include <cmath>
#include <random>
#include <vector>

#include "engine/device.h"
#include "engine/ops.h"
#include "engine/params.h"
#include "gtest/gtest.h"

namespace engine {
namespace {

// y = W2 gelu(W1 x + b1) + b2; loss = mean cross-entropy of y against targets (V classes, no padding).
struct Mlp {
  static constexpr int N = 6, C = 5, H = 7, V = 4;
  ParamStore params;
  int w1, b1, w2, b2;
  Mlp() {
    w1 = params.declare("w1", {H, C}, ParamKind::matrix);
    b1 = params.declare("b1", {H}, ParamKind::vector);
    w2 = params.declare("w2", {V, H}, ParamKind::matrix);
    b2 = params.declare("b2", {V}, ParamKind::vector);
    params.allocate();
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0.0f, 0.5f);
    for (Param& p : params.params())
      for (int64_t i = 0; i < p.var.value.numel(); i++) p.var.value.f32()[i] = normal(rng);
  }
  Var forward(Graph& g, const Var& x, const Tensor& targets) {
    Var h = gelu(g, matmul(g, x, params.var(w1), params.var(b1)));
    Var y = matmul(g, h, params.var(w2), params.var(b2));
    return softmax_crossentropy(g, y, targets, V);
  }
};

double gelu_d(double v) { return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v))); }
double gelu_grad_d(double v) {
  const double k = std::sqrt(2 / M_PI), th = std::tanh(k * (v + 0.044715 * v * v * v));
  return 0.5 * (1 + th) + 0.5 * v * (1 - th * th) * k * (1 + 3 * 0.044715 * v * v);
}

TEST(Autograd, TwoLayerMlpMatchesManualBackprop) {
  constexpr int N = Mlp::N, C = Mlp::C, H = Mlp::H, V = Mlp::V;
  Mlp mlp;
  DeviceContext dc(Device::cpu, 2);
  Graph g(dc.ctx(), Device::cpu, 1 << 20);
  Var x = g.new_var({N, C});
  std::mt19937 rng(4);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (int i = 0; i < N * C; i++) x.value.f32()[i] = normal(rng);
  Arena host("targets", 1024);
  Tensor targets = host.alloc({N}, DType::i32);
  for (int n = 0; n < N; n++) targets.i32()[n] = (n * 3) % V;
  Var loss = mlp.forward(g, x, targets);
  EXPECT_EQ(g.num_nodes(), 4u);
  g.backward(loss);

  // Manual backprop in double.
  const float* W1 = mlp.params.var(mlp.w1).value.f32();
  const float* B1 = mlp.params.var(mlp.b1).value.f32();
  const float* W2 = mlp.params.var(mlp.w2).value.f32();
  const float* B2 = mlp.params.var(mlp.b2).value.f32();
  const float* X = x.value.f32();
  std::vector<double> a(N * H), h(N * H), y(N * V), dy(N * V), dh(N * H), da(N * H), dx(N * C, 0.0);
  std::vector<double> dW1(H * C, 0.0), dB1(H, 0.0), dW2(V * H, 0.0), dB2(V, 0.0);
  double L = 0.0;
  for (int n = 0; n < N; n++) {
    for (int j = 0; j < H; j++) {
      double acc = B1[j];
      for (int c = 0; c < C; c++) acc += static_cast<double>(W1[j * C + c]) * X[n * C + c];
      a[n * H + j] = acc;
      h[n * H + j] = gelu_d(acc);
    }
    double mx = -1e300, sum = 0.0;
    for (int v = 0; v < V; v++) {
      double acc = B2[v];
      for (int j = 0; j < H; j++) acc += static_cast<double>(W2[v * H + j]) * h[n * H + j];
      y[n * V + v] = acc;
      mx = std::max(mx, acc);
    }
    for (int v = 0; v < V; v++) sum += std::exp(y[n * V + v] - mx);
    const int t = targets.i32()[n];
    L += (std::log(sum) - (y[n * V + t] - mx)) / N;
    for (int v = 0; v < V; v++) dy[n * V + v] = (std::exp(y[n * V + v] - mx) / sum - (v == t ? 1.0 : 0.0)) / N;
  }
  for (int n = 0; n < N; n++) {
    for (int v = 0; v < V; v++) {
      dB2[v] += dy[n * V + v];
      for (int j = 0; j < H; j++) dW2[v * H + j] += dy[n * V + v] * h[n * H + j];
    }
    for (int j = 0; j < H; j++) {
      double acc = 0.0;
      for (int v = 0; v < V; v++) acc += dy[n * V + v] * W2[v * H + j];
      dh[n * H + j] = acc;
      da[n * H + j] = acc * gelu_grad_d(a[n * H + j]);
      dB1[j] += da[n * H + j];
      for (int c = 0; c < C; c++) {
        dW1[j * C + c] += da[n * H + j] * X[n * C + c];
        dx[n * C + c] += da[n * H + j] * W1[j * C + c];
      }
    }
  }
  EXPECT_NEAR(loss.value.f32()[0], L, 1e-5);
  auto check = [](const Tensor& got, const std::vector<double>& want, const char* what) {
    for (size_t i = 0; i < want.size(); i++) EXPECT_NEAR(got.f32()[i], want[i], 1e-5) << what << "[" << i << "]";
  };
  check(mlp.params.var(mlp.w1).grad, dW1, "dW1");
  check(mlp.params.var(mlp.b1).grad, dB1, "db1");
  check(mlp.params.var(mlp.w2).grad, dW2, "dW2");
  check(mlp.params.var(mlp.b2).grad, dB2, "db2");
  check(x.grad, dx, "dx");

  // A second micro-batch on the reset graph: activation gradients start from zero again, parameter gradients add.
  std::vector<float> first(mlp.params.var(mlp.w1).grad.f32(), mlp.params.var(mlp.w1).grad.f32() + H * C);
  g.reset();
  Var x2 = g.new_var({N, C});
  EXPECT_EQ(x2.value.data, x.value.data);  // the arena is reused
  for (int i = 0; i < N * C; i++) x2.value.f32()[i] = X[i];
  Var loss2 = mlp.forward(g, x2, targets);
  EXPECT_EQ(loss2.value.f32()[0], loss.value.f32()[0]);  // same inputs, same bits
  g.backward(loss2);
  for (int i = 0; i < H * C; i++) EXPECT_FLOAT_EQ(mlp.params.var(mlp.w1).grad.f32()[i], 2 * first[i]);
  check(x2.grad, dx, "dx after reset");
}

TEST(Autograd, BackwardFromAnUpstreamGradient) {
  // backward_from: the gradient of a non-scalar output arrives from elsewhere (the next pipeline stage).
  DeviceContext dc(Device::cpu, 2);
  Graph g(dc.ctx(), Device::cpu, 1 << 16);
  Var x = g.new_var({2, 3});
  for (int i = 0; i < 6; i++) x.value.f32()[i] = static_cast<float>(i);
  Var y = add(g, scale(g, x, 3.0f), x);  // y = 4x
  float d[6] = {1, -1, 2, -2, 0.5f, 0};
  Tensor dy;
  dy.data = d;
  dy.ndim = 2;
  dy.shape[0] = 2;
  dy.shape[1] = 3;
  g.backward_from(y, dy);
  for (int i = 0; i < 6; i++) EXPECT_EQ(x.grad.f32()[i], 4.0f * d[i]);
}

TEST(Autograd, NoGradientNoNode) {
  // Ops on values that need no gradient produce outputs without one, and backward skips them.
  DeviceContext dc(Device::cpu, 1);
  Graph g(dc.ctx(), Device::cpu, 1 << 16);
  Var frozen = g.new_var({4}, DType::f32, /*requires_grad=*/false);
  Var y = gelu(g, frozen);
  EXPECT_FALSE(y.requires_grad());
}

TEST(AutogradDeathTest, FullTapeIsAClearError) {
  DeviceContext dc(Device::cpu, 1);
  EXPECT_DEATH(
      {
        Graph g(dc.ctx(), Device::cpu, 1 << 16, /*max_nodes=*/2);
        Var x = g.new_var({4});
        x = gelu(g, x);
        x = gelu(g, x);
        x = gelu(g, x);
      },
      "tape is full");
}

}  // namespace
}  // namespace engine
