// train/pipeline_launch.cc: builds and execs the mpirun command that starts one rank per pipeline stage.
#include "train/pipeline_launch.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>

#include "engine/comm/mpi_transport.h"

namespace train {

bool launched_by_mpirun() { return engine::comm::mpi_launch_size() > 0; }

std::vector<std::string> mpirun_command(int np, const std::string& hostfile, const std::vector<std::string>& args,
                                        int threads_per_rank) {
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  std::string self = n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string("/proc/self/exe");
  std::vector<std::string> cmd = {"mpirun"};
  if (geteuid() == 0) cmd.push_back("--allow-run-as-root");  // OpenMPI refuses root without it
  cmd.insert(cmd.end(), {"--oversubscribe", "--bind-to", "none", "-np", std::to_string(np)});
  if (!hostfile.empty()) cmd.insert(cmd.end(), {"--hostfile", hostfile});
  cmd.insert(cmd.end(), {"-x", "OMP_NUM_THREADS=" + std::to_string(threads_per_rank)});
  cmd.push_back(self);
  cmd.insert(cmd.end(), args.begin(), args.end());
  return cmd;
}

int exec_mpirun(int np, const std::string& hostfile, const std::vector<std::string>& args, int threads_per_rank) {
  const std::vector<std::string> cmd = mpirun_command(np, hostfile, args, threads_per_rank);
  std::vector<char*> argv;
  for (const std::string& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::fprintf(stderr, "launching:");
  for (const std::string& a : cmd) std::fprintf(stderr, " %s", a.c_str());
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
  execvp(argv[0], argv.data());
  std::fprintf(stderr, "could not run mpirun: %s (install openmpi-bin, or pass --executor local)\n",
               std::strerror(errno));
  return 2;
}

}  // namespace train
