// train/train_state.h: what a training checkpoint holds and how it is put back: every stage's parameters, every
// optimizer's state, the data loader's position, the step, the sampling seed, and a fingerprint of the run's
// model/pipeline/batch flags so that a checkpoint is never resumed into a different run.
//
// Restoring all of it makes --resume bit-exact: the next step sees the same weights, moments, step count and batch
// as the uninterrupted run (the sampler's stream is derived from (seed, step), so it needs no state of its own).
#pragma once

#include <cstdint>
#include <string>

#include "data/loader.h"
#include "train/backend.h"
#include "train/run_config.h"

namespace train {

// Writes the checkpoint of the state after `step` optimizer steps to checkpoint_path(dir, step), atomically, then
// prunes all but the newest --keep-last. Returns the path.
std::string save_training_checkpoint(const RunConfig& config, Backend& backend, const data::DataLoader& loader,
                                     int64_t step);

// Loads `path` into the backend's parameters and optimizers and the loader's position; returns the step it was
// taken after. Throws CheckpointError (corrupt file, different run) with a message saying what to do.
int64_t load_training_checkpoint(const std::string& path, const RunConfig& config, Backend& backend,
                                 data::DataLoader* loader);

// Only the parameters (for --sample-only). Returns the step.
int64_t load_checkpoint_params(const std::string& path, const RunConfig& config, Backend& backend);

// The newest checkpoint of the run's checkpoint directory; throws CheckpointError naming the directory if none.
std::string latest_checkpoint(const RunConfig& config);

}  // namespace train
