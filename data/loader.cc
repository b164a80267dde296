// data/loader.cc: DataLoader (sequential / shuffled, rank-sliced, resumable) and ValidationLoader.
#include "data/loader.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "data/error.h"
#include "data/rng.h"

namespace data {
namespace {

constexpr uint32_t kPositionMagic = 0x504C4252;  // "RBLP": resbm loader position

void put_u64(uint64_t v, uint8_t* out) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t get_u64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(in[i]) << (8 * i);
  return v;
}

}  // namespace

std::vector<uint8_t> LoaderPosition::to_bytes() const {
  std::vector<uint8_t> bytes(kBytes, 0);
  put_u64(kPositionMagic, bytes.data());
  put_u64(epoch, bytes.data() + 8);
  put_u64(batch, bytes.data() + 16);
  put_u64(fingerprint, bytes.data() + 24);
  return bytes;
}

LoaderPosition LoaderPosition::from_bytes(const uint8_t* bytes, size_t size) {
  if (size != kBytes || get_u64(bytes) != kPositionMagic) {
    DATA_FAIL("not a data loader position (" << size << " bytes, expected " << kBytes
                                             << " starting with RBLP); is the checkpoint corrupt?");
  }
  return LoaderPosition{get_u64(bytes + 8), get_u64(bytes + 16), get_u64(bytes + 24)};
}

DataLoader::DataLoader(const LoaderConfig& config) : config_(config) {
  if (config.B <= 0 || config.T <= 0) DATA_FAIL("loader needs B > 0 and T > 0, got B=" << config.B << " T=" << config.T);
  if (config.num_processes <= 0 || config.process_rank < 0 || config.process_rank >= config.num_processes) {
    DATA_FAIL("loader rank " << config.process_rank << " is outside 0.." << config.num_processes - 1
                             << "; pass 0 <= process_rank < num_processes");
  }
  for (const std::string& path : glob_files(config.pattern)) shards_.push_back(read_shard_header(path));

  const int64_t T = config.T;
  int64_t max_samples = 0;
  fingerprint_ = mix64(static_cast<uint64_t>(config.B) ^ mix64(T) ^ mix64(config.num_processes * 7919ull) ^
                       mix64(config.process_rank * 104729ull) ^ mix64(config.seed) ^ (config.shuffle ? 1 : 0) ^
                       mix64(static_cast<uint64_t>(config.vocab_size) << 20));
  for (const ShardInfo& shard : shards_) {
    const int64_t samples = shard.num_tokens > T ? (shard.num_tokens - 1) / T : 0;
    samples_in_shard_.push_back(samples);
    total_samples_ += samples;
    max_samples = std::max(max_samples, samples);
    fingerprint_ = mix64(fingerprint_ ^ static_cast<uint64_t>(shard.num_tokens));
  }
  const int64_t per_global_batch = static_cast<int64_t>(config.B) * config.num_processes;
  batches_per_epoch_ = total_samples_ / per_global_batch;
  if (batches_per_epoch_ == 0) {
    DATA_FAIL(config.pattern << " holds " << total_samples_ << " samples of T+1=" << T + 1
                             << " tokens, fewer than one batch for all ranks (B * num_processes = " << per_global_batch
                             << "); lower B or T, or add data");
  }
  // Everything next_batch() needs is sized here, so the step loop allocates nothing.
  shard_order_.reserve(shards_.size());
  order_start_.reserve(shards_.size() + 1);
  sample_perm_.reserve(static_cast<size_t>(max_samples));
  row_.resize(static_cast<size_t>(T) + 1);
  inputs_.resize(static_cast<size_t>(config.B) * T);
  targets_.resize(static_cast<size_t>(config.B) * T);
  start_epoch(0);
}

DataLoader::~DataLoader() {
  if (current_fd_ >= 0) ::close(current_fd_);
}

