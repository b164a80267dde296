// tools/bench/gpu_step/gpu_step.cc: the trainer's own training step (train::Backend::step: forward, backward and
// the optimizer over the pipeline's stages), timed on random tokens: step time, tokens/s, TFLOP/s, MFU, memory, and
// where the step's time goes (GEMMs, attention, layernorm, ... from engine::KernelProfiler).
//
//   gpu_step [--warmup N] [--profile-steps N] [--compare] [trainer flags]
//
// Every other flag is the trainer's (bazel run //train -- --help), resolved by the trainer's own code
// (train::parse_flags, train::make_run_config), so that what is timed is what `//train` with the same flags runs.
// This benchmark's defaults, which the given flags override: --device cuda --preset d12 --batch-size 8 --seq-len
// 1024 --dtype bf16 --stages 1 --bottleneck none --lr 3e-4 --steps 10, where --steps is the number of timed steps.
// The model sizes are --preset or --num-layers/--channels/--num-heads; --stages S --bottleneck KIND --ratio R put
// S - 1 bottlenecks between the stages, all in this process (--executor local).
//   --warmup N         untimed steps first (default 2: cuBLASLt's heuristics, caches); the first one's loss is the
//                      first loss printed
//   --profile-steps N  steps run after the timed ones with every kernel call timed, for the breakdown (default 2;
//                      0: none). Separate steps, so that the profiler's events cannot disturb the headline figures
//   --compare          the same flags with --bottleneck none first, then as given: both rows, and what the
//                      bottleneck costs in % (needs --stages >= 2 and a bottleneck)
//
// Every step trains on the same random batch (M x B rows of T tokens, targets shifted by one), at the constant --lr:
// the loss falls, which shows the step learns. The weights start from --seed, or from llm.c's model file with
// --init-from (gpt2_124M.bin: the same benchmark on llm.c's weights, as llm.c's own train_gpt2cu runs). A step's time is the median of the timed steps, wall clock from
// the call to Backend::step to its return (which has the loss on the host, so the device has finished).
//
// FLOPs per token = 6 N + 6 L C T (the project's issue; llm.c counts the attention term as 12 L C T, printed too),
// N = the GPT-2 parameters (resbm::gpt2_num_parameters): a bottleneck's FLOPs count as overhead, so that its cost
// shows as lost MFU. Peaks by device name (dense): H100/H200 SXM 989 TFLOP/s bf16 and 67 fp32 (non-tensor); A100
// 312 / 19.5; "?" elsewhere (the CPU too). Memory: the device memory in use after the backend's construction minus
// before it (cudaMemGetInfo: parameters, gradients, optimizer state, activation arenas, and the allocator's
// rounding), and the activation arenas alone (Backend::activation_bytes).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/kernel_profiler.h"
#include "resbm/gpt2.h"
#include "train/backend.h"
#include "train/evaluate.h"
#include "train/flags.h"
#include "train/run_config.h"
#include "train/run_start.h"

#ifdef RESBM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace {

const char* const kUsage =
    "usage: gpu_step [--warmup N] [--profile-steps N] [--compare] [trainer flags: --device cpu|cuda --dtype ... "
    "--preset NAME | --num-layers L --channels C --num-heads NH, --batch-size B --seq-len T --steps N --stages S "
    "--bottleneck KIND ...]";

// The benchmark's defaults, given to the trainer's parser before the user's flags (the last value of a flag wins).
const std::vector<std::string> kDefaults = {"--device", "cuda", "--preset", "d12", "--batch-size", "8",
                                            "--seq-len", "1024", "--dtype", "bf16", "--stages", "1",
                                            "--bottleneck", "none", "--lr", "3e-4", "--steps", "10"};

struct Options {
  int warmup = 2, profile_steps = 2;
  bool compare = false;
  std::vector<std::string> trainer_args;  // kDefaults, then the user's trainer flags
};

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "error: %s\n%s\n", what.c_str(), kUsage);
  std::exit(2);
}

