// train/run_config.cc: flags -> RunConfig, with the checks that need the model's and bottleneck's rules.
#include "train/run_config.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <stdexcept>

#include "kernels/context.h"
#include "resbm/llmc_checkpoint.h"
#include "resbm/ssn.h"

#ifdef RESBM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace train {

std::string workspace_dir() {
  const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  if (ws != nullptr && ws[0] != '\0') return ws;
  return ".";
}

std::string resolve_path(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  return workspace_dir() + "/" + path;
}

namespace {

std::string join_names(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) out += (i ? ", " : "") + names[i];
  return out;
}

resbm::GPT2Config model_config(const TrainFlags& f) {
  resbm::GPT2Config c;
  try {
    c = resbm::gpt2_preset(f.preset);
  } catch (const std::invalid_argument&) {
    throw FlagError("unknown --preset '" + f.preset + "'; valid presets: " + join_names(resbm::gpt2_preset_names()));
  }
  if (f.num_layers > 0) c.num_layers = f.num_layers;
  if (f.num_heads > 0) c.num_heads = f.num_heads;
  if (f.channels > 0) c.channels = f.channels;
  if (f.max_seq_len > 0) c.max_seq_len = f.max_seq_len;
  if (f.tokenizer == "bytes") {
    c.vocab_size = 256;  // one token per byte; 256 is already a multiple of 128: no padding rows
    c.padded_vocab_size = 256;
  }
  try {
    resbm::validate_config(c);
  } catch (const std::invalid_argument& e) {
    throw FlagError(std::string("invalid model (--preset with --num-layers/--num-heads/--channels): ") + e.what());
  }
  return c;
}

resbm::BottleneckConfig bottleneck_config(const TrainFlags& f, int C) {
  resbm::BottleneckConfig b;
  try {
    b.kind = resbm::parse_bottleneck_kind(f.bottleneck);
    b.identity = resbm::parse_identity_path(f.bottleneck_identity);
    b.layout = resbm::parse_resbm_layout(f.resbm_layout);
    b.code_dtype = engine::comm::parse_wire_dtype(f.code_dtype);
    b.ratio = f.ratio;
    b.code_channels = f.code_width;
    b.reinject = resbm::parse_reinjection(f.reinject_tokens);
    b.hidden = f.resbm_hidden;
    b.ssn_match_params = f.ssn_match_params;
    resbm::validate_bottleneck(b, C);
  } catch (const std::invalid_argument& e) {
    throw FlagError(std::string("invalid bottleneck (--bottleneck, --ratio, --resbm-layout ...): ") + e.what());
  }
  return b;
}

// --device cuda needs a CUDA build and a GPU: say which is missing in one line (the CUDA runtime's own words).
void require_cuda_device() {
#ifdef RESBM_HAVE_CUDA
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    throw FlagError(std::string("--device cuda: no usable GPU: cudaGetDeviceCount: ") + cudaGetErrorString(err) +
                    " (" + cudaGetErrorName(err) + "); use --device cpu");
  }
  if (count == 0) throw FlagError("--device cuda: cudaGetDeviceCount found no GPU; use --device cpu");
#else
  throw FlagError("--device cuda: this binary was built without CUDA (--config=nocuda); build it on a machine with "
                  "the CUDA toolkit, or use --device cpu");
#endif
}

