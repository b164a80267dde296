// tools/tokenize_main.cc: `tokenize <files or dirs> --out DIR ...`: GPT-2-tokenize text into llm.c-format shards.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "data/error.h"
#include "data/gpt2_vocab.h"
#include "data/split_writer.h"
#include "data/tokenizer.h"

namespace {

constexpr size_t kBatchBytes = 64u << 20;  // read and tokenize this much text at a time (bounded memory)

struct Options {
  std::vector<std::string> inputs;
  std::string out_dir, vocab_dir, name = "tokens", separator;
  int64_t val_tokens = 0, shard_tokens = 100'000'000;  // llm.c's fineweb shard size
  int threads = 0;
};

void usage(FILE* out) {
  std::fprintf(out,
      "usage: tokenize <text files or dirs>... --out DIR [--val-tokens N] [--shard-tokens N] [--threads N]\n"
      "                [--vocab-dir DIR] [--name NAME] [--split SEP]\n"
      "  Each file is one document (or several: --split SEP cuts it at every SEP; \\n and \\t are understood).\n"
      "  Directories are walked recursively, files sorted by path. Every document is preceded by <|endoftext|>.\n"
      "  The first N tokens (--val-tokens, default 0) go to DIR/NAME_val_000000.bin..., the rest to\n"
      "  DIR/NAME_train_000000.bin..., at most --shard-tokens per shard (default 100000000). NAME defaults to tokens.\n"
      "  --vocab-dir holds encoder.json and vocab.bpe (default: $RESBM_DATA_MIRROR/gpt2; `prepare` also puts them\n"
      "  in OUT/gpt2). --threads defaults to the number of cores.\n");
}

std::string unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      const char c = s[++i];
      out.push_back(c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c);
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

int64_t parse_count(const std::string& flag, const char* text) {
  char* end = nullptr;
  const long long v = std::strtoll(text, &end, 10);
  if (!*text || *end || v < 0) DATA_FAIL(flag << " needs a non-negative integer, got '" << text << "'");
  return v;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "-h" || arg == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (arg == "--out" && has_value) { o.out_dir = argv[++i];
    } else if (arg == "--vocab-dir" && has_value) { o.vocab_dir = argv[++i];
    } else if (arg == "--name" && has_value) { o.name = argv[++i];
    } else if (arg == "--split" && has_value) { o.separator = unescape(argv[++i]);
    } else if (arg == "--val-tokens" && has_value) { o.val_tokens = parse_count(arg, argv[++i]);
    } else if (arg == "--shard-tokens" && has_value) { o.shard_tokens = parse_count(arg, argv[++i]);
    } else if (arg == "--threads" && has_value) { o.threads = static_cast<int>(parse_count(arg, argv[++i]));
    } else if (arg.rfind("--", 0) == 0) {
      DATA_FAIL("unknown flag or missing value: " << arg << " (see --help)");
    } else {
      o.inputs.push_back(arg);
    }
  }
  if (o.inputs.empty() || o.out_dir.empty()) DATA_FAIL("need input files or dirs and --out DIR (see --help)");
  if (o.vocab_dir.empty()) {
    const char* mirror = std::getenv("RESBM_DATA_MIRROR");
    if (!mirror) DATA_FAIL("pass --vocab-dir DIR (encoder.json + vocab.bpe) or set RESBM_DATA_MIRROR");
    o.vocab_dir = std::string(mirror) + "/gpt2";
  }
  if (o.threads <= 0) o.threads = std::max(1u, std::thread::hardware_concurrency());
  return o;
}

std::vector<std::string> list_files(const std::vector<std::string>& inputs) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      std::vector<std::string> found;
      for (const auto& entry : fs::recursive_directory_iterator(input, ec)) {
        if (entry.is_regular_file()) found.push_back(entry.path().string());
      }
      if (ec) DATA_FAIL("cannot walk directory " << input << ": " << ec.message());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(input, ec)) {
      files.push_back(input);
    } else {
      DATA_FAIL("input " << input << " is neither a file nor a directory; check the path");
    }
  }
  return files;
}

