// tests/data/data_test_util.h: helpers for the data tests: temp dirs, fixture paths, the dataset mirror.
#pragma once

#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace data_test {

inline const char kFixtureDir[] = "tests/data/testdata";

// A fresh directory under Bazel's TEST_TMPDIR (or /tmp), unique per name and process.
inline std::string fresh_dir(const std::string& name) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The dataset mirror from $RESBM_DATA_MIRROR, or "" when unset or missing. A relative value (CI passes
// ../shared/data) is taken relative to the source checkout, found through this test's runfiles symlinks.
inline std::string data_mirror() {
  const char* env = std::getenv("RESBM_DATA_MIRROR");
  if (!env || !*env) return "";
  std::string mirror = env;
  if (mirror[0] != '/') {
    char resolved[PATH_MAX];
    const std::string fixture = std::string(kFixtureDir) + "/gpt2_tokenizer_cases.tsv";
    if (::realpath(fixture.c_str(), resolved) == nullptr) return "";
    const std::string real = resolved;
    const std::string checkout = real.substr(0, real.size() - fixture.size());
    mirror = checkout + mirror;
  }
  return std::filesystem::exists(mirror + "/gpt2/encoder.json") ? mirror : "";
}

inline const char kNoMirror[] =
    "needs the dataset mirror: run with --test_env=RESBM_DATA_MIRROR=../shared/data (or an absolute path)";

}  // namespace data_test
