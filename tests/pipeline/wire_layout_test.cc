// Tests of engine/pipeline/wire_layout.h, the codec layout the stage runner uses to encode and decode codes in
// device memory (--device cuda over NCCL): its messages must be byte-identical to the host codec's
// (engine/comm/codec.h), so that a device-encoded message is what the MPI transport would carry and the two
// transports give the same bits.
//   - everywhere: the layout code run with the CPU twins (Device::cpu) against comm::encode/decode, byte for byte,
//     for fp32, bf16 and int8, on values that exercise the rounding (bf16 ties, an all-zero int8 row);
//   - on a GPU (skipped, saying why, elsewhere): the same layout code with the CUDA kernels, its device bytes
//     copied back and compared with the host codec's.
#include "engine/pipeline/wire_layout.h"

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/comm/codec.h"
#include "engine/comm/nccl_transport/rank_gpu.h"
#include "engine/device.h"
#include "engine/memory.h"
#include "gtest/gtest.h"

namespace engine::pipeline {
namespace {

using comm::WireDType;

constexpr WireDType kDtypes[] = {WireDType::f32, WireDType::bf16, WireDType::i8};

// (rows, cols) values: normal of several magnitudes, an all-zero row (int8 scale 1), bf16 ties (the low 16 bits
// exactly 0x8000, both parities of the kept bit), a row with one large value (int8 rounding of small ones).
std::vector<float> test_values(int rows, int cols) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(rows) * cols);
  for (size_t i = 0; i < x.size(); ++i) x[i] = normal(rng) * std::ldexp(1.0f, static_cast<int>(i % 13) - 6);
  for (int c = 0; c < cols; ++c) x[1 * cols + c] = 0.0f;
  for (int c = 0; c < cols; ++c) {
    uint32_t bits = 0x3f800000u + (static_cast<uint32_t>(c) << 16) + 0x8000u;  // halfway between two bf16
    std::memcpy(&x[2 * cols + c], &bits, 4);
  }
  x[3 * cols] = 1000.0f;
  return x;
}

std::vector<char> host_encoded(WireDType d, const std::vector<float>& x, int rows, int cols) {
  kernels::KernelContext ctx;
  std::vector<char> wire(comm::encoded_bytes(d, rows, cols));
  comm::encode(ctx, d, wire.data(), x.data(), rows, cols);
  return wire;
}

TEST(WireLayout, CpuTwinsMakeTheHostCodecsBytes) {
  DeviceContext device(Device::cpu, 1);
  const int rows = 9, cols = 37;
  const std::vector<float> x = test_values(rows, cols);
  for (WireDType d : kDtypes) {
    SCOPED_TRACE(comm::wire_dtype_name(d));
    const std::vector<char> expected = host_encoded(d, x, rows, cols);
    std::vector<char> buf(expected.size(), 0x5a);  // poisoned: every byte must be written
    const void* sent = encode_for_wire(Device::cpu, device.ctx(), d, buf.data(), x.data(), rows, cols);
    // fp32 goes as it is: the code tensor itself, no copy.
    EXPECT_EQ(sent, d == WireDType::f32 ? static_cast<const void*>(x.data()) : buf.data());
    ASSERT_EQ(std::memcmp(sent, expected.data(), expected.size()), 0);

    // Received where wire_receive_target says (fp32: into the tensor itself), decoded as the host codec decodes.
    std::vector<float> y(x.size(), -7.0f), want(x.size());
    std::vector<char> recv(expected.size());
    void* target = wire_receive_target(d, recv.data(), y.data());
    EXPECT_EQ(target, d == WireDType::f32 ? static_cast<void*>(y.data()) : recv.data());
    std::memcpy(target, expected.data(), expected.size());  // what a transport delivers
    decode_from_wire(Device::cpu, device.ctx(), d, y.data(), target, rows, cols);
    kernels::KernelContext ctx;
    comm::decode(ctx, d, want.data(), expected.data(), rows, cols);
    EXPECT_EQ(std::memcmp(y.data(), want.data(), want.size() * 4), 0);
  }
}

TEST(WireLayoutGpu, CudaKernelsMakeTheHostCodecsBytes) {
  std::string why;
  if (comm::visible_gpu_count(&why) == 0) GTEST_SKIP() << "needs a GPU: " << why;
  comm::use_rank_gpu();
  DeviceContext device(Device::cuda);
  // B*T rows of a small model's code, and an odd shape (the kernels' tails).
  for (const auto& [rows, cols] : {std::pair<int, int>{128, 24}, std::pair<int, int>{9, 37}}) {
    const std::vector<float> x = test_values(rows, cols);
    const size_t floats = x.size();
    Arena arena("wire layout test", 4 * floats * 4 + 4096, Device::cuda);
    const Tensor dx = arena.alloc({static_cast<int64_t>(floats)});
    const Tensor dy = arena.alloc({static_cast<int64_t>(floats)});
    const Tensor dbuf = arena.alloc({static_cast<int64_t>(floats)});  // >= every dtype's encoded size
    copy_from_host(dx, x.data());
    for (WireDType d : kDtypes) {
      SCOPED_TRACE(std::string(comm::wire_dtype_name(d)) + " " + std::to_string(rows) + "x" + std::to_string(cols));
      const std::vector<char> expected = host_encoded(d, x, rows, cols);
      const void* sent = encode_for_wire(Device::cuda, device.ctx(), d, dbuf.data, dx.f32(), rows, cols);
      std::vector<char> got(floats * 4);
      copy_to_host(got.data(), sent == dx.data ? dx : dbuf);
      ASSERT_EQ(std::memcmp(got.data(), expected.data(), expected.size()), 0);

      // The host codec's message decoded on the device equals the host decode.
      void* target = wire_receive_target(d, dbuf.data, dy.f32());
      std::vector<char> padded(floats * 4, 0);
      std::memcpy(padded.data(), expected.data(), expected.size());
      copy_from_host(target == dy.data ? dy : dbuf, padded.data());
      decode_from_wire(Device::cuda, device.ctx(), d, dy.f32(), target, rows, cols);
      std::vector<float> y(floats), want(floats);
      copy_to_host(y.data(), dy);
      kernels::KernelContext ctx;
      comm::decode(ctx, d, want.data(), expected.data(), rows, cols);
      EXPECT_EQ(std::memcmp(y.data(), want.data(), floats * 4), 0);
    }
  }
}

}  // namespace
}  // namespace engine::pipeline
