// The ExecuTorch engine: the bundle's model.pte through extension::Module. Inputs are the caller's
// buffers wrapped with from_blob; outputs land in the caller's buffers (set as the method's output
// memory where the program did not plan its outputs, copied out of the planned memory otherwise).
#include <algorithm>
#include <cstdio>
#include <cstring>

#include "step.hpp"

#ifdef ACRE_WITH_EXECUTORCH
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>
#include <executorch/runtime/backend/interface.h>
#include <executorch/runtime/backend/options.h>
#include <executorch/runtime/platform/platform.h>

namespace acre {

namespace {

namespace et = executorch::runtime;
using executorch::aten::ScalarType;
using executorch::extension::Module;

acre_dtype from_scalar_type(ScalarType type) {
  switch (type) {
    case ScalarType::Float: return ACRE_DTYPE_FLOAT32;
    case ScalarType::Half: return ACRE_DTYPE_FLOAT16;
    case ScalarType::Long: return ACRE_DTYPE_INT64;
    case ScalarType::Int: return ACRE_DTYPE_INT32;
    case ScalarType::Byte: return ACRE_DTYPE_UINT8;
    case ScalarType::Bool: return ACRE_DTYPE_BOOL;
    default: return ACRE_DTYPE_INVALID;
  }
}

ScalarType to_scalar_type(acre_dtype dtype) {
  switch (dtype) {
    case ACRE_DTYPE_FLOAT32: return ScalarType::Float;
    case ACRE_DTYPE_FLOAT16: return ScalarType::Half;
    case ACRE_DTYPE_INT64: return ScalarType::Long;
    case ACRE_DTYPE_INT32: return ScalarType::Int;
    case ACRE_DTYPE_UINT8: return ScalarType::Byte;
    default: return ScalarType::Bool;
  }
}

std::string error_text(et::Error error) {
  return std::string(et::to_string(error)) + ", code " + std::to_string(static_cast<int>(error));
}

// ExecuTorch's wheel logs at Info (CPU probing, on every load) to stderr; a runtime's users want its
// errors only. Registered through the PAL, ExecuTorch's own hook for where logs go.
void log_errors_only(et_timestamp_t, et_pal_log_level_t level, const char *filename, const char *,
                     size_t line, const char *message, size_t length) {
  if (level != kError && level != kFatal) return;
  std::fprintf(stderr, "executorch %c %s:%zu] %.*s\n", static_cast<char>(level), filename ? filename : "?",
               line, static_cast<int>(length), message);
}

// XNNPACK packs each delegate's weights at load; prefill and decode are two methods over the same
// weights, so without its weight cache they are packed, and held, twice. Its workspace (the
// delegate's own activation memory) is shared by both methods too: they never run at once.
void share_xnnpack_weights() {
  et::BackendOptions<2> options;
  options.set_option("weight_cache_enabled", true);
  options.set_option("workspace_sharing_mode", 2);   // WorkspaceSharingMode::Global
  et::set_option("XnnpackBackend", options.view());  // an older runtime without them: packed twice
}

class ExecuTorchEngine : public Engine {
 public:
  explicit ExecuTorchEngine(const Bundle &bundle) : path_(bundle.program_path("executorch")) {
    const std::string root = bundle.root;
    auto cannot = [&](const std::string &why) {
      fail(ACRE_ERR_BUNDLE, path_ + ": ExecuTorch cannot load the program (" + why + ")");
    };
    if (bundle.step_inputs.empty() || bundle.step_outputs.empty())
      fail(ACRE_ERR_BUNDLE, bundle.manifest_path() + ": step.inputs / step.outputs list no tensors");
    // one set of planned activation memory for both methods (sized to the larger): outputs are
    // copied out before the next call, so they may share it
    static const bool quiet = et::register_pal(et::PalImpl::create(log_errors_only, __FILE__));
    (void)quiet;
    share_xnnpack_weights();
    module_ = std::make_unique<Module>(path_, Module::LoadMode::Mmap, nullptr, nullptr, nullptr,
                                       /*share_memory_arenas=*/true);
    if (auto e = module_->load(); e != et::Error::Ok) cannot(error_text(e));
    for (const auto &[name, rows] : bundle.methods("executorch")) {
      if (auto e = module_->load_method(name); e != et::Error::Ok)
        cannot("method " + name + ": " + error_text(e));
      auto meta = module_->method_meta(name);
      if (!meta.ok()) cannot("method " + name + ": " + error_text(meta.error()));
      size_t planned = 0;  // the arenas are shared, so the largest method's sum is what is held
      for (size_t i = 0; i < meta->num_memory_planned_buffers(); ++i)
        if (auto size = meta->memory_planned_buffer_size(i); size.ok()) planned += static_cast<size_t>(*size);
      planned_bytes_ = std::max(planned_bytes_, planned);
      Method m{name, rows, {}, {}};
      read_specs(bundle, *meta, m, false);
      read_specs(bundle, *meta, m, true);
      methods_.push_back(std::move(m));
    }
    num_inputs_ = bundle.step_inputs.size();
    num_outputs_ = bundle.step_outputs.size();
  }

  const char *name() const override { return "executorch"; }
  size_t planned_bytes() const override { return planned_bytes_; }