// --executor, --transport, the links: which combinations make sense, and the resolved RunConfig fields.
void resolve_processes(const TrainFlags& f, RunConfig* r) {
  r->mpi = f.executor == "mpi";
  r->transport = f.transport != "auto" ? f.transport : (f.device == "cuda" ? "nccl" : "mpi");
  r->hostfile = resolve_path(f.hostfile);
  r->link.mbps = f.link_mbps;
  r->link.latency_ms = f.link_latency_ms;
  r->link.mode = engine::comm::parse_link_mode(f.link_mode);
  r->real_link.mbps = f.real_link_mbps;
  r->real_link.latency_ms = f.real_link_latency_ms;
  r->pid_dir = resolve_path(f.pid_dir);
  r->max_restarts = f.max_restarts;
  const bool emulated = f.link_mbps > 0.0 || f.link_latency_ms > 0.0;
  const bool real = f.real_link_mbps > 0.0;
  if (!r->mpi) {
    // All stages of a local run share one process: there is no link to slow down, no rank to place.
    if (emulated || real) {
      throw FlagError("--link-mbps/--link-latency-ms/--real-link-mbps need one process per stage: add --executor "
                      "mpi (every stage in this process has no link between them)");
    }
    if (!f.hostfile.empty()) throw FlagError("--hostfile places the ranks of --executor mpi; add --executor mpi");
    if (f.max_restarts > 0) {
      throw FlagError("--max-restarts needs --executor mpi: it starts the mpirun job again when a rank dies or "
                      "stalls (a local run is one process; rerun it with --resume)");
    }
    if (f.transport != "auto") {
      throw FlagError("--transport is for --executor mpi; --executor local runs every stage in this process");
    }
  }
  if (r->transport == "nccl" && f.device != "cuda") {
    throw FlagError("--transport nccl needs --device cuda (NCCL moves GPU memory); on the CPU use --transport mpi");
  }
  if (f.real_link_latency_ms > 0.0 && !real) {
    throw FlagError("--real-link-latency-ms needs --real-link-mbps (the delay is added to the shaped link)");
  }
  if (real && emulated) {
    throw FlagError("--real-link-mbps cannot be combined with --link-mbps or --link-latency-ms: a run measures "
                    "either the real link or the emulated one (tools/bench/link_bench runs both, side by side)");
  }
  if (real && !f.hostfile.empty()) {
    throw FlagError("--real-link-mbps joins ranks on this machine in network namespaces; with --hostfile the "
                    "network between the hosts is the real link already");
  }
  if (real && r->transport != "mpi") {
    throw FlagError("--real-link-mbps shapes MPI's TCP traffic, which NCCL does not use: add --transport mpi");
  }
}

// --export-llmc writes llm.c's format, which has no place for bottleneck modules or an untied head: refused
// before training, not after it.
void check_export(const RunConfig& r) {
  if (r.flags.export_llmc.empty()) return;
  if (r.pipeline.stages > 1 && r.bottleneck.kind != resbm::BottleneckKind::none) {
    throw FlagError("--export-llmc needs --bottleneck none (or --stages 1): llm.c's format cannot hold the " +
                    std::string(resbm::bottleneck_kind_name(r.bottleneck.kind)) + " modules");
  }
  if (r.pipeline.untie_head) {
    throw FlagError("--export-llmc cannot export --untie-head: llm.c's format has a tied head (wte) and no place "
                    "for lm_head.weight; train without --untie-head to export");
  }
}

}  // namespace

std::string RunConfig::model_fingerprint() const {
  return resbm::describe_config(model) + " | " + resbm::describe_bottleneck(bottleneck, model.channels) +
         " | S=" + std::to_string(pipeline.stages);
}

std::string RunConfig::fingerprint() const {
  std::ostringstream os;
  os << model_fingerprint() << " | M=" << M << " B=" << B << " T=" << T << " opt=" << flags.optimizer;
  if (replicas.replicas > 1) os << " | R=" << replicas.replicas << " sync=" << engine::pipeline::dp_sync_name(replicas.sync);
  return os.str();
}

