// tools/bench/link_bench.cc: step wall time of pipeline-parallel training over an emulated slow link, `none`
// against `resbm` r=128, next to the compute-only time (no emulation), for S stages as MPI ranks on this machine.
//
//   bazel-bin/tools/bench/link_bench [--presets tiny,d12] [--stages 4] [--mbps 100] [--latency-ms 0] [--steps 4]
//
// Each case runs as its own mpirun job (one rank per stage, this same binary as the worker). A step's time is the
// median over the steps after the first (warm-up). The link emulator delays boundary messages only; the tied wte
// gradient exchange between the first and the last stage is not delayed, so the table also shows what that
// exchange would cost at the link rate (8 * bytes / rate), for a reader to add.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "train/pipeline_launch.h"
#include "train/pipeline_run.h"

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

// Worker: run the pipeline, rank 0 writes "median_s fwd_bytes bwd_bytes ratio tied_bytes" to the result file.
int worker(int argc, char** argv) {
  std::string result;
  std::vector<char*> args = {argv[0]};
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--bench-result" && i + 1 < argc) {
      result = argv[++i];
    } else {
      args.push_back(argv[i]);
    }
  }
  bool help = false;
  train::PipelineRunOptions o = train::parse_pipeline_flags(static_cast<int>(args.size()), args.data(), &help);
  std::vector<train::PipelineStepRecord> records;
  const int rc = train::run_pipeline(o, &records);
  if (rc != 0 || records.empty()) return rc != 0 ? rc : 1;
  const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
  if (rank != nullptr && std::atoi(rank) != 0) return 0;
  std::vector<double> times;
  for (size_t i = 1; i < records.size(); ++i) times.push_back(records[i].seconds);
  if (times.empty()) times.push_back(records[0].seconds);
  std::sort(times.begin(), times.end());
  const train::PipelineStepRecord& r = records.back();
  std::ofstream out(result);
  out << times[times.size() / 2] << " " << r.forward_bytes << " " << r.backward_bytes << " " << r.forward_ratio << " "
      << r.tied_bytes << "\n";
  return 0;
}

std::string flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  if (train::launched_by_mpirun()) return worker(argc, argv);
  const std::string presets = flag(argc, argv, "presets", "tiny,d12");
  const int stages = std::atoi(flag(argc, argv, "stages", "4").c_str());
  const double mbps = std::atof(flag(argc, argv, "mbps", "100").c_str());
  const std::string latency = flag(argc, argv, "latency-ms", "0");
  const std::string steps = flag(argc, argv, "steps", "4");
  // Batches that fit this machine (24 GiB, 2 cores) with 4 ranks: tiny at B=4 T=64, d12 at B=1 T=256; M=4.
  const std::vector<Preset> all = {{"tiny", 4, 64, 4}, {"d12", 1, 256, 4}};
  const std::vector<Case> cases = {{"none, compute only", "none", 1, false},
                                   {"resbm r=128, compute only", "resbm", 128, false},
                                   {"none, link", "none", 1, true},
                                   {"resbm r=128, link", "resbm", 128, true}};
  const std::string tmp = std::string(std::getenv("TMPDIR") ? std::getenv("TMPDIR") : "/tmp") + "/link_bench." +
                          std::to_string(getpid());
  std::printf("link_bench: S=%d stages as MPI ranks on one machine, link %.0f Mbit/s latency %s ms per boundary and "
              "direction (emulated), GPipe, AdamW\n\n",
              stages, mbps, latency.c_str());
  std::printf("| preset | B x T x M | case | step ms (median) | fwd bytes/step | ratio | tied wte bytes/step | tied at "
              "link rate (s) |\n|---|---|---|---:|---:|---:|---:|---:|\n");
  for (const Preset& p : all) {
    if (presets.find(p.name) == std::string::npos) continue;
    for (const Case& c : cases) {
      const std::string result = tmp + "." + p.name + "." + c.bottleneck + (c.throttled ? ".link" : ".compute");
      std::vector<std::string> args = {"--preset", p.name, "--stages", std::to_string(stages), "--micro-batches",
                                       std::to_string(p.micro_batches), "--batch", std::to_string(p.batch),
                                       "--seq-len", std::to_string(p.seq_len), "--steps", steps, "--bottleneck",
                                       c.bottleneck, "--ratio", std::to_string(c.ratio), "--quiet", "1",
                                       "--comm-timeout-s", "600", "--threads", "1", "--bench-result", result};
      if (c.throttled) {
        args.insert(args.end(), {"--link-mbps", std::to_string(mbps), "--link-latency-ms", latency});
      }
      const pid_t pid = fork();
      if (pid == 0) _exit(train::exec_mpirun(stages, "", args, 1));
      int status = 0;
      waitpid(pid, &status, 0);
      std::ifstream in(result);
      double seconds = 0, ratio = 0;
      unsigned long long fwd = 0, bwd = 0, tied = 0;
      if (!(in >> seconds >> fwd >> bwd >> ratio >> tied)) {
        std::printf("| %s | | %s | failed (status %d) | | | | |\n", p.name.c_str(), c.label.c_str(), status);
        continue;
      }
      std::remove(result.c_str());
      std::printf("| %s | %d x %d x %d | %s | %.1f | %llu | %.1f | %llu | %.2f |\n", p.name.c_str(), p.batch,
                  p.seq_len, p.micro_batches, c.label.c_str(), seconds * 1e3, fwd, ratio, tied,
                  8.0 * static_cast<double>(tied) / (mbps * 1e6));
      std::fflush(stdout);
    }
  }
  return 0;
}
