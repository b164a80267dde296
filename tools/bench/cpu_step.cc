// tools/bench/cpu_step.cc: CPU training-step benchmark of GPT-2 (forward + backward + AdamW), with a phase split.
//
//   bazel-bin/tools/bench/cpu_step                       # tiny and d12 (GPT-2 124M) at B=4, T=64
//   bazel-bin/tools/bench/cpu_step --preset d12 --B 4 --T 64 --warmup 2 --steps 5 --threads 2
//
// Prints, per preset: ms per step (and its forward / backward / AdamW parts), tokens/s, and the achieved GFLOP/s
// of the step's matmul work next to what a bare OpenBLAS sgemm of GPT-2's shapes reaches on this machine: the
// gap between the two is the time spent outside the GEMMs (attention, layernorm, softmax, the optimizer).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/memory.h"
#include "engine/optim/adamw.h"
#include "kernels/cpu/kernels.h"
#include "resbm/gpt2.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Options {
  std::vector<std::string> presets = {"tiny", "d12"};
  int B = 4, T = 64, warmup = 2, steps = 5, threads = 0;
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "cpu_step: %s\n"
               "usage: cpu_step [--preset NAME[,NAME...]] [--B 4] [--T 64] [--warmup 2] [--steps 5] [--threads N]\n"
               "  presets: tiny, d12, d24, d36, d48 (default tiny,d12); threads 0 = all cores\n",
               why);
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("GPT-2 CPU training-step benchmark");
    if (i + 1 >= argc) usage(("missing value after " + flag).c_str());
    const std::string value = argv[++i];
    auto number = [&]() {
      char* end = nullptr;
      const long v = std::strtol(value.c_str(), &end, 10);
      if (*end != '\0' || v < 0) usage(("bad value '" + value + "' for " + flag).c_str());
      return static_cast<int>(v);
    };
    if (flag == "--preset") {
      o.presets.clear();
      size_t start = 0;
      while (start <= value.size()) {
        const size_t comma = value.find(',', start);
        o.presets.push_back(value.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else if (flag == "--B") {
      o.B = number();
    } else if (flag == "--T") {
      o.T = number();
    } else if (flag == "--warmup") {
      o.warmup = number();
    } else if (flag == "--steps") {
      o.steps = number();
    } else if (flag == "--threads") {
      o.threads = number();
    } else {
      usage(("unknown flag " + flag).c_str());
    }
  }
  if (o.B < 1 || o.T < 1 || o.steps < 1) usage("B, T and steps must be positive");
  return o;
}

// Matmul FLOPs of one training step: forward 2 * N * (every matmul weight), backward twice that; attention's two
// (T x T) products per head, causal (half of them are skipped by the kernel, counted here as done, like llm.c).
double step_gflop(const resbm::GPT2Config& c, int B, int T) {
  const double C = c.channels, L = c.num_layers, N = double(B) * T;
  const double weights = L * 12.0 * C * C + double(c.padded_vocab_size) * C;
  const double attention = L * 2.0 * 2.0 * N * T * C;
  return 3.0 * (2.0 * N * weights + attention) / 1e9;
}

// GFLOP/s of OpenBLAS sgemm on the forward matmul shapes of GPT-2 at (C, N): the practical ceiling.
double sgemm_gflops(const kernels::KernelContext& ctx, int C, int N) {
  std::vector<float> a(size_t(N) * 4 * C, 0.5f), w(size_t(4) * C * C, 0.25f), out(size_t(N) * 4 * C);
  const int reps = 5;
  kernels::cpu::matmul_forward(ctx, out.data(), a.data(), w.data(), nullptr, N, C, 4 * C);  // warm up
  const auto t0 = Clock::now();
  for (int r = 0; r < reps; ++r) {
    kernels::cpu::matmul_forward(ctx, out.data(), a.data(), w.data(), nullptr, N, C, 4 * C);  // fc
    kernels::cpu::matmul_forward(ctx, out.data(), a.data(), w.data(), nullptr, N, 4 * C, C);  // fc_proj
  }
  const double seconds = ms_since(t0) / 1e3;
  return reps * 2.0 * (2.0 * N * 4.0 * C * C) / seconds / 1e9;
}

void run(const std::string& preset, const Options& o, const engine::DeviceContext& device) {
  const resbm::GPT2Config c = resbm::gpt2_preset(preset);
  if (o.T > c.max_seq_len) usage(("T exceeds the preset's max_seq_len for " + preset).c_str());
  resbm::GPT2 model(c);
  model.init(1337);
  engine::optim::AdamWConfig cfg;
  cfg.weight_decay = 0.1f;
  engine::optim::AdamW opt(model.params(), device.ctx(), cfg);
  engine::Graph g(device.ctx(), engine::Device::cpu, model.activation_bytes(o.B, o.T));

  engine::Arena ids("ids", size_t(2) * o.B * o.T * 4 + 1024);
  engine::Tensor tokens = ids.alloc({o.B, o.T}, engine::DType::i32);
  engine::Tensor targets = ids.alloc({o.B, o.T}, engine::DType::i32);
  resbm::Rng rng(7);
  for (int i = 0; i < o.B * o.T; ++i) {
    tokens.i32()[i] = static_cast<int32_t>(rng.next_u64() % c.vocab_size);
    targets.i32()[i] = static_cast<int32_t>(rng.next_u64() % c.vocab_size);
  }

  double fwd = 0, bwd = 0, upd = 0;
  float loss_value = 0;
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    const bool timed = step >= o.warmup;
    auto t0 = Clock::now();
    g.reset();
    engine::Var loss = model.forward(g, tokens, targets);
    loss_value = loss.value.f32()[0];
    const double f = ms_since(t0);
    t0 = Clock::now();
    g.backward(loss);
    const double b = ms_since(t0);
    t0 = Clock::now();
    opt.step(1e-4f);
    model.params().zero_grads();
    const double u = ms_since(t0);
    if (timed) fwd += f, bwd += b, upd += u;
  }
  fwd /= o.steps, bwd /= o.steps, upd /= o.steps;
  const double total = fwd + bwd + upd;
  const double gflop = step_gflop(c, o.B, o.T);
  std::printf("%-5s %7.1fM  B=%d T=%-4d %9.1f ms/step  (fwd %8.1f  bwd %8.1f  adamw %7.1f)  %9.0f tok/s  "
              "%6.1f GFLOP/s of %5.1f GFLOP  loss %.3f\n",
              preset.c_str(), resbm::gpt2_num_parameters(c) / 1e6, o.B, o.T, total, fwd, bwd, upd,
              o.B * o.T / (total / 1e3), gflop / (total / 1e3), gflop, loss_value);
  const double ceiling = sgemm_gflops(device.ctx(), c.channels, o.B * o.T);
  std::printf("      sgemm ceiling at these shapes (C=%d, N=%d): %.1f GFLOP/s -> %.1f ms for the step's matmuls; "
              "activations peak %.1f MiB\n",
              c.channels, o.B * o.T, ceiling, gflop / ceiling * 1e3, g.peak_activation_bytes() / 1048576.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  engine::DeviceContext device(engine::Device::cpu, o.threads);
  std::printf("cpu_step: forward + backward + AdamW, %d warmup + %d timed steps, %d threads\n", o.warmup, o.steps,
              device.ctx().num_threads);
  for (const std::string& preset : o.presets) {
    try {
      run(preset, o, device);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cpu_step: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}
