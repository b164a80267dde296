// tests/kernels/cpu_matmul_test.cc: every matmul the engine runs on the CPU (oneDNN, kernels/cpu/gemm_plans.h)
// against a float64 reference, at odd sizes shaped like GPT-2's (qkv 3C, attention projection C, fc 4C, fc_proj
// from 4C, the tied head Vp without bias), forward and backward, with and without bias and input gradient; the
// row-major gemm in all four transposes with alpha and beta; NaN-poisoned outputs (every element must be written,
// and beta 0 must not read C); bitwise reruns; the primitive cache.
//
// Tolerance: a dot product of K fp32 products summed in any order is within K * u * sum|a_k b_k| of the exact sum
// (u = 2^-24, first order, Higham 3.1); a bias or a += start adds one rounding of a value no larger than the
// magnitudes summed. So |got - exact| <= (K + 2) u (sum|a b| + |bias| + |start|); doubled for the second-order
// terms and alpha/beta's extra roundings. A wrong transpose, a missing bias or a lost += is off by O(1), far above.
#include <omp.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/gemm_plans.h"
#include "kernels/cpu/kernels.h"
#include "tests/kernels/cpu_test_util.h"

namespace kernels::cpu {
namespace {

using testing::context;
using testing::randn;

constexpr double kU = 1.0 / (1 << 24);  // fp32 unit roundoff

double bound(double abs_sum, int K) { return 2.0 * (K + 2) * kU * abs_sum; }

// Checks got against exact (float64) element by element with per-element bounds; reports the first misses.
void expect_within(const std::vector<float>& got, const std::vector<double>& exact, const std::vector<double>& tol,
                   const char* what) {
  ASSERT_EQ(got.size(), exact.size()) << what;
  int misses = 0;
  for (size_t i = 0; i < got.size(); i++) {
    if (!(std::fabs(got[i] - exact[i]) <= tol[i]) && misses++ < 5) {
      ADD_FAILURE() << what << "[" << i << "]: " << got[i] << " vs " << exact[i] << " (bound " << tol[i] << ")";
    }
  }
  EXPECT_EQ(misses, 0) << what;
}

const float kPoison = std::numeric_limits<float>::quiet_NaN();

// The float64 reference of C (M,N) = start + sum_k a(i,k) b(k,j), and each element's bound from sum|a b| + |start|.
struct Reference {
  std::vector<double> exact, tol;
};
Reference reference(int M, int N, int K, const std::function<double(int, int)>& a,
                    const std::function<double(int, int)>& b, const std::function<double(int, int)>& start) {
  Reference r{std::vector<double>(size_t(M) * N), std::vector<double>(size_t(M) * N)};
  for (int i = 0; i < M; i++) {
    for (int j = 0; j < N; j++) {
      double acc = start(i, j), abs_sum = std::fabs(acc);
      for (int k = 0; k < K; k++) {
        const double p = a(i, k) * b(k, j);
        acc += p, abs_sum += std::fabs(p);
      }
      r.exact[size_t(i) * N + j] = acc;
      r.tol[size_t(i) * N + j] = bound(abs_sum, K);
    }
  }
  return r;
}

// out (N,OC) = x (N,C) @ w^T + b
void check_forward(int N, int C, int OC, bool with_bias, const KernelContext& ctx, const char* what) {
  const auto x = randn(N * C, 101), w = randn(OC * C, 102), b = randn(OC, 103);
  std::vector<float> out(N * OC, kPoison);
  matmul_forward(ctx, out.data(), x.data(), w.data(), with_bias ? b.data() : nullptr, N, C, OC);
  const Reference r = reference(
      N, OC, C, [&](int n, int c) { return double(x[n * C + c]); }, [&](int c, int o) { return double(w[o * C + c]); },
      [&](int, int o) { return with_bias ? double(b[o]) : 0.0; });
  expect_within(out, r.exact, r.tol, what);
}

// dinp (N,C) += dout @ w; dweight (OC,C) += dout^T @ x; dbias (OC) += column sums of dout; all from nonzero starts.
void check_backward(int N, int C, int OC, bool with_dinp, bool with_bias, const KernelContext& ctx, const char* what) {
  const auto x = randn(N * C, 111), w = randn(OC * C, 112), dout = randn(N * OC, 113);
  const auto dx0 = randn(N * C, 114), dw0 = randn(OC * C, 115), db0 = randn(OC, 116);
  std::vector<float> dx = dx0, dw = dw0, db = db0;
  matmul_backward(ctx, with_dinp ? dx.data() : nullptr, dw.data(), with_bias ? db.data() : nullptr, dout.data(),
                  x.data(), w.data(), N, C, OC);
  // dinp = dout (N,OC) @ w (OC,C); dweight = dout^T (OC,N) @ x (N,C); dbias = ones (1,N) @ dout (N,OC).
  const Reference rx = reference(
      N, C, OC, [&](int n, int o) { return double(dout[n * OC + o]); },
      [&](int o, int c) { return double(w[o * C + c]); }, [&](int n, int c) { return double(dx0[n * C + c]); });
  const Reference rw = reference(
      OC, C, N, [&](int o, int n) { return double(dout[n * OC + o]); },
      [&](int n, int c) { return double(x[n * C + c]); }, [&](int o, int c) { return double(dw0[o * C + c]); });
  const Reference rb = reference(
      1, OC, N, [](int, int) { return 1.0; }, [&](int n, int o) { return double(dout[n * OC + o]); },
      [&](int, int o) { return double(db0[o]); });
  expect_within(dw, rw.exact, rw.tol, (std::string(what) + " dweight").c_str());
  if (with_dinp) {
    expect_within(dx, rx.exact, rx.tol, (std::string(what) + " dinp").c_str());
  } else {
    EXPECT_EQ(dx, dx0) << what << ": dinp is null, nothing may be written";
  }
  if (with_bias) {
    expect_within(db, rb.exact, rb.tol, (std::string(what) + " dbias").c_str());
  } else {
    EXPECT_EQ(db, db0) << what;
  }
}

// GPT-2's matmuls at odd sizes: N = B*T rows, C channels (C=37: no dimension is a multiple of a vector width).
constexpr int kN = 13, kC = 37, kVp = 97;

TEST(CpuMatmul, ForwardEveryLayerShape) {
  for (int threads : {1, 2}) {
    const KernelContext ctx = context(threads);
    check_forward(kN, kC, 3 * kC, true, ctx, "qkv (3C, bias)");
    check_forward(kN, kC, kC, true, ctx, "attention proj (C, bias)");
    check_forward(kN, kC, 4 * kC, true, ctx, "fc (4C, bias)");
    check_forward(kN, 4 * kC, kC, true, ctx, "fc_proj (4C -> C, bias)");
    check_forward(kN, kC, kVp, false, ctx, "tied head (Vp, no bias)");
    check_forward(1, 1, 1, true, ctx, "1x1x1");
    check_forward(67, 129, 71, true, ctx, "67x129x71");
  }
}

TEST(CpuMatmul, BackwardEveryLayerShape) {
  for (int threads : {1, 2}) {
    const KernelContext ctx = context(threads);
    check_backward(kN, kC, 3 * kC, true, true, ctx, "qkv");
    check_backward(kN, kC, kC, true, true, ctx, "attention proj");
    check_backward(kN, kC, 4 * kC, true, true, ctx, "fc");
    check_backward(kN, 4 * kC, kC, true, true, ctx, "fc_proj");
    check_backward(kN, kC, kVp, true, false, ctx, "tied head");
    check_backward(kN, kC, kC, false, false, ctx, "no input gradient, no bias");
    check_backward(kN, kC, kC, false, true, ctx, "no input gradient, bias");
    check_backward(1, 1, 1, true, true, ctx, "1x1x1");
  }
}

TEST(CpuMatmul, GemmAllTransposesAlphaBeta) {
  const int M = 11, N = 29, K = 19;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      for (float beta : {0.0f, 1.0f, -0.75f}) {
        const auto a = randn(M * K, 121), b = randn(K * N, 122), c0 = randn(M * N, 123);
        // beta 0 must not read C: poison it.
        std::vector<float> c = beta == 0.0f ? std::vector<float>(M * N, kPoison) : c0;
        const float alpha = 0.625f;
        gemm(context(), c.data(), a.data(), b.data(), M, N, K, ta, tb, alpha, beta);
        // alpha op(A) op(B) + beta C0 as one reference product: alpha folded into A, beta C0 as the start.
        const Reference r = reference(
            M, N, K, [&](int i, int k) { return alpha * double(ta ? a[k * M + i] : a[i * K + k]); },
            [&](int k, int j) { return double(tb ? b[j * K + k] : b[k * N + j]); },
            [&](int i, int j) { return beta == 0.0f ? 0.0 : double(beta) * c0[i * N + j]; });
        const std::string what = std::string("gemm ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " beta " +
                                 std::to_string(beta);
        expect_within(c, r.exact, r.tol, what.c_str());
      }
    }
  }
}

// fp32 GEMMs: the same bits on a rerun at a fixed thread count, with cached plans and with fresh ones.
TEST(CpuMatmul, RerunsAreBitwiseAtAFixedThreadCount) {
  const int N = 64, C = 96, OC = 288;  // big enough that two threads share the work
  const auto x = randn(N * C, 131), w = randn(OC * C, 132), b = randn(OC, 133), dout = randn(N * OC, 134);
  for (int threads : {1, 2}) {
    auto run = [&](const KernelContext& ctx) {
      std::vector<float> out(N * OC), dx(N * C, 0.5f), dw(OC * C, 0.25f), db(OC, 0.0f);
      matmul_forward(ctx, out.data(), x.data(), w.data(), b.data(), N, C, OC);
      matmul_backward(ctx, dx.data(), dw.data(), db.data(), dout.data(), x.data(), w.data(), N, C, OC);
      return std::vector<std::vector<float>>{out, dx, dw, db};
    };
    GemmPlans plans;
    KernelContext cached = context(threads);
    cached.cpu_gemm_plans = &plans;
    KernelContext fresh = cached;
    fresh.cpu_gemm_plans = nullptr;  // a new primitive per call
    const auto first = run(cached), second = run(cached), third = run(fresh);
    for (size_t i = 0; i < first.size(); i++) {
      EXPECT_EQ(first[i], second[i]) << "threads " << threads << " output " << i << ": rerun differs";
      EXPECT_EQ(first[i], third[i]) << "threads " << threads << " output " << i << ": fresh plans differ";
    }
  }
}

TEST(CpuMatmul, PlansAreCreatedOncePerShape) {
  GemmPlans plans;
  KernelContext ctx = context(2);
  ctx.cpu_gemm_plans = &plans;
  const int N = 5, C = 7, OC = 9;
  std::vector<float> x(N * C, 1.0f), w(OC * C, 1.0f), b(OC, 0.0f), out(N * OC), dx(N * C), dw(OC * C), db(OC);
  for (int step = 0; step < 3; step++) {
    matmul_forward(ctx, out.data(), x.data(), w.data(), b.data(), N, C, OC);
    matmul_backward(ctx, dx.data(), dw.data(), db.data(), out.data(), x.data(), w.data(), N, C, OC);
  }
  EXPECT_EQ(plans.num_plans(), 3u) << "forward, dinp and dweight: one primitive each, reused every step";
  ctx.num_threads = 1;  // another thread count is another primitive (oneDNN partitions by it)
  matmul_forward(ctx, out.data(), x.data(), w.data(), b.data(), N, C, OC);
  EXPECT_EQ(plans.num_plans(), 4u);
}

// A matmul called from inside a parallel region (what the kernels must never do).
void matmul_inside_parallel_region() {
  std::vector<float> x(4, 1.0f), w(4, 1.0f), out(4);
#pragma omp parallel num_threads(2)
  {
    if (omp_get_thread_num() == 0) matmul_forward(context(1), out.data(), x.data(), w.data(), nullptr, 2, 2, 2);
  }
}

TEST(CpuMatmulDeathTest, RefusesToRunInsideAParallelRegion) {
  // "threadsafe": the child re-executes the test binary; a plain fork would inherit libgomp's pool without its threads.
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(matmul_inside_parallel_region(), "inside an OpenMP parallel region");
}

}  // namespace
}  // namespace kernels::cpu
