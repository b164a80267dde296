// train/train_state.cc: training checkpoints across processes: stage files (meta, params, opt.*, loader) and the
// manifest (meta, stage.<g>.file, stage.<g>.checksum). With R replicas the files are slots g = r S + s, replica-major
// (ckpt_<step>.replica<r>.stage<s>.bin); replica 0's file of stage s also holds DiLoCo's outer state (diloco.*).
#include "train/train_state.h"

#include <cstdio>
#include <sstream>
#include <vector>

#include "engine/device.h"
#include "train/checkpoint.h"

namespace train {
namespace {

std::string base_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

// The flags as the manifest stores them: one "name=value" per line.
std::string flags_text(const TrainFlags& flags) {
  std::string out;
  for (const auto& kv : flag_values(flags)) out += kv.first + "=" + kv.second + "\n";
  return out;
}

std::vector<std::pair<std::string, std::string>> parse_flags_text(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) out.emplace_back(line.substr(0, eq), line.substr(eq + 1));
  }
  return out;
}

// The manifest of a checkpoint, checked against this run: same fingerprint (section "meta.fingerprint" to resume
// everything, "meta.model_fingerprint" for the parameters only) and seed.
Checkpoint load_manifest(const std::string& path, const RunConfig& config, const char* fingerprint_section) {
  const Checkpoint manifest = Checkpoint::load(path);
  // The layout first (replicas, stages), named plainly; then everything else through the fingerprint.
  const uint64_t replicas = manifest.has("meta.replicas") ? manifest.get_u64("meta.replicas") : 1;
  if (replicas != static_cast<uint64_t>(config.replicas.replicas)) {
    throw CheckpointError(path + " holds " + std::to_string(replicas) + " replica(s) of the pipeline, this run " +
                          std::to_string(config.replicas.replicas) + "; resume with --replicas " +
                          std::to_string(replicas) + " or use another --out-dir");
  }
  const uint64_t stages = manifest.get_u64("meta.stages");
  if (stages != static_cast<uint64_t>(config.pipeline.stages)) {
    throw CheckpointError(path + " has " + std::to_string(stages) + " stages, this run " +
                          std::to_string(config.pipeline.stages) + "; resume with --stages " + std::to_string(stages) +
                          " or use another --out-dir");
  }
  const std::string ours = std::string(fingerprint_section) == "meta.fingerprint" ? config.fingerprint()
                                                                                  : config.model_fingerprint();
  const std::string theirs = manifest.get_string(fingerprint_section);
  if (theirs != ours) {
    throw CheckpointError(path + " was written by a different run (" + theirs + "), this run is (" + ours +
                          "); use the same model/pipeline/batch flags or another --out-dir");
  }
  return manifest;
}

// Stage s's file of a manifest, read and checked whole: there, not truncated, not corrupt, and the very file the
// manifest names (its checksum). Every failure names the stage and the file.
Checkpoint load_stage_file(const Checkpoint& manifest, int slot, const RunConfig& config) {
  const int S = config.pipeline.stages, R = config.replicas.replicas, s = slot % S, r = slot / S;
  const std::string prefix = "stage." + std::to_string(slot) + ".";
  const std::string dir = manifest.path().substr(0, manifest.path().rfind('/'));
  const std::string path = dir + "/" + manifest.get_string(prefix + "file");
  const std::string who = R > 1 ? "replica " + std::to_string(r) + " stage " + std::to_string(s) : "stage " + std::to_string(s);
  const std::string where = "checkpoint " + manifest.path() + ": " + who + "'s file " + path;
  const std::string fix = "; restore the file, or delete " + manifest.path() + " to resume from an older checkpoint";
  Checkpoint stage;
  try {
    stage = Checkpoint::load(path);
  } catch (const CheckpointError& e) {
    throw CheckpointError(where + " cannot be used (" + e.what() + ")" + fix);
  }
  const uint64_t replica = stage.has("meta.replica") ? stage.get_u64("meta.replica") : 0;
  if (stage.checksum() != manifest.get_u64(prefix + "checksum") ||
      stage.get_u64("meta.stage") != static_cast<uint64_t>(s) || replica != static_cast<uint64_t>(r) ||
      stage.get_u64("meta.step") != manifest.get_u64("meta.step")) {
    throw CheckpointError(where + " is not the file the manifest names (checksum, stage or step differ)" + fix);
  }
  return stage;
}

