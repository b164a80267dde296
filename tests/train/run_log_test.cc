// tests/train/run_log_test.cc: the JSONL log writes one well-formed object per line, config record first.
#include "train/run_log.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace train {
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

TEST(RunLog, EscapesStrings) {
  EXPECT_EQ(json_escape("a\"b\\c\nd\x01"), "\"a\\\"b\\\\c\\nd\\u0001\"");
}

TEST(RunLog, RecordsInOrderAndAppendOnResume) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/log.jsonl";
  {
    RunLog log(path, /*append=*/false);
    log.log_config({{"lr", "0.001"}, {"preset", "tiny"}}, JsonObject().add("params", int64_t{42}));
    StepRecord r;
    r.step = 1;
    r.loss = 10.5;
    r.lr = 1e-4;
    r.bytes_fwd = 2048;
    r.bytes_dp = 4096;  // a replica sync this step
    r.forward_ms = {1.5, 2.0};  // per stage
    r.backward_ms = {3.25, 4.0};
    r.update_ms = {0.5, 0.25};
    log.log_step(r);
    log.log_eval(1, 9.25);
  }
  {
    RunLog log(path, /*append=*/true);
    log.log_eval(2, 8.0);
  }
  const auto lines = read_lines(path);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "{\"type\": \"config\", \"flags\": {\"lr\": \"0.001\", \"preset\": \"tiny\"}, "
                      "\"run\": {\"params\": 42}}");
  EXPECT_EQ(lines[1], "{\"type\": \"step\", \"step\": 1, \"loss\": 10.5, \"lr\": 0.0001, \"grad_norm\": 0, "
                      "\"ms\": 0, \"tokens_per_s\": 0, \"bytes_fwd\": 2048, \"bytes_bwd\": 0, \"bytes_tied\": 0, "
                      "\"bytes_dp\": 4096, \"compression\": 1, "
                      "\"stage_forward_ms\": [1.5, 2], \"stage_backward_ms\": [3.25, 4], \"stage_update_ms\": [0.5, 0.25]}");
  EXPECT_EQ(lines[2], "{\"type\": \"eval\", \"step\": 1, \"val_loss\": 9.25}");
  EXPECT_EQ(lines[3], "{\"type\": \"eval\", \"step\": 2, \"val_loss\": 8}");
}

TEST(RunLog, FloatsRoundTripAndNonFiniteIsNull) {
  const float x = 0.1f + 1e-7f;
  const std::string s = JsonObject().add("x", static_cast<double>(x)).add("n", 0.0 / 0.0).str();
  const std::string num = s.substr(6, s.find(',') - 6);
  EXPECT_EQ(std::strtof(num.c_str(), nullptr), x) << s;
  EXPECT_NE(s.find("\"n\": null"), std::string::npos) << s;
}

TEST(RunLog, UnwritableDirectoryIsAClearError) {
  try {
    RunLog log("/nonexistent_dir_for_test/log.jsonl", false);
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("check that --out-dir is writable"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace train
