// resbm/bottleneck.h: the ResBM residual bottleneck that joins two pipeline stages, and its baselines.
//
// OUR READING of Aboudib et al., "ResBM: Residual Bottleneck Models for Low-Bandwidth Pipeline Parallelism"
// (arXiv 2604.11947): the paper's equations were not available to us, so this module follows its abstract (a
// residual encoder-decoder across each boundary with an explicit low-rank identity path, trained end to end) and
// the same team's public IOTA code (identity = the first K channels). (github macrocosm-os/iota, model/llama3/modules.py; primer arXiv 2507.17766).
//
// At a boundary with residual stream x (B,T,C) and code width K = C / ratio:
//   encoder (end of stage s):     z  = x P + f_enc(x)        (B,T,K)   only z crosses the link
//   decoder (start of stage s+1): x' = z P^T + f_dec(z)      (B,T,C)
// P (C,K): `slice` P = [I_K; 0] (no parameters: a column slice / zero pad); `orthogonal` a fixed random
// orthonormal basis (seeded by the boundary, so both sides agree); `learned` the same basis as a trained
// parameter. With `learned`, the encoder's P and the decoder's P^T are separate parameters on separate stages,
// initialised equal and trained independently (tying them would need one more cross-stage gradient exchange).
// f_enc = W2 gelu(W1 ln(x) + b1) + b2 (C -> H -> K), f_dec = V2 gelu(V1 z + c1) + c2 (K -> H -> C), with
// W2, b2, V2, c2 zero at initialisation, so x' = x P P^T at step 0. The decoder has no norm over z: a LayerNorm
// over K code channels would erase the code's mean and scale (a constant at K = 1), see bottleneck.cc.
//
// Baselines behind the same flag:
//   none   : z = x (K = C), the full stream crosses.
//   linear : z = x U, x' = z V (U (C,K), V (K,C) trained), initialised U = P, V = P^T: equal to resbm at step 0.
//   ae     : z = f_enc(x), x' = f_dec(z): the MLPs without the identity path (last layers N(0, 0.02), not zero,
//            so that the decoder's output is not identically zero at the start).
//   quant  : z = x (K = C), sent as an 8-bit code (the wire dtype is forced to int8).
//   ssn    : Subspace Networks (the peer method): the blocks before the last boundary write into the stream only
//            through a frozen basis U (C,K), so z = (x - frozen embeddings) U is exact. Not these classes: the
//            stage model builds it from resbm/ssn.h.
// The wire dtype (fp32, bf16, int8) is applied by the pipeline when it sends z (and dL/dz back); decoding on
// arrival, straight-through for the gradient (engine/comm/codec.h). Layout `fused` (IOTA's: f_enc inside the
// last block's MLP, f_dec inside the next block's attention, slice identity only) is built by the stage model
// from resbm/bottleneck_fused.h; these encoder/decoder classes are the `module` layout.
#pragma once

#include <cstdint>
#include <string>

#include "engine/autograd.h"
#include "engine/comm/codec.h"
#include "engine/params.h"

