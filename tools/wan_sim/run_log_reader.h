// tools/wan_sim/run_log_reader.h: what the simulator takes from a trainer's JSONL log (train/run_log.h): the
// pipeline's shape (stages, micro-batches, schedule, the emulated link it ran on), each stage's compute per phase,
// and the bytes the engine counted on the wire, as medians over the steps after the first few (warm-up).
#pragma once

#include <stdexcept>
#include <string>

#include "tools/wan_sim/sim.h"

namespace wan_sim {

// Bad input (a file that cannot be read, a log without what is needed): the binary prints it as one `error:` line
// and exits 2.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct LoggedRun {
  Workload work;                 // compute medians per stage; bytes per step (medians) per boundary
  int micro_batches = 1;         // M of the run
  std::string schedule;          // "gpipe" or "1f1b"
  Links links;                   // the run's emulated link (rate 0: none); mode boundary unless it said node
  double measured_step_s = 0.0;  // median of the logged step times (the same steps)
  int steps_used = 0;
};

// Reads `path`; skips the first `skip_steps` step records (warm-up, and the update they lack). Throws InputError.
LoggedRun read_run_log(const std::string& path, int skip_steps);

// The JSON helpers it uses, for one line of the log (exposed for tests): the number, string, or array of numbers
// after the first occurrence of "key": at or after `from`; std::nullopt-like failure as a false return.
bool json_number(const std::string& line, const std::string& key, double* out, size_t from = 0);
bool json_string(const std::string& line, const std::string& key, std::string* out, size_t from = 0);
bool json_number_array(const std::string& line, const std::string& key, std::vector<double>* out);

}  // namespace wan_sim
