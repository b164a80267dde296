// resbm/llmc_checkpoint.h: load and save GPT-2 weights in llm.c's model file format (fp32, version 3).
//
// The format (llm.c's train_gpt2.c/.py write and read it): a header of 256 int32 (little-endian) — [0] magic
// 20240326, [1] version (3 = fp32 weights; llm.c's 5 = bf16 is refused here), [2] maxT, [3] V, [4] L, [5] NH,
// [6] C, [7] Vp, the rest 0 — then every parameter as fp32 in llm.c's order: wte (Vp,C), wpe (maxT,C), ln1w (L,C),
// ln1b (L,C), qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C), attprojb (L,C), ln2w (L,C), ln2b (L,C),
// fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb (L,C), lnfw (C), lnfb (C). Each (L, ...) tensor stacks the
// layers, while our ParamStore holds one tensor per block: gpt2_llmc_layout (resbm/gpt2.h) names each layer's
// slice, and the mapping below goes by those names, so any store holding any subset of GPT-2's tensors (a
// pipeline stage) can load its part.
//
// Every failure throws LlmcCheckpointError, whose message names the file and says what was expected; nothing is
// written to the store before the header and the file size have been checked.
#pragma once

#include <stdexcept>
#include <string>

#include "engine/params.h"
#include "resbm/gpt2.h"

namespace resbm {

constexpr int kLlmcModelMagic = 20240326;
constexpr int kLlmcModelVersionFp32 = 3;
constexpr int kLlmcHeaderInts = 256;

class LlmcCheckpointError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Reads and checks the header only (magic, version, a valid config, the file size it implies).
GPT2Config read_llmc_config(const std::string& path);

// Loads the tensors of `path` into the store's parameters of the same names (any device). The file's config must
// equal `expected` (a mismatch names both). With allow_missing=false every file tensor must exist in the store
// (the whole model); with true, tensors the store lacks are skipped (a pipeline stage). Tensors the store holds
// but the file lacks (ResBM modules) are left untouched. Non-finite values are refused as corruption. Returns the
// number of tensors loaded.
int load_llmc_checkpoint(const std::string& path, engine::ParamStore& store, const GPT2Config& expected,
                         bool allow_missing = false);

// Writes the store's GPT-2 tensors in llm.c's format. Every tensor of gpt2_llmc_layout(config) must be in the
// store with its shape. Atomic: written to "<path>.tmp", flushed, fsync'ed, then renamed over path, so a crash
// leaves either the old file or the new one, never half of one.
void save_llmc_checkpoint(const std::string& path, const engine::ParamStore& store, const GPT2Config& config);

// The whole model: load_llmc_checkpoint with the model's own config and store.
void load_llmc_checkpoint(const std::string& path, GPT2& model);
void save_llmc_checkpoint(const std::string& path, const GPT2& model);

}  // namespace resbm
