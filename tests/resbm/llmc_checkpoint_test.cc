// tests/resbm/llmc_checkpoint_test.cc: llm.c model files: the PyTorch-written file reloads and re-saves to the same
// bytes, save -> load is bitwise, and every kind of bad file is refused with a message naming file and cause.
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/params.h"
#include "resbm/gpt2.h"
#include "resbm/llmc_checkpoint.h"
#include "tests/resbm/gpt2_fixture.h"

namespace resbm {
namespace {

using testing::read_bytes;
using testing::write_bytes;

// A scratch directory per test process: TEST_TMPDIR under bazel, /tmp otherwise.
std::string temp_path(const std::string& name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/llmc_" + std::to_string(getpid()) + "_" + name;
}

GPT2Config small_config() { return read_llmc_config(testing::kSmallCheckpoint); }

std::vector<char> all_values(const GPT2& model) {
  std::vector<char> bytes;
  for (const engine::Param& p : model.params().params()) {
    const char* d = static_cast<const char*>(p.var.value.data);
    bytes.insert(bytes.end(), d, d + p.var.value.nbytes());
  }
  return bytes;
}

// Expects `fn` to throw LlmcCheckpointError whose message contains the file name and every one of `parts`.
template <typename Fn>
void expect_refused(Fn fn, const std::string& path, std::vector<std::string> parts) {
  try {
    fn();
    ADD_FAILURE() << "no error for " << path;
  } catch (const LlmcCheckpointError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const std::string& part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' in: " << msg;
  }
}

TEST(LlmcCheckpoint, ReadsTheOracleHeader) {
  const GPT2Config c = small_config();
  // The values tools/reference/gpt2_oracle.py's defaults write (L=2, NH=4, C=64, maxT=64, V=500, Vp=512).
  EXPECT_EQ(c.num_layers, 2);
  EXPECT_EQ(c.num_heads, 4);
  EXPECT_EQ(c.channels, 64);
  EXPECT_EQ(c.max_seq_len, 64);
  EXPECT_EQ(c.vocab_size, 500);
  EXPECT_EQ(c.padded_vocab_size, 512);
}

TEST(LlmcCheckpoint, PythonFileReloadsAndResavesToTheSameBytes) {
  // The file was written by PyTorch code from llm.c's layout description, independently of the C++ mapping: a
  // load -> save that reproduces it byte for byte proves the order, the shapes and the header agree.
  GPT2 model(small_config());
  load_llmc_checkpoint(testing::kSmallCheckpoint, model);
  const std::string out = temp_path("resave.bin");
  save_llmc_checkpoint(out, model);
  EXPECT_EQ(read_bytes(out), read_bytes(testing::kSmallCheckpoint));
  std::remove(out.c_str());
}

TEST(LlmcCheckpoint, TensorsComeFromLlmcOffsets) {
  // Offsets written out here from llm.c's list (wte, wpe, then per tensor kind all L layers), independently of
  // gpt2_llmc_layout: a symmetric mistake in the mapping would survive load -> save, but not this.
  const GPT2Config c = small_config();
  GPT2 model(c);
  load_llmc_checkpoint(testing::kSmallCheckpoint, model);
  const std::vector<char> file = read_bytes(testing::kSmallCheckpoint);
  const int64_t C = c.channels, L = c.num_layers, Vp = c.padded_vocab_size, maxT = c.max_seq_len;
  const int64_t wte = 0, wpe = wte + Vp * C, ln1w = wpe + maxT * C, ln1b = ln1w + L * C, qkvw = ln1b + L * C;
  const int64_t qkvb = qkvw + L * 3 * C * C, attprojw = qkvb + L * 3 * C, attprojb = attprojw + L * C * C;
  const int64_t ln2w = attprojb + L * C, ln2b = ln2w + L * C, fcw = ln2b + L * C, fcb = fcw + L * 4 * C * C;
  const int64_t fcprojw = fcb + L * 4 * C, fcprojb = fcprojw + L * C * 4 * C, lnfw = fcprojb + L * C;
  const int64_t lnfb = lnfw + C;
  ASSERT_EQ(int64_t(file.size()), 1024 + (lnfb + C) * 4);
  const struct { const char* name; int64_t offset, count; } spots[] = {
      {"wte", wte, Vp * C},
      {"wpe", wpe, maxT * C},
      {"h.1.ln_1.bias", ln1b + C, C},
      {"h.0.attn.c_attn.weight", qkvw, 3 * C * C},
      {"h.1.attn.c_attn.bias", qkvb + 3 * C, 3 * C},
      {"h.1.attn.c_proj.weight", attprojw + C * C, C * C},
      {"h.1.ln_2.weight", ln2w + C, C},
      {"h.0.ln_2.bias", ln2b, C},
      {"h.1.mlp.c_fc.weight", fcw + 4 * C * C, 4 * C * C},
      {"h.0.mlp.c_fc.bias", fcb, 4 * C},
      {"h.1.mlp.c_proj.weight", fcprojw + C * 4 * C, C * 4 * C},
      {"h.1.mlp.c_proj.bias", fcprojb + C, C},
      {"ln_f.weight", lnfw, C},
      {"ln_f.bias", lnfb, C},
  };
  for (const auto& spot : spots) {
    const int index = model.params().find(spot.name);
    ASSERT_GE(index, 0) << spot.name;
    const engine::Tensor& t = model.params().param(index).var.value;
    ASSERT_EQ(t.numel(), spot.count) << spot.name;
    EXPECT_EQ(std::memcmp(t.data, &file[1024 + spot.offset * 4], spot.count * 4), 0) << spot.name;
  }
}

TEST(LlmcCheckpoint, SaveLoadRoundtripIsBitwise) {
  GPT2Config c = gpt2_preset("tiny");
  c.num_layers = 2;  // keeps the file small; the mapping is per layer either way
  GPT2 a(c);
  a.init(7);
  const std::string path = temp_path("roundtrip.bin");
  save_llmc_checkpoint(path, a);
  GPT2 b(c);
  b.init(8);  // different values, so a load that did nothing would fail
  ASSERT_NE(all_values(a), all_values(b));
  load_llmc_checkpoint(path, b);
  EXPECT_EQ(all_values(a), all_values(b));
  std::remove(path.c_str());
  EXPECT_NE(access((path + ".tmp").c_str(), F_OK), 0) << "the temporary file was left behind";
}

TEST(LlmcCheckpoint, StageStoreLoadsItsPart) {
  const GPT2Config c = small_config();
  GPT2 whole(c);
  load_llmc_checkpoint(testing::kSmallCheckpoint, whole);
  // A store holding only block 1 and the final norm, as a last pipeline stage might.
  engine::ParamStore stage;
  const BlockParams block = declare_block(stage, block_prefix(1), c);
  const FinalNormParams norm = declare_final_norm(stage, c);
  stage.allocate();
  expect_refused([&] { load_llmc_checkpoint(testing::kSmallCheckpoint, stage, c, false); },
                 testing::kSmallCheckpoint, {"no parameter 'wte'"});
  EXPECT_EQ(load_llmc_checkpoint(testing::kSmallCheckpoint, stage, c, true), 12 + 2);
  const engine::Tensor& mine = stage.param(block.fc_w).var.value;
  const engine::Tensor& ref = whole.params().var(whole.blocks()[1].fc_w).value;
  EXPECT_EQ(std::memcmp(mine.data, ref.data, ref.nbytes()), 0);
  EXPECT_EQ(std::memcmp(stage.var(norm.lnf_b).value.data, whole.params().var(whole.final_norm().lnf_b).value.data,
                        c.channels * 4),
            0);
}

// ---- refused files. Each starts from the good file's bytes and breaks one thing.

class BadCheckpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    good_ = read_bytes(testing::kSmallCheckpoint);
    path_ = temp_path(::testing::UnitTest::GetInstance()->current_test_info()->name());
    model_ = std::make_unique<GPT2>(small_config());
    model_->init(3);
    before_ = all_values(*model_);
  }
  void TearDown() override {
    // Whatever the failure, the model's weights must not have changed.
    EXPECT_EQ(all_values(*model_), before_) << "a refused load modified the model";
    std::remove(path_.c_str());
  }
  void set_int(std::vector<char>& bytes, int index, int32_t value) { std::memcpy(&bytes[index * 4], &value, 4); }
  void expect_load_refused(const std::vector<char>& bytes, std::vector<std::string> parts) {
    write_bytes(path_, bytes);
    expect_refused([&] { load_llmc_checkpoint(path_, *model_); }, path_, parts);
  }