// Tokenizes docs[i] into ids[i] on `threads` workers, each with its own EncodeState.
void encode_parallel(const data::Tokenizer& tok, const std::vector<std::string>& docs,
                     std::vector<std::vector<int32_t>>* ids, int threads) {
  ids->assign(docs.size(), {});
  std::atomic<size_t> next{0};
  auto worker = [&]() {
    data::EncodeState state(tok);
    for (size_t i = next++; i < docs.size(); i = next++) tok.encode(docs[i], &state, &(*ids)[i]);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

int run(const Options& o) {
  const auto load_start = std::chrono::steady_clock::now();
  const data::Tokenizer tok = data::Tokenizer::from_dir(o.vocab_dir);
  const auto start = std::chrono::steady_clock::now();  // tokens/s counts tokenizing and writing, not vocab loading
  std::fprintf(stderr, "tokenize: vocab loaded from %s in %.2f s\n", o.vocab_dir.c_str(),
               std::chrono::duration<double>(start - load_start).count());
  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);
  if (ec) DATA_FAIL("cannot create --out " << o.out_dir << ": " << ec.message());
  data::SplitWriter writer(o.out_dir, o.name, o.val_tokens, o.shard_tokens);

  const std::vector<std::string> files = list_files(o.inputs);
  int64_t documents = 0, bytes = 0, tokens = 0;
  std::vector<std::string> docs;
  std::vector<std::vector<int32_t>> ids;
  size_t batch_bytes = 0;
  const int32_t eot = data::Tokenizer::kEndOfText;
  auto flush_batch = [&]() {
    encode_parallel(tok, docs, &ids, o.threads);
    for (const auto& doc_ids : ids) {
      writer.append(&eot, 1);
      writer.append(doc_ids.data(), doc_ids.size());
      tokens += 1 + static_cast<int64_t>(doc_ids.size());
    }
    documents += static_cast<int64_t>(docs.size());
    docs.clear();
    batch_bytes = 0;
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::fprintf(stderr, "\rtokenize: %lld documents, %.1f MB, %lld tokens, %.0f tokens/s", (long long)documents,
                 bytes / 1e6, (long long)tokens, tokens / std::max(secs, 1e-9));
  };
  for (const std::string& file : files) {
    std::string text = data::read_file_or_throw(file, "check the input path and permissions");
    bytes += static_cast<int64_t>(text.size());
    batch_bytes += text.size();
    if (o.separator.empty()) {
      docs.push_back(std::move(text));
    } else {
      size_t pos = 0;
      while (pos <= text.size()) {
        const size_t found = text.find(o.separator, pos);
        const size_t end = found == std::string::npos ? text.size() : found;
        if (end > pos) docs.push_back(text.substr(pos, end - pos));
        if (found == std::string::npos) break;
        pos = found + o.separator.size();
      }
    }
    if (batch_bytes >= kBatchBytes) flush_batch();
  }
  flush_batch();
  writer.finish();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "\n");
  for (const std::string& path : writer.written()) std::fprintf(stderr, "wrote %s\n", path.c_str());
  std::printf("documents %lld, bytes %lld, tokens %lld (val %lld, train %lld), %.2f s, %.0f tokens/s, %d threads\n",
              (long long)documents, (long long)bytes, (long long)tokens, (long long)writer.val_written(),
              (long long)writer.train_written(), secs, tokens / std::max(secs, 1e-9), o.threads);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Under `bazel run` the working directory is the runfiles tree; relative paths mean the user's directory.
  if (const char* wd = std::getenv("BUILD_WORKING_DIRECTORY")) {
    if (::chdir(wd) != 0) std::fprintf(stderr, "warning: cannot chdir to %s; relative paths may be wrong\n", wd);
  }
  try {
    return run(parse(argc, argv));
  } catch (const data::DataError& e) {
    std::fprintf(stderr, "tokenize: %s\n", e.what());
    return 1;
  }
}
