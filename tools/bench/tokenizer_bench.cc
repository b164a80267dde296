// tools/bench/tokenizer_bench.cc: GPT-2 tokenizer throughput on tinyshakespeare, 1 and 2 threads (prints a table).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "data/error.h"
#include "data/gpt2_vocab.h"
#include "data/tokenizer.h"

namespace {

struct Result {
  double wall_s = 0, cpu_s = 0;
  int64_t tokens = 0;
};

// Encodes the documents on `threads` workers, each with its own EncodeState from *states (created when missing:
// a cold word cache, as in one run of tools/tokenize; reused: a warm cache, the steady state on a large corpus).
Result run(const data::Tokenizer& tok, const std::vector<std::string>& docs, int threads,
           std::vector<std::unique_ptr<data::EncodeState>>* states) {
  while (static_cast<int>(states->size()) < threads) states->push_back(std::make_unique<data::EncodeState>(tok));
  std::atomic<size_t> next{0};
  std::vector<int64_t> counts(static_cast<size_t>(threads), 0);
  const auto wall0 = std::chrono::steady_clock::now();
  const std::clock_t cpu0 = std::clock();
  auto worker = [&](int w) {
    data::EncodeState& state = *(*states)[w];
    std::vector<int32_t> ids;
    for (size_t i = next++; i < docs.size(); i = next++) {
      ids.clear();
      tok.encode(docs[i], &state, &ids);
      counts[w] += static_cast<int64_t>(ids.size());
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool) th.join();
  Result r;
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count();
  r.cpu_s = static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC;
  for (int64_t c : counts) r.tokens += c;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const char* env = std::getenv("RESBM_DATA_MIRROR");
  const std::string mirror = argc > 1 ? argv[1] : env ? env : "";
  if (mirror.empty() || mirror == "-h" || mirror == "--help") {
    std::fprintf(stderr, "usage: tokenizer_bench MIRROR_DIR (or set RESBM_DATA_MIRROR); e.g. ../shared/data\n");
    return 2;
  }
  try {
    const data::Tokenizer tok = data::Tokenizer::from_dir(mirror + "/gpt2");
    const std::string text = data::read_file_or_throw(mirror + "/tinyshakespeare/input.txt", "check the mirror");
    // Documents as tinyshakespeare is laid out: sections ending in a blank line.
    std::vector<std::string> docs;
    for (size_t pos = 0; pos < text.size();) {
      const size_t found = text.find("\n\n", pos);
      const size_t end = found == std::string::npos ? text.size() : found + 2;
      docs.push_back(text.substr(pos, end - pos));
      pos = end;
    }
    std::printf("tinyshakespeare: %.2f MB, %zu documents; best of 5 runs; cpu_s = process CPU time\n",
                text.size() / 1e6, docs.size());
    std::printf("%-8s %-6s %10s %10s %10s %14s %10s\n", "threads", "cache", "wall_s", "cpu_s", "tokens", "tokens/s",
                "MB/s");
    for (int threads : {1, 2}) {
      for (bool warm : {false, true}) {
        Result best;
        std::vector<std::unique_ptr<data::EncodeState>> states;
        if (warm) run(tok, docs, threads, &states);  // fills the caches
        for (int rep = 0; rep < 5; ++rep) {
          if (!warm) states.clear();
          const Result r = run(tok, docs, threads, &states);
          if (rep == 0 || r.wall_s < best.wall_s) best = r;
        }
        std::printf("%-8d %-6s %10.3f %10.3f %10lld %14.0f %10.2f\n", threads, warm ? "warm" : "cold", best.wall_s,
                    best.cpu_s, static_cast<long long>(best.tokens), best.tokens / best.wall_s,
                    text.size() / 1e6 / best.wall_s);
      }
    }
  } catch (const data::DataError& e) {
    std::fprintf(stderr, "tokenizer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
