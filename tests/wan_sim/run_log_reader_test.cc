// Tests of tools/wan_sim's run-log reader: the JSON helpers on the trainer's record format, and a small log turned
// into a workload (medians after the skipped warm-up steps, bytes split over boundaries, the tied gradient halved).
#include "tools/wan_sim/run_log_reader.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "gtest/gtest.h"

namespace wan_sim {
namespace {

std::string temp_path(const std::string& name) {
  const char* t = std::getenv("TEST_TMPDIR");
  return std::string(t ? t : "/tmp") + "/" + name;
}

TEST(RunLogReader, JsonHelpers) {
  const std::string line = "{\"type\": \"step\", \"ms\": 12.5, \"stage_forward_ms\": [1, 2.5, 3e-1], \"x\": []}";
  double v = 0;
  EXPECT_TRUE(json_number(line, "ms", &v));
  EXPECT_DOUBLE_EQ(v, 12.5);
  std::vector<double> a;
  EXPECT_TRUE(json_number_array(line, "stage_forward_ms", &a));
  EXPECT_EQ(a, (std::vector<double>{1.0, 2.5, 0.3}));
  EXPECT_TRUE(json_number_array(line, "x", &a));
  EXPECT_TRUE(a.empty());
  EXPECT_FALSE(json_number(line, "missing", &v));
  std::string s;
  EXPECT_TRUE(json_string(line, "type", &s));
  EXPECT_EQ(s, "step");
}

void write_log(const std::string& path, bool with_phases) {
  std::ofstream out(path);
  out << "{\"type\": \"config\", \"flags\": {\"stages\": \"3\", \"micro-batches\": \"4\", \"schedule\": \"1f1b\", "
         "\"link-mbps\": \"10\", \"link-latency-ms\": \"50\", \"link-mode\": \"node\"}, \"run\": {\"stages\": "
         "\"3 (1f1b)\"}}\n";
  // Step 1 is the warm-up (skipped); steps 2..4 give medians: ms 100, forward [2,4,6], bytes 800/400, tied 60.
  const double ms[] = {999, 90, 100, 130};
  for (int i = 0; i < 4; ++i) {
    const int k = i == 0 ? 50 : i;  // the warm-up step's outlier values must not count
    out << "{\"type\": \"step\", \"step\": " << i + 1 << ", \"ms\": " << ms[i] << ", \"bytes_fwd\": 800, "
        << "\"bytes_bwd\": 400, \"bytes_tied\": 60";
    if (with_phases) {
      out << ", \"stage_forward_ms\": [" << 2 * k << ", 4, 6], \"stage_backward_ms\": [" << 4 * k
          << ", 8, 12], \"stage_update_ms\": [1, 1, 1]";
    }
    out << "}\n";
  }
}

TEST(RunLogReader, MediansAfterTheWarmUp) {
  const std::string path = temp_path("log.jsonl");
  write_log(path, true);
  const LoggedRun r = read_run_log(path, 1);
  EXPECT_EQ(r.work.stages, 3);
  EXPECT_EQ(r.micro_batches, 4);
  EXPECT_EQ(r.schedule, "1f1b");
  EXPECT_EQ(r.links.mode, engine::comm::LinkMode::node);
  EXPECT_DOUBLE_EQ(r.links.up_mbps, 10.0);
  EXPECT_DOUBLE_EQ(r.links.latency_ms, 50.0);
  EXPECT_EQ(r.steps_used, 3);
  EXPECT_DOUBLE_EQ(r.measured_step_s, 0.100);           // median of 90, 100, 130 ms
  EXPECT_DOUBLE_EQ(r.work.compute[0].forward_s, 0.004);  // median of 2, 4, 6 ms
  EXPECT_DOUBLE_EQ(r.work.compute[0].backward_s, 0.008);
  EXPECT_DOUBLE_EQ(r.work.compute[2].update_s, 0.001);
  ASSERT_EQ(r.work.code_bytes.size(), 2u);
  EXPECT_DOUBLE_EQ(r.work.code_bytes[1], 400.0);  // 800 over 2 boundaries
  EXPECT_DOUBLE_EQ(r.work.grad_bytes[0], 200.0);
  EXPECT_DOUBLE_EQ(r.work.tied_bytes, 30.0);       // both ways counted together
}

// A run of R = 2 replicas under DiLoCo (H = 5) over a 100 Mbit/s data-parallel link: the workload is one replica's
// (boundary bytes halved), the sync payloads per stage come from the sync steps' dp_stage_bytes.
TEST(RunLogReader, ReplicasAndTheirSyncs) {
  const std::string path = temp_path("replicas.jsonl");
  {
    std::ofstream out(path);
    out << "{\"type\": \"config\", \"flags\": {\"stages\": \"2\", \"micro-batches\": \"1\", \"replicas\": \"2\", "
           "\"dp-sync\": \"diloco\", \"inner-steps\": \"5\", \"dp-link-mbps\": \"100\", \"dp-link-latency-ms\": \"20\"}}\n";
    for (int i = 1; i <= 10; ++i) {
      out << "{\"type\": \"step\", \"step\": " << i << ", \"ms\": 10, \"bytes_fwd\": 800, \"bytes_bwd\": 800, "
          << "\"bytes_tied\": 0, \"stage_forward_ms\": [1, 1], \"stage_backward_ms\": [2, 2], \"stage_update_ms\": [0, 0]";
      if (i % 5 == 0) out << ", \"dp_stage_bytes\": [6000, 4000]";
      out << "}\n";
    }
  }
  const LoggedRun r = read_run_log(path, 2);
  EXPECT_EQ(r.work.replicas, 2);
  EXPECT_EQ(r.work.dp_every, 5);
  EXPECT_DOUBLE_EQ(r.links.dp_mbps, 100.0);
  EXPECT_DOUBLE_EQ(r.links.dp_latency_ms, 20.0);
  EXPECT_EQ(r.work.dp_bytes, (std::vector<double>{6000.0, 4000.0}));
  EXPECT_DOUBLE_EQ(r.work.code_bytes[0], 400.0);  // 800 over 1 boundary and 2 replicas
}

TEST(RunLogReader, RefusesALogWithoutPhaseTimes) {
  const std::string path = temp_path("old.jsonl");
  write_log(path, false);
  EXPECT_THROW(read_run_log(path, 1), InputError);
  EXPECT_THROW(read_run_log(temp_path("absent.jsonl"), 1), InputError);
}

}  // namespace
}  // namespace wan_sim
