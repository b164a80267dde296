// engine/pipeline/schedule.cc: the stage partition of the layers and the per-stage action orders of GPipe and
// 1F1B.
#include <algorithm>
#include <sstream>
#include <stdexcept>
#include <string>

#include "engine/pipeline/pipeline.h"

namespace engine::pipeline {

Schedule parse_schedule(const std::string& name) {
  if (name == "gpipe") return Schedule::gpipe;
  if (name == "1f1b") return Schedule::one_f_one_b;
  throw std::invalid_argument("unknown schedule '" + name + "': expected gpipe or 1f1b");
}

const char* schedule_name(Schedule schedule) { return schedule == Schedule::gpipe ? "gpipe" : "1f1b"; }

std::vector<int> parse_boundaries(const std::string& csv) {
  std::vector<int> out;
  std::stringstream in(csv);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    size_t used = 0;
    int value = 0;
    try {
      value = std::stoi(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != item.size()) throw std::invalid_argument("--boundaries: '" + item + "' is not an integer");
    out.push_back(value);
  }
  return out;
}

std::vector<int> partition_layers(int num_layers, int stages, const std::vector<int>& boundaries) {
  if (stages < 1) throw std::invalid_argument("--stages must be >= 1, got " + std::to_string(stages));
  if (stages > num_layers) {
    throw std::invalid_argument(std::to_string(stages) + " stages for " + std::to_string(num_layers) +
                                " layers: every stage needs at least one block");
  }
  std::vector<int> first(stages + 1);
  first[0] = 0;
  first[stages] = num_layers;
  if (boundaries.empty()) {
    // Even split; the first L % S stages take one block more.
    const int base = num_layers / stages, extra = num_layers % stages;
    for (int s = 1; s < stages; ++s) first[s] = first[s - 1] + base + (s - 1 < extra ? 1 : 0);
    return first;
  }
  if (static_cast<int>(boundaries.size()) != stages - 1) {
    throw std::invalid_argument("--boundaries needs " + std::to_string(stages - 1) + " layer indices for " +
                                std::to_string(stages) + " stages, got " + std::to_string(boundaries.size()));
  }
  for (int s = 1; s < stages; ++s) {
    first[s] = boundaries[s - 1];
    if (first[s] <= first[s - 1] || first[s] >= num_layers) {
      throw std::invalid_argument("--boundaries must be strictly increasing in (0, " +
                                  std::to_string(num_layers) + "): stage " + std::to_string(s) +
                                  " would start at layer " + std::to_string(first[s]));
    }
  }
  return first;
}

std::vector<Action> make_schedule(Schedule schedule, int stage, int stages, int micro_batches) {
  std::vector<Action> actions;
  actions.reserve(2 * micro_batches);
  const int M = micro_batches;
  if (schedule == Schedule::gpipe) {
    for (int m = 0; m < M; ++m) actions.push_back({Action::forward, m});
    for (int m = 0; m < M; ++m) actions.push_back({Action::backward, m});
    return actions;
  }
  // 1F1B: stage s runs W = min(S-1-s, M) forwards ahead (the micro-batches its successors still need to fill the
  // pipe), then alternates one forward and one backward, then drains the remaining backwards.
  const int warmup = std::min(stages - 1 - stage, M);
  int next_f = 0, next_b = 0;
  for (; next_f < warmup; ++next_f) actions.push_back({Action::forward, next_f});
  while (next_f < M) {
    actions.push_back({Action::forward, next_f++});
    actions.push_back({Action::backward, next_b++});
  }
  while (next_b < M) actions.push_back({Action::backward, next_b++});
  return actions;
}

int max_in_flight(Schedule schedule, int stage, int stages, int micro_batches) {
  if (schedule == Schedule::gpipe) return micro_batches;
  return std::min(stages - stage, micro_batches);
}

}  // namespace engine::pipeline
