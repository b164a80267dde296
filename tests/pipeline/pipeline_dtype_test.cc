// tests/pipeline/pipeline_dtype_test.cc: //train --dtype bf16 on the CPU (bf16 autocast for the matmuls:
// operands rounded to bf16, fp32 accumulation, as //train's --dtype; the CPU computes the same rounded-operand
// numbers through sgemm), run as a user runs it, every run bounded by `timeout` and by the test's own wait.
//   - ten steps of the tiny preset over two stages: bf16 differs from fp32 from the first step's loss (the forward
//     pass's matmuls are rounded), stays within 1e-3 relative of it (//train measured 8e-5 on this model), and
//     repeats bit for bit;
//   - the MPI executor (one process per stage) gives the single-process executor's bits in bf16 too;
//   - the run header names the dtype; an unknown one is refused in one line.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

using pipeline_test::loss_values;
using pipeline_test::PipelineRun;
using pipeline_test::run_pipeline;

// S=2, M=2 under 1F1B: both directions cross in the steady state; the tied wte is summed between the two stages.
const char kTinyRun[] =
    "--preset tiny --steps 10 --batch-size 2 --seq-len 16 --threads 1 --stages 2 --micro-batches 2 --schedule 1f1b"
    " --ratio 32 --comm-timeout-s 60";

// The first line of PipelineRun::losses: "1 loss grad_norm".
std::string first_line(const std::string& losses) { return losses.substr(0, losses.find('\n')); }

TEST(PipelineDtype, Bf16StaysCloseToFp32AndRepeatsBitwise) {
  std::vector<PipelineRun> runs;  // fp32, bf16, bf16 again
  for (const std::string dtype : {"fp32", "bf16", "bf16"}) {
    const std::string tag = "dtype_" + dtype + "_" + std::to_string(runs.size());
    runs.push_back(run_pipeline("", std::string(kTinyRun) + " --executor local --dtype " + dtype, tag));
    ASSERT_EQ(runs.back().rc, 0) << runs.back().output;
  }
  const PipelineRun &fp32 = runs[0], &bf16 = runs[1], &again = runs[2];
  EXPECT_NE(fp32.output.find("| device       cpu fp32, 1 CPU thread(s) per process\n"), std::string::npos) << fp32.output;
  EXPECT_NE(bf16.output.find("| device       cpu bf16, 1 CPU thread(s) per process\n"), std::string::npos) << bf16.output;

  const std::vector<double> f = loss_values(fp32.losses), b = loss_values(bf16.losses);
  ASSERT_EQ(f.size(), 10u) << fp32.losses;
  ASSERT_EQ(b.size(), f.size()) << bf16.losses;
  // The rounding is there from the first forward pass: the first step's loss already differs (bits, not text).
  EXPECT_NE(first_line(bf16.losses), first_line(fp32.losses));
  double worst = 0.0;
  for (size_t i = 0; i < f.size(); ++i) {
    const double rel = std::fabs(b[i] - f[i]) / std::fabs(f[i]);
    worst = std::fmax(worst, rel);
    EXPECT_LE(rel, 1e-3) << "step " << i + 1 << ": bf16 " << b[i] << " vs fp32 " << f[i];
  }
  std::printf("bf16 vs fp32, largest relative loss difference over %zu steps: %.2e\n", f.size(), worst);
  // Deterministic: the same bits again (9 significant digits: a float's bits).
  EXPECT_EQ(again.losses, bf16.losses);
}

TEST(PipelineDtype, Bf16MpiExecutorMatchesLocalBitwise) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  const std::string bf16 = std::string(kTinyRun) + " --dtype bf16";
  const PipelineRun local = run_pipeline("", bf16 + " --executor local", "bf16_local");
  const PipelineRun mpi = run_pipeline("", bf16 + " --executor mpi", "bf16_mpi");
  ASSERT_EQ(local.rc, 0) << local.output;
  ASSERT_EQ(mpi.rc, 0) << mpi.output;
  EXPECT_NE(mpi.output.find("one process per stage, transport mpi"), std::string::npos) << mpi.output;
  EXPECT_NE(mpi.output.find("| device       cpu bf16, 1 CPU thread(s) per process\n"), std::string::npos) << mpi.output;
  EXPECT_EQ(loss_values(mpi.losses).size(), 10u) << mpi.losses;
  EXPECT_EQ(mpi.losses, local.losses);
}

TEST(PipelineDtype, UnknownDtypeIsOneLine) {
  const PipelineRun r = run_pipeline("", std::string(kTinyRun) + " --executor local --dtype fp16", "dtype_fp16");
  EXPECT_EQ(r.rc, 2) << r.output;
  EXPECT_EQ(r.output, "error: --dtype must be one of fp32, bf16; got 'fp16'\n");
  EXPECT_TRUE(r.losses.empty()) << r.losses;
}

}  // namespace
