// train/pipeline_launch.cc: builds the mpirun command that starts the ranks (one per pipeline stage and replica), and
// execs it (the launcher becomes mpirun) or, under --max-restarts, starts it as a child.
//
// With a real link, the command is
//
//   bash -c <netlink.sh> netlink.sh exec resbm<pid> S MBPS MS --
//     env PMIX_MCA_ptl_tcp_if_include=10.213.0.0/24
//     mpirun ... --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include 10.213.0.0/24
//       -np 1 ip netns exec resbm<pid>_s0 <this binary> <args> : ... : -np 1 ip netns exec resbm<pid>_s<S-1> ...
//
// netlink.sh builds the namespaces, runs the rest in the bridge's namespace (resbm<pid>_hub) and removes them when
// mpirun ends (or is stopped). Why each part:
//   - MPMD app contexts are numbered in order, so rank k = stage k runs in namespace resbm<pid>_s<k>.
//   - btl tcp,self and pml ob1: no shared-memory path (btl vader, or UCX's own shared memory under pml ucx), so the
//     bytes between stages go through TCP and cross the shaped veth. btl_tcp_if_include names the subnet: each
//     rank's namespace has that one interface besides loopback, which MPI would otherwise try first.
//   - mpirun's PMIx server is what each rank connects to at MPI_Init (PMIx 4: over TCP; its default is the
//     loopback, which a rank in another namespace cannot reach: "OPAL ERROR: Unreachable" in MPI_Init). With
//     PMIX_MCA_ptl_tcp_if_include it listens on the bridge address instead, which every rank reaches over its veth.
//     mpirun runs in the hub namespace so that the bridge address is its own, and the root namespace is untouched.
//   - oob_tcp_if_include is not needed: on one host the ranks talk to mpirun through PMIx only (ORTE's OOB joins
//     daemons on different hosts; here all ranks are on this one).
#include "train/pipeline_launch.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <stdexcept>

#include "engine/comm/mpi_transport.h"
#include "tools/netlink/netlink_script.h"

