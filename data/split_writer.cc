// data/split_writer.cc: SplitWriter, val/train routing and shard cutting of a token stream.
#include "data/split_writer.h"

#include <cstdio>
#include <utility>

#include "data/error.h"
#include "data/shards.h"

namespace data {

SplitWriter::SplitWriter(std::string out_dir, std::string name, int64_t val_tokens, int64_t shard_tokens)
    : out_dir_(std::move(out_dir)), name_(std::move(name)), val_tokens_(val_tokens), shard_tokens_(shard_tokens) {
  if (val_tokens < 0) DATA_FAIL("--val-tokens must be >= 0, got " << val_tokens);
  if (shard_tokens <= 0 || shard_tokens > INT32_MAX) {
    DATA_FAIL("--shard-tokens must be in 1.." << INT32_MAX << ", got " << shard_tokens);
  }
  buffer_is_val_ = val_tokens > 0;
  buffer_.reserve(static_cast<size_t>(shard_tokens));
}

void SplitWriter::flush() {
  if (buffer_.empty()) return;
  char suffix[32];
  std::snprintf(suffix, sizeof(suffix), "_%06d.bin", buffer_is_val_ ? val_index_++ : train_index_++);
  const std::string path = out_dir_ + "/" + name_ + (buffer_is_val_ ? "_val" : "_train") + suffix;
  write_shard(path, buffer_.data(), buffer_.size());
  written_.push_back(path);
  buffer_.clear();
}

void SplitWriter::append(const int32_t* ids, size_t count) {
  for (size_t i = 0; i < count; ++i) {
    if (ids[i] < 0 || ids[i] > UINT16_MAX) DATA_FAIL("token " << ids[i] << " does not fit a uint16 shard");
    const bool to_val = val_written_ < val_tokens_;
    if (to_val != buffer_is_val_ || static_cast<int64_t>(buffer_.size()) >= shard_tokens_) {
      flush();
      buffer_is_val_ = to_val;
    }
    buffer_.push_back(static_cast<uint16_t>(ids[i]));
    (to_val ? val_written_ : train_written_) += 1;
  }
}

void SplitWriter::finish() { flush(); }

}  // namespace data
