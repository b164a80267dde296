// train/llmc_export.h: --export-llmc, the trained model gathered from its stages into one GPT-2 and written in
// llm.c's model format.
#pragma once

#include <string>

#include "train/backend.h"
#include "train/run_config.h"

namespace train {

// Copies every GPT-2 tensor (by name, from the first stage holding it) into a whole-model GPT2 and saves it
// atomically. Throws FlagError when the run has a bottleneck other than none across S > 1 stages: llm.c's format
// has no place for its modules, so the exported model would compute something else.
void export_llmc(const RunConfig& config, Backend& backend, const std::string& path);

}  // namespace train
