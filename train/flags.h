// train/flags.h: TrainFlags, every command-line option of the trainer, and the parser that fills it.
//
// Flags are long only (--batch-size 8 or --batch-size=8). Each one is declared once in train/flags.cc with its
// help text, so --help documents all of them and a flag cannot exist without documentation. Parsing checks
// syntax and ranges; an error is one line saying what is wrong and what to do (FlagError), and main exits
// non-zero. Checks that need the model or the data (unknown preset, missing shards) live where those are built
// (train/run_config.cc, train/trainer.cc) and report the same way.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace train {

// A bad command line: the message is one line, already saying what to do.
class FlagError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TrainFlags {
  // Model: a preset, optionally overridden field by field (0 keeps the preset's value).
  std::string preset = "tiny";
  int num_layers = 0;
  int num_heads = 0;
  int channels = 0;
  int max_seq_len = 0;
  std::string init_from;  // llm.c model checkpoint (gpt2_124M.bin format); empty: random init from --seed

  // Data. Empty globs: tinyshakespeare under data_dir, prepared on first use.
  std::string train_data;
  std::string val_data;
  std::string data_dir = "data_cache/tinyshakespeare";
  std::string data_mirror;  // directory holding the raw dataset files; falls back to $RESBM_DATA_MIRROR
  std::string data_order = "shuffled";  // sequential | shuffled
  std::string tokenizer = "gpt2";        // gpt2 (BPE, V = 50257) | bytes (one token per byte, V = 256)

  // Batch: B x T per micro-batch; total_batch tokens per optimizer step. The pipeline accumulates gradients over
  // its M micro-batches, so M = total_batch / (B*T); give either --total-batch or --micro-batches (0: derived).
  int batch_size = 8;
  int seq_len = 64;
  int64_t total_batch = 0;
  int steps = 300;
  int stop_after = 0;  // stop after this many completed steps (a time-boxed part of a longer run); 0: --steps

  // Optimizer and schedule.
  std::string optimizer = "adamw";  // adamw | muon
  float lr = 3e-3f;  // tuned on the tiny preset (train/experiments/muon_vs_adamw.md)
  int warmup_steps = 20;
  float final_lr_frac = 0.1f;  // cosine decays lr to lr * final_lr_frac at the last step
  float weight_decay = 0.0f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float grad_clip = 1.0f;  // 0 disables clipping
  float muon_lr = 0.02f;
  float muon_momentum = 0.95f;
  int muon_ns_steps = 5;
  bool muon_nesterov = true;

  uint64_t seed = 1337;

  // Evaluation and sampling.
  int eval_interval = 50;  // 0: only at the end
  int eval_batches = 5;
  int sample_interval = 0;  // 0: only at the end
  int sample_length = 64;
  float temperature = 1.0f;
  int top_k = 40;  // 0: full distribution
  std::string prompt;
  bool sample_only = false;

  // Checkpoints and output.
  int checkpoint_interval = 100;  // 0: only at the end
  int keep_last = 2;
  bool resume = false;
  std::string out_dir;  // empty: out/<run_name> under the workspace
  std::string run_name = "default";
  std::string export_llmc;
  int log_interval = 1;

  // Pipeline and bottleneck.
  int stages = 2;
  int micro_batches = 0;  // 0: total_batch / (B*T), or 1
  std::string schedule = "gpipe";    // gpipe | 1f1b
  bool untie_head = false;           // last stage's LM head separate from wte: no tied exchange
  std::string bottleneck = "resbm";  // none | resbm | linear | ae | quant
  int ratio = 8;
  std::string code_dtype = "fp32";             // fp32 | bf16 | int8
  std::string bottleneck_identity = "slice";   // slice | orthogonal | learned
  std::string resbm_layout = "module";         // module | fused
  int resbm_hidden = 0;                        // 0: the module's default width
  int code_width = 0;                          // K directly (0: C / ratio)
  std::string reinject_tokens = "off";         // off | zeros | copy
  bool ssn_match_params = false;               // ssn: MLPs widened to none's parameter count

  // Replicas (data parallelism)
  int replicas = 1;                            // R
  std::string dp_sync = "step";                // step | diloco
  int inner_steps = 0;                         // DiLoCo's H (0: unset; --dp-sync diloco needs it)
  float outer_lr = 0.7f;                       // DiLoCo's outer step (the paper's defaults)
  float outer_momentum = 0.9f;
  std::string dp_code = "fp32";                // what a DiLoCo sync sends per parameter: fp32 | bf16 | int8
  double dp_link_mbps = 0.0;                   // emulated data-parallel link between replicas (0: none)
  double dp_link_latency_ms = 0.0;
  std::string boundaries;                      // "3,6,9": layers where stages 1..S-1 begin; empty: even split

  // Processes and links. local: every stage in this process; mpi: one process per stage under mpirun.
  std::string executor = "local";              // local | mpi
  std::string hostfile;                        // mpirun --hostfile (several hosts)
  std::string transport = "auto";              // auto | mpi | nccl (auto: nccl with --device cuda, else mpi)
  int threads = 0;                             // CPU threads per process; 0: this host's cores / its processes
  double comm_timeout_s = 300.0;               // bounded waits for a peer stage
  int max_restarts = 0;                        // mpi: relaunch a failed job from its newest checkpoint, N times
  double link_mbps = 0.0;                      // emulated link (0: none); --executor mpi
  double link_latency_ms = 0.0;
  std::string link_mode = "boundary";          // emulated wires: per boundary and direction, or per node
  double real_link_mbps = 0.0;                 // real tc-shaped link between namespaces (0: none); root
  double real_link_latency_ms = 0.0;
  std::string pid_dir;                         // each process writes DIR/stage<s>.pid (tools that signal a stage)

  // Device.
  std::string device = "cpu";  // cpu | cuda
  std::string dtype = "fp32";  // fp32 | bf16 (llm.c mixed precision) | bf16-autocast

  bool help = false;

  // Derived: B*T per micro-batch, micro-batches (gradient accumulation) and tokens per optimizer step.
  int64_t tokens_per_micro_batch() const { return static_cast<int64_t>(batch_size) * seq_len; }
  int num_micro_batches() const;
  int64_t tokens_per_step() const { return tokens_per_micro_batch() * num_micro_batches(); }
};

// Parses argv[1..argc). Throws FlagError on an unknown flag, a missing or malformed value, a value out of range
// or inconsistent flags (B*T not dividing the total batch, ...). --help sets flags.help and skips validation.
TrainFlags parse_flags(int argc, const char* const* argv);
TrainFlags parse_flags(const std::vector<std::string>& args);

// The --help text: every flag, its default and what it does.
std::string flags_help(const std::string& program);

// Flags as "name=value" pairs in declaration order (the run log's config record, the checkpoint's fingerprint).
std::vector<std::pair<std::string, std::string>> flag_values(const TrainFlags& flags);

}  // namespace train
