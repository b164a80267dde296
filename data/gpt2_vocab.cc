// data/gpt2_vocab.cc: parsers for encoder.json (a tiny flat-object JSON reader) and vocab.bpe.
#include "data/gpt2_vocab.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "data/error.h"

namespace data {
namespace {

void append_utf8(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes one UTF-8 code point at s[*pos]; returns false on malformed input (vocab files are always valid UTF-8).
bool next_code_point(const std::string& s, size_t* pos, char32_t* cp) {
  const unsigned char c = static_cast<unsigned char>(s[*pos]);
  int extra = c < 0x80 ? 0 : (c >> 5) == 0x6 ? 1 : (c >> 4) == 0xE ? 2 : (c >> 3) == 0x1E ? 3 : -1;
  if (extra < 0 || *pos + extra >= s.size()) return false;
  char32_t v = extra == 0 ? c : (c & (0x3F >> extra));
  for (int k = 1; k <= extra; ++k) {
    const unsigned char d = static_cast<unsigned char>(s[*pos + k]);
    if ((d & 0xC0) != 0x80) return false;
    v = (v << 6) | (d & 0x3F);
  }
  *pos += extra + 1;
  *cp = v;
  return true;
}

// Maps a GPT-2 printable-unicode token back to its raw bytes.
std::string unicode_token_to_bytes(const std::string& token, const std::unordered_map<char32_t, int>& to_byte,
                                   const std::string& what) {
  std::string bytes;
  size_t pos = 0;
  while (pos < token.size()) {
    char32_t cp = 0;
    if (!next_code_point(token, &pos, &cp)) DATA_FAIL(what << ": malformed UTF-8 in token; is this a GPT-2 vocab file?");
    auto it = to_byte.find(cp);
    if (it == to_byte.end()) {
      DATA_FAIL(what << ": code point U+" << std::hex << static_cast<uint32_t>(cp)
                     << " is not in GPT-2's byte-to-unicode table; is this a GPT-2 vocab file?");
    }
    bytes.push_back(static_cast<char>(it->second));
  }
  return bytes;
}

// A cursor over the JSON text with error reporting by byte offset.
struct JsonCursor {
  const std::string& text;
  const std::string& what;
  size_t pos = 0;

  [[noreturn]] void fail(const char* expected) const {
    DATA_FAIL(what << ": malformed JSON at byte " << pos << " (expected " << expected
                   << "); re-download encoder.json (GPT-2 124M) or point --vocab-dir at the right folder");
  }
  void skip_space() {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\n' || text[pos] == '\r' || text[pos] == '\t')) ++pos;
  }
  void expect(char c) {
    skip_space();
    if (pos >= text.size() || text[pos] != c) fail(std::string(1, c).c_str());
    ++pos;
  }
  uint32_t hex4() {
    if (pos + 4 > text.size()) fail("4 hex digits");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = text[pos++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= h - '0';
      else if (h >= 'a' && h <= 'f') v |= h - 'a' + 10;
      else if (h >= 'A' && h <= 'F') v |= h - 'A' + 10;
      else fail("hex digit");
    }
    return v;
  }
  std::string string_value() {
    expect('"');
    std::string out;
    while (true) {
      if (pos >= text.size()) fail("closing quote");
      const char c = text[pos++];
      if (c == '"') return out;
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (pos >= text.size()) fail("escape character");
      const char e = text[pos++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          char32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair encodes one code point above U+FFFF
            if (pos + 2 > text.size() || text[pos] != '\\' || text[pos + 1] != 'u') fail("low surrogate");
            pos += 2;
            const char32_t lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          append_utf8(cp, &out);
          break;
        }
        default: fail("a valid escape");
      }
    }
  }
  int64_t integer_value() {
    skip_space();
    const size_t start = pos;
    if (pos < text.size() && text[pos] == '-') ++pos;
    int64_t v = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      v = v * 10 + (text[pos++] - '0');
      if (v > (int64_t{1} << 40)) fail("a small integer");
    }
    if (pos == start || (pos == start + 1 && text[start] == '-')) fail("an integer");
    return text[start] == '-' ? -v : v;
  }
};

}  // namespace

