// tests/pipeline/subprocess.h: running //train:pipeline from a test: where the binary is, whether mpirun
// exists, starting a shell command in the background and waiting for it with a deadline.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

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

}  // namespace pipeline_test
