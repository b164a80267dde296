// train/pipeline_main.cc: //train:pipeline, pipeline-parallel training with one process per stage.
//
//   bazel run //train:pipeline -- --stages 4 --preset tiny --bottleneck resbm --ratio 32 --steps 10
//
// runs mpirun (with --allow-run-as-root as root, --oversubscribe) on this same binary with one rank per stage;
// each rank sees OMPI_COMM_WORLD_SIZE and runs its stage. Multi-host: add --hostfile FILE (an OpenMPI hostfile,
// "host slots=N" per line); the binary must be at the same path on every host and the hosts reachable by ssh.
// --executor local runs every stage in this one process instead (the reference executor).
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "train/pipeline_launch.h"
#include "train/pipeline_run.h"

int main(int argc, char** argv) {
  bool help = false;
  train::PipelineRunOptions options;
  try {
    options = train::parse_pipeline_flags(argc, argv, &help);
    if (help) {
      std::printf("%s", train::pipeline_usage().c_str());
      return 0;
    }
    train::validate(options, resbm::gpt2_preset(options.preset));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 2;
  }
  if (options.executor == "mpi" && !train::launched_by_mpirun()) {
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    const int threads = options.threads > 0 ? options.threads : std::max(1, hw / options.pipeline.stages);
    return train::exec_mpirun(options.pipeline.stages, options.hostfile,
                              std::vector<std::string>(argv + 1, argv + argc), threads);
  }
  try {
    return train::run_pipeline(options, nullptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 2;
  }
}
