// engine/ops.h: the differentiable op set. Each op computes its output on the graph's device (dispatching to
// kernels/cpu or kernels/cuda), allocates the output in the graph's arenas and records a TapeNode whose backward
// case lives in engine/ops.cc. Shapes: N = rows (B*T), C channels, B batch, T time, NH heads, V vocab, Vp padded.
#pragma once

#include "engine/autograd.h"

namespace engine {

// (B,T,C) = wte[tokens] + wpe[0..T). tokens (B,T) i32 carries no gradient.
Var embedding(Graph& g, const Tensor& tokens, const Var& wte /*(Vp,C)*/, const Var& wpe /*(maxT,C)*/);
// (N,C) layernorm with gain and bias (C), eps 1e-5. Accepts (B,T,C) too; the output keeps the input's shape.
Var layernorm(Graph& g, const Var& x, const Var& weight, const Var& bias);
// (..., OC) = x (..., C) @ weight^T (OC,C) + bias (OC). bias may be a default Var{} for no bias.
Var matmul(Graph& g, const Var& x, const Var& weight, const Var& bias = Var{});
Var gelu(Graph& g, const Var& x);
Var add(Graph& g, const Var& a, const Var& b);            // same shapes
// sum = a + b (the residual stream) and normed = layernorm(sum): under bf16 one fused kernel (the sum is rounded,
// then normalised as stored, exactly add then layernorm); the tape records the same two nodes, so backward and every
// result equal add() followed by layernorm() bit for bit.
struct AddLayernorm {
  Var sum, normed;
};
AddLayernorm add_layernorm(Graph& g, const Var& a, const Var& b, const Var& weight, const Var& bias);
Var scale(Graph& g, const Var& x, float s);              // x * s
// (B,T,C) causal self-attention of a fused (B,T,3C) qkv, NH heads.
Var attention(Graph& g, const Var& qkv, int num_heads);
// Mean cross-entropy over all B*T positions, as a (1) tensor. logits (B,T,Vp), targets (B,T) i32, V real classes.
Var softmax_crossentropy(Graph& g, const Var& logits, const Tensor& targets, int vocab_size);
// (..., K) = x[..., offset:offset+K]
Var slice_columns(Graph& g, const Var& x, int offset, int width);
// (..., C) = zeros with [..., offset:offset+K] = x
Var pad_columns(Graph& g, const Var& x, int offset, int total_width);
// (..., K) = what x (..., K) becomes after a trip over the wire as `wire`: DType::i8 (per-row absmax codes over the
// last dim, kernels quantize_rows_int8), DType::bf16 (round to nearest even) or DType::f32 (unchanged). The
// gradient passes straight through; with quantize_grad it makes the same trip (as dL/dx does over a real link).
Var quantize_roundtrip(Graph& g, const Var& x, DType wire, bool quantize_grad = false);

}  // namespace engine