namespace {

// --replicas, --dp-sync, --inner-steps, --outer-lr, --outer-momentum -> the replica config, with their refusals.
engine::pipeline::ReplicaConfig replica_config(const TrainFlags& f, const RunConfig& r) {
  engine::pipeline::ReplicaConfig c;
  c.replicas = f.replicas;
  c.sync = engine::pipeline::parse_dp_sync(f.dp_sync);  // the flag table has checked the name
  const bool diloco = c.sync == engine::pipeline::DpSync::diloco;
  if (diloco && f.inner_steps < 1) {
    throw FlagError("--dp-sync diloco needs --inner-steps H, the inner steps between two syncs (DiLoCo's paper uses "
                    "hundreds; H = 1 with --outer-lr 1 --outer-momentum 0 is parameter averaging every step)");
  }
  if (!diloco && f.inner_steps != 0) throw FlagError("--inner-steps is DiLoCo's: add --dp-sync diloco");
  if (f.replicas > 1 && r.mpi && r.transport != "mpi") {
    throw FlagError("--replicas with --executor mpi syncs the replicas over MPI; the nccl transport does not carry "
                    "them yet: add --transport mpi");
  }
  c.dp_code = engine::comm::parse_wire_dtype(f.dp_code);  // the flag table has checked the name
  if (c.dp_code != engine::comm::WireDType::f32 && !diloco) {
    throw FlagError("--dp-code " + f.dp_code + " compresses DiLoCo's outer sync; --dp-sync step sends fp32 gradients: "
                    "add --dp-sync diloco or drop --dp-code");
  }
  if ((f.dp_link_mbps > 0.0 || f.dp_link_latency_ms > 0.0 || f.dp_code != "fp32") && f.replicas < 2) {
    throw FlagError("--dp-code and --dp-link-mbps are for the sync between replicas: add --replicas 2 or more");
  }
  c.dp_code_seed = f.seed ^ 0xD1C0D1C0ull;  // the int8 payload's rounding, reproducible from --seed
  c.dp_link_mbps = f.dp_link_mbps;
  c.dp_link_latency_ms = f.dp_link_latency_ms;
  if (!(f.outer_lr > 0.0f) || !(f.outer_momentum >= 0.0f && f.outer_momentum < 1.0f)) {
    throw FlagError("--outer-lr must be > 0 and --outer-momentum in [0, 1), got " + std::to_string(f.outer_lr) +
                    " and " + std::to_string(f.outer_momentum));
  }
  c.inner_steps = diloco ? f.inner_steps : 1;
  c.outer.outer_lr = f.outer_lr;
  c.outer.outer_momentum = f.outer_momentum;
  return c;
}

}  // namespace