void DataLoader::start_epoch(uint64_t epoch) {
  epoch_ = epoch;
  batch_ = 0;
  const int64_t n = static_cast<int64_t>(shards_.size());
  if (config_.shuffle) {
    seeded_permutation(mix64(config_.seed) ^ mix64(epoch * 2 + 1), n, &shard_order_);
  } else {
    shard_order_.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) shard_order_[i] = i;
  }
  order_start_.resize(static_cast<size_t>(n) + 1);
  order_start_[0] = 0;
  for (int64_t i = 0; i < n; ++i) order_start_[i + 1] = order_start_[i] + samples_in_shard_[shard_order_[i]];
  current_order_index_ = -1;
}

void DataLoader::load_shard_order_entry(int64_t order_index) {
  if (current_fd_ >= 0) ::close(current_fd_);
  current_fd_ = -1;
  current_order_index_ = -1;
  const int64_t shard = shard_order_[order_index];
  const std::string& path = shards_[shard].path;
  current_fd_ = ::open(path.c_str(), O_RDONLY);
  if (current_fd_ < 0) DATA_FAIL("cannot open shard " << path << ": " << std::strerror(errno) << "; was it removed?");
  if (config_.shuffle) {
    const uint64_t seed = mix64(config_.seed) ^ mix64(epoch_ * 2) ^ mix64(static_cast<uint64_t>(shard) << 32 | 7);
    seeded_permutation(seed, samples_in_shard_[shard], &sample_perm_);
  }
  current_order_index_ = order_index;
}

void DataLoader::read_row(int64_t global_sample, int row) {
  if (current_order_index_ < 0 || global_sample < order_start_[current_order_index_] ||
      global_sample >= order_start_[current_order_index_ + 1]) {
    // The last order entry whose start is <= global_sample (entries of empty shards have zero width).
    const auto it = std::upper_bound(order_start_.begin(), order_start_.end(), global_sample);
    load_shard_order_entry(static_cast<int64_t>(it - order_start_.begin()) - 1);
  }
  const int64_t k = global_sample - order_start_[current_order_index_];
  const int64_t sample = config_.shuffle ? sample_perm_[k] : k;
  const int64_t T = config_.T;
  const std::string& path = shards_[shard_order_[current_order_index_]].path;
  pread_tokens(current_fd_, sample * T, row_.size(), row_.data(), path);
  check_token_ids(row_.data(), row_.size(), config_.vocab_size, path, sample * T);
  int32_t* in = inputs_.data() + static_cast<size_t>(row) * T;
  int32_t* tg = targets_.data() + static_cast<size_t>(row) * T;
  for (int64_t t = 0; t < T; ++t) {
    in[t] = row_[t];
    tg[t] = row_[t + 1];
  }
}

void DataLoader::next_batch() {
  if (batch_ >= static_cast<uint64_t>(batches_per_epoch_)) start_epoch(epoch_ + 1);
  const int64_t B = config_.B;
  const int64_t first = (static_cast<int64_t>(batch_) * config_.num_processes + config_.process_rank) * B;
  for (int b = 0; b < B; ++b) read_row(first + b, b);
  ++batch_;
}

LoaderPosition DataLoader::position() const { return LoaderPosition{epoch_, batch_, fingerprint_}; }

void DataLoader::set_position(const LoaderPosition& position) {
  if (position.fingerprint != fingerprint_) {
    DATA_FAIL("loader position was saved with other shards or settings (B, T, ranks, seed, shuffle) than "
              << config_.pattern << "; resume with the same data and flags");
  }
  if (position.batch > static_cast<uint64_t>(batches_per_epoch_)) {
    DATA_FAIL("loader position batch " << position.batch << " exceeds " << batches_per_epoch_
                                       << " batches per epoch; is the checkpoint corrupt?");
  }
  start_epoch(position.epoch);
  batch_ = position.batch;
}

void DataLoader::reset() { start_epoch(0); }

LoaderConfig ValidationLoader::make_config(const std::string& pattern, int B, int T, int process_rank,
                                           int num_processes) {
  LoaderConfig config;
  config.pattern = pattern;
  config.B = B;
  config.T = T;
  config.process_rank = process_rank;
  config.num_processes = num_processes;
  config.shuffle = false;
  return config;
}

ValidationLoader::ValidationLoader(const std::string& pattern, int B, int T, int process_rank, int num_processes)
    : loader_(make_config(pattern, B, T, process_rank, num_processes)) {}

}  // namespace data
