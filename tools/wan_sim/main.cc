// tools/wan_sim/main.cc: `wan_sim`, how long one training step of a pipeline takes over given links, from a run's
// log (its compute per stage and phase, its bytes) or from flags (hardware this machine lacks); and which number of
// micro-batches and schedule is fastest on those links. Bad input: one `error:` line, exit 2.
//
//   bazel-bin/tools/wan_sim/wan_sim --log out/run/log.jsonl --link-mode node --up-mbps 10 --latency-ms 50
//   bazel-bin/tools/wan_sim/wan_sim --stages 8 --micro-batches 64 --schedule 1f1b --forward-ms 39
//       --backward-ms 78 --rows 524288 --code-width 1024 --wire-dtype bf16 --link-mode node --up-mbps 200
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/comm/codec.h"
#include "tools/wan_sim/run_log_reader.h"
#include "tools/wan_sim/sim.h"

namespace {

using wan_sim::InputError;

const char* kUsage =
    "usage: wan_sim [--log RUN.jsonl [--skip-steps 2]] | [--stages S --micro-batches M --schedule gpipe|1f1b\n"
    "         --forward-ms F --backward-ms B [--update-ms U] --rows N --code-width K --wire-dtype fp32|bf16|int8\n"
    "         [--tied-bytes X]]  [--replicas R --dp-bytes P [--dp-every H]] [--dp-mbps D] [--dp-latency-ms L]\n"
    "         [--link-mode boundary|node] [--up-mbps R] [--down-mbps R] [--latency-ms L] [--sweep 1,2,4,8,16] [--json]\n"
    "  F, B, U: one stage's compute for a whole step (all micro-batches) in ms, one value or one per stage (a,b,c);\n"
    "  N: tokens (rows of the code) per step; K: the code width at every boundary. A log gives all of these, and\n"
    "  its emulated link unless the link flags say otherwise. Rates in Mbit/s, > 0; --down-mbps defaults to up.\n"
    "  R replicas: P is one replica's sync payload per stage in bytes (one value or one per stage), a sync every H\n"
    "  steps (1: synchronous data parallelism) over each stage's data-parallel link of D Mbit/s (a log of a run with\n"
    "  --replicas gives R, P, H and its --dp-link-mbps).\n";

const std::vector<std::string> kFlags = {"log",         "skip-steps", "stages",     "micro-batches", "schedule",
                                         "forward-ms",  "backward-ms", "update-ms", "rows",          "code-width",
                                         "wire-dtype",  "tied-bytes", "replicas",   "link-mode",     "up-mbps",
                                         "down-mbps",   "latency-ms", "sweep",      "json",          "dp-bytes",
                                         "dp-every",    "dp-mbps",    "dp-latency-ms"};

std::map<std::string, std::string> parse_flags(int argc, char** argv) {
  std::map<std::string, std::string> flags;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) throw InputError("unexpected argument '" + a + "' (see --help)");
    a = a.substr(2);
    bool known = false;
    for (const std::string& k : kFlags) known = known || k == a;
    if (!known) throw InputError("unknown flag --" + a + " (see --help)");
    if (a == "json") {
      flags[a] = "1";
      continue;
    }
    if (i + 1 >= argc) throw InputError("--" + a + " needs a value");
    flags[a] = argv[++i];
  }
  return flags;
}

double number(const std::string& name, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0') throw InputError("--" + name + ": '" + text + "' is not a number");
  return v;
}

int integer(const std::string& name, const std::string& text) {
  const double v = number(name, text);
  if (v != static_cast<int>(v)) throw InputError("--" + name + ": '" + text + "' is not an integer");
  return static_cast<int>(v);
}

std::vector<double> numbers(const std::string& name, const std::string& csv) {
  std::vector<double> out;
  std::stringstream in(csv);
  std::string item;
  while (std::getline(in, item, ',')) out.push_back(number(name, item));
  if (out.empty()) throw InputError("--" + name + " is empty");
  return out;
}

// One value for every stage, or one per stage.
std::vector<double> per_stage(const std::map<std::string, std::string>& f, const std::string& name, int S,
                              double fallback) {
  const auto it = f.find(name);
  if (it == f.end()) return std::vector<double>(S, fallback);
  std::vector<double> v = numbers(name, it->second);
  if (v.size() == 1) v.assign(S, v[0]);
  if (static_cast<int>(v.size()) != S) {
    throw InputError("--" + name + ": " + std::to_string(v.size()) + " values for " + std::to_string(S) + " stages");
  }
  for (double x : v) {
    if (x < 0) throw InputError("--" + name + " must be >= 0");
  }
  return v;
}

std::string need(const std::map<std::string, std::string>& f, const std::string& name) {
  const auto it = f.find(name);
  if (it == f.end()) throw InputError("--" + name + " is needed without --log (see --help)");
  return it->second;
}

