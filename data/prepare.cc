// data/prepare.cc: dataset fetch (mirror copy or curl download, SHA-256 verified) and the tinyshakespeare layout.
#include "data/prepare.h"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/error.h"
#include "data/gpt2_vocab.h"
#include "data/sha256.h"
#include "data/shards.h"

extern char** environ;

namespace data {
namespace {

const char kMirrorHint[] =
    "pass --mirror DIR or set RESBM_DATA_MIRROR to a directory laid out like ../shared/data "
    "(tinyshakespeare/input.txt, gpt2/encoder.json, gpt2/vocab.bpe)";

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void make_dirs(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) DATA_FAIL("cannot create directory " << dir << ": " << ec.message() << "; choose another --out");
}

std::string dir_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// Writes bytes to path through a temp file and rename, so that a crash never leaves a half-written file.
void write_file_atomic(const std::string& path, const std::string& bytes) {
  make_dirs(dir_of(path));
  // A per-process name: several ranks may prepare the same directory at once; the last rename wins, all identical.
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) DATA_FAIL("cannot write " << temp << "; check free space and permissions of " << dir_of(path));
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) DATA_FAIL("cannot rename " << temp << ": " << std::strerror(errno));
}

void check_digest(const std::string& bytes, const RemoteFile& file, const std::string& source) {
  const std::string got = sha256_hex(bytes);
  if (got != file.sha256) {
    DATA_FAIL(source << " has SHA-256 " << got << " but the canonical " << file.relative_path << " has " << file.sha256
                     << "; the file is corrupt or a different version: delete it and fetch it again");
  }
}

