// engine/ops.cc: the differentiable ops (engine/ops.h): each forward pass, and backward_node, the backward dispatch.
#include "engine/ops.h"

#include "engine/check.h"
#include "engine/device.h"
#include "engine/dispatch.h"

namespace engine {

namespace {

void check_f32(const Tensor& t, const char* op, const char* what) {
  ENGINE_CHECK(t.defined(), "%s: %s is undefined", op, what);
  ENGINE_CHECK(t.dtype == DType::f32, "%s: %s must be f32, got %s", op, what, t.describe().c_str());
}

// The activation dtypes an op runs in: f32 (today's kernels) or bf16 (the *_bf16 kernels of the bf16 policy,
// docs/bf16_policy.md). The first activation input decides; every other activation must match.
void check_act(const Tensor& t, DType dtype, const char* op, const char* what) {
  ENGINE_CHECK(t.defined(), "%s: %s is undefined", op, what);
  ENGINE_CHECK(t.dtype == dtype, "%s: %s must be %s (the op runs in %s), got %s", op, what, dtype_name(dtype),
               dtype_name(dtype), t.describe().c_str());
}

bool is_bf16(const Tensor& t) { return t.dtype == DType::bf16; }

// A weight of an op running in `dtype`: its value has that dtype; its gradient, if any, is f32 (under bf16 the
// parameter gradients stay fp32, accumulated by the bf16 backward kernels: docs/bf16_policy.md).
void check_weight(const Var& w, DType dtype, const char* op, const char* what) {
  check_act(w.value, dtype, op, what);
  ENGINE_CHECK(!w.grad.defined() || w.grad.dtype == DType::f32, "%s: %s's gradient must be f32, got %s", op, what,
               w.grad.describe().c_str());
}

void check_device(const Graph& g, const Tensor& t, const char* op, const char* what) {
  ENGINE_CHECK(t.device == g.device(), "%s: %s is on %s, the graph on %s", op, what, t.describe().c_str(),
               device_name(g.device()));
}

bool any_grad(std::initializer_list<const Var*> vars) {
  for (const Var* v : vars) {
    if (v->requires_grad()) return true;
  }
  return false;
}

// A new output Var shaped like `like` with its last dimension replaced by last_dim (0: unchanged).
Var new_like(Graph& g, const Tensor& like, int64_t last_dim, bool requires_grad) {
  int64_t shape[kMaxDims];
  for (int i = 0; i < like.ndim; i++) shape[i] = like.shape[i];
  if (last_dim > 0) shape[like.ndim - 1] = last_dim;
  return g.new_var_shape(shape, like.ndim, like.dtype, requires_grad);
}

// The gradient buffer of v, or scratch of its shape when v needs none (for kernels that always write one).
float* grad_or_scratch(Graph& g, const Var& v) {
  if (v.requires_grad()) return v.grad.f32();
  return g.new_scratch_shape(v.value.shape, v.value.ndim).f32();
}

// Likewise for a bf16 activation gradient.
uint16_t* grad_or_scratch_bf16(Graph& g, const Var& v) {
  if (v.requires_grad()) return v.grad.u16();
  return g.new_scratch_shape(v.value.shape, v.value.ndim, DType::bf16).u16();
}

float* grad_or_null(const Var& v) { return v.requires_grad() ? v.grad.f32() : nullptr; }

TapeNode make_node(OpKind kind, const Var& output) {
  TapeNode node{};
  node.kind = kind;
  node.output = output;
  node.precision = DType::f32;
  return node;
}

size_t count(const Tensor& t) { return static_cast<size_t>(t.numel()); }

}  // namespace

// ---- forward passes

Var embedding(Graph& g, const Tensor& tokens, const Var& wte, const Var& wpe) {
  ENGINE_CHECK(tokens.dtype == DType::i32 && tokens.ndim == 2, "embedding: tokens must be i32 (B,T), got %s",
               tokens.describe().c_str());
  const DType dt = wte.value.dtype;  // bf16 weights: the bf16 policy
  ENGINE_CHECK(dt == DType::f32 || dt == DType::bf16, "embedding: wte must be f32 or bf16, got %s",
               wte.value.describe().c_str());
  check_weight(wte, dt, "embedding", "wte");
  check_weight(wpe, dt, "embedding", "wpe");
  check_device(g, tokens, "embedding", "tokens");
  check_device(g, wte.value, "embedding", "wte");
  check_device(g, wpe.value, "embedding", "wpe");
  const int B = static_cast<int>(tokens.dim(0)), T = static_cast<int>(tokens.dim(1));
  const int C = static_cast<int>(wte.value.dim(1));
  ENGINE_CHECK(wpe.value.dim(1) == C && T <= wpe.value.dim(0), "embedding: wte %s, wpe %s, T=%d do not fit",
               wte.value.describe().c_str(), wpe.value.describe().c_str(), T);
  if (tokens.device == Device::cpu) {
    const int32_t* tok = tokens.i32();
    for (int64_t i = 0; i < tokens.numel(); i++) {
      ENGINE_CHECK(tok[i] >= 0 && tok[i] < wte.value.dim(0), "embedding: token %d at %lld is outside [0, %lld)",
                   tok[i], static_cast<long long>(i), static_cast<long long>(wte.value.dim(0)));
    }
  }
  Var out = g.new_var({B, T, C}, dt, any_grad({&wte, &wpe}));
  if (dt == DType::bf16) {
    KERNEL(g.device(), embedding_forward_bf16, g.ctx(), out.value.u16(), tokens.i32(), wte.value.u16(),
           wpe.value.u16(), B, T, C);
  } else {
    KERNEL(g.device(), embedding_forward, g.ctx(), out.value.f32(), tokens.i32(), wte.value.f32(),
           wpe.value.f32(), B, T, C);
  }
  TapeNode node = make_node(OpKind::embedding, out);
  node.precision = dt;
  node.inputs[0].value = tokens;
  node.inputs[1] = wte;
  node.inputs[2] = wpe;
  node.ints[0] = B;
  node.ints[1] = T;
  node.ints[2] = C;
  g.record(node);
  return out;
}

namespace {

// What layernorm() checks, allocates and records around its kernel: `forward` fills out, mean and rstd.
template <typename Forward>
Var layernorm_node(Graph& g, const Var& x, const Var& weight, const Var& bias, Forward forward) {
  const DType dt = is_bf16(x.value) ? DType::bf16 : DType::f32;
  check_act(x.value, dt, "layernorm", "x");
  check_weight(weight, dt, "layernorm", "weight");
  check_weight(bias, dt, "layernorm", "bias");
  check_device(g, x.value, "layernorm", "x");
  const int64_t C = x.value.dim(-1);
  ENGINE_CHECK(weight.value.numel() == C && bias.value.numel() == C, "layernorm: x %s, weight %s, bias %s",
               x.value.describe().c_str(), weight.value.describe().c_str(), bias.value.describe().c_str());
  const int64_t N = x.value.numel() / C;
  Var out = new_like(g, x.value, 0, any_grad({&x, &weight, &bias}));
  Tensor mean = g.new_saved({N});  // statistics stay fp32
  Tensor rstd = g.new_saved({N});
  forward(out, mean, rstd, static_cast<int>(N), static_cast<int>(C));
  TapeNode node = make_node(OpKind::layernorm, out);
  node.precision = dt;
  node.inputs[0] = x;
  node.inputs[1] = weight;
  node.inputs[2] = bias;
  node.saved[0] = mean;
  node.saved[1] = rstd;
  node.ints[0] = N;
  node.ints[1] = C;
  g.record(node);
  return out;
}

void layernorm_kernel(Graph& g, const Var& out, const Tensor& mean, const Tensor& rstd, const Var& x,
                      const Var& weight, const Var& bias, int N, int C) {
  if (is_bf16(x.value)) {
    KERNEL(g.device(), layernorm_forward_bf16, g.ctx(), out.value.u16(), mean.f32(), rstd.f32(), x.value.u16(),
           weight.value.u16(), bias.value.u16(), N, C);
  } else {
    KERNEL(g.device(), layernorm_forward, g.ctx(), out.value.f32(), mean.f32(), rstd.f32(), x.value.f32(),
           weight.value.f32(), bias.value.f32(), N, C);
  }
}

}  // namespace

Var layernorm(Graph& g, const Var& x, const Var& weight, const Var& bias) {
  return layernorm_node(g, x, weight, bias, [&](const Var& out, const Tensor& mean, const Tensor& rstd, int N, int C) {
    layernorm_kernel(g, out, mean, rstd, x, weight, bias, N, C);
  });
}

Var matmul(Graph& g, const Var& x, const Var& weight, const Var& bias) {
  const DType dt = is_bf16(x.value) ? DType::bf16 : DType::f32;
  check_act(x.value, dt, "matmul", "x");
  check_weight(weight, dt, "matmul", "weight");
  check_device(g, x.value, "matmul", "x");
  check_device(g, weight.value, "matmul", "weight");
  ENGINE_CHECK(weight.value.ndim == 2, "matmul: weight must be (OC,C), got %s", weight.value.describe().c_str());
  const int64_t C = x.value.dim(-1), OC = weight.value.dim(0);
  ENGINE_CHECK(weight.value.dim(1) == C, "matmul: x %s does not match weight %s", x.value.describe().c_str(),
               weight.value.describe().c_str());
  const bool has_bias = bias.value.defined();
  if (has_bias) {
    check_weight(bias, dt, "matmul", "bias");
    ENGINE_CHECK(bias.value.numel() == OC, "matmul: bias %s for %lld outputs", bias.value.describe().c_str(),
                 static_cast<long long>(OC));
  }
  const int64_t N = x.value.numel() / C;
  Var out = new_like(g, x.value, OC, any_grad({&x, &weight, &bias}));
  if (dt == DType::bf16) {
    KERNEL(g.device(), matmul_forward_bf16, g.ctx(), out.value.u16(), x.value.u16(), weight.value.u16(),
           has_bias ? bias.value.u16() : nullptr, static_cast<int>(N), static_cast<int>(C), static_cast<int>(OC));
  } else {
    KERNEL(g.device(), matmul_forward, g.ctx(), out.value.f32(), x.value.f32(), weight.value.f32(),
           has_bias ? bias.value.f32() : nullptr, static_cast<int>(N), static_cast<int>(C), static_cast<int>(OC));
  }
  TapeNode node = make_node(OpKind::matmul, out);
  node.precision = dt;
  node.inputs[0] = x;
  node.inputs[1] = weight;
  node.inputs[2] = bias;
  node.ints[0] = N;
  node.ints[1] = C;
  node.ints[2] = OC;
  g.record(node);
  return out;
}

Var gelu(Graph& g, const Var& x) {
  const DType dt = is_bf16(x.value) ? DType::bf16 : DType::f32;
  check_act(x.value, dt, "gelu", "x");
  check_device(g, x.value, "gelu", "x");
  Var out = new_like(g, x.value, 0, x.requires_grad());
  if (dt == DType::bf16) {
    KERNEL(g.device(), gelu_forward_bf16, g.ctx(), out.value.u16(), x.value.u16(), count(x.value));
  } else {
    KERNEL(g.device(), gelu_forward, g.ctx(), out.value.f32(), x.value.f32(), count(x.value));
  }
  TapeNode node = make_node(OpKind::gelu, out);
  node.precision = dt;
  node.inputs[0] = x;
  g.record(node);
  return out;
}

namespace {

// What add() checks, allocates and records; `forward` fills out (or leaves it to a fused kernel that runs later).
template <typename Forward>
Var add_node(Graph& g, const Var& a, const Var& b, Forward forward) {
  const DType dt = is_bf16(a.value) ? DType::bf16 : DType::f32;
  check_act(a.value, dt, "add", "a");
  check_act(b.value, dt, "add", "b");
  check_device(g, a.value, "add", "a");
  check_device(g, b.value, "add", "b");
  ENGINE_CHECK(a.value.numel() == b.value.numel(), "add: %s + %s", a.value.describe().c_str(),
               b.value.describe().c_str());
  Var out = new_like(g, a.value, 0, any_grad({&a, &b}));
  forward(out);
  TapeNode node = make_node(OpKind::add, out);
  node.precision = dt;
  node.inputs[0] = a;
  node.inputs[1] = b;
  g.record(node);
  return out;
}

}  // namespace

Var add(Graph& g, const Var& a, const Var& b) {
  return add_node(g, a, b, [&](const Var& out) {
    if (is_bf16(a.value)) {  // the residual stream: the sum rounded once
      KERNEL(g.device(), add_bf16, g.ctx(), out.value.u16(), a.value.u16(), b.value.u16(), count(a.value));
    } else {
      KERNEL(g.device(), add_forward, g.ctx(), out.value.f32(), a.value.f32(), b.value.f32(), count(a.value));
    }
  });
}

AddLayernorm add_layernorm(Graph& g, const Var& a, const Var& b, const Var& weight, const Var& bias) {
  if (!is_bf16(a.value)) {  // fp32: the two kernels (no fused fp32 kernel; the same numbers)
    const Var sum = add(g, a, b);
    return {sum, layernorm(g, sum, weight, bias)};
  }
  // bf16: the add node's output is written by the fused kernel below, which the layernorm node runs.
  const Var sum = add_node(g, a, b, [](const Var&) {});
  const Var normed =
      layernorm_node(g, sum, weight, bias, [&](const Var& out, const Tensor& mean, const Tensor& rstd, int N, int C) {
        KERNEL(g.device(), residual_layernorm_forward_bf16, g.ctx(), sum.value.u16(), out.value.u16(), mean.f32(),
               rstd.f32(), a.value.u16(), b.value.u16(), weight.value.u16(), bias.value.u16(), N, C);
      });
  return {sum, normed};
}

Var scale(Graph& g, const Var& x, float s) {
  check_f32(x.value, "scale", "x");
  check_device(g, x.value, "scale", "x");
  Var out = new_like(g, x.value, 0, x.requires_grad());
  KERNEL(g.device(), fill, g.ctx(), out.value.f32(), 0.0f, count(x.value));
  KERNEL(g.device(), axpy, g.ctx(), out.value.f32(), x.value.f32(), s, count(x.value));
  TapeNode node = make_node(OpKind::scale, out);
  node.inputs[0] = x;
  node.floats[0] = s;
  g.record(node);
  return out;
}

namespace {

// bf16 attention is the fused flash kernel (docs/bf16_policy.md): out = attention(qkv); returns what backward needs,
// the fp32 row log-sum-exp (B,NH,T), never the (T,T) probabilities. The CUDA kernel's limits are checked here,
// where the shapes are named; the twin takes any head size.
Tensor flash_attention_bf16(Graph& g, const Var& out, const Var& qkv, int B, int T, int C, int num_heads) {
  const int HS = C / num_heads;
  if (g.device() == Device::cuda) {
    ENGINE_CHECK(HS % 16 == 0 && HS <= 128, "attention: bf16 flash attention on CUDA needs a head size that is a "
                 "multiple of 16 and at most 128, got C=%d / %d heads = %d", C, num_heads, HS);
    const size_t need = static_cast<size_t>(B) * num_heads * T * sizeof(float);
    ENGINE_CHECK(g.ctx().cuda_workspace_bytes >= need, "attention: bf16 flash attention needs %zu bytes of CUDA "
                 "workspace, the context has %zu", need, g.ctx().cuda_workspace_bytes);
  }
  Tensor lse = g.new_saved({B, num_heads, T});
  KERNEL(g.device(), flash_attention_forward_bf16, g.ctx(), out.value.u16(), lse.f32(), qkv.value.u16(), B, T, C,
         num_heads);
  return lse;
}

// The fused bf16 softmax + cross-entropy writes dlogits over its input in place, scaled by a dloss that the tape
// only learns in backward. So: the losses now from a working copy of the logits, and the gradient in backward from
// the logits copied into the same buffer again, with the real scale (softmax_crossentropy_backward_bf16 below); one
// rounding of dlogits, as llm.c, for one more softmax per step. Returns the working copy (saved for backward).
Tensor softmax_crossentropy_forward_bf16(Graph& g, const Var& logits, const Tensor& targets, const Tensor& losses,
                                         int N, int V, int Vp) {
  Tensor work = g.new_scratch_shape(logits.value.shape, logits.value.ndim, DType::bf16);
  copy_tensor(work, logits.value);
  KERNEL(g.device(), softmax_crossentropy_fused_bf16, g.ctx(), losses.f32(), work.u16(), targets.i32(),
         1.0f / static_cast<float>(N), N, V, Vp);
  return work;
}

void softmax_crossentropy_backward_bf16(Graph& g, const TapeNode& node, float dloss) {
  const Var& logits = node.inputs[0];
  const int N = static_cast<int>(node.ints[0]);
  const Tensor& work = node.saved[1];  // the forward's working copy: (B,T,Vp) bf16
  Tensor losses = g.new_scratch({N});  // recomputed, equal to the forward's; not written over the saved ones
  copy_tensor(work, logits.value);
  KERNEL(g.device(), softmax_crossentropy_fused_bf16, g.ctx(), losses.f32(), work.u16(),
         node.inputs[1].value.i32(), dloss / static_cast<float>(N), N, static_cast<int>(node.ints[1]),
         static_cast<int>(node.ints[2]));
  KERNEL(g.device(), accumulate_bf16, g.ctx(), logits.grad.u16(), work.u16(), count(work));
}

}  // namespace

Var attention(Graph& g, const Var& qkv, int num_heads) {
  const DType dt = is_bf16(qkv.value) ? DType::bf16 : DType::f32;
  check_act(qkv.value, dt, "attention", "qkv");
  check_device(g, qkv.value, "attention", "qkv");
  ENGINE_CHECK(qkv.value.ndim == 3 && qkv.value.dim(2) % 3 == 0, "attention: qkv must be (B,T,3C), got %s",
               qkv.value.describe().c_str());
  const int B = static_cast<int>(qkv.value.dim(0)), T = static_cast<int>(qkv.value.dim(1));
  const int C = static_cast<int>(qkv.value.dim(2) / 3);
  ENGINE_CHECK(num_heads > 0 && C % num_heads == 0, "attention: C=%d is not a multiple of %d heads", C, num_heads);
  Var out = g.new_var({B, T, C}, dt, qkv.requires_grad());
  Tensor att;  // fp32: the (B,NH,T,T) probabilities; bf16: the (B,NH,T) log-sum-exp
  if (dt == DType::bf16) {
    att = flash_attention_bf16(g, out, qkv, B, T, C, num_heads);
  } else {
    att = g.new_saved({B, num_heads, T, T});
    KERNEL(g.device(), attention_forward, g.ctx(), out.value.f32(), att.f32(), qkv.value.f32(), B, T, C, num_heads);
  }
  TapeNode node = make_node(OpKind::attention, out);
  node.precision = dt;
  node.inputs[0] = qkv;
  node.saved[0] = att;
  node.ints[0] = B;
  node.ints[1] = T;
  node.ints[2] = C;
  node.ints[3] = num_heads;
  g.record(node);
  return out;
}

Var softmax_crossentropy(Graph& g, const Var& logits, const Tensor& targets, int vocab_size) {
  const DType dt = is_bf16(logits.value) ? DType::bf16 : DType::f32;
  check_act(logits.value, dt, "softmax_crossentropy", "logits");
  check_device(g, logits.value, "softmax_crossentropy", "logits");
  check_device(g, targets, "softmax_crossentropy", "targets");
  ENGINE_CHECK(targets.dtype == DType::i32, "softmax_crossentropy: targets must be i32, got %s",
               targets.describe().c_str());
  const int64_t Vp = logits.value.dim(-1);
  const int64_t N = logits.value.numel() / Vp;
  ENGINE_CHECK(targets.numel() == N && vocab_size > 0 && vocab_size <= Vp,
               "softmax_crossentropy: logits %s, targets %s, V=%d", logits.value.describe().c_str(),
               targets.describe().c_str(), vocab_size);
  if (targets.device == Device::cpu) {
    const int32_t* tgt = targets.i32();
    for (int64_t i = 0; i < N; i++) {
      ENGINE_CHECK(tgt[i] >= 0 && tgt[i] < vocab_size, "softmax_crossentropy: target %d at %lld outside [0, %d)",
                   tgt[i], static_cast<long long>(i), vocab_size);
    }
  }
  Var out = g.new_var({1}, DType::f32, logits.requires_grad());  // the loss is fp32 under every policy
  Tensor losses = g.new_saved({N});
  Tensor probs;  // fp32: the probabilities; bf16: the working copy of the logits (backward recomputes the softmax)
  if (dt == DType::bf16) {
    probs = softmax_crossentropy_forward_bf16(g, logits, targets, losses, static_cast<int>(N), vocab_size,
                                              static_cast<int>(Vp));
  } else {
    probs = g.new_saved({N, Vp});
    KERNEL(g.device(), softmax_crossentropy_forward, g.ctx(), losses.f32(), probs.f32(), logits.value.f32(),
           targets.i32(), static_cast<int>(N), vocab_size, static_cast<int>(Vp));
  }
  KERNEL(g.device(), mean_forward, g.ctx(), out.value.f32(), losses.f32(), static_cast<size_t>(N));
  TapeNode node = make_node(OpKind::softmax_crossentropy, out);
  node.precision = dt;
  node.inputs[0] = logits;
  node.inputs[1].value = targets;
  node.saved[0] = losses;
  node.saved[1] = probs;
  node.ints[0] = N;
  node.ints[1] = vocab_size;
  node.ints[2] = Vp;
  g.record(node);
  return out;
}

Var slice_columns(Graph& g, const Var& x, int offset, int width) {
  const DType dt = is_bf16(x.value) ? DType::bf16 : DType::f32;
  check_act(x.value, dt, "slice_columns", "x");
  check_device(g, x.value, "slice_columns", "x");
  const int64_t C = x.value.dim(-1);
  ENGINE_CHECK(offset >= 0 && width > 0 && offset + width <= C, "slice_columns: [%d, %d) of %s", offset,
               offset + width, x.value.describe().c_str());
  const int64_t N = x.value.numel() / C;
  Var out = new_like(g, x.value, width, x.requires_grad());
  if (dt == DType::bf16) {  // an exact copy of the bits
    KERNEL(g.device(), slice_columns_forward_bf16, g.ctx(), out.value.u16(), x.value.u16(), static_cast<int>(N),
           static_cast<int>(C), offset, width);
  } else {
    KERNEL(g.device(), slice_columns_forward, g.ctx(), out.value.f32(), x.value.f32(), static_cast<int>(N),
           static_cast<int>(C), offset, width);
  }
  TapeNode node = make_node(OpKind::slice_columns, out);
  node.precision = dt;
  node.inputs[0] = x;
  node.ints[0] = N;
  node.ints[1] = C;
  node.ints[2] = offset;
  node.ints[3] = width;
  g.record(node);
  return out;
}

Var pad_columns(Graph& g, const Var& x, int offset, int total_width) {
  const DType dt = is_bf16(x.value) ? DType::bf16 : DType::f32;
  check_act(x.value, dt, "pad_columns", "x");
  check_device(g, x.value, "pad_columns", "x");
  const int64_t K = x.value.dim(-1);
  ENGINE_CHECK(offset >= 0 && offset + K <= total_width, "pad_columns: %s at %d into %d columns",
               x.value.describe().c_str(), offset, total_width);
  const int64_t N = x.value.numel() / K;
  Var out = new_like(g, x.value, total_width, x.requires_grad());
  // out = 0, then out[:, offset:offset+K] += x (exact in either dtype: x added to zeros)
  if (dt == DType::bf16) {
    KERNEL(g.device(), fill_bf16, g.ctx(), out.value.u16(), uint16_t{0}, count(out.value));
    KERNEL(g.device(), slice_columns_backward_bf16, g.ctx(), out.value.u16(), x.value.u16(), static_cast<int>(N),
           total_width, offset, static_cast<int>(K));
  } else {
    KERNEL(g.device(), fill, g.ctx(), out.value.f32(), 0.0f, count(out.value));
    KERNEL(g.device(), slice_columns_backward, g.ctx(), out.value.f32(), x.value.f32(), static_cast<int>(N),
           total_width, offset, static_cast<int>(K));
  }
  TapeNode node = make_node(OpKind::pad_columns, out);
  node.precision = dt;
  node.inputs[0] = x;
  node.ints[0] = N;
  node.ints[1] = total_width;
  node.ints[2] = offset;
  node.ints[3] = K;
  g.record(node);
  return out;
}

namespace {

// out (N,K) = what x (N,K) becomes over the wire (see quantize_roundtrip); the codes go to graph scratch.
void wire_roundtrip(Graph& g, DType wire, float* out, const float* x, int64_t N, int64_t K) {
  const size_t n = static_cast<size_t>(N * K);
  if (wire == DType::i8) {
    Tensor q = g.new_scratch({N, K}, DType::i8);
    Tensor scales = g.new_scratch({N});
    KERNEL(g.device(), quantize_rows_int8, g.ctx(), q.i8(), scales.f32(), x, static_cast<int>(N),
           static_cast<int>(K));
    KERNEL(g.device(), dequantize_rows_int8, g.ctx(), out, q.i8(), scales.f32(), static_cast<int>(N),
           static_cast<int>(K));
  } else if (wire == DType::bf16) {
    Tensor b = g.new_scratch({N, K}, DType::bf16);
    KERNEL(g.device(), float_to_bf16, g.ctx(), b.u16(), x, n);
    KERNEL(g.device(), bf16_to_float, g.ctx(), out, b.u16(), n);
  } else {
    ENGINE_CHECK(wire == DType::f32, "quantize_roundtrip: no wire format %s", dtype_name(wire));
    KERNEL(g.device(), fill, g.ctx(), out, 0.0f, n);
    KERNEL(g.device(), accumulate, g.ctx(), out, x, n);
  }
}

}  // namespace

Var quantize_roundtrip(Graph& g, const Var& x, DType wire, bool quantize_grad) {
  check_f32(x.value, "quantize_roundtrip", "x");
  check_device(g, x.value, "quantize_roundtrip", "x");
  const int64_t K = x.value.dim(-1);
  const int64_t N = x.value.numel() / K;
  Var out = new_like(g, x.value, 0, x.requires_grad());
  wire_roundtrip(g, wire, out.value.f32(), x.value.f32(), N, K);
  TapeNode node = make_node(OpKind::quantize_roundtrip, out);
  node.inputs[0] = x;
  node.ints[0] = static_cast<int64_t>(wire);
  node.ints[1] = quantize_grad ? 1 : 0;
  node.ints[2] = N;
  node.ints[3] = K;
  g.record(node);
  return out;
}

// ---- backward passes: each accumulates (+=) into the gradients of the node's inputs.

namespace {

// The backward of a node that ran the bf16 kernels: activation gradients bf16 (each += widens, adds in fp32 and
// rounds once), parameter gradients fp32 (+=), as llm.c's bf16 step (docs/bf16_policy.md).
void backward_node_bf16(Graph& g, const TapeNode& node) {
  const kernels::KernelContext& ctx = g.ctx();
  const Device dev = g.device();
  const Var& in0 = node.inputs[0];
  const auto I = [&](int k) { return static_cast<int>(node.ints[k]); };
  switch (node.kind) {
    case OpKind::embedding:
      KERNEL(dev, embedding_backward_bf16, ctx, grad_or_scratch(g, node.inputs[1]), grad_or_scratch(g, node.inputs[2]),
             node.output.grad.u16(), in0.value.i32(), I(0), I(1), I(2));
      break;
    case OpKind::layernorm: {
      const Var& weight = node.inputs[1];
      KERNEL(dev, layernorm_backward_bf16, ctx, grad_or_scratch_bf16(g, in0), grad_or_scratch(g, weight),
             grad_or_scratch(g, node.inputs[2]), node.output.grad.u16(), in0.value.u16(), weight.value.u16(),
             node.saved[0].f32(), node.saved[1].f32(), I(0), I(1));
      break;
    }
    case OpKind::matmul: {
      const Var& weight = node.inputs[1];
      KERNEL(dev, matmul_backward_bf16, ctx, in0.requires_grad() ? in0.grad.u16() : nullptr,
             grad_or_scratch(g, weight), grad_or_null(node.inputs[2]), node.output.grad.u16(), in0.value.u16(),
             weight.value.u16(), I(0), I(1), I(2));
      break;
    }
    case OpKind::gelu:
      KERNEL(dev, gelu_backward_bf16, ctx, in0.grad.u16(), in0.value.u16(), node.output.grad.u16(),
             count(in0.value));
      break;
    case OpKind::add:
      for (int i = 0; i < 2; i++) {
        if (node.inputs[i].requires_grad()) {
          KERNEL(dev, accumulate_bf16, ctx, node.inputs[i].grad.u16(), node.output.grad.u16(),
                 count(node.inputs[i].value));
        }
      }
      break;
    case OpKind::attention:
      KERNEL(dev, flash_attention_backward_bf16, ctx, in0.grad.u16(), node.output.grad.u16(),
             node.output.value.u16(), node.saved[0].f32(), in0.value.u16(), I(0), I(1), I(2), I(3));
      break;
    case OpKind::softmax_crossentropy:
      softmax_crossentropy_backward_bf16(g, node, g.scalar_grad(node.output));
      break;
    case OpKind::slice_columns:  // dx[:, offset:offset+K] += dout (widened, added, rounded once)
      KERNEL(dev, slice_columns_backward_bf16, ctx, in0.grad.u16(), node.output.grad.u16(), I(0), I(1), I(2), I(3));
      break;
    case OpKind::pad_columns: {  // dx += dout[:, offset:offset+K], through a (N,K) scratch (the slice is exact)
      const int64_t N = node.ints[0], K = node.ints[3];
      Tensor part = g.new_scratch({N, K}, DType::bf16);
      KERNEL(dev, slice_columns_forward_bf16, ctx, part.u16(), node.output.grad.u16(), I(0), I(1), I(2), I(3));
      KERNEL(dev, accumulate_bf16, ctx, in0.grad.u16(), part.u16(), count(part));
      break;
    }
    default:
      ENGINE_FATAL("op %d has no bf16 backward (it has no bf16 forward either)", static_cast<int>(node.kind));
  }
}

}  // namespace

void backward_node(Graph& g, const TapeNode& node) {
  if (node.precision == DType::bf16) {
    backward_node_bf16(g, node);
    return;
  }
  const kernels::KernelContext& ctx = g.ctx();
  const Device dev = g.device();
  const float* dout = node.output.grad.f32();
  const Var& in0 = node.inputs[0];
  switch (node.kind) {
    case OpKind::embedding: {
      const Var& wte = node.inputs[1];
      const Var& wpe = node.inputs[2];
      KERNEL(dev, embedding_backward, ctx, grad_or_scratch(g, wte), grad_or_scratch(g, wpe), dout, in0.value.i32(),
             static_cast<int>(node.ints[0]), static_cast<int>(node.ints[1]), static_cast<int>(node.ints[2]));
      break;
    }
    case OpKind::layernorm: {
      const Var& weight = node.inputs[1];
      const Var& bias = node.inputs[2];
      KERNEL(dev, layernorm_backward, ctx, grad_or_scratch(g, in0), grad_or_scratch(g, weight),
             grad_or_scratch(g, bias), dout, in0.value.f32(), weight.value.f32(), node.saved[0].f32(),
             node.saved[1].f32(), static_cast<int>(node.ints[0]), static_cast<int>(node.ints[1]));
      break;
    }
    case OpKind::matmul: {
      const Var& weight = node.inputs[1];
      const Var& bias = node.inputs[2];
      KERNEL(dev, matmul_backward, ctx, grad_or_null(in0), grad_or_scratch(g, weight), grad_or_null(bias), dout,
             in0.value.f32(), weight.value.f32(), static_cast<int>(node.ints[0]), static_cast<int>(node.ints[1]),
             static_cast<int>(node.ints[2]));
      break;
    }
    case OpKind::gelu:
      KERNEL(dev, gelu_backward, ctx, in0.grad.f32(), in0.value.f32(), dout, count(in0.value));
      break;
    case OpKind::add:
      for (int i = 0; i < 2; i++) {
        if (node.inputs[i].requires_grad()) {
          KERNEL(dev, accumulate, ctx, node.inputs[i].grad.f32(), dout, count(node.inputs[i].value));
        }
      }
      break;
    case OpKind::scale:
      KERNEL(dev, axpy, ctx, in0.grad.f32(), dout, node.floats[0], count(in0.value));
      break;
    case OpKind::attention: {
      const Tensor& att = node.saved[0];
      Tensor datt = g.new_scratch_shape(att.shape, att.ndim);
      KERNEL(dev, attention_backward, ctx, in0.grad.f32(), datt.f32(), dout, in0.value.f32(), att.f32(),
             static_cast<int>(node.ints[0]), static_cast<int>(node.ints[1]), static_cast<int>(node.ints[2]),
             static_cast<int>(node.ints[3]));
      break;
    }
    case OpKind::softmax_crossentropy: {
      // The mean over N positions: each loss gets dout / N (the backward's seed: no copy from the device).
      const float dloss = g.scalar_grad(node.output);
      const int64_t N = node.ints[0];
      KERNEL(dev, softmax_crossentropy_backward, ctx, in0.grad.f32(), node.saved[1].f32(), node.inputs[1].value.i32(),
             dloss / static_cast<float>(N), static_cast<int>(N), static_cast<int>(node.ints[1]),
             static_cast<int>(node.ints[2]));
      break;
    }
    case OpKind::slice_columns:
      KERNEL(dev, slice_columns_backward, ctx, in0.grad.f32(), dout, static_cast<int>(node.ints[0]),
             static_cast<int>(node.ints[1]), static_cast<int>(node.ints[2]), static_cast<int>(node.ints[3]));
      break;
    case OpKind::pad_columns: {
      // dx += dout[:, offset:offset+K], through a (N,K) scratch.
      const int64_t N = node.ints[0], K = node.ints[3];
      Tensor part = g.new_scratch({N, K});
      KERNEL(dev, slice_columns_forward, ctx, part.f32(), dout, static_cast<int>(N), static_cast<int>(node.ints[1]),
             static_cast<int>(node.ints[2]), static_cast<int>(K));
      KERNEL(dev, accumulate, ctx, in0.grad.f32(), part.f32(), count(part));
      break;
    }
    case OpKind::quantize_roundtrip: {
      const int64_t N = node.ints[2], K = node.ints[3];
      if (node.ints[1] != 0) {
        Tensor trip = g.new_scratch({N, K});
        wire_roundtrip(g, static_cast<DType>(node.ints[0]), trip.f32(), dout, N, K);
        KERNEL(dev, accumulate, ctx, in0.grad.f32(), trip.f32(), count(trip));
      } else {
        KERNEL(dev, accumulate, ctx, in0.grad.f32(), dout, static_cast<size_t>(N * K));
      }
      break;
    }
  }
}

}  // namespace engine
