// train/pipeline_run.h: the pipeline-parallel training run behind //train:pipeline (and tools/bench/link_bench):
// its options, their parsing, and run_pipeline, which trains either with all stages in this process or as one
// stage among the ranks of an mpirun job.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/comm/link_emulator.h"
#include "engine/pipeline/pipeline.h"
#include "resbm/bottleneck.h"
#include "resbm/gpt2.h"
#include "train/pipeline_launch.h"

namespace train {

struct PipelineRunOptions {
  std::string preset = "tiny";
  int seq_len = 64;                 // T (<= the preset's maxT)
  int batch = 4;                    // B per micro-batch
  int steps = 10;
  float lr = 1e-3f;
  float weight_decay = 0.1f;
  uint64_t seed = 1337;
  int threads = 0;                  // CPU threads per process; 0: cores / processes on this host
  std::string executor = "mpi";     // "mpi": one process per stage under mpirun; "local": all stages here
  std::string device = "cpu";       // "cpu" or "cuda": where each stage's parameters, state and activations live
  std::string transport;            // between ranks: "mpi" or "nccl"; empty: nccl with --device cuda, else mpi
  std::string dtype = "fp32";       // "fp32" or "bf16": matmul operands rounded to bf16 (autocast), as in //train
  std::string hostfile;             // mpirun --hostfile (multi-host)
  std::string train_data;           // glob of llm.c token shards; empty: a synthetic token stream
  std::string val_data;             // glob of validation shards; empty: no validation
  int val_every = 0;                // evaluate every N steps (and at the end) when val_data is set
  int val_batches = 4;              // micro-batch-sized batches per evaluation (a multiple of M is used)
  std::string losses_out;           // file: one line per step "step loss hexbits" (rank 0 / the local run)
  std::string log_out;              // file: JSONL per step and per evaluation
  bool quiet = false;               // no per-step lines (benchmarks)
  std::string pid_dir;              // each process writes DIR/stage<s>.pid (tests and tools that signal a stage)
  engine::pipeline::PipelineConfig pipeline;
  resbm::BottleneckConfig bottleneck;
  engine::comm::LinkConfig link;    // the emulated link (--link-mbps), inside the transport
  RealLink real_link;               // a real link between network namespaces (--real-link-mbps), outside it
};

// Per-step figures returned to callers (the benchmark).
struct PipelineStepRecord {
  int step = 0;
  float loss = 0.0f;
  float grad_norm = 0.0f;
  double seconds = 0.0;
  uint64_t forward_bytes = 0, backward_bytes = 0, tied_bytes = 0;
  double forward_ratio = 0.0, backward_ratio = 0.0;
};

// Parses argv (flags as "--name value" or "--name=value"); throws std::invalid_argument with a message naming
// the flag. Sets *help when --help was given.
PipelineRunOptions parse_pipeline_flags(int argc, char** argv, bool* help);
std::string pipeline_usage();
void validate(const PipelineRunOptions& options, const resbm::GPT2Config& config);
// The transport the ranks use: --transport, or its default for --device.
std::string transport_of(const PipelineRunOptions& options);
// --dtype bf16: the scratch (elements) the bf16 matmuls need for their rounded operands, sized as //train sizes it
// (train::RunConfig::bf16_gemm_scratch_elements: the largest matmul of the model, bottlenecks and LM head at B*T
// rows). Each stage's matmuls are among the whole model's, so one size serves every stage.
size_t bf16_gemm_scratch_elements(const PipelineRunOptions& options, const resbm::GPT2Config& config);
// The checks that ask the CUDA driver, made once before mpirun starts the ranks (so that a refusal is one line, not
// one per rank): --device cuda needs a CUDA build and a GPU; --transport nccl needs a GPU per stage on this machine
// (skipped with --hostfile: the GPUs are on the hosts it names, and each rank checks its own). Throws
// std::invalid_argument.
void require_devices(const PipelineRunOptions& options);

// Runs the training. executor "local": all stages here. executor "mpi": must run inside an mpirun job of
// `stages` ranks (see pipeline_launch.h), this process being stage = rank. Fills records on every rank. Returns
// the process exit status.
int run_pipeline(const PipelineRunOptions& options, std::vector<PipelineStepRecord>* records);

}  // namespace train