// The workload of flags: compute as given; message sizes from the engine's codec (comm::encoded_bytes), the same
// arithmetic that sizes a real run's messages.
wan_sim::Workload workload_from_flags(const std::map<std::string, std::string>& f, int S) {
  wan_sim::Workload w;
  w.stages = S;
  const std::vector<double> fwd = per_stage(f, "forward-ms", S, -1), bwd = per_stage(f, "backward-ms", S, -1),
                            upd = per_stage(f, "update-ms", S, 0);
  if (fwd[0] < 0 || bwd[0] < 0) throw InputError("--forward-ms and --backward-ms are needed without --log");
  for (int s = 0; s < S; ++s) w.compute.push_back({fwd[s] * 1e-3, bwd[s] * 1e-3, upd[s] * 1e-3});
  if (S > 1) {
    const double rows = number("rows", need(f, "rows"));
    const int K = integer("code-width", need(f, "code-width"));
    if (rows <= 0 || K <= 0) throw InputError("--rows and --code-width must be > 0");
    const engine::comm::WireDType dtype = engine::comm::parse_wire_dtype(need(f, "wire-dtype"));
    const double bytes = static_cast<double>(engine::comm::encoded_bytes(dtype, static_cast<int64_t>(rows), K));
    w.code_bytes.assign(S - 1, bytes);
    w.grad_bytes.assign(S - 1, bytes);  // the gradient crosses in the code's dtype (codec.h)
  }
  if (f.count("tied-bytes")) w.tied_bytes = number("tied-bytes", f.at("tied-bytes"));
  return w;
}

double rate_flag(const std::map<std::string, std::string>& f, const std::string& name, double fallback) {
  if (!f.count(name)) return fallback;
  const double v = number(name, f.at(name));
  if (v <= 0) throw InputError("--" + name + " must be > 0 Mbit/s, got " + f.at(name));
  return v;
}

std::string pct(double part, double whole) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%5.1f%%", whole > 0 ? 100.0 * part / whole : 0.0);
  return buf;
}

