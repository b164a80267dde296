// train/sample.h: text generation: a seeded top-k / temperature token sampler and the generation loop over a
// Backend's next-token logits, decoded with the GPT-2 tokenizer.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "train/backend.h"

namespace train {

// Draws a token from logits: softmax(logits / temperature) restricted to the top_k largest (0: all). Only the V
// real classes are considered (the padded columns are not tokens). Buffers are sized once; sample() allocates
// nothing. Deterministic in its seed.
class TokenSampler {
 public:
  TokenSampler(int vocab_size, uint64_t seed);
  int32_t sample(const float* logits, float temperature, int top_k);
  double uniform();  // [0, 1), the sampler's stream (splitmix64)

 private:
  int V_;
  uint64_t state_;
  std::vector<int32_t> order_;
  std::vector<double> probs_;
};

struct SampleOptions {
  int length = 64;
  float temperature = 1.0f;
  int top_k = 40;
  uint64_t seed = 0;  // the caller derives it from (--seed, step), so that a resumed run samples the same text
  int max_context = 64;  // T: the window the model sees (the last T tokens)
  int32_t start_token = data::Tokenizer::kEndOfText;  // the context of an empty prompt ('\n' for byte tokens)
};

// Continues prompt_ids (empty: options.start_token) by options.length tokens; returns only the new tokens.
std::vector<int32_t> generate(Backend& backend, const std::vector<int32_t>& prompt_ids, int vocab_size,
                              const SampleOptions& options);

// The prompt encoded (empty -> {}), and generated ids decoded. byte_tokens (--tokenizer bytes): one id per byte,
// no tokenizer needed. Otherwise GPT-2 BPE; a missing tokenizer prints ids instead of text.
std::vector<int32_t> encode_prompt(const data::Tokenizer* tokenizer, bool byte_tokens, const std::string& prompt);
std::string decode_tokens(const data::Tokenizer* tokenizer, bool byte_tokens, const std::vector<int32_t>& ids);

}  // namespace train
