// tools/bench/gpu_kernels/gpu_kernels.cc: times every CUDA kernel at GPT-2 124M shapes (B x T tokens, C = 768,
// NH = 12, Vp = 50304) with CUDA events after warm-up, and prints one table: median ms, achieved GB/s (bytes that
// must move at least once) and TFLOP/s (for the GEMM-bound kernels): the fp32 kernels, the bf16 GEMMs, and the bf16
// activation kernels of the mixed-precision step (bf16_*.cu).
//
//   gpu_kernels [B] [T] [iters]     defaults 8 1024 20
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "kernels/cuda/bf16.cuh"
#include "kernels/cuda/cuda_context.h"
#include "kernels/cuda/kernels.cuh"

#ifdef RESBM_HAVE_CUDA
#include "kernels/cuda/cuda_check.h"

namespace {

struct Row {
  std::string name, shape;
  double ms, gbps, tflops;
};

// Median of `iters` timed runs after 3 warm-ups; each run timed alone by a pair of events on the kernel's stream.
double time_ms(const kernels::KernelContext& ctx, const std::function<void()>& fn, int iters) {
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.cuda_stream);
  for (int i = 0; i < 3; i++) fn();
  CUDA_CHECK(cudaStreamSynchronize(stream));
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(iters);
  for (int i = 0; i < iters; i++) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    fn();
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
  }
  CUDA_CHECK(cudaEventDestroy(start));
  CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return ms[iters / 2];
}

// Device buffers filled with small values (uniform-ish, from a cheap integer hash), so that nothing overflows.
float* dev_floats(size_t n, float scale = 0.02f) {
  std::vector<float> h(n);
  uint32_t x = 12345u;
  for (auto& v : h) {
    x = x * 1664525u + 1013904223u;
    v = scale * (static_cast<float>(x >> 8) / 16777216.0f - 0.5f);
  }
  float* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, n * sizeof(float)));
  CUDA_CHECK(cudaMemcpy(d, h.data(), n * sizeof(float), cudaMemcpyHostToDevice));
  return d;
}