int run(int argc, char** argv) {
  const auto f = parse_flags(argc, argv);
  wan_sim::Workload work;
  wan_sim::Links links;
  int M = 1;
  std::string schedule = "gpipe";
  double measured = 0.0;
  if (f.count("log")) {
    const int skip = f.count("skip-steps") ? integer("skip-steps", f.at("skip-steps")) : 2;
    if (skip < 0) throw InputError("--skip-steps must be >= 0");
    const wan_sim::LoggedRun r = wan_sim::read_run_log(f.at("log"), skip);
    work = r.work;
    links = r.links;
    M = r.micro_batches;
    schedule = r.schedule;
    measured = r.measured_step_s;
  } else {
    const int S = integer("stages", need(f, "stages"));
    if (S < 1) throw InputError("--stages must be >= 1");
    work = workload_from_flags(f, S);
    M = integer("micro-batches", need(f, "micro-batches"));
    schedule = need(f, "schedule");
  }
  if (f.count("micro-batches")) M = integer("micro-batches", f.at("micro-batches"));
  if (f.count("schedule")) schedule = f.at("schedule");
  if (f.count("replicas")) work.replicas = integer("replicas", f.at("replicas"));
  if (f.count("dp-bytes")) work.dp_bytes = per_stage(f, "dp-bytes", work.stages, 0);
  if (f.count("dp-every")) work.dp_every = integer("dp-every", f.at("dp-every"));
  if (work.replicas > 1 && work.dp_bytes.empty()) {
    throw InputError("--replicas " + std::to_string(work.replicas) + " needs --dp-bytes, one replica's sync payload "
                     "per stage (or a --log of a run with replicas)");
  }
  links.dp_mbps = rate_flag(f, "dp-mbps", links.dp_mbps);
  if (f.count("dp-latency-ms")) {
    links.dp_latency_ms = number("dp-latency-ms", f.at("dp-latency-ms"));
    if (links.dp_latency_ms < 0) throw InputError("--dp-latency-ms must be >= 0");
  }
  if (f.count("link-mode")) links.mode = engine::comm::parse_link_mode(f.at("link-mode"));
  links.up_mbps = rate_flag(f, "up-mbps", links.up_mbps);
  links.down_mbps = rate_flag(f, "down-mbps", f.count("up-mbps") ? links.up_mbps : links.down_mbps);
  if (f.count("latency-ms")) {
    links.latency_ms = number("latency-ms", f.at("latency-ms"));
    if (links.latency_ms < 0) throw InputError("--latency-ms must be >= 0");
  }
  const engine::pipeline::Schedule sched = engine::pipeline::parse_schedule(schedule);
  const wan_sim::SimResult res = wan_sim::simulate(work, M, sched, links);

  // The sweep: the same step's work cut into other numbers of micro-batches, under both schedules.
  std::vector<double> sweep_m = numbers("sweep", f.count("sweep") ? f.at("sweep") : "1,2,4,8,16");
  struct Point { int m; const char* schedule; double step_s; };
  std::vector<Point> sweep;
  Point best{0, "", 0.0};
  for (double mv : sweep_m) {
    const int m = static_cast<int>(mv);
    if (m < 1 || m != mv) throw InputError("--sweep: micro-batch counts must be integers >= 1");
    for (auto s : {engine::pipeline::Schedule::gpipe, engine::pipeline::Schedule::one_f_one_b}) {
      const double t = wan_sim::simulate(work, m, s, links).step_s;
      sweep.push_back({m, engine::pipeline::schedule_name(s), t});
      if (best.m == 0 || t < best.step_s) best = sweep.back();
    }
  }

  const int S = work.stages;
  if (f.count("json")) {
    std::printf("{\"step_s\": %.9g, \"plain_step_s\": %.9g, \"sync_step_s\": %.9g, \"measured_step_s\": %.9g, "
                "\"stages\": [", res.step_s, res.plain_step_s, res.sync_step_s, measured);
    for (int s = 0; s < S; ++s) {
      const auto& u = res.stages[s];
      std::printf("%s{\"busy_s\": %.9g, \"waiting_s\": %.9g, \"idle_s\": %.9g, \"dp_s\": %.9g}", s ? ", " : "",
                  u.busy_s, u.waiting_s, u.idle_s, u.dp_s);
    }
    std::printf("], \"wires\": [");
    for (size_t i = 0; i < res.wires.size(); ++i) {
      std::printf("%s{\"name\": \"%s\", \"busy_s\": %.9g}", i ? ", " : "", res.wires[i].name.c_str(),
                  res.wires[i].busy_s);
    }
    std::printf("], \"sweep\": [");
    for (size_t i = 0; i < sweep.size(); ++i) {
      std::printf("%s{\"micro_batches\": %d, \"schedule\": \"%s\", \"step_s\": %.9g}", i ? ", " : "", sweep[i].m,
                  sweep[i].schedule, sweep[i].step_s);
    }
    std::printf("], \"fastest\": {\"micro_batches\": %d, \"schedule\": \"%s\", \"step_s\": %.9g}}\n", best.m,
                best.schedule, best.step_s);
    return 0;
  }
  std::printf("pipeline  S=%d R=%d M=%d %s | link %s, up %g / down %g Mbit/s (0: infinite), %g ms one way\n", S,
              work.replicas, M, schedule.c_str(), engine::comm::link_mode_name(links.mode), links.up_mbps,
              links.down_mbps, links.latency_ms);
  if (work.replicas > 1) {
    std::printf("replicas  R=%d, a sync every %d step(s) on each stage's %g Mbit/s link (0: infinite), %g ms\n",
                work.replicas, work.dp_every, links.dp_mbps, links.dp_latency_ms);
    std::printf("          a step %.4f s without a sync, %.4f s with one (stage syncs:", res.plain_step_s,
                res.sync_step_s);
    for (int s = 0; s < S; ++s) std::printf(" %.4f s", res.stages[s].dp_s);
    std::printf(")\n");
  }
  std::printf("step      %.4f s predicted%s", res.step_s, work.replicas > 1 ? " (mean over a sync interval)" : "");
  if (measured > 0) std::printf(" | %.4f s measured (median of the log's steps): %+.1f%%", measured,
                                100.0 * (res.step_s - measured) / measured);
  std::printf("\n\nstage   busy  waiting    idle\n");
  for (int s = 0; s < S; ++s) {
    const auto& u = res.stages[s];
    std::printf("%5d %s %s %s\n", s, pct(u.busy_s, res.step_s).c_str(), pct(u.waiting_s, res.step_s).c_str(),
                pct(u.idle_s, res.step_s).c_str());
  }
  std::printf("\nwire                      utilisation\n");
  for (const auto& w : res.wires) std::printf("%-25s %s\n", w.name.c_str(), pct(w.busy_s, res.step_s).c_str());
  std::printf("\nsweep (the same step's work in M micro-batches)\n    M      gpipe       1f1b\n");
  for (size_t i = 0; i + 1 < sweep.size(); i += 2) {
    std::printf("%5d %9.4f s %9.4f s\n", sweep[i].m, sweep[i].step_s, sweep[i + 1].step_s);
  }
  std::printf("fastest: M=%d %s, %.4f s/step\n", best.m, best.schedule, best.step_s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // InputError, and std::invalid_argument from the engine's parsers and simulate(): all bad input.
    std::fprintf(stderr, "error: %s\n", e.what());
    return 2;
  }
}
