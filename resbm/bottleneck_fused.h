// resbm/bottleneck_fused.h: the `fused` ResBM layout (IOTA's): the bottleneck lives inside the boundary blocks.
//
// Our reading of the IOTA code (DESIGN.md section 1), with the slice identity:
//   encoder, the last block of stage s:   h  = x + attn(ln1(x))                  (the block's attention half)
//                                         z  = h[..., :K] + mlp_K(ln2(h))         (its MLP with a K-wide output)
//   decoder, the first block of stage s+1: a  = attn(ln1(gelu(z W_dec)))          (W_dec (C,K), K -> C)
//                                         x' = pad(z) + a, then x' + mlp(ln2(x')) (the block's MLP half)
// The K-wide output projection ("h.<l>.mlp.c_proj_code.*") starts at zero, so z = h[..., :K] at step 0, as the
// module layout's zero-initialised branch gives. Fewer extra FLOPs than the module layout: one (C,K) matrix.
// Close to IOTA's layout, not the same (docs/resbm.md): IOTA keeps the MLP's full-width output, applies a
// nonlinearity, then maps C -> K, initialises every linear map N(0, 0.02), and decodes with a ReLU (no bias); we map
// 4C -> K directly, start that map at zero, and decode with a GELU (no bias).
#pragma once

#include <string>

#include "engine/autograd.h"
#include "engine/params.h"
#include "resbm/gpt2.h"

namespace resbm {

// Block `prefix` with its MLP's output projection K wide (named mlp.c_proj_code.*, (K,4C) and (K)).
BlockParams declare_fused_encoder_block(engine::ParamStore& store, const std::string& prefix,
                                        const GPT2Config& config, int K);
// GPT-2's block initialisation, then the K-wide projection set to zero.
void init_fused_encoder_block(engine::ParamStore& store, const BlockParams& p, const GPT2Config& config,
                              uint64_t seed);
// The encoder block's MLP half: h (B,T,C), the output of its attention half -> z (B,T,K).
engine::Var fused_encoder_mlp(engine::Graph& g, engine::ParamStore& store, const BlockParams& p,
                              const engine::Var& h, int K);

// W_dec (C,K) of boundary b, "bottleneck.<b>.dec.w_dec.weight", N(0, 0.02).
int declare_fused_decoder(engine::ParamStore& store, int boundary, const GPT2Config& config, int K);
// The decoder block's attention half: z (B,T,K) -> pad(z) + attn(ln1(gelu(z W_dec))) (B,T,C). The caller then
// applies the block's MLP half (a K-wide one when the same block is also its stage's encoder block).
engine::Var fused_decoder_attention(engine::Graph& g, engine::ParamStore& store, const BlockParams& p, int w_dec,
                                    const engine::Var& z, const GPT2Config& config);

}  // namespace resbm
