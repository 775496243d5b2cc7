// acre._native: the Python binding of the core's C ABI (acre.h). It converts types and errors and
// nothing else: statuses become acre.errors exceptions, buffers are numpy arrays (no copy in).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "acre.h"
#include "binding.hpp"

namespace nb = nanobind;

using acre_binding::Bundle;
using acre_binding::Callback;
using acre_binding::check;
using acre_binding::dlpack_of;
using acre_binding::Engine;
using acre_binding::Tokenizer;

namespace {

// A buffer of the core's as a numpy array without a copy, valid for the callback's duration.
nb::object view_of(void *data, const acre_tensor_info &info) {
  std::vector<size_t> shape(info.dims, info.dims + info.rank);
  return nb::cast(
      nb::ndarray<nb::numpy>(data, shape.size(), shape.data(), nb::handle(), nullptr, dlpack_of(info.dtype)),
      nb::rv_policy::reference);  // no owner: without `reference` nanobind would copy
}

// The core's callback engine calls this: the Python function gets the inputs and fills the outputs
// (numpy views of the core's buffers, manifest order). What it raises is kept for the binding to raise.
int32_t call_step(void *user, int32_t rows, const acre_buffer *inputs, size_t n_inputs,
                  const acre_buffer *outputs, size_t n_outputs, char *error, size_t error_capacity) {
  auto *callback = static_cast<Callback *>(user);
  nb::gil_scoped_acquire gil;
  try {
    nb::list in, out;
    acre_tensor_info info{};
    for (size_t i = 0; i < n_inputs; ++i) {
      check(acre_engine_input_info(callback->engine, rows, i, &info));
      in.append(view_of(inputs[i].data, info));
    }
    for (size_t i = 0; i < n_outputs; ++i) {
      check(acre_engine_output_info(callback->engine, rows, i, &info));
      out.append(view_of(outputs[i].data, info));
    }
    callback->fn(rows, in, out);
    return 0;
  } catch (nb::python_error &e) {
    std::snprintf(error, error_capacity, "%s", e.what());
    callback->pending = std::make_unique<nb::python_error>(std::move(e));
  } catch (const std::exception &e) {
    std::snprintf(error, error_capacity, "%s", e.what());
  }
  return 1;
}

void free_callback(void *user) {
  nb::gil_scoped_acquire gil;
  delete static_cast<Callback *>(user);
}

}  // namespace

void register_l2(nb::module_ &m);         // l2_binding.cpp
void register_selection(nb::module_ &m);  // selection_binding.cpp
void register_pot(nb::module_ &m);        // pot_binding.cpp
void register_session(nb::module_ &m);    // session_binding.cpp

NB_MODULE(_native, m) {
  m.doc() = "acre's native runtime core (native/include/acre.h): bundle, tokenizer, step engine";
  m.attr("ABI_VERSION") = acre_abi_version();
  m.attr("BUNDLE_VERSIONS") = nb::make_tuple(ACRE_BUNDLE_VERSION_MIN, ACRE_BUNDLE_VERSION_MAX);

  nb::class_<Bundle>(m, "Bundle", "A bundle opened and verified by the core.")
      .def(nb::init<const std::string &, bool>(), nb::arg("path"), nb::arg("verify_checksums") = true)
      .def_prop_ro("root", [](const Bundle &b) { return std::string(acre_bundle_root(b.handle)); })
      .def_prop_ro("manifest_json",
                   [](const Bundle &b) { return std::string(acre_bundle_manifest_json(b.handle)); })
      .def_prop_ro("fingerprint",
                   [](const Bundle &b) { return std::string(acre_bundle_fingerprint(b.handle)); })
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
      .def_static(
          "callback",
          [](const Bundle &b, nb::callable step) {
            auto *callback = new Callback{nb::borrow(step), nullptr, nullptr};
            acre_engine *e = nullptr;
            check(acre_engine_open_callback(b.handle, call_step, callback, free_callback, &e));
            callback->engine = e;
            return new Engine(e, callback);
          },
          nb::arg("bundle"), nb::arg("step"), nb::rv_policy::take_ownership,
          "An engine that calls step(rows, inputs, outputs): numpy views of the core's buffers in manifest "
          "order, the outputs to be filled; valid during the call only.")
      .def_prop_ro("name", [](const Engine &e) { return std::string(acre_engine_name(e.handle)); })
      .def_prop_ro(
          "planned_bytes", [](const Engine &e) { return acre_engine_planned_bytes(e.handle); },
          "Activation memory the program plans for its methods, in bytes.")
      .def(
          "inputs", [](const Engine &e, int32_t rows) { return e.describe(rows, false); }, nb::arg("rows"),
          "[(name, dtype, shape)] of the method that runs `rows` rows, in manifest order.")
      .def(
          "outputs", [](const Engine &e, int32_t rows) { return e.describe(rows, true); }, nb::arg("rows"))
      .def(
          "calls", [](const Engine &e, int32_t rows) { return acre_engine_calls(e.handle, rows); },
          nb::arg("rows"), "Steps the method of `rows` rows has run.")
      .def("step", &Engine::step, nb::arg("rows"), nb::arg("inputs"),
           "Run the method for `rows` rows on C-contiguous numpy inputs; returns new numpy outputs.");
  register_l2(m);
  register_selection(m);
  register_pot(m);
  register_session(m);
}
