// resbm/gpt2.h: GPT-2 as composable pieces (config presets, parameter declaration, forward pieces) and GPT2, the
// single-process whole model built from them.
//
// The pieces exist so that a pipeline stage (resbm/stage*, engine/pipeline) can build any contiguous slice of the
// model: embeddings + some blocks on the first stage, more blocks in the middle, blocks + final norm + head on the
// last. Each piece declares its parameters in a ParamStore and returns their indices; forward pieces take those
// indices back. Nothing here knows about processes, links or bottlenecks.
//
// Parameter names follow the HuggingFace/OpenAI GPT-2 checkpoint names ("wte", "h.3.attn.c_attn.weight",
// "ln_f.bias"), which is also how resbm/llmc_checkpoint.h finds them. Matmul weights use llm.c's (OC, C) layout.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/params.h"
#include "engine/tensor.h"

namespace resbm {

// ---------------------------------------------------------------------------------------------------------------
// Configuration

struct GPT2Config {
  int max_seq_len = 1024;         // maxT: rows of wpe
  int vocab_size = 50257;         // V: real classes of the softmax
  int padded_vocab_size = 50304;  // Vp: rows of wte, V rounded up to a multiple of 128 (padding rows stay unused)
  int num_layers = 12;            // L
  int num_heads = 12;             // NH
  int channels = 768;             // C; head size HS = C / NH
};

// V rounded up to a multiple of `multiple` (128 as llm.c: aligned GEMMs for the tied head).
int padded_vocab_size(int vocab_size, int multiple = 128);

// Presets: "tiny" (L=4, C=128, NH=4, maxT=256, V=50257: a CPU step takes milliseconds), "d12" (GPT-2 124M),
// "d24" (350M), "d36" (774M), "d48" (1558M). Throws std::invalid_argument naming the valid presets.
GPT2Config gpt2_preset(const std::string& name);
std::vector<std::string> gpt2_preset_names();

// Throws std::invalid_argument with a message saying which field is wrong and why (C % NH != 0, Vp < V, ...).
void validate_config(const GPT2Config& config);
std::string describe_config(const GPT2Config& config);  // "L=12 NH=12 C=768 maxT=1024 V=50257 Vp=50304"

// Number of parameters of the whole model (wte counted once: the head is tied), padded rows included.
int64_t gpt2_num_parameters(const GPT2Config& config);

// ---------------------------------------------------------------------------------------------------------------
// Parameters: indices into a ParamStore

struct EmbeddingParams {
  int wte = -1;  // (Vp, C) token embedding, also the tied LM head
  int wpe = -1;  // (maxT, C) position embedding
};

struct BlockParams {
  int ln1_w = -1, ln1_b = -1;              // (C)
  int qkv_w = -1, qkv_b = -1;              // (3C, C), (3C)
  int attn_proj_w = -1, attn_proj_b = -1;  // (C, C), (C)
  int ln2_w = -1, ln2_b = -1;              // (C)
  int fc_w = -1, fc_b = -1;                // (4C, C), (4C)
  int fc_proj_w = -1, fc_proj_b = -1;      // (C, 4C), (C)
};

struct FinalNormParams {
  int lnf_w = -1, lnf_b = -1;  // (C)
};

// Name prefix of block l: "h.<l>." (names then read "h.3.ln_1.weight").
std::string block_prefix(int layer);

EmbeddingParams declare_embeddings(engine::ParamStore& store, const GPT2Config& config);
// Declares one block's 12 tensors, contiguous in the store, named prefix + "ln_1.weight" etc.
BlockParams declare_block(engine::ParamStore& store, const std::string& prefix, const GPT2Config& config);
// A block of another shape, for the bottleneck layouts that resize its projections (the fused ResBM encoder, ssn):
// the attention projection's output width, the MLP's hidden and output widths (GPT-2's: C, 4C, C), and the names
// of the two output projections (GPT-2's: "attn.c_proj", "mlp.c_proj"; a resized one gets a name of its own, so
// that an llm.c checkpoint can never load into it).
struct BlockShape {
  int attn_out, mlp_hidden, mlp_out;
  std::string attn_proj = "attn.c_proj", mlp_proj = "mlp.c_proj";
};
BlockParams declare_block_shaped(engine::ParamStore& store, const std::string& prefix, const GPT2Config& config,
                                 const BlockShape& shape);
FinalNormParams declare_final_norm(engine::ParamStore& store, const GPT2Config& config);

// Declares blocks first..last-1 in llm.c's tensor order (all ln_1.weight, then all ln_1.bias, ...), so that the
// store walks a whole model's tensors in llm.c's file order (the optimizer and the checkpoint code see the same
// sequence as llm.c's). Same names as declare_block.
std::vector<BlockParams> declare_blocks_llmc_order(engine::ParamStore& store, int first, int last,
                                                   const GPT2Config& config);

// llm.c's parameter layout: every tensor of the whole model in file order (wte, wpe, then each block tensor
// stacked over layers: h.0.ln_1.weight ... h.<L-1>.ln_1.weight, h.0.ln_1.bias, ..., ln_f.weight, ln_f.bias),
// with our names and shapes. resbm/llmc_checkpoint maps files to stores by these names.
struct NamedShape {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel() const;
};
std::vector<NamedShape> gpt2_llmc_layout(const GPT2Config& config);

// ---------------------------------------------------------------------------------------------------------------
// Forward pieces (the backward is the tape's). B, T from the tensors; T <= maxT.

// (B,T,C) = wte[tokens] + wpe[0..T). tokens (B,T) i32.
engine::Var embed_forward(engine::Graph& g, engine::ParamStore& store, const EmbeddingParams& p,
                          const engine::Tensor& tokens);
// One pre-LN transformer block: x + attn(ln1(x)), then + mlp(ln2(.)). x (B,T,C) -> (B,T,C).
engine::Var block_forward(engine::Graph& g, engine::ParamStore& store, const BlockParams& p, const engine::Var& x,
                          const GPT2Config& config);
// Just the attention half: x + attn_proj(attention(qkv(ln1(x)))). x (B,T,C) -> (B,T,C).
engine::Var block_attention_forward(engine::Graph& g, engine::ParamStore& store, const BlockParams& p,
                                    const engine::Var& x, const GPT2Config& config);
// Just the MLP branch, without the residual: fc_proj(gelu(fc(ln2(x)))). x (B,T,C) -> (B,T,C).
engine::Var block_mlp_branch(engine::Graph& g, engine::ParamStore& store, const BlockParams& p,
                             const engine::Var& x);
// (B,T,Vp) logits = ln_f(x) @ wte^T (tied head). Padded columns V..Vp-1 come out as whatever the padding rows of
// wte give (zero-initialised: 0); the loss ignores them.
engine::Var head_logits(engine::Graph& g, engine::ParamStore& store, const FinalNormParams& norm, int wte_index,
                        const engine::Var& x);
// (1) mean cross-entropy of the logits above against targets (B,T) i32. logits_out, when given, receives the
// logits Var (B,T,Vp).
engine::Var head_loss(engine::Graph& g, engine::ParamStore& store, const FinalNormParams& norm, int wte_index,
                      const engine::Var& x, const engine::Tensor& targets, const GPT2Config& config,
                      engine::Var* logits_out = nullptr);

// Bytes each of a Graph's two activation arenas needs for `num_layers` blocks plus (when with_embed/with_head)
// the embedding and the head, at batch B and length T. An upper bound with margin for alignment; pass it to the
// Graph constructor. Graph::peak_activation_bytes() tells what a step really used.
size_t gpt2_activation_bytes(const GPT2Config& config, int B, int T, int num_layers, bool with_embed,
                             bool with_head);
// The same per arena under a precision: fp32 gives gpt2_activation_bytes to each; bf16 counts what the bf16 ops
// allocate (2-byte activations and gradients, fp32 statistics, no (B,NH,T,T) tensor: flash attention keeps the
// (B,NH,T) log-sum-exp), so that llm.c's batch sizes fit on a GPU.
engine::ArenaBytes gpt2_arena_bytes(const GPT2Config& config, int B, int T, int num_layers, bool with_embed,
                                    bool with_head, engine::Precision precision);

// ---------------------------------------------------------------------------------------------------------------
// Initialisation (GPT-2's, as llm.c): weights N(0, 0.02); residual projections attn_proj_w and fc_proj_w
// N(0, 0.02 / sqrt(2L)); wpe N(0, 0.01); layernorm gains 1; biases 0; wte's padding rows 0.

// A small deterministic RNG of our own (splitmix64-seeded xorshift64* for bits, Box-Muller for normals). No global
// state: each caller owns one; the same seed gives the same stream on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next_u64();
  double uniform();  // [0, 1)
  double normal();   // N(0, 1)
 private:
  uint64_t state_;
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// Each tensor draws from its own stream, seeded by (seed, parameter name): a pipeline stage that declares only
// blocks 4..7 initialises them exactly as the whole model does, whatever else its store holds.
uint64_t param_seed(uint64_t seed, const std::string& param_name);
// Fills one allocated parameter (any device) with N(0, std) drawn from param_seed(seed, its name), or a constant.
void init_normal(engine::ParamStore& store, int index, float std, uint64_t seed);
// The same from param_seed(seed, seed_name): a parameter that must start equal to another (an untied head = wte).
void init_normal_as(engine::ParamStore& store, int index, float std, uint64_t seed, const std::string& seed_name);
void init_constant(engine::ParamStore& store, int index, float value);
// K orthonormal rows of length C (K <= C), row-major (K,C): Gaussian rows drawn from stream_seed, then modified
// Gram-Schmidt in double, so that every stage (and rank) that asks gets the same bits.
void orthonormal_rows(float* rows /*(K,C)*/, int K, int C, uint64_t stream_seed);

void init_embeddings(engine::ParamStore& store, const EmbeddingParams& p, const GPT2Config& config, uint64_t seed);
void init_block(engine::ParamStore& store, const BlockParams& p, const GPT2Config& config, uint64_t seed);
void init_final_norm(engine::ParamStore& store, const FinalNormParams& p);

// ---------------------------------------------------------------------------------------------------------------
// The whole model in one process (tests, the single-process trainer, checkpoint import/export).

class GPT2 {
 public:
  // Declares every parameter in llm.c's order and allocates the store. Throws std::invalid_argument on a bad
  // config.
  // precision: the parameter policy (engine/params.h, docs/bf16_policy.md); under bf16 the model runs the bf16
  // ops on the store's bf16 copy.
  GPT2(const GPT2Config& config, engine::Device device = engine::Device::cpu,
       engine::Precision precision = engine::Precision::fp32);

