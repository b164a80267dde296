// The MPI executor (one process per stage, launched by //train:pipeline through mpirun) against the
// single-process executor: bitwise the same losses for 10 steps of the tiny preset, for S in {2, 4},
// M in {1, 4}, GPipe and 1F1B, `none` and `resbm` (and the fused layout at M=4, 1F1B; resbm with an untied head
// at S=4, M=4, 1F1B). Every run is bounded by `timeout`.
#include <algorithm>
#include <string>
#include <tuple>

#include "gtest/gtest.h"
#include "tests/pipeline/subprocess.h"

namespace {

using Params = std::tuple<int, int, std::string, std::string>;  // S, M, schedule, bottleneck

class MpiMatchesLocal : public ::testing::TestWithParam<Params> {};

int run(const std::string& args, const std::string& tag, std::string* losses) {
  const std::string dir = pipeline_test::temp_dir();
  const std::string out = dir + "/" + tag + ".losses", log = dir + "/" + tag + ".log";
  pipeline_test::Background p("timeout 150 " + pipeline_test::pipeline_binary() + " " + args + " --losses-out " + out,
                              log);
  const int rc = p.wait(160);
  *losses = pipeline_test::read_file(out);
  if (rc != 0) ADD_FAILURE() << tag << " exited with " << rc << ":\n" << pipeline_test::read_file(log);
  return rc;
}

TEST_P(MpiMatchesLocal, TenStepsBitwise) {
  if (!pipeline_test::have_mpirun()) GTEST_SKIP() << "mpirun not found in PATH: the MPI executor is NOT tested here";
  const auto& [S, M, schedule, kind] = GetParam();
  const std::string args = "--preset tiny --steps 10 --batch 2 --seq-len 16 --threads 1 --ratio 32 --stages " +
                           std::to_string(S) + " --micro-batches " + std::to_string(M) + " --schedule " + schedule +
                           " --comm-timeout-s 60 --quiet 1" +
                           (kind == "fused"    ? " --bottleneck resbm --resbm-layout fused"
                            : kind == "untied" ? " --bottleneck resbm --untie-head 1"
                                               : " --bottleneck " + kind);
  const std::string tag = "S" + std::to_string(S) + "_M" + std::to_string(M) + "_" + schedule + "_" + kind;
  std::string local, mpi;
  ASSERT_EQ(run(args + " --executor local", tag + "_local", &local), 0);
  ASSERT_EQ(run(args + " --executor mpi", tag + "_mpi", &mpi), 0);
  // Ten lines "step loss hexbits"; compared as text, so the hex bits must match exactly.
  EXPECT_EQ(std::count(local.begin(), local.end(), '\n'), 10) << local;
  EXPECT_EQ(mpi, local);
}

std::string name(const ::testing::TestParamInfo<Params>& info) {
  const auto& [S, M, schedule, kind] = info.param;
  return "S" + std::to_string(S) + "_M" + std::to_string(M) + "_" + schedule + "_" + kind;
}

INSTANTIATE_TEST_SUITE_P(Tiny, MpiMatchesLocal,
                         ::testing::Combine(::testing::Values(2, 4), ::testing::Values(1, 4),
                                            ::testing::Values("gpipe", "1f1b"), ::testing::Values("none", "resbm")),
                         name);
// The fused (IOTA) layout too; at S=4 each stage of tiny has one block, both decoder and encoder.
INSTANTIATE_TEST_SUITE_P(Fused, MpiMatchesLocal,
                         ::testing::Combine(::testing::Values(2, 4), ::testing::Values(4), ::testing::Values("1f1b"),
                                            ::testing::Values("fused")),
                         name);
// The untied LM head (--untie-head 1: no tied exchange between the first and the last stage).
INSTANTIATE_TEST_SUITE_P(Untied, MpiMatchesLocal,
                         ::testing::Combine(::testing::Values(4), ::testing::Values(4), ::testing::Values("1f1b"),
                                            ::testing::Values("untied")),
                         name);

}  // namespace
