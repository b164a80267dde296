// tools/bench/gpu_step/gpu_step.cc: whole-step GPT-2 benchmark on one GPU, fp32 (the kernels' precision today):
// tokens/s and MFU of forward + backward + AdamW, llm.c-style flat model (gpt2_step.h) on random tokens.
//
//   gpu_step [B] [T] [steps] [L C NH]     defaults 8 1024 10, GPT-2 124M (12 768 12)
//
// MFU = achieved FLOP/s / peak, with FLOPs per token = 6 N + 6 L C T as the project's issue states (llm.c counts the
// attention term as 12 L C T; both are printed). Peaks by device name (dense, no sparsity): H100/H200 SXM 989 TFLOP/s
// bf16 and 67 TFLOP/s fp32 (non-tensor); A100 312 / 19.5. This step is fp32, so its MFU against the bf16 peak is
// the figure the issue's goal (bf16, >= 50%) is about, and it cannot reach it: that needs the bf16 path end to end.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/context.h"
#include "kernels/cuda/cuda_context.h"
#include "tools/bench/gpu_step/cuda_kernel_set.h"
#include "tools/bench/gpu_step/gpt2_step.h"

#ifdef RESBM_HAVE_CUDA

namespace {

using gpu_step::CudaKernels;

struct Peak {
  double bf16, fp32;
};

Peak peak_for(const std::string& name) {
  if (name.find("H100") != std::string::npos || name.find("H200") != std::string::npos) return {989.4e12, 66.9e12};
  if (name.find("A100") != std::string::npos) return {312e12, 19.5e12};
  return {0.0, 0.0};
}

}  // namespace

int main(int argc, char** argv) {
  const int B = argc > 1 ? std::atoi(argv[1]) : 8;
  const int T = argc > 2 ? std::atoi(argv[2]) : 1024;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 10;
  gpu_step::Config cfg;
  if (argc > 6) cfg.L = std::atoi(argv[4]), cfg.C = std::atoi(argv[5]), cfg.NH = std::atoi(argv[6]);
  cfg.max_T = std::max(cfg.max_T, T);

  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  const kernels::KernelContext ctx = kernels::cuda::make_cuda_context();
  cudaStream_t stream = static_cast<cudaStream_t>(ctx.cuda_stream);

  gpu_step::Gpt2Step<CudaKernels> model(ctx, cfg, B, T);
  model.init_params(1337);
  const size_t N = static_cast<size_t>(B) * T;
  std::vector<int32_t> tokens(N + 1);
  uint64_t x = 42;
  for (auto& t : tokens) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((x >> 33) % cfg.V);
  }
  model.set_batch(tokens.data(), tokens.data() + 1);
  std::printf("gpu_step: %s, GPT-2 L=%d C=%d NH=%d (%.1fM params), B=%d T=%d, fp32, %d timed steps\n", prop.name,
              cfg.L, cfg.C, cfg.NH, model.num_parameters() / 1e6, B, T, steps);

  const float first_loss = [&] {
    model.step(1, 3e-4f);
    return model.loss();
  }();
  model.step(2, 3e-4f);  // warm-up (cuBLASLt heuristics, caches)
  cudaEvent_t start, stop;
  CUDA_CHECK(cudaEventCreate(&start));
  CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<float> ms(steps);
  float last_loss = 0.0f;
  for (int i = 0; i < steps; i++) {
    CUDA_CHECK(cudaEventRecord(start, stream));
    model.step(3 + i, 3e-4f);
    CUDA_CHECK(cudaEventRecord(stop, stream));
    CUDA_CHECK(cudaEventSynchronize(stop));
    CUDA_CHECK(cudaEventElapsedTime(&ms[i], start, stop));
    last_loss = model.loss();
  }
  std::sort(ms.begin(), ms.end());
  const double step_s = ms[steps / 2] / 1e3;
  const double tok_s = N / step_s;
  const double flops_issue = 6.0 * model.num_parameters() + 6.0 * cfg.L * cfg.C * T;
  const double flops_llmc = 6.0 * model.num_parameters() + 12.0 * cfg.L * cfg.C * T;
  const Peak peak = peak_for(prop.name);
  std::printf("| step ms (median) | tokens/s | TFLOP/s (6N+6LCT) | MFU vs bf16 peak | MFU vs fp32 peak | loss first -> last |\n");
  std::printf("|---:|---:|---:|---:|---:|---|\n");
  std::printf("| %.1f | %.0f | %.1f | %s | %s | %.4f -> %.4f |\n", step_s * 1e3, tok_s, tok_s * flops_issue / 1e12,
              peak.bf16 > 0 ? (std::to_string(100.0 * tok_s * flops_issue / peak.bf16).substr(0, 5) + "%").c_str() : "?",
              peak.fp32 > 0 ? (std::to_string(100.0 * tok_s * flops_issue / peak.fp32).substr(0, 5) + "%").c_str() : "?",
              first_loss, last_loss);
  std::printf("(with llm.c's 6N+12LCT: %.1f TFLOP/s)\n", tok_s * flops_llmc / 1e12);
  return 0;
}

#else  // RESBM_HAVE_CUDA

int main() {
  std::printf("gpu_step: built without CUDA (--config=nocuda): nothing to benchmark\n");
  return 0;
}

#endif
