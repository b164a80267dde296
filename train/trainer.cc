// train/trainer.cc: the training loop and the run around it.
#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include "data/loader.h"
#include "data/tokenizer.h"
#include "engine/device.h"
#include "engine/optim/schedule.h"
#include "train/backend.h"
#include "train/checkpoint.h"
#include "train/console.h"
#include "train/data_setup.h"
#include "train/evaluate.h"
#include "train/llmc_export.h"
#include "train/run_log.h"
#include "train/sample.h"
#include "train/train_state.h"

namespace train {
namespace {

std::unique_ptr<data::Tokenizer> load_tokenizer(const RunConfig& c) {
  if (c.vocab_dir.empty()) return nullptr;
  return std::make_unique<data::Tokenizer>(data::Tokenizer::from_dir(c.vocab_dir));
}

// Prints a sample continuing --prompt. The sampler's seed mixes --seed and the step, so a resumed run prints the
// same sample as an uninterrupted one.
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
  std::printf("---- sample at step %lld (temperature %g, top-k %d) ----\n%s%s\n----\n",
              static_cast<long long>(step), c.flags.temperature, c.flags.top_k, c.flags.prompt.c_str(),
              decode_tokens(tokenizer, byte_tokens, ids).c_str());
  std::fflush(stdout);
}

RunTableInputs table_inputs(Backend& backend) {
  RunTableInputs in;
  in.num_parameters = backend.num_parameters();
  for (auto* s : backend.param_stores()) in.param_bytes += 2 * s->all_values().nbytes();
  for (auto* o : backend.optimizers()) in.optimizer_bytes += o->state_bytes();
  in.activation_bytes = backend.activation_bytes();
  return in;
}

int sample_only(const RunConfig& c, Backend& backend) {
  std::unique_ptr<data::Tokenizer> tokenizer = load_tokenizer(c);
  int64_t step = 0;
  if (c.init_from.empty()) {
    const std::string path = latest_checkpoint(c);
    step = load_checkpoint_params(path, c, backend);
    std::printf("sampling from %s (step %lld)\n", path.c_str(), static_cast<long long>(step));
  } else {
    std::printf("sampling from %s\n", c.init_from.c_str());
  }
  print_sample(c, backend, tokenizer.get(), step);
  return kExitOk;
}

}  // namespace

int run_training(RunConfig c) {
  const TrainFlags& f = c.flags;
  setup_data(&c);
  engine::DeviceContext device(c.device);
  if (c.bf16_gemms) device.enable_bf16_gemms(c.bf16_gemm_scratch_elements());
  std::unique_ptr<Backend> backend = make_backend(c, device.ctx());
  if (f.sample_only) return sample_only(c, *backend);

  data::LoaderConfig lc;
  lc.pattern = c.train_pattern;
  lc.B = c.B;
  lc.T = c.T;
  lc.shuffle = f.data_order == "shuffled";
  lc.seed = f.seed;
  lc.vocab_size = c.model.vocab_size;  // a token the model cannot embed is a data error, not a crash
  data::DataLoader loader(lc);
  data::ValidationLoader val(c.val_pattern, c.B, c.T);
  std::unique_ptr<data::Tokenizer> tokenizer = load_tokenizer(c);

  int64_t start_step = 0;
  if (f.resume) {
    const std::string path = latest_checkpoint(c);
    start_step = load_training_checkpoint(path, c, *backend, &loader);
    backend->set_step(start_step);
    std::printf("resumed from %s at step %lld\n", path.c_str(), static_cast<long long>(start_step));
  }
  if (!f.resume && !list_checkpoints(c.checkpoint_dir).empty()) {
    // Starting over here would mix two runs' checkpoints (and --resume would pick the wrong one): refuse.
    throw CheckpointError(c.out_dir + " already holds a run (checkpoints up to step " +
                          std::to_string(list_checkpoints(c.checkpoint_dir).back().first) +
                          "); pass --resume to continue it, --run-name NAME for a new run, or delete the directory");
  }
  make_dirs(c.out_dir);
  RunLog log(c.log_path, /*append=*/f.resume);
  const JsonObject table = print_run_table(c, table_inputs(*backend));
  if (!f.resume) log.log_config(flag_values(f), table);

  engine::optim::LrSchedule schedule;
  schedule.max_lr = f.lr;
  schedule.warmup_steps = f.warmup_steps;
  schedule.total_steps = f.steps;
  schedule.final_fraction = f.final_lr_frac;
  BatchBuffer batch(c.M, c.B, c.T, c.device);
  BatchBuffer val_batch(c.M, c.B, c.T, c.device);
  const int eval_batches = eval_batches_rounded(f.eval_batches, c.M);
  auto evaluate = [&](int64_t step) {
    const double v = validation_loss(*backend, val, val_batch, c.M, eval_batches);
    std::printf("eval  %5lld | val loss %.4f (mean of %d val batches)\n", static_cast<long long>(step), v,
                eval_batches);
    std::fflush(stdout);
    log.log_eval(step, v);
  };
  if (start_step == 0 && f.eval_interval > 0) evaluate(0);

  std::string last_checkpoint = "none";
  const int64_t end_step = f.stop_after > 0 && f.stop_after < f.steps ? f.stop_after : f.steps;
  for (int64_t step = start_step; step < end_step; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int m = 0; m < c.M; ++m) {
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
    r.compression = out.compression_fwd;
    log.log_step(r);
    if (!std::isfinite(out.loss) || !std::isfinite(out.grad_norm)) {
      std::fprintf(stderr,
                   "error: loss %g, grad norm %g at step %lld is not finite: training stopped. The last good "
                   "checkpoint is %s; resume from it with a lower --lr or --grad-clip.\n",
                   out.loss, out.grad_norm, static_cast<long long>(done), last_checkpoint.c_str());
      return kExitDiverged;
    }
    if (done == 1 && c.pipeline.stages > 1) {
      std::printf("| compression  %.2fx forward, %.2fx backward (measured on step 1: %s fwd, %s bwd per step)\n",
                  out.compression_fwd, out.compression_bwd, format_bytes(static_cast<double>(out.bytes_fwd)).c_str(),
                  format_bytes(static_cast<double>(out.bytes_bwd)).c_str());
    }
    if (done % f.log_interval == 0 || done == f.steps) {
      std::printf("%s\n", format_step_line(r, f.steps).c_str());
      std::fflush(stdout);
    }
    const bool last = done == end_step;
    if ((f.eval_interval > 0 && done % f.eval_interval == 0) || last) evaluate(done);
    if (f.sample_interval > 0 && done % f.sample_interval == 0 && !last) {
      print_sample(c, *backend, tokenizer.get(), done);
    }
    if ((f.checkpoint_interval > 0 && done % f.checkpoint_interval == 0) || last) {
      last_checkpoint = save_training_checkpoint(c, *backend, loader, done);
    }
  }
  if (end_step > start_step || f.steps == 0) print_sample(c, *backend, tokenizer.get(), end_step);
  if (!c.export_llmc.empty()) {
    export_llmc(c, *backend, c.export_llmc);
    std::printf("exported the model in llm.c's format to %s\n", c.export_llmc.c_str());
  }
  std::printf("log:         %s\ncheckpoints: %s (latest: %s)\nplot:        tools/bazel run //tools:plot -- %s "
              "--out %s/curves.png\n",
              c.log_path.c_str(), c.checkpoint_dir.c_str(), last_checkpoint.c_str(), c.out_dir.c_str(),
              c.out_dir.c_str());
  return kExitOk;
}

}  // namespace train
