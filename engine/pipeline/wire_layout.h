// engine/pipeline/wire_layout.h: the wire codec's messages (engine/comm/codec.h) made and read with the kernels of
// either device, so that a stage on the GPU whose transport carries device memory (NcclTransport) encodes, sends,
// receives and decodes its codes in device memory: no device -> host -> device round trip at every boundary.
//
// A message is byte-identical to comm::encode's, whichever device made it: f32 is the floats themselves, bf16 the
// round-to-nearest-even halves, i8 rows*4 bytes of f32 scales followed by rows*cols int8 values. The CUDA codec
// kernels compute the same bits as the CPU twins comm::encode calls (tests/kernels), and the layout is the one
// code below for both kernel sets: with Device::cpu these functions run the CPU twins, which is how
// tests/pipeline/wire_layout_test checks the layout against comm::encode on machines without a GPU.
#pragma once

#include <cstdint>

#include "engine/comm/codec.h"
#include "engine/tensor.h"
#include "kernels/context.h"

namespace engine::pipeline {

// The bytes to send for x (rows, cols) fp32, on `device`: x itself for f32 (sent as it is: the transport copies
// before send returns, so nothing is encoded), else buf (comm::encoded_bytes(dtype, rows, cols) bytes), filled here.
const void* encode_for_wire(Device device, const kernels::KernelContext& ctx, comm::WireDType dtype, void* buf,
                            const float* x, int64_t rows, int64_t cols, comm::CodeRounding rounding = {});

// Where the message for x (rows, cols) is received: x itself for f32 (it arrives decoded), else buf.
void* wire_receive_target(comm::WireDType dtype, void* buf, float* x);

// Decodes the message received at wire_receive_target(dtype, buf, x) into x (=); for f32 it is already there.
void decode_from_wire(Device device, const kernels::KernelContext& ctx, comm::WireDType dtype, float* x,
                      const void* buf, int64_t rows, int64_t cols);

}  // namespace engine::pipeline
