// train/pipeline_run.cc: flags of //train:pipeline and the training loop over a pipeline executor.
#include "train/pipeline_run.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#include "data/loader.h"
#include "engine/comm/mpi_transport.h"
#include "engine/comm/nccl_transport/rank_gpu.h"
#include "engine/device.h"
#include "resbm/stage_model.h"
#include "train/run_config.h"

namespace train {

namespace {

struct Flag {
  const char* help;
  std::function<void(PipelineRunOptions&, const std::string&)> set;
};

int to_int(const std::string& v) { return static_cast<int>(std::stol(v)); }
float to_float(const std::string& v) { return std::stof(v); }

const std::map<std::string, Flag>& flag_table() {
  using O = PipelineRunOptions;
  static const std::map<std::string, Flag> table = {
      {"preset", {"model preset: tiny, d12, d24, d36, d48 (default tiny)", [](O& o, auto& v) { o.preset = v; }}},
      {"seq-len", {"T, tokens per sequence (default 64)", [](O& o, auto& v) { o.seq_len = to_int(v); }}},
      {"batch", {"B, sequences per micro-batch (default 4)", [](O& o, auto& v) { o.batch = to_int(v); }}},
      {"steps", {"optimizer steps (default 10)", [](O& o, auto& v) { o.steps = to_int(v); }}},
      {"lr", {"AdamW learning rate, constant (default 1e-3)", [](O& o, auto& v) { o.lr = to_float(v); }}},
      {"weight-decay", {"AdamW weight decay on matrices/embeddings (default 0.1)",
                        [](O& o, auto& v) { o.weight_decay = to_float(v); }}},
      {"seed", {"initialisation seed (default 1337)", [](O& o, auto& v) { o.seed = std::stoull(v); }}},
      {"threads", {"CPU threads per process (default: cores / processes)", [](O& o, auto& v) { o.threads = to_int(v); }}},
      {"executor", {"mpi (one process per stage under mpirun, default) or local (all stages in this process)",
                    [](O& o, auto& v) { o.executor = v; }}},
      {"device", {"cpu (default) or cuda: each rank trains its stage on a GPU (node-local rank mod GPUs)",
                  [](O& o, auto& v) { o.device = v; }}},
      {"transport", {"mpi (host memory; ranks may share a GPU) or nccl (NCCL between the ranks' GPUs, one GPU "
                     "per stage); default nccl with --device cuda, mpi on the CPU",
                     [](O& o, auto& v) { o.transport = v; }}},
      {"dtype", {"precision of the matmuls: fp32 (default) or bf16 (operands rounded to bf16, fp32 accumulation; "
                 "fp32 master weights, optimizer, layernorm, attention and losses), on the CPU and on GPUs",
                 [](O& o, auto& v) { o.dtype = v; }}},
      {"hostfile", {"mpirun hostfile for a multi-host run (same binary path on every host)",
                    [](O& o, auto& v) { o.hostfile = v; }}},
      {"train-data", {"glob of llm.c token shards (default: a synthetic token stream)",
                      [](O& o, auto& v) { o.train_data = v; }}},
      {"val-data", {"glob of validation shards", [](O& o, auto& v) { o.val_data = v; }}},
      {"val-every", {"evaluate every N steps and at the end (needs --val-data)", [](O& o, auto& v) { o.val_every = to_int(v); }}},
      {"val-batches", {"batches of B per evaluation (default 4)", [](O& o, auto& v) { o.val_batches = to_int(v); }}},
      {"losses-out", {"write 'step loss hexbits' per step to this file", [](O& o, auto& v) { o.losses_out = v; }}},
      {"log-out", {"write a JSONL log (steps and evaluations) to this file", [](O& o, auto& v) { o.log_out = v; }}},
      {"quiet", {"1: no per-step lines", [](O& o, auto& v) { o.quiet = v == "1" || v == "true"; }}},
      {"pid-dir", {"each process writes DIR/stage<s>.pid at start (for tests that signal a stage)",
                   [](O& o, auto& v) { o.pid_dir = v; }}},
      {"stages", {"S, pipeline stages (default 1)", [](O& o, auto& v) { o.pipeline.stages = to_int(v); }}},
      {"micro-batches", {"M, micro-batches per step (default 1)", [](O& o, auto& v) { o.pipeline.micro_batches = to_int(v); }}},
      {"schedule", {"gpipe or 1f1b (default gpipe)",
                    [](O& o, auto& v) { o.pipeline.schedule = engine::pipeline::parse_schedule(v); }}},
      {"boundaries", {"layers where stages 1..S-1 begin, e.g. 3,6,9 (default: even split)",
                      [](O& o, auto& v) { o.pipeline.boundaries = engine::pipeline::parse_boundaries(v); }}},
      {"untie-head", {"1: the last stage's LM head is its own weight, no tied exchange (default 0)",
                      [](O& o, auto& v) { o.pipeline.untie_head = v == "1" || v == "true"; }}},
      {"grad-clip", {"clip the global grad norm (default 1.0; 0: off)", [](O& o, auto& v) { o.pipeline.grad_clip = to_float(v); }}},
      {"comm-timeout-s", {"seconds a stage waits for a peer before exiting with an error (default 300)",
                          [](O& o, auto& v) { o.pipeline.comm_timeout_s = std::stod(v); }}},
      {"bottleneck", {"none, resbm, linear, ae, quant (default resbm)",
                      [](O& o, auto& v) { o.bottleneck.kind = resbm::parse_bottleneck_kind(v); }}},
      {"ratio", {"compression ratio r: code width K = C / r (default 32)", [](O& o, auto& v) { o.bottleneck.ratio = to_int(v); }}},
      {"bottleneck-identity", {"slice, orthogonal, learned (default slice)",
                               [](O& o, auto& v) { o.bottleneck.identity = resbm::parse_identity_path(v); }}},
      {"resbm-layout", {"module (default: encoder/decoder MLPs between unchanged blocks) or fused (IOTA: the boundary blocks' own MLP and attention)",
                        [](O& o, auto& v) { o.bottleneck.layout = resbm::parse_resbm_layout(v); }}},
      {"bottleneck-hidden", {"H of the encoder/decoder MLPs (default max(K, C/4))",
                             [](O& o, auto& v) { o.bottleneck.hidden = to_int(v); }}},
      {"code-dtype", {"wire dtype of codes and their gradients: fp32, bf16, int8 (default fp32)",
                      [](O& o, auto& v) { o.bottleneck.code_dtype = engine::comm::parse_wire_dtype(v); }}},
      {"link-mbps", {"emulated link rate per boundary and direction, Mbit/s (default 0: no emulation)",
                     [](O& o, auto& v) { o.link.mbps = std::stod(v); }}},
      {"link-latency-ms", {"emulated one-way link latency, ms (default 0)", [](O& o, auto& v) { o.link.latency_ms = std::stod(v); }}},
      {"real-link-mbps", {"real link rate per stage, Mbit/s: each rank in a network namespace of its own, its egress "
                          "shaped by tc, MPI over TCP only (root; tools/netlink/netlink.sh; default 0: none)",
                          [](O& o, auto& v) { o.real_link.mbps = std::stod(v); }}},
      {"real-link-latency-ms", {"one-way delay of the real link, ms (tc netem, where the kernel has it; default 0)",
                                [](O& o, auto& v) { o.real_link.latency_ms = std::stod(v); }}},
  };
  return table;
}

}  // namespace

std::string pipeline_usage() {
  std::string s =
      "usage: pipeline [--flag value ...]\n"
      "Pipeline-parallel GPT-2 training with ResBM bottlenecks at the stage boundaries. With --executor mpi (the\n"
      "default) the command re-launches itself under mpirun with one rank per stage; --executor local runs all\n"
      "stages in this process (the reference; same losses, bit for bit). --device cuda trains each stage on its\n"
      "rank's GPU; its default --transport nccl needs one GPU per stage, --transport mpi lets stages share one.\n"
      "--real-link-mbps R runs each rank in a network namespace of its own behind a real link that tc shapes to R\n"
      "Mbit/s (root); --link-mbps R emulates such a link inside the transport instead.\n\n";
  for (const auto& [name, flag] : flag_table()) {
    char line[256];
    std::snprintf(line, sizeof(line), "  --%-20s %s\n", name.c_str(), flag.help);
    s += line;
  }
  return s;
}

PipelineRunOptions parse_pipeline_flags(int argc, char** argv, bool* help) {
  PipelineRunOptions o;
  *help = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + arg + "' (flags are --name value)");
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else {
      if (i + 1 >= argc) throw std::invalid_argument("flag --" + name + " needs a value");
      value = argv[++i];
    }
    auto it = flag_table().find(name);
    if (it == flag_table().end()) throw std::invalid_argument("unknown flag --" + name + " (see --help)");
    try {
      it->second.set(o, value);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("--" + name + " " + value + ": " + e.what());
    } catch (const std::out_of_range&) {
      throw std::invalid_argument("--" + name + " " + value + ": out of range");
    }
  }
  return o;
}