int parse_count(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  const long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || v < 0 || v > 1000000) {
    usage_error(flag + ": not a count: '" + value + "'");
  }
  return static_cast<int>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  o.trainer_args = kDefaults;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::printf("%s\nThe trainer's flags: bazel run //train -- --help\n", kUsage);
      std::exit(0);
    }
    if (a == "--compare") {
      o.compare = true;
    } else if (a == "--warmup" || a == "--profile-steps") {
      if (i + 1 >= argc) usage_error(a + " needs a count after it");
      (a == "--warmup" ? o.warmup : o.profile_steps) = parse_count(a, argv[++i]);
    } else {
      o.trainer_args.push_back(a);
    }
  }
  return o;
}

// The trainer's resolution of the flags, with the refusals that are the benchmark's own.
train::RunConfig run_config(const std::vector<std::string>& args) {
  train::RunConfig c = train::make_run_config(train::parse_flags(args));
  if (c.mpi) throw train::FlagError("gpu_step times --executor local (every stage in this process); drop --executor");
  if (c.flags.resume) throw train::FlagError("gpu_step starts from --seed or --init-from: drop --resume");
  return c;
}

struct Peak {
  double bf16 = 0.0, fp32 = 0.0;  // FLOP/s; 0: unknown
};

Peak peak_for(const std::string& name) {
  // The PCIe and NVL boards ("NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200 NVL") run lower clocks and power
  // (about 756 and 835 TFLOP/s bf16 dense): the SXM peak would understate their MFU. Unknown ("?") rather than wrong.
  if (name.find("PCIe") != std::string::npos || name.find("NVL") != std::string::npos) return {};
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return {989.4e12, 66.9e12};
  if (name.find("A100") != std::string::npos) return {312e12, 19.5e12};
  return {};
}

std::string device_name(const train::RunConfig& c) {
#ifdef RESBM_HAVE_CUDA
  if (c.device == engine::Device::cuda) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) return prop.name;
    return "CUDA device 0";
  }
#endif
  const int threads = train::threads_per_process(c);
  return "CPU, " + std::to_string(threads > 0 ? threads : engine::default_num_threads()) + " threads";
}

// Device memory in use (CUDA; 0 on the CPU, where the figure is not measured).
size_t device_bytes_in_use(const train::RunConfig& c) {
#ifdef RESBM_HAVE_CUDA
  if (c.device == engine::Device::cuda) {
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaDeviceSynchronize() == cudaSuccess && cudaMemGetInfo(&free_bytes, &total_bytes) == cudaSuccess) {
      return total_bytes - free_bytes;
    }
  }
#endif
  (void)c;
  return 0;
}

// One configuration's figures.
struct Measured {
  std::string name;
  double step_ms = 0.0, tokens_per_s = 0.0;
  size_t device_bytes = 0, activation_bytes = 0;
  float first_loss = 0.0f, last_loss = 0.0f;
  double profiled_step_ms = 0.0;                         // mean wall time of the profiled steps
  std::vector<engine::KernelProfiler::Total> breakdown;  // per category: calls and ms of all the profiled steps
  int64_t dropped = 0;                                   // kernel calls the profiler had no room for
};

// Random tokens in [0, V): (M*B, T) inputs and the same stream shifted by one as targets, uploaded once.
void fill_batch(const train::RunConfig& c, int micro_batches, train::BatchBuffer* batch) {
  const size_t n = static_cast<size_t>(c.B) * c.T;
  std::vector<int32_t> stream(n + 1);
  uint64_t x = 42;
  for (int m = 0; m < micro_batches; ++m) {
    for (int32_t& t : stream) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;  // a 64-bit LCG (Knuth's MMIX constants)
      t = static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(c.model.vocab_size));
    }
    batch->set_micro_batch(m, stream.data(), stream.data() + 1);
  }
  batch->upload();
}

