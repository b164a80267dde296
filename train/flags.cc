// train/flags.cc: the flag table (name, target field, help, allowed values), parsing and validation.
#include "train/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

namespace train {
namespace {

enum class Kind { i32, i64, u64, f32, f64, str, boolean };

struct FlagSpec {
  const char* group;  // heading in --help; empty: same group as the previous flag
  const char* name;   // without the leading "--"
  Kind kind;
  void* target;
  const char* help;
  std::vector<std::string> choices;  // allowed values of a string flag; empty: any
};

// The one table of flags. Bound to a TrainFlags so parsing writes straight into it; rebuilt per call (no global
// state), which costs nothing next to a training run.
std::vector<FlagSpec> flag_table(TrainFlags* f) {
  return {
      {"Model", "preset", Kind::str, &f->preset,
       "model preset: tiny (CPU, ~7M params), d12 (GPT-2 124M), d24, d36, d48", {}},
      {"", "num-layers", Kind::i32, &f->num_layers, "override the preset's number of blocks L (0: keep)", {}},
      {"", "num-heads", Kind::i32, &f->num_heads, "override the preset's attention heads NH (0: keep)", {}},
      {"", "channels", Kind::i32, &f->channels, "override the preset's width C (0: keep)", {}},
      {"", "max-seq-len", Kind::i32, &f->max_seq_len, "override the preset's maximum sequence length (0: keep)", {}},
      {"", "init-from", Kind::str, &f->init_from,
       "start from an llm.c model checkpoint (.bin) instead of random init", {}},

      {"Data", "train-data", Kind::str, &f->train_data,
       "glob of llm.c token shards for training (empty: tinyshakespeare)", {}},
      {"", "val-data", Kind::str, &f->val_data,
       "glob of llm.c token shards for validation (empty: tinyshakespeare)", {}},
      {"", "data-dir", Kind::str, &f->data_dir,
       "where tinyshakespeare is prepared when no globs are given (relative: to the workspace)", {}},
      {"", "data-mirror", Kind::str, &f->data_mirror,
       "directory holding the raw dataset files for offline machines (default: $RESBM_DATA_MIRROR)", {}},
      {"", "data-order", Kind::str, &f->data_order, "order of training batches", {"sequential", "shuffled"}},
      {"", "tokenizer", Kind::str, &f->tokenizer,
       "gpt2: GPT-2 BPE (vocabulary 50257); bytes: one token per byte (vocabulary 256, the model's head 256 wide; "
       "the default data is then byte-level tinyshakespeare, see tools/prepare)", {"gpt2", "bytes"}},

      {"Batch", "batch-size", Kind::i32, &f->batch_size, "B: sequences per micro-batch", {}},
      {"", "seq-len", Kind::i32, &f->seq_len, "T: tokens per sequence", {}},
      {"", "total-batch", Kind::i64, &f->total_batch,
       "tokens per optimizer step, a multiple of B*T; the pipeline accumulates total/(B*T) micro-batches "
       "(0: B*T*micro-batches)", {}},
      {"", "steps", Kind::i32, &f->steps, "optimizer steps to train (the length of the lr schedule)", {}},
      {"", "stop-after", Kind::i32, &f->stop_after,
       "stop (with a checkpoint) after this many steps of the --steps schedule; continue later with "
       "--resume (0: run all)", {}},

      {"Optimizer", "optimizer", Kind::str, &f->optimizer,
       "adamw, or muon (Newton-Schulz orthogonalised momentum for 2-D hidden weights, AdamW for the "
       "rest)", {"adamw", "muon"}},
      {"", "lr", Kind::f32, &f->lr, "peak learning rate of AdamW (and of Muon's AdamW part)", {}},
      {"", "warmup-steps", Kind::i32, &f->warmup_steps, "linear warmup steps from 0 to the peak learning rate", {}},
      {"", "final-lr-frac", Kind::f32, &f->final_lr_frac,
       "cosine decay ends at lr * this fraction on the last step", {}},
      {"", "weight-decay", Kind::f32, &f->weight_decay, "decoupled weight decay, applied to 2-D weights only", {}},
      {"", "beta1", Kind::f32, &f->beta1, "AdamW beta1", {}},
      {"", "beta2", Kind::f32, &f->beta2, "AdamW beta2", {}},
      {"", "eps", Kind::f32, &f->eps, "AdamW epsilon", {}},
      {"", "grad-clip", Kind::f32, &f->grad_clip, "clip the global gradient norm to this value (0: no clipping)", {}},
      {"", "muon-lr", Kind::f32, &f->muon_lr, "Muon learning rate for 2-D hidden weights", {}},
      {"", "muon-momentum", Kind::f32, &f->muon_momentum, "Muon momentum", {}},
      {"", "muon-ns-steps", Kind::i32, &f->muon_ns_steps, "Muon Newton-Schulz iterations", {}},
      {"", "muon-nesterov", Kind::boolean, &f->muon_nesterov, "Muon uses Nesterov momentum", {}},
      {"", "seed", Kind::u64, &f->seed,
       "seed of initialisation, data shuffling and sampling (same seed and flags: bitwise same run)", {}},

      {"Evaluation and sampling", "eval-interval", Kind::i32, &f->eval_interval,
       "validation loss every N steps (0: only at the end)", {}},
      {"", "eval-batches", Kind::i32, &f->eval_batches, "validation batches (B x T each) per evaluation", {}},
      {"", "sample-interval", Kind::i32, &f->sample_interval,
       "print a text sample every N steps (0: only at the end)", {}},
      {"", "sample-length", Kind::i32, &f->sample_length, "tokens to generate per sample", {}},
      {"", "temperature", Kind::f32, &f->temperature, "sampling temperature (> 0)", {}},
      {"", "top-k", Kind::i32, &f->top_k, "sample among the k most likely tokens (0: all)", {}},
      {"", "prompt", Kind::str, &f->prompt, "text the samples continue (empty: start from <|endoftext|>)", {}},
      {"", "sample-only", Kind::boolean, &f->sample_only,
       "load the latest checkpoint of --out-dir (or --init-from) and only sample", {}},

      {"Checkpoints and output", "checkpoint-interval", Kind::i32, &f->checkpoint_interval,
       "write a checkpoint every N steps (0: only at the end)", {}},
      {"", "keep-last", Kind::i32, &f->keep_last, "keep the newest N checkpoints, delete older ones", {}},
      {"", "resume", Kind::boolean, &f->resume, "continue from the latest checkpoint in --out-dir, bit-exactly", {}},
      {"", "out-dir", Kind::str, &f->out_dir,
       "output directory for log.jsonl and checkpoints (default: out/<run-name> in the workspace)", {}},
      {"", "run-name", Kind::str, &f->run_name, "name of the run (default output directory, plot legend)", {}},
      {"", "export-llmc", Kind::str, &f->export_llmc,
       "after training, also write the model in llm.c's format to this path", {}},
      {"", "log-interval", Kind::i32, &f->log_interval,
       "print a step line every N steps (the JSONL log gets every step)", {}},

      {"Pipeline and bottleneck", "stages", Kind::i32, &f->stages, "pipeline stages S the blocks are split into", {}},
      {"", "micro-batches", Kind::i32, &f->micro_batches,
       "micro-batches M per optimizer step (gradient accumulation; 0: from --total-batch, else 1)", {}},
      {"", "schedule", Kind::str, &f->schedule, "pipeline schedule", {"gpipe", "1f1b"}},
      {"", "untie-head", Kind::boolean, &f->untie_head,
       "the last stage's LM head is its own weight (lm_head.weight, starting equal to wte): no tied-gradient "
       "exchange between the first and the last stage", {}},
      {"", "bottleneck", Kind::str, &f->bottleneck,
       "what crosses each stage boundary (ssn: Subspace Networks, the peer method; resbm/ssn.h)",
       {"none", "resbm", "linear", "ae", "quant", "ssn"}},
      {"", "ratio", Kind::i32, &f->ratio, "compression ratio r: the code width is K = C / r", {}},
      {"", "code-dtype", Kind::str, &f->code_dtype, "dtype of the code on the wire", {"fp32", "bf16", "int8"}},
      {"", "bottleneck-identity", Kind::str, &f->bottleneck_identity,
       "identity path P of the ResBM module", {"slice", "orthogonal", "learned"}},
      {"", "resbm-layout", Kind::str, &f->resbm_layout,
       "ResBM residual branches: separate MLP module, or fused into the boundary blocks (IOTA)", {"module", "fused"}},
      {"", "resbm-hidden", Kind::i32, &f->resbm_hidden,
       "hidden width of the ResBM module's MLPs (0: the module's default)", {}},
      {"", "code-width", Kind::i32, &f->code_width,
       "the code's width K set directly, any 1 <= K <= C, instead of C / ratio (0: from --ratio); e.g. int8 K = 20 "
       "at d12 is exactly 128x in bytes, its row scale included", {}},
      {"", "reinject-tokens", Kind::str, &f->reinject_tokens,
       "every stage after the first adds an embedding of the token ids to its decoded stream (the last stage "
       "uses its head's weight; a middle stage's own table starts at zeros or as a copy of wte)",
       {"off", "zeros", "copy"}},
      {"", "ssn-match-params", Kind::boolean, &f->ssn_match_params,
       "ssn: widen the constrained blocks' MLPs with the parameters the K-wide embeddings and projections free, so "
       "that the model has as many parameters as --bottleneck none with --untie-head", {}},
      {"", "boundaries", Kind::str, &f->boundaries,
       "layers where stages 1..S-1 begin, e.g. 3,6,9 (empty: an even split)", {}},

      {"Replicas (data parallelism)", "replicas", Kind::i32, &f->replicas,
       "R replicas of the whole pipeline, each training on its own rows of every step's batch (R x M x B rows), "
       "kept in sync by --dp-sync; --executor mpi runs R x S ranks (rank = replica x S + stage)", {}},
      {"", "dp-sync", Kind::str, &f->dp_sync,
       "step: gradients averaged over the replicas every step (synchronous data parallelism); diloco: each replica "
       "trains alone for --inner-steps, then DiLoCo's outer Nesterov step on their averaged change", {"step", "diloco"}},
      {"", "inner-steps", Kind::i32, &f->inner_steps, "DiLoCo: inner steps H between two syncs (the paper: hundreds)",
       {}},
      {"", "outer-lr", Kind::f32, &f->outer_lr, "DiLoCo: the outer step's learning rate", {}},
      {"", "outer-momentum", Kind::f32, &f->outer_momentum, "DiLoCo: the outer step's Nesterov momentum", {}},
      {"", "dp-code", Kind::str, &f->dp_code,
       "DiLoCo: what a sync sends per parameter: fp32, bf16, or int8 (blocks of 256 with an fp32 scale, rounded "
       "stochastically)", {"fp32", "bf16", "int8"}},
      {"", "dp-link-mbps", Kind::f64, &f->dp_link_mbps,
       "emulated data-parallel link in Mbit/s per replica and stage (0: none): a sync waits (R-1) x its payload / "
       "rate + latency", {}},
      {"", "dp-link-latency-ms", Kind::f64, &f->dp_link_latency_ms, "the data-parallel link's one-way latency in ms",
       {}},

      {"Processes and links", "executor", Kind::str, &f->executor,
       "local: every stage in this process; mpi: one process per stage, re-launched under mpirun (the same "
       "losses, bit for bit at equal --threads)", {"local", "mpi"}},
      {"", "hostfile", Kind::str, &f->hostfile,
       "mpirun hostfile for --executor mpi on several hosts (same binary path and --out-dir on every host)", {}},
      {"", "transport", Kind::str, &f->transport,
       "between the ranks of --executor mpi: mpi (host memory; ranks may share a GPU) or nccl (GPU to GPU, one "
       "GPU per stage); auto: nccl with --device cuda, else mpi", {"auto", "mpi", "nccl"}},
      {"", "threads", Kind::i32, &f->threads,
       "CPU threads per process (0: this host's cores divided by its processes); local and mpi runs are "
       "bitwise equal at equal counts", {}},
      {"", "comm-timeout-s", Kind::f64, &f->comm_timeout_s,
       "seconds a stage waits for a peer before the run stops with an error naming it", {}},
      {"", "max-restarts", Kind::i32, &f->max_restarts,
       "when a rank of --executor mpi dies or stalls, start the job again from the newest complete checkpoint "
       "(--resume: the same losses as uninterrupted, bit for bit), up to this many times (0: the failure ends the "
       "run)", {}},
      {"", "link-mbps", Kind::f64, &f->link_mbps,
       "emulated link rate in Mbit/s per boundary and direction (0: none); needs --executor mpi", {}},
      {"", "link-latency-ms", Kind::f64, &f->link_latency_ms, "emulated one-way link latency in ms", {}},
      {"", "link-mode", Kind::str, &f->link_mode,
       "emulated wires: boundary (one per boundary and direction) or node (each stage's uplink and downlink "
       "shared by everything it sends, receives: a home connection)", {"boundary", "node"}},
      {"", "real-link-mbps", Kind::f64, &f->real_link_mbps,
       "a real link: each rank in a network namespace of its own, its egress shaped by tc to this rate, MPI over "
       "TCP only (root; --executor mpi; 0: none)", {}},
      {"", "real-link-latency-ms", Kind::f64, &f->real_link_latency_ms,
       "one-way delay of the real link in ms (tc netem, where the kernel has it)", {}},
      {"", "pid-dir", Kind::str, &f->pid_dir,
       "each process writes DIR/stage<s>.pid at start (for tests and tools that signal one stage)", {}},

      {"Device", "device", Kind::str, &f->device, "where to train", {"cpu", "cuda"}},
      {"", "dtype", Kind::str, &f->dtype,
       "precision: bf16 = llm.c's mixed precision (bf16 activations and weights, fp32 master weights and optimizer "
       "state; AdamW; every bottleneck but ssn); bf16-autocast = fp32 model, matmul operands rounded to bf16",
       {"fp32", "bf16", "bf16-autocast"}},
      {"", "help", Kind::boolean, &f->help, "print this help and exit", {}},
  };
}

std::string join(const std::vector<std::string>& items, const char* sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::i32: case Kind::i64: return "an integer";
    case Kind::u64: return "a non-negative integer";
    case Kind::f32: case Kind::f64: return "a number";
    case Kind::boolean: return "true or false";
    case Kind::str: return "a string";
  }
  return "a value";
}

const char* metavar(Kind kind) {
  switch (kind) {
    case Kind::i32: case Kind::i64: case Kind::u64: return "INT";
    case Kind::f32: case Kind::f64: return "NUM";
    default: return "STR";
  }
}

std::string current_value(const FlagSpec& s) {
  std::ostringstream os;
  switch (s.kind) {
    case Kind::i32: os << *static_cast<int*>(s.target); break;
    case Kind::i64: os << *static_cast<int64_t*>(s.target); break;
    case Kind::u64: os << *static_cast<uint64_t*>(s.target); break;
    case Kind::f32: os << *static_cast<float*>(s.target); break;
    case Kind::f64: os << *static_cast<double*>(s.target); break;
    case Kind::str: os << *static_cast<std::string*>(s.target); break;
    case Kind::boolean: os << (*static_cast<bool*>(s.target) ? "true" : "false"); break;
  }
  return os.str();
}

void set_value(const FlagSpec& s, const std::string& value) {
  const std::string flag = std::string("--") + s.name;
  auto bad = [&]() {
    return FlagError(flag + " expects " + kind_name(s.kind) + ", got '" + value + "'");
  };
  char* end = nullptr;
  errno = 0;
  switch (s.kind) {
    case Kind::i32: case Kind::i64: {
      long long v = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno == ERANGE) throw bad();
      if (s.kind == Kind::i32) {
        if (v < INT32_MIN || v > INT32_MAX) throw bad();
        *static_cast<int*>(s.target) = static_cast<int>(v);
      } else {
        *static_cast<int64_t*>(s.target) = v;
      }
      break;
    }
    case Kind::u64: {
      if (value.empty() || value[0] == '-') throw bad();
      unsigned long long v = std::strtoull(value.c_str(), &end, 10);
      if (*end != '\0' || errno == ERANGE) throw bad();
      *static_cast<uint64_t*>(s.target) = v;
      break;
    }
    case Kind::f32: case Kind::f64: {
      double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) throw bad();
      if (s.kind == Kind::f32) *static_cast<float*>(s.target) = static_cast<float>(v);
      else *static_cast<double*>(s.target) = v;
      break;
    }
    case Kind::boolean:
      if (value == "true" || value == "1") *static_cast<bool*>(s.target) = true;
      else if (value == "false" || value == "0") *static_cast<bool*>(s.target) = false;
      else throw bad();
      break;
    case Kind::str:
      if (!s.choices.empty()) {
        bool ok = false;
        for (const auto& c : s.choices) ok = ok || c == value;
        if (!ok) throw FlagError(flag + " must be one of " + join(s.choices, ", ") + "; got '" + value + "'");
      }
      *static_cast<std::string*>(s.target) = value;
      break;
  }
}

