// tools/bench/link_bench.cc: step wall time of pipeline-parallel training over an emulated slow link, `none`
// against `resbm` r=128, next to the compute-only time (no emulation), for S stages as MPI ranks on this machine.
//
//   bazel-bin/tools/bench/link_bench [--presets tiny,d12] [--stages 4] [--mbps 100] [--latency-ms 0] [--steps 4]
//                                    [--untie-head 0|1]
//
// With --real-link-mbps R (root) the table is instead emulated and real links side by side, at the same rate: per
// bottleneck, the compute-only step, the step over the emulated link, the step over a real link (each rank in a
// network namespace of its own, its egress shaped by tc to R Mbit/s, MPI over TCP only: tools/netlink/netlink.sh,
// see train/pipeline_launch.h), and the bytes a step puts on the wire.
//
// Each case runs as its own mpirun job (one rank per stage, this same binary as the worker, which runs the one
// trainer, train::run_training, with --executor mpi and reads the step times from its log). A step's time is the
// median over the steps after the first (warm-up). The link emulator delays the boundary codes (one wire per
// boundary and direction) and the tied wte gradient exchange between the first and the last stage (one wire per
// direction of its own), so the "link" rows include both. The table splits the wire time of a step into the codes'
// part and the tied embedding's part (transmission at the link rate; latency listed apart).
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "train/data_setup.h"
#include "train/flags.h"
#include "train/pipeline_launch.h"
#include "train/run_config.h"
#include "train/trainer.h"