// Builds the trainer's device context and backend for `c` (as train/trainer.cc's run_training does), then warms
// up, times c.flags.steps steps and profiles o.profile_steps more. Everything is freed on return.
Measured run(const std::string& name, const train::RunConfig& c, const Options& o) {
  Measured m;
  m.name = name;
  const std::unique_ptr<engine::DeviceContext> device_context = train::make_device_context(c);
  engine::DeviceContext& device = *device_context;
  const int micro_batches = c.M * c.replicas.replicas;  // every replica's, replica-major as in the trainer
  train::BatchBuffer batch(micro_batches, c.B, c.T, c.device);
  fill_batch(c, micro_batches, &batch);

  const size_t before = device_bytes_in_use(c);
  std::unique_ptr<train::Backend> backend = train::make_backend(c, device.ctx());
  const size_t after = device_bytes_in_use(c);  // before any step: cuBLAS's lazy allocations are not counted
  m.device_bytes = after > before ? after - before : 0;
  m.activation_bytes = backend->activation_bytes();

  const float lr = c.flags.lr;
  float loss = 0.0f;  // the latest step's
  auto step = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    loss = backend->step(batch.tokens(), batch.targets(), lr).loss;
    device.synchronize();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  std::vector<double> times(c.flags.steps);  // sized before the loop: the timed steps allocate nothing here
  for (int i = 0; i < o.warmup + c.flags.steps; ++i) {
    const double ms = step();
    if (i == 0) m.first_loss = loss;
    if (i >= o.warmup) times[i - o.warmup] = ms;
  }
  m.last_loss = loss;  // the last timed step's (the profiled steps below train on, unreported)
  std::sort(times.begin(), times.end());
  m.step_ms = times[times.size() / 2];
  m.tokens_per_s = static_cast<double>(c.tokens_per_step()) / (m.step_ms / 1e3);

  if (o.profile_steps > 0) {
    engine::KernelProfiler profiler(c.device);
    device.set_profiler(&profiler);
    double total_ms = 0.0;
    for (int i = 0; i < o.profile_steps; ++i) {
      total_ms += step();
      profiler.collect();  // after step()'s synchronize: every event has completed
    }
    device.set_profiler(nullptr);
    m.profiled_step_ms = total_ms / o.profile_steps;
    m.breakdown = profiler.by_category();
    m.dropped = profiler.dropped();
  }
  return m;
}

std::string percent_or_unknown(double numerator, double denominator) {
  if (!(denominator > 0.0)) return "?";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", 100.0 * numerator / denominator);
  return buf;
}

void print_table(const std::vector<Measured>& rows, const train::RunConfig& c, const Peak& peak) {
  const resbm::GPT2Config& g = c.model;
  const double N = static_cast<double>(resbm::gpt2_num_parameters(g));
  const double attention = static_cast<double>(g.num_layers) * g.channels * c.T;  // L C T
  const double flops = 6.0 * N + 6.0 * attention;  // per token, GPT-2 only
  std::printf("| run | step ms (median) | tokens/s | TFLOP/s (6N+6LCT) | MFU vs bf16 peak | MFU vs fp32 peak | "
              "device MiB | activations MiB | loss first -> last |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (const Measured& m : rows) {
    const double achieved = m.tokens_per_s * flops;
    std::printf("| %s | %.2f | %.0f | %.3f | %s | %s | %s | %.1f | %.4f -> %.4f |\n", m.name.c_str(), m.step_ms,
                m.tokens_per_s, achieved / 1e12, percent_or_unknown(achieved, peak.bf16).c_str(),
                percent_or_unknown(achieved, peak.fp32).c_str(),
                c.device == engine::Device::cuda ? std::to_string(m.device_bytes >> 20).c_str() : "-",
                m.activation_bytes / 1048576.0, m.first_loss, m.last_loss);
  }
  std::printf("(N = %.1fM GPT-2 parameters; with llm.c's 6N+12LCT, first row: %.3f TFLOP/s)\n", N / 1e6,
              rows[0].tokens_per_s * (6.0 * N + 12.0 * attention) / 1e12);
}