void validate(const PipelineRunOptions& o, const resbm::GPT2Config& config) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument(message);
  };
  require(o.seq_len >= 1 && o.seq_len <= config.max_seq_len,
          "--seq-len must be in [1, " + std::to_string(config.max_seq_len) + "] for this preset");
  require(o.batch >= 1, "--batch must be >= 1");
  require(o.steps >= 0, "--steps must be >= 0");
  require(o.pipeline.micro_batches >= 1, "--micro-batches must be >= 1");
  require(o.executor == "mpi" || o.executor == "local", "--executor must be mpi or local");
  require(o.device == "cpu" || o.device == "cuda", "--device must be cpu or cuda");
  require(o.transport.empty() || o.transport == "mpi" || o.transport == "nccl", "--transport must be mpi or nccl");
  require(o.dtype == "fp32" || o.dtype == "bf16", "--dtype must be fp32 or bf16");
  require(o.transport.empty() || o.executor == "mpi",
          "--transport is for --executor mpi; --executor local runs every stage in this process, with no transport");
  require(transport_of(o) != "nccl" || o.device == "cuda",
          "--transport nccl needs --device cuda (NCCL moves GPU memory); on the CPU use --transport mpi (the default)");
  require(o.pipeline.comm_timeout_s > 0, "--comm-timeout-s must be > 0");
  require(o.val_every == 0 || !o.val_data.empty(), "--val-every needs --val-data");
  require(o.link.latency_ms >= 0 && o.link.mbps >= 0, "--link-mbps and --link-latency-ms must be >= 0");
  require(o.executor == "mpi" || (o.link.mbps == 0 && o.link.latency_ms == 0),
          "the link emulator needs --executor mpi (stages in separate processes overlap compute and transfer)");
  const RealLink& real = o.real_link;
  require(real.mbps >= 0 && real.latency_ms >= 0, "--real-link-mbps and --real-link-latency-ms must be >= 0");
  require(real.latency_ms == 0 || real.mbps > 0,
          "--real-link-latency-ms needs --real-link-mbps (the delay is added to the shaped link)");
  if (real.mbps > 0) {
    require(o.link.mbps == 0 && o.link.latency_ms == 0,
            "--real-link-mbps cannot be combined with --link-mbps or --link-latency-ms: a run measures either the "
            "real link or the emulated one (tools/bench/link_bench runs both, side by side)");
    require(o.hostfile.empty(),
            "--real-link-mbps joins ranks on this machine in network namespaces; with --hostfile the ranks are on "
            "other hosts, and the network between them is the real link already");
    require(o.executor == "mpi", "--real-link-mbps needs --executor mpi (the link joins the stages' processes)");
    require(transport_of(o) == "mpi",
            "--real-link-mbps shapes MPI's TCP traffic; NCCL moves GPU memory over its own transports, which the "
            "shaped link does not see: use --transport mpi");
  }
  engine::pipeline::partition_layers(config.num_layers, o.pipeline.stages, o.pipeline.boundaries);
  resbm::validate_bottleneck(o.bottleneck, config.channels);
}

