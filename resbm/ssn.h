// resbm/ssn.h: Subspace Networks (SSN), the peer method ResBM positions itself against, as `--bottleneck ssn`.
//
// OUR READING of Pluralis Research's "Protocol Models" / Subspace Networks (arXiv 2506.01260) and its public
// descriptions: up to ~100x activation compression by keeping the residual stream inside a fixed low-dimensional
// subspace, so that the next stage rebuilds it exactly. The details below (initialisations, which blocks are
// constrained, how positions are handled) are our choices where we could not read theirs; each is said where made.
//
// Two frozen tensors, rebuilt from the run's seed on every stage (nothing about them crosses a link; the run table
// prints their hash, checked equal on every stage):
//   U  (C,K)                orthonormal basis of a K-dimensional subspace, K = C / r (Gram-Schmidt of seeded
//                           Gaussian vectors, in double, so every stage gets the same bits)
//   F  (Vp,C), F_pos (maxT,C)  frozen token and position tables, N(0, 0.02) and N(0, 0.01) as GPT-2 draws wte and
//                           wpe; F's padding rows zero
// The learned embeddings are K wide: E (Vp,K) "ssn.wte" and E_pos (maxT,K) "ssn.wpe", zero at initialisation (our
// choice: the stream then starts as GPT-2's does with wte = F, wpe = F_pos). The first stage's stream is
//   x0 = F[tok] + F_pos[t] + (E[tok] + E_pos[t]) U^T                                     (B,T,C)
// Every block before the last boundary writes into the stream only through U: its attention output projection and
// its MLP down-projection produce K channels (weights (K, in), biases (K), names "...c_proj_ssn..."), mapped to C
// by U^T. So at every boundary
//   x - F[tok] - F_pos[t]  lies in span(U)  exactly (up to fp32 rounding), at every step, with no projection step
//                                           after the optimizer.
// Forward wire:  z  = (x - F[tok] - F_pos) U        (B,T,K)  the token ids are known on every stage: not sent
// Decoder:       x' = F[tok] + F_pos + z U^T        (B,T,C)  = x, up to rounding
// Backward wire: dL/dz = (dL/dx') U, K values (the decoder's autograd); the sender expands it by U^T. The weight
// gradients are exact, not approximations: the stream before the boundary depends on the parameters only through
// span(U), so the part of dL/dx' outside span(U), the only thing the wire drops, multiplies zero anyway.
// Blocks after the last boundary (on the last stage) are GPT-2's dense blocks, and the head is always untied: the
// first stage holds no C-wide wte to tie it to.
//
// Optimizers. Muon's update of a (K, in) weight W, mapped by U, equals Muon's update of the dense (C, in) weight
// U W whose gradient is projected onto span(U): U has orthonormal columns, so the Newton-Schulz polynomial of
// U G is U times that of G, and the shape scale sqrt(max(1, rows/cols)) is 1 for both (K, C <= in). AdamW's
// element-wise normalisation is not rotation invariant: AdamW on W is NOT AdamW on U W projected. We train W.
//
// Optional, as the public record does: --ssn-match-params widens the MLPs of the constrained blocks so that the
// parameter count matches `none` with an untied head (the parameters the K-wide embeddings and projections free go
// to the MLP's hidden width H; see ssn_mlp_hidden). Not built: the closer-to-the-paper mode that projects dense
// weights onto span(U) after every optimizer step.
#pragma once

#include <cstdint>

#include "engine/autograd.h"
#include "engine/params.h"
#include "resbm/gpt2.h"

