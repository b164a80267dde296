// tests/comm/real_link_test.cc: //train --executor mpi --real-link-mbps, run as a user runs it: each rank in a network
// namespace of its own, behind a veth whose egress tc shapes (tools/netlink/netlink.sh, built into the binary).
//   - two stages of the tiny preset over a real 50 Mbit/s link give the same losses, bit for bit, as the same run
//     without it (the link changes timing only), and take at least the time the tied wte exchange needs at 50
//     Mbit/s (so the bytes did cross the shaped link); the namespaces are gone afterwards;
//   - a run stopped with SIGTERM (as `timeout` stops it) removes its namespaces too;
//   - what cannot work is refused in one line: a delay where the kernel has no netem, an unprivileged container
//     (no namespaces), and, before anything starts, the flag combinations that make no sense.
// The runs need root and a kernel that lets root create network namespaces (not an unprivileged container); without
// them they are skipped, saying why. Every command is bounded by `timeout`.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

std::string runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir ? std::string(srcdir) + "/resbm/" + path : path;
}

std::string temp_path(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  return std::string(t ? t : "/tmp") + "/real_link_test." + name;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Outcome {
  int rc = -1;         // exit status (`timeout` answers 124 when it stopped the command)
  double seconds = 0;  // wall time
  std::string output;  // stdout and stderr together
};

// Runs a shell command under `timeout limit_s` (SIGTERM, as a user's Ctrl-C or a batch system would stop it).
Outcome shell(const std::string& command, const std::string& tag, int limit_s) {
  const std::string log = temp_path(tag + ".log");
  const auto t0 = std::chrono::steady_clock::now();
  const std::string bounded = "timeout " + std::to_string(limit_s) + " " + command + " > " + log + " 2>&1";
  const int status = std::system(bounded.c_str());
  Outcome r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.output = slurp(log);
  return r;
}

// The run's name (resbm<pid>) from the command the launcher printed ("... netlink.sh exec resbm1234 2 50 ..."), or
// empty when it printed none.
std::string run_name(const std::string& output) {
  const std::string mark = "netlink.sh exec ";
  const size_t at = output.find(mark);
  if (at == std::string::npos) return "";
  const size_t begin = at + mark.size();
  return output.substr(begin, output.find(' ', begin) - begin);
}

// The namespaces of run `name` that exist now, one per line.
std::string namespaces_of(const std::string& name) {
  return shell("ip netns list | grep '^" + name + "_' || true", "netns_list", 10).output;
}

// Why this machine cannot run the real link, or empty when it can (root, mpirun, and netlink.sh's probe: a
// namespace created and removed).
std::string unavailable(std::string* probe_output) {
  if (geteuid() != 0) return "not root: network namespaces and tc need root; the real link is NOT tested here";
  if (std::system("command -v mpirun > /dev/null 2>&1") != 0) return "mpirun not found: the real link is NOT tested";
  const Outcome probe = shell("bash " + runfile("tools/netlink/netlink.sh") + " probe", "probe", 20);
  *probe_output = probe.output;
  if (probe.rc != 0) return "netlink.sh probe failed, the real link is NOT tested here: " + probe.output;
  return "";
}

// Two stages of the tiny preset, two steps, the wte tied between them: each step sends the wte gradient
// (Vp * C * 4 = 50304 * 128 * 4 bytes) each way between the two stages.
const std::string kTinyRun = pipeline_test::data_flags() +
                              " --executor mpi --preset tiny --stages 2 --steps 2 --batch-size 4 --seq-len 64"
                              " --threads 1 --comm-timeout-s 60 --sample-length 0";
constexpr double kTiedBytesPerDirection = 50304.0 * 128 * 4;

class RealLink : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why_not = unavailable(&probe_);
    if (!why_not.empty()) GTEST_SKIP() << why_not;
  }
  // Whatever a failed assertion left behind is removed (netlink.sh down is idempotent).
  void TearDown() override {
    for (const std::string& name : names_) {
      shell("bash " + runfile("tools/netlink/netlink.sh") + " down " + name, "cleanup", 20);
    }
  }
  // Runs the trainer with args and --out-dir temp_path(tag); with prefixed, `args` is the whole command (the binary
  // behind a wrapper).
  Outcome pipeline(const std::string& args, const std::string& tag, int limit_s, bool prefixed = false) {
    std::system(("rm -rf " + temp_path(tag)).c_str());
    Outcome r = shell((prefixed ? args : runfile("train/train") + " " + args) + " --out-dir " + temp_path(tag), tag,
                      limit_s);
    const std::string name = run_name(r.output);
    if (!name.empty()) names_.push_back(name);
    return r;
  }

  std::string probe_;  // netlink.sh probe's line: whether netem exists
  std::vector<std::string> names_;
};

