// resbm/gpt2.cc: GPT-2 parameter declaration, the forward pieces (embedding, block, head) and the whole model.
#include "resbm/gpt2.h"

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/ops.h"

namespace resbm {
namespace {

using engine::ParamKind;
using engine::ParamStore;
using engine::Tensor;
using engine::Var;

// The twelve tensors of a block, in llm.c's order, with their shapes (C units) and kinds. One table drives both
// declare_block (per block) and declare_blocks_llmc_order (per tensor across blocks), so the names cannot drift.
struct BlockTensor {
  const char* suffix;
  int rows_c, cols_c;  // shape (rows_c * C, cols_c * C); cols_c 0 for a vector
  ParamKind kind;
  int BlockParams::*field;
};

constexpr BlockTensor kBlockTensors[] = {
    {"ln_1.weight", 1, 0, ParamKind::vector, &BlockParams::ln1_w},
    {"ln_1.bias", 1, 0, ParamKind::vector, &BlockParams::ln1_b},
    {"attn.c_attn.weight", 3, 1, ParamKind::matrix, &BlockParams::qkv_w},
    {"attn.c_attn.bias", 3, 0, ParamKind::vector, &BlockParams::qkv_b},
    {"attn.c_proj.weight", 1, 1, ParamKind::matrix, &BlockParams::attn_proj_w},
    {"attn.c_proj.bias", 1, 0, ParamKind::vector, &BlockParams::attn_proj_b},
    {"ln_2.weight", 1, 0, ParamKind::vector, &BlockParams::ln2_w},
    {"ln_2.bias", 1, 0, ParamKind::vector, &BlockParams::ln2_b},
    {"mlp.c_fc.weight", 4, 1, ParamKind::matrix, &BlockParams::fc_w},
    {"mlp.c_fc.bias", 4, 0, ParamKind::vector, &BlockParams::fc_b},
    {"mlp.c_proj.weight", 1, 4, ParamKind::matrix, &BlockParams::fc_proj_w},
    {"mlp.c_proj.bias", 1, 0, ParamKind::vector, &BlockParams::fc_proj_b},
};

NamedShape block_tensor_shape(const std::string& prefix, const BlockTensor& t, int64_t C) {
  NamedShape s{prefix + t.suffix, {t.rows_c * C}};
  if (t.cols_c != 0) s.shape.push_back(t.cols_c * C);
  return s;
}

int declare_block_tensor(ParamStore& store, const std::string& prefix, const BlockTensor& t, int64_t C) {
  const NamedShape s = block_tensor_shape(prefix, t, C);
  if (s.shape.size() == 1) return store.declare(s.name, {s.shape[0]}, t.kind);
  return store.declare(s.name, {s.shape[0], s.shape[1]}, t.kind);
}

// Token ids must index real vocabulary rows: a bad id would read padding rows or out of bounds.
void check_ids(const Tensor& ids, const char* what, int vocab_size) {
  if (ids.dtype != engine::DType::i32 || ids.ndim != 2) {
    throw std::invalid_argument(std::string("GPT-2: ") + what + " must be an i32 (B,T) tensor, got " +
                                ids.describe());
  }
  if (ids.device != engine::Device::cpu) return;  // device tensors are checked where they are made
  const int32_t* p = ids.i32();
  for (int64_t i = 0; i < ids.numel(); ++i) {
    if (p[i] < 0 || p[i] >= vocab_size) {
      throw std::invalid_argument(std::string("GPT-2: ") + what + "[" + std::to_string(i) + "] = " +
                                  std::to_string(p[i]) + " is outside the vocabulary [0, " +
                                  std::to_string(vocab_size) + ")");
    }
  }
}

}  // namespace

std::string block_prefix(int layer) { return "h." + std::to_string(layer) + "."; }

EmbeddingParams declare_embeddings(ParamStore& store, const GPT2Config& config) {
  EmbeddingParams p;
  p.wte = store.declare("wte", {config.padded_vocab_size, config.channels}, ParamKind::embedding);
  p.wpe = store.declare("wpe", {config.max_seq_len, config.channels}, ParamKind::embedding);
  return p;
}

BlockParams declare_block(ParamStore& store, const std::string& prefix, const GPT2Config& config) {
  BlockParams p;
  for (const BlockTensor& t : kBlockTensors) p.*t.field = declare_block_tensor(store, prefix, t, config.channels);
  return p;
}

BlockParams declare_block_shaped(ParamStore& s, const std::string& prefix, const GPT2Config& config,
                                 const BlockShape& shape) {
  const int64_t C = config.channels, A = shape.attn_out, H = shape.mlp_hidden, O = shape.mlp_out;
  BlockParams p;  // declare_block's order and kinds
  p.ln1_w = s.declare(prefix + "ln_1.weight", {C}, ParamKind::vector);
  p.ln1_b = s.declare(prefix + "ln_1.bias", {C}, ParamKind::vector);
  p.qkv_w = s.declare(prefix + "attn.c_attn.weight", {3 * C, C}, ParamKind::matrix);
  p.qkv_b = s.declare(prefix + "attn.c_attn.bias", {3 * C}, ParamKind::vector);
  p.attn_proj_w = s.declare(prefix + shape.attn_proj + ".weight", {A, C}, ParamKind::matrix);
  p.attn_proj_b = s.declare(prefix + shape.attn_proj + ".bias", {A}, ParamKind::vector);
  p.ln2_w = s.declare(prefix + "ln_2.weight", {C}, ParamKind::vector);
  p.ln2_b = s.declare(prefix + "ln_2.bias", {C}, ParamKind::vector);
  p.fc_w = s.declare(prefix + "mlp.c_fc.weight", {H, C}, ParamKind::matrix);
  p.fc_b = s.declare(prefix + "mlp.c_fc.bias", {H}, ParamKind::vector);
  p.fc_proj_w = s.declare(prefix + shape.mlp_proj + ".weight", {O, H}, ParamKind::matrix);
  p.fc_proj_b = s.declare(prefix + shape.mlp_proj + ".bias", {O}, ParamKind::vector);
  return p;
}

std::vector<BlockParams> declare_blocks_llmc_order(ParamStore& store, int first, int last,
                                                   const GPT2Config& config) {
  std::vector<BlockParams> blocks(last - first);
  for (const BlockTensor& t : kBlockTensors) {
    for (int l = first; l < last; ++l) {
      blocks[l - first].*t.field = declare_block_tensor(store, block_prefix(l), t, config.channels);
    }
  }
  return blocks;
}

FinalNormParams declare_final_norm(ParamStore& store, const GPT2Config& config) {
  FinalNormParams p;
  p.lnf_w = store.declare("ln_f.weight", {config.channels}, ParamKind::vector);
  p.lnf_b = store.declare("ln_f.bias", {config.channels}, ParamKind::vector);
  return p;
}

int64_t NamedShape::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::vector<NamedShape> gpt2_llmc_layout(const GPT2Config& config) {
  const int64_t C = config.channels;
  std::vector<NamedShape> layout;
  layout.push_back({"wte", {config.padded_vocab_size, C}});
  layout.push_back({"wpe", {config.max_seq_len, C}});
  for (const BlockTensor& t : kBlockTensors) {
    for (int l = 0; l < config.num_layers; ++l) {
      layout.push_back(block_tensor_shape(block_prefix(l), t, C));
    }
  }
  layout.push_back({"ln_f.weight", {C}});
  layout.push_back({"ln_f.bias", {C}});
  return layout;
}

Var embed_forward(engine::Graph& g, ParamStore& store, const EmbeddingParams& p, const Tensor& tokens) {
  const Var& wte = store.model_var(p.wte);
  const Var& wpe = store.model_var(p.wpe);
  // wte is (Vp, C); the real vocabulary is not known here, so only the padded bound is checked.
  check_ids(tokens, "tokens", static_cast<int>(wte.value.dim(0)));
  if (tokens.dim(1) > wpe.value.dim(0)) {
    throw std::invalid_argument("GPT-2: sequence length T=" + std::to_string(tokens.dim(1)) +
                                " exceeds max_seq_len=" + std::to_string(wpe.value.dim(0)));
  }
  return engine::embedding(g, tokens, wte, wpe);  // (B,T,C)
}

namespace {

// ln1 -> qkv -> attention -> projection: the attention branch added to the residual stream x.
Var block_attention_branch(engine::Graph& g, ParamStore& store, const BlockParams& p, const Var& x,
                           const GPT2Config& config) {
  Var ln1 = engine::layernorm(g, x, store.model_var(p.ln1_w), store.model_var(p.ln1_b));       // (B,T,C)
  Var qkv = engine::matmul(g, ln1, store.model_var(p.qkv_w), store.model_var(p.qkv_b));         // (B,T,3C)
  Var atty = engine::attention(g, qkv, config.num_heads);                                       // (B,T,C)
  return engine::matmul(g, atty, store.model_var(p.attn_proj_w), store.model_var(p.attn_proj_b));  // (B,T,C)
}

// fc -> gelu -> projection of the normalised stream ln2.
Var block_mlp_of_normed(engine::Graph& g, ParamStore& store, const BlockParams& p, const Var& ln2) {
  Var fch = engine::matmul(g, ln2, store.model_var(p.fc_w), store.model_var(p.fc_b));               // (B,T,4C)
  Var fch_gelu = engine::gelu(g, fch);                                                              // (B,T,4C)
  return engine::matmul(g, fch_gelu, store.model_var(p.fc_proj_w), store.model_var(p.fc_proj_b));  // (B,T,C or K)
}

}  // namespace

Var block_attention_forward(engine::Graph& g, ParamStore& store, const BlockParams& p, const Var& x,
                            const GPT2Config& config) {
  return engine::add(g, x, block_attention_branch(g, store, p, x, config));  // (B,T,C)
}

Var block_mlp_branch(engine::Graph& g, ParamStore& store, const BlockParams& p, const Var& x) {
  Var ln2 = engine::layernorm(g, x, store.model_var(p.ln2_w), store.model_var(p.ln2_b));  // (B,T,C)
  return block_mlp_of_normed(g, store, p, ln2);
}

Var block_forward(engine::Graph& g, ParamStore& store, const BlockParams& p, const Var& x,
                  const GPT2Config& config) {
  // The residual add and ln2 in one op (one kernel under bf16; the same tape and numbers as add then layernorm).
  const engine::AddLayernorm residual2 = engine::add_layernorm(g, x, block_attention_branch(g, store, p, x, config),
                                                               store.model_var(p.ln2_w), store.model_var(p.ln2_b));
  Var fcproj = block_mlp_of_normed(g, store, p, residual2.normed);  // (B,T,C)
  return engine::add(g, residual2.sum, fcproj);                      // (B,T,C)
}

Var head_logits(engine::Graph& g, ParamStore& store, const FinalNormParams& norm, int wte_index, const Var& x) {
  Var lnf = engine::layernorm(g, x, store.model_var(norm.lnf_w), store.model_var(norm.lnf_b));  // (B,T,C)
  return engine::matmul(g, lnf, store.model_var(wte_index));                              // (B,T,Vp), tied head
}

Var head_loss(engine::Graph& g, ParamStore& store, const FinalNormParams& norm, int wte_index, const Var& x,
              const Tensor& targets, const GPT2Config& config, Var* logits_out) {
  check_ids(targets, "targets", config.vocab_size);
  Var logits = head_logits(g, store, norm, wte_index, x);                        // (B,T,Vp)
  if (logits_out != nullptr) *logits_out = logits;
  return engine::softmax_crossentropy(g, logits, targets, config.vocab_size);  // (1)
}

// ---------------------------------------------------------------------------------------------------------------

namespace {
GPT2Config validated(const GPT2Config& config) {
  validate_config(config);
  return config;
}
}  // namespace

GPT2::GPT2(const GPT2Config& config, engine::Device device, engine::Precision precision)
    : config_(validated(config)), store_(device, precision) {
  // llm.c's order (wte, wpe, all ln_1.weight, ...), so that the store lists tensors as llm.c's files do.
  embed_ = declare_embeddings(store_, config_);
  blocks_ = declare_blocks_llmc_order(store_, 0, config_.num_layers, config_);
  final_norm_ = declare_final_norm(store_, config_);
  store_.allocate();
}

void GPT2::init(uint64_t seed) {
  init_embeddings(store_, embed_, config_, seed);
  for (const BlockParams& b : blocks_) init_block(store_, b, config_, seed);
  init_final_norm(store_, final_norm_);
  store_.sync_model_copy();  // the bf16 copy = the masters rounded to nearest (no-op under fp32)
}

Var GPT2::trunk(engine::Graph& g, const Tensor& tokens) {
  check_ids(tokens, "tokens", config_.vocab_size);
  Var x = embed_forward(g, store_, embed_, tokens);  // (B,T,C)
  for (const BlockParams& b : blocks_) x = block_forward(g, store_, b, x, config_);
  return x;  // (B,T,C)
}

Var GPT2::forward(engine::Graph& g, const Tensor& tokens, const Tensor& targets) {
  if (targets.ndim != 2 || targets.dim(0) != tokens.dim(0) || targets.dim(1) != tokens.dim(1)) {
    throw std::invalid_argument("GPT2::forward: targets " + targets.describe() + " must have the shape of tokens " +
                                tokens.describe());
  }
  Var x = trunk(g, tokens);  // (B,T,C)
  return head_loss(g, store_, final_norm_, embed_.wte, x, targets, config_, &logits_);
}

Var GPT2::forward_logits(engine::Graph& g, const Tensor& tokens) {
  Var x = trunk(g, tokens);  // (B,T,C)
  logits_ = head_logits(g, store_, final_norm_, embed_.wte, x);
  return logits_;  // (B,T,Vp)
}

size_t GPT2::activation_bytes(int B, int T) const {
  return gpt2_activation_bytes(config_, B, T, config_.num_layers, true, true);
}

engine::ArenaBytes GPT2::arena_bytes(int B, int T) const {
  return gpt2_arena_bytes(config_, B, T, config_.num_layers, true, true, store_.precision());
}

}  // namespace resbm