std::string transport_of(const PipelineRunOptions& o) {
  if (!o.transport.empty()) return o.transport;
  return o.device == "cuda" ? "nccl" : "mpi";
}

size_t bf16_gemm_scratch_elements(const PipelineRunOptions& o, const resbm::GPT2Config& config) {
  // Only what the sizing reads: the model, the bottleneck and the batch geometry.
  RunConfig sizing;
  sizing.model = config;
  sizing.bottleneck = o.bottleneck;
  sizing.B = o.batch;
  sizing.T = o.seq_len;
  return sizing.bf16_gemm_scratch_elements();
}

void require_devices(const PipelineRunOptions& o) {
  if (o.device != "cuda" || !o.hostfile.empty()) return;
  std::string why;
  const int gpus = engine::comm::visible_gpu_count(&why);
  if (gpus == 0) throw std::invalid_argument("--device cuda: " + why + "; use --device cpu");
  const int S = o.pipeline.stages;
  if (o.executor == "mpi" && transport_of(o) == "nccl" && gpus < S) {
    throw std::invalid_argument("--transport nccl needs one GPU per stage: --stages " + std::to_string(S) +
                                " on a machine with " + std::to_string(gpus) +
                                " GPU(s); use --transport mpi (stages share GPUs, codes go through host memory)");
  }
}

}  // namespace train