RunConfig make_run_config(const TrainFlags& flags) {
  RunConfig r;
  r.flags = flags;
  r.model = model_config(flags);
  if (!flags.init_from.empty()) {
    // The checkpoint defines the model; explicit size flags must agree with it (the preset is ignored).
    const resbm::GPT2Config file = resbm::read_llmc_config(resolve_path(flags.init_from));
    const std::pair<int, int> checks[] = {{flags.num_layers, file.num_layers}, {flags.num_heads, file.num_heads},
                                          {flags.channels, file.channels}, {flags.max_seq_len, file.max_seq_len}};
    for (const auto& c : checks) {
      if (c.first != 0 && c.first != c.second) {
        throw FlagError("model size flags disagree with --init-from " + flags.init_from + " (" +
                        resbm::describe_config(file) + "); drop them");
      }
    }
    r.model = file;
  }
  if (flags.seq_len > r.model.max_seq_len) {
    throw FlagError("--seq-len " + std::to_string(flags.seq_len) + " exceeds the model's maximum sequence length " +
                    std::to_string(r.model.max_seq_len) + "; lower --seq-len or raise --max-seq-len");
  }
  if (flags.stages > r.model.num_layers) {
    throw FlagError("--stages " + std::to_string(flags.stages) + " exceeds the model's " +
                    std::to_string(r.model.num_layers) + " layers; every stage needs at least one block");
  }
  r.bottleneck = bottleneck_config(flags, r.model.channels);
  // bf16: llm.c's mixed precision (docs/bf16_policy.md): bf16 activations and weight copies, fp32 master weights,
  // optimizer state, statistics and losses; the CPU twins compute what the CUDA kernels do.
  // bf16-autocast: the fp32 model with each matmul's operands rounded to bf16 (fp32 accumulation; everything else
  // fp32). On the CPU the same numbers are computed with sgemm on rounded operands: no faster, but exact.
  r.bf16_gemms = flags.dtype == "bf16-autocast";
  if (flags.dtype == "bf16") {
    r.pipeline.precision = engine::Precision::bf16;
    const char* other = "; use --dtype fp32 or --dtype bf16-autocast";
    if (r.bottleneck.kind == resbm::BottleneckKind::ssn) {
      throw FlagError(std::string("--dtype bf16 does not run --bottleneck ssn yet") + other);
    }
    if (flags.optimizer == "muon") {
      throw FlagError(std::string("--dtype bf16 runs AdamW only so far (Muon's update does not yet write the bf16 "
                                  "copy of the weights)") + other);
    }
    if (flags.replicas > 1 && flags.dp_sync != "step") {
      throw FlagError(std::string("--dtype bf16 with --replicas runs --dp-sync step only so far (an outer step "
                                  "would leave the bf16 copy of the weights stale)") + other);
    }
    // The codes are bf16 tensors: an fp32 wire would only widen them, so it carries their bf16 bits
    // (resbm::StageModel::wire_dtype); the run table says so.
    if (r.bottleneck.code_dtype == engine::comm::WireDType::f32) r.bottleneck.code_dtype = engine::comm::WireDType::bf16;
  }
  if (flags.device == "cuda") {
    require_cuda_device();  // after the cheap checks: probing the driver takes a moment
    r.device = engine::Device::cuda;
  }
  r.B = flags.batch_size;
  r.T = flags.seq_len;
  r.M = flags.num_micro_batches();
  r.pipeline.stages = flags.stages;
  r.pipeline.micro_batches = r.M;
  r.pipeline.schedule = engine::pipeline::parse_schedule(flags.schedule);
  r.pipeline.grad_clip = flags.grad_clip;
  r.pipeline.untie_head = flags.untie_head;
  r.pipeline.code_rounding_seed = flags.seed;  // int8 code gradients: stochastic rounding, reproducible from --seed
  r.pipeline.comm_timeout_s = flags.comm_timeout_s;
  try {
    r.pipeline.boundaries = engine::pipeline::parse_boundaries(flags.boundaries);
    const std::vector<int> first =
        engine::pipeline::partition_layers(r.model.num_layers, flags.stages, r.pipeline.boundaries);
    r.bottleneck.ssn_blocks = first[flags.stages - 1];  // ssn: the blocks before the last boundary
  } catch (const std::invalid_argument& e) {
    throw FlagError(std::string("--boundaries '") + flags.boundaries + "': " + e.what());
  }
  if (r.bottleneck.kind == resbm::BottleneckKind::ssn) {
    if (flags.stages < 2) {
      throw FlagError("--bottleneck ssn needs --stages >= 2: its subspace constrains the blocks before a boundary, "
                      "and one stage has none");
    }
    if (!flags.init_from.empty()) {
      throw FlagError("--init-from loads GPT-2's C-wide embeddings and output projections, which --bottleneck ssn "
                      "replaces by K-wide ones: train ssn from --seed");
    }
  }
  resolve_processes(flags, &r);
  r.replicas = replica_config(flags, r);
  check_export(r);

  r.out_dir = resolve_path(flags.out_dir.empty() ? "out/" + flags.run_name : flags.out_dir);
  r.checkpoint_dir = r.out_dir + "/checkpoints";
  r.log_path = r.out_dir + "/log.jsonl";
  r.train_pattern = resolve_path(flags.train_data);
  r.val_pattern = resolve_path(flags.val_data);
  r.init_from = resolve_path(flags.init_from);
  r.export_llmc = resolve_path(flags.export_llmc);
  return r;
}

size_t RunConfig::bf16_gemm_scratch_elements() const {
  // Every matmul's input width is one of C, 4C, H, K and its output width one of C, 3C, 4C, H, K, or Vp for the
  // LM head (resbm/gpt2.cc, resbm/bottleneck*.cc): the max over all pairs bounds them all without listing layouts.
  const size_t N = static_cast<size_t>(B) * T, C = model.channels;
  const size_t H = resbm::hidden_width(bottleneck, model.channels), K = resbm::code_width(bottleneck, model.channels);
  size_t most = kernels::bf16_gemm_scratch_elements(N, C, model.padded_vocab_size);
  // ssn's constrained MLPs are Hs wide (4C, or wider with --ssn-match-params).
  const size_t Hs = bottleneck.kind == resbm::BottleneckKind::ssn
                        ? static_cast<size_t>(resbm::ssn_mlp_hidden(model, static_cast<int>(K), bottleneck.ssn_blocks,
                                                                    bottleneck.ssn_match_params))
                        : 4 * C;
  const size_t widths_in[] = {C, 4 * C, H, K, Hs};
  const size_t widths_out[] = {C, 3 * C, 4 * C, H, K, Hs};
  for (size_t in : widths_in) {
    for (size_t out : widths_out) most = std::max(most, kernels::bf16_gemm_scratch_elements(N, in, out));
  }
  return most;
}

}  // namespace train
