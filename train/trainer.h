// train/trainer.h: Trainer, one training run end to end: data, model, optional resume, the step loop with
// evaluation, sampling and checkpoints, then the final sample, export and a summary of where things went.
#pragma once

#include <memory>

#include "train/run_config.h"

namespace train {

// Exit codes of the trainer binary.
constexpr int kExitOk = 0;
constexpr int kExitUsage = 2;      // bad flags, bad data, bad checkpoint: a one-line error
constexpr int kExitDiverged = 3;   // NaN or Inf loss: stopped, last good checkpoint kept

// Runs training (or, with --sample-only, loads and samples). Returns an exit code; throws FlagError,
// data::DataError, CheckpointError or std::exception for the caller (main) to print as one line.
int run_training(RunConfig config);

}  // namespace train
