// What the binding's files share: statuses as acre.errors exceptions, the array views, and the handles
// (bundle, tokenizer, engine, pot, store) that other handles take: the session borrows all of them.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "acre.h"

namespace acre_binding {

namespace nb = nanobind;

// A failed call: raise the acre.errors class for its status with the core's message.
[[noreturn]] inline void raise(acre_status status, const std::string &message) {
  const char *name = "AcreError";
  switch (status) {
    case ACRE_ERR_BUNDLE: name = "BundleError"; break;
    case ACRE_ERR_TOKENIZER: name = "TokenizerError"; break;
    case ACRE_ERR_ENGINE:
    case ACRE_ERR_UNSUPPORTED: name = "EngineError"; break;
    case ACRE_ERR_INVALID_ARGUMENT: name = "InputError"; break;
    case ACRE_ERR_STORE: name = "StoreError"; break;
    default: break;
  }
  nb::object cls = nb::module_::import_("acre.errors").attr(name);
  PyErr_SetString(cls.ptr(), message.c_str());
  throw nb::python_error();
}

[[noreturn]] inline void raise(acre_status status) { raise(status, acre_last_error()); }

inline void check(acre_status status) {
  if (status != ACRE_OK) raise(status);
}

// numpy's dtype name of a DLPack dtype ("float32", "int8", "bool"), which acre_dtype_from_name reads.
inline acre_dtype dtype_of(const nb::dlpack::dtype &d) {
  using code = nb::dlpack::dtype_code;
  std::string name = d.code == uint8_t(code::Float)  ? "float"
                     : d.code == uint8_t(code::Int)  ? "int"
                     : d.code == uint8_t(code::UInt) ? "uint"
                     : d.code == uint8_t(code::Bool) ? "bool"
                                                     : "?";
  if (name != "bool") name += std::to_string(d.bits);
  return d.lanes == 1 ? acre_dtype_from_name(name.c_str()) : ACRE_DTYPE_INVALID;
}

inline nb::dlpack::dtype dlpack_of(acre_dtype dtype) {
  using code = nb::dlpack::dtype_code;
  const std::string name = acre_dtype_name(dtype);
  const code c = name == "bool"   ? code::Bool
                 : name[0] == 'f' ? code::Float
                 : name[0] == 'u' ? code::UInt
                                  : code::Int;
  return {uint8_t(c), uint8_t(8 * acre_dtype_size(dtype)), 1};
}

// An array as the core reads it: its dtype (ACRE_DTYPE_INVALID for one the core has no name for),
// shape and bytes, over the array's own memory. name: valid while the array is used.
template <class A>
acre_array array_of(const char *name, const A &a) {
  acre_array out{};
  out.info.name = name;
  out.info.dtype = dtype_of(a.dtype());
  if (a.ndim() > ACRE_MAX_DIMS) raise(ACRE_ERR_INVALID_ARGUMENT, std::string(name) + ": too many dimensions");
  out.info.rank = int32_t(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) out.info.dims[i] = int64_t(a.shape(i));
  out.info.bytes = a.nbytes();
  out.data = a.data();
  return out;
}

// A Python step function behind the core's callback engine (acre_step_fn), and the exception it
// raised, kept to be raised again where the core's call returns.
struct Callback {
  nb::object fn;
  acre_engine *engine = nullptr;  // the tensors' shapes
  std::unique_ptr<nb::python_error> pending;
};

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
  Callback *callback = nullptr;  // owned by the engine (a callback engine's user pointer)
  explicit Engine(acre_engine *h, Callback *c = nullptr) : handle(h), callback(c) {}
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

  // After a failed call: the Python exception the callback raised, if it raised one.
  void raise_pending() const {
    if (!callback || !callback->pending) return;
    std::unique_ptr<nb::python_error> e = std::move(callback->pending);
    e->restore();
    throw nb::python_error();
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
    if (status != ACRE_OK) raise_pending();
    check(status);
    return outputs;
  }
};

struct Pot {
  acre_pot *handle = nullptr;
  explicit Pot(acre_pot *h) : handle(h) {}
  ~Pot() { acre_pot_free(handle); }
  Pot(const Pot &) = delete;
  Pot &operator=(const Pot &) = delete;

  size_t capacity() const { return acre_pot_capacity(handle); }

  // Array `index` as a numpy view that keeps this pot alive.
  nb::object view(size_t index) const {
    acre_array a{};
    check(acre_pot_array(handle, index, &a));
    std::vector<size_t> shape(a.info.dims, a.info.dims + a.info.rank);
    const bool writable = index < 2 || index == 3;  // k, v, mask: engine inputs
    nb::ndarray<nb::numpy> array(const_cast<void *>(a.data), shape.size(), shape.data(), nb::find(this),
                                 nullptr, dlpack_of(a.info.dtype));
    nb::object out = nb::cast(array);
    if (!writable) out.attr("flags").attr("writeable") = false;
    return out;
  }
};

struct Store {
  acre_store *handle = nullptr;
  explicit Store(acre_store *h) : handle(h) {}
  ~Store() { acre_store_free(handle); }
  Store(const Store &) = delete;
  Store &operator=(const Store &) = delete;

  acre_store *get() const {
    if (!handle) raise(ACRE_ERR_STORE, "the L2 store is closed");
    return handle;
  }
  void close() {
    acre_store_free(handle);  // releases the writer's lock
    handle = nullptr;
  }
};

}  // namespace acre_binding
