// tests/pipeline/subprocess.h: running //train:pipeline from a test: where the binary is, whether mpirun
// exists, starting a shell command in the background and waiting for it with a deadline, a bounded run of the
// binary and its losses.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace pipeline_test {

// The pipeline binary in this test's runfiles; without TEST_SRCDIR (a test binary started by hand, or by
// tools/gpu/check.sh from a folder laid out like the runfiles), train/pipeline below the current directory.
inline std::string pipeline_binary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir ? std::string(srcdir) + "/resbm/train/pipeline" : std::string("train/pipeline");
}

inline std::string temp_dir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

inline bool have_mpirun() { return std::system("command -v mpirun > /dev/null 2>&1") == 0; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// A shell command started in the background (its own process group), output to a file.
class Background {
 public:
  Background(const std::string& command, const std::string& output) {
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      const std::string full = command + " > " + output + " 2>&1";
      execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  // Waits up to `seconds`; returns the exit status (signals as 128 + n), or -1 if still running (then kills the
  // process group it started).
  int wait(double seconds) {
    const double deadline = now_s() + seconds;
    int status = 0;
    while (now_s() < deadline) {
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(-pid_, SIGKILL);
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return -1;
  }
  ~Background() {
    if (pid_ > 0) wait(0.0);
  }

 private:
  pid_t pid_ = -1;
};


// One run of //train:pipeline, bounded: what it printed and the losses it wrote.
struct PipelineRun {
  int rc = -1;          // exit status; -1: still running after the limit (then killed)
  double seconds = 0;   // wall time
  std::string output;   // stdout and stderr
  std::string losses;   // --losses-out: "step loss hexbits" per step
};

// Runs the pipeline binary with args (plus --losses-out), under `timeout limit_s` and a wait of limit_s + 10 s.
// `env` (e.g. "CUDA_VISIBLE_DEVICES=0") prefixes the command; mpirun's local ranks inherit it. `tag` names the
// run's files in temp_dir().
inline PipelineRun run_pipeline(const std::string& env, const std::string& args, const std::string& tag,
                                int limit_s = 120) {
  const std::string dir = temp_dir();
  const std::string losses = dir + "/" + tag + ".losses", log = dir + "/" + tag + ".log";
  std::remove(losses.c_str());
  const double t0 = now_s();
  Background p(env + " timeout " + std::to_string(limit_s) + " " + pipeline_binary() + " " + args + " --losses-out " +
                   losses,
               log);
  PipelineRun r;
  r.rc = p.wait(limit_s + 10);
  r.seconds = now_s() - t0;
  r.output = read_file(log);
  r.losses = read_file(losses);
  return r;
}

// The loss column of a --losses-out file, in step order.
inline std::vector<double> loss_values(const std::string& losses) {
  std::vector<double> out;
  std::istringstream in(losses);
  int step;
  double loss;
  std::string hex;
  while (in >> step >> loss >> hex) out.push_back(loss);
  return out;
}

}  // namespace pipeline_test
