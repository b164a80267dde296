// train/pipeline_main.cc: //train:pipeline, pipeline-parallel training with one process per stage.
//
//   bazel run //train:pipeline -- --stages 4 --preset tiny --bottleneck resbm --ratio 32 --steps 10
//
// runs mpirun (with --allow-run-as-root as root, --oversubscribe) on this same binary with one rank per stage;
// each rank sees OMPI_COMM_WORLD_SIZE and runs its stage. Multi-host: add --hostfile FILE (an OpenMPI hostfile,
// "host slots=N" per line); the binary must be at the same path on every host and the hosts reachable by ssh.
// --executor local runs every stage in this one process instead (the reference executor).
// --device cuda puts each stage on its rank's GPU (the node-local rank modulo the GPUs); --transport nccl (its
// default) sends codes GPU to GPU and needs one GPU per stage, --transport mpi lets stages share a GPU.
// --real-link-mbps R puts each rank in a network namespace of its own, joined to the others by a real link that tc
// shapes to R Mbit/s (tools/netlink/netlink.sh, built into the binary; root), MPI over TCP only.
#include <csignal>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "engine/comm/mpi_transport.h"
#include "engine/device.h"
#include "train/pipeline_launch.h"
#include "train/pipeline_run.h"

namespace {

// When one rank fails, mpirun stops the others with SIGTERM; each says so before leaving (non-zero), so that
// every stage's exit is explained. The text is built before the handler is installed (write() is
// async-signal-safe, formatting is not); this one buffer is the only process-wide state, set once.
char g_sigterm_message[160];

void on_sigterm(int) {
  const ssize_t ignored = write(STDERR_FILENO, g_sigterm_message, std::strlen(g_sigterm_message));
  (void)ignored;
  _exit(143);
}

void install_sigterm_message() {
  const int rank = engine::comm::mpi_launch_rank();
  std::snprintf(g_sigterm_message, sizeof(g_sigterm_message),
                "stage %d (rank %d): stopped by mpirun (SIGTERM) because another stage failed; mpirun names it\n",
                rank, rank);
  std::signal(SIGTERM, on_sigterm);
}

}  // namespace

int main(int argc, char** argv) {
  // OpenMP's idle workers must sleep, not spin, or they steal the core each following sgemm needs (engine/device.h):
  // re-executes once with OMP_WAIT_POLICY=PASSIVE unless the user chose a policy; mpirun's ranks inherit it.
  engine::reexec_with_passive_openmp(argv);
  bool help = false;
  train::PipelineRunOptions options;
  try {
    options = train::parse_pipeline_flags(argc, argv, &help);
    if (help) {
      std::printf("%s", train::pipeline_usage().c_str());
      return 0;
    }
    train::validate(options, resbm::gpt2_preset(options.preset));
    // Once, in the command the user ran (not in each rank): no GPU is one line, and no ranks are started.
    if (!train::launched_by_mpirun()) {
      train::require_devices(options);
      train::require_real_link(options.real_link);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 2;
  }
  if (options.executor == "mpi" && !train::launched_by_mpirun()) {
    const int hw = static_cast<int>(std::thread::hardware_concurrency());
    const int threads = options.threads > 0 ? options.threads : std::max(1, hw / options.pipeline.stages);
    return train::exec_mpirun(options.pipeline.stages, options.hostfile,
                              std::vector<std::string>(argv + 1, argv + argc), threads, options.real_link);
  }
  if (train::launched_by_mpirun()) install_sigterm_message();
  try {
    return train::run_pipeline(options, nullptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pipeline: %s\n", e.what());
    return 2;
  }
}
