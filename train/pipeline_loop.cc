// train/pipeline_loop.cc: run_pipeline, the training loop over a pipeline executor (local or one MPI rank), on the
// CPU or on a GPU per rank.
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>
#include <vector>

#include "data/loader.h"
#include "engine/comm/link_emulator.h"
#include "engine/comm/mpi_transport.h"
#include "engine/comm/nccl_transport/rank_gpu.h"
#include "engine/comm/nccl_transport/stage_transport.h"
#include "engine/device.h"
#include "resbm/stage_model.h"
#include "train/evaluate.h"
#include "train/pipeline_run.h"

namespace train {

namespace {

// The run header's link: emulated (--link-mbps), real (--real-link-mbps: namespaces joined by tc-shaped veths), or
// none (this machine's own network and shared memory).
std::string link_description(const PipelineRunOptions& o) {
  char buf[160];
  if (o.real_link.mbps > 0) {
    std::snprintf(buf, sizeof(buf), "real %g Mbit/s (network namespaces, tc tbf)%s", o.real_link.mbps,
                  o.real_link.latency_ms > 0 ? (" + " + std::to_string(o.real_link.latency_ms) + " ms").c_str() : "");
    return buf;
  }
  if (o.link.mbps > 0) {
    std::snprintf(buf, sizeof(buf), "emulated %g Mbit/s", o.link.mbps);
    return buf;
  }
  return "unthrottled";
}

// The step's tokens: M micro-batches of (B,T), from the shards or from a synthetic stream, in a BatchBuffer (which,
// with --device cuda, copies them to the GPU: the stages read their tokens where their parameters live).
class Batches {
 public:
  Batches(const PipelineRunOptions& o, const resbm::GPT2Config& config, engine::Device device)
      : M_(o.pipeline.micro_batches), B_(o.batch), T_(o.seq_len), rng_(o.seed ^ 0x5eedull),
        buffer_(M_, B_, T_, device) {
    if (!o.train_data.empty()) {
      data::LoaderConfig lc;
      lc.pattern = o.train_data;
      lc.B = B_;
      lc.T = T_;
      lc.vocab_size = config.vocab_size;
      loader_ = std::make_unique<data::DataLoader>(lc);
    }
  }
  // Every process draws the same batches (each stage uses what it needs: tokens first, targets last).
  void next() {
    const size_t n = static_cast<size_t>(B_) * T_;
    std::vector<int32_t> tokens(n), targets(n);
    for (int m = 0; m < M_; ++m) {
      if (loader_) {
        loader_->next_batch();
        buffer_.set_micro_batch(m, loader_->inputs(), loader_->targets());
        continue;
      }
      // Synthetic: a random stream whose targets are the next token (the loss can fall to the unigram level).
      for (size_t i = 0; i <= n; ++i) {
        const int32_t t = static_cast<int32_t>(rng_.next_u64() % 64);  // a 64-token alphabet: learnable
        if (i < n) tokens[i] = t;
        if (i > 0) targets[i - 1] = t;
      }
      buffer_.set_micro_batch(m, tokens.data(), targets.data());
    }
    buffer_.upload();
  }
  const engine::Tensor& tokens() const { return buffer_.tokens(); }
  const engine::Tensor& targets() const { return buffer_.targets(); }

