// train/run_start.cc: data validation, the output lock, the start/resume checks, and the mpirun re-launch.
#include "train/run_start.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "data/shards.h"
#include "engine/comm/nccl_transport/rank_gpu.h"
#include "train/checkpoint.h"
#include "train/data_setup.h"
#include "train/hostfile.h"
#include "train/restart.h"
#include "train/train_state.h"

namespace train {

void validate_data(const RunConfig& config) {
  for (const std::string& pattern : {config.train_pattern, config.val_pattern}) {
    // read_shard checks the header and every token id against the vocabulary (data::DataError naming both).
    for (const std::string& path : data::glob_files(pattern)) data::read_shard(path, config.model.vocab_size);
  }
}

OutputLock::~OutputLock() {
  if (fd_ >= 0) ::close(fd_);
}

void OutputLock::acquire(const std::string& out_dir) {
  make_dirs(out_dir);
  const std::string path = out_dir + "/.lock";
  // Not O_CLOEXEC: under --executor mpi this process becomes mpirun, which keeps holding the lock.
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd_ < 0) throw CheckpointError("cannot open " + path + ": " + std::strerror(errno) + "; check --out-dir");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof(holder) - 1, 0);
    std::string pid = n > 0 ? std::string(holder, static_cast<size_t>(n)) : "?";
    pid.erase(std::remove(pid.begin(), pid.end(), '\n'), pid.end());
    throw CheckpointError("another run (pid " + pid + ") is writing " + out_dir +
                          "; wait for it to end, or use another --run-name / --out-dir");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    throw CheckpointError("cannot write " + path + ": " + std::strerror(errno));
  }
}

RunStart check_start(const RunConfig& config) {
  RunStart start;
  const auto existing = list_checkpoints(config.checkpoint_dir);
  if (!config.flags.resume) {
    if (!existing.empty()) {
      // Starting over here would mix two runs' checkpoints (and --resume would pick the wrong one): refuse.
      throw CheckpointError(config.out_dir + " already holds a run (checkpoints up to step " +
                            std::to_string(existing.back().first) +
                            "); pass --resume to continue it, --run-name NAME for a new run, or delete the directory");
    }
    return start;
  }
  start.manifest = latest_checkpoint(config);
  const ResumePoint point = verify_checkpoint(start.manifest, config);
  start.step = point.step;
  start.changed_flags = point.changed_flags;
  if (config.flags.steps <= start.step) {
    throw FlagError("--steps " + std::to_string(config.flags.steps) + " is not beyond the checkpoint's step " +
                    std::to_string(start.step) + " (" + start.manifest + "): nothing to train; raise --steps, or "
                    "use --sample-only to sample from it");
  }
  return start;
}

int job_ranks(const RunConfig& config) { return config.replicas.replicas * config.pipeline.stages; }

int threads_per_process(const RunConfig& config) {
  if (config.flags.threads > 0) return config.flags.threads;
  if (!config.mpi) return 0;  // DeviceContext's default: every core
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");  // ranks on this host
  // The launcher (no mpirun yet) assumes every rank on this host, as mpirun places them without a hostfile.
  const int here = local != nullptr && std::atoi(local) > 0 ? std::atoi(local) : job_ranks(config);
  return std::max(1, cores / here);
}

std::unique_ptr<engine::DeviceContext> make_device_context(const RunConfig& config) {
  auto device = std::make_unique<engine::DeviceContext>(config.device, threads_per_process(config));
  if (config.bf16_gemms) device->enable_bf16_gemms(config.bf16_gemm_scratch_elements());
  return device;
}

void require_hostfile_slots(const RunConfig& config) {
  if (config.hostfile.empty()) return;
  const int ranks = job_ranks(config), slots = hostfile_slots(config.hostfile);
  if (ranks <= slots) return;
  const std::string S = std::to_string(config.pipeline.stages), R = std::to_string(config.replicas.replicas);
  const bool replicas = config.replicas.replicas > 1;
  throw FlagError((replicas ? "--replicas " + R + " x --stages " + S : "--stages " + S) + " needs " +
                  std::to_string(ranks) + " ranks, but hostfile " + config.hostfile + " has " + std::to_string(slots) +
                  (slots == 1 ? " slot" : " slots") + "; add slots or lower " +
                  (replicas ? "--replicas/--stages" : "--stages"));
}

namespace {

// --device cuda: a GPU here (once, before any rank starts); --transport nccl: one per stage (unless the ranks are
// on the hosts of --hostfile, each of which checks its own).
void require_devices(const RunConfig& config) {
  if (config.device != engine::Device::cuda || !config.hostfile.empty()) return;
  std::string why;
  const int gpus = engine::comm::visible_gpu_count(&why);
  if (gpus == 0) throw FlagError("--device cuda: " + why + "; use --device cpu");
  const int S = config.pipeline.stages;
  if (config.transport == "nccl" && gpus < S) {
    throw FlagError("--transport nccl needs one GPU per stage: --stages " + std::to_string(S) + " on a machine with " +
                    std::to_string(gpus) + " GPU(s); use --transport mpi (stages share GPUs, codes go through host "
                    "memory)");
  }
}

// The one process-wide buffer: the message, built before the handler is installed (write() is async-signal-safe,
// formatting is not).
char g_sigterm_message[160];

void on_sigterm(int) {
  const ssize_t ignored = write(STDERR_FILENO, g_sigterm_message, std::strlen(g_sigterm_message));
  (void)ignored;
  _exit(143);
}

}  // namespace

int launch_ranks(RunConfig config, const std::vector<std::string>& args) {
  require_hostfile_slots(config);
  require_devices(config);
  require_real_link(config.real_link);
  setup_data(&config, /*report=*/true);
  OutputLock lock;
  if (!config.flags.sample_only) {
    validate_data(config);
    lock.acquire(config.out_dir);
    check_start(config);  // the ranks resume from the same checkpoint; rank 0 reports what changed
  }
  std::fflush(stdout);  // what was printed here (the data line) must not die with this process image
  if (config.max_restarts > 0 && !config.flags.sample_only) {
    return run_with_restarts(config, args);  // mpirun as a child; the lock stays held here across the attempts
  }
  return exec_mpirun(job_ranks(config), config.hostfile, args, threads_per_process(config), config.real_link);
}

void explain_sigterm(int stage, int rank) {
  std::snprintf(g_sigterm_message, sizeof(g_sigterm_message),
                "stage %d (rank %d): stopped by mpirun (SIGTERM) because another rank failed; mpirun names it\n",
                stage, rank);
  std::signal(SIGTERM, on_sigterm);
}

}  // namespace train
