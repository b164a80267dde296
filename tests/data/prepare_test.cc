// tests/data/prepare_test.cc: `prepare tinyshakespeare` from the mirror gives llm.c's shards; SHA-256; fetch errors.
#include "data/prepare.h"

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <sstream>

#include "data/error.h"
#include "data/gpt2_vocab.h"
#include "data/loader.h"
#include "data/sha256.h"
#include "data/shards.h"
#include "tests/data/data_test_util.h"

namespace {

// key -> value line by line, as written by tools/data/make_tokenizer_fixture.py from the independent Python
// reference (tools/data/gpt2_bpe_reference.py), which lays tinyshakespeare out exactly as llm.c's script does.
std::map<std::string, std::string> expected_tinyshakespeare() {
  std::ifstream in(std::string(data_test::kFixtureDir) + "/tinyshakespeare_expected.txt");
  std::map<std::string, std::string> values;
  std::string line;
  while (std::getline(in, line)) {
    const size_t space = line.find(' ');
    if (space != std::string::npos) values[line.substr(0, space)] = line.substr(space + 1);
  }
  return values;
}

std::string join(const uint16_t* ids, size_t n) {
  std::ostringstream out;
  for (size_t i = 0; i < n; ++i) out << (i ? " " : "") << ids[i];
  return out.str();
}

// FIPS 180-2 appendix B test vectors.
TEST(Sha256, MatchesPublishedVectors) {
  EXPECT_EQ(data::sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(data::sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(data::sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(data::sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Prepare, TinyShakespeareFromMirrorIsByteIdenticalToLlmc) {
  const std::string mirror = data_test::data_mirror();
  if (mirror.empty()) GTEST_SKIP() << data_test::kNoMirror;
  const auto expected = expected_tinyshakespeare();
  ASSERT_EQ(expected.count("train_sha256"), 1u) << "fixture missing";
  const std::string out = data_test::fresh_dir("prepare_ts");

  const data::PreparedSplit split = data::ensure_tinyshakespeare(out, mirror);
  EXPECT_FALSE(split.reused);
  EXPECT_EQ(split.train_tokens, 305260);
  EXPECT_EQ(split.val_tokens, 32768);
  EXPECT_EQ(std::to_string(split.train_tokens), expected.at("train_tokens"));
  EXPECT_EQ(std::to_string(split.val_tokens), expected.at("val_tokens"));
  const std::string train_bytes = data::read_file_or_throw(split.train_path, "");
  const std::string val_bytes = data::read_file_or_throw(split.val_path, "");
  EXPECT_EQ(data::sha256_hex(train_bytes), expected.at("train_sha256"));
  EXPECT_EQ(data::sha256_hex(val_bytes), expected.at("val_sha256"));

  const std::vector<uint16_t> train = data::read_shard(split.train_path);
  const std::vector<uint16_t> val = data::read_shard(split.val_path);
  EXPECT_EQ(val[0], 50256) << "every section starts with <|endoftext|>";
  EXPECT_EQ(join(val.data(), 16), expected.at("val_first"));
  EXPECT_EQ(join(val.data() + val.size() - 16, 16), expected.at("val_last"));
  EXPECT_EQ(join(train.data(), 16), expected.at("train_first"));
  EXPECT_EQ(join(train.data() + train.size() - 16, 16), expected.at("train_last"));

  // The loader reads the train split as the same stream.
  data::LoaderConfig config;
  config.pattern = split.train_path;
  config.B = 4;
  config.T = 64;
  data::DataLoader loader(config);
  loader.next_batch();
  for (int i = 0; i < 4 * 64; ++i) ASSERT_EQ(loader.inputs()[i], train[i]);

  // A second call keeps the valid shards, and the vocab it left behind loads.
  EXPECT_TRUE(data::ensure_tinyshakespeare(out, mirror).reused);
  EXPECT_EQ(data::Tokenizer::from_dir(split.vocab_dir).vocab_size(), 50257);
}

// Byte-level shards: val followed by train is input.txt exactly, byte for byte, ids < 256; a second call reuses.
TEST(Prepare, TinyShakespeareBytesRoundTripsInputExactly) {
  const std::string mirror = data_test::data_mirror();
  if (mirror.empty()) GTEST_SKIP() << data_test::kNoMirror;
  const std::string out = data_test::fresh_dir("prepare_ts_bytes");
  const data::PreparedSplit split = data::ensure_tinyshakespeare_bytes(out, mirror);
  EXPECT_FALSE(split.reused);
  const std::string text = data::read_file_or_throw(mirror + "/tinyshakespeare/input.txt", "");
  const std::vector<uint16_t> val = data::read_shard(split.val_path, data::kByteVocabSize);
  const std::vector<uint16_t> train = data::read_shard(split.train_path, data::kByteVocabSize);
  EXPECT_EQ(static_cast<int64_t>(val.size()), split.val_tokens);
  EXPECT_GE(split.val_tokens, 65536) << "the ResBM experiment needs at least 64k held-out tokens";
  std::string round_trip;
  for (uint16_t id : val) round_trip.push_back(static_cast<char>(id));
  for (uint16_t id : train) round_trip.push_back(static_cast<char>(id));
  ASSERT_EQ(round_trip.size(), text.size());
  EXPECT_TRUE(round_trip == text) << "the shards must hold input.txt byte for byte";
  EXPECT_EQ(data::sha256_hex(round_trip), data::tinyshakespeare_text_file().sha256);
  EXPECT_TRUE(data::ensure_tinyshakespeare_bytes(out, mirror).reused);
}

TEST(Prepare, CorruptMirrorFileIsRejectedByDigest) {
  const std::string mirror = data_test::fresh_dir("bad_mirror");
  std::filesystem::create_directories(mirror + "/tinyshakespeare");
  data_test::write_bytes(mirror + "/tinyshakespeare/input.txt", "First Citizen:\nnot the real file\n");
  try {
    data::fetch_verified(data::tinyshakespeare_text_file(), data_test::fresh_dir("bad_mirror_out"), mirror);
    FAIL() << "expected a digest mismatch";
  } catch (const data::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("SHA-256"), std::string::npos) << e.what();
  }
  // A mirror without the file says which file and how to fix it.
  try {
    data::fetch_verified(data::gpt2_vocab_bpe_file(), data_test::fresh_dir("bad_mirror_out2"), mirror);
    FAIL() << "expected a missing-file error";
  } catch (const data::DataError& e) {
    EXPECT_NE(std::string(e.what()).find("gpt2/vocab.bpe"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--mirror"), std::string::npos) << e.what();
  }
}

}  // namespace
