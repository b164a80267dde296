// tools/bench/gpu_step/gpu_step.cc: whole-step GPT-2 benchmark on one GPU: tokens/s, MFU and memory of forward +
// backward + AdamW, llm.c-style flat model on random tokens; bf16 mixed precision (gpt2_step_bf16.h, llm.c's
// train_gpt2.cu rules) or fp32 (gpt2_step.h), optionally with ResBM bottlenecks, optionally on llm.c's weights.
//
//   gpu_step [B] [T] [steps] [L C NH] [flags]      defaults 8 1024 10, GPT-2 124M (12 768 12)
//     --dtype bf16|fp32      the step's precision (default bf16)
//     --attention flash|cublas  bf16 attention: the fused flash kernel (default; keeps the row log-sum-exp) or
//                            cuBLAS GEMMs + softmax (stores the (B,NH,T,T) probabilities)
//     --bottlenecks N        N ResBM boundaries spread evenly between the L blocks (bf16 only; default 0)
//     --ratio R              their code width K = C / R (default 32); hidden width max(K, C/4)
//     --load FILE            llm.c's fp32 model file (gpt2_124M.bin, version 3): its weights and config (L, C, NH,
//                            V, Vp, maxT) replace the defaults and L C NH; the bottlenecks start as at init
//     --compare              bf16 without bottlenecks, then bf16 with --bottlenecks N, in this process one after the
//                            other: both rows, and what the bottlenecks cost in time and memory, in %
//
// MFU = achieved FLOP/s / peak, FLOPs per token = 6 N + 6 L C T (the project's issue; llm.c counts the attention
// term as 12 L C T, printed too), N = the GPT-2 parameters: a bottleneck's FLOPs count as overhead, so that its cost
// shows as lost MFU. Peaks by device name (dense): H100/H200 SXM 989 TFLOP/s bf16 and 67 fp32 (non-tensor); A100
// 312 / 19.5. Memory: the step's buffers, counted exactly (parameters, optimizer state, activations, scratch), and
// the device memory in use right after the step's constructor minus before it (cudaMemGetInfo: the buffers plus the
// allocator's rounding). The kernel context's workspace is outside both: it is there before and after every step.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/context.h"
#include "kernels/cuda/cuda_context.h"
#include "tools/bench/gpu_step/cuda_kernel_set.h"
#include "tools/bench/gpu_step/gpt2_step.h"
#include "tools/bench/gpu_step/gpt2_step_bf16.h"
#include "tools/bench/gpu_step/llmc_model_file.h"

#ifdef RESBM_HAVE_CUDA

