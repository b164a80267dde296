// train/run_start.h: what happens before the first step, once per run: the checks that must pass before anything
// is written (the data's every token, the output directory's lock, the checkpoint to resume), and --executor mpi's
// re-launch under mpirun with one rank per stage.
//
// Under --executor local the trainer makes these checks itself. Under --executor mpi the command the user ran
// makes them, prepares the data, takes the lock, and then becomes mpirun (exec): the lock's descriptor stays open
// in mpirun, so the output directory is locked for exactly as long as the job runs; the ranks find the data
// prepared and the checkpoint verified.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "train/run_config.h"

namespace train {

// Every token of the training and validation shards is below the model's vocabulary (a bad token otherwise stops
// the run when first read, possibly hours in). Throws data::DataError naming the file and the position.
void validate_data(const RunConfig& config);

// An exclusive lock on <out_dir>/.lock for as long as this process (or, after exec, mpirun) lives: two runs never
// write one output directory. Throws CheckpointError naming the holder when another run has it.
class OutputLock {
 public:
  OutputLock() = default;
  ~OutputLock();
  OutputLock(const OutputLock&) = delete;
  OutputLock& operator=(const OutputLock&) = delete;
  void acquire(const std::string& out_dir);

 private:
  int fd_ = -1;
};

// Where the run starts. A new run needs an output directory without checkpoints; --resume needs its newest
// checkpoint whole, of this run (fingerprint, seed), and --steps beyond its step. Throws CheckpointError or
// FlagError saying what to do.
struct RunStart {
  std::string manifest;  // --resume: the checkpoint to continue
  int64_t step = 0;      // steps already done
  std::vector<std::pair<std::string, std::string>> changed_flags;  // --resume: name, "old -> new"
};
RunStart check_start(const RunConfig& config);

// CPU threads for this process: --threads, or this host's cores divided by the processes this run has on it.
int threads_per_process(const RunConfig& config);

// --executor mpi, in the command the user ran: the checks above, the data prepared once, then exec mpirun with one
// rank per stage running this binary with `args`. Returns only on failure (an exit status).
int launch_ranks(RunConfig config, const std::vector<std::string>& args);

// In a rank: when another rank fails, mpirun stops this one with SIGTERM; say so (naming this stage) before
// leaving, so that every stage's exit is explained.
void explain_sigterm(int stage, int rank);

}  // namespace train