  std::vector<char> good_;
  std::string path_;
  std::unique_ptr<GPT2> model_;
  std::vector<char> before_;
};

TEST_F(BadCheckpoint, MissingFile) {
  expect_refused([&] { load_llmc_checkpoint(path_, *model_); }, path_, {"cannot open"});
}

TEST_F(BadCheckpoint, EmptyFile) { expect_load_refused({}, {"truncated header", "0 bytes"}); }

TEST_F(BadCheckpoint, TruncatedHeader) {
  expect_load_refused(std::vector<char>(good_.begin(), good_.begin() + 600), {"truncated header", "600 bytes"});
}

TEST_F(BadCheckpoint, WrongMagic) {
  std::vector<char> bytes = good_;
  set_int(bytes, 0, 20240520);  // a token shard's magic
  expect_load_refused(bytes, {"bad magic 20240520", "expected 20240326"});
}

TEST_F(BadCheckpoint, WrongVersion) {
  std::vector<char> bytes = good_;
  set_int(bytes, 1, 5);  // llm.c's bf16 model files
  expect_load_refused(bytes, {"unsupported version 5", "expected 3"});
  set_int(bytes, 1, 1);
  expect_load_refused(bytes, {"unsupported version 1"});
}

TEST_F(BadCheckpoint, HeaderDescribesNoValidModel) {
  std::vector<char> bytes = good_;
  set_int(bytes, 5, 3);  // NH = 3 does not divide C = 64
  expect_load_refused(bytes, {"header describes no valid model", "multiple of num_heads"});
  bytes = good_;
  set_int(bytes, 7, 499);  // Vp < V
  expect_load_refused(bytes, {"padded_vocab_size must be >= vocab_size"});
  bytes = good_;
  set_int(bytes, 4, -2);
  expect_load_refused(bytes, {"num_layers must be positive"});
}

