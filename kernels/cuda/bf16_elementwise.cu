// kernels/cuda/bf16_elementwise.cu: the bf16 elementwise kernels of bf16.cuh: add, accumulate, fill, GELU forward
// and backward, and the column slices of the ResBM identity path.
//
// Each output element is written by one thread (deterministic, no reductions). Inputs are widened to fp32, the
// arithmetic is the CPU twin's in fp32, and the result is rounded to nearest even once when stored; a += output is
// widened, added to and rounded once. Grid-stride loops over packs of P elements: P = 8 (128-bit loads and stores)
// when the length and every pointer allow it, else P = 1 (bf16_vector.cuh).
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/bf16_vector.cuh"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;  // sqrt(2/pi), as in kernels/cpu/gelu.cc
constexpr float kCubic = 0.044715f;

// The CPU kernels' formulas (kernels/cpu/gelu.cc: x * s with s = 1 / (1 + e^{-2u})), not elementwise.cu's tanhf
// form, so that the two sides differ only by expf vs the CPU's vexp.
struct GeluForward {
  __device__ float operator()(float x, float, float) const {
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    return x / (1.0f + expf(-2.0f * u));
  }
};

// (dinp_old, inp, dout) -> dinp_old + gelu'(inp) * dout
struct GeluBackward {
  __device__ float operator()(float acc, float x, float d) const {
    const float u = kSqrt2OverPi * (x + kCubic * x * x * x);
    const float s = 1.0f / (1.0f + expf(-2.0f * u));
    const float grad = s + 2.0f * x * s * (1.0f - s) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    return acc + grad * d;
  }
};

struct Add {
  __device__ float operator()(float a, float b, float) const { return a + b; }
};

// out[i] = round(f(x0[i], x1[i], x2[i])) over n elements in packs of P; absent inputs (null) read as 0. out may
// alias x0 (the += kernels): each thread reads its pack before writing it.
template <int P, typename F>
__global__ void map_kernel(uint16_t* out, const uint16_t* x0, const uint16_t* x1, const uint16_t* x2, size_t n, F f) {
  const size_t packs = n / P;
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    float a[P] = {}, b[P] = {}, c[P] = {}, r[P];
    load_pack<P>(a, x0 + i * P);
    if (x1 != nullptr) load_pack<P>(b, x1 + i * P);
    if (x2 != nullptr) load_pack<P>(c, x2 + i * P);
#pragma unroll
    for (int k = 0; k < P; k++) r[k] = f(a[k], b[k], c[k]);
    store_pack<P>(out + i * P, r);
  }
}

template <typename F>
void map(const KernelContext& ctx, uint16_t* out, const uint16_t* x0, const uint16_t* x1, const uint16_t* x2,
         size_t n, F f) {
  if (n == 0) return;
  if (pack_width(n, {out, x0, x1, x2}) == kPack) {
    map_kernel<kPack><<<grid_for(n / kPack), 256, 0, stream_of(ctx)>>>(out, x0, x1, x2, n, f);
  } else {
    map_kernel<1><<<grid_for(n), 256, 0, stream_of(ctx)>>>(out, x0, x1, x2, n, f);
  }
  CUDA_CHECK_LAUNCH();
}

__global__ void fill_kernel(uint16_t* x, uint16_t bits, size_t n) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    x[i] = bits;
  }
}

// out (N,K) = inp[:, offset:offset+K] (exact copy), or with kBackward dinp[:, offset:offset+K] += dout, over packs
// of P columns (P divides K, C and offset). One thread per pack of the (N, K) slice.
template <int P, bool kBackward>
__global__ void slice_kernel(uint16_t* wide, uint16_t* narrow, int N, int C, int offset, int K) {
  const size_t packs = static_cast<size_t>(N) * (K / P);
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < packs;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const size_t n = i / (K / P), k = (i % (K / P)) * P;
    uint16_t* w = wide + n * C + offset + k;  // (P) in the (N,C) tensor
    uint16_t* s = narrow + n * K + k;         // (P) in the (N,K) slice
    if constexpr (kBackward) {
      float a[P], b[P];
      load_pack<P>(a, w);
      load_pack<P>(b, s);
#pragma unroll
      for (int j = 0; j < P; j++) a[j] += b[j];
      store_pack<P>(w, a);
    } else if constexpr (P == kPack) {
      *reinterpret_cast<Bf16x8*>(s) = *reinterpret_cast<const Bf16x8*>(w);
    } else {
      for (int j = 0; j < P; j++) s[j] = w[j];
    }
  }
}

template <bool kBackward>
void slice(const KernelContext& ctx, uint16_t* wide, uint16_t* narrow, int N, int C, int offset, int K) {
  const size_t n = static_cast<size_t>(N) * K;
  if (n == 0) return;
  const bool vec = C % kPack == 0 && offset % kPack == 0 && pack_width(K, {wide, narrow}) == kPack;
  if (vec) {
    slice_kernel<kPack, kBackward><<<grid_for(n / kPack), 256, 0, stream_of(ctx)>>>(wide, narrow, N, C, offset, K);
  } else {
    slice_kernel<1, kBackward><<<grid_for(n), 256, 0, stream_of(ctx)>>>(wide, narrow, N, C, offset, K);
  }
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void add_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* a, const uint16_t* b, size_t N) {
  map(ctx, out, a, b, nullptr, N, Add{});
}

void accumulate_bf16(const KernelContext& ctx, uint16_t* dst, const uint16_t* src, size_t N) {
  map(ctx, dst, dst, src, nullptr, N, Add{});
}

void fill_bf16(const KernelContext& ctx, uint16_t* x, uint16_t value_bits, size_t N) {
  if (N == 0) return;
  fill_kernel<<<grid_for(N), 256, 0, stream_of(ctx)>>>(x, value_bits, N);
  CUDA_CHECK_LAUNCH();
}

void gelu_forward_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* inp, size_t N) {
  map(ctx, out, inp, nullptr, nullptr, N, GeluForward{});
}

void gelu_backward_bf16(const KernelContext& ctx, uint16_t* dinp, const uint16_t* inp, const uint16_t* dout,
                        size_t N) {
  map(ctx, dinp, dinp, inp, dout, N, GeluBackward{});
}

void slice_columns_forward_bf16(const KernelContext& ctx, uint16_t* out, const uint16_t* inp, int N, int C,
                                int offset, int K) {
  // The forward kernel only reads `wide`; one kernel body serves both directions.
  slice<false>(ctx, const_cast<uint16_t*>(inp), out, N, C, offset, K);
}

void slice_columns_backward_bf16(const KernelContext& ctx, uint16_t* dinp, const uint16_t* dout, int N, int C,
                                 int offset, int K) {
  slice<true>(ctx, dinp, const_cast<uint16_t*>(dout), N, C, offset, K);
}

}  // namespace kernels::cuda
