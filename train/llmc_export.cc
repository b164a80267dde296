// train/llmc_export.cc: gather the stages into one GPT2 and save it in llm.c's format.
#include "train/llmc_export.h"

#include "engine/device.h"
#include "resbm/gpt2.h"
#include "resbm/llmc_checkpoint.h"

namespace train {

void export_llmc(const RunConfig& config, Backend& backend, const std::string& path) {
  if (config.pipeline.stages > 1 && config.bottleneck.kind != resbm::BottleneckKind::none) {
    throw FlagError("--export-llmc needs --bottleneck none (or --stages 1): llm.c's format cannot hold the " +
                    std::string(resbm::bottleneck_kind_name(config.bottleneck.kind)) + " modules");
  }
  if (config.pipeline.untie_head) {
    throw FlagError("--export-llmc cannot export --untie-head 1: llm.c's format has a tied head (wte) and no "
                    "place for lm_head.weight; train with --untie-head 0 to export");
  }
  resbm::GPT2 model(config.model);
  const auto stores = backend.param_stores();
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
