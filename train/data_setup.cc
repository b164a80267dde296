// train/data_setup.cc: default dataset preparation and tokenizer lookup.
#include "train/data_setup.h"

#include <unistd.h>

#include <cstdio>

#include "data/error.h"
#include "data/prepare.h"
#include "data/shards.h"

namespace train {

void setup_data(RunConfig* config, bool report) {
  const TrainFlags& f = config->flags;
  const std::string data_dir = resolve_path(f.data_dir);
  const std::string mirror = data::resolve_mirror(resolve_path(f.data_mirror));
  const bool bytes = f.tokenizer == "bytes";
  if (f.train_data.empty() && f.val_data.empty()) {
    data::PreparedSplit split;
    try {
      split = bytes ? data::ensure_tinyshakespeare_bytes(data_dir, mirror)
                    : data::ensure_tinyshakespeare(data_dir, mirror);
    } catch (const data::DataError& e) {
      // The data tools call their flag --mirror; this binary's is --data-mirror.
      throw data::DataError(std::string(e.what()) + " (with //train the flag is --data-mirror DIR)");
    }
    if (report) {
      std::printf("data: tinyshakespeare%s %s in %s (train %lld tokens, val %lld tokens)\n", bytes ? " (bytes)" : "",
                  split.reused ? "found" : "prepared", data_dir.c_str(), static_cast<long long>(split.train_tokens),
                  static_cast<long long>(split.val_tokens));
    }
    config->train_pattern = split.train_path;
    config->val_pattern = split.val_path;
    config->vocab_dir = split.vocab_dir;
    return;
  }
  if (f.train_data.empty() || f.val_data.empty()) {
    throw FlagError("give both --train-data and --val-data (or neither, for tinyshakespeare)");
  }
  data::glob_files(config->train_pattern);  // throws DataError naming the pattern when nothing matches
  data::glob_files(config->val_pattern);
  if (bytes) {  // bytes need no vocabulary files; the loader checks every id < 256
    config->vocab_dir.clear();
    return;
  }
  // The tokenizer only serves sampling: take it from --data-dir or the mirror when there, but never download it
  // for a run on custom shards (those train without it; samples then print token ids).
  const std::string vocab_dir = data_dir + "/gpt2";
  if (mirror.empty() && (::access((vocab_dir + "/encoder.json").c_str(), R_OK) != 0 ||
                         ::access((vocab_dir + "/vocab.bpe").c_str(), R_OK) != 0)) {
    if (report) {
      std::printf("data: no GPT-2 tokenizer files in %s and no mirror; samples print token ids\n", vocab_dir.c_str());
    }
    config->vocab_dir.clear();
    return;
  }
  try {
    data::fetch_verified(data::gpt2_encoder_json_file(), data_dir, mirror);
    data::fetch_verified(data::gpt2_vocab_bpe_file(), data_dir, mirror);
    config->vocab_dir = vocab_dir;
  } catch (const data::DataError& e) {
    if (report) std::printf("data: no GPT-2 tokenizer files (%s); samples print token ids\n", e.what());
    config->vocab_dir.clear();
  }
}

}  // namespace train