 protected:
  void run(const Method &m, const acre_buffer *inputs, const acre_buffer *outputs) override {
    std::vector<et::EValue> values;
    std::vector<executorch::extension::TensorPtr> keep;
    values.reserve(m.inputs.size());
    for (size_t i = 0; i < m.inputs.size(); ++i) {
      keep.push_back(wrap(m.inputs[i], inputs[i].data));
      values.emplace_back(*keep.back());
    }
    const std::vector<bool> &planned = planned_outputs_.at(m.name);
    for (size_t i = 0; i < m.outputs.size(); ++i) {
      if (planned[i]) continue;
      keep.push_back(wrap(m.outputs[i], outputs[i].data));
      if (auto e = module_->set_output(m.name, *keep.back(), i); e != et::Error::Ok)
        fail(ACRE_ERR_ENGINE,
             path_ + ": cannot set output " + m.outputs[i].name + " (" + error_text(e) + ")");
    }
    auto result = module_->execute(m.name, values);
    if (!result.ok())
      fail(ACRE_ERR_ENGINE,
           path_ + ": the " + m.name + " method failed (" + error_text(result.error()) + ")");
    if (result->size() != m.outputs.size())
      fail(ACRE_ERR_ENGINE, path_ + ": the " + m.name + " method returned " + std::to_string(result->size()) +
                                " values, not " + std::to_string(m.outputs.size()));
    for (size_t i = 0; i < m.outputs.size(); ++i) {
      if (!(*result)[i].isTensor())
        fail(ACRE_ERR_ENGINE, path_ + ": output " + m.outputs[i].name + " is not a tensor");
      const auto &tensor = (*result)[i].toTensor();
      if (tensor.nbytes() != outputs[i].bytes)
        fail(ACRE_ERR_ENGINE, path_ + ": output " + m.outputs[i].name + " has " +
                                  std::to_string(tensor.nbytes()) + " bytes, not " +
                                  std::to_string(outputs[i].bytes));
      if (tensor.const_data_ptr() != outputs[i].data)
        std::memcpy(outputs[i].data, tensor.const_data_ptr(), outputs[i].bytes);
    }
  }

 private:
  static executorch::extension::TensorPtr wrap(const TensorSpec &spec, void *data) {
    std::vector<executorch::aten::SizesType> sizes(spec.dims.begin(), spec.dims.end());
    return executorch::extension::from_blob(data, std::move(sizes), to_scalar_type(spec.dtype));
  }

  // The method's inputs or outputs: names from the manifest (their count must match), dtype and
  // shape from the program, held to what the manifest's geometry implies for the names it knows.
  void read_specs(const Bundle &bundle, const et::MethodMeta &meta, Method &m, bool output) {
    const std::vector<std::string> &names = output ? bundle.step_outputs : bundle.step_inputs;
    const char *what = output ? "output" : "input";
    const size_t count = output ? meta.num_outputs() : meta.num_inputs();
    if (count != names.size())
      fail(ACRE_ERR_BUNDLE, bundle.root + ": the program's " + m.name + " method has " +
                                std::to_string(count) + " " + what + "s, the manifest lists " +
                                std::to_string(names.size()) +
                                "; manifest and program disagree (re-export the bundle)");
    std::vector<bool> planned;
    for (size_t i = 0; i < count; ++i) {
      auto info = output ? meta.output_tensor_meta(i) : meta.input_tensor_meta(i);
      if (!info.ok())
        fail(ACRE_ERR_BUNDLE, path_ + ": " + what + " " + names[i] + " of " + m.name + " is not a tensor");
      TensorSpec spec{names[i], from_scalar_type(info->scalar_type()), {}};
      for (int32_t d : info->sizes()) spec.dims.push_back(d);
      if (spec.dtype == ACRE_DTYPE_INVALID)
        fail(ACRE_ERR_BUNDLE, path_ + ": " + what + " " + names[i] + " has a dtype the core does not handle");
      if (auto want = expected_spec(bundle, names[i], m.rows, output)) {
        if (want->dims != spec.dims)
          fail(ACRE_ERR_BUNDLE, bundle.root + ": the program's " + m.name + " " + what + " " + names[i] +
                                    " has shape " + shape_text(spec.dims) + ", the manifest says " +
                                    shape_text(want->dims) +
                                    "; manifest and program disagree (re-export the bundle)");
        if (want->dtype != spec.dtype)
          fail(ACRE_ERR_BUNDLE, bundle.root + ": the program's " + m.name + " " + what + " " + names[i] +
                                    " is " + dtype_name(spec.dtype) + ", the manifest implies " +
                                    dtype_name(want->dtype) +
                                    "; manifest and program disagree (re-export the bundle)");
      }
      planned.push_back(info->is_memory_planned());
      (output ? m.outputs : m.inputs).push_back(std::move(spec));
    }
    if (output) planned_outputs_[m.name] = planned;
  }

  std::string path_;
  std::unique_ptr<Module> module_;
  std::map<std::string, std::vector<bool>> planned_outputs_;
  size_t planned_bytes_ = 0;
};

}  // namespace

std::unique_ptr<Engine> open_executorch_engine(const Bundle &bundle) {
  return std::make_unique<ExecuTorchEngine>(bundle);
}

}  // namespace acre

#else

namespace acre {

std::unique_ptr<Engine> open_executorch_engine(const Bundle &bundle) {
  bundle.program_path("executorch");  // a bundle without the program says so first
  fail(ACRE_ERR_UNSUPPORTED,
       "this build of the acre core has no ExecuTorch engine (ACRE_WITH_EXECUTORCH=OFF)");
}

}  // namespace acre

#endif
