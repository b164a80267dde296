// tools/prepare_main.cc: `prepare tinyshakespeare --out DIR [--mirror DIR]`: fetch, verify, tokenize a dataset.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "data/error.h"
#include "data/prepare.h"

namespace {

void usage(FILE* out) {
  std::fprintf(out,
               "usage: prepare tinyshakespeare --out DIR [--mirror DIR]\n"
               "  Fetches the dataset and GPT-2's vocab from their canonical URLs (curl), or copies them from a mirror\n"
               "  directory laid out like ../shared/data (--mirror DIR, or the env var RESBM_DATA_MIRROR), checks\n"
               "  their SHA-256, and writes llm.c-compatible shards DIR/tiny_shakespeare_{val,train}.bin\n"
               "  (first 32,768 tokens = val). Existing valid shards are kept.\n");
}

}  // namespace

int main(int argc, char** argv) {
  // Under `bazel run` the working directory is the runfiles tree; relative paths mean the user's directory.
  if (const char* wd = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (::chdir(wd) != 0) std::fprintf(stderr, "warning: cannot chdir to %s; relative paths may be wrong\n", wd);
  }
  std::string dataset, out_dir, mirror;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      return 0;
    } else if ((arg == "--out" || arg == "--mirror") && i + 1 < argc) {
      (arg == "--out" ? out_dir : mirror) = argv[++i];
    } else if (arg.rfind("--", 0) == 0) {
      std::fprintf(stderr, "prepare: unknown flag or missing value: %s\n", arg.c_str());
      usage(stderr);
      return 2;
    } else if (dataset.empty()) {
      dataset = arg;
    } else {
      std::fprintf(stderr, "prepare: one dataset at a time (got %s and %s)\n", dataset.c_str(), arg.c_str());
      return 2;
    }
  }
  if (dataset.empty() || out_dir.empty()) {
    usage(stderr);
    return 2;
  }
  if (dataset != "tinyshakespeare") {
    std::fprintf(stderr, "prepare: unknown dataset '%s'; known: tinyshakespeare (for your own text use tokenize)\n",
                 dataset.c_str());
    return 2;
  }
  try {
    const data::PreparedSplit split = data::ensure_tinyshakespeare(out_dir, mirror);
    std::fprintf(stderr, "%s %lld tokens to %s\n%s %lld tokens to %s\nvocab in %s\n",
                 split.reused ? "kept" : "wrote", static_cast<long long>(split.val_tokens), split.val_path.c_str(),
                 split.reused ? "kept" : "wrote", static_cast<long long>(split.train_tokens), split.train_path.c_str(),
                 split.vocab_dir.c_str());
  } catch (const data::DataError& e) {
    std::fprintf(stderr, "prepare: %s\n", e.what());
    return 1;
  }
  return 0;
}
