// train/run_log.cc: JSON building and the JSONL writer.
#include "train/run_log.h"

#include <cerrno>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace train {

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string json_array(const std::vector<double>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.6g", values[i]);  // microsecond resolution at these magnitudes
    out += (i ? ", " : "") + std::string(buf);
  }
  return out + "]";
}

void JsonObject::key(const std::string& k) {
  if (!body_.empty()) body_ += ", ";
  body_ += json_escape(k) + ": ";
}

JsonObject& JsonObject::add(const std::string& k, const std::string& value) {
  key(k);
  body_ += json_escape(value);
  return *this;
}

JsonObject& JsonObject::add(const std::string& k, double value) {
  key(k);
  if (!std::isfinite(value)) {
    body_ += "null";  // JSON has no NaN/Inf; the trainer stops on them anyway
  } else {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.9g", value);  // 9 significant digits round-trip any float
    body_ += buf;
  }
  return *this;
}

JsonObject& JsonObject::add(const std::string& k, int64_t value) {
  key(k);
  body_ += std::to_string(value);
  return *this;
}

JsonObject& JsonObject::add(const std::string& k, bool value) {
  key(k);
  body_ += value ? "true" : "false";
  return *this;
}

JsonObject& JsonObject::add_raw(const std::string& k, const std::string& json) {
  key(k);
  body_ += json;
  return *this;
}

RunLog::RunLog(const std::string& path, bool append) : path_(path) {
  file_ = std::fopen(path.c_str(), append ? "a" : "w");
  if (file_ == nullptr) {
    throw std::runtime_error("cannot open the run log " + path + ": " + std::strerror(errno) +
                             "; check that --out-dir is writable");
  }
}

RunLog::~RunLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void RunLog::write(const JsonObject& record) {
  const std::string line = record.str() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    throw std::runtime_error("cannot write the run log " + path_ + ": " + std::strerror(errno));
  }
}

void RunLog::log_config(const std::vector<std::pair<std::string, std::string>>& flags,
                        const JsonObject& run_table) {
  JsonObject f;
  for (const auto& kv : flags) f.add(kv.first, kv.second);
  write(JsonObject().add("type", "config").add_raw("flags", f.str()).add_raw("run", run_table.str()));
}

void RunLog::log_step(const StepRecord& r) {
  JsonObject record;
  record.add("type", "step")
      .add("step", r.step)
      .add("loss", r.loss)
      .add("lr", r.lr)
      .add("grad_norm", r.grad_norm)
      .add("ms", r.ms)
      .add("tokens_per_s", r.tokens_per_s)
      .add("bytes_fwd", r.bytes_fwd)
      .add("bytes_bwd", r.bytes_bwd)
      .add("bytes_tied", r.bytes_tied)
      .add("bytes_dp", r.bytes_dp)
      .add("compression", r.compression)
      .add_raw("stage_forward_ms", json_array(r.forward_ms))
      .add_raw("stage_backward_ms", json_array(r.backward_ms))
      .add_raw("stage_update_ms", json_array(r.update_ms));
  if (!r.dp_stage_bytes.empty()) record.add_raw("dp_stage_bytes", json_array(r.dp_stage_bytes));
  write(record);
}

void RunLog::log_eval(int64_t step, double val_loss) {
  write(JsonObject().add("type", "eval").add("step", step).add("val_loss", val_loss));
}

}  // namespace train
