// resbm/bottleneck_fused.cc: the fused (IOTA) ResBM layout: encoder and decoder inside the boundary blocks.
#include "resbm/bottleneck_fused.h"

#include "engine/ops.h"

namespace resbm {

using engine::ParamKind;
using engine::ParamStore;
using engine::Var;

BlockParams declare_fused_encoder_block(ParamStore& s, const std::string& prefix, const GPT2Config& config,
                                        int K) {
  const int64_t C = config.channels;
  BlockParams p;  // the standard block's names and shapes, except the MLP's output projection
  p.ln1_w = s.declare(prefix + "ln_1.weight", {C}, ParamKind::vector);
  p.ln1_b = s.declare(prefix + "ln_1.bias", {C}, ParamKind::vector);
  p.qkv_w = s.declare(prefix + "attn.c_attn.weight", {3 * C, C}, ParamKind::matrix);
  p.qkv_b = s.declare(prefix + "attn.c_attn.bias", {3 * C}, ParamKind::vector);
  p.attn_proj_w = s.declare(prefix + "attn.c_proj.weight", {C, C}, ParamKind::matrix);
  p.attn_proj_b = s.declare(prefix + "attn.c_proj.bias", {C}, ParamKind::vector);
  p.ln2_w = s.declare(prefix + "ln_2.weight", {C}, ParamKind::vector);
  p.ln2_b = s.declare(prefix + "ln_2.bias", {C}, ParamKind::vector);
  p.fc_w = s.declare(prefix + "mlp.c_fc.weight", {4 * C, C}, ParamKind::matrix);
  p.fc_b = s.declare(prefix + "mlp.c_fc.bias", {4 * C}, ParamKind::vector);
  p.fc_proj_w = s.declare(prefix + "mlp.c_proj_code.weight", {K, 4 * C}, ParamKind::matrix);
  p.fc_proj_b = s.declare(prefix + "mlp.c_proj_code.bias", {K}, ParamKind::vector);
  return p;
}

void init_fused_encoder_block(ParamStore& store, const BlockParams& p, const GPT2Config& config, uint64_t seed) {
  init_block(store, p, config, seed);
  init_constant(store, p.fc_proj_w, 0.0f);  // z = h[..., :K] at step 0
}

Var fused_encoder_mlp(engine::Graph& g, ParamStore& store, const BlockParams& p, const Var& h, int K) {
  const Var mlp = block_mlp_branch(g, store, p, h);               // (B,T,K): the K-wide projection
  return engine::add(g, engine::slice_columns(g, h, 0, K), mlp);  // (B,T,K)
}

int declare_fused_decoder(ParamStore& store, int boundary, const GPT2Config& config, int K) {
  return store.declare("bottleneck." + std::to_string(boundary) + ".dec.w_dec.weight", {config.channels, K},
                       ParamKind::matrix);
}

Var fused_decoder_attention(engine::Graph& g, ParamStore& store, const BlockParams& p, int w_dec, const Var& z,
                            const GPT2Config& config) {
  const int C = config.channels;
  const Var h = engine::gelu(g, engine::matmul(g, z, store.var(w_dec)));             // (B,T,C) act(z W_dec)
  const Var ln1 = engine::layernorm(g, h, store.var(p.ln1_w), store.var(p.ln1_b));  // (B,T,C)
  const Var qkv = engine::matmul(g, ln1, store.var(p.qkv_w), store.var(p.qkv_b));   // (B,T,3C)
  const Var att = engine::attention(g, qkv, config.num_heads);                      // (B,T,C)
  const Var a = engine::matmul(g, att, store.var(p.attn_proj_w), store.var(p.attn_proj_b));  // (B,T,C)
  return engine::add(g, engine::pad_columns(g, z, 0, C), a);  // z back onto the first K channels
}

}  // namespace resbm
