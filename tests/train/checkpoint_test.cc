// tests/train/checkpoint_test.cc: round trip, corruption and truncation detection, atomicity, listing, pruning.
#include "train/checkpoint.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace train {
namespace {

std::string temp_dir(const std::string& name) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  make_dirs(dir);
  return dir;
}

void write_sample(const std::string& path, float scale) {
  std::vector<float> params(1000);
  for (size_t i = 0; i < params.size(); ++i) params[i] = scale * static_cast<float>(i);
  CheckpointWriter w;
  w.add("params", params.data(), params.size() * sizeof(float));
  w.add_u64("step", 77);
  w.add_string("config", "preset=tiny");
  w.add("empty", nullptr, 0);
  w.save(path);
}

std::string load_error(const std::string& path) {
  try {
    Checkpoint::load(path);
  } catch (const CheckpointError& e) {
    return e.what();
  }
  return "";
}

std::vector<char> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(Checkpoint, Fnv1aKnownVectors) {
  // Published FNV-1a 64 test vectors (the FNV reference page): "" and "a".
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ull);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cull);
}

TEST(Checkpoint, RoundTrip) {
  const std::string path = temp_dir("rt") + "/c.bin";
  write_sample(path, 0.5f);
  const Checkpoint c = Checkpoint::load(path);
  std::vector<float> params(1000);
  c.read_into("params", params.data(), params.size() * sizeof(float));
  for (size_t i = 0; i < params.size(); ++i) ASSERT_EQ(params[i], 0.5f * static_cast<float>(i));
  EXPECT_EQ(c.get_u64("step"), 77u);
  EXPECT_EQ(c.get_string("config"), "preset=tiny");
  EXPECT_TRUE(c.has("empty"));
  EXPECT_FALSE(c.has("absent"));
  EXPECT_THROW(c.get("absent"), CheckpointError);
  // A section of a different size than expected is refused, not silently truncated.
  std::vector<float> wrong(999);
  EXPECT_THROW(c.read_into("params", wrong.data(), wrong.size() * sizeof(float)), CheckpointError);
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0) << "the temp file must be renamed away";
}

TEST(Checkpoint, EveryFlippedByteIsDetected) {
  const std::string path = temp_dir("flip") + "/c.bin";
  write_sample(path, 1.0f);
  const std::vector<char> good = read_bytes(path);
  // Flip one byte at a spread of offsets: header fields, section table, payload.
  for (size_t off = 0; off < good.size(); off += 97) {
    std::vector<char> bad = good;
    bad[off] ^= 0x40;
    write_bytes(path, bad);
    EXPECT_NE(load_error(path), "") << "flipped byte at offset " << off << " went unnoticed";
  }
  std::vector<char> bad = good;
  bad[good.size() - 1] ^= 1;  // the last payload byte
  write_bytes(path, bad);
  EXPECT_NE(load_error(path).find("checksum mismatch"), std::string::npos);
}

TEST(Checkpoint, TruncationIsDetected) {
  const std::string path = temp_dir("trunc") + "/c.bin";
  write_sample(path, 1.0f);
  const std::vector<char> good = read_bytes(path);
  for (size_t keep : {size_t{0}, size_t{7}, size_t{31}, good.size() / 2, good.size() - 1}) {
    write_bytes(path, std::vector<char>(good.begin(), good.begin() + static_cast<long>(keep)));
    const std::string e = load_error(path);
    EXPECT_NE(e, "") << "truncated to " << keep << " bytes went unnoticed";
  }
  write_bytes(path, std::vector<char>(good.begin(), good.end() - 10));
  EXPECT_NE(load_error(path).find("truncated"), std::string::npos);
  EXPECT_NE(load_error(temp_dir("trunc") + "/missing.bin").find("cannot open"), std::string::npos);
}

TEST(Checkpoint, OverwriteIsAtomicAndStaleTmpIgnored) {
  const std::string dir = temp_dir("atomic");
  const std::string path = checkpoint_path(dir, 5);
  write_sample(path, 1.0f);
  // A crash mid-write leaves a half .tmp behind: it is not listed, the previous checkpoint loads, prune removes it.
  write_bytes(path + ".tmp", std::vector<char>(100, 'x'));
  const auto listed = list_checkpoints(dir);
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].first, 5);
  EXPECT_EQ(load_error(path), "");
  prune_checkpoints(dir, 3);
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0);
  write_sample(path, 2.0f);  // overwrite in place: the new content replaces the old whole
  std::vector<float> params(1000);
  Checkpoint::load(path).read_into("params", params.data(), params.size() * sizeof(float));
  EXPECT_EQ(params[3], 6.0f);
}

TEST(Checkpoint, KillNineDuringWriteLeavesPreviousValid) {
  // A child process overwrites the same checkpoint with ever new 64 MiB contents; the parent SIGKILLs it while a
  // .tmp is being written. The file at the final path must still load and hold one complete earlier version.
  const std::string dir = temp_dir("killwrite");
  const std::string path = dir + "/c.bin";
  constexpr size_t kFloats = 16 << 20;
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<float> data(kFloats);
    for (uint64_t version = 1;; ++version) {
      std::fill(data.begin(), data.end(), static_cast<float>(version));
      CheckpointWriter w;
      w.add("data", data.data(), data.size() * sizeof(float));
      w.add_u64("version", version);
      w.save(path);
    }
  }
  // Wait for a first complete file, then for the next write to be under way, then kill.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (access(path.c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  while (access((path + ".tmp").c_str(), F_OK) != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  const Checkpoint c = Checkpoint::load(path);
  const uint64_t version = c.get_u64("version");
  std::vector<float> data(kFloats);
  c.read_into("data", data.data(), data.size() * sizeof(float));
  for (size_t i = 0; i < kFloats; i += 4099) {
    ASSERT_EQ(data[i], static_cast<float>(version)) << "mixed versions at " << i;
  }
  ASSERT_EQ(data.back(), static_cast<float>(version));
}

TEST(Checkpoint, ListAndPruneKeepNewest) {
  const std::string dir = temp_dir("prune");
  for (int64_t step : {30, 10, 20, 100, 40}) write_sample(checkpoint_path(dir, step), 1.0f);
  write_bytes(dir + "/notes.txt", {'h', 'i'});
  auto listed = list_checkpoints(dir);
  ASSERT_EQ(listed.size(), 5u);
  EXPECT_EQ(listed.front().first, 10);
  EXPECT_EQ(listed.back().first, 100);
  prune_checkpoints(dir, 2);
  listed = list_checkpoints(dir);
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].first, 40);
  EXPECT_EQ(listed[1].first, 100);
  EXPECT_EQ(access((dir + "/notes.txt").c_str(), F_OK), 0) << "prune touches only checkpoint files";
}

}  // namespace
}  // namespace train