std::array<char32_t, 256> gpt2_byte_to_unicode() {
  std::array<char32_t, 256> table{};
  char32_t next_unprintable = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    table[b] = printable ? static_cast<char32_t>(b) : next_unprintable++;
  }
  return table;
}

std::string read_file_or_throw(const std::string& path, const std::string& hint) {
  std::ifstream in(path, std::ios::binary);
  if (!in) DATA_FAIL("cannot open " << path << ": " << std::strerror(errno) << "; " << hint);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) DATA_FAIL("error reading " << path << "; " << hint);
  return buffer.str();
}

std::vector<std::pair<std::string, int64_t>> parse_flat_json_object(const std::string& text, const std::string& what) {
  JsonCursor cur{text, what};
  std::vector<std::pair<std::string, int64_t>> entries;
  cur.expect('{');
  cur.skip_space();
  if (cur.pos < text.size() && text[cur.pos] == '}') {
    ++cur.pos;
  } else {
    while (true) {
      std::string key = cur.string_value();
      cur.expect(':');
      const int64_t value = cur.integer_value();
      entries.emplace_back(std::move(key), value);
      cur.skip_space();
      if (cur.pos < text.size() && text[cur.pos] == ',') {
        ++cur.pos;
        continue;
      }
      cur.expect('}');
      break;
    }
  }
  cur.skip_space();
  if (cur.pos != text.size()) cur.fail("end of input after the object");
  return entries;
}

Gpt2Vocab load_gpt2_vocab(const std::string& encoder_json_path, const std::string& vocab_bpe_path) {
  const std::string hint = "get GPT-2's encoder.json and vocab.bpe with `prepare tinyshakespeare` or pass --vocab-dir";
  const auto table = gpt2_byte_to_unicode();
  std::unordered_map<char32_t, int> to_byte;
  for (int b = 0; b < 256; ++b) to_byte[table[b]] = b;

  Gpt2Vocab vocab;
  const auto entries = parse_flat_json_object(read_file_or_throw(encoder_json_path, hint), encoder_json_path);
  if (entries.empty()) DATA_FAIL(encoder_json_path << ": empty vocabulary; " << hint);
  vocab.token_bytes.resize(entries.size());
  std::vector<bool> seen(entries.size(), false);
  for (const auto& [key, id] : entries) {
    if (id < 0 || id >= static_cast<int64_t>(entries.size()) || seen[id]) {
      DATA_FAIL(encoder_json_path << ": token id " << id << " is out of range or repeated (ids must be 0.."
                                  << entries.size() - 1 << ", each once); " << hint);
    }
    seen[id] = true;
    vocab.token_bytes[id] = unicode_token_to_bytes(key, to_byte, encoder_json_path);
  }

  // vocab.bpe: a "#version" line, then one merge "left right" per line; a trailing empty line is allowed.
  const std::string bpe = read_file_or_throw(vocab_bpe_path, hint);
  size_t line_start = 0;
  int line_no = 0;
  while (line_start < bpe.size()) {
    size_t line_end = bpe.find('\n', line_start);
    if (line_end == std::string::npos) line_end = bpe.size();
    const std::string line = bpe.substr(line_start, line_end - line_start);
    line_start = line_end + 1;
    ++line_no;
    if (line_no == 1 && line.rfind("#version", 0) == 0) continue;
    if (line.empty()) continue;
    const size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 >= line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      DATA_FAIL(vocab_bpe_path << ":" << line_no << ": expected two tokens separated by one space; " << hint);
    }
    const std::string where = vocab_bpe_path + ":" + std::to_string(line_no);
    vocab.merges.emplace_back(unicode_token_to_bytes(line.substr(0, space), to_byte, where),
                              unicode_token_to_bytes(line.substr(space + 1), to_byte, where));
  }
  if (vocab.merges.empty()) DATA_FAIL(vocab_bpe_path << ": no merges found; " << hint);
  return vocab;
}

}  // namespace data
