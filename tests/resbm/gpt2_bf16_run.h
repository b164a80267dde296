// tests/resbm/gpt2_bf16_run.h: what the bf16 policy's GPT-2 tests share: a small GPT-2, and 20 AdamW steps of it on
// a learnable sequence rule on either device (gpt2_bf16_test on the CPU twins, gpt2_bf16_gpu_test on CUDA).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/memory.h"
#include "engine/optim/adamw.h"
#include "resbm/gpt2.h"

namespace resbm::testing {

constexpr int kB = 4, kT = 16, kSteps = 20;

inline GPT2Config small_bf16_config() {
  GPT2Config c;
  c.max_seq_len = 32;
  c.vocab_size = 97;  // odd sizes; head size 16, the CUDA flash kernel's smallest
  c.padded_vocab_size = 128;
  c.num_layers = 2;
  c.num_heads = 3;
  c.channels = 48;
  return c;
}

struct TrainRun {
  std::vector<float> losses;                    // (kSteps) the loss before each update
  std::vector<std::vector<float>> first_grads;  // step 1's gradient of every parameter, on the host
  std::vector<uint8_t> copy;                    // the final bf16 parameters (bf16 runs)
  engine::ArenaBytes peak, budget;              // what the step used of each arena, and what the model sized them to
};

// kSteps AdamW steps (lr 1e-2, weight decay 0.1) on fresh batches of t' = 5 t + 3 mod V from a random start, the
// same batches for every run, from init(1), on `device`.
inline TrainRun train_small_gpt2(engine::Device device, engine::Precision precision) {
  const GPT2Config c = small_bf16_config();
  engine::DeviceContext context(device, 2);
  GPT2 model(c, device, precision);
  model.init(1);
  engine::optim::AdamWConfig cfg;
  cfg.weight_decay = 0.1f;
  cfg.rounding_seed = 1;
  engine::optim::AdamW opt(model.params(), context.ctx(), cfg);
  engine::Graph g(context.ctx(), device, model.arena_bytes(kB, kT));
  engine::Arena ids("ids", 1 << 16, device);
  const engine::Tensor tok = ids.alloc({kB, kT}, engine::DType::i32);
  const engine::Tensor tgt = ids.alloc({kB, kT}, engine::DType::i32);
  std::mt19937 rng(7);
  TrainRun run;
  std::vector<int32_t> inputs(kB * kT), targets(kB * kT);
  for (int step = 0; step < kSteps; ++step) {
    for (int b = 0; b < kB; ++b) {
      int32_t t = static_cast<int32_t>(rng() % c.vocab_size);
      for (int i = 0; i < kT; ++i) {
        inputs[b * kT + i] = t;
        t = (5 * t + 3) % c.vocab_size;
        targets[b * kT + i] = t;
      }
    }
    engine::copy_from_host(tok, inputs.data());
    engine::copy_from_host(tgt, targets.data());
    g.reset();
    engine::Var loss = model.forward(g, tok, tgt);
    float host_loss = 0.0f;
    engine::copy_to_host(&host_loss, loss.value);
    run.losses.push_back(host_loss);
    g.backward(loss);
    if (step == 0) {
      for (const engine::Param& p : model.params().params()) {
        run.first_grads.emplace_back(static_cast<size_t>(p.var.grad.numel()));
        engine::copy_to_host(run.first_grads.back().data(), p.var.grad);
      }
    }
    opt.step(1e-2f);
    model.params().zero_grads();
  }
  if (precision == engine::Precision::bf16) {
    const engine::Tensor copy = model.params().all_model_values();
    run.copy.resize(copy.nbytes());
    engine::copy_to_host(run.copy.data(), copy);
  }
  run.peak = {g.peak_activation_bytes(), g.peak_gradient_bytes()};
  run.budget = model.arena_bytes(kB, kT);
  return run;
}

// How far two runs' losses drift apart over the kSteps steps (each step printed, names a and b).
struct Drift {
  double worst = 0.0, mean = 0.0;
};
inline Drift loss_drift(const TrainRun& a, const char* a_name, const TrainRun& b, const char* b_name) {
  Drift d;
  for (int s = 0; s < kSteps; ++s) {
    const double diff = static_cast<double>(b.losses[s]) - a.losses[s];
    std::printf("step %2d  %s %.5f  %s %.5f  diff %+.5f\n", s + 1, a_name, a.losses[s], b_name, b.losses[s], diff);
    d.worst = std::fmax(d.worst, std::fabs(diff));
    d.mean += std::fabs(diff) / kSteps;
  }
  return d;
}

}  // namespace resbm::testing
