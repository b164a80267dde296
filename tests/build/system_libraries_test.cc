// Checks that the build links the libraries it names: oneDNN (with the OpenMP runtime), OpenBLAS (not the reference
// BLAS), OpenMPI and PCRE2.
#include <cblas.h>
#include <dnnl.h>
#include <mpi.h>
#include <pcre2.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"

extern "C" char* openblas_get_config(void);  // exists in OpenBLAS only, not in the reference BLAS

TEST(SystemLibraries, LinksOpenBlas) {
  std::string config = openblas_get_config();
  EXPECT_NE(config.find("OpenBLAS"), std::string::npos) << config;
  // A 2x2 product through cblas_sgemm: [[1,2],[3,4]] @ [[5,6],[7,8]] = [[19,22],[43,50]] (done by hand).
  float a[4] = {1, 2, 3, 4}, b[4] = {5, 6, 7, 8}, c[4] = {-1, -1, -1, -1};
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
  EXPECT_FLOAT_EQ(c[0], 19);
  EXPECT_FLOAT_EQ(c[1], 22);
  EXPECT_FLOAT_EQ(c[2], 43);
  EXPECT_FLOAT_EQ(c[3], 50);
}

// kernels/cpu/gemm_plans.cc runs oneDNN on the caller's OpenMP team: a TBB or sequential build would break that.
TEST(SystemLibraries, LinksOneDnnWithTheOpenMpRuntime) {
  const dnnl_version_t* v = dnnl_version();
  EXPECT_GE(v->major, 2);
  EXPECT_EQ(v->cpu_runtime, static_cast<unsigned>(DNNL_RUNTIME_OMP)) << "oneDNN's CPU runtime is not OpenMP";
}

TEST(SystemLibraries, LinksOpenMpiHeaders) {
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);  // callable before MPI_Init
  EXPECT_GE(major, 3);
}

TEST(SystemLibraries, LinksPcre2WithUnicode) {
  uint32_t has_unicode = 0;
  pcre2_config(PCRE2_CONFIG_UNICODE, &has_unicode);
  EXPECT_EQ(has_unicode, 1u);
}