 private:
  int M_, B_, T_;
  resbm::Rng rng_;
  std::unique_ptr<data::DataLoader> loader_;
  BatchBuffer buffer_;
};

// Mean validation loss over val_batches batches of B (grouped M at a time), from the start of the split.
float validation_loss(engine::pipeline::Executor& exec, const PipelineRunOptions& o, data::ValidationLoader& val,
                      BatchBuffer& buffer) {
  const int M = o.pipeline.micro_batches;
  const int groups = std::max(1, o.val_batches / M);
  val.start();
  double sum = 0.0;
  for (int g = 0; g < groups; ++g) {
    for (int m = 0; m < M; ++m) {
      val.next_batch();
      buffer.set_micro_batch(m, val.inputs(), val.targets());
    }
    buffer.upload();
    sum += exec.evaluate(buffer.tokens(), buffer.targets());
  }
  return static_cast<float>(sum / groups);
}

// Where this process trains, for the run header: "cpu on HOST" or "GPU 0 (NVIDIA H200) on HOST". With --device cuda
// it first makes the rank's GPU current (use_rank_gpu), before any CUDA object: the kernels' stream and NCCL's
// communicators live on the current GPU.
std::string open_device(const PipelineRunOptions& o) {
  char host[64] = {0};
  gethostname(host, sizeof(host) - 1);
  if (o.device != "cuda") return std::string("cpu on ") + host;
  try {
    const engine::comm::RankGpu gpu = engine::comm::use_rank_gpu();
    return "GPU " + std::to_string(gpu.index) + " (" + gpu.name + ") on " + host;
  } catch (const std::runtime_error& e) {
    const int rank = std::max(0, engine::comm::mpi_launch_rank());
    throw std::runtime_error("--device cuda: rank " + std::to_string(rank) + " on " + host + ": " + e.what() +
                             "; use --device cpu");
  }
}

// Every stage's open_device() text, in stage order, through the transport's one collective, an allgather of
// doubles: one double per byte (exact), kBytes per stage, zero-padded.
std::vector<std::string> gather_devices(engine::comm::Transport& transport, const std::string& mine) {
  constexpr int kBytes = 128;
  std::vector<double> out(kBytes, 0.0), all(static_cast<size_t>(kBytes) * transport.num_stages());
  for (size_t i = 0; i < mine.size() && i + 1 < kBytes; ++i) out[i] = static_cast<unsigned char>(mine[i]);
  transport.allgather(out.data(), kBytes, all.data());
  std::vector<std::string> devices(transport.num_stages());
  for (int s = 0; s < transport.num_stages(); ++s) {
    for (int i = 0; i < kBytes && all[s * kBytes + i] != 0.0; ++i) {
      devices[s] += static_cast<char>(static_cast<int>(all[s * kBytes + i]));
    }
  }
  return devices;
}

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

}  // namespace

int run_pipeline(const PipelineRunOptions& o, std::vector<PipelineStepRecord>* records) {
  using namespace engine;
  const resbm::GPT2Config config = resbm::gpt2_preset(o.preset);
  validate(o, config);
  const bool local = o.executor == "local";
  const int S = o.pipeline.stages;
  const int hw = static_cast<int>(std::thread::hardware_concurrency());
  const int threads = o.threads > 0 ? o.threads : std::max(1, hw / (local ? 1 : S));
  const std::string here = open_device(o);  // before the DeviceContext: it sets the rank's GPU
  DeviceContext device(o.device == "cuda" ? Device::cuda : Device::cpu, threads);
  // bf16 autocast: every matmul of every stage in this process rounds its operands through the context's scratch.
  if (o.dtype == "bf16") device.enable_bf16_gemms(bf16_gemm_scratch_elements(o, config));
  const kernels::KernelContext& ctx = device.ctx();
  const pipeline::OptimizerFactory optimizer = pipeline::default_adamw(ctx, o.weight_decay);

  std::unique_ptr<pipeline::Executor> exec;
  int rank = 0;
  std::vector<std::string> devices;  // per stage, where it trains (the run header)
  if (local) {
    std::vector<std::unique_ptr<pipeline::StageModule>> stages;
    for (auto& m : resbm::make_stage_models(config, o.bottleneck, o.pipeline, o.seed, device.device())) {
      stages.push_back(std::move(m));
    }
    exec = pipeline::make_local_executor(o.pipeline, std::move(stages), optimizer, ctx, o.batch, o.seq_len);
    devices.assign(S, here);
  } else {
    // The transport's refusals (world size != stages; with nccl, two ranks on one GPU) end the rank with status 3
    // and their message; mpirun then stops the others.
    std::unique_ptr<comm::Transport> transport =
        comm::open_stage_transport(transport_of(o), S, o.pipeline.comm_timeout_s, ctx);
    rank = transport->stage();
    devices = gather_devices(*transport, here);
    if (o.link.mbps > 0 || o.link.latency_ms > 0) {
      transport = std::make_unique<comm::LinkEmulator>(std::move(transport), o.link);
    }
    auto stage = resbm::make_stage_model(config, o.bottleneck, o.pipeline, rank, o.seed, device.device());
    exec = pipeline::make_distributed_executor(o.pipeline, std::move(stage), std::move(transport), optimizer, ctx,
                                               o.batch, o.seq_len);
  }
  if (!o.pid_dir.empty()) {
    for (int s = local ? 0 : rank; s < (local ? S : rank + 1); ++s) {
      const std::string path = o.pid_dir + "/stage" + std::to_string(s) + ".pid";
      FILE* f = std::fopen(path.c_str(), "w");
      if (f == nullptr) {
        std::fprintf(stderr, "cannot write %s: %s\n", path.c_str(), std::strerror(errno));
        return 2;
      }
      std::fprintf(f, "%d\n", static_cast<int>(getpid()));
      std::fclose(f);
    }
  }
  const bool printer = rank == 0;
  const int K = resbm::code_width(o.bottleneck, config.channels);
  if (printer && !o.quiet) {
    std::printf("pipeline | %s | %s | S=%d M=%d %s | B=%d T=%d | %s | threads/process %d | link %s\n",
                o.preset.c_str(), resbm::describe_config(config).c_str(), S, o.pipeline.micro_batches,
                pipeline::schedule_name(o.pipeline.schedule), o.batch, o.seq_len,
                resbm::describe_bottleneck(o.bottleneck, config.channels).c_str(), threads,
                link_description(o).c_str());
    const std::string dtype = o.dtype == "bf16" ? "dtype bf16 (matmul operands rounded to bf16, fp32 accumulation)"
                                                : "dtype fp32";
    std::printf("%s, %s\n",
                local ? ("device " + o.device + ", all stages in this process").c_str()
                      : ("device " + o.device + ", transport " + transport_of(o)).c_str(),
                dtype.c_str());
    for (int s = 0; s < S; ++s) std::printf("  stage %d: %s\n", s, devices[s].c_str());
    std::printf("per boundary, micro-batch and direction: B*T*K*bytes = %d*%d*%d*%s (uncompressed %d*%d*%d*4)\n",
                o.batch, o.seq_len, K, comm::wire_dtype_name(resbm::wire_dtype(o.bottleneck)), o.batch, o.seq_len,
                config.channels);
  }
  FILE* losses = nullptr;
  FILE* log = nullptr;
  if (printer && !o.losses_out.empty() && !(losses = std::fopen(o.losses_out.c_str(), "w"))) {
    std::fprintf(stderr, "cannot write --losses-out %s: %s\n", o.losses_out.c_str(), std::strerror(errno));
    return 2;
  }
  if (printer && !o.log_out.empty() && !(log = std::fopen(o.log_out.c_str(), "w"))) {
    std::fprintf(stderr, "cannot write --log-out %s: %s\n", o.log_out.c_str(), std::strerror(errno));
    return 2;
  }
  std::unique_ptr<data::ValidationLoader> val;
  std::unique_ptr<BatchBuffer> val_tokens;
  if (!o.val_data.empty()) {
    val = std::make_unique<data::ValidationLoader>(o.val_data, o.batch, o.seq_len);
    val_tokens = std::make_unique<BatchBuffer>(o.pipeline.micro_batches, o.batch, o.seq_len, device.device());
  }

  Batches batches(o, config, device.device());
  for (int step = 1; step <= o.steps; ++step) {
    batches.next();
    const pipeline::StepStats st = exec->step(batches.tokens(), batches.targets(), o.lr);
    PipelineStepRecord r;
    r.step = step;
    r.loss = st.loss;
    r.grad_norm = st.grad_norm;
    r.seconds = st.seconds;
    r.forward_bytes = st.wire.total_bytes(comm::Direction::forward);
    r.backward_bytes = st.wire.total_bytes(comm::Direction::backward);
    r.tied_bytes = st.wire.tied_bytes;
    r.forward_ratio = st.compression_ratio(comm::Direction::forward);
    r.backward_ratio = st.compression_ratio(comm::Direction::backward);
    if (records) records->push_back(r);
    if (printer && !o.quiet) {
      std::printf("step %4d/%d | loss %.6f | norm %.4f | %8.1f ms | wire fwd %" PRIu64 " B (x%.1f) bwd %" PRIu64
                  " B (x%.1f) | tied %" PRIu64 " B\n",
                  step, o.steps, r.loss, r.grad_norm, r.seconds * 1e3, r.forward_bytes, r.forward_ratio,
                  r.backward_bytes, r.backward_ratio, r.tied_bytes);
      std::fflush(stdout);
    }
    if (losses) {
      std::fprintf(losses, "%d %.9g %08x\n", step, r.loss, float_bits(r.loss));
      std::fflush(losses);  // others (tests) watch the run's progress through this file
    }
    if (log) {
      std::fprintf(log,
                   "{\"step\": %d, \"loss\": %.9g, \"grad_norm\": %.6g, \"ms\": %.3f, \"fwd_bytes\": %" PRIu64
                   ", \"bwd_bytes\": %" PRIu64 ", \"tied_bytes\": %" PRIu64 ", \"ratio_fwd\": %.4f, \"ratio_bwd\": %.4f}\n",
                   step, r.loss, r.grad_norm, r.seconds * 1e3, r.forward_bytes, r.backward_bytes, r.tied_bytes,
                   r.forward_ratio, r.backward_ratio);
      std::fflush(log);
    }
    if (val && o.val_every > 0 && (step % o.val_every == 0 || step == o.steps)) {
      const float vl = validation_loss(*exec, o, *val, *val_tokens);
      if (printer && !o.quiet) std::printf("step %4d | val loss %.6f\n", step, vl);
      if (log) std::fprintf(log, "{\"step\": %d, \"val_loss\": %.9g}\n", step, vl);
    }
  }
  if (losses) std::fclose(losses);
  if (log) std::fclose(log);
  exec.reset();  // the MPI transport flushes its sends and finalizes here
  return 0;
}

}  // namespace train
