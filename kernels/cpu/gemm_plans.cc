// kernels/cpu/gemm_plans.cc: GemmPlans, oneDNN matmul primitives cached per (shape, threads); see gemm_plans.h.
//
// A plan is everything one GEMM shape needs, made once: the primitive, its memory objects (whose data pointers
// run() swaps in: dnnl::memory::set_data_handle allocates nothing) and the argument map. The primitives use a
// scratchpad owned here (scratchpad_mode::user), grown only when a plan is created. So after the first step has
// seen every shape, a GEMM allocates nothing and creates nothing: it looks its plan up and executes it.
//
// Layouts: oneDNN's matmul computes dst (M,N) = src (M,K) @ weights (K,N) on strided memory, so a transposed operand
// is the same bytes described with swapped strides: llm.c's (OC,C) weight is the (C,OC) `weights` with strides
// (1, C), and dout^T (OC,N) is dout (N,OC) with strides (1, OC). Nothing is copied or transposed by us.
#include "kernels/cpu/gemm_plans.h"

#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dnnl.hpp>
#include <mutex>
#include <unordered_map>

namespace kernels::cpu {

namespace {

[[noreturn]] void onednn_fail(const dnnl::error& e, const char* what, const char* file, int line) {
  std::fprintf(stderr,
               "%s:%d: oneDNN error %d (%s) in %s\n"
               "  hint: 'unimplemented' means no matmul kernel for this shape / layout / data type on this CPU\n"
               "  (DNNL_VERBOSE=1 lists what oneDNN tried); 'out of memory': the scratchpad or the operands.\n",
               file, line, static_cast<int>(e.status), e.what(), what);
  std::abort();
}

// Runs statements that may throw dnnl::error; aborts with file:line and `what` (the engine's kernels do not throw).
#define ONEDNN_CHECK(what, ...)                         \
  do {                                                  \
    try {                                               \
      __VA_ARGS__;                                      \
    } catch (const dnnl::error& resbm_e_) {             \
      onednn_fail(resbm_e_, what, __FILE__, __LINE__);  \
    }                                                   \
  } while (0)

[[noreturn]] void usage_fail(const char* why, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: GemmPlans: %s\n", file, line, why);
  std::abort();
}

// A plan's identity: the shape and the thread count (oneDNN partitions the work by the threads it has when the
// primitive is created, so a primitive made for 2 threads is not reused for 1).
struct Key {
  GemmShape s;
  int threads;
  bool operator==(const Key& o) const {
    return s.M == o.s.M && s.N == o.s.N && s.K == o.s.K && s.trans_a == o.s.trans_a && s.trans_b == o.s.trans_b &&
           s.lda == o.s.lda && s.ldb == o.s.ldb && s.ldc == o.s.ldc && s.batch == o.s.batch &&
           s.stride_a == o.s.stride_a && s.stride_b == o.s.stride_b && s.stride_c == o.s.stride_c &&
           s.operands == o.s.operands && s.bias == o.s.bias && std::memcmp(&s.alpha, &o.s.alpha, 4) == 0 &&
           std::memcmp(&s.beta, &o.s.beta, 4) == 0 && threads == o.threads;
  }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    uint32_t alpha, beta;
    std::memcpy(&alpha, &k.s.alpha, 4);
    std::memcpy(&beta, &k.s.beta, 4);
    const int64_t fields[] = {k.s.M, k.s.N, k.s.K, k.s.trans_a, k.s.trans_b, k.s.lda, k.s.ldb, k.s.ldc, k.s.batch,
                              k.s.stride_a, k.s.stride_b, k.s.stride_c, static_cast<int>(k.s.operands), k.s.bias,
                              alpha, beta, k.threads};
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    for (int64_t f : fields) h = (h ^ static_cast<uint64_t>(f)) * 1099511628211ull;
    return static_cast<size_t>(h);
  }
};

// A strided (rows, cols) matrix, or (batch, rows, cols) when batched; transposed = stored (cols, rows) with ld.
dnnl::memory::desc matrix_desc(int batch, int64_t batch_stride, int rows, int cols, int ld, bool transposed,
                               dnnl::memory::data_type type) {
  const dnnl::memory::dim r = rows, c = cols, l = ld;
  const dnnl::memory::dims strides = transposed ? dnnl::memory::dims{1, l} : dnnl::memory::dims{l, 1};
  if (batch == 1) return dnnl::memory::desc({r, c}, type, strides);
  return dnnl::memory::desc({batch, r, c}, type, {batch_stride, strides[0], strides[1]});
}

struct Plan {
  dnnl::matmul primitive;
  dnnl::memory a, b, c, bias, scratchpad;
  std::unordered_map<int, dnnl::memory> args;
};

}  // namespace

