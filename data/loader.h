// data/loader.h: DataLoader over a glob of token shards: (B, T) batches, sequential or seeded shuffle, rank slices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/shards.h"

namespace data {

struct LoaderConfig {
  std::string pattern;        // glob(3) of shards, e.g. "dir/tiny_shakespeare_train.bin" or "dir/*_train_*.bin"
  int B = 4;                  // batch rows
  int T = 64;                 // sequence length
  int process_rank = 0;       // this reader's slice ...
  int num_processes = 1;      // ... out of this many disjoint slices
  bool shuffle = false;       // false: the exact token stream (for comparisons); true: seeded permutations
  uint64_t seed = 1337;
  int32_t vocab_size = kGpt2VocabSize;
};

// Where a loader is: epoch and batch within the epoch, plus a fingerprint of the configuration and shards so that a
// position is never applied to a loader that would read different data. Serialisable for checkpoints.
struct LoaderPosition {
  uint64_t epoch = 0;
  uint64_t batch = 0;        // batches this rank has already produced in `epoch`
  uint64_t fingerprint = 0;

  static constexpr size_t kBytes = 32;             // magic + 3 x uint64, little-endian
  std::vector<uint8_t> to_bytes() const;
  static LoaderPosition from_bytes(const uint8_t* bytes, size_t size);  // throws DataError on a bad blob
  bool operator==(const LoaderPosition& o) const {
    return epoch == o.epoch && batch == o.batch && fingerprint == o.fingerprint;
  }
};

// A sample is a window of T + 1 tokens at offset k * T in one shard (the last token is only a target). An epoch
// orders all samples: shards in order (or a seeded permutation), and within each shard the samples in order (or a
// seeded permutation per shard and epoch). Global batch j takes B consecutive samples of that order and belongs to
// rank j % num_processes; the samples left over at the end of an epoch (fewer than B * num_processes) are skipped.
// In sequential mode one rank's batch is therefore a contiguous B*T run of the stream, exactly as llm.c reads it.
// Buffers are allocated at construction; next_batch() allocates nothing.
class DataLoader {
 public:
  explicit DataLoader(const LoaderConfig& config);  // validates every shard's header; throws DataError
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  void next_batch();                            // fills inputs() and targets(); wraps to the next epoch at its end
  const int32_t* inputs() const { return inputs_.data(); }    // (B, T)
  const int32_t* targets() const { return targets_.data(); }  // (B, T), inputs shifted by one

  LoaderPosition position() const;
  void set_position(const LoaderPosition& position);  // throws DataError if the fingerprint differs
  void reset();                                       // epoch 0, batch 0

  int64_t batches_per_epoch() const { return batches_per_epoch_; }  // per rank
  int64_t total_samples() const { return total_samples_; }
  const std::vector<ShardInfo>& shards() const { return shards_; }
  const LoaderConfig& config() const { return config_; }

 private:
  void start_epoch(uint64_t epoch);
  void load_shard_order_entry(int64_t order_index);  // makes the shard at shard_order_[order_index] current
  void read_row(int64_t global_sample, int row);

  LoaderConfig config_;
  std::vector<ShardInfo> shards_;
  std::vector<int64_t> samples_in_shard_;
  int64_t total_samples_ = 0, batches_per_epoch_ = 0;
  uint64_t fingerprint_ = 0;

  uint64_t epoch_ = 0, batch_ = 0;
  std::vector<int64_t> shard_order_;       // epoch's shard order
  std::vector<int64_t> order_start_;       // first global sample of each position in shard_order_ (+ total)
  int64_t current_order_index_ = -1;       // which entry of shard_order_ is open
  int current_fd_ = -1;
  std::vector<int64_t> sample_perm_;       // the open shard's sample order this epoch
  std::vector<uint16_t> row_;              // (T + 1) tokens read from disk
  std::vector<int32_t> inputs_, targets_;  // (B, T) each
};

// Validation reads the split from its beginning every time: start() rewinds, next_batch() fills the buffers.
class ValidationLoader {
 public:
  ValidationLoader(const std::string& pattern, int B, int T, int process_rank = 0, int num_processes = 1);
  void start() { loader_.reset(); }
  void next_batch() { loader_.next_batch(); }
  const int32_t* inputs() const { return loader_.inputs(); }    // (B, T)
  const int32_t* targets() const { return loader_.targets(); }  // (B, T)
  int64_t batches() const { return loader_.batches_per_epoch(); }

 private:
  static LoaderConfig make_config(const std::string& pattern, int B, int T, int process_rank, int num_processes);
  DataLoader loader_;
};

}  // namespace data