namespace {

using gpu_step::CudaKernels;

constexpr uint64_t kSeed = 1337;
constexpr float kLr = 3e-4f;

struct Options {
  int B = 8, T = 1024, steps = 10;
  gpu_step::Config cfg;
  bool bf16 = true, compare = false;
  gpu_step::Bottlenecks bn{0, 32};
  gpu_step::Attention attention = gpu_step::Attention::flash;
  bool attention_given = false;
  std::string load;
};

void usage_error(const std::string& what) {
  std::fprintf(stderr,
               "gpu_step: %s\nusage: gpu_step [B] [T] [steps] [L C NH] [--dtype bf16|fp32] [--attention flash|cublas] "
               "[--bottlenecks N] [--ratio R] [--load llmc_model.bin] [--compare]\n",
               what.c_str());
  std::exit(2);
}

int parse_int(const std::string& flag, const char* value) {
  char* end = nullptr;
  const long v = std::strtol(value, &end, 10);
  if (*value == '\0' || *end != '\0' || v < 0 || v > 1 << 30) usage_error(flag + ": not a count: '" + value + "'");
  return static_cast<int>(v);
}

Options parse(int argc, char** argv) {
  Options o;
  std::vector<int> positional;
  for (int i = 1; i < argc; i++) {
    const std::string a = argv[i];
    if (a.rfind("--", 0) != 0) {
      positional.push_back(parse_int("argument " + std::to_string(positional.size() + 1), argv[i]));
      continue;
    }
    if (a == "--compare") {
      o.compare = true;
      continue;
    }
    if (i + 1 >= argc) usage_error(a + " needs a value");
    const char* v = argv[++i];
    if (a == "--dtype") {
      if (std::strcmp(v, "bf16") != 0 && std::strcmp(v, "fp32") != 0) usage_error("--dtype: bf16 or fp32");
      o.bf16 = std::strcmp(v, "bf16") == 0;
    } else if (a == "--attention") {
      if (std::strcmp(v, "flash") != 0 && std::strcmp(v, "cublas") != 0) usage_error("--attention: flash or cublas");
      o.attention = gpu_step::parse_attention(v);
      o.attention_given = true;
    } else if (a == "--bottlenecks") {
      o.bn.count = parse_int(a, v);
    } else if (a == "--ratio") {
      o.bn.ratio = parse_int(a, v);
    } else if (a == "--load") {
      o.load = v;
    } else {
      usage_error("unknown flag " + a);
    }
  }
  if (positional.size() > 6 || positional.size() == 4 || positional.size() == 5) {
    usage_error("positional arguments: B T steps, optionally followed by all three of L C NH");
  }
  if (positional.size() > 0) o.B = positional[0];
  if (positional.size() > 1) o.T = positional[1];
  if (positional.size() > 2) o.steps = positional[2];
  if (positional.size() == 6) o.cfg.L = positional[3], o.cfg.C = positional[4], o.cfg.NH = positional[5];
  if (o.B < 1 || o.T < 1 || o.steps < 1) usage_error("B, T and steps must be >= 1");
  if (!o.load.empty() && positional.size() == 6) usage_error("--load takes L C NH from the file: drop them");
  if (!o.bf16 && (o.bn.count > 0 || o.compare)) usage_error("bottlenecks and --compare run the bf16 step only");
  if (!o.bf16 && o.attention_given) usage_error("--attention chooses the bf16 step's kernels (fp32 has one)");
  if (o.compare && o.bn.count == 0) usage_error("--compare needs --bottlenecks N >= 1 (what to compare against)");
  o.cfg.max_T = std::max(o.cfg.max_T, o.T);
  return o;
}

struct Peak {
  double bf16, fp32;
};

Peak peak_for(const std::string& name) {
  // The PCIe and NVL boards ("NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA H200 NVL") run lower clocks and power
  // (about 756 and 835 TFLOP/s bf16 dense): the SXM peak would understate their MFU. Unknown ("?") rather than wrong.
  if (name.find("PCIe") != std::string::npos || name.find("NVL") != std::string::npos) return {0.0, 0.0};
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return {989.4e12, 66.9e12};
  if (name.find("A100") != std::string::npos) return {312e12, 19.5e12};
  return {0.0, 0.0};
}

size_t device_bytes_in_use() {
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return total_bytes - free_bytes;
}

// One configuration's figures.
struct Measured {
  std::string name;
  double step_ms = 0, tok_s = 0;
  size_t buffer_bytes = 0, device_bytes = 0, bottleneck_bytes = 0;
  float first_loss = 0, last_loss = 0;
};

// Steps 1 (its loss is the first loss) and 2 warm up (cuBLASLt heuristics, caches); the median of `steps` timed
// steps is the step time.
template <class Step>
void time_steps(Step& model, const Options& o, cudaStream_t stream, Measured* m) {
  model.step(1, kLr);
  m->first_loss = model.loss();
  model.step(2, kLr);
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(o.steps);
  for (int i = 0; i < o.steps; i++) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    model.step(3 + i, kLr);
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  m->last_loss = model.loss();
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  m->step_ms = ms[o.steps / 2];
  m->tok_s = static_cast<double>(o.B) * o.T / (m->step_ms / 1e3);
}

// Builds the step (device memory measured around its allocation), loads or initialises its weights, sets the
// batch, times it; the step's memory is freed on return.
template <class Step, class... Extra>
Measured run(const std::string& name, const Options& o, const kernels::KernelContext& ctx,
             const std::vector<float>& llmc_params, const std::vector<int32_t>& tokens, Extra... extra) {
  Measured m;
  m.name = name;
  CUDA_CHECK(cudaDeviceSynchronize());
  const size_t before = device_bytes_in_use();
  Step model(ctx, o.cfg, o.B, o.T, extra...);
  // Right after the allocation, before any kernel runs: lazy allocations inside cuBLAS on the first calls would
  // otherwise be charged to whichever configuration runs first.
  CUDA_CHECK(cudaDeviceSynchronize());
  const size_t after = device_bytes_in_use();
  m.device_bytes = after > before ? after - before : 0;
  if (llmc_params.empty()) {
    model.init_params(kSeed);
  } else if constexpr (std::is_same_v<Step, gpu_step::Gpt2Step<CudaKernels>>) {
    model.set_params(llmc_params.data());
  } else {
    model.set_gpt2_params(llmc_params.data(), kSeed);  // the bottlenecks (if any) start as at init
  }
  if constexpr (!std::is_same_v<Step, gpu_step::Gpt2Step<CudaKernels>>) {
    m.bottleneck_bytes = model.bottleneck_bytes();
  }
  model.set_batch(tokens.data(), tokens.data() + 1);
  time_steps(model, o, static_cast<cudaStream_t>(ctx.cuda_stream), &m);
  m.buffer_bytes = model.buffer_bytes();
  return m;
}

std::string percent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", 100.0 * x);
  return buf;
}

