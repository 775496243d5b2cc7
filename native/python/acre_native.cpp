// acre._native: the Python binding of the core's C ABI (acre.h). It converts types and errors and
// nothing else: statuses become acre.errors exceptions, buffers are numpy arrays (no copy in).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "acre.h"

namespace nb = nanobind;

namespace {

// A failed call: raise the acre.errors class for its status with the core's message.
[[noreturn]] void raise(acre_status status) {
  const char *name = "AcreError";
  switch (status) {
    case ACRE_ERR_BUNDLE: name = "BundleError"; break;
    case ACRE_ERR_TOKENIZER: name = "TokenizerError"; break;
    case ACRE_ERR_ENGINE:
    case ACRE_ERR_UNSUPPORTED: name = "EngineError"; break;
    case ACRE_ERR_INVALID_ARGUMENT: name = "InputError"; break;
    default: break;
  }
  const std::string message = acre_last_error();
  nb::object cls = nb::module_::import_("acre.errors").attr(name);
  PyErr_SetString(cls.ptr(), message.c_str());
  throw nb::python_error();
}

void check(acre_status status) {
  if (status != ACRE_OK) raise(status);
}

nb::dlpack::dtype dlpack_of(acre_dtype dtype) {
  using code = nb::dlpack::dtype_code;
  switch (dtype) {
    case ACRE_DTYPE_FLOAT32: return {static_cast<uint8_t>(code::Float), 32, 1};
    case ACRE_DTYPE_FLOAT16: return {static_cast<uint8_t>(code::Float), 16, 1};
    case ACRE_DTYPE_INT64: return {static_cast<uint8_t>(code::Int), 64, 1};
    case ACRE_DTYPE_INT32: return {static_cast<uint8_t>(code::Int), 32, 1};
    case ACRE_DTYPE_UINT8: return {static_cast<uint8_t>(code::UInt), 8, 1};
    default: return {static_cast<uint8_t>(code::Bool), 8, 1};
  }
}

struct Bundle {
  acre_bundle *handle = nullptr;
  Bundle(const std::string &dir, bool verify_checksums) {
    check(acre_bundle_open(dir.c_str(), verify_checksums, &handle));
  }
  ~Bundle() { acre_bundle_free(handle); }
  Bundle(const Bundle &) = delete;
  Bundle &operator=(const Bundle &) = delete;
};

struct Tokenizer {
  acre_tokenizer *handle = nullptr;
  explicit Tokenizer(acre_tokenizer *h) : handle(h) {}
  ~Tokenizer() { acre_tokenizer_free(handle); }
  Tokenizer(const Tokenizer &) = delete;
  Tokenizer &operator=(const Tokenizer &) = delete;

  std::vector<int32_t> encode(nb::str text) const {
    Py_ssize_t size = 0;
    const char *data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
    if (!data) throw nb::python_error();  // e.g. lone surrogates: not encodable as UTF-8
    std::vector<int32_t> ids(static_cast<size_t>(size));
    size_t n = 0;
    acre_status status;
    {
      nb::gil_scoped_release release;
      status = acre_tokenize(handle, data, static_cast<size_t>(size), ids.data(), ids.size(), &n);
    }
    check(status);
    ids.resize(n);
    return ids;
  }

  // (ids, [first, end) of each id as character offsets into the str, flat): Python indexes str by
  // code point, the core reports bytes
  std::pair<std::vector<int32_t>, std::vector<int32_t>> encode_offsets(nb::str text) const {
    Py_ssize_t size = 0;
    const char *data = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
    if (!data) throw nb::python_error();
    std::vector<int32_t> ids(static_cast<size_t>(size));
    std::vector<uint32_t> bytes(2 * ids.size());
    size_t n = 0;
    acre_status status;
    {
      nb::gil_scoped_release release;
      status = acre_tokenize_offsets(handle, data, static_cast<size_t>(size), ids.data(), bytes.data(),
                                     ids.size(), &n);
    }
    check(status);
    ids.resize(n);
    // byte offset -> index of the code point that byte belongs to
    std::vector<int32_t> char_at(static_cast<size_t>(size) + 1);
    int32_t chars = -1;
    for (Py_ssize_t b = 0; b < size; ++b) {
      if ((static_cast<unsigned char>(data[b]) & 0xC0) != 0x80) ++chars;  // not a continuation byte
      char_at[b] = chars;
    }
    char_at[size] = chars + 1;
    std::vector<int32_t> offsets(2 * n);
    for (size_t i = 0; i < 2 * n; ++i) {
      const uint32_t b = bytes[i];
      // a range's end that falls inside a character covers that character
      const bool inside =
          i % 2 && b < static_cast<uint32_t>(size) && (static_cast<unsigned char>(data[b]) & 0xC0) == 0x80;
      offsets[i] = char_at[b] + (inside ? 1 : 0);
    }
    return {ids, offsets};
  }