namespace resbm {

enum class BottleneckKind : uint8_t { none, resbm, linear, ae, quant, ssn };
enum class IdentityPath : uint8_t { slice, orthogonal, learned };
enum class ResbmLayout : uint8_t { module, fused };
// Token re-injection (beyond the paper, measured): every stage after the first adds an embedding of the input token
// ids to its decoded stream x'. Token ids are known on every stage and cost no link bytes, so the code need only
// carry context. The last stage uses the head's weight it already holds (the tied wte copy, or lm_head.weight when
// untied): no new parameters. A middle stage has a table of its own, "reinject.<s>.weight" (Vp, C), starting at
// zeros or as a copy of wte's initial values.
enum class Reinjection : uint8_t { off, zeros, copy };

struct BottleneckConfig {
  BottleneckKind kind = BottleneckKind::resbm;
  int ratio = 32;                               // r: K = C / r (ignored by none and quant: K = C)
  // --code-width K: the code's width set directly, any 1 <= K <= C (0: K = C / ratio). So that a ratio counted in
  // bytes, scales included, can be hit exactly: d12 (C = 768) at fp32 sends 3072 bytes per token uncompressed; an
  // int8 code of K = 20 plus its 4-byte row scale is 24 bytes, exactly 128x.
  int code_channels = 0;
  IdentityPath identity = IdentityPath::slice;  // P, for resbm and the initialisation of linear
  ResbmLayout layout = ResbmLayout::module;
  int hidden = 0;                               // H of f_enc / f_dec; 0: max(K, C / 4)
  engine::comm::WireDType code_dtype = engine::comm::WireDType::f32;  // quant forces i8
  Reinjection reinject = Reinjection::off;      // --reinject-tokens
  bool ssn_match_params = false;                // --ssn-match-params: ssn's freed parameters widen its MLPs
  // ssn: how many blocks lie before the last boundary (the constrained ones), from the layer partition. Not a
  // flag: make_stage_model and the run config set it (ssn_mlp_hidden needs the whole model's count).
  int ssn_blocks = 0;
};

BottleneckKind parse_bottleneck_kind(const std::string& name);  // "none", "resbm", "linear", "ae", "quant", "ssn"
IdentityPath parse_identity_path(const std::string& name);      // "slice", "orthogonal", "learned"
ResbmLayout parse_resbm_layout(const std::string& name);        // "module", "fused"
Reinjection parse_reinjection(const std::string& name);         // "off", "zeros", "copy"
const char* reinjection_name(Reinjection reinject);
const char* bottleneck_kind_name(BottleneckKind kind);
const char* identity_path_name(IdentityPath identity);
const char* resbm_layout_name(ResbmLayout layout);
std::string describe_bottleneck(const BottleneckConfig& config, int C);  // "resbm r=32 K=4 slice module H=32 fp32"

// Throws std::invalid_argument saying what is wrong (C % r != 0 without --code-width, r < 1, K outside [1, C],
// fused layout without the slice, ...).
void validate_bottleneck(const BottleneckConfig& config, int C);
int code_width(const BottleneckConfig& config, int C);                          // K
int hidden_width(const BottleneckConfig& config, int C);                        // H
engine::comm::WireDType wire_dtype(const BottleneckConfig& config);             // i8 for quant

// The end of stage s: x (B,T,C) -> z (B,T,K). Parameters live in two stores of the stage: `trained` (stepped by
// the optimizer) and `fixed` (the orthogonal P: its gradient is computed by the matmul op and ignored).
// Names: "bottleneck.<b>.enc.*".
class BottleneckEncoder {
 public:
  BottleneckEncoder() = default;
  // Declares (before the stores' allocate()).
  BottleneckEncoder(engine::ParamStore& trained, engine::ParamStore& fixed, const BottleneckConfig& config,
                    int boundary, int C);
  // Initialises (after allocate()); deterministic in (seed, boundary, parameter name).
  void init(engine::ParamStore& trained, engine::ParamStore& fixed, uint64_t seed) const;
  engine::Var forward(engine::Graph& g, engine::ParamStore& trained, engine::ParamStore& fixed,
                      const engine::Var& x) const;
  int code_width() const { return K_; }

 private:
  BottleneckConfig config_;
  int boundary_ = 0, C_ = 0, K_ = 0, H_ = 0;
  int p_ = -1;                                        // (K,C) P^T: fixed (orthogonal) or trained (learned, linear U)
  int ln_w_ = -1, ln_b_ = -1;                         // (C)
  int w1_ = -1, b1_ = -1, w2_ = -1, b2_ = -1;         // (H,C), (H), (K,H), (K)
};

// The start of stage s+1: z (B,T,K) -> x' (B,T,C). Names: "bottleneck.<b>.dec.*".
class BottleneckDecoder {
 public:
  BottleneckDecoder() = default;
  BottleneckDecoder(engine::ParamStore& trained, engine::ParamStore& fixed, const BottleneckConfig& config,
                    int boundary, int C);
  void init(engine::ParamStore& trained, engine::ParamStore& fixed, uint64_t seed) const;
  engine::Var forward(engine::Graph& g, engine::ParamStore& trained, engine::ParamStore& fixed,
                      const engine::Var& z) const;
  int code_width() const { return K_; }

 private:
  BottleneckConfig config_;
  int boundary_ = 0, C_ = 0, K_ = 0, H_ = 0;
  int p_ = -1;                                        // (C,K) P: fixed (orthogonal) or trained (learned, linear V)
  int ln_w_ = -1, ln_b_ = -1;                         // unused: the decoder never normalises z
  int w1_ = -1, b1_ = -1, w2_ = -1, b2_ = -1;         // (H,K), (H), (C,H), (C)
};

// The orthonormal basis P (C,K) of boundary b, as P^T (K,C) row-major: rows orthonormal (Gram-Schmidt in double
// of Gaussian rows drawn from the seed and the boundary). Both stages compute it and get the same bits.
void orthonormal_basis_rows(float* pt /*(K,C)*/, int K, int C, uint64_t seed, int boundary);

}  // namespace resbm