template <typename T>
T* dev_alloc(size_t n) {
  T* d = nullptr;
  CUDA_CHECK(cudaMalloc(&d, n * sizeof(T)));
  CUDA_CHECK(cudaMemset(d, 0, n * sizeof(T)));
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  const int B = argc > 1 ? std::atoi(argv[1]) : 8;
  const int T = argc > 2 ? std::atoi(argv[2]) : 1024;
  const int iters = argc > 3 ? std::atoi(argv[3]) : 20;
  const int C = 768, NH = 12, V = 50257, Vp = 50304, L = 12;
  const size_t N = static_cast<size_t>(B) * T;
  const size_t num_params = 124475904;  // GPT-2 124M with the padded vocabulary, as llm.c counts it

  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  std::printf("gpu_kernels: %s, %d SMs, %.0f GiB; B=%d T=%d (N=%zu tokens), C=%d NH=%d Vp=%d, median of %d runs\n",
              prop.name, prop.multiProcessorCount, prop.totalGlobalMem / 1073741824.0, B, T, N, C, NH, Vp, iters);

  const kernels::KernelContext ctx = kernels::cuda::make_cuda_context();

  // Activations and parameters of one layer (and the head), GPT-2 124M shapes.
  int32_t* tokens = dev_alloc<int32_t>(N);
  {
    std::vector<int32_t> h(N);
    for (size_t i = 0; i < N; i++) h[i] = static_cast<int32_t>((i * 2654435761u) % V);
    CUDA_CHECK(cudaMemcpy(tokens, h.data(), N * sizeof(int32_t), cudaMemcpyHostToDevice));
  }
  float* wte = dev_floats(static_cast<size_t>(Vp) * C);
  float* wpe = dev_floats(static_cast<size_t>(T) * C);
  float* dwte = dev_alloc<float>(static_cast<size_t>(Vp) * C);
  float* dwpe = dev_alloc<float>(static_cast<size_t>(T) * C);
  float* x = dev_floats(N * C, 1.0f);
  float* y = dev_alloc<float>(N * C);
  float* dx = dev_alloc<float>(N * C);
  float* dy = dev_floats(N * C);
  float* mean = dev_alloc<float>(N);
  float* rstd = dev_alloc<float>(N);
  float* lnw = dev_floats(C, 1.0f);
  float* lnb = dev_floats(C);
  float* dlnw = dev_alloc<float>(C);
  float* dlnb = dev_alloc<float>(C);
  float* w_fc = dev_floats(4ull * C * C);
  float* dw_fc = dev_alloc<float>(4ull * C * C);
  float* b_fc = dev_floats(4 * C);
  float* db_fc = dev_alloc<float>(4 * C);
  float* h4 = dev_alloc<float>(N * 4 * C);
  float* h4b = dev_alloc<float>(N * 4 * C);
  float* dh4 = dev_floats(N * 4 * C);
  float* w_qkv = dev_floats(3ull * C * C);
  float* qkv = dev_floats(N * 3 * C, 1.0f);
  float* dqkv = dev_alloc<float>(N * 3 * C);
  float* att = dev_alloc<float>(static_cast<size_t>(B) * NH * T * T);
  float* datt = dev_alloc<float>(static_cast<size_t>(B) * NH * T * T);
  float* logits = dev_floats(N * Vp, 4.0f);
  float* probs = dev_alloc<float>(N * Vp);
  float* losses = dev_alloc<float>(N);
  float* scalar = dev_alloc<float>(1);
  int8_t* q8 = dev_alloc<int8_t>(N * C);
  uint16_t* b16 = dev_alloc<uint16_t>(N * C);
  float* params = dev_floats(num_params);
  float* grads = dev_floats(num_params);
  float* m = dev_alloc<float>(num_params);
  float* v = dev_alloc<float>(num_params);

  const double f = sizeof(float);
  const double NC = static_cast<double>(N) * C;
  std::vector<Row> rows;
  auto add = [&](const std::string& name, const std::string& shape, const std::function<void()>& fn, double bytes,
                 double flops) {
    const double ms = time_ms(ctx, fn, iters);
    rows.push_back({name, shape, ms, bytes / ms / 1e6, flops / ms / 1e9});
  };
  const std::string nc = "(" + std::to_string(N) + "," + std::to_string(C) + ")";

  add("embedding_forward", nc, [&] { kernels::cuda::embedding_forward(ctx, y, tokens, wte, wpe, B, T, C); }, 3 * NC * f, 0);
  add("embedding_backward", nc, [&] { kernels::cuda::embedding_backward(ctx, dwte, dwpe, dy, tokens, B, T, C); },
      3 * NC * f, 0);
  add("layernorm_forward", nc,
      [&] { kernels::cuda::layernorm_forward(ctx, y, mean, rstd, x, lnw, lnb, static_cast<int>(N), C); }, 2 * NC * f, 0);
  add("layernorm_backward", nc,
      [&] {
        kernels::cuda::layernorm_backward(ctx, dx, dlnw, dlnb, dy, x, lnw, mean, rstd, static_cast<int>(N), C);
      },
      4 * NC * f, 0);
  add("matmul_forward qkv", nc + "x(2304,768)",
      [&] { kernels::cuda::matmul_forward(ctx, qkv, x, w_qkv, b_fc, static_cast<int>(N), C, 3 * C); }, 4 * NC * f,
      2.0 * N * C * 3 * C);
  const double fc_flops = 2.0 * N * C * 4 * C;
  add("matmul_forward fc", nc + "x(3072,768)",
      [&] { kernels::cuda::matmul_forward(ctx, h4, x, w_fc, b_fc, static_cast<int>(N), C, 4 * C); }, 5 * NC * f,
      fc_flops);
  add("matmul_gelu_forward fc", nc + "x(3072,768)",
      [&] { kernels::cuda::matmul_gelu_forward(ctx, h4b, h4, x, w_fc, b_fc, static_cast<int>(N), C, 4 * C); },
      9 * NC * f, fc_flops);
  add("matmul_backward fc", nc + "x(3072,768)",
      [&] { kernels::cuda::matmul_backward(ctx, dx, dw_fc, db_fc, dh4, x, w_fc, static_cast<int>(N), C, 4 * C); },
      7 * NC * f, 2 * fc_flops);
  add("matmul_forward lm_head", nc + "x(50304,768)",
      [&] { kernels::cuda::matmul_forward(ctx, logits, x, wte, nullptr, static_cast<int>(N), C, Vp); },
      (NC + static_cast<double>(N) * Vp) * f, 2.0 * N * C * Vp);
  // bf16 GEMMs on tensor cores (fp32 accumulation): the precision the MFU goal is about.
  uint16_t* x16 = dev_alloc<uint16_t>(N * C);
  uint16_t* dx16 = dev_alloc<uint16_t>(N * C);
  uint16_t* w16 = dev_alloc<uint16_t>(4ull * C * C);
  uint16_t* h16 = dev_alloc<uint16_t>(N * 4 * C);
  uint16_t* wte16 = dev_alloc<uint16_t>(static_cast<size_t>(Vp) * C);
  uint16_t* logits16 = dev_alloc<uint16_t>(N * Vp);
  kernels::cuda::float_to_bf16(ctx, x16, x, N * C);
  kernels::cuda::float_to_bf16(ctx, w16, w_fc, 4ull * C * C);
  kernels::cuda::float_to_bf16(ctx, wte16, wte, static_cast<size_t>(Vp) * C);
  add("matmul_forward_bf16 fc", nc + "x(3072,768)",
      [&] { kernels::cuda::matmul_forward_bf16(ctx, h16, x16, w16, nullptr, static_cast<int>(N), C, 4 * C); },
      2.5 * NC * 2, fc_flops);
  add("matmul_backward_bf16 fc", nc + "x(3072,768)",
      [&] {
        kernels::cuda::matmul_backward_bf16(ctx, dx16, dw_fc, db_fc, h16, x16, w16, static_cast<int>(N), C, 4 * C);
      },
      7 * NC * 2, 2 * fc_flops);
  add("matmul_forward_bf16 lm_head", nc + "x(50304,768)",
      [&] { kernels::cuda::matmul_forward_bf16(ctx, logits16, x16, wte16, nullptr, static_cast<int>(N), C, Vp); },
      (NC + static_cast<double>(N) * Vp) * 2, 2.0 * N * C * Vp);
  add("gelu_forward", "(" + std::to_string(N * 4 * C) + ")", [&] { kernels::cuda::gelu_forward(ctx, h4b, h4, N * 4 * C); },
      8 * NC * f, 0);
  add("gelu_backward", "(" + std::to_string(N * 4 * C) + ")",
      [&] { kernels::cuda::gelu_backward(ctx, dh4, h4, h4b, N * 4 * C); }, 16 * NC * f, 0);
  const double att_bytes = static_cast<double>(B) * NH * T * T * f;
  add("attention_forward", "B,NH,T,T=" + std::to_string(B) + ",12," + std::to_string(T),
      [&] { kernels::cuda::attention_forward(ctx, y, att, qkv, B, T, C, NH); }, 4 * NC * f + 2 * att_bytes,
      4.0 * B * T * static_cast<double>(T) * C);
  add("attention_backward", "B,NH,T,T=" + std::to_string(B) + ",12," + std::to_string(T),
      [&] { kernels::cuda::attention_backward(ctx, dqkv, datt, dy, qkv, att, B, T, C, NH); },
      8 * NC * f + 4 * att_bytes, 8.0 * B * T * static_cast<double>(T) * C);
  add("softmax_xent_forward", "(" + std::to_string(N) + ",50304)",
      [&] { kernels::cuda::softmax_crossentropy_forward(ctx, losses, probs, logits, tokens, static_cast<int>(N), V, Vp); },
      2.0 * N * Vp * f, 0);
  add("softmax_xent_backward", "(" + std::to_string(N) + ",50304)",
      [&] {
        kernels::cuda::softmax_crossentropy_backward(ctx, logits, probs, tokens, 1.0f / N, static_cast<int>(N), V, Vp);
      },
      3.0 * N * Vp * f, 0);
  add("quantize_rows_int8", nc, [&] { kernels::cuda::quantize_rows_int8(ctx, q8, mean, x, static_cast<int>(N), C); },
      NC * (f + 1), 0);
  add("float_to_bf16", nc, [&] { kernels::cuda::float_to_bf16(ctx, b16, x, N * C); }, NC * (f + 2), 0);
  add("sum_squares (124M)", "(" + std::to_string(num_params) + ")",
      [&] { kernels::cuda::sum_squares(ctx, scalar, grads, num_params); }, num_params * f, 0);
  add("adamw_update (124M)", "(" + std::to_string(num_params) + ")",
      [&] {
        kernels::cuda::adamw_update(ctx, params, grads, m, v, num_params, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1);
      },
      7.0 * num_params * f, 0);

  // bf16 activation kernels (bf16_*.cu): bytes are those that must move at least once, 2 per bf16 element.
  {
    const double h = 2.0;  // bytes per bf16
    const double NC4 = 4 * NC;
    uint16_t* y16 = dev_alloc<uint16_t>(N * C);
    uint16_t* r16 = dev_alloc<uint16_t>(N * C);
    uint16_t* dy16 = dev_alloc<uint16_t>(N * C);
    uint16_t* wpe16 = dev_alloc<uint16_t>(static_cast<size_t>(T) * C);
    uint16_t* lnw16 = dev_alloc<uint16_t>(C);
    uint16_t* lnb16 = dev_alloc<uint16_t>(C);
    uint16_t* dh16 = dev_alloc<uint16_t>(N * 4 * C);
    uint16_t* g16 = dev_alloc<uint16_t>(N * 4 * C);
    uint16_t* qkv16 = dev_alloc<uint16_t>(N * 3 * C);
    uint16_t* dqkv16 = dev_alloc<uint16_t>(N * 3 * C);
    uint16_t* att16 = dev_alloc<uint16_t>(static_cast<size_t>(B) * NH * T * T);
    uint16_t* datt16 = dev_alloc<uint16_t>(static_cast<size_t>(B) * NH * T * T);
    kernels::cuda::float_to_bf16(ctx, wpe16, wpe, static_cast<size_t>(T) * C);
    kernels::cuda::float_to_bf16(ctx, dy16, dy, N * C);
    kernels::cuda::float_to_bf16(ctx, lnw16, lnw, C);
    kernels::cuda::float_to_bf16(ctx, lnb16, lnb, C);
    kernels::cuda::float_to_bf16(ctx, qkv16, qkv, N * 3 * C);
    kernels::cuda::float_to_bf16(ctx, h16, h4, N * 4 * C);
    kernels::cuda::float_to_bf16(ctx, dh16, dh4, N * 4 * C);
    const int n = static_cast<int>(N);
    add("embedding_forward_bf16", nc, [&] { kernels::cuda::embedding_forward_bf16(ctx, y16, tokens, wte16, wpe16, B, T, C); },
        3 * NC * h, 0);
    add("embedding_backward_bf16", nc,
        [&] { kernels::cuda::embedding_backward_bf16(ctx, dwte, dwpe, dy16, tokens, B, T, C); }, NC * (h + 2 * f), 0);
    add("layernorm_forward_bf16", nc,
        [&] { kernels::cuda::layernorm_forward_bf16(ctx, y16, mean, rstd, x16, lnw16, lnb16, n, C); }, 2 * NC * h, 0);
    add("residual_layernorm_forward_bf16", nc,
        [&] {
          kernels::cuda::residual_layernorm_forward_bf16(ctx, r16, y16, mean, rstd, x16, dy16, lnw16, lnb16, n, C);
        },
        4 * NC * h, 0);
    add("layernorm_backward_bf16", nc,
        [&] { kernels::cuda::layernorm_backward_bf16(ctx, dx16, dlnw, dlnb, dy16, x16, lnw16, mean, rstd, n, C); },
        4 * NC * h, 0);
    add("gelu_forward_bf16", "(" + std::to_string(N * 4 * C) + ")",
        [&] { kernels::cuda::gelu_forward_bf16(ctx, g16, h16, N * 4 * C); }, 2 * NC4 * h, 0);
    add("gelu_backward_bf16", "(" + std::to_string(N * 4 * C) + ")",
        [&] { kernels::cuda::gelu_backward_bf16(ctx, g16, h16, dh16, N * 4 * C); }, 4 * NC4 * h, 0);
    add("add_bf16", nc, [&] { kernels::cuda::add_bf16(ctx, y16, x16, dy16, N * C); }, 3 * NC * h, 0);
    add("accumulate_bf16", nc, [&] { kernels::cuda::accumulate_bf16(ctx, y16, dy16, N * C); }, 3 * NC * h, 0);
    add("fill_bf16", nc, [&] { kernels::cuda::fill_bf16(ctx, y16, 0, N * C); }, NC * h, 0);
    add("slice_columns_forward_bf16", nc + "[:, :384]",
        [&] { kernels::cuda::slice_columns_forward_bf16(ctx, r16, x16, n, C, 0, C / 2); }, NC * h, 0);
    add("slice_columns_backward_bf16", nc + "[:, :384]",
        [&] { kernels::cuda::slice_columns_backward_bf16(ctx, y16, r16, n, C, 0, C / 2); }, 1.5 * NC * h, 0);
    // Attention: qkv, out and the (B,NH,T,T) bf16 att; the fp32 scores / datt_f pass through the workspace (the
    // causal half of them is read). Once with the default 64 MiB workspace (one batch row per chunk at T = 1024) and
    // once with room for all B rows.
    const double att16_bytes = static_cast<double>(B) * NH * T * T * h;
    // Forward: qkv + out; fp32 scores written in full, causal half read (3 att16 units); att written, read once.
    const double fwd_bytes = 4 * NC * h + 5 * att16_bytes;
    // Backward: qkv, dout, dqkv read + written; datt_f as the scores (3); att read twice; datt written, read twice.
    const double bwd_bytes = 8 * NC * h + 8 * att16_bytes;
    const std::string bnt = "B,NH,T,T=" + std::to_string(B) + ",12," + std::to_string(T);
    const kernels::KernelContext big = kernels::cuda::make_cuda_context(static_cast<size_t>(B) * NH * T * T * 4);
    for (const kernels::KernelContext* c : {&ctx, &big}) {
      const std::string ws = c == &ctx ? " ws 64M" : " ws B rows";
      add("attention_forward_bf16" + ws, bnt,
          [&] { kernels::cuda::attention_forward_bf16(*c, y16, att16, qkv16, B, T, C, NH); }, fwd_bytes,
          4.0 * B * T * static_cast<double>(T) * C);
      add("attention_backward_bf16" + ws, bnt,
          [&] { kernels::cuda::attention_backward_bf16(*c, dqkv16, datt16, dy16, qkv16, att16, B, T, C, NH); },
          bwd_bytes, 8.0 * B * T * static_cast<double>(T) * C);
    }
    // Flash attention (bf16_flash_attention.cu): no (T,T) tensor anywhere. Bytes that must move at least once: forward
    // qkv in, out and lse (fp32) out; backward qkv, dout, out, lse in, dqkv read and written. FLOPs count the causal
    // half only: forward 2 products of 2 B NH T^2 HS / 2 = 2 B T^2 C; backward the 5 products of FlashAttention-2
    // (5 B T^2 C), not the 2 that its atomic-free dq pass recomputes.
    float* lse = dev_alloc<float>(static_cast<size_t>(B) * NH * T);
    const double lse_bytes = static_cast<double>(B) * NH * T * f;
    add("flash_attention_forward_bf16", bnt,
        [&] { kernels::cuda::flash_attention_forward_bf16(ctx, y16, lse, qkv16, B, T, C, NH); },
        4 * NC * h + lse_bytes, 2.0 * B * T * static_cast<double>(T) * C);
    add("flash_attention_backward_bf16", bnt,
        [&] { kernels::cuda::flash_attention_backward_bf16(ctx, dqkv16, dy16, y16, lse, qkv16, B, T, C, NH); },
        11 * NC * h + lse_bytes, 5.0 * B * T * static_cast<double>(T) * C);
    // In place: logits16 is overwritten with dlogits; rerunning on dlogits costs the same (no data-dependent path).
    add("softmax_xent_fused_bf16", "(" + std::to_string(N) + ",50304)",
        [&] {
          kernels::cuda::softmax_crossentropy_fused_bf16(ctx, losses, logits16, tokens, 1.0f / N, n, V, Vp);
        },
        2.0 * N * Vp * h, 0);
  }

  std::printf("\n| kernel | shape | ms | GB/s | TFLOP/s |\n|---|---|---:|---:|---:|\n");
  for (const Row& r : rows) {
    std::printf("| %s | %s | %.3f | %.0f | %s |\n", r.name.c_str(), r.shape.c_str(), r.ms, r.gbps,
                r.tflops > 0 ? std::to_string(r.tflops).substr(0, 6).c_str() : "-");
  }
  std::printf("\n(L=%d; whole-step tokens/s and MFU need the model on CUDA: see tools/gpu/README.md)\n", L);
  CUDA_CHECK(cudaDeviceSynchronize());
  return 0;
}

#else  // RESBM_HAVE_CUDA

int main() {
  std::printf("gpu_kernels: built without CUDA (--config=nocuda): nothing to benchmark\n");
  return 0;
}

#endif
