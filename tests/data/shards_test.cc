// tests/data/shards_test.cc: llm.c shard format: round trip, byte layout, and each kind of bad input.
#include "data/shards.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "data/error.h"
#include "tests/data/data_test_util.h"

namespace {

// Builds a shard by hand (not with write_shard) so the reader is tested against the format, not against itself.
std::string handmade_shard(int32_t magic, int32_t version, int32_t count, const std::vector<uint16_t>& tokens) {
  std::string bytes(1024, '\0');
  std::memcpy(&bytes[0], &magic, 4);
  std::memcpy(&bytes[4], &version, 4);
  std::memcpy(&bytes[8], &count, 4);
  bytes.append(reinterpret_cast<const char*>(tokens.data()), tokens.size() * 2);
  return bytes;
}

// Expects a DataError whose message contains `needle` (the file name or the fault).
template <typename F>
void expect_error(F&& f, const std::string& needle) {
  try {
    f();
    FAIL() << "expected a DataError mentioning '" << needle << "'";
  } catch (const data::DataError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(Shards, WriterProducesLlmcLayoutAndReaderRoundTrips) {
  const std::string dir = data_test::fresh_dir("shards_roundtrip");
  const std::vector<int32_t> tokens = {50256, 0, 1, 40000, 50255, 7};
  data::write_shard(dir + "/a.bin", tokens);
  std::vector<uint16_t> narrow(tokens.begin(), tokens.end());
  EXPECT_EQ(data_test::slurp(dir + "/a.bin"), handmade_shard(20240520, 1, 6, narrow));
  EXPECT_EQ(data::read_shard(dir + "/a.bin"), narrow);
  EXPECT_EQ(data::read_shard_header(dir + "/a.bin").num_tokens, 6);
  // Atomic write: only the final file remains, no temp files.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1);
  // An empty shard is legal.
  data::write_shard(dir + "/empty.bin", std::vector<int32_t>{});
  EXPECT_TRUE(data::read_shard(dir + "/empty.bin").empty());
}

TEST(Shards, BadInputGetsClearErrors) {
  const std::string dir = data_test::fresh_dir("shards_bad");
  const std::vector<uint16_t> ok = {1, 2, 3};
  data_test::write_bytes(dir + "/magic.bin", handmade_shard(20240801, 1, 3, ok));
  expect_error([&] { data::read_shard(dir + "/magic.bin"); }, "magic.bin has magic 20240801");
  data_test::write_bytes(dir + "/version.bin", handmade_shard(20240520, 7, 3, ok));
  expect_error([&] { data::read_shard(dir + "/version.bin"); }, "version 7");
  data_test::write_bytes(dir + "/short.bin", handmade_shard(20240520, 1, 4, ok));
  expect_error([&] { data::read_shard(dir + "/short.bin"); }, "short.bin is 1030 bytes but its header says 4");
  data_test::write_bytes(dir + "/long.bin", handmade_shard(20240520, 1, 2, ok));
  expect_error([&] { data::read_shard(dir + "/long.bin"); }, "truncated or corrupt");
  data_test::write_bytes(dir + "/tiny.bin", std::string(100, '\0'));
  expect_error([&] { data::read_shard(dir + "/tiny.bin"); }, "shorter than the 1024-byte header");
  data_test::write_bytes(dir + "/vocab.bin", handmade_shard(20240520, 1, 3, {1, 50257, 3}));
  expect_error([&] { data::read_shard(dir + "/vocab.bin"); }, "token id 50257 at token 1");
  expect_error([&] { data::read_shard(dir + "/missing.bin"); }, "missing.bin");
  expect_error([&] { data::glob_files(dir + "/nothing_*.bin"); }, "no files match");
  expect_error([&] { data::write_shard(dir + "/big.bin", std::vector<int32_t>{70000}); }, "uint16");
  expect_error([&] { data::write_shard(dir + "/no/such/dir/x.bin", std::vector<int32_t>{1}); }, "x.bin");
}

TEST(Shards, GlobIsSorted) {
  const std::string dir = data_test::fresh_dir("shards_glob");
  for (const char* name : {"s_002.bin", "s_000.bin", "s_001.bin", "other.txt"}) {
    data::write_shard(dir + "/" + name, std::vector<int32_t>{1});
  }
  const auto files = data::glob_files(dir + "/s_*.bin");
  ASSERT_EQ(files.size(), 3u);
  EXPECT_EQ(files[0], dir + "/s_000.bin");
  EXPECT_EQ(files[2], dir + "/s_002.bin");
}

}  // namespace