// Runs curl without a shell; returns its exit status (127 when curl cannot be started).
int run_curl(const std::string& url, const std::string& dest) {
  std::vector<std::string> args = {"curl", "-fsSL", "--retry", "2", "--connect-timeout", "10", "--max-time", "120",
                                   "-o", dest, url};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (::posix_spawnp(&pid, "curl", nullptr, nullptr, argv.data(), environ) != 0) return 127;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 127;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

const RemoteFile& tinyshakespeare_text_file() {
  static const RemoteFile file{"tinyshakespeare/input.txt",
                               "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                               "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"};
  return file;
}

const RemoteFile& gpt2_encoder_json_file() {
  static const RemoteFile file{"gpt2/encoder.json",
                               "https://openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json",
                               "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"};
  return file;
}

const RemoteFile& gpt2_vocab_bpe_file() {
  static const RemoteFile file{"gpt2/vocab.bpe", "https://openaipublic.blob.core.windows.net/gpt-2/models/124M/vocab.bpe",
                               "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"};
  return file;
}

std::string resolve_mirror(const std::string& mirror) {
  if (!mirror.empty()) return mirror;
  const char* env = std::getenv("RESBM_DATA_MIRROR");
  return env ? std::string(env) : std::string();
}

std::string fetch_verified(const RemoteFile& file, const std::string& out_dir, const std::string& mirror) {
  const std::string dest = out_dir + "/" + file.relative_path;
  if (file_exists(dest) && sha256_hex(read_file_or_throw(dest, "")) == file.sha256) return dest;

  if (!mirror.empty()) {
    const std::string source = mirror + "/" + file.relative_path;
    const std::string bytes = read_file_or_throw(source, std::string("the mirror lacks it; ") + kMirrorHint);
    check_digest(bytes, file, source);
    write_file_atomic(dest, bytes);
    return dest;
  }

  make_dirs(dir_of(dest));
  const std::string temp = dest + ".download." + std::to_string(::getpid());
  const int rc = run_curl(file.url, temp);
  if (rc != 0) {
    ::unlink(temp.c_str());
    DATA_FAIL("cannot download " << file.url << " (curl exit status " << rc
                                 << (rc == 127 ? ", curl not found" : ", offline?") << "); " << kMirrorHint);
  }
  const std::string bytes = read_file_or_throw(temp, "the download vanished");
  ::unlink(temp.c_str());
  check_digest(bytes, file, file.url);
  write_file_atomic(dest, bytes);
  return dest;
}

std::vector<int32_t> tinyshakespeare_tokens(const Tokenizer& tokenizer, const std::string& text) {
  // llm.c: text = "<|endoftext|>" + text.replace("\n\n", "\n\n<|endoftext|>"), encoded with the special token
  // allowed, i.e. each section (ending in "\n\n", except the last) is encoded on its own after an <|endoftext|>.
  EncodeState state(tokenizer);
  std::vector<int32_t> tokens;
  size_t pos = 0;
  while (true) {
    const size_t found = text.find("\n\n", pos);
    const size_t end = found == std::string::npos ? text.size() : found + 2;
    tokens.push_back(Tokenizer::kEndOfText);
    tokenizer.encode(std::string_view(text).substr(pos, end - pos), &state, &tokens);
    if (found == std::string::npos) break;
    pos = end;
  }
  return tokens;
}

PreparedSplit ensure_tinyshakespeare(const std::string& out_dir, const std::string& mirror) {
  PreparedSplit split;
  split.val_path = out_dir + "/tiny_shakespeare_val.bin";
  split.train_path = out_dir + "/tiny_shakespeare_train.bin";
  split.vocab_dir = out_dir + "/gpt2";
  const std::string source = resolve_mirror(mirror);

  if (file_exists(split.val_path) && file_exists(split.train_path) &&
      file_exists(split.vocab_dir + "/encoder.json") && file_exists(split.vocab_dir + "/vocab.bpe")) {
    try {
      const auto val = read_shard(split.val_path);
      const auto train = read_shard(split.train_path);
      if (static_cast<int64_t>(val.size()) == kTinyShakespeareValTokens &&
          static_cast<int64_t>(train.size()) == kTinyShakespeareTrainTokens) {
        split.val_tokens = kTinyShakespeareValTokens;
        split.train_tokens = kTinyShakespeareTrainTokens;
        split.reused = true;
        return split;
      }
    } catch (const DataError&) {
      // Invalid leftovers are simply rebuilt below.
    }
  }

  const std::string text_path = fetch_verified(tinyshakespeare_text_file(), out_dir, source);
  const std::string encoder_path = fetch_verified(gpt2_encoder_json_file(), out_dir, source);
  const std::string bpe_path = fetch_verified(gpt2_vocab_bpe_file(), out_dir, source);
  const Tokenizer tokenizer = Tokenizer::from_files(encoder_path, bpe_path);
  const std::vector<int32_t> tokens = tinyshakespeare_tokens(tokenizer, read_file_or_throw(text_path, ""));
  if (static_cast<int64_t>(tokens.size()) <= kTinyShakespeareValTokens) {
    DATA_FAIL(text_path << " gave only " << tokens.size() << " tokens; expected more than " << kTinyShakespeareValTokens);
  }
  const std::vector<int32_t> val(tokens.begin(), tokens.begin() + kTinyShakespeareValTokens);
  const std::vector<int32_t> train(tokens.begin() + kTinyShakespeareValTokens, tokens.end());
  write_shard(split.val_path, val);
  write_shard(split.train_path, train);
  split.val_tokens = static_cast<int64_t>(val.size());
  split.train_tokens = static_cast<int64_t>(train.size());
  return split;
}

PreparedSplit ensure_tinyshakespeare_bytes(const std::string& out_dir, const std::string& mirror) {
  PreparedSplit split;
  split.val_path = out_dir + "/tiny_shakespeare_bytes_val.bin";
  split.train_path = out_dir + "/tiny_shakespeare_bytes_train.bin";
  const int64_t train_bytes = kTinyShakespeareBytes - kTinyShakespeareBytesVal;
  if (file_exists(split.val_path) && file_exists(split.train_path)) {
    try {
      if (static_cast<int64_t>(read_shard(split.val_path, kByteVocabSize).size()) == kTinyShakespeareBytesVal &&
          static_cast<int64_t>(read_shard(split.train_path, kByteVocabSize).size()) == train_bytes) {
        split.val_tokens = kTinyShakespeareBytesVal;
        split.train_tokens = train_bytes;
        split.reused = true;
        return split;
      }
    } catch (const DataError&) {
      // Invalid leftovers are simply rebuilt below.
    }
  }
  const std::string text_path = fetch_verified(tinyshakespeare_text_file(), out_dir, resolve_mirror(mirror));
  const std::string text = read_file_or_throw(text_path, "");
  if (static_cast<int64_t>(text.size()) != kTinyShakespeareBytes) {
    DATA_FAIL(text_path << " has " << text.size() << " bytes; expected " << kTinyShakespeareBytes);
  }
  std::vector<uint16_t> ids(text.size());
  for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);  // byte -> id 0..255
  write_shard(split.val_path, ids.data(), static_cast<size_t>(kTinyShakespeareBytesVal));
  write_shard(split.train_path, ids.data() + kTinyShakespeareBytesVal, static_cast<size_t>(train_bytes));
  split.val_tokens = kTinyShakespeareBytesVal;
  split.train_tokens = train_bytes;
  return split;
}

}  // namespace data
