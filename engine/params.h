// engine/params.h: ParamStore, the model's parameters and their gradients, each in one contiguous arena.
//
// Two phases: declare every parameter (name, shape, how the optimizers treat it), then allocate() once; after
// that the Vars are stable views into the parameter and gradient arenas, which the optimizers, the checkpoint
// code and the pipeline (tied-weight gradient exchange) walk in declaration order.
//
// Precision (docs/bf16_policy.md): under bf16 a third arena holds the model's bf16 copy of every parameter, laid
// out like the fp32 values (same offsets). Param::var stays the fp32 master with its fp32 gradient, so init,
// checkpoints, the gradient norm and the optimizers' state are the same under both policies; Param::model is the
// bf16 copy with the same fp32 gradient, which the model's ops read (model_var()).
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/memory.h"

namespace engine {

// The parameter precision policy: fp32 (one copy) or bf16 (fp32 master + bf16 model copy).
enum class Precision : uint8_t { fp32, bf16 };

// How an optimizer treats a parameter.
enum class ParamKind : uint8_t {
  matrix,     // 2-D hidden weight: weight decay; Muon orthogonalises its update
  embedding,  // wte, wpe (and the tied head): weight decay under AdamW, AdamW under Muon
  vector,     // gains and biases: no weight decay, AdamW under Muon
};

struct Param {
  std::string name;  // "h.3.attn.c_attn.weight"
  Var var;           // value (the fp32 master) and gradient (fp32)
  Var model;         // bf16 policy: the bf16 copy and the same fp32 gradient; fp32 policy: undefined
  ParamKind kind;
};

class ParamStore {
 public:
  explicit ParamStore(Device device = Device::cpu, Precision precision = Precision::fp32);
  // Declare a parameter; returns its index. Only before allocate().
  int declare(const std::string& name, std::initializer_list<int64_t> shape, ParamKind kind);
  void allocate();  // one arena for values (zeroed), one for gradients (zeroed); under bf16 one for the copy

  Var& var(int index) { return params_[index].var; }
  // What the model's ops read: the bf16 copy under the bf16 policy, else the fp32 parameter itself.
  const Var& model_var(int index) const {
    return precision_ == Precision::bf16 ? params_[index].model : params_[index].var;
  }
  // bf16 policy: every copy = the master rounded to nearest even. After init and after a checkpoint load (the
  // optimizer keeps them in step afterwards, with stochastic rounding); a no-op under fp32.
  // Through host memory, so it needs no kernel context (init and load only: it allocates a host buffer).
  void sync_model_copy();
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
  Precision precision() const { return precision_; }

  void zero_grads();                 // after each optimizer step
  Tensor all_values() const;         // the whole value arena as one flat f32 tensor (num_elements)
  Tensor all_grads() const;          // likewise for gradients
  Tensor all_model_values() const;   // bf16 policy: the whole copy arena as one flat bf16 tensor (num_elements)

 private:
  Device device_;
  Precision precision_;
  std::vector<Param> params_;
  std::vector<std::vector<int64_t>> shapes_;
  std::vector<int64_t> offsets_;
  size_t num_elements_ = 0;
  size_t num_parameters_ = 0;
  std::unique_ptr<Arena> values_;
  std::unique_ptr<Arena> grads_;
  std::unique_ptr<Arena> model_values_;  // bf16 policy only
};

}  // namespace engine