// Checks one integer flag against a lower bound, with the user-facing reason.
void require_at_least(const char* flag, int64_t value, int64_t minimum) {
  if (value < minimum) {
    throw FlagError(std::string("--") + flag + " must be >= " + std::to_string(minimum) + ", got " +
                    std::to_string(value));
  }
}

void validate(const TrainFlags& f) {
  require_at_least("num-layers", f.num_layers, 0);
  require_at_least("num-heads", f.num_heads, 0);
  require_at_least("channels", f.channels, 0);
  require_at_least("max-seq-len", f.max_seq_len, 0);
  require_at_least("batch-size", f.batch_size, 1);
  require_at_least("seq-len", f.seq_len, 1);
  require_at_least("total-batch", f.total_batch, 0);
  require_at_least("steps", f.steps, 0);
  require_at_least("stop-after", f.stop_after, 0);
  require_at_least("warmup-steps", f.warmup_steps, 0);
  require_at_least("muon-ns-steps", f.muon_ns_steps, 1);
  require_at_least("eval-interval", f.eval_interval, 0);
  require_at_least("eval-batches", f.eval_batches, 1);
  require_at_least("sample-interval", f.sample_interval, 0);
  require_at_least("sample-length", f.sample_length, 0);
  require_at_least("top-k", f.top_k, 0);
  require_at_least("checkpoint-interval", f.checkpoint_interval, 0);
  require_at_least("keep-last", f.keep_last, 1);
  require_at_least("log-interval", f.log_interval, 1);
  require_at_least("stages", f.stages, 1);
  require_at_least("micro-batches", f.micro_batches, 0);
  require_at_least("ratio", f.ratio, 1);
  require_at_least("resbm-hidden", f.resbm_hidden, 0);
  require_at_least("code-width", f.code_width, 0);
  require_at_least("replicas", f.replicas, 1);
  require_at_least("inner-steps", f.inner_steps, 0);
  if (!(f.lr > 0.0f)) throw FlagError("--lr must be > 0, got " + std::to_string(f.lr));
  if (!(f.muon_lr > 0.0f)) throw FlagError("--muon-lr must be > 0, got " + std::to_string(f.muon_lr));
  if (f.final_lr_frac < 0.0f || f.final_lr_frac > 1.0f) {
    throw FlagError("--final-lr-frac must be in [0, 1], got " + std::to_string(f.final_lr_frac));
  }
  if (f.weight_decay < 0.0f) throw FlagError("--weight-decay must be >= 0");
  if (f.beta1 < 0.0f || f.beta1 >= 1.0f || f.beta2 < 0.0f || f.beta2 >= 1.0f) {
    throw FlagError("--beta1 and --beta2 must be in [0, 1)");
  }
  if (!(f.eps > 0.0f)) throw FlagError("--eps must be > 0");
  if (f.grad_clip < 0.0f) throw FlagError("--grad-clip must be >= 0 (0 disables clipping)");
  if (f.muon_momentum < 0.0f || f.muon_momentum >= 1.0f) throw FlagError("--muon-momentum must be in [0, 1)");
  if (!(f.temperature > 0.0f)) throw FlagError("--temperature must be > 0");
  require_at_least("threads", f.threads, 0);
  require_at_least("max-restarts", f.max_restarts, 0);
  if (!(f.comm_timeout_s > 0.0)) throw FlagError("--comm-timeout-s must be > 0");
  if (f.link_mbps < 0.0 || f.link_latency_ms < 0.0) throw FlagError("--link-mbps and --link-latency-ms must be >= 0");
  if (f.dp_link_mbps < 0.0 || f.dp_link_latency_ms < 0.0) {
    throw FlagError("--dp-link-mbps and --dp-link-latency-ms must be >= 0");
  }
  if (f.real_link_mbps < 0.0 || f.real_link_latency_ms < 0.0) {
    throw FlagError("--real-link-mbps and --real-link-latency-ms must be >= 0");
  }
  if (f.run_name.empty() || f.run_name.find('/') != std::string::npos) {
    throw FlagError("--run-name must be a non-empty name without '/'; use --out-dir for a path");
  }
  const int64_t bt = f.tokens_per_micro_batch();
  if (f.total_batch > 0 && f.total_batch % bt != 0) {
    throw FlagError("--total-batch " + std::to_string(f.total_batch) + " is not a multiple of B*T = " +
                    std::to_string(bt) + " (--batch-size " + std::to_string(f.batch_size) + " x --seq-len " +
                    std::to_string(f.seq_len) + "); use a multiple such as " +
                    std::to_string((f.total_batch / bt + 1) * bt));
  }
  if (f.total_batch > 0 && f.micro_batches > 0 && f.total_batch != bt * f.micro_batches) {
    throw FlagError("--total-batch " + std::to_string(f.total_batch) + " and --micro-batches " +
                    std::to_string(f.micro_batches) + " disagree: B*T*M = " + std::to_string(bt * f.micro_batches) +
                    "; give only one of them");
  }
  if (f.resume && f.sample_only) throw FlagError("--resume and --sample-only exclude each other; pick one");
  if (f.resume && !f.init_from.empty()) {
    throw FlagError("--resume continues from a checkpoint and --init-from starts a new run; pick one");
  }
}

}  // namespace

