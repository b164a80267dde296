// train/console.h: what the trainer prints: the run table at the start and one line per step, eval and sample.
// The run table is also returned as JSON for the log's config record, so the two never disagree.
#pragma once

#include <string>

#include "train/backend.h"
#include "train/run_config.h"
#include "train/run_log.h"

namespace train {

struct RunTableInputs {
  int64_t num_parameters = 0;
  size_t param_bytes = 0;       // values + gradients, all stages
  size_t optimizer_bytes = 0;
  size_t activation_bytes = 0;
  int threads = 0;              // CPU threads per process (local == mpi bitwise needs the same count)
  std::string cpu_gemms;        // the CPU GEMM library and which bf16 path it takes (empty on the GPU)
  std::string frozen;           // ssn: the frozen tensors' hash, checked equal on every stage (empty: no row)
  double compression_fwd = 0;   // measured on the first step (0: not yet measured)
  double compression_bwd = 0;
};

// Prints the table to stdout and returns it as a JSON object.
JsonObject print_run_table(const RunConfig& config, const RunTableInputs& in);

// "step 12/300 | loss 6.1234 | lr 3.00e-04 | norm 1.234 | 123.4 ms | 4150 tok/s | wire 64 KiB fwd 64 KiB bwd (8.0x)"
std::string format_step_line(const StepRecord& r, int total_steps);

std::string format_bytes(double bytes);  // "1.50 MiB"

}  // namespace train