TEST_F(BadCheckpoint, TruncatedParameters) {
  const size_t size = good_.size() - 4;  // one float short
  expect_load_refused(std::vector<char>(good_.begin(), good_.begin() + size),
                      {"truncated", std::to_string(size) + " bytes, expected " + std::to_string(good_.size())});
}

TEST_F(BadCheckpoint, TrailingData) {
  std::vector<char> bytes = good_;
  bytes.resize(bytes.size() + 8, 0);
  expect_load_refused(bytes, {"trailing data"});
}

TEST_F(BadCheckpoint, HeaderSizeMismatchWithData) {
  // A header claiming one more layer than the data holds: caught as a size mismatch, never read past the end.
  std::vector<char> bytes = good_;
  set_int(bytes, 4, 3);
  expect_load_refused(bytes, {"truncated", "L=3"});
}

TEST_F(BadCheckpoint, ModelConfigDiffers) {
  GPT2Config other = small_config();
  other.num_layers = 1;
  GPT2 model(other);
  write_bytes(path_, good_);
  expect_refused([&] { load_llmc_checkpoint(path_, model); }, path_, {"L=2", "expected L=1"});
}

TEST_F(BadCheckpoint, NonFiniteValue) {
  std::vector<char> bytes = good_;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(&bytes[bytes.size() - 4], &nan, 4);  // last element of ln_f.bias
  expect_load_refused(bytes, {"tensor 'ln_f.bias'", "not finite"});
}

TEST(LlmcCheckpointSave, UnwritableDirectoryIsAnError) {
  GPT2 model(small_config());
  const std::string path = "/nonexistent-dir/model.bin";
  expect_refused([&] { save_llmc_checkpoint(path, model); }, path, {"cannot open", "for writing"});
}

TEST(LlmcCheckpointSave, IncompleteStoreIsAnError) {
  const GPT2Config c = small_config();
  engine::ParamStore store;
  declare_embeddings(store, c);
  store.allocate();
  const std::string path = temp_path("incomplete.bin");
  expect_refused([&] { save_llmc_checkpoint(path, store, c); }, path, {"no parameter 'h.0.ln_1.weight'"});
  EXPECT_NE(access(path.c_str(), F_OK), 0) << "a refused save created the file";
}

}  // namespace
}  // namespace resbm
