// data/tokenizer.cc: GPT-2 byte-level BPE: PCRE2 pre-tokenisation (UTF, UCP, JIT, invalid UTF-8 tolerated) and merges.
#include "data/tokenizer.h"

#include <climits>

#include "data/error.h"
#include "data/gpt2_vocab.h"
#include "pcre2.h"

namespace data {
namespace {

// GPT-2's pre-tokenisation pattern, with \s spelled out as Unicode's White_Space property. The reference engines
// (Python `regex` in OpenAI's encoder.py, Rust `regex` in tiktoken) use White_Space; PCRE2's UCP \s additionally
// matches U+180E (MONGOLIAN VOWEL SEPARATOR, category Cf since Unicode 6.3), which would split text differently.
#define RESBM_WS "\\x{09}-\\x{0D}\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
constexpr char kPattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" RESBM_WS "\\p{L}\\p{N}]+|[" RESBM_WS "]+(?![^" RESBM_WS
    "])|[" RESBM_WS "]+";
#undef RESBM_WS

constexpr size_t kMaxCachedWordBytes = 128;   // longer pre-tokens rarely repeat; caching them only costs memory
constexpr size_t kMaxCacheEntries = 1 << 18;  // bounds memory on endless streams of new words (cleared when full)

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct Tokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

struct EncodeState::Pcre {
  pcre2_match_data* match = nullptr;
  pcre2_match_context* context = nullptr;
  pcre2_jit_stack* jit_stack = nullptr;
  ~Pcre() {
    pcre2_match_data_free(match);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
  }
};

EncodeState::EncodeState(const Tokenizer& tokenizer) : pcre_(std::make_unique<Pcre>()) {
  pcre_->match = pcre2_match_data_create_from_pattern(tokenizer.regex_->code, nullptr);
  pcre_->context = pcre2_match_context_create(nullptr);
  // The default 32 KiB JIT stack can run out on very long whitespace runs; 8 MiB is ample and only reserved.
  pcre_->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
  if (!pcre_->match || !pcre_->context || !pcre_->jit_stack) DATA_FAIL("out of memory creating PCRE2 match state");
  pcre2_jit_stack_assign(pcre_->context, nullptr, pcre_->jit_stack);
}

EncodeState::~EncodeState() = default;

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_dir(const std::string& vocab_dir) {
  return from_files(vocab_dir + "/encoder.json", vocab_dir + "/vocab.bpe");
}

Tokenizer Tokenizer::from_files(const std::string& encoder_json_path, const std::string& vocab_bpe_path) {
  Gpt2Vocab vocab = load_gpt2_vocab(encoder_json_path, vocab_bpe_path);
  Tokenizer tok;
  tok.token_bytes_ = std::move(vocab.token_bytes);

  std::unordered_map<std::string, int32_t> id_of;
  id_of.reserve(tok.token_bytes_.size());
  for (size_t id = 0; id < tok.token_bytes_.size(); ++id) id_of.emplace(tok.token_bytes_[id], static_cast<int32_t>(id));
  for (int b = 0; b < 256; ++b) {
    auto it = id_of.find(std::string(1, static_cast<char>(b)));
    if (it == id_of.end()) DATA_FAIL(encoder_json_path << ": no token for byte " << b << "; not a byte-level BPE vocab");
    tok.byte_id_[b] = it->second;
  }
  if (tok.vocab_size() <= kEndOfText || tok.token_bytes_[kEndOfText] != "<|endoftext|>") {
    DATA_FAIL(encoder_json_path << ": id " << kEndOfText << " must be <|endoftext|> (GPT-2's vocab has 50257 ids)");
  }
  tok.merges_.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const auto& [left, right] = vocab.merges[rank];
    auto l = id_of.find(left), r = id_of.find(right), m = id_of.find(left + right);
    if (l == id_of.end() || r == id_of.end() || m == id_of.end()) {
      DATA_FAIL(vocab_bpe_path << ": merge rank " << rank << " uses a token missing from " << encoder_json_path
                               << "; the two files must come from the same GPT-2 model");
    }
    // A later duplicate of a pair never wins (BPE ranks: the first occurrence is the lowest rank).
    tok.merges_.emplace(pair_key(l->second, r->second), Merge{static_cast<int32_t>(rank), m->second});
  }

  tok.regex_ = std::make_unique<Regex>();
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  tok.regex_->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error, &error_offset, nullptr);
  if (!tok.regex_->code) {
    DATA_FAIL("PCRE2 could not compile the GPT-2 pattern at offset " << error_offset << ": " << pcre2_message(error)
                                                                     << " (needs libpcre2 >= 10.34 built with Unicode)");
  }
  // JIT is an optimisation only: without it pcre2_match falls back to the interpreter with identical results.
  pcre2_jit_compile(tok.regex_->code, PCRE2_JIT_COMPLETE);
  return tok;
}

void Tokenizer::bpe(const unsigned char* bytes, size_t n, EncodeState* state, std::vector<int32_t>* out) const {
  if (n == 1) {
    out->push_back(byte_id_[bytes[0]]);
    return;
  }
  const bool cacheable = n <= kMaxCachedWordBytes;
  if (cacheable) {
    state->key_.assign(reinterpret_cast<const char*>(bytes), n);
    auto it = state->cache_.find(state->key_);
    if (it != state->cache_.end()) {
      out->insert(out->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t>& parts = state->parts_;
  std::vector<int32_t>& merged = state->merged_;
  parts.resize(n);
  for (size_t i = 0; i < n; ++i) parts[i] = byte_id_[bytes[i]];
  // As in OpenAI's encoder.py: find the adjacent pair of lowest rank, merge every occurrence of it left to right,
  // repeat until no adjacent pair is a known merge.
  while (parts.size() >= 2) {
    int32_t best_rank = INT32_MAX, best_id = -1, first = -1, second = -1;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      auto it = merges_.find(pair_key(parts[i], parts[i + 1]));
      if (it != merges_.end() && it->second.rank < best_rank) {
        best_rank = it->second.rank;
        best_id = it->second.id;
        first = parts[i];
        second = parts[i + 1];
      }
    }
    if (best_id < 0) break;
    merged.clear();
    for (size_t i = 0; i < parts.size();) {
      if (i + 1 < parts.size() && parts[i] == first && parts[i + 1] == second) {
        merged.push_back(best_id);
        i += 2;
      } else {
        merged.push_back(parts[i++]);
      }
    }
    parts.swap(merged);
  }
  out->insert(out->end(), parts.begin(), parts.end());
  if (cacheable) {
    if (state->cache_.size() >= kMaxCacheEntries) state->cache_.clear();
    state->cache_.emplace(state->key_, parts);
  }
}

void Tokenizer::encode(std::string_view text, EncodeState* state, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  const auto* subject = reinterpret_cast<const unsigned char*>(text.data());
  const size_t length = text.size();
  size_t pos = 0;
  while (pos < length) {
    const int rc = pcre2_match(regex_->code, subject, length, pos, 0, state->pcre_->match, state->pcre_->context);
    size_t match_start = length, match_end = length;
    if (rc >= 0) {
      const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(state->pcre_->match);
      match_start = ovector[0];
      match_end = ovector[1];
    } else if (rc != PCRE2_ERROR_NOMATCH) {
      DATA_FAIL("PCRE2 match failed at byte " << pos << " of a " << length << "-byte text: " << pcre2_message(rc)
                                              << "; split the input into smaller documents");
    }
    // Every valid character matches one alternative, so bytes the matcher skipped are invalid UTF-8: each becomes
    // its own pre-token (a single byte token), which keeps decode(encode(bytes)) == bytes.
    for (size_t i = pos; i < match_start; ++i) out->push_back(byte_id_[subject[i]]);
    if (match_start >= length) break;
    if (match_end <= match_start) {  // the pattern cannot match empty; guard against looping forever anyway
      out->push_back(byte_id_[subject[match_start]]);
      match_end = match_start + 1;
    } else {
      bpe(subject + match_start, match_end - match_start, state, out);
    }
    pos = match_end;
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text) const {
  EncodeState state(*this);
  std::vector<int32_t> ids;
  encode(text, &state, &ids);
  return ids;
}

std::string Tokenizer::decode(const int32_t* ids, size_t count) const {
  std::string text;
  for (size_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size()) {
      DATA_FAIL("cannot decode token id " << ids[i] << " at position " << i << ": the vocab has ids 0.."
                                          << vocab_size() - 1);
    }
    text += token_bytes_[ids[i]];
  }
  return text;
}

}  // namespace data
