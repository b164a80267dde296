// Tests of the wire codec: sizes per dtype, exact fp32, bf16 rounding bound, int8 per-row bound and layout.
#include "engine/comm/codec.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace engine::comm {
namespace {

TEST(Codec, EncodedBytes) {
  EXPECT_EQ(encoded_bytes(WireDType::f32, 6, 5), 120u);
  EXPECT_EQ(encoded_bytes(WireDType::bf16, 6, 5), 60u);
  EXPECT_EQ(encoded_bytes(WireDType::i8, 6, 5), 30u + 24u);  // values + one f32 scale per row
  EXPECT_EQ(parse_wire_dtype("int8"), WireDType::i8);
  EXPECT_THROW(parse_wire_dtype("fp8"), std::invalid_argument);
}

TEST(Codec, RoundTripsWithinTheDtypePrecision) {
  kernels::KernelContext ctx;
  const int rows = 7, cols = 33;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> x(rows * cols), y(rows * cols);
  for (float& v : x) v = normal(rng);
  for (int r = 0; r < cols; ++r) x[2 * cols + r] = 0.0f;  // an all-zero row: scale 1, decodes to exact zeros
  for (WireDType d : {WireDType::f32, WireDType::bf16, WireDType::i8}) {
    SCOPED_TRACE(wire_dtype_name(d));
    std::vector<char> wire(encoded_bytes(d, rows, cols));
    encode(ctx, d, wire.data(), x.data(), rows, cols);
    decode(ctx, d, y.data(), wire.data(), rows, cols);
    for (int r = 0; r < rows; ++r) {
      float absmax = 0.0f;
      for (int c = 0; c < cols; ++c) absmax = std::fmax(absmax, std::fabs(x[r * cols + c]));
      for (int c = 0; c < cols; ++c) {
        const float a = x[r * cols + c], b = y[r * cols + c];
        if (d == WireDType::f32) {
          EXPECT_EQ(a, b);
        } else if (d == WireDType::bf16) {
          EXPECT_LE(std::fabs(a - b), std::fabs(a) * std::ldexp(1.0f, -8));  // half an ulp of an 8-bit mantissa
        } else {
          EXPECT_LE(std::fabs(a - b), 0.5f * absmax / 127.0f * 1.0001f);  // half a quantisation step
        }
      }
    }
  }
}

}  // namespace
}  // namespace engine::comm
