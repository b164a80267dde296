// resbm/gpt2_init.cc: GPT-2 initialisation with a small deterministic RNG of our own.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/device.h"
#include "resbm/gpt2.h"

namespace resbm {
namespace {

// splitmix64: spreads any seed (0 included) over the 64-bit state, so xorshift never starts at its fixed point 0.
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// N(0, std) values for one parameter, from its own stream (param_seed).
std::vector<float> normal_values(const engine::ParamStore& store, int index, float std, uint64_t seed,
                                 const std::string& seed_name) {
  std::vector<float> values(store.param(index).var.value.numel());
  Rng rng(param_seed(seed, seed_name));
  for (float& x : values) x = static_cast<float>(std * rng.normal());
  return values;
}

// Values are made on the host and copied in, so the same code initialises CPU and CUDA stores.
void upload(engine::ParamStore& store, int index, const std::vector<float>& values) {
  engine::copy_from_host(store.var(index).value, values.data());
}

}  // namespace

Rng::Rng(uint64_t seed) : state_(splitmix64(seed)) {
  if (state_ == 0) state_ = 0x2545F4914F6CDD1Dull;
}

uint64_t Rng::next_u64() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return state_ * 0x2545F4914F6CDD1Dull;
}

double Rng::uniform() { return double(next_u64() >> 11) * (1.0 / 9007199254740992.0); }  // 53 bits

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  // Box-Muller on (0, 1]: 1 - uniform() is never 0, so the log is finite.
  const double u1 = 1.0 - uniform();
  const double u2 = uniform();
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 6.283185307179586 * u2;
  spare_ = r * std::sin(theta);
  has_spare_ = true;
  return r * std::cos(theta);
}

uint64_t param_seed(uint64_t seed, const std::string& param_name) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a of the name, then mixed with the seed
  for (unsigned char ch : param_name) h = (h ^ ch) * 0x100000001B3ull;
  return splitmix64(seed ^ splitmix64(h));
}

void init_normal(engine::ParamStore& store, int index, float std, uint64_t seed) {
  init_normal_as(store, index, std, seed, store.param(index).name);
}

void init_normal_as(engine::ParamStore& store, int index, float std, uint64_t seed, const std::string& seed_name) {
  upload(store, index, normal_values(store, index, std, seed, seed_name));
}

void init_constant(engine::ParamStore& store, int index, float value) {
  upload(store, index, std::vector<float>(store.param(index).var.value.numel(), value));
}

void orthonormal_rows(float* out, int K, int C, uint64_t stream_seed) {
  if (K < 1 || K > C) throw std::invalid_argument("orthonormal_rows: K=" + std::to_string(K) + " must be in [1, C=" +
                                                  std::to_string(C) + "]");
  Rng rng(stream_seed);
  std::vector<double> rows(static_cast<size_t>(K) * C);
  for (double& v : rows) v = rng.normal();
  for (int k = 0; k < K; ++k) {
    double* r = &rows[static_cast<size_t>(k) * C];
    for (int j = 0; j < k; ++j) {
      const double* q = &rows[static_cast<size_t>(j) * C];
      double dot = 0.0;
      for (int c = 0; c < C; ++c) dot += r[c] * q[c];
      for (int c = 0; c < C; ++c) r[c] -= dot * q[c];
    }
    double norm = 0.0;
    for (int c = 0; c < C; ++c) norm += r[c] * r[c];
    norm = std::sqrt(norm);
    for (int c = 0; c < C; ++c) r[c] /= norm;
  }
  for (size_t i = 0; i < rows.size(); ++i) out[i] = static_cast<float>(rows[i]);
}

void init_embeddings(engine::ParamStore& store, const EmbeddingParams& p, const GPT2Config& config, uint64_t seed) {
  std::vector<float> wte = normal_values(store, p.wte, 0.02f, seed, store.param(p.wte).name);  // (Vp, C)
  // The padding rows V..Vp-1 never see a token and their logits are ignored by the loss; zero keeps them inert.
  std::fill(wte.begin() + int64_t{config.vocab_size} * config.channels, wte.end(), 0.0f);
  upload(store, p.wte, wte);
  init_normal(store, p.wpe, 0.01f, seed);  // llm.c's choice for the position embedding
}

void init_block(engine::ParamStore& store, const BlockParams& p, const GPT2Config& config, uint64_t seed) {
  // GPT-2: the projections that write into the residual stream are scaled by 1/sqrt(2L), because 2L of them add
  // up along the stream and the sum's variance should not grow with depth.
  const float residual_std = 0.02f / std::sqrt(2.0f * config.num_layers);
  init_constant(store, p.ln1_w, 1.0f);
  init_constant(store, p.ln1_b, 0.0f);
  init_normal(store, p.qkv_w, 0.02f, seed);
  init_constant(store, p.qkv_b, 0.0f);
  init_normal(store, p.attn_proj_w, residual_std, seed);
  init_constant(store, p.attn_proj_b, 0.0f);
  init_constant(store, p.ln2_w, 1.0f);
  init_constant(store, p.ln2_b, 0.0f);
  init_normal(store, p.fc_w, 0.02f, seed);
  init_constant(store, p.fc_b, 0.0f);
  init_normal(store, p.fc_proj_w, residual_std, seed);
  init_constant(store, p.fc_proj_b, 0.0f);
}

void init_final_norm(engine::ParamStore& store, const FinalNormParams& p) {
  init_constant(store, p.lnf_w, 1.0f);
  init_constant(store, p.lnf_b, 0.0f);
}

}  // namespace resbm
