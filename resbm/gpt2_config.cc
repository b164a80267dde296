// resbm/gpt2_config.cc: GPT-2 configuration presets, validation and sizes.
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "resbm/gpt2.h"

namespace resbm {
namespace {

struct Preset {
  const char* name;
  int max_seq_len, num_layers, num_heads, channels;
};

// The GPT-2 family (OpenAI's sizes) plus a tiny model whose CPU step takes milliseconds. All keep the real GPT-2
// vocabulary so that tokenised data works unchanged.
constexpr Preset kPresets[] = {
    {"tiny", 256, 4, 4, 128},
    {"d12", 1024, 12, 12, 768},   // GPT-2 124M
    {"d24", 1024, 24, 16, 1024},  // GPT-2 350M
    {"d36", 1024, 36, 20, 1280},  // GPT-2 774M
    {"d48", 1024, 48, 25, 1600},  // GPT-2 1558M
};

}  // namespace

int padded_vocab_size(int vocab_size, int multiple) {
  return (vocab_size + multiple - 1) / multiple * multiple;
}

std::vector<std::string> gpt2_preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.emplace_back(p.name);
  return names;
}

GPT2Config gpt2_preset(const std::string& name) {
  for (const Preset& p : kPresets) {
    if (name == p.name) {
      GPT2Config c;
      c.max_seq_len = p.max_seq_len;
      c.vocab_size = 50257;
      c.padded_vocab_size = padded_vocab_size(c.vocab_size);
      c.num_layers = p.num_layers;
      c.num_heads = p.num_heads;
      c.channels = p.channels;
      return c;
    }
  }
  std::string valid;
  for (const std::string& n : gpt2_preset_names()) valid += (valid.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown GPT-2 preset '" + name + "' (valid presets: " + valid + ")");
}

std::string describe_config(const GPT2Config& c) {
  std::ostringstream s;
  s << "L=" << c.num_layers << " NH=" << c.num_heads << " C=" << c.channels << " maxT=" << c.max_seq_len
    << " V=" << c.vocab_size << " Vp=" << c.padded_vocab_size;
  return s.str();
}

void validate_config(const GPT2Config& c) {
  auto fail = [&](const std::string& why) {
    throw std::invalid_argument("invalid GPT-2 config (" + describe_config(c) + "): " + why);
  };
  if (c.num_layers <= 0) fail("num_layers must be positive");
  if (c.num_heads <= 0) fail("num_heads must be positive");
  if (c.channels <= 0) fail("channels must be positive");
  if (c.channels % c.num_heads != 0) fail("channels must be a multiple of num_heads (head size C / NH)");
  if (c.max_seq_len <= 0) fail("max_seq_len must be positive");
  if (c.vocab_size <= 0) fail("vocab_size must be positive");
  if (c.padded_vocab_size < c.vocab_size) fail("padded_vocab_size must be >= vocab_size");
}

int64_t gpt2_num_parameters(const GPT2Config& c) {
  const int64_t C = c.channels, L = c.num_layers;
  const int64_t per_block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) +
                            (4 * C * C + C);
  return int64_t{c.padded_vocab_size} * C + int64_t{c.max_seq_len} * C + L * per_block + 2 * C;
}

size_t gpt2_activation_bytes(const GPT2Config& c, int B, int T, int num_layers, bool with_embed, bool with_head) {
  const size_t BT = size_t(B) * T, C = c.channels, NH = c.num_heads, Vp = c.padded_vocab_size;
  // Per block, values: ln1 (BTC) + mean/rstd (2BT), qkv (3BTC), attention out (BTC) + probabilities (B NH T T),
  // projection (BTC), residual (BTC), ln2 (BTC + 2BT), fc (4BTC), gelu (4BTC), fc_proj (BTC), residual (BTC).
  // The gradient arena holds the same activations' gradients plus attention's scratch (B NH T T).
  size_t floats = size_t(num_layers) * (16 * BT * C + 4 * BT + 2 * size_t(B) * NH * T * T);
  size_t tensors = size_t(num_layers) * 14;
  if (with_embed) floats += BT * C, tensors += 1;
  // Head: ln_f (BTC + 2BT), logits and probabilities (2 BT Vp), losses (BT), the loss.
  if (with_head) floats += BT * C + 2 * BT + 2 * BT * Vp + BT + 1, tensors += 8;
  // 256 bytes of alignment slack per tensor (CUDA aligns to 256), 10% and 1 MiB of margin for ops that save a
  // little more than counted here.
  return floats * sizeof(float) * 11 / 10 + tensors * 256 + (size_t(1) << 20);
}

engine::ArenaBytes gpt2_arena_bytes(const GPT2Config& c, int B, int T, int num_layers, bool with_embed, bool with_head,
                                    engine::Precision precision) {
  if (precision == engine::Precision::fp32) {
    const size_t each = gpt2_activation_bytes(c, B, T, num_layers, with_embed, with_head);
    return {each, each};
  }
  const size_t BT = size_t(B) * T, C = c.channels, NH = c.num_heads, Vp = c.padded_vocab_size;
  constexpr size_t kHalf = 2, kFloat = 4;
  // Per block, values: the same 16 BTC activations as fp32 (ln1, qkv 3, attention out, projection, residual, ln2,
  // fc 4, gelu 4, fc_proj, residual) in bf16; fp32 statistics: the two layernorms' mean/rstd (4BT) and flash
  // attention's log-sum-exp (B NH T). Gradients: the 16 BTC activations' gradients, bf16.
  size_t values = size_t(num_layers) * (16 * BT * C * kHalf + (4 * BT + size_t(B) * NH * T) * kFloat);
  size_t gradients = size_t(num_layers) * 16 * BT * C * kHalf;
  size_t tensors = size_t(num_layers) * 15;
  if (with_embed) values += BT * C * kHalf, gradients += BT * C * kHalf, tensors += 1;
  if (with_head) {
    // ln_f (BTC bf16 + 2BT fp32), the logits and the cross-entropy's working copy of them (2 BT Vp bf16), the
    // losses and their backward recomputation (2BT fp32), the loss; gradients: ln_f's, the logits', the loss's.
    values += BT * C * kHalf + 2 * BT * kFloat + 2 * BT * Vp * kHalf + 2 * BT * kFloat + kFloat;
    gradients += BT * C * kHalf + BT * Vp * kHalf + kFloat;
    tensors += 8;
  }
  // The same margins as fp32: 10%, 256 bytes of alignment per tensor, 1 MiB.
  const size_t slack = tensors * 256 + (size_t(1) << 20);
  return {values * 11 / 10 + slack, gradients * 11 / 10 + slack};
}

}  // namespace resbm