int TrainFlags::num_micro_batches() const {
  if (total_batch > 0) return static_cast<int>(total_batch / tokens_per_micro_batch());
  return micro_batches > 0 ? micro_batches : 1;
}

TrainFlags parse_flags(const std::vector<std::string>& args) {
  TrainFlags flags;
  std::vector<FlagSpec> table = flag_table(&flags);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      throw FlagError("unexpected argument '" + arg + "': flags are long (--name value); see --help");
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const auto& s : table) {
      if (name == s.name) spec = &s;
    }
    // "--no-resume" style negation of boolean flags.
    if (spec == nullptr && name.rfind("no-", 0) == 0 && !has_value) {
      for (const auto& s : table) {
        if (s.kind == Kind::boolean && name.substr(3) == s.name) spec = &s;
      }
      if (spec != nullptr) {
        set_value(*spec, "false");
        continue;
      }
    }
    if (spec == nullptr) throw FlagError("unknown flag --" + name + "; run with --help to list the flags");
    if (!has_value) {
      if (spec->kind == Kind::boolean) {
        value = "true";  // a bare boolean flag switches it on; "--untie-head 1" (an explicit 0/1) reads as well
        if (i + 1 < args.size() && (args[i + 1] == "0" || args[i + 1] == "1" || args[i + 1] == "true" ||
                                    args[i + 1] == "false")) {
          value = args[++i];
        }
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        throw FlagError("--" + name + " needs " + kind_name(spec->kind) + " after it");
      }
    }
    set_value(*spec, value);
  }
  if (!flags.help) validate(flags);
  return flags;
}

