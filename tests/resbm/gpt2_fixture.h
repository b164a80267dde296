// tests/resbm/gpt2_fixture.h: reads the PyTorch oracle's reference tensors (tools/reference/gpt2_oracle.py) and
// small helpers the GPT-2 tests share (a CPU device, token tensors, error metrics).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/memory.h"
#include "engine/tensor.h"
#include "resbm/gpt2.h"

namespace resbm::testing {

constexpr const char* kSmallCheckpoint = "tests/resbm/testdata/gpt2_small_ckpt.bin";
constexpr const char* kSmallFixture = "tests/resbm/testdata/gpt2_small_fixture.bin";

inline std::vector<char> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path + " (run from the workspace root or through bazel test)");
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// The fixture's layout is documented in tools/reference/gpt2_oracle.py.
struct OracleFixture {
  int B = 0, T = 0, steps = 0;
  GPT2Config config;
  float lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  std::vector<int32_t> inputs, targets;  // (B*T)
  std::vector<float> logits;             // (B*T*Vp)
  float loss = 0;
  std::vector<float> grads;   // every parameter gradient, llm.c's order (gpt2_llmc_layout)
  std::vector<float> losses;  // (steps) loss before each AdamW step
};

inline OracleFixture read_fixture(const std::string& path) {
  const std::vector<char> bytes = read_bytes(path);
  size_t pos = 0;
  auto take = [&](void* dst, size_t n) {
    if (pos + n > bytes.size()) throw std::runtime_error(path + ": truncated fixture");
    std::memcpy(dst, bytes.data() + pos, n);
    pos += n;
  };
  int32_t h[256];
  take(h, sizeof(h));
  if (h[0] != 20261126 || h[1] != 1) throw std::runtime_error(path + ": not a version-1 GPT-2 oracle fixture");
  OracleFixture fx;
  fx.B = h[2], fx.T = h[3], fx.steps = h[4];
  fx.config.max_seq_len = h[5], fx.config.vocab_size = h[6], fx.config.num_layers = h[7];
  fx.config.num_heads = h[8], fx.config.channels = h[9], fx.config.padded_vocab_size = h[10];
  const int64_t num_params = h[11];
  float hyper[16];
  take(hyper, sizeof(hyper));
  fx.lr = hyper[0], fx.beta1 = hyper[1], fx.beta2 = hyper[2], fx.eps = hyper[3], fx.weight_decay = hyper[4];
  const size_t BT = size_t(fx.B) * fx.T;
  fx.inputs.resize(BT);
  fx.targets.resize(BT);
  fx.logits.resize(BT * fx.config.padded_vocab_size);
  fx.grads.resize(num_params);
  fx.losses.resize(fx.steps);
  take(fx.inputs.data(), BT * 4);
  take(fx.targets.data(), BT * 4);
  take(fx.logits.data(), fx.logits.size() * 4);
  take(&fx.loss, 4);
  take(fx.grads.data(), fx.grads.size() * 4);
  take(fx.losses.data(), fx.losses.size() * 4);
  if (pos != bytes.size()) throw std::runtime_error(path + ": trailing bytes after the fixture");
  return fx;
}

// A (B,T) i32 tensor in `arena` holding ids.
inline engine::Tensor make_ids(engine::Arena& arena, const std::vector<int32_t>& ids, int B, int T) {
  engine::Tensor t = arena.alloc({B, T}, engine::DType::i32);
  std::memcpy(t.data, ids.data(), ids.size() * sizeof(int32_t));
  return t;
}

// max |a - b| / max |b|: the error relative to the tensor's scale. An elementwise relative error would blow up on
// entries that are near zero by cancellation, where fp32 can only be accurate relative to the whole tensor.
inline double scaled_max_error(const float* a, const float* b, size_t n) {
  double max_diff = 0, max_ref = 0;
  for (size_t i = 0; i < n; ++i) {
    max_diff = std::fmax(max_diff, std::fabs(double(a[i]) - double(b[i])));
    max_ref = std::fmax(max_ref, std::fabs(double(b[i])));
  }
  return max_ref > 0 ? max_diff / max_ref : max_diff;
}

}  // namespace resbm::testing
