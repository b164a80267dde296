// data/gpt2_vocab.h: loading GPT-2's encoder.json (token -> id) and vocab.bpe (merges), mapped back to raw bytes.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace data {

// GPT-2 stores byte strings as printable unicode: byte b becomes code point table[b] (printable Latin-1 bytes map to
// themselves, the others to 256 + n). This is that table.
std::array<char32_t, 256> gpt2_byte_to_unicode();

// The vocabulary with the byte-to-unicode mapping undone, so that BPE and decoding work on raw bytes.
struct Gpt2Vocab {
  std::vector<std::string> token_bytes;                      // id -> raw bytes; every id in [0, size) is present
  std::vector<std::pair<std::string, std::string>> merges;   // in rank order (rank 0 first), raw bytes
};

// Parses encoder.json (a flat JSON object of string -> int, with \uXXXX escapes) into (utf8 key, id) pairs.
// `what` names the source in error messages.
std::vector<std::pair<std::string, int64_t>> parse_flat_json_object(const std::string& text, const std::string& what);

// Reads both files; throws DataError naming the file (missing, unreadable, malformed, ids not dense).
Gpt2Vocab load_gpt2_vocab(const std::string& encoder_json_path, const std::string& vocab_bpe_path);

// Reads a whole file into a string; throws DataError naming the file and `hint` when it cannot.
std::string read_file_or_throw(const std::string& path, const std::string& hint);

}  // namespace data
