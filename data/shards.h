// data/shards.h: llm.c's token shard format (256 x int32 header: magic, version, count; then uint16 tokens).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace data {

constexpr int32_t kShardMagic = 20240520;     // llm.c dev/data/data_common.py, "gpt-2" layout
constexpr int32_t kShardVersion = 1;
constexpr int kShardHeaderInts = 256;
constexpr int64_t kShardHeaderBytes = kShardHeaderInts * 4;
constexpr int32_t kGpt2VocabSize = 50257;

// Writes a shard atomically: a temp file in the same directory, fsync, rename over `path`, fsync of the directory.
// Throws DataError on I/O failure, or on a token outside [0, 65535] (the format stores uint16).
void write_shard(const std::string& path, const uint16_t* tokens, size_t count);
void write_shard(const std::string& path, const std::vector<int32_t>& tokens);

// What the header says, checked against the file: magic, version, and file size == header + 2 * count.
struct ShardInfo {
  std::string path;
  int64_t num_tokens = 0;
};
ShardInfo read_shard_header(const std::string& path);

// Reads and fully validates a shard (header, size, every id < vocab_size). Throws DataError naming the file.
std::vector<uint16_t> read_shard(const std::string& path, int32_t vocab_size = kGpt2VocabSize);

// Reads tokens [first_token, first_token + count) of an open shard (after its header) into out; throws DataError
// naming `path` on a short read (the file shrank since its header was checked).
void pread_tokens(int fd, int64_t first_token, size_t count, uint16_t* out, const std::string& path);

// Checks that ids[0, count) are < vocab_size; on failure throws DataError naming `path` and the token position.
void check_token_ids(const uint16_t* ids, size_t count, int32_t vocab_size, const std::string& path,
                     int64_t first_position);

// Expands a glob(3) pattern into a sorted list of files; throws DataError when nothing matches.
std::vector<std::string> glob_files(const std::string& pattern);

}  // namespace data
