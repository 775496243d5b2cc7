// What the binding's files share: statuses as acre.errors exceptions, and the store's handle
// (acre._native.Store, bound by l2_binding.cpp; the span index reads a store's spans through it).
#pragma once

#include <nanobind/nanobind.h>

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
