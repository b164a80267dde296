// train/run_config.h: RunConfig, what the flags mean once resolved: the model, bottleneck and pipeline configs,
// absolute paths, and the batch geometry. Also the workspace-relative path rule every path flag follows.
#pragma once

#include <cstdint>
#include <string>

#include "engine/comm/link_emulator.h"
#include "engine/pipeline/pipeline.h"
#include "engine/pipeline/replicas.h"
#include "resbm/bottleneck.h"
#include "resbm/gpt2.h"
#include "train/flags.h"
#include "train/pipeline_launch.h"

namespace train {

// The directory relative paths mean: $BUILD_WORKSPACE_DIRECTORY under `bazel run` (whose working directory is the
// runfiles tree, which users never look at), else the current directory.
std::string workspace_dir();
// path itself when absolute or empty, else workspace_dir()/path.
std::string resolve_path(const std::string& path);

struct RunConfig {
  TrainFlags flags;
  resbm::GPT2Config model;
  resbm::BottleneckConfig bottleneck;
  engine::pipeline::PipelineConfig pipeline;
  engine::pipeline::ReplicaConfig replicas;  // R replicas of the pipeline and their sync (R = 1: none)
  engine::Device device = engine::Device::cpu;  // --device (checked: a CUDA build with a GPU)
  bool bf16_gemms = false;  // --dtype bf16: the matmuls' operands rounded to bf16 (kernels/context.h)
  int B = 0, T = 0, M = 0;  // rows per micro-batch, sequence length, micro-batches per step
  // Processes: local runs every stage here; mpi runs stage = rank of an mpirun job of S ranks.
  bool mpi = false;
  std::string transport;              // between ranks: "mpi" or "nccl" (--transport auto resolved)
  std::string hostfile;               // absolute, or empty
  engine::comm::LinkConfig link;      // the emulated link inside the transport (--link-mbps)
  RealLink real_link;                 // a real tc-shaped link between namespaces (--real-link-mbps)
  std::string pid_dir;                // absolute, or empty
  int max_restarts = 0;               // mpi: times a failed mpirun job is started again from its newest checkpoint
  std::string out_dir;        // absolute
  std::string checkpoint_dir; // out_dir/checkpoints
  std::string log_path;       // out_dir/log.jsonl
  std::string train_pattern;  // absolute globs; empty until the data is prepared (train/data_setup.cc)
  std::string val_pattern;
  std::string vocab_dir;      // encoder.json + vocab.bpe for sampling (empty: sampling prints token ids)
  std::string init_from;      // absolute, or empty
  std::string export_llmc;    // absolute, or empty

  // The scratch (elements) the bf16 matmuls need for their rounded operands: the largest matmul of the model, the
  // bottlenecks and the LM head at B*T rows (kernels::bf16_gemm_scratch_elements).
  size_t bf16_gemm_scratch_elements() const;

  // Every replica's rows: R x M x B sequences of T tokens.
  int64_t tokens_per_step() const { return static_cast<int64_t>(B) * T * M * replicas.replicas; }
  // One line naming what must match for a checkpoint's parameters to load (model, bottleneck, stages) ...
  std::string model_fingerprint() const;
  // ... and for the whole training state to resume (plus batch geometry and optimizer).
  std::string fingerprint() const;
};

// Resolves and validates the flags against the model: unknown preset (lists the valid ones), overrides that make
// an invalid model, T above the model's maximum, a bottleneck ratio not dividing C, stages > layers, CUDA without
// a CUDA build. Throws FlagError with a one-line message saying what to do.
RunConfig make_run_config(const TrainFlags& flags);

}  // namespace train
