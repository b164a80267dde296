// train/data_setup.h: where the run's data comes from: the --train-data/--val-data globs, or tinyshakespeare
// prepared under --data-dir (fetched online or copied from --data-mirror / $RESBM_DATA_MIRROR) on first use.
// Also finds the GPT-2 tokenizer files for sampling.
#pragma once

#include "train/run_config.h"

namespace train {

// Fills config->train_pattern, val_pattern and vocab_dir. Prints one line saying what it prepared or reused (with
// report; the ranks of --executor mpi find what the launching command prepared, quietly).
// Throws data::DataError (offline without a mirror, missing shards) or FlagError (a train glob without a val glob)
// with a message saying what to do.
void setup_data(RunConfig* config, bool report = true);

}  // namespace train
