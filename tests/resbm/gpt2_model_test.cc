// tests/resbm/gpt2_model_test.cc: the composable pieces rebuild the whole model exactly; bad inputs are refused.
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "engine/device.h"
#include "engine/memory.h"
#include "engine/ops.h"
#include "resbm/gpt2.h"
#include "tests/resbm/gpt2_fixture.h"

namespace resbm {
namespace {

GPT2Config small() {
  GPT2Config c;
  c.num_layers = 2;
  c.num_heads = 2;
  c.channels = 32;
  c.max_seq_len = 16;
  c.vocab_size = 100;
  c.padded_vocab_size = padded_vocab_size(100);
  return c;
}

std::vector<int32_t> ids(int n, int vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> v(n);
  for (int32_t& x : v) x = static_cast<int32_t>(rng.next_u64() % vocab);
  return v;
}

class GPT2ModelTest : public ::testing::Test {
 protected:
  const GPT2Config c_ = small();
  const int B_ = 2, T_ = 8;
  engine::DeviceContext device_{engine::Device::cpu, 2};
  engine::Arena arena_{"ids", 1 << 14};
  engine::Tensor tokens_ = testing::make_ids(arena_, ids(B_ * T_, c_.vocab_size, 1), B_, T_);
  engine::Tensor targets_ = testing::make_ids(arena_, ids(B_ * T_, c_.vocab_size, 2), B_, T_);
};

TEST_F(GPT2ModelTest, PiecesInAnotherStoreGiveTheSameLossAndGradients) {
  GPT2 whole(c_);
  whole.init(11);
  engine::Graph g1(device_.ctx(), engine::Device::cpu, whole.activation_bytes(B_, T_));
  engine::Var loss1 = whole.forward(g1, tokens_, targets_);
  g1.backward(loss1);

  // The same model from the pieces, declared block by block (not in llm.c's order), with the attention half and
  // the MLP branch called separately for block 1, as a pipeline stage or the fused ResBM layout would.
  engine::ParamStore store;
  const EmbeddingParams emb = declare_embeddings(store, c_);
  std::vector<BlockParams> blocks;
  for (int l = 0; l < c_.num_layers; ++l) blocks.push_back(declare_block(store, block_prefix(l), c_));
  const FinalNormParams norm = declare_final_norm(store, c_);
  store.allocate();
  init_embeddings(store, emb, c_, 11);
  for (const BlockParams& b : blocks) init_block(store, b, c_, 11);
  init_final_norm(store, norm);

  engine::Graph g2(device_.ctx(), engine::Device::cpu, whole.activation_bytes(B_, T_));
  engine::Var x = embed_forward(g2, store, emb, tokens_);
  x = block_forward(g2, store, blocks[0], x, c_);
  engine::Var r2 = block_attention_forward(g2, store, blocks[1], x, c_);
  x = engine::add(g2, r2, block_mlp_branch(g2, store, blocks[1], r2));
  engine::Var logits;
  engine::Var loss2 = head_loss(g2, store, norm, emb.wte, x, targets_, c_, &logits);
  g2.backward(loss2);

  // Same arithmetic in the same order: bitwise equal.
  EXPECT_EQ(loss1.value.f32()[0], loss2.value.f32()[0]);
  ASSERT_EQ(logits.value.numel(), whole.logits().value.numel());
  EXPECT_EQ(std::memcmp(logits.value.data, whole.logits().value.data, logits.value.nbytes()), 0);
  for (const engine::Param& p : whole.params().params()) {
    const int i = store.find(p.name);
    ASSERT_GE(i, 0) << p.name;
    EXPECT_EQ(std::memcmp(store.param(i).var.grad.data, p.var.grad.data, p.var.grad.nbytes()), 0) << p.name;
  }
}

TEST_F(GPT2ModelTest, ForwardLogitsMatchesTheLossPath) {
  GPT2 model(c_);
  model.init(3);
  engine::Graph g(device_.ctx(), engine::Device::cpu, model.activation_bytes(B_, T_));
  model.forward(g, tokens_, targets_);
  std::vector<float> with_loss(static_cast<const float*>(model.logits().value.data),
                               static_cast<const float*>(model.logits().value.data) + model.logits().value.numel());
  g.reset();
  engine::Var logits = model.forward_logits(g, tokens_);
  ASSERT_EQ(logits.value.ndim, 3);
  EXPECT_EQ(logits.value.dim(2), c_.padded_vocab_size);
  EXPECT_EQ(std::memcmp(logits.value.data, with_loss.data(), with_loss.size() * 4), 0);
}

TEST_F(GPT2ModelTest, BadInputsAreRefusedWithAClearMessage) {
  GPT2 model(c_);
  model.init(3);
  engine::Graph g(device_.ctx(), engine::Device::cpu, model.activation_bytes(B_, c_.max_seq_len));
  auto expect_message = [&](auto fn, const std::string& part) {
    try {
      fn();
      ADD_FAILURE() << "no error, expected one saying '" << part << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
    }
    g.reset();
  };
  std::vector<int32_t> bad = ids(B_ * T_, c_.vocab_size, 4);
  bad[5] = c_.vocab_size;  // a padding row id: not a real token
  const engine::Tensor bad_tokens = testing::make_ids(arena_, bad, B_, T_);
  expect_message([&] { model.forward(g, bad_tokens, targets_); }, "tokens[5] = 100 is outside the vocabulary");
  expect_message([&] { model.forward(g, tokens_, bad_tokens); }, "targets[5] = 100 is outside the vocabulary");
  const int long_T = c_.max_seq_len + 1;
  const engine::Tensor too_long = testing::make_ids(arena_, ids(long_T, c_.vocab_size, 5), 1, long_T);
  expect_message([&] { model.forward_logits(g, too_long); }, "exceeds max_seq_len=16");
  expect_message([&] { model.forward(g, tokens_, too_long); }, "must have the shape of tokens");
  GPT2Config odd = c_;
  odd.num_heads = 5;
  EXPECT_THROW(GPT2{odd}, std::invalid_argument);
}

}  // namespace
}  // namespace resbm
