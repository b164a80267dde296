// train/run_log.h: RunLog, the run's JSON Lines log (log.jsonl in the output directory).
//
// One JSON object per line: a "config" record first (every flag plus the derived run table), then one "step"
// record per optimizer step {step, loss, lr, grad_norm, ms, tokens_per_s, bytes_fwd, bytes_bwd, bytes_tied, bytes_dp, compression} and
// one "eval" record per evaluation {step, val_loss}. tools/plot reads it. Each line is flushed when written, so a
// killed run leaves a readable log; a resumed run appends, and readers keep the last record of a step.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace train {

// Builds one JSON object, keys in insertion order. Numbers print with enough digits to round-trip a float.
class JsonObject {
 public:
  JsonObject& add(const std::string& key, const std::string& value);
  JsonObject& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  JsonObject& add(const std::string& key, double value);
  JsonObject& add(const std::string& key, int64_t value);
  JsonObject& add(const std::string& key, int value) { return add(key, static_cast<int64_t>(value)); }
  JsonObject& add(const std::string& key, bool value);
  JsonObject& add_raw(const std::string& key, const std::string& json);  // a nested object or array
  std::string str() const { return "{" + body_ + "}"; }

 private:
  void key(const std::string& k);
  std::string body_;
};

std::string json_escape(const std::string& s);  // quoted JSON string literal
std::string json_array(const std::vector<double>& values);  // [1.5, 2, ...] (6 significant digits)

struct StepRecord {
  int64_t step = 0;
  double loss = 0.0;
  double lr = 0.0;
  double grad_norm = 0.0;
  double ms = 0.0;
  double tokens_per_s = 0.0;
  int64_t bytes_fwd = 0;    // bytes sent forward across all stage boundaries this step
  int64_t bytes_bwd = 0;    // bytes sent backward
  int64_t bytes_tied = 0;   // tied wte gradient exchanged between the first and the last stage, both ways
  int64_t bytes_dp = 0;     // data-parallel sync between replicas (0 with one replica, or between DiLoCo syncs)
  double compression = 1.0; // uncompressed boundary bytes / bytes on the wire (forward)
  // Per stage: compute ms of the step's forwards, backwards, and update (the update reported one step late: see
  // engine::pipeline::PhaseTimes). Logged as stage_forward_ms, stage_backward_ms, stage_update_ms: what
  // tools/wan_sim reads.
  std::vector<double> forward_ms, backward_ms, update_ms;
  // On a replica sync step: one replica's payload per stage (logged as dp_stage_bytes; absent on other steps).
  std::vector<double> dp_stage_bytes;
};

class RunLog {
 public:
  // Opens <path> for writing (truncate) or appending (a resumed run). Throws std::runtime_error on failure.
  RunLog(const std::string& path, bool append);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  void write(const JsonObject& record);  // one line, flushed
  void log_config(const std::vector<std::pair<std::string, std::string>>& flags, const JsonObject& run_table);
  void log_step(const StepRecord& r);
  void log_eval(int64_t step, double val_loss);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace train
