// resbm/bottleneck.cc: the ResBM encoder/decoder and the baselines (none, linear, ae, quant), built from engine
// ops. Our reading of the paper: see resbm/bottleneck.h.
#include "resbm/bottleneck.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/ops.h"
#include "resbm/gpt2.h"

namespace resbm {

using engine::ParamKind;
using engine::ParamStore;
using engine::Var;

BottleneckKind parse_bottleneck_kind(const std::string& name) {
  if (name == "none") return BottleneckKind::none;
  if (name == "resbm") return BottleneckKind::resbm;
  if (name == "linear") return BottleneckKind::linear;
  if (name == "ae") return BottleneckKind::ae;
  if (name == "quant") return BottleneckKind::quant;
  if (name == "ssn") return BottleneckKind::ssn;
  throw std::invalid_argument("unknown --bottleneck '" + name + "': expected none, resbm, linear, ae, quant or ssn");
}

IdentityPath parse_identity_path(const std::string& name) {
  if (name == "slice") return IdentityPath::slice;
  if (name == "orthogonal") return IdentityPath::orthogonal;
  if (name == "learned") return IdentityPath::learned;
  throw std::invalid_argument("unknown --bottleneck-identity '" + name + "': expected slice, orthogonal or learned");
}

ResbmLayout parse_resbm_layout(const std::string& name) {
  if (name == "module") return ResbmLayout::module;
  if (name == "fused") return ResbmLayout::fused;
  throw std::invalid_argument("unknown --resbm-layout '" + name + "': expected module or fused");
}

Reinjection parse_reinjection(const std::string& name) {
  if (name == "off") return Reinjection::off;
  if (name == "zeros") return Reinjection::zeros;
  if (name == "copy") return Reinjection::copy;
  throw std::invalid_argument("unknown --reinject-tokens '" + name + "': expected off, zeros or copy");
}

const char* reinjection_name(Reinjection reinject) {
  switch (reinject) {
    case Reinjection::off: return "off";
    case Reinjection::zeros: return "zeros";
    case Reinjection::copy: return "copy";
  }
  return "?";
}

const char* bottleneck_kind_name(BottleneckKind kind) {
  switch (kind) {
    case BottleneckKind::none: return "none";
    case BottleneckKind::resbm: return "resbm";
    case BottleneckKind::linear: return "linear";
    case BottleneckKind::ae: return "ae";
    case BottleneckKind::quant: return "quant";
    case BottleneckKind::ssn: return "ssn";
  }
  return "?";
}

const char* identity_path_name(IdentityPath identity) {
  switch (identity) {
    case IdentityPath::slice: return "slice";
    case IdentityPath::orthogonal: return "orthogonal";
    case IdentityPath::learned: return "learned";
  }
  return "?";
}

const char* resbm_layout_name(ResbmLayout layout) { return layout == ResbmLayout::module ? "module" : "fused"; }

namespace {
bool compresses(BottleneckKind kind) {
  return kind == BottleneckKind::resbm || kind == BottleneckKind::linear || kind == BottleneckKind::ae ||
         kind == BottleneckKind::ssn;
}
bool has_mlp(BottleneckKind kind) { return kind == BottleneckKind::resbm || kind == BottleneckKind::ae; }
// The identity path needs a matrix (rather than a slice/pad): linear always, resbm unless P is the slice.
bool has_matrix(const BottleneckConfig& c) {
  return c.kind == BottleneckKind::linear || (c.kind == BottleneckKind::resbm && c.identity != IdentityPath::slice);
}
// Where the identity matrix lives: trained unless resbm's P is the fixed orthogonal basis.
bool matrix_trained(const BottleneckConfig& c) {
  return c.kind == BottleneckKind::linear || c.identity == IdentityPath::learned;
}
std::string prefix(int boundary, const char* side) {
  return "bottleneck." + std::to_string(boundary) + "." + side + ".";
}
// The ops read a store's model_var: the parameter itself under fp32, its bf16 copy under the bf16 policy.
Var fixed_var(ParamStore& store, int index) { return Var{store.model_var(index).value, engine::Tensor{}}; }
Var matrix_var(const BottleneckConfig& c, ParamStore& trained, ParamStore& fixed, int index) {
  return matrix_trained(c) ? trained.model_var(index) : fixed_var(fixed, index);
}
}  // namespace

void validate_bottleneck(const BottleneckConfig& config, int C) {
  if (config.kind == BottleneckKind::resbm && config.layout == ResbmLayout::fused &&
      config.identity != IdentityPath::slice) {
    throw std::invalid_argument("--resbm-layout fused keeps IOTA's slice identity; --bottleneck-identity " +
                                std::string(identity_path_name(config.identity)) + " needs --resbm-layout module");
  }
  if (config.kind == BottleneckKind::ssn) {
    // ssn has no encoder/decoder modules, identity choice or layout: refuse the flags that would silently do nothing.
    if (config.identity != IdentityPath::slice || config.layout != ResbmLayout::module || config.hidden != 0) {
      throw std::invalid_argument("--bottleneck ssn has no identity path, layout or bottleneck MLP: drop "
                                  "--bottleneck-identity, --resbm-layout and --bottleneck-hidden (its MLP width is "
                                  "4C, or set by --ssn-match-params)");
    }
    if (config.reinject != Reinjection::off) {
      throw std::invalid_argument("--reinject-tokens does not apply to ssn: it rebuilds the frozen token embedding on every "
                                  "stage already");
    }
  } else if (config.ssn_match_params) {
    throw std::invalid_argument("--ssn-match-params applies to --bottleneck ssn only");
  }
  if (config.code_channels != 0 && !compresses(config.kind)) {
    throw std::invalid_argument("--code-width applies to resbm, linear, ae and ssn; --bottleneck " +
                                std::string(bottleneck_kind_name(config.kind)) + " sends all C channels");
  }
  if (compresses(config.kind) && config.code_channels != 0) {
    if (config.code_channels < 1 || config.code_channels > C) {
      throw std::invalid_argument("--code-width must be in [1, C = " + std::to_string(C) + "], got " +
                                  std::to_string(config.code_channels));
    }
  } else if (compresses(config.kind)) {
    if (config.ratio < 1) throw std::invalid_argument("--ratio must be >= 1, got " + std::to_string(config.ratio));
    if (C % config.ratio != 0) {
      throw std::invalid_argument("--ratio " + std::to_string(config.ratio) + " does not divide C = " +
                                  std::to_string(C) + " (K = C / r must be a whole number of channels; or set the "
                                  "code's width directly with --code-width K)");
    }
  }
  if (config.hidden < 0) throw std::invalid_argument("--bottleneck-hidden must be >= 0 (0: default)");
  if (config.reinject != Reinjection::off && config.kind == BottleneckKind::resbm &&
      config.layout == ResbmLayout::fused) {
    throw std::invalid_argument("--reinject-tokens adds to the decoded stream x', which the fused layout never forms "
                                "(its decoder lives inside the next block's attention): use --resbm-layout module");
  }
}

int code_width(const BottleneckConfig& config, int C) {
  if (!compresses(config.kind)) return C;
  return config.code_channels > 0 ? config.code_channels : C / config.ratio;
}

int hidden_width(const BottleneckConfig& config, int C) {
  if (config.hidden > 0) return config.hidden;
  const int K = code_width(config, C);
  return K > C / 4 ? K : C / 4;
}

engine::comm::WireDType wire_dtype(const BottleneckConfig& config) {
  return config.kind == BottleneckKind::quant ? engine::comm::WireDType::i8 : config.code_dtype;
}

std::string describe_bottleneck(const BottleneckConfig& config, int C) {
  std::string s = bottleneck_kind_name(config.kind);
  const int K = code_width(config, C);
  if (compresses(config.kind) && config.code_channels == 0) s += " r=" + std::to_string(config.ratio);
  s += " K=" + std::to_string(K);
  if (config.kind == BottleneckKind::resbm || config.kind == BottleneckKind::linear) {
    s += std::string(" identity=") + identity_path_name(config.identity);
  }
  if (config.kind == BottleneckKind::ssn && config.ssn_match_params) s += " match-params";
  if (has_mlp(config.kind)) {
    s += std::string(" layout=") + resbm_layout_name(config.layout) + " H=" + std::to_string(hidden_width(config, C));
  }
  s += std::string(" code=") + engine::comm::wire_dtype_name(wire_dtype(config));
  if (config.reinject != Reinjection::off) s += std::string(" reinject=") + reinjection_name(config.reinject);
  return s;
}

void orthonormal_basis_rows(float* pt, int K, int C, uint64_t seed, int boundary) {
  orthonormal_rows(pt, K, C, param_seed(seed, "bottleneck." + std::to_string(boundary) + ".basis"));
}

namespace {

// P^T (K,C) of the config's identity choice: one-hot rows for the slice, else the orthonormal basis.
std::vector<float> identity_rows(const BottleneckConfig& config, int K, int C, uint64_t seed, int boundary) {
  std::vector<float> pt(static_cast<size_t>(K) * C, 0.0f);
  if (config.identity == IdentityPath::slice) {
    for (int k = 0; k < K; ++k) pt[static_cast<size_t>(k) * C + k] = 1.0f;
  } else {
    orthonormal_basis_rows(pt.data(), K, C, seed, boundary);
  }
  return pt;
}

// Through engine::copy_from_host, so that a store on the GPU is filled from these host values as well.
void upload(ParamStore& store, int index, const std::vector<float>& values) {
  const engine::Tensor& dst = store.var(index).value;
  if (static_cast<size_t>(dst.numel()) != values.size()) {
    throw std::logic_error("bottleneck init: " + std::to_string(values.size()) + " values for a tensor of " +
                           std::to_string(dst.numel()));
  }
  engine::copy_from_host(dst, values.data());
}

// The residual branch MLP: in -> [ln] -> (H) -> gelu -> (out). Declared in `store` under prefix.
// The encoder normalises its input x (width C, the residual stream). The decoder must NOT normalise its input z:
// a LayerNorm over the K code channels removes the code's mean and scale (at K = 1, x - mean is exactly 0, so the
// branch would output its LayerNorm bias and pass back no gradient; at K = 4 it erases 2 of 4 degrees of freedom).
// The decoder's branch is V2 gelu(V1 z + c1) + c2 (IOTA's decoder is likewise an activation of a plain linear map
// of z), so every code channel reaches x'. ln_w/ln_b are -1 without the norm.
struct Mlp {
  int ln_w = -1, ln_b = -1, w1, b1, w2, b2;
};
Mlp declare_mlp(ParamStore& store, const std::string& p, int in, int H, int out, bool normalise_input) {
  Mlp m;
  if (normalise_input) {
    m.ln_w = store.declare(p + "ln.weight", {in}, ParamKind::vector);
    m.ln_b = store.declare(p + "ln.bias", {in}, ParamKind::vector);
  }
  m.w1 = store.declare(p + "fc1.weight", {H, in}, ParamKind::matrix);
  m.b1 = store.declare(p + "fc1.bias", {H}, ParamKind::vector);
  m.w2 = store.declare(p + "fc2.weight", {out, H}, ParamKind::matrix);
  m.b2 = store.declare(p + "fc2.bias", {out}, ParamKind::vector);
  return m;
}
void init_mlp(ParamStore& store, int ln_w, int ln_b, int w1, int b1, int w2, int b2, bool zero_last, uint64_t seed) {
  if (ln_w >= 0) {
    init_constant(store, ln_w, 1.0f);
    init_constant(store, ln_b, 0.0f);
  }
  init_normal(store, w1, 0.02f, seed);
  init_constant(store, b1, 0.0f);
  if (zero_last) {
    init_constant(store, w2, 0.0f);
  } else {
    init_normal(store, w2, 0.02f, seed);
  }
  init_constant(store, b2, 0.0f);
}
Var mlp_forward(engine::Graph& g, ParamStore& s, int ln_w, int ln_b, int w1, int b1, int w2, int b2, const Var& x) {
  Var h = ln_w >= 0 ? engine::layernorm(g, x, s.model_var(ln_w), s.model_var(ln_b)) : x;  // (B,T,in)
  h = engine::matmul(g, h, s.model_var(w1), s.model_var(b1));                                     // (B,T,H)
  h = engine::gelu(g, h);                                                                         // (B,T,H)
  return engine::matmul(g, h, s.model_var(w2), s.model_var(b2));                                  // (B,T,out)
}

}  // namespace

// ---- encoder

BottleneckEncoder::BottleneckEncoder(ParamStore& trained, ParamStore& fixed, const BottleneckConfig& config,
                                     int boundary, int C)
    : config_(config), boundary_(boundary), C_(C) {
  validate_bottleneck(config, C);
  K_ = resbm::code_width(config, C);
  H_ = hidden_width(config, C);
  const std::string p = prefix(boundary, "enc");
  if (has_matrix(config)) {
    ParamStore& store = matrix_trained(config) ? trained : fixed;
    p_ = store.declare(p + (config.kind == BottleneckKind::linear ? "u.weight" : "p.weight"), {K_, C},
                       ParamKind::matrix);  // (K,C): z = x P via matmul's x @ W^T
  }
  if (has_mlp(config.kind)) {
    const Mlp m = declare_mlp(trained, p, C, H_, K_, /*normalise_input=*/true);  // ln over x (width C)
    ln_w_ = m.ln_w, ln_b_ = m.ln_b, w1_ = m.w1, b1_ = m.b1, w2_ = m.w2, b2_ = m.b2;
  }
}

void BottleneckEncoder::init(ParamStore& trained, ParamStore& fixed, uint64_t seed) const {
  if (p_ >= 0) {
    upload(matrix_trained(config_) ? trained : fixed, p_, identity_rows(config_, K_, C_, seed, boundary_));
  }
  if (w1_ >= 0) {
    init_mlp(trained, ln_w_, ln_b_, w1_, b1_, w2_, b2_, /*zero_last=*/config_.kind == BottleneckKind::resbm, seed);
  }
}

Var BottleneckEncoder::forward(engine::Graph& g, ParamStore& trained, ParamStore& fixed, const Var& x) const {
  // x (B,T,C) -> z (B,T,K)
  switch (config_.kind) {
    case BottleneckKind::ssn:
      throw std::logic_error("BottleneckEncoder: ssn is built by the stage model (resbm/ssn.h)");
    case BottleneckKind::none:
    case BottleneckKind::quant:
      return x;  // the full stream; quant's 8 bits are applied on the wire
    case BottleneckKind::linear:
      return engine::matmul(g, x, trained.model_var(p_));  // x U
    case BottleneckKind::ae:
      return mlp_forward(g, trained, ln_w_, ln_b_, w1_, b1_, w2_, b2_, x);
    case BottleneckKind::resbm: {
      const Var identity = p_ < 0 ? engine::slice_columns(g, x, 0, K_)  // x [I_K; 0]
                                  : engine::matmul(g, x, matrix_var(config_, trained, fixed, p_));  // x P
      const Var branch = mlp_forward(g, trained, ln_w_, ln_b_, w1_, b1_, w2_, b2_, x);             // f_enc(x)
      return engine::add(g, identity, branch);
    }
  }
  throw std::logic_error("BottleneckEncoder: unknown kind");
}

// ---- decoder

BottleneckDecoder::BottleneckDecoder(ParamStore& trained, ParamStore& fixed, const BottleneckConfig& config,
                                     int boundary, int C)
    : config_(config), boundary_(boundary), C_(C) {
  validate_bottleneck(config, C);
  K_ = resbm::code_width(config, C);
  H_ = hidden_width(config, C);
  const std::string p = prefix(boundary, "dec");
  if (has_matrix(config)) {
    ParamStore& store = matrix_trained(config) ? trained : fixed;
    p_ = store.declare(p + (config.kind == BottleneckKind::linear ? "v.weight" : "p.weight"), {C, K_},
                       ParamKind::matrix);  // (C,K): x' = z P^T via matmul's z @ W^T
  }
  if (has_mlp(config.kind)) {
    const Mlp m = declare_mlp(trained, p, K_, H_, C, /*normalise_input=*/false);  // never a norm over z
    ln_w_ = m.ln_w, ln_b_ = m.ln_b, w1_ = m.w1, b1_ = m.b1, w2_ = m.w2, b2_ = m.b2;
  }
}

void BottleneckDecoder::init(ParamStore& trained, ParamStore& fixed, uint64_t seed) const {
  if (p_ >= 0) {
    const std::vector<float> pt = identity_rows(config_, K_, C_, seed, boundary_);  // (K,C)
    std::vector<float> p(pt.size());                                              // (C,K) = transpose
    for (int k = 0; k < K_; ++k) {
      for (int c = 0; c < C_; ++c) p[static_cast<size_t>(c) * K_ + k] = pt[static_cast<size_t>(k) * C_ + c];
    }
    upload(matrix_trained(config_) ? trained : fixed, p_, p);
  }
  if (w1_ >= 0) {
    init_mlp(trained, ln_w_, ln_b_, w1_, b1_, w2_, b2_, /*zero_last=*/config_.kind == BottleneckKind::resbm, seed);
  }
}

Var BottleneckDecoder::forward(engine::Graph& g, ParamStore& trained, ParamStore& fixed, const Var& z) const {
  // z (B,T,K) -> x' (B,T,C)
  switch (config_.kind) {
    case BottleneckKind::ssn:
      throw std::logic_error("BottleneckDecoder: ssn is built by the stage model (resbm/ssn.h)");
    case BottleneckKind::none:
    case BottleneckKind::quant:
      return z;
    case BottleneckKind::linear:
      return engine::matmul(g, z, trained.model_var(p_));  // z V
    case BottleneckKind::ae:
      return mlp_forward(g, trained, ln_w_, ln_b_, w1_, b1_, w2_, b2_, z);
    case BottleneckKind::resbm: {
      const Var identity = p_ < 0 ? engine::pad_columns(g, z, 0, C_)  // z [I_K, 0]
                                  : engine::matmul(g, z, matrix_var(config_, trained, fixed, p_));  // z P^T
      const Var branch = mlp_forward(g, trained, ln_w_, ln_b_, w1_, b1_, w2_, b2_, z);             // f_dec(z)
      return engine::add(g, identity, branch);
    }
  }
  throw std::logic_error("BottleneckDecoder: unknown kind");
}

}  // namespace resbm
