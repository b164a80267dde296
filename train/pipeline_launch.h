// train/pipeline_launch.h: starting a program as `stages` ranks of an mpirun job (one rank per pipeline stage).
#pragma once

#include <string>
#include <vector>

namespace train {

// True when this process is a rank of an mpirun job (OMPI_COMM_WORLD_SIZE / PMI_SIZE in the environment).
bool launched_by_mpirun();

// The mpirun command line that runs this executable (/proc/self/exe) with `args` as `np` ranks: mpirun from PATH,
// --allow-run-as-root when running as root, --oversubscribe (more ranks than cores is fine on one machine),
// --bind-to none, OMP_NUM_THREADS exported, and --hostfile when given (multi-host: the same command on the
// first host; the binary must exist at the same path on every host).
std::vector<std::string> mpirun_command(int np, const std::string& hostfile, const std::vector<std::string>& args,
                                        int threads_per_rank);

// Replaces this process by mpirun_command(...) (execvp). Returns only on failure, with a message on stderr.
int exec_mpirun(int np, const std::string& hostfile, const std::vector<std::string>& args, int threads_per_rank);

}  // namespace train
