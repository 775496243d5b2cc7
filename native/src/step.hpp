// The step program's interface as the core sees it: named tensors in manifest order, one method per
// row count (prefill: the chunk, decode: 1), and engines that run it. acre/step.py defines the maths.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "bundle.hpp"

namespace acre {

struct TensorSpec {
  std::string name;
  acre_dtype dtype = ACRE_DTYPE_INVALID;
  std::vector<int64_t> dims;
  size_t bytes() const;
  std::string describe() const;  // "float32 (30, 3, 1024, 64)"
};

std::string dtype_name(acre_dtype dtype);
std::string shape_text(const std::vector<int64_t> &dims);  // as Python prints a tuple: "(16,)"

// The spec the manifest's geometry implies for a step input or output the core knows by name;
// nullopt for a name it does not know (a later program may add one).
std::optional<TensorSpec> expected_spec(const Bundle &bundle, const std::string &name, int32_t rows,
                                        bool output);

class Engine {
 public:
  virtual ~Engine() = default;
  virtual const char *name() const = 0;
  // Bytes of activation memory the engine plans for its methods (0 when it does not know).
  virtual size_t planned_bytes() const { return 0; }

  struct Method {
    std::string name;
    int32_t rows;
    std::vector<TensorSpec> inputs, outputs;
    uint64_t calls = 0;  // steps run by this method (what a question cost: benchmarks/speed.py, tests)
  };
  const Method &method(int32_t rows) const;
  Method &method(int32_t rows);
  // The fewest rows of a method that takes n tokens in one call (a call costs its rows, used or not).
  int32_t rows_for(int32_t n) const;
  const std::vector<Method> &methods() const { return methods_; }
  size_t num_inputs() const { return num_inputs_; }
  size_t num_outputs() const { return num_outputs_; }
  // Checks every buffer against the method's specs, then runs.
  void step(int32_t rows, const acre_buffer *inputs, size_t n_inputs, const acre_buffer *outputs,
            size_t n_outputs);

 protected:
  virtual void run(const Method &method, const acre_buffer *inputs, const acre_buffer *outputs) = 0;
  std::vector<Method> methods_;
  size_t num_inputs_ = 0, num_outputs_ = 0;
};

// A host's engine behind a function pointer; its shapes come from the manifest alone.
std::unique_ptr<Engine> open_callback_engine(const Bundle &bundle, acre_step_fn step, void *user,
                                             void (*free_user)(void *));
// The bundle's model.pte through ExecuTorch's C++ runtime (ACRE_ERR_UNSUPPORTED when built without).
std::unique_ptr<Engine> open_executorch_engine(const Bundle &bundle);

}  // namespace acre
