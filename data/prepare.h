// data/prepare.h: fetching (URL or mirror, SHA-256 checked) and tokenizing named datasets; tinyshakespeare first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace data {

// A file of a dataset: where it lives under a mirror or output directory, where it comes from, its digest.
struct RemoteFile {
  std::string relative_path;  // e.g. "gpt2/encoder.json"; the same under --mirror and under --out
  std::string url;
  std::string sha256;
};

// The canonical files (digests of the canonical downloads, as in ../shared/data/SHA256SUMS).
const RemoteFile& tinyshakespeare_text_file();
const RemoteFile& gpt2_encoder_json_file();
const RemoteFile& gpt2_vocab_bpe_file();

// The mirror to use: `mirror` when not empty, else $RESBM_DATA_MIRROR, else "" (download from the URL).
std::string resolve_mirror(const std::string& mirror);

// Makes out_dir/<relative_path> hold the verified file: kept if already there with the right digest, else copied
// from the mirror, else downloaded with curl. Throws DataError (offline: says to use --mirror or RESBM_DATA_MIRROR).
std::string fetch_verified(const RemoteFile& file, const std::string& out_dir, const std::string& mirror);

// llm.c's tinyshakespeare layout: the text split after each "\n\n"; each section preceded by <|endoftext|>.
std::vector<int32_t> tinyshakespeare_tokens(const Tokenizer& tokenizer, const std::string& text);

struct PreparedSplit {
  std::string train_path, val_path, vocab_dir;
  int64_t train_tokens = 0, val_tokens = 0;
  bool reused = false;  // true when valid shards were already there
};

constexpr int64_t kTinyShakespeareValTokens = 32768;     // llm.c: the first 32,768 tokens are validation
constexpr int64_t kTinyShakespeareTrainTokens = 305260;  // what llm.c's script reports for GPT-2

// Writes out_dir/tiny_shakespeare_{val,train}.bin (and keeps the sources under out_dir/tinyshakespeare and
// out_dir/gpt2) unless valid shards of the expected sizes already exist. `mirror` as in resolve_mirror().
PreparedSplit ensure_tinyshakespeare(const std::string& out_dir, const std::string& mirror);

// Byte-level tinyshakespeare for CPU-sized models: every byte of input.txt is one token (vocabulary 256, no
// <|endoftext|>), in the same llm.c shard format. With a 256-row head, a small model spends its compute in the
// blocks, where the bottleneck sits, instead of in a 50,257-row head. The first kTinyShakespeareBytesVal bytes are
// validation (128 KiB: at least 64k held-out tokens, as the ResBM experiment needs), the rest training;
// val followed by train is input.txt exactly.
constexpr int32_t kByteVocabSize = 256;
constexpr int64_t kTinyShakespeareBytesVal = 131072;
constexpr int64_t kTinyShakespeareBytes = 1115394;  // the size of input.txt (its SHA-256 is checked)

// Writes out_dir/tiny_shakespeare_bytes_{val,train}.bin (keeping input.txt under out_dir/tinyshakespeare) unless
// valid shards of the expected sizes already exist. vocab_dir is left empty: bytes need no vocabulary files.
PreparedSplit ensure_tinyshakespeare_bytes(const std::string& out_dir, const std::string& mirror);

}  // namespace data
