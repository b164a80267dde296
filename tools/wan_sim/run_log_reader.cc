// tools/wan_sim/run_log_reader.cc: a JSONL run log -> LoggedRun. The log's records are flat objects written by
// train/run_log.cc (keys are unique within a record, except that the config record's run table repeats a few of
// the flags' names after them), so finding a key's first occurrence is enough: no general JSON parser.
#include "tools/wan_sim/run_log_reader.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>

namespace wan_sim {

namespace {

size_t value_start(const std::string& line, const std::string& key, size_t from) {
  const std::string pattern = "\"" + key + "\": ";
  const size_t at = line.find(pattern, from);
  return at == std::string::npos ? std::string::npos : at + pattern.size();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int flag_int(const std::string& config, size_t flags_at, const std::string& name, const std::string& path) {
  std::string v;
  if (!json_string(config, name, &v, flags_at)) throw InputError(path + ": the config record has no flag " + name);
  return std::atoi(v.c_str());
}

double flag_double(const std::string& config, size_t flags_at, const std::string& name, double fallback) {
  std::string v;
  return json_string(config, name, &v, flags_at) ? std::atof(v.c_str()) : fallback;
}

}  // namespace

bool json_number(const std::string& line, const std::string& key, double* out, size_t from) {
  const size_t at = value_start(line, key, from);
  if (at == std::string::npos) return false;
  char* end = nullptr;
  *out = std::strtod(line.c_str() + at, &end);
  return end != line.c_str() + at;
}

bool json_string(const std::string& line, const std::string& key, std::string* out, size_t from) {
  const size_t at = value_start(line, key, from);
  if (at == std::string::npos || line[at] != '"') return false;
  const size_t close = line.find('"', at + 1);  // flag values hold no escaped quotes that matter here
  if (close == std::string::npos) return false;
  *out = line.substr(at + 1, close - at - 1);
  return true;
}

bool json_number_array(const std::string& line, const std::string& key, std::vector<double>* out) {
  size_t at = value_start(line, key, 0);
  if (at == std::string::npos || line[at] != '[') return false;
  out->clear();
  const char* p = line.c_str() + at + 1;
  for (;;) {
    while (*p == ' ') ++p;
    if (*p == ']') return true;
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p) return false;
    out->push_back(v);
    p = end;
    while (*p == ' ') ++p;
    if (*p == ',') ++p;
  }
}

LoggedRun read_run_log(const std::string& path, int skip_steps) {
  std::ifstream in(path);
  if (!in) throw InputError("cannot read the run log " + path);
  LoggedRun run;
  std::string line, config;
  std::vector<std::string> steps;
  while (std::getline(in, line)) {
    if (line.find("\"type\": \"config\"") != std::string::npos) config = line;  // a resumed run: the newest
    if (line.find("\"type\": \"step\"") != std::string::npos) steps.push_back(line);
  }
  if (config.empty()) throw InputError(path + " has no config record: not a run log of //train");
  const size_t flags_at = config.find("\"flags\": {");
  if (flags_at == std::string::npos) throw InputError(path + ": its config record has no flags");
  const int S = flag_int(config, flags_at, "stages", path);
  run.micro_batches = flag_int(config, flags_at, "micro-batches", path);
  if (!json_string(config, "schedule", &run.schedule, flags_at)) run.schedule = "gpipe";
  run.links.up_mbps = run.links.down_mbps = flag_double(config, flags_at, "link-mbps", 0.0);
  run.links.latency_ms = flag_double(config, flags_at, "link-latency-ms", 0.0);
  std::string mode;
  if (json_string(config, "link-mode", &mode, flags_at)) run.links.mode = engine::comm::parse_link_mode(mode);
  // Replicas (a log of an older trainer has none of these flags: one replica).
  const int R = static_cast<int>(flag_double(config, flags_at, "replicas", 1.0));
  std::string sync = "step";
  json_string(config, "dp-sync", &sync, flags_at);
  run.work.replicas = R;
  run.work.dp_every = sync == "diloco" ? static_cast<int>(flag_double(config, flags_at, "inner-steps", 1.0)) : 1;
  run.links.dp_mbps = flag_double(config, flags_at, "dp-link-mbps", 0.0);
  run.links.dp_latency_ms = flag_double(config, flags_at, "dp-link-latency-ms", 0.0);

  if (static_cast<int>(steps.size()) <= skip_steps) {
    throw InputError(path + " has " + std::to_string(steps.size()) + " step records; more than " +
                     std::to_string(skip_steps) + " (the warm-up skipped) are needed");
  }
  // Per stage and phase, then the step's bytes and time: one sample per step record used.
  std::vector<std::vector<double>> fwd(S), bwd(S), upd(S);
  std::vector<double> code, grad, tied, ms;
  std::vector<std::vector<double>> dp(S);  // per stage, the sync steps' payloads
  for (size_t i = skip_steps; i < steps.size(); ++i) {
    const std::string& r = steps[i];
    std::vector<double> payload;
    if (json_number_array(r, "dp_stage_bytes", &payload) && static_cast<int>(payload.size()) == S) {
      for (int s = 0; s < S; ++s) dp[s].push_back(payload[s]);
    }
    std::vector<double> f, b, u;
    if (!json_number_array(r, "stage_forward_ms", &f) || !json_number_array(r, "stage_backward_ms", &b) ||
        !json_number_array(r, "stage_update_ms", &u)) {
      throw InputError(path + " has no per-stage phase times (stage_forward_ms, stage_backward_ms, "
                       "stage_update_ms): a log of an older trainer; rerun it, or give the times as flags");
    }
    if (static_cast<int>(f.size()) != S || static_cast<int>(b.size()) != S || static_cast<int>(u.size()) != S) {
      throw InputError(path + ": a step record's phase times do not hold one value per stage (" +
                       std::to_string(S) + ")");
    }
    for (int s = 0; s < S; ++s) {
      fwd[s].push_back(f[s] * 1e-3);
      bwd[s].push_back(b[s] * 1e-3);
      upd[s].push_back(u[s] * 1e-3);
    }
    double v = 0.0;
    code.push_back(json_number(r, "bytes_fwd", &v) ? v : 0.0);
    grad.push_back(json_number(r, "bytes_bwd", &v) ? v : 0.0);
    tied.push_back(json_number(r, "bytes_tied", &v) ? v : 0.0);
    if (!json_number(r, "ms", &v)) throw InputError(path + ": a step record has no ms");
    ms.push_back(v * 1e-3);
  }
  run.steps_used = static_cast<int>(ms.size());
  run.measured_step_s = median(ms);
  Workload& w = run.work;
  w.stages = S;
  for (int s = 0; s < S; ++s) w.compute.push_back({median(fwd[s]), median(bwd[s]), median(upd[s])});
  // The engine counts bytes summed over boundaries (every boundary carries the same code width), over replicas,
  // and the tied exchange both ways together; the workload is one replica's.
  for (int b = 0; b < S - 1; ++b) {
    w.code_bytes.push_back(median(code) / (S - 1) / R);
    w.grad_bytes.push_back(median(grad) / (S - 1) / R);
  }
  w.tied_bytes = median(tied) / 2.0 / R;
  if (R > 1) {
    if (dp[0].empty()) {
      throw InputError(path + " is a run of " + std::to_string(R) + " replicas whose steps after the warm-up hold no "
                       "sync payloads (dp_stage_bytes): a log of an older trainer, or too few steps for a sync");
    }
    for (int s = 0; s < S; ++s) w.dp_bytes.push_back(median(dp[s]));
  }
  return run;
}

}  // namespace wan_sim
