// kernels/cpu/gemm_plans.h: GemmPlans, the CPU's GEMMs on oneDNN's matmul primitive, created once per shape and
// cached. Every CPU matmul (kernels/cpu/matmul.cc: the linear layers, the tied head, their backward passes and the
// row-major gemm) goes through here; no header outside kernels/cpu/gemm_plans.cc sees oneDNN.
//
// Why oneDNN: OpenBLAS 0.3.21 does not know this generation of CPUs and runs AVX2 kernels at about half of what
// the AVX-512 FMA units give; oneDNN's brgemm kernels reach them, and multiply bf16 operands in hardware
// (avx512_bf16, AMX) with fp32 accumulation. Its fp32 results rerun bitwise at a fixed thread count (static
// partitioning, no atomics), which the engine's determinism needs.
//
// Threads: oneDNN (Debian's build, OpenMP runtime) runs on the calling thread's OpenMP team, the same libgomp
// threads as the kernels' loops, so nothing fights over the cores. run() sets the calling thread's OpenMP thread
// count to the GEMM's before it runs and refuses to run inside another parallel region (nested teams would
// oversubscribe the cores).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "kernels/context.h"

namespace kernels::cpu {

// The type of A and B. C, the bias and the accumulation are fp32 either way.
enum class GemmOperands : uint8_t { f32, bf16 };

// How --dtype bf16 multiplies on the CPU: bf16 operands through oneDNN where the CPU multiplies bf16 in hardware,
// else (and on request, for the tests) the operands rounded to bf16 and kept as fp32 for an fp32 GEMM. Both compute
// the exact products of the rounded operands summed in fp32; only the summation order differs.
enum class Bf16Path : uint8_t { automatic, native, rounded_fp32 };

// For each batch index i: C_i (M,N) = alpha * op(A_i) @ op(B_i) [+ bias (N)] [+ beta * C_i], all row-major.
// A_i is stored (M,K), or (K,M) when trans_a, with rows lda elements apart; B_i (K,N), or (N,K) when trans_b, ldb;
// C_i (M,N), ldc. X_i = X + i * stride_x elements. beta 0 never reads C (it may hold NaN).
struct GemmShape {
  int M = 0, N = 0, K = 0;
  bool trans_a = false, trans_b = false;
  int lda = 0, ldb = 0, ldc = 0;
  int batch = 1;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  GemmOperands operands = GemmOperands::f32;
  bool bias = false;
  float alpha = 1.0f, beta = 0.0f;
};

// Contiguous row-major operands: lda, ldb, ldc from the shape.
GemmShape dense_gemm(int M, int N, int K, bool trans_a, bool trans_b, float alpha = 1.0f, float beta = 0.0f);

class GemmPlans {
 public:
  explicit GemmPlans(Bf16Path bf16 = Bf16Path::automatic);
  ~GemmPlans();
  GemmPlans(const GemmPlans&) = delete;
  GemmPlans& operator=(const GemmPlans&) = delete;

  // Runs one GEMM on `threads` OpenMP threads, creating its primitive the first time this (shape, threads) is seen.
  // bias: (N) fp32 when shape.bias. Thread-safe (one GEMM at a time); aborts with file:line on a oneDNN error.
  void run(const GemmShape& shape, const void* a, const void* b, const float* bias, float* c, int threads);

  // Whether --dtype bf16 hands oneDNN bf16 operands (true) or rounds them and multiplies in fp32 (false).
  bool bf16_native() const { return bf16_native_; }
  size_t num_plans() const;  // primitives created so far (the tests check that the cache is used)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  bool bf16_native_ = false;
};

// Whether this CPU multiplies bf16 in hardware as oneDNN sees it (avx512_bf16 or AMX; DNNL_MAX_CPU_ISA lowers it).
bool cpu_has_native_bf16();
// One line for run tables: the GEMM library, its version and ISA, and what --dtype bf16 does here.
std::string describe_cpu_gemms(const GemmPlans& plans);

// The context's plans (engine::DeviceContext owns one per process), or, for a hand-made KernelContext without
// them, `fallback`, a GemmPlans made for this one call: same results, but each call creates its primitive anew.
GemmPlans& plans_of(const KernelContext& ctx, std::unique_ptr<GemmPlans>& fallback);

}  // namespace kernels::cpu
