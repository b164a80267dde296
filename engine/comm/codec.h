// engine/comm/codec.h: WireCodec, how a float tensor (N, K) becomes the bytes that cross a link, and back.
//
// A pipeline boundary sends a code z (B*T rows, K columns, fp32 in the graph) in one of three wire dtypes:
//   f32  : the floats as they are (4 bytes per element)
//   bf16 : rounded to nearest even bfloat16 (2 bytes per element)
//   i8   : per-row absmax scale, int8 values (1 byte per element + one f32 scale per row)
// The receiving side decodes back to fp32. The same codec carries the code's gradient the other way, so with a
// lossy dtype the backward pass is straight-through: the gradient of decode(encode(z)) is taken as identity, and
// what crosses back is encode(dL/dz'), decoded on arrival (an i8 gradient rounded stochastically: CodeRounding).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "kernels/context.h"

namespace engine::comm {

enum class WireDType : uint8_t { f32, bf16, i8 };

// "fp32"/"f32", "bf16", "int8"/"i8"; throws std::invalid_argument naming the valid names otherwise.
WireDType parse_wire_dtype(const std::string& name);
const char* wire_dtype_name(WireDType dtype);  // "fp32", "bf16", "int8"

// Bytes of an encoded (rows, cols) tensor: rows*cols*4, rows*cols*2, or rows*cols + rows*4 (the per-row scales).
size_t encoded_bytes(WireDType dtype, int64_t rows, int64_t cols);

// How an i8 code rounds (kernels/int8_code.h): to nearest even (the forward code), or stochastically from hash(seed,
// element) (code gradients: unbiased, and reproducible from the seed). f32 and bf16 ignore it (bf16 rounds to
// nearest even; its relative error, 2^-9, is far below the int8 code's).
struct CodeRounding {
  bool stochastic = false;
  uint64_t seed = 0;
};

// Encode x (rows, cols) fp32 into out (encoded_bytes(...) bytes). i8 layout: rows*4 bytes of f32 scales, then
// rows*cols int8 values; a row with a NaN or an inf is sent with a NaN scale and decodes to NaN.
void encode(const kernels::KernelContext& ctx, WireDType dtype, void* out, const float* x, int64_t rows,
            int64_t cols, CodeRounding rounding = {});
// Decode into x (rows, cols) fp32, overwriting it (=).
void decode(const kernels::KernelContext& ctx, WireDType dtype, float* x, const void* in, int64_t rows,
            int64_t cols);

}  // namespace engine::comm