  nb::str decode(const std::vector<int64_t> &ids, bool skip_special_tokens) const {
    std::vector<int32_t> narrow;
    narrow.reserve(ids.size());
    for (int64_t id : ids) {
      if (id < 0 || id > INT32_MAX) {
        const std::string message = "token id " + std::to_string(id) + " is not in the vocabulary";
        PyErr_SetString(nb::module_::import_("acre.errors").attr("InputError").ptr(), message.c_str());
        throw nb::python_error();
      }
      narrow.push_back(static_cast<int32_t>(id));
    }
    size_t n = 0;
    acre_status status =
        acre_detokenize(handle, narrow.data(), narrow.size(), skip_special_tokens, nullptr, 0, &n);
    if (status != ACRE_OK && status != ACRE_ERR_BUFFER_TOO_SMALL) raise(status);
    std::string text(n, '\0');
    check(acre_detokenize(handle, narrow.data(), narrow.size(), skip_special_tokens, text.data(), n, &n));
    return nb::str(text.data(), n);
  }

  int32_t token_to_id(const std::string &token) const {
    int32_t id = -1;
    check(acre_token_to_id(handle, token.c_str(), &id));
    return id;
  }
};

struct Engine {
  acre_engine *handle = nullptr;
  explicit Engine(acre_engine *h) : handle(h) {}
  ~Engine() { acre_engine_free(handle); }
  Engine(const Engine &) = delete;
  Engine &operator=(const Engine &) = delete;

  std::vector<acre_tensor_info> infos(int32_t rows, bool output) const {
    const size_t n = output ? acre_engine_num_outputs(handle) : acre_engine_num_inputs(handle);
    std::vector<acre_tensor_info> out(n);
    for (size_t i = 0; i < n; ++i)
      check((output ? acre_engine_output_info : acre_engine_input_info)(handle, rows, i, &out[i]));
    return out;
  }

  nb::list describe(int32_t rows, bool output) const {
    nb::list out;
    for (const acre_tensor_info &info : infos(rows, output)) {
      nb::list dims;
      for (int32_t d = 0; d < info.rank; ++d) dims.append(info.dims[d]);
      out.append(nb::make_tuple(info.name, acre_dtype_name(info.dtype), nb::tuple(dims)));
    }
    return out;
  }

  using Array = nb::ndarray<nb::numpy, nb::c_contig, nb::device::cpu>;

  std::vector<Array> step(int32_t rows,
                          const std::vector<nb::ndarray<nb::c_contig, nb::device::cpu>> &inputs) {
    const std::vector<acre_tensor_info> in_info = infos(rows, false), out_info = infos(rows, true);
    if (inputs.size() != in_info.size())
      throw nb::value_error(("the step takes " + std::to_string(in_info.size()) + " inputs, not " +
                             std::to_string(inputs.size()))
                                .c_str());
    std::vector<acre_buffer> in(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].dtype() != dlpack_of(in_info[i].dtype)) {
        const std::string message =
            std::string("step input ") + in_info[i].name + " must be " + acre_dtype_name(in_info[i].dtype);
        PyErr_SetString(nb::module_::import_("acre.errors").attr("InputError").ptr(), message.c_str());
        throw nb::python_error();
      }
      in[i] = {const_cast<void *>(inputs[i].data()), inputs[i].nbytes()};
    }
    std::vector<Array> outputs;
    std::vector<acre_buffer> out(out_info.size());
    for (size_t i = 0; i < out_info.size(); ++i) {
      auto *data = new uint8_t[out_info[i].bytes ? out_info[i].bytes : 1];
      nb::capsule owner(data, [](void *p) noexcept { delete[] static_cast<uint8_t *>(p); });
      std::vector<size_t> shape(out_info[i].dims, out_info[i].dims + out_info[i].rank);
      outputs.emplace_back(data, shape.size(), shape.data(), owner, nullptr, dlpack_of(out_info[i].dtype));
      out[i] = {data, out_info[i].bytes};
    }
    acre_status status;
    {
      nb::gil_scoped_release release;
      status = acre_engine_step(handle, rows, in.data(), in.size(), out.data(), out.size());
    }
    check(status);
    return outputs;
  }
};

}  // namespace

