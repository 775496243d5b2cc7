// Step specs, buffer checks, and the callback engine.
#include "step.hpp"

#include <sstream>

namespace acre {

size_t TensorSpec::bytes() const {
  size_t n = acre_dtype_size(dtype);
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  return n;
}

std::string dtype_name(acre_dtype dtype) { return acre_dtype_name(dtype); }

std::string shape_text(const std::vector<int64_t> &dims) {
  std::ostringstream out;
  out << "(";
  for (size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
  out << (dims.size() == 1 ? ",)" : ")");
  return out.str();
}

std::string TensorSpec::describe() const { return dtype_name(dtype) + " " + shape_text(dims); }

// i for a name "<prefix><i>" with 0 <= i < layers of the bundle, else -1
static int64_t layer_index(const std::string &name, const char *prefix, int64_t layers) {
  const std::string p(prefix);
  if (name.size() <= p.size() || name.compare(0, p.size(), p) != 0) return -1;
  int64_t i = 0;
  for (size_t k = p.size(); k < name.size(); ++k) {
    if (name[k] < '0' || name[k] > '9' || i > layers) return -1;
    i = i * 10 + (name[k] - '0');
  }
  return (name.size() - p.size() > 1 && name[p.size()] == '0') || i >= layers ? -1 : i;
}

std::optional<TensorSpec> expected_spec(const Bundle &bundle, const std::string &name, int32_t rows,
                                        bool output) {
  const acre_geometry &g = bundle.geometry;
  const int64_t r = rows, pot = g.pot;
  const std::vector<int64_t> kv{g.layers, g.kv_heads, pot, g.head_dim};
  auto layer_of = [&](const std::string &n, const char *prefix) { return layer_index(n, prefix, g.layers); };
  if (!output) {
    if (name == "tokens" || name == "positions") return TensorSpec{name, ACRE_DTYPE_INT64, {r}};
    if (name == "pot_k" || name == "pot_v") return TensorSpec{name, g.kv_dtype, kv};
    if (layer_of(name, "pot_k_") >= 0 || layer_of(name, "pot_v_") >= 0)  // one layer's pot
      return TensorSpec{name, g.kv_dtype, {g.kv_heads, pot, g.head_dim}};
    if (name == "pot_positions") return TensorSpec{name, ACRE_DTYPE_INT64, {pot}};
    if (name == "pot_mask") return TensorSpec{name, ACRE_DTYPE_UINT8, {pot}};
    if (name == "last_index") return TensorSpec{name, ACRE_DTYPE_INT64, {1}};
    return std::nullopt;
  }
  if (name == "logits") return TensorSpec{name, ACRE_DTYPE_FLOAT32, {g.vocab}};
  if (name == "k_new" || name == "v_new")
    return TensorSpec{name, g.kv_dtype, {g.layers, g.kv_heads, r, g.head_dim}};
  if (name == "pot_attention") return TensorSpec{name, ACRE_DTYPE_FLOAT32, {r, pot}};
  if (name == "q_probe") {
    const auto probes = static_cast<int64_t>(bundle.probe_layers.size());
    return TensorSpec{name, ACRE_DTYPE_FLOAT32, {probes, g.heads, r, g.head_dim}};
  }
  return std::nullopt;
}

Engine::Method &Engine::method(int32_t rows) {
  return const_cast<Method &>(static_cast<const Engine *>(this)->method(rows));
}

const Engine::Method &Engine::method(int32_t rows) const {
  for (const Method &m : methods_)
    if (m.rows == rows) return m;
  std::string have;
  for (const Method &m : methods_) have += (have.empty() ? "" : ", ") + std::to_string(m.rows);
  fail(ACRE_ERR_INVALID_ARGUMENT,
       "the step program runs " + have + " rows per call, not " + std::to_string(rows));
}

int32_t Engine::rows_for(int32_t n) const {
  int32_t best = 0;
  for (const Method &m : methods_)
    if (m.rows >= n && (best == 0 || m.rows < best)) best = m.rows;
  if (best == 0)
    fail(ACRE_ERR_INVALID_ARGUMENT, "no method of the step program takes " + std::to_string(n) + " rows");
  return best;
}

void Engine::step(int32_t rows, const acre_buffer *inputs, size_t n_inputs, const acre_buffer *outputs,
                  size_t n_outputs) {
  Method &m = method(rows);
  auto check = [&](const std::vector<TensorSpec> &specs, const acre_buffer *buffers, size_t n,
                   const char *what) {
    if (n != specs.size())
      fail(ACRE_ERR_INVALID_ARGUMENT, std::string("the ") + m.name + " method takes " +
                                          std::to_string(specs.size()) + " " + what + "s, not " +
                                          std::to_string(n));
    if (n && !buffers) fail(ACRE_ERR_INVALID_ARGUMENT, std::string("no ") + what + " buffers given");
    for (size_t i = 0; i < n; ++i) {
      const size_t want = specs[i].bytes();
      if (buffers[i].bytes != want || (want && !buffers[i].data))
        fail(ACRE_ERR_INVALID_ARGUMENT, std::string("step ") + what + " " + specs[i].name + ": " +
                                            std::to_string(buffers[i].bytes) + " bytes given, the " + m.name +
                                            " method takes " + std::to_string(want) + " (" +
                                            specs[i].describe() + ")");
    }
  };
  check(m.inputs, inputs, n_inputs, "input");
  check(m.outputs, outputs, n_outputs, "output");
  run(m, inputs, outputs);
  ++m.calls;
}

namespace {

class CallbackEngine : public Engine {
 public:
  CallbackEngine(const Bundle &bundle, acre_step_fn step, void *user, void (*free_user)(void *))
      : step_(step), user_(user), free_user_(free_user) {
    if (!step) fail(ACRE_ERR_INVALID_ARGUMENT, "no step function given");
    if (bundle.step_inputs.empty() || bundle.step_outputs.empty())
      fail(ACRE_ERR_BUNDLE, bundle.manifest_path() + ": step.inputs / step.outputs list no tensors");
    for (auto [name, rows] :
         {std::pair<const char *, int32_t>{"prefill", bundle.geometry.chunk}, {"decode", 1}}) {
      if (name == std::string("decode") && rows == bundle.geometry.chunk) break;  // chunk 1: one method
      Method m{name, rows, {}, {}};
      for (bool output : {false, true}) {
        for (const std::string &n : output ? bundle.step_outputs : bundle.step_inputs) {
          auto spec = expected_spec(bundle, n, rows, output);
          if (!spec)
            fail(ACRE_ERR_BUNDLE, bundle.manifest_path() + ": step " + (output ? "output " : "input ") + n +
                                      " is not one the core knows the shape of");
          (output ? m.outputs : m.inputs).push_back(*spec);
        }
      }
      methods_.push_back(std::move(m));
    }
    num_inputs_ = bundle.step_inputs.size();
    num_outputs_ = bundle.step_outputs.size();
  }
  ~CallbackEngine() override {
    if (free_user_) free_user_(user_);
  }
  const char *name() const override { return "callback"; }

 protected:
  void run(const Method &m, const acre_buffer *inputs, const acre_buffer *outputs) override {
    char error[512] = {0};
    const int32_t rc =
        step_(user_, m.rows, inputs, m.inputs.size(), outputs, m.outputs.size(), error, sizeof error);
    error[sizeof error - 1] = 0;
    if (rc != 0)
      fail(ACRE_ERR_ENGINE, "the step callback failed (" + std::to_string(rc) + ")" +
                                (error[0] ? std::string(": ") + error : std::string()));
  }

 private:
  acre_step_fn step_;
  void *user_;
  void (*free_user_)(void *);
};

}  // namespace

std::unique_ptr<Engine> open_callback_engine(const Bundle &bundle, acre_step_fn step, void *user,
                                             void (*free_user)(void *)) {
  try {
    return std::make_unique<CallbackEngine>(bundle, step, user, free_user);
  } catch (...) {
    if (free_user) free_user(user);  // the engine owned `user` from the call on
    throw;
  }
}

}  // namespace acre
