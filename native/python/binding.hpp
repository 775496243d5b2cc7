// What the binding's files share: statuses as acre.errors exceptions, and the store's handle
// (acre._native.Store, bound by l2_binding.cpp; the span index reads a store's spans through it).
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <string>

#include "acre.h"

namespace acre_binding {

namespace nb = nanobind;

// A failed call: raise the acre.errors class for its status with the core's message.
[[noreturn]] inline void raise(acre_status status, const std::string &message) {
  const char *name = status == ACRE_ERR_STORE              ? "StoreError"
                     : status == ACRE_ERR_INVALID_ARGUMENT ? "InputError"
                                                           : "AcreError";
  nb::object cls = nb::module_::import_("acre.errors").attr(name);
  PyErr_SetString(cls.ptr(), message.c_str());
  throw nb::python_error();
}

inline void check(acre_status status) {
  if (status != ACRE_OK) raise(status, acre_last_error());
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
