// tests/train/sample_test.cc: the top-k sampler's distribution, and next-token logits rebuilt through the stages
// (train/stage_logits) agreeing with the pipeline executor's own loss for S = 1, 2, 3 and each code dtype.
#include "train/sample.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "engine/device.h"
#include "train/backend.h"
#include "train/run_config.h"

namespace train {
namespace {

TEST(TokenSampler, TopOneIsArgmaxAndTopKNeverLeavesTheTopK) {
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 1.5f, 1.9f, 0.0f};
  TokenSampler sampler(6, 42);
  for (int i = 0; i < 100; ++i) ASSERT_EQ(sampler.sample(logits.data(), 1.0f, 1), 1);
  for (int i = 0; i < 1000; ++i) {
    const int t = sampler.sample(logits.data(), 5.0f, 3);  // hot: all three likely, none else allowed
    ASSERT_TRUE(t == 1 || t == 4 || t == 3) << t;
  }
}

TEST(TokenSampler, FrequenciesFollowSoftmaxOverTemperature) {
  const std::vector<float> logits = {0.0f, 1.0f, 2.0f};
  const float temperature = 2.0f;
  TokenSampler sampler(3, 7);
  std::vector<int> counts(3, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) counts[sampler.sample(logits.data(), temperature, 0)]++;
  double z = 0.0;
  for (float l : logits) z += std::exp(l / temperature);
  for (int k = 0; k < 3; ++k) {
    const double p = std::exp(logits[k] / temperature) / z;
    // 5 standard deviations of a binomial frequency: fails by chance with probability ~1e-6.
    EXPECT_NEAR(counts[k] / static_cast<double>(n), p, 5.0 * std::sqrt(p * (1 - p) / n)) << "token " << k;
  }
}

TEST(TokenSampler, SameSeedSameStream) {
  const std::vector<float> logits = {0.3f, 0.2f, 0.1f, 0.4f};
  TokenSampler a(4, 99), b(4, 99), c(4, 100);
  int differ = 0;
  for (int i = 0; i < 200; ++i) {
    const int x = a.sample(logits.data(), 1.0f, 0);
    ASSERT_EQ(x, b.sample(logits.data(), 1.0f, 0));
    differ += x != c.sample(logits.data(), 1.0f, 0);
  }
  EXPECT_GT(differ, 0) << "another seed must give another stream";
}

// Mean cross-entropy over positions of a (1, T) sequence computed from next_token_logits of every prefix equals the
// executor's evaluate() of the same sequence: the rebuilt last stage computes what training computes.
void expect_logits_match_executor(const std::vector<std::string>& extra_flags) {
  std::vector<std::string> args = {"--num-layers", "3", "--channels", "32", "--num-heads", "2", "--batch-size", "1",
                                   "--seq-len", "12", "--ratio", "4", "--seed", "5"};
  args.insert(args.end(), extra_flags.begin(), extra_flags.end());
  const RunConfig config = make_run_config(parse_flags(args));
  engine::DeviceContext device(engine::Device::cpu);
  std::unique_ptr<Backend> backend = make_backend(config, device.ctx());
  const int T = 12, V = config.model.vocab_size;
  std::vector<int32_t> seq(T + 1);
  for (int i = 0; i <= T; ++i) seq[i] = (i * 7919 + 13) % V;
  // A few training steps first, so that zero-initialised branches (the ResBM decoders) are no longer zero.
  engine::Tensor tokens, targets;
  tokens.data = seq.data();
  tokens.ndim = targets.ndim = 2;
  tokens.shape[0] = targets.shape[0] = 1;
  tokens.shape[1] = targets.shape[1] = T;
  tokens.dtype = targets.dtype = engine::DType::i32;
  targets.data = seq.data() + 1;
  for (int s = 0; s < 3; ++s) backend->step(tokens, targets, 1e-2f);

  double sum = 0.0;
  for (int len = 1; len <= T; ++len) {
    const float* logits = backend->next_token_logits(seq.data(), len);
    double max = logits[0];
    for (int v = 1; v < V; ++v) max = std::max(max, static_cast<double>(logits[v]));
    double z = 0.0;
    for (int v = 0; v < V; ++v) z += std::exp(logits[v] - max);
    sum += max + std::log(z) - logits[seq[len]];
  }
  const double ours = sum / T;
  const double executor = backend->evaluate(tokens, targets);
  // Both are fp32 forwards of the same weights; the loss kernel sums in its own order: 1e-4 of a ~10-nat loss.
  EXPECT_NEAR(ours, executor, 1e-4);
}

TEST(StageLogits, OneStageMatchesExecutor) { expect_logits_match_executor({"--stages", "1", "--bottleneck", "none"}); }
TEST(StageLogits, TwoStagesResbmMatchesExecutor) { expect_logits_match_executor({"--stages", "2"}); }
TEST(StageLogits, ThreeStagesOrthogonalBf16MatchesExecutor) {
  expect_logits_match_executor({"--stages", "3", "--bottleneck-identity", "orthogonal", "--code-dtype", "bf16"});
}
TEST(StageLogits, LinearInt8MatchesExecutor) {
  expect_logits_match_executor({"--stages", "2", "--bottleneck", "linear", "--code-dtype", "int8"});
}
TEST(StageLogits, QuantMatchesExecutor) { expect_logits_match_executor({"--stages", "2", "--bottleneck", "quant"}); }

}  // namespace
}  // namespace train
