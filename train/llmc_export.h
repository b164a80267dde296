// train/llmc_export.h: --export-llmc, the trained model gathered from its stages into one GPT-2 and written in
// llm.c's model format.
#pragma once

#include <string>
#include <vector>

#include "train/backend.h"
#include "train/run_config.h"

namespace train {

// Copies every GPT-2 tensor (by name, from the first of `stores` holding it: every stage's parameters, gathered by
// Backend::gather_params_to_rank0) into a whole-model GPT2 and saves it atomically. The runs llm.c's format cannot
// hold (a bottleneck across stages, an untied head) are refused by make_run_config, before training.
void export_llmc(const RunConfig& config, const std::vector<engine::ParamStore*>& stores, const std::string& path);

}  // namespace train
