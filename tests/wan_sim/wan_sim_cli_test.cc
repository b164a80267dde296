// Runs the wan_sim binary as a user would: every bad input (unknown link mode, a rate <= 0, a log without phase
// times, an unknown flag) is one `error:` line on stderr and exit 2; a good invocation prints a prediction.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace {

std::string binary() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir ? std::string(srcdir) + "/resbm/tools/wan_sim/wan_sim" : std::string("tools/wan_sim/wan_sim");
}

std::string temp_path(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  return std::string(t ? t : "/tmp") + "/" + name;
}

struct Result {
  int status;
  std::string out, err;
};

Result run(const std::string& args) {
  const std::string out = temp_path("out.txt"), err = temp_path("err.txt");
  const int raw = std::system((binary() + " " + args + " > " + out + " 2> " + err).c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, slurp(out), slurp(err)};
}

// A flag-only shape: 2 stages, 10 ms forward, 20 ms backward per step, 1024 rows of a K=8 fp32 code.
const std::string kShape = "--stages 2 --micro-batches 2 --schedule gpipe --forward-ms 10 --backward-ms 20 "
                           "--rows 1024 --code-width 8 --wire-dtype fp32 --latency-ms 5 ";

void expect_error(const std::string& args, const std::string& says) {
  const Result r = run(args);
  EXPECT_EQ(r.status, 2) << args;
  EXPECT_EQ(r.err.rfind("error: ", 0), 0u) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "") << args;
}

TEST(WanSimCli, BadInputIsOneErrorLineAndExit2) {
  expect_error(kShape + "--up-mbps 10 --link-mode star", "unknown link mode 'star'");
  expect_error(kShape + "--up-mbps 0", "--up-mbps must be > 0");
  expect_error(kShape + "--up-mbps -5", "--up-mbps must be > 0");
  expect_error(kShape + "--up-mbps 10 --down-mbps 0", "--down-mbps must be > 0");
  expect_error(kShape + "--up-mbps 10 --frobnicate 1", "unknown flag --frobnicate");
  expect_error(kShape + "--up-mbps 10 --schedule zigzag", "unknown schedule 'zigzag'");
  expect_error(kShape + "--up-mbps 10 --replicas 2", "--replicas 2 needs --dp-bytes");
  expect_error(kShape + "--up-mbps 10 --replicas 2 --dp-bytes 100 --dp-mbps 0", "--dp-mbps must be > 0");

  const std::string old_log = temp_path("old.jsonl");
  std::ofstream(old_log) << "{\"type\": \"config\", \"flags\": {\"stages\": \"2\", \"micro-batches\": \"1\"}}\n"
                         << "{\"type\": \"step\", \"step\": 1, \"ms\": 5, \"bytes_fwd\": 8}\n"
                         << "{\"type\": \"step\", \"step\": 2, \"ms\": 5, \"bytes_fwd\": 8}\n"
                         << "{\"type\": \"step\", \"step\": 3, \"ms\": 5, \"bytes_fwd\": 8}\n";
  expect_error("--log " + old_log, "no per-stage phase times");
}

// 1024 x 8 fp32 = 32768 bytes per step per direction, 16384 per micro-batch: 13.1072 ms at 10 Mbit/s.
// GPipe, f = 5 ms, b = 10 ms per micro-batch, latency 5 ms, x = 13.1072 ms per message:
//   stage 0: F0 [0,5] -> wire [5,18.1072] arrives 23.1072; F1 [5,10] -> wire [18.1072,31.2144] arrives 36.2144
//   stage 1: F0 [23.1072,28.1072], F1 [36.2144,41.2144], B0 [41.2144,51.2144] -> wire [51.2144,64.3216]
//            arrives 69.3216; B1 [51.2144,61.2144] -> wire [64.3216,77.4288] arrives 82.4288
//   stage 0: B0 [69.3216,79.3216], B1 [82.4288,92.4288]                                    -> 92.4288 ms
TEST(WanSimCli, PredictsAStep) {
  const Result r = run(kShape + "--up-mbps 10 --json");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"step_s\": 0.0924288"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"fastest\""), std::string::npos) << r.out;
}

}  // namespace
