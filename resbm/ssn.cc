// resbm/ssn.cc: Subspace Networks (our reading; see resbm/ssn.h): frozen tensors, K-wide embeddings and blocks,
// the boundary's encode/decode, and the parameter formulas.
#include "resbm/ssn.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/ops.h"

namespace resbm {

using engine::ParamKind;
using engine::ParamStore;
using engine::Var;

namespace {

// A fixed tensor as an op input: a constant (no gradient is computed into it or through it).
Var constant(ParamStore& fixed, int index) { return Var{fixed.var(index).value, engine::Tensor{}}; }

void upload(ParamStore& store, int index, const std::vector<float>& values) {
  const engine::Tensor& dst = store.var(index).value;
  if (static_cast<size_t>(dst.numel()) != values.size()) {
    throw std::logic_error("ssn init: " + std::to_string(values.size()) + " values for " + store.param(index).name);
  }
  engine::copy_from_host(dst, values.data());
}

// Parameters of one block by their shapes: ln 4C, qkv (3C,C)+3C, attention projection (out,C)+out, fc (H,C)+H,
// MLP projection (out,H)+out; out = C for a dense block, K for a constrained one.
int64_t block_parameters(int64_t C, int64_t out, int64_t H) {
  return 4 * C + (3 * C * C + 3 * C) + (out * C + out) + (H * C + H) + (out * H + out);
}

}  // namespace

SsnFrozen declare_ssn_frozen(ParamStore& fixed, const GPT2Config& config, int K) {
  const int64_t C = config.channels;
  SsnFrozen f;
  f.basis = fixed.declare("ssn.basis", {C, K}, ParamKind::matrix);
  f.basis_t = fixed.declare("ssn.basis_t", {K, C}, ParamKind::matrix);
  f.token_table = fixed.declare("ssn.frozen_wte", {config.padded_vocab_size, C}, ParamKind::embedding);
  f.position_table = fixed.declare("ssn.frozen_wpe", {config.max_seq_len, C}, ParamKind::embedding);
  return f;
}

void init_ssn_frozen(ParamStore& fixed, const SsnFrozen& f, const GPT2Config& config, uint64_t seed) {
  const int C = config.channels;
  const int K = static_cast<int>(fixed.var(f.basis_t).value.dim(0));
  std::vector<float> ut(static_cast<size_t>(K) * C);  // (K,C): U^T, rows orthonormal
  orthonormal_rows(ut.data(), K, C, param_seed(seed, "ssn.basis"));
  std::vector<float> u(ut.size());  // (C,K): U
  for (int k = 0; k < K; ++k) {
    for (int c = 0; c < C; ++c) u[static_cast<size_t>(c) * K + k] = ut[static_cast<size_t>(k) * C + c];
  }
  upload(fixed, f.basis_t, ut);
  upload(fixed, f.basis, u);
  // F and F_pos drawn as GPT-2 draws wte (0.02, padding rows zero) and wpe (0.01), from their own names' streams.
  init_normal(fixed, f.token_table, 0.02f, seed);
  const engine::Tensor& table = fixed.var(f.token_table).value;
  std::vector<float> w(static_cast<size_t>(table.numel()));
  engine::copy_to_host(w.data(), table);
  std::fill(w.begin() + int64_t{config.vocab_size} * C, w.end(), 0.0f);
  engine::copy_from_host(table, w.data());
  init_normal(fixed, f.position_table, 0.01f, seed);
}

uint64_t ssn_frozen_hash(ParamStore& fixed, const SsnFrozen& f) {
  uint64_t h = 0xCBF29CE484222325ull;  // FNV-1a, 64 bits
  for (int index : {f.basis, f.basis_t, f.token_table, f.position_table}) {
    const engine::Tensor& t = fixed.var(index).value;
    std::vector<float> host(static_cast<size_t>(t.numel()));
    engine::copy_to_host(host.data(), t);
    const unsigned char* bytes = reinterpret_cast<const unsigned char*>(host.data());
    for (size_t i = 0; i < host.size() * sizeof(float); ++i) h = (h ^ bytes[i]) * 0x100000001B3ull;
  }
  return h;
}

SsnEmbeddingParams declare_ssn_embeddings(ParamStore& store, const GPT2Config& config, int K) {
  SsnEmbeddingParams p;
  p.wte = store.declare("ssn.wte", {config.padded_vocab_size, K}, ParamKind::embedding);
  p.wpe = store.declare("ssn.wpe", {config.max_seq_len, K}, ParamKind::embedding);
  return p;
}

void init_ssn_embeddings(ParamStore& store, const SsnEmbeddingParams& p) {
  init_constant(store, p.wte, 0.0f);
  init_constant(store, p.wpe, 0.0f);
}

BlockParams declare_ssn_block(ParamStore& s, const std::string& prefix, const GPT2Config& config, int K, int H) {
  // GPT-2's block, except the two output projections (K wide, named c_proj_ssn) and the MLP's width H.
  return declare_block_shaped(s, prefix, config, {K, H, K, "attn.c_proj_ssn", "mlp.c_proj_ssn"});
}

Var ssn_frozen_stream(engine::Graph& g, ParamStore& fixed, const SsnFrozen& f, const engine::Tensor& tokens) {
  return engine::embedding(g, tokens, constant(fixed, f.token_table), constant(fixed, f.position_table));  // (B,T,C)
}

Var ssn_embed_forward(engine::Graph& g, ParamStore& trained, ParamStore& fixed, const SsnEmbeddingParams& p,
                      const SsnFrozen& f, const engine::Tensor& tokens) {
  const Var frozen = ssn_frozen_stream(g, fixed, f, tokens);                            // (B,T,C)
  const Var learned = engine::embedding(g, tokens, trained.var(p.wte), trained.var(p.wpe));  // (B,T,K)
  return engine::add(g, frozen, engine::matmul(g, learned, constant(fixed, f.basis)));   // (B,T,C)
}

Var ssn_block_forward(engine::Graph& g, ParamStore& trained, ParamStore& fixed, const BlockParams& p,
                      const SsnFrozen& f, const Var& x, const GPT2Config& config) {
  const Var u = constant(fixed, f.basis);  // (C,K)
  // Attention half: GPT-2's, with the projection K wide and mapped to C by U^T.
  Var ln1 = engine::layernorm(g, x, trained.var(p.ln1_w), trained.var(p.ln1_b));          // (B,T,C)
  Var qkv = engine::matmul(g, ln1, trained.var(p.qkv_w), trained.var(p.qkv_b));            // (B,T,3C)
  Var atty = engine::attention(g, qkv, config.num_heads);                                 // (B,T,C)
  Var proj = engine::matmul(g, atty, trained.var(p.attn_proj_w), trained.var(p.attn_proj_b));  // (B,T,K)
  Var residual2 = engine::add(g, x, engine::matmul(g, proj, u));                          // (B,T,C)
  // MLP half, likewise.
  Var ln2 = engine::layernorm(g, residual2, trained.var(p.ln2_w), trained.var(p.ln2_b));  // (B,T,C)
  Var fch = engine::gelu(g, engine::matmul(g, ln2, trained.var(p.fc_w), trained.var(p.fc_b)));  // (B,T,H)
  Var fcproj = engine::matmul(g, fch, trained.var(p.fc_proj_w), trained.var(p.fc_proj_b));     // (B,T,K)
  return engine::add(g, residual2, engine::matmul(g, fcproj, u));                          // (B,T,C)
}

Var ssn_encode(engine::Graph& g, ParamStore& fixed, const SsnFrozen& f, const engine::Tensor& tokens, const Var& x) {
  const Var minus_frozen = engine::scale(g, ssn_frozen_stream(g, fixed, f, tokens), -1.0f);  // (B,T,C) constant
  const Var in_subspace = engine::add(g, x, minus_frozen);                                // (B,T,C)
  return engine::matmul(g, in_subspace, constant(fixed, f.basis_t));                      // (B,T,K)
}

Var ssn_decode(engine::Graph& g, ParamStore& fixed, const SsnFrozen& f, const engine::Tensor& tokens, const Var& z) {
  const Var frozen = ssn_frozen_stream(g, fixed, f, tokens);                          // (B,T,C)
  return engine::add(g, frozen, engine::matmul(g, z, constant(fixed, f.basis)));      // (B,T,C)
}

int64_t untied_gpt2_num_parameters(const GPT2Config& config) {
  const int64_t C = config.channels, Vp = config.padded_vocab_size, maxT = config.max_seq_len;
  return (Vp + maxT) * C + config.num_layers * block_parameters(C, C, 4 * C) + 2 * C + Vp * C;
}

int64_t ssn_num_parameters(const GPT2Config& config, int K, int H, int ssn_blocks) {
  const int64_t C = config.channels, Vp = config.padded_vocab_size, maxT = config.max_seq_len;
  return (Vp + maxT) * K + ssn_blocks * block_parameters(C, K, H) +
         (config.num_layers - ssn_blocks) * block_parameters(C, C, 4 * C) + 2 * C + Vp * C;
}

int ssn_mlp_hidden(const GPT2Config& config, int K, int ssn_blocks, bool match_params) {
  const int C = config.channels;
  if (!match_params) return 4 * C;
  if (ssn_blocks < 1) throw std::logic_error("ssn_mlp_hidden: no constrained blocks to widen");
  const int64_t freed = untied_gpt2_num_parameters(config) - ssn_num_parameters(config, K, 4 * C, ssn_blocks);
  return 4 * C + static_cast<int>(freed / (int64_t{ssn_blocks} * (C + 1 + K)));
}

}  // namespace resbm
