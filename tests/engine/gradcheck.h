// tests/engine/gradcheck.h: central finite differences through the tape, for the op gradient tests.
#pragma once

#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/memory.h"
#include "gtest/gtest.h"

namespace engine::testing {

// Leaf tensors (inputs and parameters alike) that outlive every Graph of a test: values and gradients in an arena.
class Leaves {
 public:
  Leaves() : arena_("test leaves", 16 << 20) {}
  Var make(std::initializer_list<int64_t> shape, std::mt19937& rng, float scale = 1.0f, bool requires_grad = true) {
    Var v;
    v.value = arena_.alloc(shape);
    std::normal_distribution<float> normal(0.0f, scale);
    for (int64_t i = 0; i < v.value.numel(); i++) v.value.f32()[i] = normal(rng);
    if (requires_grad) v.grad = arena_.alloc(shape);
    return v;
  }
  Tensor ints(std::initializer_list<int64_t> shape, std::mt19937& rng, int32_t upper) {
    Tensor t = arena_.alloc(shape, DType::i32);
    std::uniform_int_distribution<int32_t> dist(0, upper - 1);
    for (int64_t i = 0; i < t.numel(); i++) t.i32()[i] = dist(rng);
    return t;
  }

 private:
  Arena arena_;
};

// The scalar the check differentiates: sum(out * weights) in double; weights are fixed random numbers.
inline double objective(const Var& out, const std::vector<float>& weights) {
  double acc = 0.0;
  for (int64_t i = 0; i < out.value.numel(); i++) acc += static_cast<double>(out.value.f32()[i]) * weights[i];
  return acc;
}

// Runs build() on a fresh graph, backpropagates sum(out * W) (W random; W = 1 for a scalar loss uses backward()),
// then compares each checked element's analytic gradient of every input with central differences (eps, fp32).
// Passes when |analytic - numeric| <= tol * max(1, |numeric|) for every element. Checks up to max_checks elements
// per input, spread evenly.
inline void gradcheck(const std::vector<Var>& inputs, const std::function<Var(Graph&)>& build, float eps = 1e-3f,
                      float tol = 1e-2f, int max_checks = 64, uint32_t seed = 7) {
  DeviceContext dc(Device::cpu, 2);
  Graph g(dc.ctx(), Device::cpu, 32 << 20);
  for (const Var& in : inputs) {
    for (int64_t i = 0; i < in.grad.numel(); i++) in.grad.f32()[i] = 0.0f;
  }
  Var out = build(g);
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> weights(out.value.numel());
  for (float& w : weights) w = normal(rng);
  if (out.value.numel() == 1) {
    weights[0] = 1.0f;
    g.backward(out, 1.0f);
  } else {
    Tensor w;
    w.data = weights.data();
    w.ndim = 1;
    w.shape[0] = out.value.numel();
    g.backward_from(out, w);
  }
  for (size_t k = 0; k < inputs.size(); k++) {
    const Var& in = inputs[k];
    std::vector<float> analytic(in.grad.f32(), in.grad.f32() + in.grad.numel());
    const int64_t n = in.value.numel();
    const int64_t stride = n <= max_checks ? 1 : n / max_checks;
    int failures = 0;
    double worst = 0.0;
    for (int64_t i = 0; i < n; i += stride) {
      float* x = in.value.f32() + i;
      const float orig = *x;
      *x = orig + eps;
      g.reset();
      const double plus = objective(build(g), weights);
      *x = orig - eps;
      g.reset();
      const double minus = objective(build(g), weights);
      *x = orig;
      const double numeric = (plus - minus) / (2.0 * eps);
      const double err = std::fabs(analytic[i] - numeric) / std::fmax(1.0, std::fabs(numeric));
      worst = std::fmax(worst, err);
      if (err > tol && failures++ < 5) {
        ADD_FAILURE() << "input " << k << " element " << i << ": analytic " << analytic[i] << ", numeric "
                      << numeric;
      }
    }
    EXPECT_EQ(failures, 0) << "input " << k << ": " << failures << " elements off; worst relative error " << worst;
  }
}

}  // namespace engine::testing