// Where a profiled step's time goes, per phase: the kernels' own times (CUDA: GPU time between events), and the
// rest of the step (host work between kernels, copies, waiting) as "outside kernels".
void print_breakdown(const Measured& m, int profile_steps) {
  std::printf("\nbreakdown of %s (mean of %d profiled steps of %.2f ms; the timed median was %.2f ms):\n",
              m.name.c_str(), profile_steps, m.profiled_step_ms, m.step_ms);
  std::printf("| phase | kernel calls per step | ms per step | %% of step |\n|---|---:|---:|---:|\n");
  double kernels_ms = 0.0;  // per step
  for (const auto& t : m.breakdown) {
    const double ms = t.ms / profile_steps;
    std::printf("| %s | %.0f | %.3f | %s |\n", t.name.c_str(), static_cast<double>(t.calls) / profile_steps, ms,
                percent_or_unknown(ms, m.profiled_step_ms).c_str());
    kernels_ms += ms;
  }
  const double outside = std::max(0.0, m.profiled_step_ms - kernels_ms);
  std::printf("| outside kernels | - | %.3f | %s |\n", outside, percent_or_unknown(outside, m.profiled_step_ms).c_str());
  if (m.dropped > 0) {
    std::printf("(%lld kernel calls found the profiler's recording full and are missing above)\n",
                static_cast<long long>(m.dropped));
  }
}

}  // namespace

int main(int argc, char** argv) {
  // As //train: OpenMP's idle workers must sleep, not spin, between the CPU kernels (engine/device.h).
  engine::reexec_with_passive_openmp(argv);
  const Options o = parse(argc, argv);
  std::vector<train::RunConfig> configs;
  std::vector<std::string> names;
  try {
    const train::RunConfig given = run_config(o.trainer_args);
    const std::string bottleneck = resbm::describe_bottleneck(given.bottleneck, given.model.channels);
    if (o.compare) {
      if (given.pipeline.stages < 2 || given.bottleneck.kind == resbm::BottleneckKind::none) {
        usage_error("--compare times --bottleneck none against the given bottleneck: add --stages 2 (or more) and "
                    "--bottleneck resbm (or another kind)");
      }
      std::vector<std::string> none = o.trainer_args;
      none.insert(none.end(), {"--bottleneck", "none"});
      configs.push_back(run_config(none));
      names.push_back("none");
    }
    configs.push_back(given);
    names.push_back(given.pipeline.stages > 1 ? bottleneck : "one stage");
  } catch (const std::exception& e) {
    usage_error(e.what());
  }
  const train::RunConfig& c = configs.back();
  if (c.B < 1 || c.T < 1 || c.flags.steps < 1) usage_error("--batch-size, --seq-len and --steps must be >= 1");
  const std::string device = device_name(c);
  std::printf("gpu_step: %s; GPT-2 %s (%.1fM params, %s), --dtype %s, B=%d T=%d M=%d, S=%d, %s; %d warm-up, %d "
              "timed, %d profiled steps\n",
              device.c_str(), resbm::describe_config(c.model).c_str(), resbm::gpt2_num_parameters(c.model) / 1e6,
              c.init_from.empty() ? "random init" : c.init_from.c_str(),
              c.flags.dtype.c_str(), c.B, c.T, c.M, c.pipeline.stages,
              o.compare ? ("none vs " + names.back()).c_str() : names.back().c_str(), o.warmup, c.flags.steps,
              o.profile_steps);
  std::fflush(stdout);

  std::vector<Measured> rows;
  try {
    for (size_t i = 0; i < configs.size(); ++i) rows.push_back(run(names[i], configs[i], o));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  print_table(rows, c, c.device == engine::Device::cuda ? peak_for(device) : Peak{});
  if (o.compare) {
    const Measured &a = rows[0], &b = rows[1];
    std::printf("bottleneck cost (%s vs none): step time %s, tokens/s %s, device memory %s, activations %s; target "
                "< 2%% of step time and memory\n",
                b.name.c_str(), percent_or_unknown(b.step_ms - a.step_ms, a.step_ms).c_str(),
                percent_or_unknown(b.tokens_per_s - a.tokens_per_s, a.tokens_per_s).c_str(),
                percent_or_unknown(static_cast<double>(b.device_bytes) - a.device_bytes, a.device_bytes).c_str(),
                percent_or_unknown(static_cast<double>(b.activation_bytes) - a.activation_bytes, a.activation_bytes)
                    .c_str());
  }
  if (o.profile_steps > 0) {
    for (const Measured& m : rows) print_breakdown(m, o.profile_steps);
  }
  return 0;
}
