// tools/prepare_main.cc: `prepare tinyshakespeare|tinyshakespeare-bytes --out DIR [--mirror DIR]`: fetch, verify,
// tokenize a dataset.
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
               "usage: prepare tinyshakespeare|tinyshakespeare-bytes --out DIR [--mirror DIR]\n"
               "  Fetches the dataset and GPT-2's vocab from their canonical URLs (curl), or copies them from a mirror\n"
               "  directory laid out like ../shared/data (--mirror DIR, or the env var RESBM_DATA_MIRROR), checks\n"
               "  their SHA-256, and writes llm.c-compatible shards. Existing valid shards are kept.\n"
               "    tinyshakespeare        GPT-2 BPE tokens, DIR/tiny_shakespeare_{val,train}.bin (first 32,768\n"
               "                           tokens = val), as llm.c's script writes them\n"
               "    tinyshakespeare-bytes  one token per byte (vocabulary 256), DIR/tiny_shakespeare_bytes_{val,train}.bin\n"
               "                           (first 131,072 bytes = val); for small models: train with --tokenizer bytes\n");
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
  if (dataset != "tinyshakespeare" && dataset != "tinyshakespeare-bytes") {
    std::fprintf(stderr,
                 "prepare: unknown dataset '%s'; known: tinyshakespeare, tinyshakespeare-bytes (for your own text "
                 "use tokenize)\n",
                 dataset.c_str());
    return 2;
  }
  try {
    const bool bytes = dataset == "tinyshakespeare-bytes";
    const data::PreparedSplit split =
        bytes ? data::ensure_tinyshakespeare_bytes(out_dir, mirror) : data::ensure_tinyshakespeare(out_dir, mirror);
    std::fprintf(stderr, "%s %lld tokens to %s\n%s %lld tokens to %s\n", split.reused ? "kept" : "wrote",
                 static_cast<long long>(split.val_tokens), split.val_path.c_str(), split.reused ? "kept" : "wrote",
                 static_cast<long long>(split.train_tokens), split.train_path.c_str());
    if (bytes) {
      std::fprintf(stderr, "byte-level: vocabulary 256, one token per byte of input.txt\n");
    } else {
      std::fprintf(stderr, "vocab in %s\n", split.vocab_dir.c_str());
    }
  } catch (const data::DataError& e) {
    std::fprintf(stderr, "prepare: %s\n", e.what());
    return 1;
  }
  return 0;
}
