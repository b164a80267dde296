// tests/train/train_cuda_test.cc: //train --device cuda. On a GPU: a few steps on CUDA match the CPU run's losses
// and two CUDA runs give the same bits. Without one: --device cuda is a one-line error with a non-zero exit.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "data/shards.h"
#include "train/checkpoint.h"

#ifdef RESBM_HAVE_CUDA
#include <cuda_runtime.h>
#endif

namespace {

// Empty when a GPU is usable, else why not (the CUDA runtime's words).
std::string why_no_gpu() {
#ifdef RESBM_HAVE_CUDA
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) return std::string("cudaGetDeviceCount: ") + cudaGetErrorString(err);
  if (count == 0) return "cudaGetDeviceCount: 0 GPUs";
  return "";
#else
  return "built without CUDA (--config=nocuda)";
#endif
}

std::string tmp_dir() { return std::getenv("TEST_TMPDIR"); }

// A periodic token stream (period 97), written once per test process.
std::string shard_dir() {
  static const std::string dir = [] {
    const std::string d = tmp_dir() + "/shards";
    train::make_dirs(d);
    std::vector<int32_t> tokens(6000);
    for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int32_t>((i * 31) % 97 + 100);
    data::write_shard(d + "/t_train.bin", tokens);
    tokens.resize(1500);
    data::write_shard(d + "/t_val.bin", tokens);
    return d;
  }();
  return dir;
}

struct TrainRun {
  int exit_code = -1;
  std::string output;               // stdout + stderr
  std::vector<std::string> losses;  // the "loss" of every step record of log.jsonl, as written (%.9g: exact)
};

// The tiny preset shrunk to seconds on a CPU; two stages joined by ResBM, so the wire and the tied head are used.
TrainRun run_trainer(const std::string& device, const std::string& name) {
  const std::string out = tmp_dir() + "/" + name;
  const std::vector<std::string> args = {
      "--device", device, "--preset", "tiny", "--num-layers", "2", "--channels", "64", "--num-heads", "2",
      "--batch-size", "2", "--seq-len", "32", "--ratio", "4", "--steps", "5", "--lr", "1e-3", "--warmup-steps", "1",
      "--eval-interval", "0", "--eval-batches", "1", "--sample-length", "4", "--seed", "7",
      "--train-data", shard_dir() + "/t_train.bin", "--val-data", shard_dir() + "/t_val.bin",
      "--data-dir", tmp_dir() + "/data_dir", "--out-dir", out};
  std::string cmd = "timeout 300 train/train";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += " > " + out + ".txt 2>&1";
  const int status = std::system(cmd.c_str());
  TrainRun r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::stringstream ss;
  ss << std::ifstream(out + ".txt").rdbuf();
  r.output = ss.str();
  std::ifstream log(out + "/log.jsonl");
  for (std::string line; std::getline(log, line);) {
    const size_t k = line.find("\"loss\":");
    if (k == std::string::npos) continue;
    const size_t start = k + 7;
    r.losses.push_back(line.substr(start, line.find_first_of(",}", start) - start));
  }
  return r;
}

TEST(TrainCuda, NoGpuIsOneLineErrorAndNonZeroExit) {
  const std::string why = why_no_gpu();
  if (why.empty()) GTEST_SKIP() << "a GPU is present: this test checks the refusal on machines without one";
  const TrainRun r = run_trainer("cuda", "refused");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  const size_t e = r.output.find("error: --device cuda: ");
  ASSERT_NE(e, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\n', e) + 1, r.output.size()) << "expected one error line, got: " << r.output;
  EXPECT_TRUE(r.losses.empty());
}

TEST(TrainCuda, MatchesCpuAndRepeatsBitwise) {
  const std::string why = why_no_gpu();
  if (!why.empty()) GTEST_SKIP() << "needs a GPU: " << why;
  const TrainRun cpu = run_trainer("cpu", "cpu");
  const TrainRun gpu1 = run_trainer("cuda", "cuda1");
  const TrainRun gpu2 = run_trainer("cuda", "cuda2");
  ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
  ASSERT_EQ(gpu1.exit_code, 0) << gpu1.output;
  ASSERT_EQ(gpu2.exit_code, 0) << gpu2.output;
  ASSERT_EQ(cpu.losses.size(), 5u) << cpu.output;
  ASSERT_EQ(gpu1.losses.size(), cpu.losses.size()) << gpu1.output;
  // Deterministic kernels (no atomics in reductions, fixed cuBLAS algorithms): the same bits every run.
  EXPECT_EQ(gpu1.losses, gpu2.losses);
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    const double c = std::strtod(cpu.losses[i].c_str(), nullptr), g = std::strtod(gpu1.losses[i].c_str(), nullptr);
    // fp32 on both, but cuBLAS and OpenBLAS sum the matmuls' products in different orders (and the CUDA reductions
    // use a different tree than the CPU loops): each result differs by a few ulps (~1e-7 relative), which 5 small
    // AdamW steps at lr 1e-3 grow to well under 1e-4 of the loss.
    EXPECT_NEAR(g, c, 1e-4 * std::fabs(c)) << "step " << i + 1;
  }
}

}  // namespace
