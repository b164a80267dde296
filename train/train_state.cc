// train/train_state.cc: training checkpoints (sections: meta, params.<s>, opt.<s>.*, loader).
#include "train/train_state.h"

#include <vector>

#include "engine/device.h"
#include "train/checkpoint.h"

namespace train {
namespace {

std::string stage_prefix(const char* what, size_t s) { return std::string(what) + "." + std::to_string(s) + "."; }

// section: "meta.fingerprint" (resume: everything) or "meta.model_fingerprint" (parameters only).
void check_fingerprint(const Checkpoint& ckpt, const std::string& section, const std::string& ours) {
  const std::string theirs = ckpt.get_string(section);
  if (theirs != ours) {
    throw CheckpointError(ckpt.path() + " was written by a different run (" + theirs + "), this run is (" + ours +
                          "); use the same model/pipeline/batch flags or another --out-dir");
  }
}

void load_params(const Checkpoint& ckpt, Backend& backend) {
  const auto stores = backend.param_stores();
  for (size_t s = 0; s < stores.size(); ++s) {
    const engine::Tensor all = stores[s]->all_values();
    std::vector<uint8_t> host(all.nbytes());
    ckpt.read_into(stage_prefix("params", s) + "values", host.data(), host.size());
    engine::copy_from_host(all, host.data());
  }
}

}  // namespace

std::string save_training_checkpoint(const RunConfig& config, Backend& backend, const data::DataLoader& loader,
                                     int64_t step) {
  CheckpointWriter w;
  w.add_string("meta.fingerprint", config.fingerprint());
  w.add_string("meta.model_fingerprint", config.model_fingerprint());
  w.add_u64("meta.step", static_cast<uint64_t>(step));
  w.add_u64("meta.seed", config.flags.seed);
  const auto stores = backend.param_stores();
  const auto optimizers = backend.optimizers();
  for (size_t s = 0; s < stores.size(); ++s) {
    const engine::Tensor all = stores[s]->all_values();  // flat, alignment padding included (zeros)
    std::vector<uint8_t> host(all.nbytes());
    engine::copy_to_host(host.data(), all);
    w.add(stage_prefix("params", s) + "values", host.data(), host.size());
    optimizers[s]->save_state(w, stage_prefix("opt", s));
  }
  const std::vector<uint8_t> position = loader.position().to_bytes();
  w.add("loader.position", position.data(), position.size());
  make_dirs(config.checkpoint_dir);
  const std::string path = checkpoint_path(config.checkpoint_dir, step);
  w.save(path);
  prune_checkpoints(config.checkpoint_dir, config.flags.keep_last);
  return path;
}

int64_t load_training_checkpoint(const std::string& path, const RunConfig& config, Backend& backend,
                                 data::DataLoader* loader) {
  const Checkpoint ckpt = Checkpoint::load(path);
  check_fingerprint(ckpt, "meta.fingerprint", config.fingerprint());
  if (ckpt.get_u64("meta.seed") != config.flags.seed) {
    throw CheckpointError(path + " was trained with --seed " + std::to_string(ckpt.get_u64("meta.seed")) +
                          "; resume with the same --seed");
  }
  load_params(ckpt, backend);
  const auto optimizers = backend.optimizers();
  for (size_t s = 0; s < optimizers.size(); ++s) optimizers[s]->load_state(ckpt, stage_prefix("opt", s));
  const auto& pos = ckpt.get("loader.position");
  loader->set_position(data::LoaderPosition::from_bytes(pos.data(), pos.size()));
  return static_cast<int64_t>(ckpt.get_u64("meta.step"));
}

int64_t load_checkpoint_params(const std::string& path, const RunConfig& config, Backend& backend) {
  const Checkpoint ckpt = Checkpoint::load(path);
  check_fingerprint(ckpt, "meta.model_fingerprint", config.model_fingerprint());
  load_params(ckpt, backend);
  return static_cast<int64_t>(ckpt.get_u64("meta.step"));
}

std::string latest_checkpoint(const RunConfig& config) {
  const auto all = list_checkpoints(config.checkpoint_dir);
  if (all.empty()) {
    throw CheckpointError("no checkpoint in " + config.checkpoint_dir +
                          " to resume from; run without --resume, or point --out-dir/--run-name at the run");
  }
  return all.back().second;
}

}  // namespace train
