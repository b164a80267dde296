// train/sample.cc: top-k sampling and the generation loop.
#include "train/sample.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace train {

TokenSampler::TokenSampler(int vocab_size, uint64_t seed)
    : V_(vocab_size), state_(seed), order_(static_cast<size_t>(vocab_size)), probs_(static_cast<size_t>(vocab_size)) {}

double TokenSampler::uniform() {
  // splitmix64: tiny, stateless apart from one word, identical on every platform.
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);  // 53 bits
}

int32_t TokenSampler::sample(const float* logits, float temperature, int top_k) {
  const int k = (top_k <= 0 || top_k > V_) ? V_ : top_k;
  for (int i = 0; i < V_; ++i) order_[i] = i;
  // Largest k logits first; ties broken by the lower id so the order is fully determined.
  auto by_logit = [logits](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::partial_sort(order_.begin(), order_.begin() + k, order_.end(), by_logit);
  const double top = logits[order_[0]];
  double total = 0.0;
  for (int i = 0; i < k; ++i) {
    probs_[i] = std::exp((logits[order_[i]] - top) / static_cast<double>(temperature));
    total += probs_[i];
  }
  double u = uniform() * total;
  for (int i = 0; i < k; ++i) {
    u -= probs_[i];
    if (u < 0.0) return order_[i];
  }
  return order_[k - 1];  // u landed on the rounding slack at the end
}

std::vector<int32_t> generate(Backend& backend, const std::vector<int32_t>& prompt_ids, int vocab_size,
                              const SampleOptions& options) {
  std::vector<int32_t> context = prompt_ids;
  if (context.empty()) context.push_back(options.start_token);
  TokenSampler sampler(vocab_size, options.seed);
  std::vector<int32_t> out;
  for (int i = 0; i < options.length; ++i) {
    const int len = std::min(static_cast<int>(context.size()), options.max_context);
    // The last stage's process draws the token; it goes round to every process (the next prompt enters stage 0).
    const float* logits = backend.next_token_logits(context.data() + context.size() - len, len);
    const int32_t drawn = logits != nullptr ? sampler.sample(logits, options.temperature, options.top_k) : 0;
    const int32_t next = static_cast<int32_t>(backend.from_last_stage(drawn));
    context.push_back(next);
    out.push_back(next);
  }
  return out;
}

std::vector<int32_t> encode_prompt(const data::Tokenizer* tokenizer, bool byte_tokens, const std::string& prompt) {
  if (prompt.empty()) return {};
  if (byte_tokens) {
    std::vector<int32_t> ids;
    for (char c : prompt) ids.push_back(static_cast<unsigned char>(c));
    return ids;
  }
  if (tokenizer == nullptr) {
    throw std::runtime_error("--prompt needs the GPT-2 tokenizer files (encoder.json, vocab.bpe): give --data-mirror");
  }
  return tokenizer->encode(prompt);
}

std::string decode_tokens(const data::Tokenizer* tokenizer, bool byte_tokens, const std::vector<int32_t>& ids) {
  if (byte_tokens) {
    std::string text;
    for (int32_t id : ids) text.push_back(static_cast<char>(id));  // ids are < 256 (the model's vocabulary)
    return text;
  }
  if (tokenizer != nullptr) return tokenizer->decode(ids);
  std::string out;
  for (int32_t id : ids) out += std::to_string(id) + " ";
  return out;
}

}  // namespace train