namespace {

struct Preset {
  std::string name;
  int batch, seq_len, micro_batches;
};

struct Case {
  std::string label, bottleneck;
  int ratio;
  bool throttled;
};

// What the worker of one case reports (rank 0's figures).
struct CaseResult {
  bool ok = false;
  int status = 0;  // the job's wait status, when it failed
  double seconds = 0, ratio = 0;
  unsigned long long fwd = 0, bwd = 0, tied = 0;
};

// A number field of a JSONL record ("key": value), or -1.
double json_number(const std::string& line, const std::string& key) {
  const size_t p = line.find("\"" + key + "\": ");
  return p == std::string::npos ? -1.0 : std::atof(line.c_str() + p + key.size() + 4);
}

// Worker (one rank): the trainer itself, on this case's flags; then rank 0 reads the run's log.jsonl and writes
// "median_s fwd_bytes bwd_bytes ratio tied_bytes" to the result file.
int worker(int argc, char** argv) {
  std::string result, out_dir;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--bench-result" && i + 1 < argc) {
      result = argv[++i];
      continue;
    }
    if (std::string(argv[i]) == "--out-dir" && i + 1 < argc) out_dir = argv[i + 1];
    args.push_back(argv[i]);
  }
  int rc = 0;
  // The trainer's own lines (run table, steps, sample) would interleave with the table: only errors (stderr) show.
  if (std::freopen("/dev/null", "w", stdout) == nullptr) return 2;
  try {
    rc = train::run_training(train::make_run_config(train::parse_flags(args)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (rc != 0 || (rank != nullptr && std::atoi(rank) != 0)) return rc;
  std::ifstream log(out_dir + "/log.jsonl");  // rank 0's
  std::vector<double> times;
  std::string line, last;
  while (std::getline(log, line)) {
    if (line.find("\"type\": \"step\"") == std::string::npos) continue;
    if (json_number(line, "step") > 1) times.push_back(json_number(line, "ms") / 1e3);  // step 1 warms up
    last = line;
  }
  if (last.empty()) return 1;
  if (times.empty()) times.push_back(json_number(last, "ms") / 1e3);
  std::sort(times.begin(), times.end());
  std::ofstream out(result);
  out << times[times.size() / 2] << " " << static_cast<unsigned long long>(json_number(last, "bytes_fwd")) << " "
      << static_cast<unsigned long long>(json_number(last, "bytes_bwd")) << " " << json_number(last, "compression")
      << " " << static_cast<unsigned long long>(json_number(last, "bytes_tied")) << "\n";
  return 0;
}

std::string flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

// Runs one case as an mpirun job of `stages` ranks (over a real link when real_link.mbps > 0) and reads what its
// rank 0 wrote. `args` are the pipeline's flags; `result` names the result file.
CaseResult run_case(int stages, std::vector<std::string> args, const std::string& result,
                    const train::RealLink& real_link) {
  std::system(("rm -rf " + result + ".out").c_str());  // a fresh output directory per case
  args.insert(args.end(), {"--bench-result", result, "--out-dir", result + ".out"});
  const pid_t pid = fork();
  if (pid == 0) _exit(train::exec_mpirun(stages, "", args, 1, real_link));
  CaseResult r;
  waitpid(pid, &r.status, 0);
  std::ifstream in(result);
  r.ok = static_cast<bool>(in >> r.seconds >> r.fwd >> r.bwd >> r.ratio >> r.tied);
  std::remove(result.c_str());
  std::system(("rm -rf " + result + ".out").c_str());
  return r;
}

// The pipeline flags of one case: preset p, `stages`, bottleneck and ratio; the emulated link when mbps > 0.
std::vector<std::string> case_args(const Preset& p, int stages, const std::string& bottleneck, int ratio,
                                   const std::string& steps, const std::string& untie, double mbps,
                                   const std::string& latency) {
  // The trainer's flags: constant lr, no evaluation or sample, the one checkpoint at the end.
  std::vector<std::string> args = {"--executor", "mpi", "--preset", p.name, "--stages", std::to_string(stages),
                                   "--micro-batches", std::to_string(p.micro_batches), "--batch-size",
                                   std::to_string(p.batch), "--seq-len", std::to_string(p.seq_len), "--steps", steps,
                                   "--bottleneck", bottleneck, "--ratio", std::to_string(ratio), "--log-interval",
                                   "1000000", "--eval-interval", "0", "--eval-batches", "1", "--sample-length", "0",
                                   "--warmup-steps", "0", "--comm-timeout-s", "600", "--threads", "1",
                                   "--untie-head", untie};
  if (mbps > 0) args.insert(args.end(), {"--link-mbps", std::to_string(mbps), "--link-latency-ms", latency});
  return args;
}

// A step's time for a table cell: milliseconds, or why there is none.
std::string step_ms(const CaseResult& r) {
  char cell[64];
  if (r.ok) {
    std::snprintf(cell, sizeof(cell), "%.1f", r.seconds * 1e3);
  } else {
    std::snprintf(cell, sizeof(cell), "failed (status %d)", r.status);
  }
  return cell;
}

// --real-link-mbps: per preset and bottleneck (none, resbm r=128), compute only, emulated link and real link at the
// same rate and delay, one row each bottleneck.
int side_by_side(const std::vector<Preset>& presets, int stages, double mbps, const std::string& latency,
                 const std::string& steps, const std::string& untie, const std::string& tmp) {
  const train::RealLink real{mbps, std::atof(latency.c_str())};
  try {
    train::require_real_link(real);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "link_bench: %s\n", e.what());
    return 2;
  }
  std::printf("link_bench: S=%d stages as MPI ranks on one machine, GPipe, AdamW, head %s; emulated and real links "
              "side by side at %g Mbit/s, delay %s ms per message\n"
              "  emulated: the link emulator inside the transport (one wire per boundary and direction, and one per "
              "direction\n"
              "            of the tied exchange)\n"
              "  real:     each rank in a network namespace of its own, its egress shaped by tc tbf (netem for the "
              "delay),\n"
              "            MPI over TCP only; a stage's forward and backward messages share its one egress\n"
              "bytes/step: the codes forward and backward over all boundaries, and the tied wte gradient (both "
              "directions)\n\n",
              stages, untie == "1" ? "untied (--untie-head 1: no tied exchange)" : "tied", mbps, latency.c_str());
  std::printf("| preset | B x T x M | bottleneck | compute only, step ms | emulated link, step ms | real link, step ms "
              "| fwd bytes/step | bwd bytes/step | tied bytes/step |\n"
              "|---|---|---|---:|---:|---:|---:|---:|---:|\n");
  const std::vector<Case> bottlenecks = {{"none", "none", 1, false}, {"resbm r=128", "resbm", 128, false}};
  for (const Preset& p : presets) {
    for (const Case& c : bottlenecks) {
      const std::string base = tmp + "." + p.name + "." + c.bottleneck;
      const CaseResult compute =
          run_case(stages, case_args(p, stages, c.bottleneck, c.ratio, steps, untie, 0, "0"), base + ".compute", {});
      const CaseResult emulated = run_case(
          stages, case_args(p, stages, c.bottleneck, c.ratio, steps, untie, mbps, latency), base + ".emulated", {});
      const CaseResult over_real =
          run_case(stages, case_args(p, stages, c.bottleneck, c.ratio, steps, untie, 0, "0"), base + ".real", real);
      const CaseResult& bytes = over_real.ok ? over_real : emulated;
      std::printf("| %s | %d x %d x %d | %s | %s | %s | %s | %llu | %llu | %llu |\n", p.name.c_str(), p.batch,
                  p.seq_len, p.micro_batches, c.label.c_str(), step_ms(compute).c_str(), step_ms(emulated).c_str(),
                  step_ms(over_real).c_str(), bytes.fwd, bytes.bwd, bytes.tied);
      std::fflush(stdout);
    }
  }
  return 0;
}

const char* kUsage =
    "usage: link_bench [--presets tiny,d12] [--stages 4] [--mbps 100] [--latency-ms 0] [--steps 4]\n"
    "                  [--untie-head 0|1] [--real-link-mbps R [--real-link-latency-ms D]]\n"
    "\n"
    "Step time of pipeline-parallel training (S stages as MPI ranks on this machine, GPipe, AdamW) with and\n"
    "without an emulated slow link, bottleneck `none` against `resbm` r=128. The emulated link delays both the\n"
    "boundary codes (one wire per boundary and direction) and the tied wte gradient exchange between stage 0\n"
    "and stage S-1 (one wire per direction of its own). The output splits each step's wire time into codes and\n"
    "tied embedding. d12 is slow on a CPU (minutes per case); `--presets tiny` is quick.\n"
    "--untie-head 1 runs every case with the last stage's LM head untied from wte (its own lm_head.weight): no\n"
    "tied exchange, so the tied columns read 0.\n"
    "--real-link-mbps R (root): emulated and real links side by side at R Mbit/s (and D ms of delay, which needs\n"
    "tc netem in the kernel): compute only, emulated link, real link (ranks in network namespaces, egress shaped\n"
    "by tc, MPI over TCP; tools/netlink/netlink.sh) and bytes per step, for none and resbm r=128. --mbps and\n"
    "--latency-ms are not used then. `--presets tiny --stages 2 --untie-head 1 --real-link-mbps 50` is quick.\n";

}  // namespace

