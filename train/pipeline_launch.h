// train/pipeline_launch.h: starting a program as `np` ranks of an mpirun job (one rank per pipeline stage and
// replica), on this machine's network or, with a real link, each rank in a network namespace of its own behind a
// link that `tc` shapes (tools/netlink/netlink.sh).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace train {

// True when this process is a rank of an mpirun job (OMPI_COMM_WORLD_SIZE / PMI_SIZE in the environment).
bool launched_by_mpirun();

// A real rate-limited link between the ranks of one machine (--real-link-mbps): rank k runs in network namespace
// resbm<pid>_s<k> (pid: the launching process), whose one interface is a veth into a bridge; tc shapes each rank's
// egress (tbf at mbps; netem delay of latency_ms where the kernel has netem). MPI uses TCP only, so every byte
// between stages crosses a shaped veth.
struct RealLink {
  double mbps = 0;        // 0: no real link (the ranks share this machine's network, and MPI its shared memory)
  double latency_ms = 0;  // one-way delay per message; needs netem (netlink.sh refuses it where the kernel lacks it)
};

// What the command the user ran can check before any rank starts: root, and ip and tc on PATH (or in /usr/sbin,
// /sbin). Throws std::invalid_argument saying what is missing and how to get it. Whether this kernel lets root
// create network namespaces (an unprivileged container does not) is found out by netlink.sh, which refuses in
// one line and starts nothing.
void require_real_link(const RealLink& link);

// The mpirun command line that runs this executable (/proc/self/exe) with `args` as `np` ranks: mpirun from PATH,
// --allow-run-as-root when running as root, --oversubscribe (more ranks than cores is fine on one machine),
// --bind-to none, OMP_NUM_THREADS exported, and --hostfile when given (multi-host: the same command on the
// first host; the binary must exist at the same path on every host). With a real link (real_link.mbps > 0; no
// hostfile) the command is netlink.sh's `exec` (built into this binary) around mpirun, one MPMD app context per
// rank in its namespace, MPI's TCP transport only: see pipeline_launch.cc.
std::vector<std::string> mpirun_command(int np, const std::string& hostfile, const std::vector<std::string>& args,
                                        int threads_per_rank, const RealLink& real_link = {});

// Replaces this process by mpirun_command(...) (execvp). Returns only on failure, with a message on stderr.
int exec_mpirun(int np, const std::string& hostfile, const std::vector<std::string>& args, int threads_per_rank,
                const RealLink& real_link = {});

// Starts mpirun_command(...) as a child (--max-restarts: the launcher outlives the job to start it again) and
// returns its pid, or -1 with a message on stderr when it cannot run (fork, or exec: mpirun missing). The child
// starts with no signal blocked, and gets SIGTERM should this process die first (PR_SET_PDEATHSIG).
pid_t spawn_mpirun(int np, const std::string& hostfile, const std::vector<std::string>& args, int threads_per_rank,
                   const RealLink& real_link = {});

}  // namespace train