struct GemmPlans::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::mutex mutex;
  std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash> plans;
  void* scratch = nullptr;  // shared by every plan: one GEMM runs at a time
  size_t scratch_bytes = 0;

  ~Impl() { std::free(scratch); }

  Plan& plan_for(const Key& key) {
    auto it = plans.find(key);
    if (it != plans.end()) return *it->second;
    const GemmShape& s = key.s;
    using dt = dnnl::memory::data_type;
    const dt in_type = s.operands == GemmOperands::bf16 ? dt::bf16 : dt::f32;
    const auto a_md = matrix_desc(s.batch, s.stride_a, s.M, s.K, s.lda, s.trans_a, in_type);
    const auto b_md = matrix_desc(s.batch, s.stride_b, s.K, s.N, s.ldb, s.trans_b, in_type);
    const auto c_md = matrix_desc(s.batch, s.stride_c, s.M, s.N, s.ldc, false, dt::f32);
    // The bias is one row broadcast over M (and the batch).
    const auto bias_md = !s.bias                ? dnnl::memory::desc()
                         : s.batch == 1         ? dnnl::memory::desc({1, s.N}, dt::f32, {s.N, 1})
                                                : dnnl::memory::desc({1, 1, s.N}, dt::f32, {s.N, s.N, 1});
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (s.alpha != 1.0f) attr.set_output_scales(0, {s.alpha});
    if (s.beta != 0.0f) {  // C = (...) + beta * C: the "sum" post-op reads C back
      dnnl::post_ops ops;
      ops.append_sum(s.beta);
      attr.set_post_ops(ops);
    }
    auto plan = std::make_unique<Plan>();
    ONEDNN_CHECK("creating a matmul primitive", {
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, bias_md, c_md), attr, engine);
      plan->primitive = dnnl::matmul(pd);
      plan->a = dnnl::memory(a_md, engine, DNNL_MEMORY_NONE);
      plan->b = dnnl::memory(b_md, engine, DNNL_MEMORY_NONE);
      plan->c = dnnl::memory(c_md, engine, DNNL_MEMORY_NONE);
      plan->scratchpad = dnnl::memory(pd.scratchpad_desc(), engine, DNNL_MEMORY_NONE);
      grow_scratch(pd.scratchpad_desc().get_size());
      plan->args = {{DNNL_ARG_SRC, plan->a}, {DNNL_ARG_WEIGHTS, plan->b}, {DNNL_ARG_DST, plan->c},
                    {DNNL_ARG_SCRATCHPAD, plan->scratchpad}};
      if (s.bias) {
        plan->bias = dnnl::memory(bias_md, engine, DNNL_MEMORY_NONE);
        plan->args[DNNL_ARG_BIAS] = plan->bias;
      }
    });
    return *plans.emplace(key, std::move(plan)).first->second;
  }

  void grow_scratch(size_t bytes) {
    if (bytes <= scratch_bytes) return;
    std::free(scratch);
    scratch_bytes = (bytes + 63) / 64 * 64;
    scratch = std::aligned_alloc(64, scratch_bytes);
    if (scratch == nullptr) {
      std::fprintf(stderr, "GemmPlans: cannot allocate %zu bytes of oneDNN scratchpad\n", scratch_bytes);
      std::abort();
    }
  }
};

GemmShape dense_gemm(int M, int N, int K, bool trans_a, bool trans_b, float alpha, float beta) {
  GemmShape s;
  s.M = M, s.N = N, s.K = K;
  s.trans_a = trans_a, s.trans_b = trans_b;
  s.lda = trans_a ? M : K;
  s.ldb = trans_b ? K : N;
  s.ldc = N;
  s.alpha = alpha, s.beta = beta;
  return s;
}

bool cpu_has_native_bf16() {
  const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);  // AMX's bits include these
  return (isa & bf16) == bf16;
}

GemmPlans::GemmPlans(Bf16Path bf16) : impl_(std::make_unique<Impl>()) {
  bf16_native_ = bf16 == Bf16Path::native || (bf16 == Bf16Path::automatic && cpu_has_native_bf16());
}

GemmPlans::~GemmPlans() = default;

size_t GemmPlans::num_plans() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return impl_->plans.size();
}

void GemmPlans::run(const GemmShape& s, const void* a, const void* b, const float* bias, float* c, int threads) {
  if (s.M <= 0 || s.N <= 0 || s.K <= 0 || s.batch <= 0) usage_fail("empty GEMM", __FILE__, __LINE__);
  if (s.bias != (bias != nullptr)) usage_fail("bias pointer does not match shape.bias", __FILE__, __LINE__);
  if (s.bias && s.alpha != 1.0f) usage_fail("bias with alpha != 1 is not supported", __FILE__, __LINE__);
  if (omp_in_parallel()) usage_fail("called inside an OpenMP parallel region (nested teams)", __FILE__, __LINE__);
  if (threads < 1) threads = 1;
  // oneDNN sizes its parallel regions by the calling thread's OpenMP thread count; the kernels' own loops all name
  // theirs (num_threads clauses), so setting it here changes nothing else.
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Plan& p = impl_->plan_for(Key{s, threads});
  ONEDNN_CHECK("running a matmul primitive", {
    p.a.set_data_handle(const_cast<void*>(a));
    p.b.set_data_handle(const_cast<void*>(b));
    p.c.set_data_handle(c);
    if (s.bias) p.bias.set_data_handle(const_cast<float*>(bias));
    p.scratchpad.set_data_handle(impl_->scratch);
    p.primitive.execute(impl_->stream, p.args);
    impl_->stream.wait();
  });
}

std::string describe_cpu_gemms(const GemmPlans& plans) {
  const dnnl_version_t* v = dnnl::version();
  const char* isa = "other";
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx2: isa = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: isa = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx512_core: isa = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: isa = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: isa = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: isa = "avx512_core_amx"; break;
    default: break;
  }
  char line[256];
  std::snprintf(line, sizeof(line), "oneDNN %d.%d.%d (%s); bf16 GEMMs: %s", v->major, v->minor, v->patch, isa,
                plans.bf16_native() ? "bf16 operands, fp32 accumulation (native)"
                                    : "operands rounded to bf16, fp32 GEMM (no native bf16 here)");
  return line;
}

GemmPlans& plans_of(const KernelContext& ctx, std::unique_ptr<GemmPlans>& fallback) {
  if (ctx.cpu_gemm_plans != nullptr) return *static_cast<GemmPlans*>(ctx.cpu_gemm_plans);
  fallback = std::make_unique<GemmPlans>();
  return *fallback;
}

}  // namespace kernels::cpu
