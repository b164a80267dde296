// train/main.cc: the //train binary: parse flags, run (every stage here, or re-launched under mpirun with one rank
// per stage), and turn every failure into one line and an exit code.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "engine/device.h"
#include "train/flags.h"
#include "train/pipeline_launch.h"
#include "train/run_config.h"
#include "train/run_start.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  // OpenMP's idle workers must sleep, not spin, or they steal the core each following sgemm needs (engine/device.h):
  // re-executes once with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; mpirun's ranks inherit it.
  engine::reexec_with_passive_openmp(argv);
  try {
    const train::TrainFlags flags = train::parse_flags(argc, argv);
    if (flags.help) {
      std::fputs(train::flags_help("bazel run //train --").c_str(), stdout);
      return train::kExitOk;
    }
    train::RunConfig config = train::make_run_config(flags);
    if (config.mpi && !train::launched_by_mpirun()) {
      // The command the user ran: checks, data, lock, then it becomes mpirun with one rank per stage.
      return train::launch_ranks(config, std::vector<std::string>(argv + 1, argv + argc));
    }
    return train::run_training(config);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return train::kExitUsage;
  }
}
