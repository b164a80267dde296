// train/restart.h: --max-restarts N, the launcher of --executor mpi starting the job again after a failure.
//
// Without it the launcher becomes mpirun (exec) and a dead or stalled rank ends the run. With it the launcher runs
// mpirun as a child and waits; when the job fails (a rank killed, or one that waited past --comm-timeout-s and
// exited 3) it makes sure the job is gone (mpirun reaped; any rank that outlived it, such as a stopped one, killed
// and reaped), says so in one line on stderr, and starts mpirun again with --resume from the newest complete
// checkpoint (a resume is bitwise, so the finished run's losses are the uninterrupted run's), or from step 0 when
// there is none yet. The output directory's lock stays with the launcher throughout. A job stopped by a non-finite
// loss is not restarted (it would diverge again from the same checkpoint), nor one the launcher was told to stop.
#pragma once

#include <string>
#include <vector>

#include "train/run_config.h"

namespace train {

// Runs the job (mpirun with `args`, this binary's command line) up to 1 + config.max_restarts times, until one
// attempt succeeds. Returns 0 when the run finished, else the last attempt's exit status (128 + n for signal n),
// after an `error:` line saying how many restarts were used.
int run_with_restarts(const RunConfig& config, const std::vector<std::string>& args);

// The last "step" record of a log.jsonl: its step (0 when there is none or no file), and whether its loss was
// logged as null (not finite: the run stopped on it).
struct LastLoggedStep {
  int64_t step = 0;
  bool loss_not_finite = false;
};
LastLoggedStep last_logged_step(const std::string& log_path);

}  // namespace train
