// tests/bench/llmc_model_file_test.cc: gpu_step's reader of llm.c model files (tools/bench/gpu_step/llmc_model_file.h):
// a file written here by the format's definition reads back exactly, and each kind of wrong file is refused with a
// message that names the file and says what was expected.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/bench/gpu_step/gpt2_step.h"
#include "tools/bench/gpu_step/llmc_model_file.h"

namespace {

gpu_step::Config tiny() {
  gpu_step::Config c;
  c.max_T = 4, c.V = 10, c.Vp = 16, c.L = 1, c.NH = 2, c.C = 8;
  return c;
}

// llm.c's layout, written independently of the reader: 256 int32 (magic, version, maxT, V, L, NH, C, Vp, zeros),
// then n fp32; `extra_floats` appends (> 0) or drops (< 0) floats at the end.
std::string write_model(const std::string& name, const gpu_step::Config& c, int32_t magic, int32_t version,
                        size_t n, int extra_floats = 0) {
  const std::string path = testing::TempDir() + "/" + name;
  std::vector<int32_t> header(256, 0);
  header[0] = magic, header[1] = version, header[2] = c.max_T, header[3] = c.V, header[4] = c.L, header[5] = c.NH;
  header[6] = c.C, header[7] = c.Vp;
  std::vector<float> params(n + extra_floats);
  for (size_t i = 0; i < params.size(); i++) params[i] = 0.25f * static_cast<float>(i) - 3.0f;
  std::FILE* f = std::fopen(path.c_str(), "wb");
  EXPECT_NE(f, nullptr);
  std::fwrite(header.data(), sizeof(int32_t), header.size(), f);
  std::fwrite(params.data(), sizeof(float), params.size(), f);
  std::fclose(f);
  return path;
}

// The error message of reading `path`, or "" if it was read.
std::string read_error(const std::string& path) {
  std::vector<float> params;
  try {
    gpu_step::read_llmc_model(path, &params);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(LlmcModelFile, ReadsWhatTheFormatDefines) {
  const auto c = tiny();
  const size_t n = gpu_step::num_params(c);
  const std::string path = write_model("ok.bin", c, 20240326, 3, n);
  std::vector<float> params;
  const gpu_step::Config got = gpu_step::read_llmc_model(path, &params);
  auto fields = [](const gpu_step::Config& x) { return std::vector<int>{x.max_T, x.V, x.Vp, x.L, x.NH, x.C}; };
  EXPECT_EQ(fields(got), fields(c)) << "maxT V Vp L NH C";
  ASSERT_EQ(params.size(), n);
  for (size_t i = 0; i < n; i++) ASSERT_EQ(params[i], 0.25f * static_cast<float>(i) - 3.0f) << i;
}

TEST(LlmcModelFile, RefusesWrongFilesNamingThemAndWhatWasExpected) {
  const auto c = tiny();
  const size_t n = gpu_step::num_params(c);
  struct Case {
    std::string path, want;
  };
  const std::vector<Case> cases = {
      {testing::TempDir() + "/missing.bin", "cannot open"},
      {write_model("magic.bin", c, 20240520, 3, n), "magic 20240520, expected 20240326"},
      {write_model("bf16.bin", c, 20240326, 5, n), "version 5, expected 3"},
      {write_model("short.bin", c, 20240326, 3, n, -1), "expected " + std::to_string(1024 + 4 * n)},
      {write_model("long.bin", c, 20240326, 3, n, 1), "expected " + std::to_string(1024 + 4 * n)},
  };
  for (const Case& k : cases) {
    const std::string msg = read_error(k.path);
    EXPECT_NE(msg.find(k.path), std::string::npos) << "names the file: " << msg;
    EXPECT_NE(msg.find(k.want), std::string::npos) << "says '" << k.want << "': " << msg;
  }
  gpu_step::Config bad = c;
  bad.NH = 3;  // does not divide C = 8
  const std::string msg = read_error(write_model("nh.bin", bad, 20240326, 3, n));
  EXPECT_NE(msg.find("NH dividing C"), std::string::npos) << msg;
}

}  // namespace
