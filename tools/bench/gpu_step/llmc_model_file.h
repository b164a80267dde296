// tools/bench/gpu_step/llmc_model_file.h: read an llm.c model file (fp32, version 3) into the flat parameter vector
// of gpt2_step.h, so that the GPU benchmark runs on the same weights as llm.c.
//
// The format (llm.c's train_gpt2.py writes it; resbm/llmc_checkpoint.h documents it for the engine): a header of 256
// little-endian int32 — [0] magic 20240326, [1] version 3 (fp32), [2] maxT, [3] V, [4] L, [5] NH, [6] C, [7] Vp —
// then the 16 tensors of param_sizes() as fp32, in that order, and nothing else. This reader is standalone (the
// benchmark does not link the engine) and checks everything before returning: a wrong file fails with a message
// that names it and says what was expected.
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/bench/gpu_step/gpt2_step.h"

namespace gpu_step {

// Reads `path`: its Config (the header's) and its num_params(config) fp32 parameters in llm.c's order. Throws
// std::runtime_error("--load <path>: <what is wrong, and what was expected>").
inline Config read_llmc_model(const std::string& path, std::vector<float>* params) {
  constexpr int32_t kLlmcMagic = 20240326, kLlmcVersionFp32 = 3;
  constexpr size_t kLlmcHeaderInts = 256;
  auto fail = [&](const std::string& what) { return std::runtime_error("--load " + path + ": " + what); };
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw fail("cannot open the file (does it exist, is it readable?)");
  struct Closer {
    std::FILE* f;
    ~Closer() { std::fclose(f); }
  } closer{f};
  int32_t header[kLlmcHeaderInts];
  if (std::fread(header, sizeof(int32_t), kLlmcHeaderInts, f) != kLlmcHeaderInts) {
    throw fail("shorter than llm.c's 1024-byte header");
  }
  if (header[0] != kLlmcMagic) {
    throw fail("magic " + std::to_string(header[0]) + ", expected " + std::to_string(kLlmcMagic) +
               " (an llm.c model file, e.g. gpt2_124M.bin)");
  }
  if (header[1] != kLlmcVersionFp32) {
    throw fail("version " + std::to_string(header[1]) + ", expected " + std::to_string(kLlmcVersionFp32) +
               " (fp32 weights; llm.c's version 5 is its bf16 file, gpt2_124M_bf16.bin: use the fp32 one)");
  }
  Config c;
  c.max_T = header[2], c.V = header[3], c.L = header[4], c.NH = header[5], c.C = header[6], c.Vp = header[7];
  if (c.max_T <= 0 || c.V <= 0 || c.L <= 0 || c.NH <= 0 || c.C <= 0 || c.Vp < c.V || c.C % c.NH != 0) {
    throw fail("invalid config in the header: maxT=" + std::to_string(c.max_T) + " V=" + std::to_string(c.V) +
               " L=" + std::to_string(c.L) + " NH=" + std::to_string(c.NH) + " C=" + std::to_string(c.C) +
               " Vp=" + std::to_string(c.Vp) + " (expected all > 0, Vp >= V, NH dividing C)");
  }
  const size_t n = num_params(c);
  const long expected_bytes = static_cast<long>(kLlmcHeaderInts * sizeof(int32_t) + n * sizeof(float));
  if (std::fseek(f, 0, SEEK_END) != 0) throw fail("cannot seek to the end to check the size");
  const long bytes = std::ftell(f);
  if (bytes != expected_bytes) {
    throw fail("size " + std::to_string(bytes) + " bytes, expected " + std::to_string(expected_bytes) +
               " (the 1024-byte header + " + std::to_string(n) + " fp32 parameters of L=" + std::to_string(c.L) +
               " C=" + std::to_string(c.C) + " V=" + std::to_string(c.V) + " Vp=" + std::to_string(c.Vp) +
               " maxT=" + std::to_string(c.max_T) + ")");
  }
  if (std::fseek(f, static_cast<long>(kLlmcHeaderInts * sizeof(int32_t)), SEEK_SET) != 0) {
    throw fail("cannot seek past the header");
  }
  params->resize(n);
  if (std::fread(params->data(), sizeof(float), n, f) != n) throw fail("read error in the parameters");
  return c;
}

}  // namespace gpu_step
