// data/tokenizer.h: GPT-2 byte-level BPE (pre-tokenisation regex via PCRE2, merges by rank), encode and decode.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace data {

class Tokenizer;

// Per-thread mutable state for encoding: PCRE2 match data and JIT stack, the word -> ids cache, scratch buffers.
// The Tokenizer itself is immutable and shared by threads; each thread owns one EncodeState.
class EncodeState {
 public:
  explicit EncodeState(const Tokenizer& tokenizer);
  ~EncodeState();
  EncodeState(const EncodeState&) = delete;
  EncodeState& operator=(const EncodeState&) = delete;

  size_t cache_size() const { return cache_.size(); }

 private:
  friend class Tokenizer;
  struct Pcre;                               // PCRE2 match data, match context, JIT stack
  std::unique_ptr<Pcre> pcre_;
  std::unordered_map<std::string, std::vector<int32_t>> cache_;  // pre-token bytes -> ids
  std::string key_;                          // reused lookup key (no allocation once grown)
  std::vector<int32_t> parts_, merged_;      // BPE scratch
};

class Tokenizer {
 public:
  static constexpr int32_t kEndOfText = 50256;  // <|endoftext|>; never produced by encode(), tools insert it

  // Loads encoder.json and vocab.bpe; throws DataError naming the file when missing or malformed.
  static Tokenizer from_files(const std::string& encoder_json_path, const std::string& vocab_bpe_path);
  static Tokenizer from_dir(const std::string& vocab_dir);  // vocab_dir/encoder.json, vocab_dir/vocab.bpe

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Appends the ids of `text` (arbitrary bytes; invalid UTF-8 is encoded byte by byte) to *out.
  void encode(std::string_view text, EncodeState* state, std::vector<int32_t>* out) const;
  std::vector<int32_t> encode(std::string_view text) const;  // convenience: a fresh EncodeState

  // Concatenated bytes of the ids; throws DataError on an id outside [0, vocab_size()).
  std::string decode(const int32_t* ids, size_t count) const;
  std::string decode(const std::vector<int32_t>& ids) const { return decode(ids.data(), ids.size()); }

  int vocab_size() const { return static_cast<int>(token_bytes_.size()); }
  const std::string& token_bytes(int32_t id) const { return token_bytes_.at(id); }

 private:
  friend class EncodeState;
  struct Regex;  // the compiled PCRE2 pattern (read-only after construction, safe to share)
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  Tokenizer() = default;
  void bpe(const unsigned char* bytes, size_t n, EncodeState* state, std::vector<int32_t>* out) const;
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }

  std::unique_ptr<Regex> regex_;
  std::vector<std::string> token_bytes_;          // id -> raw bytes
  int32_t byte_id_[256] = {};                     // single byte -> id
  std::unordered_map<uint64_t, Merge> merges_;    // (left id, right id) -> rank and merged id
};

}  // namespace data
