// resbm/bottleneck_fused.cc: the fused (IOTA) ResBM layout: encoder and decoder inside the boundary blocks.
#include "resbm/bottleneck_fused.h"

#include "engine/ops.h"

namespace resbm {

using engine::ParamKind;
using engine::ParamStore;
using engine::Var;

BlockParams declare_fused_encoder_block(ParamStore& s, const std::string& prefix, const GPT2Config& config,
                                        int K) {
  // The standard block, except the MLP's output projection: K wide, named c_proj_code.
  const int C = config.channels;
  return declare_block_shaped(s, prefix, config, {C, 4 * C, K, "attn.c_proj", "mlp.c_proj_code"});
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
  const Var h = engine::gelu(g, engine::matmul(g, z, store.model_var(w_dec)));             // (B,T,C) act(z W_dec)
  const Var ln1 = engine::layernorm(g, h, store.model_var(p.ln1_w), store.model_var(p.ln1_b));  // (B,T,C)
  const Var qkv = engine::matmul(g, ln1, store.model_var(p.qkv_w), store.model_var(p.qkv_b));   // (B,T,3C)
  const Var att = engine::attention(g, qkv, config.num_heads);                      // (B,T,C)
  const Var a = engine::matmul(g, att, store.model_var(p.attn_proj_w), store.model_var(p.attn_proj_b));  // (B,T,C)
  return engine::add(g, engine::pad_columns(g, z, 0, C), a);  // z back onto the first K channels
}

}  // namespace resbm
