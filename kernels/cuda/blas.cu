// kernels/cuda/blas.cu: cuBLAS handle access, the cuBLASLt matmul wrapper and the batched SGEMM (see blas.h).
#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include <cublasLt.h>

#include "kernels/cuda/blas.h"
#include "kernels/cuda/common.cuh"

namespace kernels::cuda {

namespace {

// The largest power of two (<= 256) that divides the address: cuBLASLt's heuristics assume 256-byte aligned
// operands unless told otherwise, and would pick kernels that fault on a view at an odd offset.
uint32_t alignment_of(const void* p) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  uint32_t align = 256;
  while (align > 2 && (a % align) != 0) align /= 2;
  return align;
}

cudaDataType_t cuda_type(GemmType t) { return t == GemmType::bf16 ? CUDA_R_16BF : CUDA_R_32F; }

}  // namespace

cublasHandle_t cublas_of(const KernelContext& ctx, const char* who) {
  if (ctx.cublas_handle == nullptr) {
    std::fprintf(stderr, "%s: the KernelContext has no cuBLAS handle.\n  hint: build it with engine::make_cuda_context().\n",
                 who);
    std::abort();
  }
  cublasHandle_t handle = static_cast<cublasHandle_t>(ctx.cublas_handle);
  CUBLAS_CHECK(cublasSetStream(handle, stream_of(ctx)));
  // CUBLAS_DEFAULT_MATH alone lets split-K GEMMs reduce their partials in the output type: for the bf16 outputs of
  // bf16_attention.cu (out, dv, dq, dk) that is several bf16 roundings instead of one. No TF32 either way.
  CUBLAS_CHECK(cublasSetMathMode(
      handle, static_cast<cublasMath_t>(CUBLAS_DEFAULT_MATH | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
  return handle;
}

namespace {

// What identifies a plan: the GemmDesc without its pointers, alpha and beta, plus the pointers' alignments.
struct LtPlanKey {
  bool trans_a, trans_b, bias, gelu;
  int m, n, k, lda, ldb, ldc;
  GemmType a_type, b_type, c_type;
  uint32_t align_a, align_b, align_c;
  bool operator==(const LtPlanKey& o) const {
    return trans_a == o.trans_a && trans_b == o.trans_b && bias == o.bias && gelu == o.gelu && m == o.m &&
           n == o.n && k == o.k && lda == o.lda && ldb == o.ldb && ldc == o.ldc && a_type == o.a_type &&
           b_type == o.b_type && c_type == o.c_type && align_a == o.align_a && align_b == o.align_b &&
           align_c == o.align_c;
  }
};

LtPlanKey key_of(const GemmDesc& g) {
  return {g.trans_a, g.trans_b, g.bias != nullptr, g.gelu, g.m, g.n, g.k, g.lda, g.ldb, g.ldc,
          g.a_type, g.b_type, g.c_type, alignment_of(g.a), alignment_of(g.b), alignment_of(g.c)};
}

// A descriptor with every attribute but the per-call pointers (bias, GELU's pre-activation), the three layouts
// (D shares C's), and the algorithm the heuristic chose for them.
struct LtPlan {
  cublasLtMatmulDesc_t desc;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
};

LtPlan make_plan(const KernelContext& ctx, const GemmDesc& g, const char* who) {
  cublasLtHandle_t handle = static_cast<cublasLtHandle_t>(ctx.cublaslt_handle);
  LtPlan plan;
  cublasLtMatmulDesc_t& desc = plan.desc;
  CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t op_a = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  if (g.gelu) {
    epilogue = g.bias ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_AUX;
  } else if (g.bias) {
    epilogue = CUBLASLT_EPILOGUE_BIAS;
  }
  CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  if (g.bias) {
    const cudaDataType_t bias_type = cuda_type(g.c_type);
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bias_type,
                                                sizeof(bias_type)));
  }
  if (g.gelu) {
    const int64_t ld_aux = g.ldc;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld_aux, sizeof(ld_aux)));
  }
  cublasLtMatrixLayout_t &la = plan.la, &lb = plan.lb, &lc = plan.lc;
  CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&la, cuda_type(g.a_type), g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, g.lda));
  CUBLAS_CHECK(
      cublasLtMatrixLayoutCreate(&lb, cuda_type(g.b_type), g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, g.ldb));
  CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, cuda_type(g.c_type), g.m, g.n, g.ldc));
  cublasLtMatmulPreference_t pref;
  CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws_bytes = ctx.cuda_workspace_bytes;
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                                    sizeof(ws_bytes)));
  const uint32_t align_a = alignment_of(g.a), align_b = alignment_of(g.b), align_c = alignment_of(g.c);
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                                    sizeof(align_a)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b,
                                                    sizeof(align_b)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c,
                                                    sizeof(align_c)));
  CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c,
                                                    sizeof(align_c)));
  if (g.c_type == GemmType::bf16) {
    // A bf16 output is the fp32 accumulation rounded once (bf16.cuh). The default mask also allows split-K schemes
    // that add the partial products in the output type (INPLACE, OUTPUT_TYPE): several bf16 roundings. Only
    // unsplit kernels (NONE, value 0) or partials kept in fp32 (COMPUTE_TYPE) then.
    const uint32_t reductions = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reductions,
                                                      sizeof(reductions)));
  }
  cublasLtMatmulHeuristicResult_t result;
  int found = 0;
  // No algorithm comes back either as found == 0 or as CUBLAS_STATUS_NOT_SUPPORTED: both get the shape and the hint.
  const cublasStatus_t heuristic =
      cublasLtMatmulAlgoGetHeuristic(handle, desc, la, lb, lc, lc, pref, 1, &result, &found);
  if (heuristic != CUBLAS_STATUS_NOT_SUPPORTED) CUBLAS_CHECK(heuristic);
  if (heuristic == CUBLAS_STATUS_NOT_SUPPORTED || found == 0) {
    std::fprintf(stderr,
                 "%s: cuBLASLt has no algorithm for m=%d n=%d k=%d (lda %d ldb %d ldc %d, bias %d, gelu %d, "
                 "a/b/c bf16 %d/%d/%d).\n"
                 "  hint: the GELU epilogue needs ldc divisible by 8; otherwise try a larger workspace.\n",
                 who, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.bias != nullptr, g.gelu, g.a_type == GemmType::bf16,
                 g.b_type == GemmType::bf16, g.c_type == GemmType::bf16);
    std::abort();
  }
  plan.algo = result.algo;
  CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
  return plan;
}