void register_l2(nb::module_ &m);         // l2_binding.cpp
void register_selection(nb::module_ &m);  // selection_binding.cpp
void register_pot(nb::module_ &m);        // pot_binding.cpp

NB_MODULE(_native, m) {
  m.doc() = "acre's native runtime core (native/include/acre.h): bundle, tokenizer, step engine";
  m.attr("ABI_VERSION") = acre_abi_version();
  m.attr("BUNDLE_VERSIONS") = nb::make_tuple(ACRE_BUNDLE_VERSION_MIN, ACRE_BUNDLE_VERSION_MAX);

  nb::class_<Bundle>(m, "Bundle", "A bundle opened and verified by the core.")
      .def(nb::init<const std::string &, bool>(), nb::arg("path"), nb::arg("verify_checksums") = true)
      .def_prop_ro("root", [](const Bundle &b) { return std::string(acre_bundle_root(b.handle)); })
      .def_prop_ro("manifest_json",
                   [](const Bundle &b) { return std::string(acre_bundle_manifest_json(b.handle)); })
      .def_prop_ro("geometry",
                   [](const Bundle &b) {
                     acre_geometry g{};
                     check(acre_bundle_geometry(b.handle, &g));
                     nb::dict d;
                     d["layers"] = g.layers, d["heads"] = g.heads, d["kv_heads"] = g.kv_heads;
                     d["head_dim"] = g.head_dim, d["hidden"] = g.hidden, d["intermediate"] = g.intermediate;
                     d["vocab"] = g.vocab, d["window"] = g.window, d["rope_theta"] = g.rope_theta;
                     d["rms_eps"] = g.rms_eps, d["chunk"] = g.chunk, d["pot"] = g.pot;
                     d["kv_dtype"] = acre_dtype_name(g.kv_dtype);
                     return d;
                   })
      .def("program_path", [](const Bundle &b, const std::string &engine) {
        const char *path = nullptr;
        check(acre_bundle_program_path(b.handle, engine.c_str(), &path));
        return std::string(path);
      });

  nb::class_<Tokenizer>(m, "Tokenizer", "Byte-level BPE from a tokenizer.json, run by the core.")
      .def_static(
          "open",
          [](const std::string &path) {
            acre_tokenizer *t = nullptr;
            check(acre_tokenizer_open(path.c_str(), &t));
            return new Tokenizer(t);
          },
          nb::arg("path"), nb::rv_policy::take_ownership)
      .def_static(
          "from_bundle",
          [](const Bundle &b) {
            acre_tokenizer *t = nullptr;
            check(acre_bundle_tokenizer(b.handle, &t));
            return new Tokenizer(t);
          },
          nb::arg("bundle"), nb::rv_policy::take_ownership)
      .def("encode", &Tokenizer::encode, nb::arg("text"),
           "Token ids of the text, no special tokens added (those written in it are recognised).")
      .def("encode_offsets", &Tokenizer::encode_offsets, nb::arg("text"),
           "(ids, offsets): encode, and each id's character range in the text as a flat [first, end, ...] "
           "list.")
      .def("decode", &Tokenizer::decode, nb::arg("ids"), nb::arg("skip_special_tokens") = false)
      .def("token_to_id", &Tokenizer::token_to_id, nb::arg("token"))
      .def_prop_ro("vocab_size", [](const Tokenizer &t) { return acre_tokenizer_vocab_size(t.handle); });

  nb::class_<Engine>(m, "Engine", "A step engine of the core (ExecuTorch).")
      .def_static(
          "executorch",
          [](const Bundle &b) {
            acre_engine *e = nullptr;
            check(acre_engine_open_executorch(b.handle, &e));
            return new Engine(e);
          },
          nb::arg("bundle"), nb::rv_policy::take_ownership)
      .def_prop_ro("name", [](const Engine &e) { return std::string(acre_engine_name(e.handle)); })
      .def_prop_ro(
          "planned_bytes", [](const Engine &e) { return acre_engine_planned_bytes(e.handle); },
          "Activation memory the program plans for its methods, in bytes.")
      .def(
          "inputs", [](const Engine &e, int32_t rows) { return e.describe(rows, false); }, nb::arg("rows"),
          "[(name, dtype, shape)] of the method that runs `rows` rows, in manifest order.")
      .def(
          "outputs", [](const Engine &e, int32_t rows) { return e.describe(rows, true); }, nb::arg("rows"))
      .def("step", &Engine::step, nb::arg("rows"), nb::arg("inputs"),
           "Run the method for `rows` rows on C-contiguous numpy inputs; returns new numpy outputs.");
  register_l2(m);
  register_selection(m);
  register_pot(m);
}
