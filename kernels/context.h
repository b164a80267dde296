// kernels/context.h: KernelContext, the one explicit handle every kernel takes (CPU and CUDA twins alike).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace kernels {

// The precision of matmul_forward / matmul_backward (the linear layers and the LM head). bf16 is PyTorch autocast's
// rule for linear layers: each GEMM rounds its operands to bf16 (round to nearest even) and multiplies them with
// fp32 accumulation (tensor cores on the GPU); results, parameters (the fp32 masters), optimizer state, layernorm,
// softmax, attention, reductions and losses stay fp32. The CPU kernels compute the same numbers: bf16 operands
// through oneDNN where the CPU multiplies bf16 in hardware (avx512_bf16, AMX), else the operands rounded and kept
// as fp32 for an fp32 GEMM (kernels/cpu/gemm_plans.h), so the bf16 path is tested and compared without a GPU.
enum class GemmPrecision : uint8_t { fp32, bf16 };

// Scratch elements a bf16 matmul of these sizes needs for its rounded operands: the forward rounds inp (N,C) and
// weight (OC,C); the backward dout (N,OC) with weight, then with inp: at most N*C + OC*C + N*OC at once.
// Bytes: 2 per element on the GPU (bf16), 4 on the CPU (rounded values kept as fp32 where the CPU has no bf16).
inline size_t bf16_gemm_scratch_elements(size_t N, size_t C, size_t OC) { return N * C + OC * C + N * OC; }

// What a kernel needs beyond its arguments. The CPU kernels use num_threads and the GEMM plans; the CUDA kernels use
// the stream, the cuBLASLt handle and the workspace. Built once per process (engine/device.h) and passed by
// reference, so that no kernel touches global mutable state. The pointers are opaque here so that this header needs
// no CUDA or oneDNN headers.
struct KernelContext {
  int num_threads = 1;                    // CPU: threads for the OpenMP loops and the oneDNN GEMMs
  void* cuda_stream = nullptr;            // cudaStream_t
  void* cublaslt_handle = nullptr;        // cublasLtHandle_t
  void* cublas_handle = nullptr;          // cublasHandle_t (batched GEMMs in attention)
  void* cuda_workspace = nullptr;         // device scratch for cuBLASLt
  size_t cuda_workspace_bytes = 0;
  GemmPrecision gemm_precision = GemmPrecision::fp32;
  void* gemm_scratch = nullptr;           // bf16 GEMMs: rounded operands (device memory on CUDA, host on the CPU)
  size_t gemm_scratch_bytes = 0;          // sized once for the largest matmul (engine::DeviceContext)
  void* cpu_gemm_plans = nullptr;         // kernels::cpu::GemmPlans* (cached oneDNN matmuls), owned by DeviceContext
  // kernels::cuda::LtPlanCache* (cuBLASLt plans by GEMM shape, kernels/cuda/blas.h), owned by whoever made the CUDA
  // context; null: every GEMM builds and frees its plan (the same algorithm, found again each call).
  void* cuda_gemm_plans = nullptr;
  // engine::KernelProfiler*, or null (the default: no timing). When set, the engine's KERNEL dispatch
  // (engine/dispatch.h) times every kernel call made with this context; the kernels themselves never read it.
  void* profiler = nullptr;
};

// Aborts with the sizes when ctx's GEMM scratch is smaller than a bf16 matmul needs (DeviceContext sizes it for the
// model's largest matmul, so this fires only on a sizing bug).
inline void require_gemm_scratch(const KernelContext& ctx, size_t bytes, const char* who) {
  if (ctx.gemm_scratch != nullptr && ctx.gemm_scratch_bytes >= bytes) return;
  std::fprintf(stderr,
               "%s: bf16 GEMM needs %zu bytes of gemm scratch, the context has %zu.\n"
               "  hint: engine::DeviceContext::enable_bf16_gemms() sizes it for the largest matmul.\n",
               who, bytes, ctx.gemm_scratch_bytes);
  std::abort();
}

}  // namespace kernels
