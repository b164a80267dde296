// engine/pipeline/wire_layout.cc: the codec's byte layout (engine/comm/codec.cc) over KERNEL(device, ...).
#include "engine/pipeline/wire_layout.h"

#include "engine/dispatch.h"

namespace engine::pipeline {

const void* encode_for_wire(Device device, const kernels::KernelContext& ctx, comm::WireDType dtype, void* buf,
                            const float* x, int64_t rows, int64_t cols, comm::CodeRounding rounding) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  switch (dtype) {
    case comm::WireDType::f32:
      return x;
    case comm::WireDType::bf16:
      KERNEL(device, float_to_bf16, ctx, static_cast<uint16_t*>(buf), x, n);
      return buf;
    case comm::WireDType::i8: {
      float* scales = static_cast<float*>(buf);  // rows f32 scales first (4-byte aligned), then the int8 values
      int8_t* q = reinterpret_cast<int8_t*>(scales + rows);
      if (rounding.stochastic) {
        KERNEL(device, quantize_rows_int8_stochastic, ctx, q, scales, x, static_cast<int>(rows),
               static_cast<int>(cols), rounding.seed);
      } else {
        KERNEL(device, quantize_rows_int8, ctx, q, scales, x, static_cast<int>(rows), static_cast<int>(cols));
      }
      return buf;
    }
  }
  ENGINE_FATAL("encode_for_wire: unknown wire dtype %d", static_cast<int>(dtype));
}

void* wire_receive_target(comm::WireDType dtype, void* buf, float* x) {
  return dtype == comm::WireDType::f32 ? static_cast<void*>(x) : buf;
}

void decode_from_wire(Device device, const kernels::KernelContext& ctx, comm::WireDType dtype, float* x,
                      const void* buf, int64_t rows, int64_t cols) {
  const size_t n = static_cast<size_t>(rows) * static_cast<size_t>(cols);
  switch (dtype) {
    case comm::WireDType::f32:
      return;
    case comm::WireDType::bf16:
      KERNEL(device, bf16_to_float, ctx, x, static_cast<const uint16_t*>(buf), n);
      return;
    case comm::WireDType::i8: {
      const float* scales = static_cast<const float*>(buf);
      const int8_t* q = reinterpret_cast<const int8_t*>(scales + rows);
      KERNEL(device, dequantize_rows_int8, ctx, x, q, scales, static_cast<int>(rows), static_cast<int>(cols));
      return;
    }
  }
  ENGINE_FATAL("decode_from_wire: unknown wire dtype %d", static_cast<int>(dtype));
}

}  // namespace engine::pipeline
