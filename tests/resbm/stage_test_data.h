// tests/resbm/stage_test_data.h: a small model and (B,T) batches of token ids and targets for the stage-model tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "engine/tensor.h"
#include "resbm/gpt2.h"

namespace resbm_test {

// Small enough that every table is a few KiB: V = 64 (Vp = 128), C = 32, L = 3 blocks (one per stage at S = 3).
inline resbm::GPT2Config small_config() {
  resbm::GPT2Config c;
  c.max_seq_len = 16;
  c.vocab_size = 64;
  c.padded_vocab_size = 128;
  c.num_layers = 3;
  c.num_heads = 2;
  c.channels = 32;
  return c;
}

struct TokenBatch {
  std::vector<int32_t> tok, tgt;
  engine::Tensor tokens, targets;  // (B,T) i32 views of tok and tgt
  // Ids uniform in [0, max_token) from mt19937(seed); targets (5 tok + 3) mod 64, a map a small model can learn.
  TokenBatch(int B, int T, uint32_t seed, int max_token) : tok(B * T), tgt(B * T) {
    std::mt19937 rng(seed);
    for (size_t i = 0; i < tok.size(); ++i) {
      tok[i] = static_cast<int32_t>(rng() % static_cast<uint32_t>(max_token));
      tgt[i] = (tok[i] * 5 + 3) % 64;
    }
    tokens = view(tok, B, T);
    targets = view(tgt, B, T);
  }
  TokenBatch(const TokenBatch&) = delete;  // the views point into this object's vectors
  TokenBatch& operator=(const TokenBatch&) = delete;

  static engine::Tensor view(std::vector<int32_t>& v, int rows, int T) {
    engine::Tensor t;
    t.data = v.data();
    t.ndim = 2;
    t.shape[0] = rows;
    t.shape[1] = T;
    t.dtype = engine::DType::i32;
    return t;
  }
};

}  // namespace resbm_test