namespace resbm {

// The frozen tensors of a stage, in its `fixed` store (never stepped; the ops see them as constants).
struct SsnFrozen {
  int basis = -1;           // (C,K) U:   y (..,K) -> y U^T (..,C) via matmul's x @ W^T
  int basis_t = -1;         // (K,C) U^T: d (..,C) -> d U   (..,K)
  int token_table = -1;     // (Vp,C) F
  int position_table = -1;  // (maxT,C) F_pos
};

// The learned K-wide embeddings of the first stage.
struct SsnEmbeddingParams {
  int wte = -1;  // (Vp,K) "ssn.wte"
  int wpe = -1;  // (maxT,K) "ssn.wpe"
};

SsnFrozen declare_ssn_frozen(engine::ParamStore& fixed, const GPT2Config& config, int K);
// Deterministic in (seed, the tensor's name) only: the same bits on every stage and every rank.
void init_ssn_frozen(engine::ParamStore& fixed, const SsnFrozen& frozen, const GPT2Config& config, uint64_t seed);
// FNV-1a over the bytes of U, U^T, F and F_pos (host copies): equal on every stage of a run.
uint64_t ssn_frozen_hash(engine::ParamStore& fixed, const SsnFrozen& frozen);

SsnEmbeddingParams declare_ssn_embeddings(engine::ParamStore& store, const GPT2Config& config, int K);
void init_ssn_embeddings(engine::ParamStore& store, const SsnEmbeddingParams& p);  // zeros

// A block whose two output projections are K wide (attn "c_proj_ssn" (K,C), mlp "c_proj_ssn" (K,H)) and whose MLP
// has H hidden units (4C unless --ssn-match-params). Initialised as GPT-2's blocks (init_block).
BlockParams declare_ssn_block(engine::ParamStore& store, const std::string& prefix, const GPT2Config& config, int K,
                              int H);

// x0 (B,T,C) = F[tok] + F_pos + (E[tok] + E_pos) U^T.
engine::Var ssn_embed_forward(engine::Graph& g, engine::ParamStore& trained, engine::ParamStore& fixed,
                              const SsnEmbeddingParams& p, const SsnFrozen& frozen, const engine::Tensor& tokens);
// x (B,T,C) -> x + attn_K(ln1 x) U^T, then + mlp_K(ln2 .) U^T.
engine::Var ssn_block_forward(engine::Graph& g, engine::ParamStore& trained, engine::ParamStore& fixed,
                              const BlockParams& p, const SsnFrozen& frozen, const engine::Var& x,
                              const GPT2Config& config);
// The frozen part F[tok] + F_pos (B,T,C), a constant (no gradient).
engine::Var ssn_frozen_stream(engine::Graph& g, engine::ParamStore& fixed, const SsnFrozen& frozen,
                              const engine::Tensor& tokens);
// The end of a stage: z (B,T,K) = (x - F[tok] - F_pos) U.
engine::Var ssn_encode(engine::Graph& g, engine::ParamStore& fixed, const SsnFrozen& frozen,
                       const engine::Tensor& tokens, const engine::Var& x);
// The start of the next: x' (B,T,C) = F[tok] + F_pos + z U^T.
engine::Var ssn_decode(engine::Graph& g, engine::ParamStore& fixed, const SsnFrozen& frozen,
                       const engine::Tensor& tokens, const engine::Var& z);

// The MLP hidden width of the constrained blocks: 4C, or with match_params the width that brings the whole
// model's trained parameter count to `none`'s (untied head): the parameters the K-wide embeddings and projections
// free, D, spread over the ssn_blocks constrained blocks at (C + 1 + K) parameters per hidden unit (fc row, fc
// bias, fc_proj column): H = 4C + floor(D / (ssn_blocks (C + 1 + K))).
int ssn_mlp_hidden(const GPT2Config& config, int K, int ssn_blocks, bool match_params);
// Trained parameters of the whole pipeline (all stages, untied head), by formula: ssn_blocks constrained blocks
// with H hidden units, the other L - ssn_blocks blocks dense.
int64_t ssn_num_parameters(const GPT2Config& config, int K, int H, int ssn_blocks);
// The same for `none` with an untied head (the reference ssn_mlp_hidden matches).
int64_t untied_gpt2_num_parameters(const GPT2Config& config);

}  // namespace resbm
