// train/restart.cc: --max-restarts: mpirun as a child of the launcher, waited for, cleaned up after and started
// again from the newest complete checkpoint.
#include "train/restart.h"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <thread>

#include "train/checkpoint.h"
#include "train/run_start.h"
#include "train/train_state.h"
#include "train/trainer.h"

namespace train {

LastLoggedStep last_logged_step(const std::string& log_path) {
  std::ifstream in(log_path);
  LastLoggedStep last;
  std::string line;
  while (std::getline(in, line)) {
    // Rank 0 writes each record whole and flushed ({"type": "step", "step": 7, "loss": ..., ...}): a killed run
    // leaves at most a torn last line, which has no "loss" and is passed over.
    if (line.find("\"type\": \"step\"") == std::string::npos) continue;
    const size_t step = line.find("\"step\": "), loss = line.find("\"loss\": ");
    if (step == std::string::npos || loss == std::string::npos) continue;
    last.step = std::strtoll(line.c_str() + step + 8, nullptr, 10);
    last.loss_not_finite = line.compare(loss + 8, 4, "null") == 0;
  }
  return last;
}

namespace {

// The job's mpirun, for the signal handler; 0 between attempts.
volatile sig_atomic_t g_job = 0;
// A signal that told the launcher to stop (SIGTERM from `timeout` or a scheduler, SIGINT, SIGHUP): passed on to
// mpirun, which stops the ranks; the job is then not started again.
volatile sig_atomic_t g_stop_signal = 0;

void on_stop_signal(int sig) {
  g_stop_signal = sig;
  if (g_job > 0) kill(static_cast<pid_t>(g_job), sig);
}

const int kStopSignals[] = {SIGTERM, SIGINT, SIGHUP};

void install_stop_handlers() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: waitpid returns EINTR and the loop looks again
  for (int sig : kStopSignals) sigaction(sig, &sa, nullptr);
}

// The processes whose parent is this one, read from /proc/<pid>/stat (field 4, after the command's parentheses).
std::vector<pid_t> children() {
  std::vector<pid_t> out;
  const pid_t self = getpid();
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return out;
  while (const dirent* e = readdir(proc)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream in(std::string("/proc/") + e->d_name + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(stat.c_str() + paren + 1, " %c %d", &state, &ppid) == 2 && ppid == self) out.push_back(pid);
  }
  closedir(proc);
  return out;
}

// After mpirun has been reaped: the ranks it left behind (re-parented here, this process being a child subreaper)
// are killed and reaped, so that no rank of the failed attempt still runs, or holds the lock's descriptor, when the
// next one starts. A rank stopped by SIGSTOP is one: mpirun's SIGTERM waits for a SIGCONT that never comes.
void reap_leftovers() {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    const std::vector<pid_t> left = children();
    if (left.empty()) return;
    if (std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "warning: %zu process(es) of the failed job (pid %d, ...) did not end after SIGKILL; "
                   "starting the next attempt anyway\n", left.size(), static_cast<int>(left[0]));
      return;
    }
    for (pid_t pid : left) kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// One attempt: starts mpirun, waits for it, cleans up after it. Returns its wait status, or -1 when it could not
// be started (spawn_mpirun said why).
int run_job(const RunConfig& config, const std::vector<std::string>& args) {
  // Stop signals blocked from the fork until g_job is set: one arriving in between is passed on, not lost.
  sigset_t stops, before;
  sigemptyset(&stops);
  for (int sig : kStopSignals) sigaddset(&stops, sig);
  sigprocmask(SIG_BLOCK, &stops, &before);
  const pid_t pid =
      spawn_mpirun(job_ranks(config), config.hostfile, args, threads_per_process(config), config.real_link);
  if (pid > 0) g_job = pid;
  sigprocmask(SIG_SETMASK, &before, nullptr);
  if (pid < 0) return -1;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      std::fprintf(stderr, "error: waiting for mpirun (pid %d): %s\n", static_cast<int>(pid), std::strerror(errno));
      status = 0x7f00;  // exited 127
      break;
    }
  }
  g_job = 0;
  reap_leftovers();
  return status;
}

