// tools/plot.cc: draws the loss curves of several training runs into one PNG with gnuplot.
//
//   bazel run //tools:plot -- out/run1 out/run2 --out curves.png [--title TEXT] [--no-train] [--logy]
//
// Each argument is a run directory holding log.jsonl (train/run_log.h) or the .jsonl file itself. Train loss is a
// thin line per run, validation loss (the "eval" records) points joined by a thick line in the same colour. A
// resumed run repeats some steps in its log; the last record of a step wins, as that is what the run continued
// from. Relative paths are taken from the workspace when started by `bazel run` (BUILD_WORKSPACE_DIRECTORY).
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace {

struct Curve {
  std::string name;
  std::map<long long, double> train;  // step -> loss
  std::map<long long, double> val;    // step -> val_loss
};

// The value of "key": in a flat JSON line, as text (numbers only; enough for our own logs). Empty if absent.
std::string json_field(const std::string& line, const std::string& key) {
  const std::string pat = "\"" + key + "\": ";
  size_t pos = line.find(pat);
  if (pos == std::string::npos) return "";
  pos += pat.size();
  size_t end = pos;
  if (line[pos] == '"') {
    end = line.find('"', pos + 1);
    return end == std::string::npos ? "" : line.substr(pos + 1, end - pos - 1);
  }
  while (end < line.size() && line[end] != ',' && line[end] != '}') ++end;
  return line.substr(pos, end - pos);
}

std::string absolute(const std::string& path) {
  const char* ws = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  if (path.empty() || path[0] == '/' || ws == nullptr) return path;
  return std::string(ws) + "/" + path;
}

std::string basename_of(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Curve read_run(const std::string& arg) {
  std::string path = absolute(arg);
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) path += "/log.jsonl";
  std::ifstream in(path);
  if (!in) {
    std::cerr << "plot: cannot read " << path << ": give a run directory (with log.jsonl) or a .jsonl file\n";
    std::exit(1);
  }
  Curve c;
  c.name = basename_of(arg);
  if (c.name == "log.jsonl") c.name = basename_of(arg.substr(0, arg.size() - 10));
  std::string line;
  while (std::getline(in, line)) {
    const std::string type = json_field(line, "type");
    const std::string step = json_field(line, "step");
    if (type == "step" && !step.empty()) {
      const std::string loss = json_field(line, "loss");
      if (!loss.empty() && loss != "null") c.train[std::atoll(step.c_str())] = std::atof(loss.c_str());
    } else if (type == "eval" && !step.empty()) {
      const std::string loss = json_field(line, "val_loss");
      if (!loss.empty() && loss != "null") c.val[std::atoll(step.c_str())] = std::atof(loss.c_str());
    }
  }
  if (c.train.empty() && c.val.empty()) {
    std::cerr << "plot: " << path << " has no step or eval records\n";
    std::exit(1);
  }
  return c;
}

std::string quote(const std::string& s) {  // gnuplot string literal
  std::string out = "\"";
  for (char ch : s) out += (ch == '"' || ch == '\\') ? std::string("\\") + ch : std::string(1, ch);
  return out + "\"";
}

void usage() {
  std::cerr << "usage: plot RUN_DIR... --out curves.png [--title TEXT] [--no-train] [--logy]\n"
               "  RUN_DIR: a training output directory holding log.jsonl, or a .jsonl file\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> runs;
  std::string out = "curves.png", title = "loss vs step";
  bool draw_train = true, logy = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) out = argv[++i];
    else if (a == "--title" && i + 1 < argc) title = argv[++i];
    else if (a == "--no-train") draw_train = false;
    else if (a == "--logy") logy = true;
    else if (a == "--help" || a == "-h") { usage(); return 0; }
    else if (a.rfind("--", 0) == 0) { std::cerr << "plot: unknown flag " << a << "\n"; usage(); return 2; }
    else runs.push_back(a);
  }
  if (runs.empty()) { usage(); return 2; }
  out = absolute(out);

  char tmpl[] = "/tmp/resbm_plot_XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) { std::perror("plot: mkdtemp"); return 1; }
  const std::string tmp = tmpl;
  std::ostringstream script;
  script << "set terminal pngcairo size 1100,700 enhanced font 'Sans,11'\n"
         << "set output " << quote(out) << "\n"
         << "set title " << quote(title) << " noenhanced\n"
         << "set xlabel 'optimizer step'\nset ylabel 'cross-entropy loss (nats/token)'\n"
         << "set grid\nset key top right noenhanced\n" << (logy ? "set logscale y\n" : "");
  std::vector<std::string> plots;
  for (size_t r = 0; r < runs.size(); ++r) {
    const Curve c = read_run(runs[r]);
    const int color = static_cast<int>(r) + 1;
    if (draw_train && !c.train.empty()) {
      const std::string file = tmp + "/train_" + std::to_string(r) + ".dat";
      std::ofstream f(file);
      for (const auto& kv : c.train) f << kv.first << " " << kv.second << "\n";
      plots.push_back(quote(file) + " using 1:2 with lines lw 1 lc " + std::to_string(color) + " title " +
                      quote(c.name + " train"));
    }
    if (!c.val.empty()) {
      const std::string file = tmp + "/val_" + std::to_string(r) + ".dat";
      std::ofstream f(file);
      for (const auto& kv : c.val) f << kv.first << " " << kv.second << "\n";
      plots.push_back(quote(file) + " using 1:2 with linespoints lw 3 pt 7 lc " + std::to_string(color) +
                      " title " + quote(c.name + " val"));
    }
  }
  script << "plot ";
  for (size_t i = 0; i < plots.size(); ++i) script << (i ? ", \\\n     " : "") << plots[i];
  script << "\n";
  const std::string script_path = tmp + "/plot.gp";
  { std::ofstream(script_path) << script.str(); }
  const std::string cmd = "gnuplot " + script_path;
  const int rc = std::system(cmd.c_str());
  std::system(("rm -rf " + tmp).c_str());
  if (rc != 0) {
    std::cerr << "plot: gnuplot failed (rc " << rc << "); install gnuplot-nox (tools/bazel does)\n";
    return 1;
  }
  std::cout << "plot: wrote " << out << " (" << runs.size() << " run" << (runs.size() > 1 ? "s" : "") << ")\n";
  return 0;
}