namespace train {

namespace {

// The subnet netlink.sh gives the stages (10.213.0.<k+1>) and the bridge (.254); the two must agree.
constexpr char kRealLinkSubnet[] = "10.213.0.0/24";

// The executable `name` in PATH or, for root's tools on Debian, /usr/sbin and /sbin; empty when there is none.
std::string find_tool(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(std::string(path != nullptr ? path : "") + ":/usr/sbin:/sbin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + name;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return "";
}

// A rate or a delay as netlink.sh and tc read it: 50, 12.5 (not 50.000000).
std::string number(double v) {
  char s[32];
  std::snprintf(s, sizeof(s), "%g", v);
  return s;
}

std::string self_executable() {
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  return n > 0 ? std::string(exe, static_cast<size_t>(n)) : std::string("/proc/self/exe");
}

}  // namespace

bool launched_by_mpirun() { return engine::comm::mpi_launch_size() > 0; }

void require_real_link(const RealLink& link) {
  if (link.mbps <= 0) return;
  if (geteuid() != 0) {
    throw std::invalid_argument(
        "--real-link-mbps needs root (it creates network namespaces and shapes them with tc); run as root, or use "
        "--link-mbps for the emulated link");
  }
  for (const char* tool : {"ip", "tc"}) {
    if (find_tool(tool).empty()) {
      throw std::invalid_argument(std::string("--real-link-mbps needs the '") + tool +
                                  "' command (iproute2), found neither on PATH nor in /usr/sbin or /sbin: "
                                  "apt-get install iproute2");
    }
  }
}

std::vector<std::string> mpirun_command(int np, const std::string& hostfile, const std::vector<std::string>& args,
                                        int threads_per_rank, const RealLink& real_link) {
  const std::string self = self_executable();
  const bool real = real_link.mbps > 0;
  if (real && !hostfile.empty()) {
    throw std::invalid_argument("a real link joins ranks on this machine; it cannot be combined with --hostfile");
  }
  std::vector<std::string> cmd;
  const std::string name = "resbm" + std::to_string(getpid());  // run-specific: parallel runs do not collide
  if (real) {
    cmd = {"bash", "-c", netlink::kScript, "netlink.sh", "exec", name, std::to_string(np), number(real_link.mbps),
           number(real_link.latency_ms), "--", "env", std::string("PMIX_MCA_ptl_tcp_if_include=") + kRealLinkSubnet};
  }
  cmd.push_back("mpirun");
  if (geteuid() == 0) cmd.push_back("--allow-run-as-root");  // OpenMPI refuses root without it
  cmd.insert(cmd.end(), {"--oversubscribe", "--bind-to", "none"});
  if (!hostfile.empty()) cmd.insert(cmd.end(), {"--hostfile", hostfile});
  cmd.insert(cmd.end(), {"-x", "OMP_NUM_THREADS=" + std::to_string(threads_per_rank)});
  if (!real) {
    cmd.insert(cmd.end(), {"-np", std::to_string(np), self});
    cmd.insert(cmd.end(), args.begin(), args.end());
    return cmd;
  }
  cmd.insert(cmd.end(), {"--mca", "pml", "ob1", "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include",
                         kRealLinkSubnet});
  const std::string ip = find_tool("ip");
  for (int k = 0; k < np; ++k) {
    if (k > 0) cmd.push_back(":");
    cmd.insert(cmd.end(), {"-np", "1", ip.empty() ? "ip" : ip, "netns", "exec", name + "_s" + std::to_string(k), self});
    cmd.insert(cmd.end(), args.begin(), args.end());
  }
  return cmd;
}

namespace {

// execvp's argument vector over `cmd` (which must outlive it).
std::vector<char*> c_argv(const std::vector<std::string>& cmd) {
  std::vector<char*> argv;
  for (const std::string& a : cmd) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  return argv;
}

// "launching: <command>" on stderr, before every start: the user sees what runs (and each restart's command).
void print_launch(const std::vector<std::string>& cmd) {
  std::fprintf(stderr, "launching:");
  for (const std::string& a : cmd) {
    // The script's text is an argument of bash -c: named, not printed.
    std::fprintf(stderr, " %s", a == netlink::kScript ? "<tools/netlink/netlink.sh>" : a.c_str());
  }
  std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

void print_exec_failure(const char* program, int err, const RealLink& real_link) {
  std::fprintf(stderr, "could not run %s: %s (%s)\n", program, std::strerror(err),
               real_link.mbps > 0 ? "the real link needs bash and openmpi-bin"
                                  : "install openmpi-bin, or pass --executor local");
}

}  // namespace

int exec_mpirun(int np, const std::string& hostfile, const std::vector<std::string>& args, int threads_per_rank,
                const RealLink& real_link) {
  const std::vector<std::string> cmd = mpirun_command(np, hostfile, args, threads_per_rank, real_link);
  std::vector<char*> argv = c_argv(cmd);
  print_launch(cmd);
  execvp(argv[0], argv.data());
  print_exec_failure(argv[0], errno, real_link);
  return 2;
}

pid_t spawn_mpirun(int np, const std::string& hostfile, const std::vector<std::string>& args, int threads_per_rank,
                   const RealLink& real_link) {
  const std::vector<std::string> cmd = mpirun_command(np, hostfile, args, threads_per_rank, real_link);
  std::vector<char*> argv = c_argv(cmd);
  print_launch(cmd);
  // exec's failure comes back through a close-on-exec pipe: end of file means mpirun runs, an errno means it does
  // not (and restarting it would fail the same way).
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "cannot start mpirun: pipe: %s\n", std::strerror(errno));
    return -1;
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    ::close(report[0]);
    // The launcher gone (even by SIGKILL), the job must not train on unattended: mpirun gets SIGTERM and stops
    // its ranks.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(143);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);  // the caller may block signals around the fork
    execvp(argv[0], argv.data());
    const int err = errno;
    const ssize_t ignored = ::write(report[1], &err, sizeof(err));
    (void)ignored;
    _exit(127);
  }
  ::close(report[1]);
  if (pid < 0) {
    std::fprintf(stderr, "cannot start mpirun: fork: %s\n", std::strerror(errno));
    ::close(report[0]);
    return -1;
  }
  int err = 0;
  ssize_t n;
  do {
    n = ::read(report[0], &err, sizeof(err));
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof(err))) {
    waitpid(pid, nullptr, 0);
    print_exec_failure(argv[0], err, real_link);
    return -1;
  }
  return pid;
}

}  // namespace train