  // GPT-2 initialisation from a seed (deterministic; see param_seed); under bf16 the copy is then synced.
  void init(uint64_t seed);

  // (1) mean loss; tokens, targets (B,T) i32. The logits (B,T,Vp) stay reachable through logits() until the
  // graph is reset.
  engine::Var forward(engine::Graph& g, const engine::Tensor& tokens, const engine::Tensor& targets);
  // (B,T,Vp) logits only (no loss).
  engine::Var forward_logits(engine::Graph& g, const engine::Tensor& tokens);
  const engine::Var& logits() const { return logits_; }

  const GPT2Config& config() const { return config_; }
  engine::ParamStore& params() { return store_; }
  const engine::ParamStore& params() const { return store_; }
  const EmbeddingParams& embeddings() const { return embed_; }
  const std::vector<BlockParams>& blocks() const { return blocks_; }
  const FinalNormParams& final_norm() const { return final_norm_; }

  // Activation bytes for a Graph running this model at (B, T) (fp32: each arena; arena_bytes: per arena, for the
  // store's precision).
  size_t activation_bytes(int B, int T) const;
  engine::ArenaBytes arena_bytes(int B, int T) const;

 private:
  engine::Var trunk(engine::Graph& g, const engine::Tensor& tokens);  // embeddings + blocks: (B,T,C)
  GPT2Config config_;
  engine::ParamStore store_;
  EmbeddingParams embed_;
  std::vector<BlockParams> blocks_;
  FinalNormParams final_norm_;
  engine::Var logits_;
};

}  // namespace resbm
