// train/train_state.h: what a training checkpoint holds and how it is put back, across processes.
//
// A checkpoint after `step` optimizer steps is one file per stage, written by the process holding the stage
// (its parameters, its optimizer's state, the data loader's position, the step and the seed), then a manifest
// naming every stage file with its checksum and the run's fingerprint and flags, written last by the process of
// stage 0 once every stage's file is durable. Each file is written atomically (train/checkpoint.h). So a crash
// at any moment leaves every earlier checkpoint complete, and a checkpoint exists once its manifest does. Files
// are the same under --executor local and mpi: a checkpoint of one resumes under the other.
//
// Restoring all of it makes --resume bit-exact: the next step sees the same weights, moments, step count and batch
// as the uninterrupted run (the sampler's stream is derived from (seed, step), so it needs no state of its own).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/loader.h"
#include "train/backend.h"
#include "train/run_config.h"

namespace train {

// Writes this process's stage files of the state after `step` steps, waits for every stage's (a collective), then
// (stage 0's process) the manifest, and prunes all but the newest --keep-last and the one of `keep_step` (the
// newest known good). Returns the manifest's path.
std::string save_training_checkpoint(const RunConfig& config, Backend& backend, const data::DataLoader& loader,
                                     int64_t step, int64_t keep_step);

// The newest checkpoint's manifest in the run's checkpoint directory; throws CheckpointError naming the directory
// if there is none.
std::string latest_checkpoint(const RunConfig& config);

// What a resume needs to know before anything is written: the manifest's step, and the flags it was written with
// that differ from this run's ("--lr 0.003 -> 0.001"). Checks that the manifest belongs to this run (fingerprint,
// seed) and that every stage file is there, whole and the one the manifest names (checksum). Throws
// CheckpointError naming the stage and the file.
struct ResumePoint {
  int64_t step = 0;
  std::vector<std::pair<std::string, std::string>> changed_flags;  // name, "old -> new"
};
ResumePoint verify_checkpoint(const std::string& manifest, const RunConfig& config);

// Loads this process's stages (parameters, optimizer state) and the loader's position from the checkpoint of
// `manifest`; returns its step. Throws CheckpointError naming the stage and the file.
int64_t load_training_checkpoint(const std::string& manifest, const RunConfig& config, Backend& backend,
                                 data::DataLoader* loader);

// Only the parameters (for --sample-only). Returns the step.
int64_t load_checkpoint_params(const std::string& manifest, const RunConfig& config, Backend& backend);

// Sets aside (renames to <manifest>.diverged) every checkpoint newer than `good_step`: after a NaN they hold
// weights no finite loss was computed from, and --resume must not pick them. Returns how many.
int set_aside_checkpoints_after(const RunConfig& config, int64_t good_step);

}  // namespace train
