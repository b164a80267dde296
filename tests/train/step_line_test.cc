// tests/train/step_line_test.cc: the step line names the bytes of every kind of link that carried something this
// step: the boundary codes (always), the tied wte gradient (a tied head over S > 1 stages) and a replica sync.
#include <gtest/gtest.h>

#include <string>

#include "train/console.h"
#include "train/run_log.h"

namespace train {
namespace {

TEST(StepLine, NamesEveryKindOfLinkThatCarriedBytes) {
  StepRecord r;
  r.step = 7;
  r.loss = 2.5f;
  r.bytes_fwd = 1024;
  r.bytes_bwd = 1024;
  r.compression = 32.0;
  const std::string plain = format_step_line(r, 10);
  EXPECT_NE(plain.find("step     7/10"), std::string::npos) << plain;
  EXPECT_NE(plain.find("wire 1.00 KiB fwd 1.00 KiB bwd (32.0x)"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("tied"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("dp"), std::string::npos) << plain;
  r.bytes_tied = 3 * 1024 * 1024;
  r.bytes_dp = 1536;
  const std::string all = format_step_line(r, 10);
  EXPECT_NE(all.find("| tied 3.00 MiB | dp 1.50 KiB"), std::string::npos) << all;
}

}  // namespace
}  // namespace train
