// train/trainer.cc: the training loop and the run around it, the same in every process of a run (under
// --executor mpi each rank runs it for its stage; rank 0 prints and logs).
#include "train/trainer.h"

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "data/loader.h"
#include "data/tokenizer.h"
#include "engine/comm/nccl_transport/rank_gpu.h"
#include "engine/device.h"
#include "engine/optim/schedule.h"
#include "train/backend.h"
#include "train/checkpoint.h"
#include "train/console.h"
#include "train/data_setup.h"
#include "train/evaluate.h"
#include "train/llmc_export.h"
#include "train/run_log.h"
#include "train/run_start.h"
#include "train/sample.h"
#include "train/train_state.h"

namespace train {
namespace {

std::unique_ptr<data::Tokenizer> load_tokenizer(const RunConfig& c) {
  if (c.vocab_dir.empty()) return nullptr;
  return std::make_unique<data::Tokenizer>(data::Tokenizer::from_dir(c.vocab_dir));
}

// Samples a continuation of --prompt (every process takes part; rank 0 prints). The sampler's seed mixes --seed
// and the step, so a resumed run prints the same sample as an uninterrupted one.
void print_sample(const RunConfig& c, Backend& backend, const data::Tokenizer* tokenizer, int64_t step) {
  SampleOptions options;
  options.length = c.flags.sample_length;
  options.temperature = c.flags.temperature;
  options.top_k = c.flags.top_k;
  options.seed = c.flags.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(step);
  options.max_context = c.T;
  const bool byte_tokens = c.flags.tokenizer == "bytes";
  if (byte_tokens) options.start_token = '\n';
  const std::vector<int32_t> prompt = encode_prompt(tokenizer, byte_tokens, c.flags.prompt);
  const std::vector<int32_t> ids = generate(backend, prompt, c.model.vocab_size, options);
  if (!backend.is_rank0()) return;
  std::printf("---- sample at step %lld (temperature %g, top-k %d) ----\n%s%s\n----\n",
              static_cast<long long>(step), c.flags.temperature, c.flags.top_k, c.flags.prompt.c_str(),
              decode_tokens(tokenizer, byte_tokens, ids).c_str());
  std::fflush(stdout);
}

RunTableInputs table_inputs(Backend& backend) {
  RunTableInputs in;
  in.num_parameters = backend.num_parameters();
  std::vector<double> mine;
  for (size_t i = 0; i < backend.param_stores().size(); ++i) {
    mine.push_back(2.0 * static_cast<double>(backend.param_stores()[i]->all_values().nbytes()));
    mine.push_back(static_cast<double>(backend.optimizers()[i]->state_bytes()));
  }
  const std::vector<double> all = backend.gather_slots(mine, 2);  // every replica's too
  for (size_t s = 0; s < all.size(); s += 2) {
    in.param_bytes += static_cast<size_t>(all[s]);
    in.optimizer_bytes += static_cast<size_t>(all[s + 1]);
  }
  in.activation_bytes = backend.activation_bytes();
  const std::vector<uint64_t> hashes = backend.frozen_hashes();
  if (hashes.front() != 0) {
    // ssn rebuilds U, F and F_pos from the seed on every stage; stages that disagree would decode garbage.
    for (size_t s = 1; s < hashes.size(); ++s) {
      if (hashes[s] != hashes.front()) {
        char msg[256];
        std::snprintf(msg, sizeof(msg),
                      "stage %zu's frozen ssn tensors (hash %012llx) differ from stage 0's (%012llx): every rank "
                      "must run the same binary with the same --seed",
                      s, static_cast<unsigned long long>(hashes[s]), static_cast<unsigned long long>(hashes.front()));
        throw std::runtime_error(msg);
      }
    }
    char row[128];
    std::snprintf(row, sizeof(row), "ssn basis U and tables F, F_pos: hash %012llx, equal on all %zu stages",
                  static_cast<unsigned long long>(hashes.front()), hashes.size());
    in.frozen = row;
  }
  return in;
}

int sample_only(const RunConfig& c, Backend& backend) {
  std::unique_ptr<data::Tokenizer> tokenizer = load_tokenizer(c);
  int64_t step = 0;
  if (c.init_from.empty()) {
    const std::string path = latest_checkpoint(c);
    step = load_checkpoint_params(path, c, backend);
    if (backend.is_rank0()) std::printf("sampling from %s (step %lld)\n", path.c_str(), static_cast<long long>(step));
  } else if (backend.is_rank0()) {
    std::printf("sampling from %s\n", c.init_from.c_str());
  }
  print_sample(c, backend, tokenizer.get(), step);
  return kExitOk;
}

// --pid-dir: this process's pid for each stage it holds (tools and tests that signal one stage): stage<s>.pid, or
// replica<r>.stage<s>.pid with replicas.
void write_pid_files(const RunConfig& c, const Backend& backend, int num_local_slots) {
  if (c.pid_dir.empty()) return;
  make_dirs(c.pid_dir);
  const int S = c.pipeline.stages;
  for (int g = backend.first_slot(); g < backend.first_slot() + num_local_slots; ++g) {
    const std::string name = c.replicas.replicas > 1
                                 ? "replica" + std::to_string(g / S) + ".stage" + std::to_string(g % S)
                                 : "stage" + std::to_string(g);
    const std::string path = c.pid_dir + "/" + name + ".pid";
    FILE* f = std::fopen(path.c_str(), "w");
    if (f == nullptr) throw CheckpointError("cannot write " + path + ": " + std::strerror(errno));
    std::fprintf(f, "%d\n", static_cast<int>(getpid()));
    std::fclose(f);
  }
}

}  // namespace

int run_training(RunConfig c) {
  const TrainFlags& f = c.flags;
  // Under --executor mpi the command the user ran has prepared and validated the data, locked the output directory
  // and verified the checkpoint (train/run_start.h); this process is one rank.
  setup_data(&c, /*report=*/!c.mpi);
  OutputLock lock;
  RunStart start;
  if (!f.sample_only) {
    if (!c.mpi) {
      validate_data(c);
      lock.acquire(c.out_dir);
      start = check_start(c);
    } else if (f.resume) {
      start.manifest = latest_checkpoint(c);
      const ResumePoint point = verify_checkpoint(start.manifest, c);
      start.step = point.step;
      start.changed_flags = point.changed_flags;
    }
  }
  if (c.mpi && c.device == engine::Device::cuda) engine::comm::use_rank_gpu();  // before any CUDA object
  const std::unique_ptr<engine::DeviceContext> device_context = make_device_context(c);
  const engine::DeviceContext& device = *device_context;
  std::unique_ptr<Backend> backend = make_backend(c, device.ctx());
  const bool printer = backend->is_rank0();
  if (c.mpi) explain_sigterm(backend->first_stage(), backend->first_slot());
  write_pid_files(c, *backend, static_cast<int>(backend->param_stores().size()));
  if (f.sample_only) return sample_only(c, *backend);

  data::LoaderConfig lc;
  lc.pattern = c.train_pattern;
  lc.B = c.B;
  lc.T = c.T;
  lc.shuffle = f.data_order == "shuffled";
  lc.seed = f.seed;
  lc.vocab_size = c.model.vocab_size;
  data::DataLoader loader(lc);  // every process reads the same batches; each stage uses what it needs
  data::ValidationLoader val(c.val_pattern, c.B, c.T);
  std::unique_ptr<data::Tokenizer> tokenizer = load_tokenizer(c);

  int64_t start_step = 0;
  if (f.resume) {
    start_step = load_training_checkpoint(start.manifest, c, *backend, &loader);
    backend->set_step(start_step);  // seeds what a step draws at random (int8 code-gradient rounding)
  }
  const JsonObject table = [&] {
    RunTableInputs in = table_inputs(*backend);  // collectives: every process
    in.threads = threads_per_process(c) > 0 ? threads_per_process(c) : engine::default_num_threads();
    if (c.device == engine::Device::cpu) in.cpu_gemms = engine::cpu_gemm_description(device.ctx());
    return printer ? print_run_table(c, in) : JsonObject();
  }();
  std::unique_ptr<RunLog> log;
  if (printer) {
    make_dirs(c.out_dir);
    log = std::make_unique<RunLog>(c.log_path, /*append=*/f.resume);
    if (f.resume) {
      std::printf("resumed from %s at step %lld\n", start.manifest.c_str(), static_cast<long long>(start_step));
      JsonObject changed;
      for (const auto& kv : start.changed_flags) {
        std::printf("resume: --%s changed: %s\n", kv.first.c_str(), kv.second.c_str());
        changed.add(kv.first, kv.second);
      }
      log->write(JsonObject().add("type", "resume").add("step", start_step).add_raw("changed", changed.str()));
    }
    log->log_config(flag_values(f), table);  // on resume too: the log says which flags the next steps ran with
  }

  engine::optim::LrSchedule schedule;
  schedule.max_lr = f.lr;
  schedule.warmup_steps = f.warmup_steps;
  schedule.total_steps = f.steps;
  schedule.final_fraction = f.final_lr_frac;
  // Every replica's micro-batches, replica-major: replica r trains on slots [r M, (r+1) M).
  const int step_micro_batches = c.M * c.replicas.replicas;
  BatchBuffer batch(step_micro_batches, c.B, c.T, c.device);
  BatchBuffer val_batch(c.M, c.B, c.T, c.device);
  const int eval_batches = eval_batches_rounded(f.eval_batches, c.M);
  auto evaluate = [&](int64_t step) {
    const double v = validation_loss(*backend, val, val_batch, c.M, eval_batches);  // every process
    if (!printer) return;
    std::printf("eval  %5lld | val loss %.4f (mean of %d val batches)\n", static_cast<long long>(step), v,
                eval_batches);
    std::fflush(stdout);
    log->log_eval(step, v);
  };
  if (start_step == 0 && f.eval_interval > 0) evaluate(0);

  // A checkpoint is known good once a finite loss has been computed from its weights (the next step's): the one
  // written by the update that blew up holds weights of ~1e29 and would diverge again.
  std::string last_checkpoint = f.resume ? start.manifest : "none";
  int64_t good_step = -1, unconfirmed_step = f.resume ? start_step : -1;
  const int64_t end_step = f.stop_after > 0 && f.stop_after < f.steps ? f.stop_after : f.steps;
  for (int64_t step = start_step; step < end_step; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int m = 0; m < step_micro_batches; ++m) {
      loader.next_batch();
      batch.set_micro_batch(m, loader.inputs(), loader.targets());
    }
    batch.upload();
    const float lr = schedule.at(static_cast<int>(step));
    const StepOutput out = backend->step(batch.tokens(), batch.targets(), lr);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const int64_t done = step + 1;  // steps completed, the number printed and logged

    StepRecord r;
    r.step = done;
    r.loss = out.loss;
    r.lr = lr;
    r.grad_norm = out.grad_norm;
    r.ms = ms;
    r.tokens_per_s = static_cast<double>(c.tokens_per_step()) / (ms / 1000.0);
    r.bytes_fwd = static_cast<int64_t>(out.bytes_fwd);
    r.bytes_bwd = static_cast<int64_t>(out.bytes_bwd);
    r.bytes_tied = static_cast<int64_t>(out.bytes_tied);
    r.bytes_dp = static_cast<int64_t>(out.bytes_dp);
    r.compression = out.compression_fwd;
    r.forward_ms = out.forward_ms;
    r.dp_stage_bytes = out.dp_stage_bytes;
    r.backward_ms = out.backward_ms;
    r.update_ms = out.update_ms;
    if (log) log->log_step(r);
    if (!std::isfinite(out.loss) || !std::isfinite(out.grad_norm)) {
      if (!printer) return kExitDiverged;  // every process saw the same loss; rank 0 explains
      const int set_aside = set_aside_checkpoints_after(c, good_step);
      const std::string aside =
          set_aside > 0 ? " (the newer ones were written by the diverging updates: renamed to *.diverged)" : "";
      const std::string advice =
          good_step >= 0 ? "The newest checkpoint known good (a finite loss was computed from its weights) is " +
                               checkpoint_path(c.checkpoint_dir, good_step) + aside +
                               "; resume from it with --resume and a lower --lr or --grad-clip."
                         : "No checkpoint is known good (none had a finite loss computed from it)" + aside +
                               "; start over with a lower --lr or --grad-clip.";
      std::fprintf(stderr, "error: loss %g, grad norm %g at step %lld is not finite: training stopped. %s\n",
                   out.loss, out.grad_norm, static_cast<long long>(done), advice.c_str());
      return kExitDiverged;
    }
    if (unconfirmed_step >= 0) good_step = unconfirmed_step, unconfirmed_step = -1;
    if (printer && done == 1 && c.pipeline.stages > 1) {
      std::printf("| compression  %.2fx forward, %.2fx backward (measured on step 1: %s fwd, %s bwd per step)\n",
                  out.compression_fwd, out.compression_bwd, format_bytes(static_cast<double>(out.bytes_fwd)).c_str(),
                  format_bytes(static_cast<double>(out.bytes_bwd)).c_str());
    }
    if (printer && (done % f.log_interval == 0 || done == f.steps)) {
      std::printf("%s\n", format_step_line(r, f.steps).c_str());
      std::fflush(stdout);
    }
    const bool last = done == end_step;
    // The checkpoint before the evaluation: whatever the evaluation meets, the steps are saved.
    if ((f.checkpoint_interval > 0 && done % f.checkpoint_interval == 0) || last) {
      last_checkpoint = save_training_checkpoint(c, *backend, loader, done, good_step);
      unconfirmed_step = done;
    }
    if ((f.eval_interval > 0 && done % f.eval_interval == 0) || last) evaluate(done);
    if (f.sample_interval > 0 && done % f.sample_interval == 0 && !last) {
      print_sample(c, *backend, tokenizer.get(), done);
    }
  }
  if (end_step > start_step || f.steps == 0) print_sample(c, *backend, tokenizer.get(), end_step);
  if (!c.export_llmc.empty()) {
    const std::vector<engine::ParamStore*> stores = backend->gather_params_to_rank0();  // every process
    if (printer) {
      export_llmc(c, stores, c.export_llmc);
      std::printf("exported the model in llm.c's format to %s\n", c.export_llmc.c_str());
    }
  }
  if (printer) {
    std::printf("log:         %s\ncheckpoints: %s (latest: %s)\nplot:        tools/bazel run //tools:plot -- %s "
                "--out %s/curves.png\n",
                c.log_path.c_str(), c.checkpoint_dir.c_str(), last_checkpoint.c_str(), c.out_dir.c_str(),
                c.out_dir.c_str());
  }
  return kExitOk;
}

}  // namespace train
