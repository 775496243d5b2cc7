// acre._native.Pot: the binding of the core's pot (acre.h, "the pot"). It converts and does nothing
// else: statuses become acre.errors exceptions (InputError), numpy arrays go in without a copy, and the
// pot's arrays are numpy views of the core's memory that keep the pot alive (k, v and mask writable
// for the engines that wrap them, positions, kind and token read-only).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "acre.h"
#include "binding.hpp"

namespace nb = nanobind;

namespace {

using acre_binding::array_of;
using acre_binding::check;
using acre_binding::dlpack_of;
using acre_binding::dtype_of;
using acre_binding::Pot;
using acre_binding::raise;

template <class T, class... Shape>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu, Shape...>;
using Slots = In<int64_t, nb::ndim<1>>;
using Rows = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu, nb::ndim<4>>;  // float32 or float16
using Out = nb::ndarray<float, nb::c_contig, nb::device::cpu>;
using Any = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;

// A numpy array that owns `values` (moved, not copied).
nb::object numpy_of(std::vector<int64_t> values) {
  auto *held = new std::vector<int64_t>(std::move(values));
  nb::capsule owner(held, [](void *p) noexcept { delete static_cast<std::vector<int64_t> *>(p); });
  const size_t shape[1] = {held->size()};
  return nb::cast(nb::ndarray<nb::numpy, int64_t>(held->data(), 1, shape, owner));
}

void same_length(const std::optional<Slots> &a, size_t n, const char *what) {
  if (a && a->shape(0) != n)
    raise(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " has " + std::to_string(a->shape(0)) +
                                         " values for " + std::to_string(n) + " slots");
}

std::vector<acre_slot_kind> kinds_of(const std::vector<int> &kinds) {
  std::vector<acre_slot_kind> out;
  for (int k : kinds) out.push_back(acre_slot_kind(k));
  return out;
}

}  // namespace

void register_pot(nb::module_ &m) {
  m.attr("POT_MAX_POSITION") = int64_t(ACRE_POT_MAX_POSITION);
  nb::list names;
  {
    // the arrays' names, as the pot's snapshot keeps them
    const double f[1] = {1.0};
    acre_pot *probe = nullptr;
    check(acre_pot_new(1, 1, 1, 2, ACRE_DTYPE_FLOAT32, f, 1, &probe));
    for (size_t i = 0; i < ACRE_POT_ARRAYS; ++i) {
      acre_array a{};
      check(acre_pot_array(probe, i, &a));
      names.append(a.info.name);
    }
    acre_pot_free(probe);
  }
  m.attr("POT_ARRAYS") = nb::tuple(names);

  nb::class_<Pot>(m, "Pot", "The pot: K/V, positions, mask and slot table in the core's memory.")
      .def(
          "__init__",
          [](Pot *self, int32_t layers, int32_t kv_heads, int32_t capacity, int32_t head_dim,
             const std::string &kv_dtype, const In<double, nb::ndim<1>> &inv_freq) {
            acre_pot *h = nullptr;
            check(acre_pot_new(layers, kv_heads, capacity, head_dim, acre_dtype_from_name(kv_dtype.c_str()),
                               inv_freq.data(), inv_freq.shape(0), &h));
            new (self) Pot(h);
          },
          nb::arg("layers"), nb::arg("kv_heads"), nb::arg("capacity"), nb::arg("head_dim"),
          nb::arg("kv_dtype"), nb::arg("inv_freq"))
      .def_prop_ro("capacity", &Pot::capacity)
      .def_prop_ro("nbytes", [](const Pot &p) { return acre_pot_bytes(p.handle); })
      .def_prop_ro("used", [](const Pot &p) { return acre_pot_used(p.handle); })
      .def("array", &Pot::view, nb::arg("index"),
           "Array `index` of POT_ARRAYS, a numpy view of the core's memory (no copy).")
      .def(
          "write",
          [](Pot &p, const Slots &slots, const Rows &k, const Rows &v, std::optional<Slots> positions,
             int kind, std::optional<Slots> tokens) {
            const size_t n = slots.shape(0);
            same_length(positions, n, "positions");
            same_length(tokens, n, "tokens");
            const acre_array ka = array_of("k", k), va = array_of("v", v);
            check(acre_pot_write(p.handle, slots.data(), n, &ka, &va, positions ? positions->data() : nullptr,
                                 acre_slot_kind(kind), tokens ? tokens->data() : nullptr));
          },
          nb::arg("slots"), nb::arg("k"), nb::arg("v"), nb::arg("positions").none(), nb::arg("kind"),
          nb::arg("tokens").none())
      .def("clear",
           [](Pot &p, const Slots &slots) { check(acre_pot_clear(p.handle, slots.data(), slots.shape(0))); })
      .def("show",
           [](Pot &p, const Slots &slots, bool visible) {
             check(acre_pot_show(p.handle, slots.data(), slots.shape(0), visible));
           })
      .def("move",
           [](Pot &p, const Slots &slots, const Slots &positions) {
             same_length(positions, slots.shape(0), "positions");
             check(acre_pot_move(p.handle, slots.data(), slots.shape(0), positions.data()));
           })
      .def("compact",
           [](Pot &p, const std::vector<int> &kinds) {
             const std::vector<acre_slot_kind> k = kinds_of(kinds);
             int64_t next = 0;
             check(acre_pot_compact(p.handle, k.data(), k.size(), &next));
             return next;
           })
      .def("unrotated",
           [](const Pot &p, const In<int32_t, nb::ndim<1>> &layers, const Slots &slots, const Out &out) {
             const acre_buffer b{out.data(), out.nbytes()};
             check(acre_pot_unrotated(p.handle, layers.data(), layers.shape(0), slots.data(), slots.shape(0),
                                      &b));
           })
      .def("unrotate",
           [](const Pot &p, const Rows &keys, const Slots &positions, const Out &out) {
             const acre_array k = array_of("keys", keys);
             if (keys.shape(2) != positions.shape(0))
               raise(ACRE_ERR_INVALID_ARGUMENT, "positions has " + std::to_string(positions.shape(0)) +
                                                    " values for " + std::to_string(keys.shape(2)) + " keys");
             const acre_buffer b{out.data(), out.nbytes()};
             check(acre_pot_unrotate(p.handle, &k, positions.data(), &b));
           })
      .def("free_slots",
           [](const Pot &p, int64_t first, int64_t count) {
             std::vector<int64_t> slots(size_t(std::max<int64_t>(count, 0)));
             size_t n = 0;
             check(acre_pot_free_slots(p.handle, first, count, slots.data(), slots.size(), &n));
             slots.resize(n);
             return numpy_of(std::move(slots));
           })
      .def("slots_of",
           [](const Pot &p, const std::vector<int> &kinds) {
             const std::vector<acre_slot_kind> k = kinds_of(kinds);
             std::vector<int64_t> slots(p.capacity());
             size_t n = 0;
             check(acre_pot_slots_of(p.handle, k.data(), k.size(), slots.data(), slots.size(), &n));
             slots.resize(n);
             return numpy_of(std::move(slots));
           })
      .def(
          "restore",
          [](Pot &p, const std::vector<std::pair<std::string, Any>> &arrays) {
            std::vector<acre_array> in;
            for (const auto &[name, a] : arrays) in.push_back(array_of(name.c_str(), a));
            check(acre_pot_restore(p.handle, in.data(), in.size()));
          },
          nb::arg("arrays"), "Put a snapshot's (name, array) pairs back, each of the pot's dtype and shape.");
}
