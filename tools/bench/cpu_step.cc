// tools/bench/cpu_step.cc: CPU training-step benchmark of GPT-2 (forward + backward + AdamW), with a phase split.
//
//   bazel-bin/tools/bench/cpu_step                # tiny and d12 (GPT-2 124M) at B=4, T=64, fp32 and bf16-autocast
//   bazel-bin/tools/bench/cpu_step --preset d12 --B 4 --T 64 --warmup 2 --steps 5 --threads 2 \
//                                  --dtype fp32,bf16,bf16-autocast
//
// Prints, per preset and dtype: ms per step (and its forward / backward / AdamW parts), tokens/s, and the achieved
// GFLOP/s of the step's matmul work next to what a bare GEMM of GPT-2's shapes reaches on this machine with the
// library and operand type the engine uses (oneDNN, kernels/cpu/gemm_plans.h): the gap between the two is the time
// spent outside the GEMMs (attention, layernorm, softmax, the optimizer; for bf16 also the rounding: the bf16 policy's
// CPU twins widen every bf16 input and round every output, bf16-autocast rounds the matmuls' operands).
// On a shared machine, run it alone (other processes on the same 2 cores change the figures several-fold).
#include <algorithm>
#include <memory>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <tuple>
#include <vector>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/memory.h"
#include "engine/optim/adamw.h"
#include "kernels/cpu/gemm_plans.h"
#include "kernels/cpu/kernels.h"
#include "resbm/gpt2.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