// The exit status a wait status stands for, as a shell reports it.
int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

std::string describe(int status) {
  if (WIFSIGNALED(status)) {
    return "mpirun was killed by signal " + std::to_string(WTERMSIG(status)) + ", " + strsignal(WTERMSIG(status));
  }
  const int code = WEXITSTATUS(status);
  // mpirun exits with the first failed rank's status: 128 + n when signal n ended it.
  if (code > 128 && code < 128 + 65) {
    return "mpirun exited with status " + std::to_string(code) + ": a rank ended by signal " +
           std::to_string(code - 128) + ", " + strsignal(code - 128);
  }
  return "mpirun exited with status " + std::to_string(code);
}

}  // namespace

int run_with_restarts(const RunConfig& config, const std::vector<std::string>& args) {
  // Orphans of the job (ranks that outlive mpirun) become this process's children, for reap_leftovers.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  install_stop_handlers();
  const int N = config.max_restarts;
  const int64_t end_step =
      config.flags.stop_after > 0 && config.flags.stop_after < config.flags.steps ? config.flags.stop_after
                                                                                   : config.flags.steps;
  std::vector<std::string> attempt = args;  // this attempt's command line: args, or args --resume
  for (int restart = 0;; ++restart) {
    const int status = run_job(config, attempt);
    if (status < 0) return kExitUsage;  // mpirun cannot run: another attempt would fail the same way
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return kExitOk;
    const std::string why = describe(status);
    if (g_stop_signal != 0) {
      const int sig = g_stop_signal;
      std::fprintf(stderr, "the launcher was sent %s: the job was stopped (%s) and is not restarted; continue "
                   "with --resume\n", sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "SIGHUP", why.c_str());
      return 128 + sig;
    }
    const LastLoggedStep reached = last_logged_step(config.log_path);
    if (reached.loss_not_finite) {
      std::fprintf(stderr, "the job stopped on a non-finite loss at step %lld (%s): not restarted, it would diverge "
                   "again (rank 0's error above says what to do)\n",
                   static_cast<long long>(reached.step), why.c_str());
      return exit_code(status);
    }
    if (restart == N) {
      std::fprintf(stderr, "error: the job failed (%s) and all %d restart(s) of --max-restarts %d were used; "
                   "continue with --resume\n", why.c_str(), N, N);
      return exit_code(status);
    }
    const auto checkpoints = list_checkpoints(config.checkpoint_dir);
    if (checkpoints.empty()) {
      // Nothing to resume: the same command again, from step 0 (check_start refuses nothing, and the new run
      // truncates log.jsonl).
      std::fprintf(stderr, "restart %d/%d: the job failed (%s); no checkpoint yet: starting again from step 0, "
                   "%lld step(s) lost\n", restart + 1, N, why.c_str(), static_cast<long long>(reached.step));
      attempt = args;
      continue;
    }
    if (checkpoints.back().first >= end_step) {
      std::fprintf(stderr, "error: the job failed (%s) after its last step's checkpoint %s: nothing is left to "
                   "train; sample from it with --sample-only\n", why.c_str(), checkpoints.back().second.c_str());
      return exit_code(status);
    }
    RunConfig resumed = config;
    resumed.flags.resume = true;
    const RunStart start = check_start(resumed);  // the ranks would refuse a damaged checkpoint; say it here once
    const int64_t lost = reached.step > start.step ? reached.step - start.step : 0;
    std::fprintf(stderr, "restart %d/%d: the job failed (%s); resuming from step %lld (%s), %lld step(s) lost\n",
                 restart + 1, N, why.c_str(), static_cast<long long>(start.step), start.manifest.c_str(),
                 static_cast<long long>(lost));
    // A later --resume wins over an earlier --resume=false: the flags are read left to right.
    attempt = args;
    if (!config.flags.resume) attempt.push_back("--resume");
  }
}

}  // namespace train
