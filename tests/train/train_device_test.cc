// tests/train/train_device_test.cc: //train --device and --dtype. On a GPU: a few steps on CUDA match the CPU run's
// losses and two CUDA runs give the same bits, in fp32, in bf16-autocast and under the bf16 policy. Without one:
// --device cuda is a one-line error with a non-zero exit. Everywhere: --dtype bf16-autocast on the CPU (the same
// rounded-operand numbers) tracks fp32 within a stated tolerance, differs from it (the precision is really applied),
// and repeats bitwise. The bf16 policy itself on the CPU twins: tests/train/train_bf16_test.cc.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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
TrainRun run_trainer(const std::string& device, const std::string& name, const std::string& dtype = "fp32",
                     int steps = 5) {
  const std::string out = tmp_dir() + "/" + name;
  const std::vector<std::string> args = {
      "--device", device, "--dtype", dtype, "--preset", "tiny", "--num-layers", "2", "--channels", "64", "--num-heads", "2",
      "--batch-size", "2", "--seq-len", "32", "--ratio", "4", "--steps", std::to_string(steps), "--lr", "1e-3", "--warmup-steps", "1",
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

TEST(TrainDevice, NoGpuIsOneLineErrorAndNonZeroExit) {
  const std::string why = why_no_gpu();
  if (why.empty()) GTEST_SKIP() << "a GPU is present: this test checks the refusal on machines without one";
  const TrainRun r = run_trainer("cuda", "refused");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  const size_t e = r.output.find("error: --device cuda: ");
  ASSERT_NE(e, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find('\n', e) + 1, r.output.size()) << "expected one error line, got: " << r.output;
  EXPECT_TRUE(r.losses.empty());
}

TEST(TrainDevice, MatchesCpuAndRepeatsBitwise) {
  const std::string why = why_no_gpu();
  if (!why.empty()) GTEST_SKIP() << "needs a GPU: " << why;
  const TrainRun cpu = run_trainer("cpu", "cpu", "fp32", 10);
  const TrainRun gpu1 = run_trainer("cuda", "cuda1", "fp32", 10);
  const TrainRun gpu2 = run_trainer("cuda", "cuda2", "fp32", 10);
  ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
  ASSERT_EQ(gpu1.exit_code, 0) << gpu1.output;
  ASSERT_EQ(gpu2.exit_code, 0) << gpu2.output;
  ASSERT_EQ(cpu.losses.size(), 10u) << cpu.output;
  ASSERT_EQ(gpu1.losses.size(), cpu.losses.size()) << gpu1.output;
  // Deterministic kernels (no atomics in reductions, fixed cuBLAS algorithms): the same bits every run.
  EXPECT_EQ(gpu1.losses, gpu2.losses);
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    const double c = std::strtod(cpu.losses[i].c_str(), nullptr), g = std::strtod(gpu1.losses[i].c_str(), nullptr);
    // fp32 on both, but cuBLAS and OpenBLAS sum the matmuls' products in different orders (and the CUDA reductions
    // use a different tree than the CPU loops): each result differs by a few ulps (~1e-7 relative), which 10 small
    // AdamW steps at lr 1e-3 grow to well under 1e-4 of the loss.
    EXPECT_NEAR(g, c, 1e-4 * std::fabs(c)) << "step " << i + 1;
  }
}

double loss_at(const TrainRun& r, size_t i) { return std::strtod(r.losses[i].c_str(), nullptr); }

TEST(TrainDevice, Bf16AutocastOnCpuTracksFp32AndRepeatsBitwise) {
  const int steps = 20;
  const TrainRun fp32 = run_trainer("cpu", "fp32", "fp32", steps);
  const TrainRun bf16a = run_trainer("cpu", "bf16a", "bf16-autocast", steps);
  const TrainRun bf16b = run_trainer("cpu", "bf16b", "bf16-autocast", steps);
  ASSERT_EQ(fp32.exit_code, 0) << fp32.output;
  ASSERT_EQ(bf16a.exit_code, 0) << bf16a.output;
  ASSERT_EQ(bf16b.exit_code, 0) << bf16b.output;
  ASSERT_EQ(fp32.losses.size(), static_cast<size_t>(steps)) << fp32.output;
  ASSERT_EQ(bf16a.losses.size(), fp32.losses.size()) << bf16a.output;
  EXPECT_NE(bf16a.output.find("cpu bf16-autocast"), std::string::npos) << "the run table names the precision";
  EXPECT_EQ(bf16a.losses, bf16b.losses) << "bf16 on the CPU is deterministic";
  EXPECT_NE(bf16a.losses[0], fp32.losses[0]) << "the first loss is computed on rounded operands: it must differ";
  for (size_t i = 0; i < fp32.losses.size(); ++i) {
    // Rounding each operand to bf16 perturbs it by at most 2^-9 relative; the GEMMs' outputs move by about that
    // (2e-3), and the loss by less (its gradient w.r.t. the logits averages signs out). Over 20 AdamW steps at lr
    // 1e-3 the two runs' parameters drift apart by updates of the same size in both. Measured on this model: at most
    // 8.0e-5 of the loss over the 20 steps (printed below); the bound 1e-3 leaves 12x for other CPUs' BLAS kernels.
    // The rounding itself is checked exactly, GEMM by GEMM, in tests/kernels/cpu_bf16_gemm_test.cc.
    EXPECT_NEAR(loss_at(bf16a, i), loss_at(fp32, i), 1e-3 * loss_at(fp32, i)) << "step " << i + 1;
  }
  double worst = 0.0;
  for (size_t i = 0; i < fp32.losses.size(); ++i) {
    worst = std::max(worst, std::fabs(loss_at(bf16a, i) - loss_at(fp32, i)) / loss_at(fp32, i));
  }
  std::printf("bf16-autocast vs fp32 on the CPU, %d steps: largest relative loss difference %.3g (first loss %s vs %s)\n",
              steps, worst, bf16a.losses[0].c_str(), fp32.losses[0].c_str());
  EXPECT_LT(loss_at(bf16a, steps - 1), loss_at(bf16a, 0)) << "bf16 training makes progress";
}

// The GPU against the CPU twins, run twice on the GPU, for one --dtype; `bound` relative to the CPU's loss.
void expect_cuda_matches_cpu(const std::string& dtype, double bound) {
  const TrainRun cpu = run_trainer("cpu", "cpu_" + dtype, dtype);
  const TrainRun gpu1 = run_trainer("cuda", "cuda_" + dtype + "_1", dtype);
  const TrainRun gpu2 = run_trainer("cuda", "cuda_" + dtype + "_2", dtype);
  ASSERT_EQ(cpu.exit_code, 0) << cpu.output;
  ASSERT_EQ(gpu1.exit_code, 0) << gpu1.output;
  ASSERT_EQ(gpu2.exit_code, 0) << gpu2.output;
  ASSERT_EQ(gpu1.losses.size(), cpu.losses.size()) << gpu1.output;
  EXPECT_EQ(gpu1.losses, gpu2.losses);
  for (size_t i = 0; i < cpu.losses.size(); ++i) {
    EXPECT_NEAR(loss_at(gpu1, i), loss_at(cpu, i), bound * loss_at(cpu, i)) << "step " << i + 1;
  }
}

TEST(TrainDevice, Bf16AutocastCudaMatchesCpuAndRepeatsBitwise) {
  const std::string why = why_no_gpu();
  if (!why.empty()) GTEST_SKIP() << "needs a GPU: " << why;
  // Both round the operands the same way (round to nearest even) and accumulate in fp32, in different orders: an
  // activation that differs by an fp32 ulp can round to a neighbouring bf16 value (2^-8 apart), in a few elements per
  // tensor. Over 5 steps that moves the loss by well under 1e-3 of itself (fp32 alone: 1e-4, test above).
  expect_cuda_matches_cpu("bf16-autocast", 1e-3);
}

TEST(TrainDevice, Bf16PolicyCudaMatchesCpuTwinsAndRepeatsBitwise) {
  const std::string why = why_no_gpu();
  if (!why.empty()) GTEST_SKIP() << "needs a GPU: " << why;
  // The CUDA kernels and their CPU twins compute the same roundings but sum in different orders, so a stored bf16
  // value may land one bf16 ulp (2^-8 relative) apart, now in every activation (they are all bf16), not only in
  // the matmul operands. Over 5 steps the loss moves by about that ulp's share of the loss at most: 5e-3 relative
  // (the bf16-vs-fp32 gap on the CPU, measured in train_bf16_test, is the same order). Unmeasured on a GPU so far:
  // the first GPU session checks this bound.
  expect_cuda_matches_cpu("bf16", 5e-3);
}

}  // namespace
