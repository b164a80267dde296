// data/split_writer.h: routes a token stream into val then train shards of bounded size (NAME_val_000000.bin, ...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace data {

// The first `val_tokens` tokens of the stream go to NAME_val_XXXXXX.bin, the rest to NAME_train_XXXXXX.bin; each
// shard holds at most `shard_tokens` tokens. Shards are written atomically as they fill up; finish() flushes the
// rest. A split that receives no tokens gets no file.
class SplitWriter {
 public:
  SplitWriter(std::string out_dir, std::string name, int64_t val_tokens, int64_t shard_tokens);
  void append(const int32_t* ids, size_t count);  // throws DataError on an id outside uint16
  void finish();

  const std::vector<std::string>& written() const { return written_; }
  int64_t val_written() const { return val_written_; }
  int64_t train_written() const { return train_written_; }

 private:
  void flush();

  std::string out_dir_, name_;
  int64_t val_tokens_, shard_tokens_;
  int64_t val_written_ = 0, train_written_ = 0;  // tokens routed so far (including those still buffered)
  int val_index_ = 0, train_index_ = 0;
  bool buffer_is_val_ = true;
  std::vector<uint16_t> buffer_;
  std::vector<std::string> written_;
};

}  // namespace data
