// train/run_start.h: what happens before the first step, once per run: the checks that must pass before anything
// is written (the data's every token, the output directory's lock, the checkpoint to resume), and --executor mpi's
// re-launch under mpirun with one rank per stage.
//
// Under --executor local the trainer makes these checks itself. Under --executor mpi the command the user ran
// makes them, prepares the data, takes the lock, and then becomes mpirun (exec): the lock's descriptor stays open
// in mpirun, so the output directory is locked for exactly as long as the job runs; the ranks find the data
// prepared and the checkpoint verified. With --max-restarts it stays, holding the lock, and runs mpirun as a child
// until the run ends or its restarts are used up.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/device.h"
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

// The ranks of an --executor mpi job: one per stage of every replica, R x S.
int job_ranks(const RunConfig& config);

// --hostfile: a slot for each of the job_ranks(). The launcher passes --oversubscribe (several ranks per core is fine
// on one machine), under which mpirun would pile the ranks a hostfile lacks onto its hosts instead of refusing.
// Throws FlagError (too few slots: how many of each) or std::invalid_argument (an unreadable hostfile, a bad line).
void require_hostfile_slots(const RunConfig& config);

// CPU threads for this process: --threads, or this host's cores divided by the processes this run has on it.
int threads_per_process(const RunConfig& config);

// The run's device context: its device, threads_per_process(), and under --dtype bf16-autocast the GEMM scratch
// sized for the model's largest matmul. The trainer and tools/bench/gpu_step build theirs here.
std::unique_ptr<engine::DeviceContext> make_device_context(const RunConfig& config);

// --executor mpi, in the command the user ran: the checks above (and, with --hostfile, a slot for every rank), the
// data prepared once, then exec mpirun with job_ranks() ranks running this binary with `args`; returns only on
// failure (an exit status). With --max-restarts it runs mpirun as a child instead and starts it again after a
// failure (train/restart.h), returning the run's exit status.
int launch_ranks(RunConfig config, const std::vector<std::string>& args);

// In a rank: when another rank fails, mpirun stops this one with SIGTERM; say so (naming this stage) before
// leaving, so that every stage's exit is explained.
void explain_sigterm(int stage, int rank);

}  // namespace train