TEST_F(RealLink, SameLossesAsWithoutTheLinkAtTheShapedRate) {
  const Outcome plain = pipeline(kTinyRun, "without", 60);
  ASSERT_EQ(plain.rc, 0) << plain.output;
  const Outcome real = pipeline(kTinyRun + " --real-link-mbps 50", "with", 60);
  ASSERT_EQ(real.rc, 0) << real.output;
  const std::string name = run_name(real.output);
  ASSERT_FALSE(name.empty()) << "no real link launched:\n" << real.output;
  EXPECT_NE(real.output.find("netlink.sh: up " + name + ": "), std::string::npos) << real.output;
  EXPECT_NE(real.output.find("tbf 50 Mbit/s"), std::string::npos) << real.output;
  // The link changes timing only: the same losses, bit for bit (9 significant digits), both steps.
  const std::string losses = pipeline_test::logged_losses(temp_path("with"));
  EXPECT_EQ(std::count(losses.begin(), losses.end(), '\n'), 2) << losses;
  EXPECT_EQ(losses, pipeline_test::logged_losses(temp_path("without")));
  // A lower bound only (a loaded machine is slower, never faster): each step's tied exchange needs its bytes' time
  // at 50 Mbit/s; without the shaping the whole run takes about a second.
  const double wire_s = 2 * 8 * kTiedBytesPerDirection / 50e6;
  EXPECT_GE(real.seconds, wire_s) << "2 steps took " << real.seconds << " s; the shaped link needs " << wire_s
                                  << " s for the tied exchange alone:\n"
                                  << real.output;
  EXPECT_EQ(namespaces_of(name), "") << "namespaces left after the run";
}

TEST_F(RealLink, StoppedRunRemovesItsNamespaces) {
  // The run needs about 9 s; `timeout` stops it after 4 (SIGTERM to the whole job).
  const Outcome stopped = pipeline(kTinyRun + " --real-link-mbps 50", "stopped", 4);
  EXPECT_EQ(stopped.rc, 124) << stopped.output;
  const std::string name = run_name(stopped.output);
  ASSERT_FALSE(name.empty()) << "no real link launched:\n" << stopped.output;
  ASSERT_NE(stopped.output.find("netlink.sh: up " + name + ": "), std::string::npos)
      << "stopped before the link was up:\n" << stopped.output;
  EXPECT_NE(stopped.output.find("netlink.sh: down " + name), std::string::npos) << stopped.output;
  EXPECT_EQ(namespaces_of(name), "") << "namespaces left after SIGTERM";
}

TEST_F(RealLink, DelayWithoutNetemIsRefused) {
  if (probe_.find("netem (delay) no") == std::string::npos) {
    GTEST_SKIP() << "this kernel has netem, so a delay is not refused (the delayed link itself is NOT tested)";
  }
  const Outcome r = pipeline(kTinyRun + " --real-link-mbps 50 --real-link-latency-ms 5", "netem", 30);
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("this kernel has no netem qdisc"), std::string::npos) << r.output;
  const std::string name = run_name(r.output);
  ASSERT_FALSE(name.empty()) << r.output;
  EXPECT_EQ(namespaces_of(name), "") << "namespaces left after the refusal";
}

// An unprivileged container, as `unshare --user --map-root-user` makes one: root inside (so the launcher's own
// check passes), but without the host's privileges, so `ip netns add` fails: netlink.sh says so in one line.
TEST_F(RealLink, UnprivilegedContainerIsRefused) {
  if (std::system("timeout 10 unshare --user --map-root-user true > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "unshare --user is not available here: the unprivileged case is NOT tested";
  }
  const Outcome r = pipeline("unshare --user --map-root-user " + runfile("train/train") + " " + kTinyRun +
                                 " --real-link-mbps 50",
                             "unprivileged", 30, /*prefixed=*/true);
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_NE(r.output.find("netlink.sh: cannot create network namespace"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("an unprivileged container"), std::string::npos) << r.output;
}

// Refused in the command the user ran, before anything starts: no root needed to check these.
TEST(RealLinkRefusals, CombinationsThatCannotWork) {
  const struct {
    std::string args, expected;
  } cases[] = {
      {"--real-link-mbps 50 --link-mbps 50", "cannot be combined with --link-mbps"},
      {"--real-link-mbps 50 --hostfile hosts", "--real-link-mbps joins ranks on this machine"},
      {"--real-link-mbps 50 --executor local", "need one process per stage: add --executor mpi"},
      {"--real-link-latency-ms 5", "--real-link-latency-ms needs --real-link-mbps"},
      {"--real-link-mbps -1", "must be >= 0"},
  };
  for (const auto& c : cases) {
    const Outcome r = shell(runfile("train/train") + " " + kTinyRun + " " + c.args, "refusal", 20);
    EXPECT_EQ(r.rc, 2) << c.args << ":\n" << r.output;
    EXPECT_EQ(r.output.rfind("error: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find(c.expected), std::string::npos) << c.args << ":\n" << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one line, nothing launched:\n" << r.output;
  }
}

}  // namespace