void print_table(const std::vector<Measured>& rows, const Options& o, const Peak& peak) {
  const double flops = 6.0 * gpu_step::num_params(o.cfg) + 6.0 * o.cfg.L * o.cfg.C * o.T;  // per token, GPT-2 only
  std::printf("| run | step ms (median) | tokens/s | TFLOP/s (6N+6LCT) | MFU vs bf16 peak | MFU vs fp32 peak "
              "| step buffers MiB | device MiB | loss first -> last |\n");
  std::printf("|---|---:|---:|---:|---:|---:|---:|---:|---|\n");
  for (const Measured& m : rows) {
    const double achieved = m.tok_s * flops;
    std::printf("| %s | %.2f | %.0f | %.1f | %s | %s | %.1f | %.1f | %.4f -> %.4f |\n", m.name.c_str(), m.step_ms,
                m.tok_s, achieved / 1e12, peak.bf16 > 0 ? percent(achieved / peak.bf16).c_str() : "?",
                peak.fp32 > 0 ? percent(achieved / peak.fp32).c_str() : "?", m.buffer_bytes / 1048576.0,
                m.device_bytes / 1048576.0, m.first_loss, m.last_loss);
  }
  std::printf("(with llm.c's 6N+12LCT, first row: %.1f TFLOP/s)\n",
              rows[0].tok_s * (6.0 * gpu_step::num_params(o.cfg) + 12.0 * o.cfg.L * o.cfg.C * o.T) / 1e12);
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  std::vector<float> llmc_params;
  try {
    if (!o.load.empty()) {
      o.cfg = gpu_step::read_llmc_model(o.load, &llmc_params);
      if (o.T > o.cfg.max_T) {
        usage_error("T=" + std::to_string(o.T) + " exceeds the model's maxT=" + std::to_string(o.cfg.max_T) +
                    " (" + o.load + ")");
      }
    }
    if (o.bf16) gpu_step::validate(o.cfg, o.bn.count > 0 ? o.bn : gpu_step::Bottlenecks{}, o.attention);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_step: %s\n", e.what());
    return 2;
  }

  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  // The workspace (cuBLASLt's, and the cuBLAS attention's fp32 (B,NH,T,T) scores and their gradient) holds the
  // whole batch's scores, so that attention runs as one batched GEMM rather than row by row; flash attention needs
  // only its backward's (B,NH,T) fp32 row dots. Not counted in the step's memory below: it exists before and after
  // the step, as llm.c's cuBLAS workspace does.
  const bool flash = o.bf16 && o.attention == gpu_step::Attention::flash;
  const size_t attention_bytes =
      static_cast<size_t>(o.B) * o.cfg.NH * o.T * (flash ? 1 : static_cast<size_t>(o.T)) * sizeof(float);
  kernels::KernelContext ctx = kernels::cuda::make_cuda_context(std::max<size_t>(64ull << 20, attention_bytes));

  const size_t N = static_cast<size_t>(o.B) * o.T;
  std::vector<int32_t> tokens(N + 1);  // (B*T + 1): inputs, and the same shifted by one as targets
  uint64_t x = 42;
  for (auto& t : tokens) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((x >> 33) % o.cfg.V);
  }
  const int K = gpu_step::code_width(o.cfg, o.bn), H = gpu_step::hidden_width(o.cfg, o.bn);
  const std::string bn_name = std::to_string(o.bn.count) + " bottleneck" + (o.bn.count == 1 ? "" : "s") + " r=" +
                              std::to_string(o.bn.ratio) + " K=" + std::to_string(K) + " H=" + std::to_string(H);
  std::printf("gpu_step: %s, GPT-2 L=%d C=%d NH=%d V=%d (%.1fM params%s), B=%d T=%d, attention %s, %s, %d timed "
              "steps\n",
              prop.name, o.cfg.L, o.cfg.C, o.cfg.NH, o.cfg.V, gpu_step::num_params(o.cfg) / 1e6,
              o.load.empty() ? ", random init" : (", weights of " + o.load).c_str(), o.B, o.T,
              o.bf16 ? gpu_step::attention_name(o.attention) : "fp32 cublas",
              o.compare ? ("bf16 vs bf16 + " + bn_name).c_str()
              : !o.bf16 ? "fp32"
              : o.bn.count > 0 ? ("bf16 + " + bn_name).c_str()
                               : "bf16",
              o.steps);

  using Bf16 = gpu_step::Gpt2StepBf16<CudaKernels>;
  std::vector<Measured> rows;
  if (!o.bf16) {
    rows.push_back(run<gpu_step::Gpt2Step<CudaKernels>>("fp32", o, ctx, llmc_params, tokens));
  } else {
    if (o.compare || o.bn.count == 0) {
      rows.push_back(run<Bf16>("bf16", o, ctx, llmc_params, tokens, gpu_step::Bottlenecks{0, 1}, o.attention));
    }
    if (o.bn.count > 0) {
      rows.push_back(run<Bf16>("bf16 + " + bn_name, o, ctx, llmc_params, tokens, o.bn, o.attention));
    }
  }
  print_table(rows, o, peak_for(prop.name));
  if (o.compare) {
    const Measured &a = rows[0], &b = rows[1];
    std::printf("ResBM cost (%s vs none): step time %s, tokens/s %s, step buffers %s (%.1f MiB, of which the "
                "bottlenecks' own %.1f MiB), device memory %s; target < 2%% of step time and memory\n",
                bn_name.c_str(), percent(b.step_ms / a.step_ms - 1).c_str(), percent(b.tok_s / a.tok_s - 1).c_str(),
                percent(static_cast<double>(b.buffer_bytes) / a.buffer_bytes - 1).c_str(),
                (static_cast<double>(b.buffer_bytes) - a.buffer_bytes) / 1048576.0, b.bottleneck_bytes / 1048576.0,
                percent(static_cast<double>(b.device_bytes) / a.device_bytes - 1).c_str());
  }
  kernels::cuda::destroy_cuda_context(ctx);
  return 0;
}

#else  // RESBM_HAVE_CUDA

int main() {
  std::printf("gpu_step: built without CUDA (--config=nocuda): nothing to benchmark\n");
  return 0;
}

#endif
