// engine/comm/codec.cc: encode/decode of boundary codes in the wire dtypes (fp32, bf16, int8 + per-row scale).
#include "engine/comm/codec.h"

#include <cstring>
#include <stdexcept>

#include "kernels/cpu/kernels.h"

namespace engine::comm {

WireDType parse_wire_dtype(const std::string& name) {
  if (name == "fp32" || name == "f32") return WireDType::f32;
  if (name == "bf16") return WireDType::bf16;
  if (name == "int8" || name == "i8") return WireDType::i8;
  throw std::invalid_argument("unknown code dtype '" + name + "': expected fp32, bf16 or int8");
}

const char* wire_dtype_name(WireDType dtype) {
  switch (dtype) {
    case WireDType::f32: return "fp32";
    case WireDType::bf16: return "bf16";
    case WireDType::i8: return "int8";
  }
  return "?";
}

size_t encoded_bytes(WireDType dtype, int64_t rows, int64_t cols) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  switch (dtype) {
    case WireDType::f32: return n * 4;
    case WireDType::bf16: return n * 2;
    case WireDType::i8: return n + static_cast<size_t>(rows) * 4;  // values + one f32 scale per row
  }
  return 0;
}

void encode(const kernels::KernelContext& ctx, WireDType dtype, void* out, const float* x, int64_t rows,
            int64_t cols, CodeRounding rounding) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  switch (dtype) {
    case WireDType::f32:
      std::memcpy(out, x, n * 4);
      return;
    case WireDType::bf16:
      kernels::cpu::float_to_bf16(ctx, static_cast<uint16_t*>(out), x, n);
      return;
    case WireDType::i8: {
      float* scales = static_cast<float*>(out);  // rows * 4 bytes first: keeps the floats 4-byte aligned
      int8_t* q = reinterpret_cast<int8_t*>(scales + rows);
      if (rounding.stochastic) {
        kernels::cpu::quantize_rows_int8_stochastic(ctx, q, scales, x, static_cast<int>(rows), static_cast<int>(cols),
                                                    rounding.seed);
      } else {
        kernels::cpu::quantize_rows_int8(ctx, q, scales, x, static_cast<int>(rows), static_cast<int>(cols));
      }
      return;
    }
  }
}

void decode(const kernels::KernelContext& ctx, WireDType dtype, float* x, const void* in, int64_t rows,
            int64_t cols) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  switch (dtype) {
    case WireDType::f32:
      std::memcpy(x, in, n * 4);
      return;
    case WireDType::bf16:
      kernels::cpu::bf16_to_float(ctx, x, static_cast<const uint16_t*>(in), n);
      return;
    case WireDType::i8: {
      const float* scales = static_cast<const float*>(in);
      const int8_t* q = reinterpret_cast<const int8_t*>(scales + rows);
      kernels::cpu::dequantize_rows_int8(ctx, x, q, scales, static_cast<int>(rows), static_cast<int>(cols));
      return;
    }
  }
}

}  // namespace engine::comm
