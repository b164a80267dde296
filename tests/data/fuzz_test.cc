// tests/data/fuzz_test.cc: a seeded random-bytes fuzz loop over the shard reader, the loader and the tokenizer.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "data/error.h"
#include "data/gpt2_vocab.h"
#include "data/loader.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "tests/data/data_test_util.h"

namespace {

// Every corrupt shard must either load (and then hold only ids < vocab) or throw DataError; never crash.
TEST(Fuzz, CorruptShardsNeverCrashTheReaderOrLoader) {
  const std::string dir = data_test::fresh_dir("fuzz_shards");
  std::mt19937 rng(20240520);
  int loaded = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const int32_t count = static_cast<int32_t>(rng() % 64);
    std::string bytes(1024 + 2 * count, '\0');
    const int32_t header[3] = {20240520, 1, count};
    std::memcpy(&bytes[0], header, sizeof(header));
    for (int32_t i = 0; i < count; ++i) {
      const uint16_t token = static_cast<uint16_t>(rng() % 50257);
      std::memcpy(&bytes[1024 + 2 * i], &token, 2);
    }
    // Corrupt: flip random bytes (header fields included), truncate or extend.
    const int flips = static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      const size_t at = rng() % 2 ? rng() % 12 : rng() % bytes.size();
      bytes[at] = static_cast<char>(rng());
    }
    if (rng() % 4 == 0) bytes.resize(rng() % (bytes.size() + 8));
    const std::string path = dir + "/s.bin";
    data_test::write_bytes(path, bytes);
    try {
      const std::vector<uint16_t> tokens = data::read_shard(path);
      for (uint16_t t : tokens) ASSERT_LT(t, 50257);
      if (tokens.size() >= 3) {
        data::LoaderConfig config;
        config.pattern = path;
        config.B = 1;
        config.T = 2;
        config.shuffle = rng() % 2;
        data::DataLoader loader(config);
        loader.next_batch();
      }
      ++loaded;
    } catch (const data::DataError&) {
      ++rejected;
    }
  }
  // Both outcomes must occur, or the corruption (or the generator) is not doing its job.
  EXPECT_GT(loaded, 100);
  EXPECT_GT(rejected, 100);
}

TEST(Fuzz, RandomBytesNeverCrashTheJsonParser) {
  std::mt19937 rng(7);
  const std::string alphabet = "{}\":,\\u0123456789abcdefABCDEF -\n";
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text = "{\"a\": 1, \"\\u00e9\": 2}";
    for (int k = 0, n = static_cast<int>(rng() % 4); k < n; ++k) {
      text[rng() % text.size()] = rng() % 2 ? alphabet[rng() % alphabet.size()] : static_cast<char>(rng());
    }
    try {
      data::parse_flat_json_object(text, "fuzz");
    } catch (const data::DataError&) {
    }
  }
}

TEST(Fuzz, RandomBytesRoundTripThroughTheTokenizer) {
  const std::string mirror = data_test::data_mirror();
  if (mirror.empty()) GTEST_SKIP() << data_test::kNoMirror;
  const data::Tokenizer tok = data::Tokenizer::from_dir(mirror + "/gpt2");
  data::EncodeState state(tok);
  std::mt19937 rng(99);
  std::vector<int32_t> ids;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text(rng() % 200, '\0');
    // Bias towards bytes that form (or almost form) UTF-8 sequences and spaces, where the edge cases are.
    for (char& c : text) {
      const uint32_t r = rng();
      c = static_cast<char>(r % 3 == 0 ? 0x80 + (r >> 8) % 0x80 : r % 3 == 1 ? " \n\t'a1"[(r >> 8) % 6] : (r >> 8));
    }
    ids.clear();
    tok.encode(text, &state, &ids);
    ASSERT_EQ(tok.decode(ids), text) << "iteration " << iter;
  }
}

}  // namespace
