// train/main.cc: the //train binary: parse flags, run, and turn every failure into one line and an exit code.
#include <cstdio>
#include <exception>

#include "engine/device.h"
#include "train/flags.h"
#include "train/run_config.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
  // OpenMP's idle workers must sleep, not spin, or they steal the core each following sgemm needs (engine/device.h):
  // re-executes once with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy.
  engine::reexec_with_passive_openmp(argv);
  try {
    const train::TrainFlags flags = train::parse_flags(argc, argv);
    if (flags.help) {
      std::fputs(train::flags_help("bazel run //train --").c_str(), stdout);
      return train::kExitOk;
    }
    return train::run_training(train::make_run_config(flags));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return train::kExitUsage;
  }
}