TrainFlags parse_flags(int argc, const char* const* argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return parse_flags(args);
}

std::string flags_help(const std::string& program) {
  TrainFlags defaults;
  std::ostringstream os;
  os << "usage: " << program << " [--flag value | --flag=value]...\n"
     << "Trains GPT-2 split into pipeline stages joined by ResBM bottlenecks. With no flags: tinyshakespeare,\n"
     << "the tiny preset, 2 stages, ResBM at ratio 8, a few minutes on the CPU.\n";
  for (const auto& s : flag_table(&defaults)) {
    if (s.group[0] != '\0') os << "\n" << s.group << ":\n";
    std::string head = std::string("  --") + s.name;
    if (s.kind != Kind::boolean) {
      head += s.choices.empty() ? std::string(" ") + metavar(s.kind) : " {" + join(s.choices, ",") + "}";
    }
    os << head;
    // Help in a column from 36; a long head pushes it to its own line.
    if (head.size() >= 35) os << "\n" << std::string(36, ' ');
    else os << std::string(36 - head.size(), ' ');
    os << s.help;
    const std::string def = current_value(s);
    if (!def.empty()) os << " [default: " << def << "]";
    os << "\n";
  }
  return os.str();
}

std::vector<std::pair<std::string, std::string>> flag_values(const TrainFlags& flags) {
  TrainFlags copy = flags;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& s : flag_table(&copy)) {
    if (std::string(s.name) == "help") continue;
    out.emplace_back(s.name, current_value(s));
  }
  return out;
}

}  // namespace train
