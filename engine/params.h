// engine/params.h: ParamStore, the model's parameters and their gradients, each in one contiguous arena.
//
// Two phases: declare every parameter (name, shape, how the optimizers treat it), then allocate() once; after
// that the Vars are stable views into the parameter and gradient arenas, which the optimizers, the checkpoint
// code and the pipeline (tied-weight gradient exchange) walk in declaration order.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/memory.h"

namespace engine {

// How an optimizer treats a parameter.
enum class ParamKind : uint8_t {
  matrix,     // 2-D hidden weight: weight decay; Muon orthogonalises its update
  embedding,  // wte, wpe (and the tied head): weight decay under AdamW, AdamW under Muon
  vector,     // gains and biases: no weight decay, AdamW under Muon
};

struct Param {
  std::string name;  // "h.3.attn.c_attn.weight"
  Var var;           // value and gradient
  ParamKind kind;
};

class ParamStore {
 public:
  explicit ParamStore(Device device = Device::cpu);
  // Declare a parameter; returns its index. Only before allocate().
  int declare(const std::string& name, std::initializer_list<int64_t> shape, ParamKind kind);
  void allocate();  // one arena for values (zeroed), one for gradients (zeroed)

  Var& var(int index) { return params_[index].var; }
  const Param& param(int index) const { return params_[index]; }
  int find(const std::string& name) const;  // -1 if absent
  const std::vector<Param>& params() const { return params_; }
  std::vector<Param>& params() { return params_; }
  // The flat size of all_values()/all_grads(): every parameter starts on a 64-byte boundary (16 floats), so this
  // counts the zero padding between parameters too; num_parameters() is the true count.
  size_t num_elements() const { return num_elements_; }
  size_t num_parameters() const { return num_parameters_; }
  int64_t offset(int index) const { return offsets_[index]; }  // where param `index` starts in the flat tensors
  Device device() const { return device_; }

  void zero_grads();                 // after each optimizer step
  Tensor all_values() const;         // the whole value arena as one flat f32 tensor (num_elements)
  Tensor all_grads() const;          // likewise for gradients

 private:
  Device device_;
  std::vector<Param> params_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<int64_t> offsets_;
  size_t num_elements_ = 0;
  size_t num_parameters_ = 0;
  std::unique_ptr<Arena> values_;
  std::unique_ptr<Arena> grads_;
};

}  // namespace engine
