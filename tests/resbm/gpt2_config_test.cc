// tests/resbm/gpt2_config_test.cc: presets, config validation, parameter counts and the llm.c layout.
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "resbm/gpt2.h"

namespace resbm {
namespace {

TEST(GPT2Config, PresetsHaveGPT2Shapes) {
  // OpenAI's GPT-2 family: (L, NH, C) = (12, 12, 768), (24, 16, 1024), (36, 20, 1280), (48, 25, 1600).
  const struct { const char* name; int L, NH, C; } expected[] = {
      {"d12", 12, 12, 768}, {"d24", 24, 16, 1024}, {"d36", 36, 20, 1280}, {"d48", 48, 25, 1600}};
  for (const auto& e : expected) {
    const GPT2Config c = gpt2_preset(e.name);
    EXPECT_EQ(c.num_layers, e.L) << e.name;
    EXPECT_EQ(c.num_heads, e.NH) << e.name;
    EXPECT_EQ(c.channels, e.C) << e.name;
    EXPECT_EQ(c.max_seq_len, 1024) << e.name;
    EXPECT_EQ(c.vocab_size, 50257) << e.name;
    EXPECT_EQ(c.padded_vocab_size, 50304) << e.name;
    EXPECT_NO_THROW(validate_config(c));
  }
  const GPT2Config tiny = gpt2_preset("tiny");
  EXPECT_EQ(tiny.vocab_size, 50257);  // real tokenised data works with it
  EXPECT_NO_THROW(validate_config(tiny));
}

TEST(GPT2Config, UnknownPresetListsTheValidOnes) {
  try {
    gpt2_preset("d13");
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'d13'"), std::string::npos) << msg;
    for (const std::string& name : gpt2_preset_names()) EXPECT_NE(msg.find(name), std::string::npos) << msg;
  }
}

TEST(GPT2Config, PaddedVocabRoundsUpTo128) {
  EXPECT_EQ(padded_vocab_size(50257), 50304);  // 393 * 128
  EXPECT_EQ(padded_vocab_size(512), 512);
  EXPECT_EQ(padded_vocab_size(1), 128);
  EXPECT_EQ(padded_vocab_size(500, 64), 512);
}

TEST(GPT2Config, ValidationSaysWhatIsWrong) {
  GPT2Config c = gpt2_preset("tiny");
  c.num_heads = 3;
  EXPECT_THROW(validate_config(c), std::invalid_argument);
  try {
    validate_config(c);
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("multiple of num_heads"), std::string::npos) << e.what();
  }
  c = gpt2_preset("tiny");
  c.padded_vocab_size = c.vocab_size - 1;
  EXPECT_THROW(validate_config(c), std::invalid_argument);
  c = gpt2_preset("tiny");
  c.num_layers = 0;
  EXPECT_THROW(validate_config(c), std::invalid_argument);
  c = gpt2_preset("tiny");
  c.max_seq_len = -1;
  EXPECT_THROW(validate_config(c), std::invalid_argument);
}

TEST(GPT2Config, GPT2SmallHasLlmcParameterCount) {
  // llm.c reports 124,475,904 parameters for GPT-2 124M with the vocabulary padded to 50304 (HuggingFace's
  // 124,439,808 plus 47 padding rows of 768).
  EXPECT_EQ(gpt2_num_parameters(gpt2_preset("d12")), 124475904);
  EXPECT_EQ(gpt2_num_parameters(gpt2_preset("d12")), 124439808 + 47 * 768);
}

TEST(GPT2Config, LlmcLayoutOrderAndSizes) {
  GPT2Config c = gpt2_preset("tiny");
  const auto layout = gpt2_llmc_layout(c);
  const int L = c.num_layers;
  ASSERT_EQ(layout.size(), size_t(2 + 12 * L + 2));
  EXPECT_EQ(layout[0].name, "wte");
  EXPECT_EQ(layout[1].name, "wpe");
  // llm.c stacks each block tensor over layers: all ln_1.weight first, then all ln_1.bias, ...
  EXPECT_EQ(layout[2].name, "h.0.ln_1.weight");
  EXPECT_EQ(layout[2 + L - 1].name, "h." + std::to_string(L - 1) + ".ln_1.weight");
  EXPECT_EQ(layout[2 + L].name, "h.0.ln_1.bias");
  EXPECT_EQ(layout[2 + 4 * L].name, "h.0.attn.c_proj.weight");
  EXPECT_EQ(layout[2 + 10 * L].name, "h.0.mlp.c_proj.weight");
  EXPECT_EQ(layout[2 + 10 * L].shape, (std::vector<int64_t>{c.channels, 4 * c.channels}));
  EXPECT_EQ(layout[2 + 12 * L].name, "ln_f.weight");
  int64_t total = 0;
  for (const NamedShape& s : layout) total += s.numel();
  EXPECT_EQ(total, gpt2_num_parameters(c));
}

}  // namespace
}  // namespace resbm
