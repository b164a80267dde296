// train/llmc_export.cc: gather the stages into one GPT2 and save it in llm.c's format.
#include "train/llmc_export.h"

#include "engine/device.h"
#include "resbm/gpt2.h"
#include "resbm/llmc_checkpoint.h"

namespace train {

void export_llmc(const RunConfig& config, const std::vector<engine::ParamStore*>& stores, const std::string& path) {
  resbm::GPT2 model(config.model);
  for (auto& p : model.params().params()) {
    bool found = false;
    for (auto* store : stores) {
      const int i = store->find(p.name);
      if (i < 0) continue;
      engine::copy_tensor(p.var.value, store->params()[i].var.value);
      found = true;
      break;
    }
    if (!found) throw std::runtime_error("--export-llmc: no stage holds the parameter '" + p.name + "'");
  }
  resbm::save_llmc_checkpoint(path, model);
}

}  // namespace train