struct Options {
  std::vector<std::string> presets = {"tiny", "d12"};
  std::vector<std::string> dtypes = {"fp32", "bf16-autocast"};
  int B = 4, T = 64, warmup = 2, steps = 5, threads = 0;
  bool kernels = false;  // also time each CPU kernel at the preset's shapes (where the step's time goes)
};

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr,
               "cpu_step: %s\n"
               "usage: cpu_step [--preset NAME[,NAME...]] [--B 4] [--T 64] [--warmup 2] [--steps 5] [--threads N]\n"
               "                [--dtype fp32,bf16-autocast] [--kernels 1]\n"
               "  presets: tiny, d12, d24, d36, d48 (default tiny,d12); threads 0 = all cores\n"
               "  --dtype: the precision(s), as train's --dtype (bf16: llm.c's mixed precision on the CUDA kernels' CPU\n"
               "           twins; bf16-autocast: fp32 model, bf16 matmul operands)\n"
               "  --kernels 1: also time every CPU kernel at the preset's shapes, per step (the breakdown)\n",
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
    auto list = [&]() {
      std::vector<std::string> items;
      size_t start = 0;
      while (start <= value.size()) {
        const size_t comma = value.find(',', start);
        items.push_back(value.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
      return items;
    };
    if (flag == "--preset") {
      o.presets = list();
    } else if (flag == "--dtype") {
      o.dtypes = list();
      for (const std::string& d : o.dtypes) {
        if (d != "fp32" && d != "bf16" && d != "bf16-autocast") usage(("unknown dtype '" + d + "'").c_str());
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
    } else if (flag == "--kernels") {
      o.kernels = number() != 0;
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

// GFLOP/s of a bare GEMM (the engine's GemmPlans, operands already in `operands`) on GPT-2's fc and fc_proj shapes
// at (C, N): the practical ceiling of the step's matmuls. No rounding and no bias: the GEMM alone.
double gemm_ceiling_gflops(const kernels::KernelContext& ctx, kernels::cpu::GemmOperands operands, int C, int N) {
  auto& plans = *static_cast<kernels::cpu::GemmPlans*>(ctx.cpu_gemm_plans);
  const size_t elem = operands == kernels::cpu::GemmOperands::bf16 ? 2 : 4;
  std::vector<char> a(size_t(N) * 4 * C * elem, 0), w(size_t(4) * C * C * elem, 0);
  for (size_t i = 0; i + 1 < a.size(); i += 2) a[i + 1] = 0x3c;  // small normal values either way
  for (size_t i = 0; i + 1 < w.size(); i += 2) w[i + 1] = 0x3c;
  std::vector<float> out(size_t(N) * 4 * C);
  kernels::cpu::GemmShape fc = kernels::cpu::dense_gemm(N, 4 * C, C, false, true);
  kernels::cpu::GemmShape proj = kernels::cpu::dense_gemm(N, C, 4 * C, false, true);
  fc.operands = proj.operands = operands;
  auto both = [&] {
    plans.run(fc, a.data(), w.data(), nullptr, out.data(), ctx.num_threads);
    plans.run(proj, a.data(), w.data(), nullptr, out.data(), ctx.num_threads);
  };
  both();  // warm up (creates the primitives)
  double best = 1e30;  // the fastest of a few: a ceiling, not a mean over the neighbours' load
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    both();
    best = std::min(best, ms_since(t0) / 1e3);
  }
  return 2.0 * (2.0 * N * 4.0 * C * C) / best / 1e9;
}

// Times every CPU kernel a training step calls, at the step's shapes, and prints ms per step for each (calls per
// step x ms per call), largest first. Their sum next to the measured step shows the engine's own overhead.
void profile_kernels(const resbm::GPT2Config& c, const Options& o, const kernels::KernelContext& ctx) {
  namespace k = kernels::cpu;
  const int B = o.B, T = o.T, C = c.channels, NH = c.num_heads, L = c.num_layers, Vp = c.padded_vocab_size;
  const int N = B * T;
  const size_t biggest = std::max({size_t(N) * Vp, size_t(Vp) * C, size_t(B) * NH * T * T, size_t(N) * 4 * C});
  // Scratch buffers big enough for any argument; small positive values keep exp/sqrt in range.
  std::vector<float> a(biggest, 0.01f), b(biggest, 0.02f), out(biggest), d(biggest, 0.001f), e(biggest, 0.0f);
  std::vector<float> w(size_t(Vp) * C > size_t(4) * C * C ? size_t(Vp) * C : size_t(4) * C * C, 0.01f);
  std::vector<float> mean(N), rstd(N, 1.0f), bias(std::max(Vp, 4 * C), 0.0f);
  std::vector<int32_t> ids(N, 1);
  struct Row {
    std::string name;
    double calls, ms;
  };
  std::vector<Row> rows;
  auto time = [&](const std::string& name, double calls_per_step, auto&& fn) {
    fn();  // warm up
    // The fastest of a few calls: on a shared machine the others only add the neighbours' load.
    double best = 1e30;
    for (int r = 0; r < 5; ++r) {
      const auto t0 = Clock::now();
      fn();
      best = std::min(best, ms_since(t0));
    }
    rows.push_back({name, calls_per_step, best});
  };
  for (auto [oc, ic, label] : {std::tuple{3 * C, C, "qkv"}, std::tuple{C, C, "attn_proj"},
                               std::tuple{4 * C, C, "fc"}, std::tuple{C, 4 * C, "fc_proj"}}) {
    time(std::string("matmul_forward ") + label, L,
         [&] { k::matmul_forward(ctx, out.data(), a.data(), w.data(), bias.data(), N, ic, oc); });
    time(std::string("matmul_backward ") + label, L, [&] {
      k::matmul_backward(ctx, e.data(), b.data(), bias.data(), d.data(), a.data(), w.data(), N, ic, oc);
    });
  }
  time("matmul_forward head", 1, [&] { k::matmul_forward(ctx, out.data(), a.data(), w.data(), nullptr, N, C, Vp); });
  time("matmul_backward head", 1, [&] {
    k::matmul_backward(ctx, e.data(), b.data(), nullptr, d.data(), a.data(), w.data(), N, C, Vp);
  });
  time("attention_forward", L, [&] { k::attention_forward(ctx, out.data(), b.data(), a.data(), B, T, C, NH); });
  time("attention_backward", L, [&] {
    k::attention_backward(ctx, e.data(), out.data(), d.data(), a.data(), b.data(), B, T, C, NH);
  });
  time("layernorm_forward", 2 * L + 1,
       [&] { k::layernorm_forward(ctx, out.data(), mean.data(), rstd.data(), a.data(), w.data(), bias.data(), N, C); });
  time("layernorm_backward", 2 * L + 1, [&] {
    k::layernorm_backward(ctx, e.data(), b.data(), bias.data(), d.data(), a.data(), w.data(), mean.data(),
                          rstd.data(), N, C);
  });
  time("gelu_forward", L, [&] { k::gelu_forward(ctx, out.data(), a.data(), size_t(N) * 4 * C); });
  time("gelu_backward", L, [&] { k::gelu_backward(ctx, e.data(), a.data(), d.data(), size_t(N) * 4 * C); });
  time("add_forward (residual)", 2 * L, [&] { k::add_forward(ctx, out.data(), a.data(), b.data(), size_t(N) * C); });
  time("accumulate (residual backward)", 4 * L, [&] { k::accumulate(ctx, e.data(), d.data(), size_t(N) * C); });
  time("softmax_crossentropy_forward", 1, [&] {
    k::softmax_crossentropy_forward(ctx, b.data(), out.data(), a.data(), ids.data(), N, c.vocab_size, Vp);
  });
  time("softmax_crossentropy_backward", 1, [&] {
    k::softmax_crossentropy_backward(ctx, e.data(), out.data(), ids.data(), 1.0f / N, N, c.vocab_size, Vp);
  });
  time("embedding_forward", 1, [&] { k::embedding_forward(ctx, out.data(), ids.data(), w.data(), a.data(), B, T, C); });
  time("embedding_backward", 1, [&] { k::embedding_backward(ctx, e.data(), b.data(), d.data(), ids.data(), B, T, C); });
  // AdamW and zeroing the gradients: memory-bound passes over every parameter, timed on one (Vp, C) block and
  // scaled to the model's size.
  const double param_blocks = double(resbm::gpt2_num_parameters(c)) / (double(Vp) * C);
  std::vector<float> m(size_t(Vp) * C, 0.0f), v(size_t(Vp) * C, 0.0f), g(size_t(Vp) * C, 0.001f);
  time("adamw_update (all params)", param_blocks, [&] {
    k::adamw_update(ctx, w.data(), g.data(), m.data(), v.data(), w.size(), 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 3);
  });
  time("fill 0 (zero_grads)", param_blocks, [&] { k::fill(ctx, g.data(), 0.0f, g.size()); });

  std::sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) { return x.calls * x.ms > y.calls * y.ms; });
  double total = 0;
  for (const Row& r : rows) total += r.calls * r.ms;
  std::printf("      kernels at these shapes, ms per step (calls x ms/call), sum %.1f ms:\n", total);
  for (const Row& r : rows) {
    std::printf("        %-32s %8.1f ms  %5.1f%%  (%5.1f x %8.3f ms)\n", r.name.c_str(), r.calls * r.ms,
                100.0 * r.calls * r.ms / total, r.calls, r.ms);
  }
}

// Scratch for the bf16 GEMMs' rounded operands: the largest of the model's matmuls (the head, or the MLP).
size_t bf16_scratch_elements(const resbm::GPT2Config& c, int N) {
  const size_t C = c.channels;
  return std::max({kernels::bf16_gemm_scratch_elements(N, C, c.padded_vocab_size),
                   kernels::bf16_gemm_scratch_elements(N, C, 4 * C), kernels::bf16_gemm_scratch_elements(N, 4 * C, C)});
}

// One model training at one dtype, on its own DeviceContext (a dtype is a property of the context).
struct Runner {
  Runner(const resbm::GPT2Config& c, const std::string& dtype, const Options& o)
      : dtype(dtype),
        device(engine::Device::cpu, o.threads),
        model(c, engine::Device::cpu, dtype == "bf16" ? engine::Precision::bf16 : engine::Precision::fp32),
        ids("ids", size_t(2) * o.B * o.T * 4 + 1024) {
    if (dtype == "bf16-autocast") device.enable_bf16_gemms(bf16_scratch_elements(c, o.B * o.T));
    model.init(1337);
    engine::optim::AdamWConfig cfg;
    cfg.weight_decay = 0.1f;
    cfg.rounding_seed = 1337;  // the bf16 policy's stochastic write-back
    opt = std::make_unique<engine::optim::AdamW>(model.params(), device.ctx(), cfg);
    graph = std::make_unique<engine::Graph>(device.ctx(), engine::Device::cpu, model.arena_bytes(o.B, o.T));
    tokens = ids.alloc({o.B, o.T}, engine::DType::i32);
    targets = ids.alloc({o.B, o.T}, engine::DType::i32);
    resbm::Rng rng(7);
    for (int i = 0; i < o.B * o.T; ++i) {
      tokens.i32()[i] = static_cast<int32_t>(rng.next_u64() % c.vocab_size);
      targets.i32()[i] = static_cast<int32_t>(rng.next_u64() % c.vocab_size);
    }
  }
  void step(bool timed) {
    auto t0 = Clock::now();
    graph->reset();
    engine::Var loss = model.forward(*graph, tokens, targets);
    loss_value = loss.value.f32()[0];
    const double f = ms_since(t0);
    t0 = Clock::now();
    graph->backward(loss);
    const double b = ms_since(t0);
    t0 = Clock::now();
    opt->step(1e-4f);
    model.params().zero_grads();
    const double u = ms_since(t0);
    if (timed) fwd += f, bwd += b, upd += u, best = std::min(best, f + b + u);
  }

  std::string dtype;
  engine::DeviceContext device;
  resbm::GPT2 model;
  engine::Arena ids;
  std::unique_ptr<engine::optim::AdamW> opt;
  std::unique_ptr<engine::Graph> graph;
  engine::Tensor tokens, targets;
  double fwd = 0, bwd = 0, upd = 0, best = 1e30;  // best: the fastest timed step (least disturbed by neighbours)
  float loss_value = 0;
};

void run(const std::string& preset, const Options& o) {
  const resbm::GPT2Config c = resbm::gpt2_preset(preset);
  if (o.T > c.max_seq_len) usage(("T exceeds the preset's max_seq_len for " + preset).c_str());
  std::vector<std::unique_ptr<Runner>> runners;
  for (const std::string& dtype : o.dtypes) runners.push_back(std::make_unique<Runner>(c, dtype, o));
  // The dtypes take turns step by step, so that a change in the machine's load falls on all of them alike.
  for (int step = 0; step < o.warmup + o.steps; ++step) {
    for (auto& r : runners) r->step(step >= o.warmup);
  }
  const double gflop = step_gflop(c, o.B, o.T);
  for (auto& r : runners) {
    const double fwd = r->fwd / o.steps, bwd = r->bwd / o.steps, upd = r->upd / o.steps, total = fwd + bwd + upd;
    const auto operands = r->dtype == "bf16-autocast" && static_cast<kernels::cpu::GemmPlans*>(r->device.ctx().cpu_gemm_plans)
                                                    ->bf16_native()
                              ? kernels::cpu::GemmOperands::bf16
                              : kernels::cpu::GemmOperands::f32;
    const double ceiling = gemm_ceiling_gflops(r->device.ctx(), operands, c.channels, o.B * o.T);
    std::printf("%-5s %-13s %7.1fM  B=%d T=%-4d %9.1f ms/step (min %9.1f)  (fwd %8.1f  bwd %8.1f  adamw %7.1f)  "
                "%9.0f tok/s  %6.1f GFLOP/s of %5.1f GFLOP  loss %.3f\n",
                preset.c_str(), r->dtype.c_str(), resbm::gpt2_num_parameters(c) / 1e6, o.B, o.T, total, r->best, fwd,
                bwd, upd, o.B * o.T / (total / 1e3), gflop / (total / 1e3), gflop, r->loss_value);
    std::printf("           GEMM ceiling (%s operands, C=%d, N=%d): %.1f GFLOP/s -> %.1f ms for the step's matmuls; "
                "the step reaches %.0f%% of it; activations peak %.1f MiB\n",
                operands == kernels::cpu::GemmOperands::bf16 ? "bf16" : "fp32", c.channels, o.B * o.T, ceiling,
                gflop / ceiling * 1e3, 100.0 * (gflop / (total / 1e3)) / ceiling,
                r->graph->peak_activation_bytes() / 1048576.0);
    if (o.kernels) profile_kernels(c, o, r->device.ctx());
  }
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP's idle threads sleep (PASSIVE) unless the user chose otherwise, as in the trainer: the same process
  // defaults as `train` (engine/device.h), so the figures are the trainer's.
  engine::reexec_with_passive_openmp(argv);
  const Options o = parse(argc, argv);
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  {
    engine::DeviceContext device(engine::Device::cpu, o.threads);
    std::printf("cpu_step: forward + backward + AdamW, %d warmup + %d timed steps, %d threads, OMP_WAIT_POLICY=%s\n"
                "          GEMMs: %s\n",
                o.warmup, o.steps, device.ctx().num_threads, wait_policy != nullptr ? wait_policy : "(unset)",
                engine::cpu_gemm_description(device.ctx()).c_str());
  }
  for (const std::string& preset : o.presets) {
    try {
      run(preset, o);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "cpu_step: %s\n", e.what());
      return 1;
    }
  }
  return 0;
}
