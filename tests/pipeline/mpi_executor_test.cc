// The one trainer under --executor mpi (one process per stage, re-launched under mpirun) against --executor local
// (every stage in one process): the same flags give bitwise the same losses and gradient norms, the same checkpoint
// files byte for byte, and the same sample. A compact grid covers every value of S in {2, 4}, M in {1, 4}, GPipe
// and 1F1B, AdamW and Muon, `none`, `resbm` (plus an untied head and the fused layout) and `ssn` (S = 3, its frozen
// tensors rebuilt on every rank: the run table's hash must say they agree), 6 steps each on a small model. Both executors run with --threads 1: the bitwise claim is for equal thread counts per process
// (train/README.md says why). Every run is bounded by `timeout`.
#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

struct Case {
  int S, M;
  std::string schedule, optimizer, bottleneck, extra;
};

class MpiMatchesLocal : public ::testing::TestWithParam<Case> {};

std::string sample_of(const std::string& output) {
  const size_t p = output.find("---- sample at step");
  return p == std::string::npos ? "" : output.substr(p, output.find("----\n", p + 10) - p);
}

TEST_P(MpiMatchesLocal, SixStepsBitwise) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  const Case& c = GetParam();
  const std::string args = "--num-layers 4 --channels 32 --num-heads 2 --batch-size 2 --seq-len 16 --ratio 4"
                           " --steps 6 --warmup-steps 2 --lr 1e-2 --threads 1 --comm-timeout-s 60 --stages " +
                           std::to_string(c.S) + " --micro-batches " + std::to_string(c.M) + " --schedule " +
                           c.schedule + " --optimizer " + c.optimizer + " --bottleneck " + c.bottleneck + " " + c.extra;
  const std::string tag = "S" + std::to_string(c.S) + "_M" + std::to_string(c.M) + "_" + c.schedule + "_" +
                          c.optimizer + "_" + c.bottleneck;
  const pipeline_test::PipelineRun local = pipeline_test::run_pipeline("", args + " --executor local", tag + "_local");
  const pipeline_test::PipelineRun mpi = pipeline_test::run_pipeline("", args + " --executor mpi", tag + "_mpi");
  ASSERT_EQ(local.rc, 0) << local.output;
  ASSERT_EQ(mpi.rc, 0) << mpi.output;
  EXPECT_NE(mpi.output.find("one process per stage"), std::string::npos) << mpi.output;
  if (c.bottleneck == "ssn") {
    EXPECT_NE(mpi.output.find("equal on all " + std::to_string(c.S) + " stages"), std::string::npos) << mpi.output;
  }
  EXPECT_EQ(pipeline_test::loss_values(local.losses).size(), 6u) << local.losses;
  EXPECT_EQ(mpi.losses, local.losses);
  // The final checkpoint: every stage file byte for byte (parameters, optimizer state, loader position).
  for (int s = 0; s < c.S; ++s) {
    const std::string name = "/checkpoints/ckpt_00000006.stage" + std::to_string(s) + ".bin";
    const std::string a = pipeline_test::read_file(local.out_dir + name), b = pipeline_test::read_file(mpi.out_dir + name);
    EXPECT_FALSE(a.empty()) << name;
    EXPECT_TRUE(a == b) << "stage " << s << "'s checkpoint differs between the executors";
  }
  EXPECT_NE(sample_of(local.output), "") << local.output;
  EXPECT_EQ(sample_of(mpi.output), sample_of(local.output));
}

std::string name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  return "S" + std::to_string(c.S) + "_M" + std::to_string(c.M) + "_" + (c.schedule == "1f1b" ? "1F1B" : "GPipe") +
         "_" + c.optimizer + "_" + c.bottleneck + (c.extra.empty() ? "" : "_extra");
}

INSTANTIATE_TEST_SUITE_P(
    Grid, MpiMatchesLocal,
    ::testing::Values(Case{2, 1, "gpipe", "adamw", "resbm", ""}, Case{2, 4, "1f1b", "muon", "none", ""},
                      Case{4, 1, "gpipe", "muon", "resbm", "--code-dtype int8"},
                      Case{4, 4, "1f1b", "adamw", "resbm", "--untie-head --resbm-layout fused"},
                      Case{4, 4, "gpipe", "adamw", "none", ""},
                      Case{3, 2, "1f1b", "muon", "ssn", "--code-dtype int8 --ssn-match-params"}),
    name);

// --export-llmc under mpi gathers every stage's parameters to rank 0: the same llm.c file, byte for byte, as the
// local run writes.
TEST(MpiExport, GatheredToRankZeroIsTheLocalFile) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  const std::string args = "--num-layers 4 --channels 32 --num-heads 2 --batch-size 2 --seq-len 16 --steps 3"
                           " --threads 1 --stages 4 --bottleneck none --export-llmc ";
  const std::string local_file = pipeline_test::temp_dir() + "/local_export.bin";
  const std::string mpi_file = pipeline_test::temp_dir() + "/mpi_export.bin";
  const pipeline_test::PipelineRun local =
      pipeline_test::run_pipeline("", args + local_file + " --executor local", "export_local");
  const pipeline_test::PipelineRun mpi = pipeline_test::run_pipeline("", args + mpi_file + " --executor mpi", "export_mpi");
  ASSERT_EQ(local.rc, 0) << local.output;
  ASSERT_EQ(mpi.rc, 0) << mpi.output;
  const std::string a = pipeline_test::read_file(local_file), b = pipeline_test::read_file(mpi_file);
  EXPECT_GT(a.size(), 1000u);
  EXPECT_TRUE(a == b) << "the exported files differ (" << a.size() << " vs " << b.size() << " bytes)";
}

}  // namespace