int main(int argc, char** argv) {
  if (train::launched_by_mpirun()) return worker(argc, argv);
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  const std::string presets = flag(argc, argv, "presets", "tiny,d12");
  try {
    // The data once, before any rank starts (tinyshakespeare; offline: $RESBM_DATA_MIRROR).
    train::RunConfig data = train::make_run_config(train::parse_flags(std::vector<std::string>{}));
    train::setup_data(&data);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "link_bench: %s\n", e.what());
    return 2;
  }
  const int stages = std::atoi(flag(argc, argv, "stages", "4").c_str());
  const double mbps = std::atof(flag(argc, argv, "mbps", "100").c_str());
  const std::string latency = flag(argc, argv, "latency-ms", "0");
  const std::string steps = flag(argc, argv, "steps", "4");
  const std::string untie = flag(argc, argv, "untie-head", "0");
  if (untie != "0" && untie != "1") {
    std::fprintf(stderr, "link_bench: --untie-head must be 0 or 1, not '%s'\n", untie.c_str());
    return 2;
  }
  // Batches that fit this machine (24 GiB, 2 cores) with 4 ranks: tiny at B=4 T=64, d12 at B=1 T=256; M=4.
  const std::vector<Preset> all = {{"tiny", 4, 64, 4}, {"d12", 1, 256, 4}};
  const std::string tmp = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/link_bench." +
                          std::to_string(getpid());
  const double real_mbps = std::atof(flag(argc, argv, "real-link-mbps", "0").c_str());
  if (real_mbps > 0) {
    std::vector<Preset> chosen;
    for (const Preset& p : all) {
      if (presets.find(p.name) != std::string::npos) chosen.push_back(p);
    }
    return side_by_side(chosen, stages, real_mbps, flag(argc, argv, "real-link-latency-ms", "0"), steps, untie, tmp);
  }
  const std::vector<Case> cases = {{"none, compute only", "none", 1, false},
                                   {"resbm r=128, compute only", "resbm", 128, false},
                                   {"none, link", "none", 1, true},
                                   {"resbm r=128, link", "resbm", 128, true}};
  const double latency_s = std::atof(latency.c_str()) * 1e-3;
  std::printf("link_bench: S=%d stages as MPI ranks on one machine, link %.0f Mbit/s latency %s ms per wire "
              "(emulated), GPipe, AdamW, head %s\n",
              stages, mbps, latency.c_str(), untie == "1" ? "untied (--untie-head 1: no tied exchange)" : "tied");
  std::printf("The emulated link delays the boundary codes (one wire per boundary and direction) AND the tied wte\n"
              "gradient exchange (one wire per direction between stage 0 and stage %d): the \"link\" rows' step times\n"
              "include both. Wire time per step at the link rate (transmission only; each message adds %s ms latency):\n"
              "  codes s/wire = 8 * (fwd bytes / %d boundaries) / rate, one boundary wire, forward (backward the same)\n"
              "  tied s/wire  = 8 * (tied bytes / 2) / rate, one tied wire (the two directions run in parallel)\n"
              "(compute-only rows ran without the emulated link: no wire time in their step time, shown as -)\n\n",
              stages - 1, latency.c_str(), stages - 1);
  std::printf("| preset | B x T x M | case | step ms (median) | fwd bytes/step | ratio | codes s/wire | "
              "tied wte bytes/step | tied s/wire | tied share of wire time |\n"
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
  std::vector<std::string> summary;
  for (const Preset& p : all) {
    if (presets.find(p.name) == std::string::npos) continue;
    for (const Case& c : cases) {
      const std::string result = tmp + "." + p.name + "." + c.bottleneck + (c.throttled ? ".link" : ".compute");
      const CaseResult r = run_case(
          stages, case_args(p, stages, c.bottleneck, c.ratio, steps, untie, c.throttled ? mbps : 0, latency), result,
          {});
      if (!r.ok) {
        std::printf("| %s | | %s | %s | | | | | | |\n", p.name.c_str(), c.label.c_str(), step_ms(r).c_str());
        continue;
      }
      const double seconds = r.seconds, ratio = r.ratio;
      const unsigned long long fwd = r.fwd, tied = r.tied;
      const double rate = mbps * 1e6;
      const double codes_s = mbps > 0 ? 8.0 * static_cast<double>(fwd) / std::max(1, stages - 1) / rate : 0.0;
      const double tied_s = mbps > 0 ? 8.0 * static_cast<double>(tied) / 2.0 / rate : 0.0;
      const double share = codes_s + tied_s > 0 ? tied_s / (codes_s + tied_s) : 0.0;
      // Compute-only rows ran without the link: their wire-time columns would not be in their step time.
      char codes_col[32] = "-", tied_col[32] = "-", share_col[32] = "-";
      if (c.throttled) {
        std::snprintf(codes_col, sizeof(codes_col), "%.4f", codes_s);
        std::snprintf(tied_col, sizeof(tied_col), "%.3f", tied_s);
        std::snprintf(share_col, sizeof(share_col), "%.2f%%", 100.0 * share);
      }
      std::printf("| %s | %d x %d x %d | %s | %.1f | %llu | %.1f | %s | %llu | %s | %s |\n", p.name.c_str(), p.batch,
                  p.seq_len, p.micro_batches, c.label.c_str(), seconds * 1e3, fwd, ratio, codes_col, tied, tied_col,
                  share_col);
      std::fflush(stdout);
      if (c.throttled) {
        char line[512];
        std::snprintf(line, sizeof(line),
                      "%s, %s: step %.1f ms over the link; of the wire time, codes %.4f s per boundary wire "
                      "(+%d x %.0f ms latency), tied wte %.3f s per tied wire (+%.0f ms latency)",
                      p.name.c_str(), c.label.c_str(), seconds * 1e3, codes_s, p.micro_batches, latency_s * 1e3,
                      tied_s, latency_s * 1e3);
        summary.push_back(line);
      }
    }
  }
  if (!summary.empty()) std::printf("\nWire time, codes vs tied embedding (both delayed by the emulator):\n");
  for (const std::string& line : summary) std::printf("  %s\n", line.c_str());
  return 0;
}
