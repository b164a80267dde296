// tests/pipeline/pipeline_cuda_test.cc: //train --executor mpi --device cuda, run as a user runs it (the binary re-launches
// itself under mpirun; every run is bounded by `timeout` and by the test's own wait).
//
// Everywhere: the refusals that need no GPU. --transport nccl on the CPU, and --device cuda on a machine without a
// GPU (or in a build without CUDA), are one line naming the cause, exit status 2, and no ranks started.
// On a GPU (skipped, saying why, elsewhere):
//   - the single-process executor (--executor local, no mpirun) matches the CPU and repeats bit for bit;
//   - S=2 over --transport mpi with both ranks on GPU 0 (CUDA_VISIBLE_DEVICES=0, so a one-GPU machine runs it too)
//     matches the CPU pipeline within a stated tolerance, repeats bit for bit, equals the single-process executor on
//     that GPU bit for bit, and names each rank's GPU;
//   - with one visible GPU, --transport nccl is refused: in one line before mpirun when it can count the GPUs, and
//     by NcclTransport inside the ranks (two ranks on one GPU) when it cannot (--hostfile), without hanging;
//   - --dtype bf16 on one GPU: the single-process executor tracks the CPU's bf16 run, and two ranks sharing the GPU
//     give its bits;
//   - with >= 2 GPUs, --transport nccl gives the same bits as --transport mpi and reports the same bytes on the wire,
//     for fp32, bf16 and int8 codes (and int8 codes with --dtype bf16): over NCCL the codes are encoded and decoded
//     on the GPU and the tied gradient is summed there (engine/pipeline/wire_layout.h), over MPI on the host, by
//     kernels that compute the same bits and in the same byte layout; at S=2, and with 3+ GPUs at S = min(GPUs, 4)
//     too, where the tied weight crosses between stages that are not neighbours.
// The grad-norm allgather and the tied-weight exchange are inside every compared loss: the tiny preset ties wte
// between the first and the last stage, and its first steps' norms (~20) exceed --grad-clip 1, so the global norm
// scales every update.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "engine/comm/nccl_transport/rank_gpu.h"
#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

// Five steps of the tiny preset over two stages, M=2 under 1F1B (both directions cross in the steady state).
const char kTinyRun[] =
    "--preset tiny --steps 5 --batch-size 2 --seq-len 16 --threads 1 --stages 2 --micro-batches 2 --schedule 1f1b"
    " --ratio 32 --comm-timeout-s 60 --log-interval 1 --executor mpi";

using pipeline_test::loss_values;
using pipeline_test::PipelineRun;
using pipeline_test::run_pipeline;

// The wire part of each step line ("wire fwd N B (xR) bwd N B (xR) | tied N B"): the bytes each step reported.
std::vector<std::string> wire_reports(const std::string& output) {
  std::vector<std::string> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    const size_t wire = line.find("| wire ");
    if (line.rfind("step ", 0) == 0 && wire != std::string::npos) out.push_back(line.substr(wire));
  }
  return out;
}

// A refusal: status 2, within seconds, and exactly the one line `expected` (no mpirun banner: no ranks started).
void expect_refusal(const PipelineRun& r, const std::string& expected) {
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_LT(r.seconds, 60.0) << r.output;
  EXPECT_EQ(r.output, expected + "\n");
  EXPECT_TRUE(r.losses.empty()) << r.losses;
}

// Empty when this machine can run a GPU test that needs `needed` GPUs and mpirun; else why not (the skip reason).
std::string cannot_run_on_gpus(int needed) {
  std::string why;
  const int n = engine::comm::visible_gpu_count(&why);
  if (n < needed) {
    return "needs " + std::to_string(needed) + " GPU(s), found " + std::to_string(n) + (n ? "" : ": " + why);
  }
  if (!pipeline_test::have_mpirun()) return "mpirun not found in PATH";
  return "";
}