// DiLoCo's outer state of a stage: the synced parameters, the outer momentum and the outer step count.
void save_diloco(CheckpointWriter& w, const engine::optim::DilocoOuter& outer) {
  for (const auto& [name, t] : {std::make_pair("diloco.synced", outer.synced()),
                                std::make_pair("diloco.momentum", outer.momentum())}) {
    std::vector<uint8_t> host(t.nbytes());
    engine::copy_to_host(host.data(), t);
    w.add(name, host.data(), host.size());
  }
  w.add_u64("diloco.outer_steps", static_cast<uint64_t>(outer.outer_steps()));
}

void load_diloco(const Checkpoint& stage_file, engine::optim::DilocoOuter* outer) {
  for (const auto& [name, t] : {std::make_pair("diloco.synced", outer->synced()),
                                std::make_pair("diloco.momentum", outer->momentum())}) {
    std::vector<uint8_t> host(t.nbytes());
    stage_file.read_into(name, host.data(), host.size());
    engine::copy_from_host(t, host.data());
  }
  outer->set_outer_steps(static_cast<int>(stage_file.get_u64("diloco.outer_steps")));
}

void load_params(const Checkpoint& stage_file, engine::ParamStore& store) {
  const engine::Tensor all = store.all_values();
  std::vector<uint8_t> host(all.nbytes());
  stage_file.read_into("params.values", host.data(), host.size());
  engine::copy_from_host(all, host.data());
  store.sync_model_copy();  // bf16 policy: a first copy; the optimizer's load_state then restores the exact one
}

}  // namespace

std::string save_training_checkpoint(const RunConfig& config, Backend& backend, const data::DataLoader& loader,
                                     int64_t step, int64_t keep_step) {
  make_dirs(config.checkpoint_dir);
  const auto stores = backend.param_stores();
  const auto optimizers = backend.optimizers();
  const std::vector<uint8_t> position = loader.position().to_bytes();
  const int S = config.pipeline.stages, R = config.replicas.replicas;
  std::vector<double> mine;  // per slot held here: the checksum's two 32-bit halves (exact as doubles)
  for (size_t i = 0; i < stores.size(); ++i) {
    const int slot = backend.first_slot() + static_cast<int>(i), s = slot % S, r = slot / S;
    CheckpointWriter w;
    w.add_string("meta.fingerprint", config.fingerprint());
    w.add_u64("meta.step", static_cast<uint64_t>(step));
    w.add_u64("meta.stage", static_cast<uint64_t>(s));
    if (R > 1) w.add_u64("meta.replica", static_cast<uint64_t>(r));
    w.add_u64("meta.seed", config.flags.seed);
    const engine::Tensor all = stores[i]->all_values();  // flat, alignment padding included (zeros)
    std::vector<uint8_t> host(all.nbytes());
    engine::copy_to_host(host.data(), all);
    w.add("params.values", host.data(), host.size());
    optimizers[i]->save_state(w, "opt.");
    if (r == 0 && backend.diloco_outer(s) != nullptr) save_diloco(w, *backend.diloco_outer(s));
    w.add("loader.position", position.data(), position.size());
    const uint64_t checksum = w.save(stage_checkpoint_path(config.checkpoint_dir, step, s, R > 1 ? r : -1));
    mine.push_back(static_cast<double>(checksum >> 32));
    mine.push_back(static_cast<double>(checksum & 0xffffffffull));
  }
  // Returns once every slot's file is durable (each process saved and fsync'ed before contributing).
  const std::vector<double> all = backend.gather_slots(mine, 2);
  const std::string manifest_path = checkpoint_path(config.checkpoint_dir, step);
  if (!backend.is_rank0()) return manifest_path;
  CheckpointWriter m;
  m.add_string("meta.fingerprint", config.fingerprint());
  m.add_string("meta.model_fingerprint", config.model_fingerprint());
  m.add_u64("meta.step", static_cast<uint64_t>(step));
  m.add_u64("meta.seed", config.flags.seed);
  m.add_u64("meta.stages", static_cast<uint64_t>(S));
  m.add_u64("meta.replicas", static_cast<uint64_t>(R));
  m.add_string("meta.flags", flags_text(config.flags));
  for (int g = 0; g < R * S; ++g) {
    const std::string prefix = "stage." + std::to_string(g) + ".";
    m.add_string(prefix + "file", base_name(stage_checkpoint_path(config.checkpoint_dir, step, g % S, R > 1 ? g / S : -1)));
    m.add_u64(prefix + "checksum", (static_cast<uint64_t>(all[2 * g]) << 32) | static_cast<uint64_t>(all[2 * g + 1]));
  }
  m.save(manifest_path);
  prune_checkpoints(config.checkpoint_dir, config.flags.keep_last, keep_step);
  return manifest_path;
}

