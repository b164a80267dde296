// train/checkpoint.h: the training-checkpoint file (named binary sections in one checksummed file), written
// atomically, listed and pruned by step.
//
// What goes in the sections (params, optimizer state, data position, RNG, step) is the trainer's business
// (train/train_state.cc); this file only guarantees that what was written is what is read back, or a clear error.
// Layout, little-endian:
//   magic "RESBMCKP" (8 bytes) | version u32 | num_sections u32 | payload_bytes u64 | fnv1a64(payload) u64
//   payload: per section: name_len u32 | name bytes | size u64 | data
// A truncated file fails the size check, a flipped bit the checksum. Writing goes to <path>.tmp, fsync, rename over
// <path>, fsync of the directory: a crash at any moment leaves either the old file or the new one, never half.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace train {

class CheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

constexpr uint32_t kCheckpointVersion = 1;

// FNV-1a 64-bit over a byte range, continuing from `hash` (start with the offset basis, the default).
uint64_t fnv1a64(const void* data, size_t size, uint64_t hash = 0xcbf29ce484222325ull);

// Sections to write. add() copies the bytes, so callers may reuse their buffers.
class CheckpointWriter {
 public:
  void add(const std::string& name, const void* data, size_t size);
  void add_u64(const std::string& name, uint64_t value) { add(name, &value, sizeof(value)); }
  void add_string(const std::string& name, const std::string& s) { add(name, s.data(), s.size()); }
  // Writes atomically to path (see above); returns the payload's checksum (what the header holds). Throws
  // CheckpointError naming the path and the failed call.
  uint64_t save(const std::string& path) const;

 private:
  std::vector<std::pair<std::string, std::vector<uint8_t>>> sections_;
};

// A checkpoint read back and verified.
class Checkpoint {
 public:
  // Reads and verifies path. Throws CheckpointError saying what is wrong (missing, not a checkpoint, wrong
  // version, truncated, checksum mismatch) and what to do.
  static Checkpoint load(const std::string& path);

  bool has(const std::string& name) const { return sections_.count(name) != 0; }
  const std::vector<uint8_t>& get(const std::string& name) const;  // throws when absent
  // Copies a section into dst, which must be exactly its size (a shape mismatch is an error, not a truncation).
  void read_into(const std::string& name, void* dst, size_t size) const;
  uint64_t get_u64(const std::string& name) const;
  std::string get_string(const std::string& name) const;
  const std::string& path() const { return path_; }
  uint64_t checksum() const { return checksum_; }  // fnv1a64 of the payload, verified on load

 private:
  std::string path_;
  uint64_t checksum_ = 0;
  std::map<std::string, std::vector<uint8_t>> sections_;
};

// A training checkpoint of a directory is one file per stage, <dir>/ckpt_<step, 8 digits>.stage<s>.bin, and a
// manifest naming them with their checksums, <dir>/ckpt_<step>.bin, written last (train/train_state.cc): a
// checkpoint exists once its manifest does.
std::string checkpoint_path(const std::string& dir, int64_t step);  // the manifest
// With replicas (replica >= 0): ckpt_<step>.replica<r>.stage<s>.bin.
std::string stage_checkpoint_path(const std::string& dir, int64_t step, int stage, int replica = -1);
// (step, manifest path) of every checkpoint in dir, oldest first. Empty when dir is missing.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& dir);
// Deletes all but the newest keep_last checkpoints (manifest first, then its stage files), except the one of step
// `keep_step` (the newest known good, when it is older); also stale .tmp files a crash left behind and stage files
// older than the newest manifest that no manifest names (a save cut short).
void prune_checkpoints(const std::string& dir, int keep_last, int64_t keep_step = -1);

// mkdir -p. Throws CheckpointError on failure.
void make_dirs(const std::string& dir);

}  // namespace train