TEST(PipelineCudaRefusal, NcclOnTheCpu) {
  const PipelineRun r = run_pipeline("", std::string(kTinyRun) + " --transport nccl", "nccl_cpu");
  expect_refusal(r, "error: --transport nccl needs --device cuda (NCCL moves GPU memory); on the CPU use "
                    "--transport mpi");
}

TEST(PipelineCudaRefusal, TransportWithTheLocalExecutor) {
  const PipelineRun r =
      run_pipeline("", std::string(kTinyRun) + " --executor local --transport mpi", "local_transport");
  expect_refusal(r, "error: --transport is for --executor mpi; --executor local runs every stage in this process");
}

// Named NoGpu...: tools/gpu/check.sh lets only such tests skip on a GPU machine.
TEST(PipelineCudaRefusal, NoGpuCudaIsOneLineAndNoRanks) {
  std::string why;
  if (engine::comm::visible_gpu_count(&why) > 0) {
    GTEST_SKIP() << "a GPU is present: this test checks the refusal on machines without one";
  }
  // One line whatever the transport or executor: the check runs before anything starts.
  for (const std::string extra : {"", " --transport mpi", " --transport nccl", " --executor local"}) {
    SCOPED_TRACE(extra);
    const PipelineRun r = run_pipeline("", std::string(kTinyRun) + " --device cuda" + extra, "no_gpu");
    EXPECT_EQ(r.rc, 2) << r.output;
    EXPECT_EQ(r.output.rfind("error: --device cuda: ", 0), 0u) << r.output;
    EXPECT_NE(r.output.find("use --device cpu\n"), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
  }
}

// CUDA fp32 kernels compute what the CPU ones do, in another order of summation (cuBLAS vs OpenBLAS, reduction
// trees): each result differs by a few ulps (~1e-7 relative), which five small AdamW steps grow to well under 1e-4
// of the loss (the tolerance //train's CUDA test uses for the same reason).
constexpr double kCpuTolerance = 1e-4;

// The losses of `gpu` against the CPU run's, within kCpuTolerance (relative), step by step.
void expect_close_to_cpu(const PipelineRun& gpu, const PipelineRun& cpu) {
  const std::vector<double> c = loss_values(cpu.losses), g = loss_values(gpu.losses);
  ASSERT_EQ(c.size(), 5u) << cpu.losses;
  ASSERT_EQ(g.size(), c.size()) << gpu.losses;
  for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(g[i], c[i], kCpuTolerance * c[i]) << "step " << i + 1;
}

// The single-process executor on one GPU (no mpirun needed): what the ranks below must reproduce.
TEST(PipelineCuda, LocalExecutorOnGpuMatchesCpuAndRepeatsBitwise) {
  std::string why;
  if (engine::comm::visible_gpu_count(&why) == 0) GTEST_SKIP() << "needs a GPU: " << why;
  const std::string local = std::string(kTinyRun) + " --executor local";
  const PipelineRun cpu = run_pipeline("", local + " --device cpu", "local_cpu");
  const PipelineRun gpu1 = run_pipeline("CUDA_VISIBLE_DEVICES=0", local + " --device cuda", "local_gpu1");
  const PipelineRun gpu2 = run_pipeline("CUDA_VISIBLE_DEVICES=0", local + " --device cuda", "local_gpu2");
  ASSERT_EQ(cpu.rc, 0) << cpu.output;
  ASSERT_EQ(gpu1.rc, 0) << gpu1.output;
  ASSERT_EQ(gpu2.rc, 0) << gpu2.output;
  EXPECT_NE(gpu1.output.find("stage 1: GPU 0 ("), std::string::npos) << gpu1.output;
  expect_close_to_cpu(gpu1, cpu);
  EXPECT_EQ(gpu2.losses, gpu1.losses);
}

TEST(PipelineCuda, MpiOnOneSharedGpuMatchesCpuAndRepeatsBitwise) {
  if (const std::string why = cannot_run_on_gpus(1); !why.empty()) GTEST_SKIP() << why;
  const std::string shared = "CUDA_VISIBLE_DEVICES=0";
  const std::string cuda = std::string(kTinyRun) + " --device cuda";
  const PipelineRun cpu = run_pipeline("", std::string(kTinyRun) + " --device cpu", "cpu");
  const PipelineRun gpu1 = run_pipeline(shared, cuda + " --transport mpi", "shared1");
  const PipelineRun gpu2 = run_pipeline(shared, cuda + " --transport mpi", "shared2");
  const PipelineRun local = run_pipeline(shared, cuda + " --executor local", "shared_local");
  ASSERT_EQ(cpu.rc, 0) << cpu.output;
  ASSERT_EQ(gpu1.rc, 0) << gpu1.output;
  ASSERT_EQ(gpu2.rc, 0) << gpu2.output;
  ASSERT_EQ(local.rc, 0) << local.output;
  // The run header names each rank's device: both stages on GPU 0.
  EXPECT_NE(gpu1.output.find("device cuda, transport mpi"), std::string::npos) << gpu1.output;
  EXPECT_NE(gpu1.output.find("stage 0: GPU 0 ("), std::string::npos) << gpu1.output;
  EXPECT_NE(gpu1.output.find("stage 1: GPU 0 ("), std::string::npos) << gpu1.output;
  expect_close_to_cpu(gpu1, cpu);
  // Deterministic kernels (no atomics in reductions, fixed cuBLAS algorithms): the same bits (hex column) again,
  // and the same bits as all stages in one process on that GPU (each stage runs the same kernels either way).
  EXPECT_EQ(gpu2.losses, gpu1.losses);
  EXPECT_EQ(local.losses, gpu1.losses);
}

// --dtype bf16 on a GPU: the single-process executor tracks the CPU's bf16 run (both round operands to nearest even
// and accumulate in fp32, in different orders: an element one fp32 ulp apart may round to the neighbouring bf16
// value, which five steps grow to well under 1e-3 of the loss, the bound //train's bf16 CUDA test uses), and the
// ranks on one shared GPU give its bits.
TEST(PipelineCuda, Bf16OnOneGpuTracksCpuAndRanksMatchLocalBitwise) {
  if (const std::string why = cannot_run_on_gpus(1); !why.empty()) GTEST_SKIP() << why;
  const std::string shared = "CUDA_VISIBLE_DEVICES=0";
  const std::string bf16 = std::string(kTinyRun) + " --dtype bf16";
  const PipelineRun cpu = run_pipeline("", bf16 + " --executor local --device cpu", "bf16_cpu");
  const PipelineRun local = run_pipeline(shared, bf16 + " --executor local --device cuda", "bf16_gpu_local");
  const PipelineRun ranks = run_pipeline(shared, bf16 + " --device cuda --transport mpi", "bf16_gpu_ranks");
  ASSERT_EQ(cpu.rc, 0) << cpu.output;
  ASSERT_EQ(local.rc, 0) << local.output;
  ASSERT_EQ(ranks.rc, 0) << ranks.output;
  EXPECT_NE(ranks.output.find("device cuda, transport mpi, dtype bf16 ("), std::string::npos) << ranks.output;
  const std::vector<double> c = loss_values(cpu.losses), g = loss_values(local.losses);
  ASSERT_EQ(c.size(), 5u) << cpu.losses;
  ASSERT_EQ(g.size(), c.size()) << local.losses;
  for (size_t i = 0; i < c.size(); ++i) EXPECT_NEAR(g[i], c[i], 1e-3 * c[i]) << "step " << i + 1;
  EXPECT_EQ(ranks.losses, local.losses);
}

TEST(PipelineCuda, NcclWithOneGpuIsRefused) {
  if (const std::string why = cannot_run_on_gpus(1); !why.empty()) GTEST_SKIP() << why;
  const std::string one = "CUDA_VISIBLE_DEVICES=0";
  const std::string nccl = std::string(kTinyRun) + " --device cuda --transport nccl";
  // Counted before mpirun: one line.
  expect_refusal(run_pipeline(one, nccl, "nccl_one_gpu"),
                 "pipeline: --transport nccl needs one GPU per stage: --stages 2 on a machine with 1 GPU(s); use "
                 "--transport mpi (stages share GPUs, codes go through host memory)");
  // With --hostfile the command cannot count the hosts' GPUs: NcclTransport refuses inside the ranks (status 3,
  // its message reaches the user through mpirun) and the job ends, well before the 60 s peer timeout.
  const std::string hostfile = pipeline_test::temp_dir() + "/localhost.hosts";
  ASSERT_EQ(std::system(("echo 'localhost slots=2' > " + hostfile).c_str()), 0);
  const PipelineRun r = run_pipeline(one, nccl + " --hostfile " + hostfile, "nccl_shared_gpu");
  EXPECT_NE(r.rc, 0) << r.output;
  EXPECT_NE(r.rc, -1) << "the job did not end:\n" << r.output;
  EXPECT_LT(r.seconds, 50.0) << r.output;
  EXPECT_NE(r.output.find("share one GPU"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("use --transport mpi on a single-GPU machine"), std::string::npos) << r.output;
}

TEST(PipelineCuda, NcclMatchesMpiBitwiseOnTwoGpus) {
  if (const std::string why = cannot_run_on_gpus(2); !why.empty()) GTEST_SKIP() << why;
  // S=2 on GPUs 0 and 1; with more GPUs also S = min(GPUs, 4) (the tiny preset's 4 layers), where the tied weight
  // crosses between stages that are not neighbours (their own NCCL connection).
  std::string why;
  const int gpus = engine::comm::visible_gpu_count(&why);
  std::vector<int> stage_counts = {2};
  if (gpus >= 3) stage_counts.push_back(std::min(gpus, 4));
  for (const int S : stage_counts) {
    std::string visible = "CUDA_VISIBLE_DEVICES=0";
    for (int g = 1; g < S; ++g) visible += "," + std::to_string(g);
    // Every code dtype in fp32 training, and int8 codes in bf16 training (--dtype: the matmuls' precision).
    for (const auto& [codes, dtype] : {std::pair<std::string, std::string>{"fp32", "fp32"}, {"bf16", "fp32"},
                                       {"int8", "fp32"}, {"int8", "bf16"}}) {
      SCOPED_TRACE("S=" + std::to_string(S) + " codes " + codes + " dtype " + dtype);
      const std::string args = std::string(kTinyRun) + " --stages " + std::to_string(S) + " --device cuda" +
                               " --code-dtype " + codes + " --dtype " + dtype;
      const std::string tag = "S" + std::to_string(S) + "_" + codes + "_" + dtype;
      const PipelineRun mpi = run_pipeline(visible, args + " --transport mpi", "mpi_" + tag);
      const PipelineRun nccl = run_pipeline(visible, args + " --transport nccl", "nccl_" + tag);
      ASSERT_EQ(mpi.rc, 0) << mpi.output;
      ASSERT_EQ(nccl.rc, 0) << nccl.output;
      EXPECT_NE(nccl.output.find("device cuda, transport nccl"), std::string::npos) << nccl.output;
      for (int g = 0; g < S; ++g) {
        const std::string line = "stage " + std::to_string(g) + ": GPU " + std::to_string(g) + " (";
        EXPECT_NE(nccl.output.find(line), std::string::npos) << nccl.output;
      }
      EXPECT_EQ(loss_values(nccl.losses).size(), 5u) << nccl.losses;
      EXPECT_EQ(nccl.losses, mpi.losses);
      // The same messages: a device-encoded code has the host codec's size, and every byte is counted alike.
      const std::vector<std::string> nccl_wire = wire_reports(nccl.output), mpi_wire = wire_reports(mpi.output);
      EXPECT_EQ(nccl_wire.size(), 5u) << nccl.output;
      EXPECT_EQ(nccl_wire, mpi_wire) << "nccl:\n" << nccl.output << "mpi:\n" << mpi.output;
    }
  }
}

}  // namespace
