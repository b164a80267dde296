// tests/resbm/gpt2_oracle_regen_test.cc: tools/reference/gpt2_oracle.py regenerates the committed test data.
//
// Runs the PyTorch oracle (Debian's /usr/bin/python3 with python3-torch, which tools/bazel installs) into a scratch
// directory and compares with tests/resbm/testdata: the checkpoint byte for byte (seeded torch RNG -> fp32), the
// reference tensors to float32 rounding (they are float64 computations rounded to fp32, and a different float64
// BLAS may round the last bit of a few values differently).
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "tests/resbm/gpt2_fixture.h"

namespace resbm {
namespace {

TEST(GPT2OracleRegen, ScriptReproducesTheCommittedFixture) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string outdir = std::string(tmp != nullptr ? tmp : "/tmp") + "/oracle_regen";
  const std::string cmd = "/usr/bin/python3 tools/reference/gpt2_oracle.py all --outdir " + outdir + " > " +
                          outdir + ".log 2>&1";
  const int rc = std::system(cmd.c_str());
  ASSERT_EQ(rc, 0) << "the oracle failed (" << cmd << "); is python3-torch installed for /usr/bin/python3? log:\n"
                   << std::string(testing::read_bytes(outdir + ".log").data(),
                                  testing::read_bytes(outdir + ".log").size());

  EXPECT_EQ(testing::read_bytes(outdir + "/gpt2_small_ckpt.bin"), testing::read_bytes(testing::kSmallCheckpoint))
      << "the random checkpoint differs: the script's defaults or torch's seeded generator changed";

  const testing::OracleFixture fresh = testing::read_fixture(outdir + "/gpt2_small_fixture.bin");
  const testing::OracleFixture committed = testing::read_fixture(testing::kSmallFixture);
  EXPECT_EQ(fresh.B, committed.B);
  EXPECT_EQ(fresh.T, committed.T);
  EXPECT_EQ(fresh.steps, committed.steps);
  EXPECT_EQ(fresh.inputs, committed.inputs);
  EXPECT_EQ(fresh.targets, committed.targets);
  EXPECT_EQ(fresh.lr, committed.lr);
  EXPECT_EQ(fresh.weight_decay, committed.weight_decay);
  ASSERT_EQ(fresh.logits.size(), committed.logits.size());
  ASSERT_EQ(fresh.grads.size(), committed.grads.size());
  ASSERT_EQ(fresh.losses.size(), committed.losses.size());
  // float64 results rounded to fp32: at most a last-bit difference (6e-8 relative); 1e-6 of the tensor's scale.
  EXPECT_LT(testing::scaled_max_error(fresh.logits.data(), committed.logits.data(), fresh.logits.size()), 1e-6);
  EXPECT_LT(testing::scaled_max_error(fresh.grads.data(), committed.grads.data(), fresh.grads.size()), 1e-6);
  EXPECT_LT(testing::scaled_max_error(fresh.losses.data(), committed.losses.data(), fresh.losses.size()), 1e-6);
  EXPECT_NEAR(fresh.loss, committed.loss, 1e-6 * committed.loss);
}

}  // namespace
}  // namespace resbm