std::string latest_checkpoint(const RunConfig& config) {
  const auto all = list_checkpoints(config.checkpoint_dir);
  if (all.empty()) {
    throw CheckpointError("no checkpoint in " + config.checkpoint_dir +
                          " to resume from; run without --resume, or point --out-dir/--run-name at the run");
  }
  return all.back().second;
}

ResumePoint verify_checkpoint(const std::string& manifest_path, const RunConfig& config) {
  const Checkpoint manifest = load_manifest(manifest_path, config, "meta.fingerprint");
  if (manifest.get_u64("meta.seed") != config.flags.seed) {
    throw CheckpointError(manifest_path + " was trained with --seed " + std::to_string(manifest.get_u64("meta.seed")) +
                          "; resume with the same --seed");
  }
  for (int g = 0; g < config.replicas.replicas * config.pipeline.stages; ++g) load_stage_file(manifest, g, config);
  ResumePoint point;
  point.step = static_cast<int64_t>(manifest.get_u64("meta.step"));
  const auto before = parse_flags_text(manifest.get_string("meta.flags"));
  for (const auto& now : flag_values(config.flags)) {
    // How this session runs, not the run.
    if (now.first == "resume" || now.first == "stop-after" || now.first == "max-restarts") continue;
    for (const auto& then : before) {
      if (then.first == now.first && then.second != now.second) {
        point.changed_flags.emplace_back(now.first, then.second + " -> " + now.second);
      }
    }
  }
  return point;
}

int64_t load_training_checkpoint(const std::string& manifest_path, const RunConfig& config, Backend& backend,
                                 data::DataLoader* loader) {
  const Checkpoint manifest = load_manifest(manifest_path, config, "meta.fingerprint");
  const auto stores = backend.param_stores();
  const auto optimizers = backend.optimizers();
  const int S = config.pipeline.stages;
  for (size_t i = 0; i < stores.size(); ++i) {
    const int slot = backend.first_slot() + static_cast<int>(i), s = slot % S;
    const Checkpoint stage = load_stage_file(manifest, slot, config);
    load_params(stage, *stores[i]);
    optimizers[i]->load_state(stage, "opt.");
    // DiLoCo's state is in replica 0's file of the stage; a process of another replica holds a copy of it too.
    if (backend.diloco_outer(s) != nullptr && (slot < S || backend.first_slot() >= S)) {
      load_diloco(slot < S ? stage : load_stage_file(manifest, s, config), backend.diloco_outer(s));
    }
    const auto& pos = stage.get("loader.position");
    loader->set_position(data::LoaderPosition::from_bytes(pos.data(), pos.size()));
  }
  return static_cast<int64_t>(manifest.get_u64("meta.step"));
}

int64_t load_checkpoint_params(const std::string& manifest_path, const RunConfig& config, Backend& backend) {
  const Checkpoint manifest = load_manifest(manifest_path, config, "meta.model_fingerprint");
  const auto stores = backend.param_stores();
  for (size_t i = 0; i < stores.size(); ++i) {
    load_params(load_stage_file(manifest, backend.first_slot() + static_cast<int>(i), config), *stores[i]);
  }
  return static_cast<int64_t>(manifest.get_u64("meta.step"));
}

int set_aside_checkpoints_after(const RunConfig& config, int64_t good_step) {
  int n = 0;
  for (const auto& c : list_checkpoints(config.checkpoint_dir)) {
    if (c.first > good_step && std::rename(c.second.c_str(), (c.second + ".diverged").c_str()) == 0) ++n;
  }
  return n;
}

}  // namespace train
