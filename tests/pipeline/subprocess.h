// tests/pipeline/subprocess.h: running the trainer (//train) from a test: where the binary is, whether mpirun
// exists, small token shards to train on, starting a shell command in the background and waiting for it with a
// deadline, a bounded run of the binary and its losses (read from the run's log.jsonl).
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

#include "data/shards.h"

namespace pipeline_test {

// The trainer in this test's runfiles; without TEST_SRCDIR (a test binary started by hand, or by
// tools/gpu/check.sh from a folder laid out like the runfiles), train/train below the current directory.
inline std::string trainer_binary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir ? std::string(srcdir) + "/resbm/train/train" : std::string("train/train");
}

inline std::string temp_dir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t ? t : "/tmp";
}

// Data flags every run starts with (a run's own flags come after and win): shards of a learnable token stream
// (period 97), made once per test process, so that no run needs the dataset mirror; evaluation and sampling
// short; checkpoints only at the end.
inline std::string data_flags() {
  static const std::string flags = [] {
    const std::string dir = temp_dir() + "/shards";
    std::system(("mkdir -p " + dir).c_str());
    std::vector<int32_t> tokens(20000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 31) % 97 + 100);
    data::write_shard(dir + "/train.bin", tokens);
    tokens.resize(2000);
    data::write_shard(dir + "/val.bin", tokens);
    return "--train-data " + dir + "/train.bin --val-data " + dir + "/val.bin --data-dir " + temp_dir() +
           "/data_dir --eval-interval 0 --eval-batches 1 --sample-length 4 --checkpoint-interval 0";
  }();
  return flags;
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


// The text of a scalar field of one log.jsonl record ("key": value), or "" when absent.
inline std::string json_field(const std::string& line, const std::string& key) {
  const size_t p = line.find("\"" + key + "\": ");
  if (p == std::string::npos) return std::string();
  const size_t start = p + key.size() + 4;
  return line.substr(start, line.find_first_of(",}", start) - start);
}

// "step loss grad_norm" per step from a run's log.jsonl, the last record of a step (as after a resume) winning.
// Floats are logged with 9 significant digits: equal text is equal bits.
inline std::string logged_losses(const std::string& out_dir) {
  std::istringstream in(read_file(out_dir + "/log.jsonl"));
  std::vector<std::string> by_step;
  std::string line;
  while (std::getline(in, line)) {
    if (json_field(line, "type") != "\"step\"") continue;
    const size_t step = std::stoul(json_field(line, "step"));
    if (by_step.size() < step) by_step.resize(step);
    by_step[step - 1] = json_field(line, "step") + " " + json_field(line, "loss") + " " +
                        json_field(line, "grad_norm") + "\n";
  }
  std::string out;
  for (const std::string& s : by_step) out += s;
  return out;
}

// One run of the trainer, bounded: what it printed and the losses it logged.
struct PipelineRun {
  int rc = -1;          // exit status; -1: still running after the limit (then killed)
  double seconds = 0;   // wall time
  std::string output;   // stdout and stderr
  std::string losses;   // "step loss grad_norm" per step
  std::string out_dir;  // the run's --out-dir: temp_dir()/tag
};

// Runs the trainer with data_flags(), args and --out-dir temp_dir()/tag (emptied first), under `timeout limit_s`
// and a wait of limit_s + 10 s. `env` (e.g. "CUDA_VISIBLE_DEVICES=0") prefixes the command; mpirun's local ranks
// inherit it.
inline PipelineRun run_pipeline(const std::string& env, const std::string& args, const std::string& tag,
                                int limit_s = 120) {
  PipelineRun r;
  r.out_dir = temp_dir() + "/" + tag;
  std::system(("rm -rf " + r.out_dir).c_str());
  const std::string log = temp_dir() + "/" + tag + ".log";
  const double t0 = now_s();
  Background p(env + " timeout " + std::to_string(limit_s) + " " + trainer_binary() + " " + data_flags() + " " + args +
                   " --out-dir " + r.out_dir,
               log);
  r.rc = p.wait(limit_s + 10);
  r.seconds = now_s() - t0;
  r.output = read_file(log);
  r.losses = logged_losses(r.out_dir);
  return r;
}

// The loss column of PipelineRun::losses, in step order.
inline std::vector<double> loss_values(const std::string& losses) {
  std::vector<double> out;
  std::istringstream in(losses);
  int step;
  double loss;
  std::string norm;
  while (in >> step >> loss >> norm) out.push_back(loss);
  return out;
}

}  // namespace pipeline_test
