// train/console.cc: the run table and the per-step line.
#include "train/console.h"

#include <cstdio>

#include "engine/comm/link_model.h"

namespace train {

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024.0 && u < 4) {
    bytes /= 1024.0;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

JsonObject print_run_table(const RunConfig& c, const RunTableInputs& in) {
  const TrainFlags& f = c.flags;
  const std::string model = f.preset + " (" + resbm::describe_config(c.model) + ")";
  const std::string bottleneck = c.pipeline.stages > 1
                                     ? resbm::describe_bottleneck(c.bottleneck, c.model.channels)
                                     : std::string("none (one stage: no boundary)");
  char compression[96];
  if (c.pipeline.stages == 1) {
    std::snprintf(compression, sizeof(compression), "n/a (one stage)");
  } else if (in.compression_fwd > 0) {
    std::snprintf(compression, sizeof(compression), "%.2fx forward, %.2fx backward (measured, vs fp32 stream)",
                  in.compression_fwd, in.compression_bwd);
  } else {
    std::snprintf(compression, sizeof(compression), "measured on the first step");
  }
  char batch[160];
  const int R = c.replicas.replicas;
  if (R > 1) {
    std::snprintf(batch, sizeof(batch), "R=%d replicas x B=%d x T=%d x M=%d micro-batches = %lld tokens/step", R, c.B,
                  c.T, c.M, static_cast<long long>(c.tokens_per_step()));
  } else {
    std::snprintf(batch, sizeof(batch), "B=%d x T=%d x M=%d micro-batches = %lld tokens/step", c.B, c.T, c.M,
                  static_cast<long long>(c.tokens_per_step()));
  }
  char replicas[320] = "";  // no row with one replica
  char dp_link[96] = "";
  if (c.replicas.dp_link_mbps > 0 || c.replicas.dp_link_latency_ms > 0) {
    std::snprintf(dp_link, sizeof(dp_link), "; emulated DP link %g Mbit/s %g ms", c.replicas.dp_link_mbps,
                  c.replicas.dp_link_latency_ms);
  }
  if (R > 1 && c.replicas.sync == engine::pipeline::DpSync::step) {
    std::snprintf(replicas, sizeof(replicas),
                  "%d, synchronous: gradients averaged over the replicas every step (fp32, replica order)%s", R,
                  dp_link);
  } else if (R > 1) {
    std::snprintf(replicas, sizeof(replicas),
                  "%d, DiLoCo: a sync every %d steps, outer Nesterov lr %g momentum %g on the averaged change (%s)%s",
                  R, c.replicas.inner_steps, c.replicas.outer.outer_lr, c.replicas.outer.outer_momentum,
                  engine::comm::wire_dtype_name(c.replicas.dp_code), dp_link);
  }
  char optimizer[192];
  if (f.optimizer == "muon") {
    std::snprintf(optimizer, sizeof(optimizer),
                  "muon (lr %g, momentum %g, %d NS steps) + adamw (lr %g) | warmup %d, cosine to %g | wd %g | clip %g",
                  f.muon_lr, f.muon_momentum, f.muon_ns_steps, f.lr, f.warmup_steps, f.final_lr_frac,
                  f.weight_decay, f.grad_clip);
  } else {
    std::snprintf(optimizer, sizeof(optimizer),
                  "adamw (lr %g, betas %g/%g, eps %g) | warmup %d, cosine to %g | wd %g | clip %g", f.lr, f.beta1,
                  f.beta2, f.eps, f.warmup_steps, f.final_lr_frac, f.weight_decay, f.grad_clip);
  }
  const std::string memory = "params+grads " + format_bytes(static_cast<double>(in.param_bytes)) + ", optimizer " +
                             format_bytes(static_cast<double>(in.optimizer_bytes)) + ", activations " +
                             format_bytes(static_cast<double>(in.activation_bytes));
  std::string processes = "single process";
  if (c.mpi) {
    processes = R > 1 ? "one process per stage and replica (" + std::to_string(R * c.pipeline.stages) +
                            " ranks), transport " + c.transport
                      : "one process per stage, transport " + c.transport;
    char link[96] = "";
    if (c.real_link.mbps > 0) {
      std::snprintf(link, sizeof(link), ", real link %g Mbit/s (tc)", c.real_link.mbps);
    } else if (c.link.mbps > 0 || c.link.latency_ms > 0) {
      std::snprintf(link, sizeof(link), ", emulated link %g Mbit/s %g ms (%s wires)", c.link.mbps,
                    c.link.latency_ms, engine::comm::link_mode_name(c.link.mode));
    }
    processes += link;
  }
  const std::string stages = std::to_string(c.pipeline.stages) + " (" +
                             engine::pipeline::schedule_name(c.pipeline.schedule) + ", " + processes + ")";
  const std::pair<const char*, std::string> rows[] = {
      {"model", model},
      {"parameters", std::to_string(in.num_parameters)},
      {"stages", stages},
      {"replicas", replicas},
      {"bottleneck", bottleneck},
      {"compression", compression},
      {"batch", batch},
      {"optimizer", optimizer},
      {"steps", std::to_string(f.steps) + " (seed " + std::to_string(f.seed) + ", " + f.data_order + " data)"},
      {"memory", memory},
      {"device", f.device + " " + f.dtype + ", " + std::to_string(in.threads) + " CPU thread(s) per process"},
      {"cpu gemms", in.cpu_gemms.empty() ? std::string("-") : in.cpu_gemms},
      {"frozen", in.frozen},
      {"train data", c.train_pattern},
      {"val data", c.val_pattern},
      {"output", c.out_dir},
  };
  std::printf("+------------------------------------------------------------------------------\n");
  JsonObject json;
  for (const auto& row : rows) {
    if (row.second.empty()) continue;  // a row that does not apply to this run (ssn's frozen hash)
    std::printf("| %-12s %s\n", row.first, row.second.c_str());
    json.add(row.first, row.second);
  }
  std::printf("+------------------------------------------------------------------------------\n");
  std::fflush(stdout);
  json.add("num_parameters", in.num_parameters);
  return json;
}

std::string format_step_line(const StepRecord& r, int total_steps) {
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "step %5lld/%d | loss %.4f | lr %.2e | norm %.3f | %7.1f ms | %7.0f tok/s | wire %s fwd %s bwd (%.1fx)",
                static_cast<long long>(r.step), total_steps, r.loss, r.lr, r.grad_norm, r.ms, r.tokens_per_s,
                format_bytes(static_cast<double>(r.bytes_fwd)).c_str(),
                format_bytes(static_cast<double>(r.bytes_bwd)).c_str(), r.compression);
  std::string line = buf;
  // The tied wte gradient between the first and the last stage (a tied head, S > 1), then a replica sync.
  if (r.bytes_tied > 0) line += " | tied " + format_bytes(static_cast<double>(r.bytes_tied));
  if (r.bytes_dp > 0) line += " | dp " + format_bytes(static_cast<double>(r.bytes_dp));  // a replica sync this step
  return line;
}

}  // namespace train