void destroy_plan(const LtPlan& plan) {
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(plan.la));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(plan.lb));
  CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(plan.lc));
  CUBLAS_CHECK(cublasLtMatmulDescDestroy(plan.desc));
}

}  // namespace

class LtPlanCache {
 public:
  ~LtPlanCache() {
    for (const auto& entry : plans_) destroy_plan(entry.second);
  }
  const LtPlan& get(const KernelContext& ctx, const GemmDesc& g, const char* who) {
    const LtPlanKey key = key_of(g);
    for (const auto& entry : plans_) {
      if (entry.first == key) return entry.second;
    }
    plans_.emplace_back(key, make_plan(ctx, g, who));
    return plans_.back().second;
  }
  size_t size() const { return plans_.size(); }

 private:
  std::vector<std::pair<LtPlanKey, LtPlan>> plans_;
};

LtPlanCache* create_lt_plan_cache() { return new LtPlanCache(); }
void destroy_lt_plan_cache(LtPlanCache* cache) { delete cache; }
size_t lt_plan_count(const LtPlanCache& cache) { return cache.size(); }

void lt_matmul(const KernelContext& ctx, const GemmDesc& g, const char* who) {
  if (g.m == 0 || g.n == 0) return;
  if (g.batch != 1) {
    std::fprintf(stderr, "%s: lt_matmul takes one product (batch %d)\n", who, g.batch);
    std::abort();
  }
  if (g.k == 0) {  // an empty product: C = beta * C (+ epilogue) has no caller here; refuse rather than guess
    std::fprintf(stderr, "%s: GEMM with k = 0 (m=%d n=%d)\n  hint: an empty batch or width reached a matmul.\n", who,
                 g.m, g.n);
    std::abort();
  }
  if (ctx.cublaslt_handle == nullptr) {
    std::fprintf(stderr, "%s: the KernelContext has no cuBLASLt handle.\n  hint: build it with engine::make_cuda_context().\n",
                 who);
    std::abort();
  }
  cublasLtHandle_t handle = static_cast<cublasLtHandle_t>(ctx.cublaslt_handle);
  LtPlanCache* cache = static_cast<LtPlanCache*>(ctx.cuda_gemm_plans);
  const LtPlan plan = cache ? cache->get(ctx, g, who) : make_plan(ctx, g, who);
  // The per-call pointers (the descriptor is shared by every GEMM of this shape; the stream orders the calls).
  if (g.bias) {
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)));
  }
  if (g.gelu) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(plan.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &g.pre_gelu,
                                                sizeof(g.pre_gelu)));
  }
  CUBLAS_CHECK(cublasLtMatmul(handle, plan.desc, &g.alpha, g.a, plan.la, g.b, plan.lb, &g.beta, g.c, plan.lc, g.c,
                              plan.lc, &plan.algo, ctx.cuda_workspace, ctx.cuda_workspace_bytes, stream_of(ctx)));
  if (!cache) destroy_plan(plan);
}

void sgemm_strided_batched(const KernelContext& ctx, const GemmDesc& g, const char* who) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.bias != nullptr || g.gelu || g.a_type != GemmType::f32 || g.b_type != GemmType::f32 ||
      g.c_type != GemmType::f32) {
    std::fprintf(stderr, "%s: sgemm_strided_batched is fp32 without epilogues\n", who);
    std::abort();
  }
  cublasHandle_t handle = cublas_of(ctx, who);
  CUBLAS_CHECK(cublasSgemmStridedBatched(handle, g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                                         g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, g.m, g.n, g.k, &g.alpha,
                                         static_cast<const float*>(g.a), g.lda, g.stride_a,
                                         static_cast<const float*>(g.b), g.ldb, g.stride_b, &g.beta,
                                         static_cast<float*>(g.c), g.ldc, g.stride_c, g.batch));
}

}  // namespace kernels::cuda
