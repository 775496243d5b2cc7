// acre._native.Store: the binding of the core's L2 store (acre.h, "L2 store"). It converts and does
// nothing else: statuses become acre.errors exceptions (StoreError, InputError), numpy arrays become
// acre_arrays and acre_buffers (no copy in; out, the caller's arrays are filled), and a snapshot's
// arrays are numpy views of the snapshot's memory, which lives as long as any of them.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "acre.h"
#include "binding.hpp"

namespace nb = nanobind;

namespace {

using In = nb::ndarray<nb::ro, nb::c_contig, nb::device::cpu>;  // read-only arrays are fine to read
using Out = nb::ndarray<nb::c_contig, nb::device::cpu>;
using NamedArrays = std::vector<std::pair<std::string, In>>;

using acre_binding::check;
using acre_binding::dlpack_of;
using acre_binding::dtype_of;
using acre_binding::raise;
using acre_binding::Store;

acre_array array_of(const char *name, const In &a) {  // name: valid while the array is used
  if (dtype_of(a.dtype()) == ACRE_DTYPE_INVALID)
    raise(ACRE_ERR_INVALID_ARGUMENT, std::string(name) + ": an array of a dtype the store does not keep");
  return acre_binding::array_of(name, a);
}

acre_buffer buffer_of(const Out &a) { return {a.data(), a.nbytes()}; }

size_t span_of(int64_t span) {
  if (span < 0)
    raise(ACRE_ERR_INVALID_ARGUMENT, "span " + std::to_string(span) + ": spans are numbered from 0");
  return size_t(span);
}

// A snapshot's arrays as numpy arrays that keep the snapshot alive.
std::vector<std::pair<std::string, nb::object>> arrays_of(acre_snapshot *raw) {
  auto snapshot = std::shared_ptr<acre_snapshot>(raw, acre_snapshot_free);
  std::vector<std::pair<std::string, nb::object>> out;
  for (size_t i = 0; i < acre_snapshot_count(raw); ++i) {
    acre_array a{};
    check(acre_snapshot_array(raw, i, &a));
    auto *keep = new std::shared_ptr<acre_snapshot>(snapshot);
    nb::capsule owner(keep,
                      [](void *p) noexcept { delete static_cast<std::shared_ptr<acre_snapshot> *>(p); });
    std::vector<size_t> shape(a.info.dims, a.info.dims + a.info.rank);
    nb::ndarray<nb::numpy> array(const_cast<void *>(a.data), shape.size(), shape.data(), owner, nullptr,
                                 dlpack_of(a.info.dtype));
    out.emplace_back(a.info.name, nb::cast(array));
  }
  return out;
}

void finish_or_checkpoint(Store &s, bool finish, const NamedArrays &arrays, const std::string &json) {
  std::vector<acre_array> in;
  for (const auto &[name, a] : arrays) in.push_back(array_of(name.c_str(), a));
  check((finish ? acre_store_finish : acre_store_checkpoint)(s.get(), in.data(), in.size(), json.c_str()));
}

acre_store_meta meta_of(const std::string &fingerprint, int32_t span_tokens, int32_t layers, int32_t kv_heads,
                        int32_t head_dim, int32_t probe_layers, int32_t reps, const std::string &codec) {
  return {fingerprint.c_str(), span_tokens, layers, kv_heads, head_dim, probe_layers, reps, codec.c_str()};
}

}  // namespace

void register_l2(nb::module_ &m) {
  nb::list names;
  for (size_t i = 0; acre_store_codec_name(i); ++i) names.append(acre_store_codec_name(i));
  m.attr("STORE_CODECS") = nb::tuple(names);
  m.attr("STORE_VERSION") = ACRE_STORE_VERSION;
  m.attr("RECORD_HEADER_BYTES") = ACRE_STORE_RECORD_HEADER_BYTES;

  m.def(
      "store_record_bytes",
      [](const std::string &fingerprint, int32_t span_tokens, int32_t layers, int32_t kv_heads,
         int32_t head_dim, int32_t probe_layers, int32_t reps, const std::string &codec) {
        const acre_store_meta meta =
            meta_of(fingerprint, span_tokens, layers, kv_heads, head_dim, probe_layers, reps, codec);
        size_t bytes = 0;
        check(acre_store_record_bytes(&meta, &bytes));
        return bytes;
      },
      "Bytes of one spans.bin record of a store with this meta.");
  m.def(
      "store_peek",
      [](const std::string &path) {
        size_t n = 0;
        acre_status status = acre_store_peek(path.c_str(), nullptr, 0, &n);
        if (status != ACRE_OK && status != ACRE_ERR_BUFFER_TOO_SMALL) check(status);
        std::string text(n, '\0');
        if (n) check(acre_store_peek(path.c_str(), text.data(), n, &n));
        return text;
      },
      "store.json's text if the directory holds a store ('{}' if unreadable), '' if nothing is there.");

  nb::class_<Store>(m, "Store", "One document's L2 store, run by the core.")
      .def_static(
          "create",
          [](const std::string &path, const std::string &fingerprint, int32_t span_tokens, int32_t layers,
             int32_t kv_heads, int32_t head_dim, int32_t probe_layers, int32_t reps, const std::string &codec,
             std::optional<std::string> document_sha256) {
            const acre_store_meta meta =
                meta_of(fingerprint, span_tokens, layers, kv_heads, head_dim, probe_layers, reps, codec);
            acre_store *s = nullptr;
            check(acre_store_create(path.c_str(), &meta, document_sha256 ? document_sha256->c_str() : nullptr,
                                    &s));
            return new Store(s);
          },
          nb::rv_policy::take_ownership)
      .def_static(
          "open",
          [](const std::string &path, std::optional<std::string> fingerprint, bool writable) {
            acre_store *s = nullptr;
            check(acre_store_open(path.c_str(), fingerprint ? fingerprint->c_str() : nullptr, writable, &s));
            return new Store(s);
          },
          nb::rv_policy::take_ownership)
      .def_prop_ro("dir", [](const Store &s) { return std::string(acre_store_dir(s.get())); })
      .def("close", &Store::close)
      .def_prop_ro("closed", [](const Store &s) { return s.handle == nullptr; })
      .def("meta",
           [](const Store &s) {
             acre_store_meta meta{};
             check(acre_store_get_meta(s.get(), &meta));
             nb::dict d;
             d["fingerprint"] = meta.fingerprint, d["span_tokens"] = meta.span_tokens,
             d["layers"] = meta.layers;
             d["kv_heads"] = meta.kv_heads, d["head_dim"] = meta.head_dim;
             d["probe_layers"] = meta.probe_layers, d["reps"] = meta.reps, d["codec"] = meta.codec;
             return d;
           })
      .def("info_json", [](const Store &s) { return std::string(acre_store_info_json(s.get())); })
      .def("span_count", [](const Store &s) { return acre_store_span_count(s.get()); })
      .def("spans",
           [](const Store &s, size_t first) {
             std::vector<int64_t> starts;
             std::vector<int32_t> lengths;
             for (size_t i = first; i < acre_store_span_count(s.get()); ++i) {
               int64_t start = 0;
               int32_t n = 0;
               check(acre_store_span(s.get(), i, &start, &n));
               starts.push_back(start);
               lengths.push_back(n);
             }
             return std::make_pair(starts, lengths);
           })
      .def("bytes_read", [](const Store &s) { return acre_store_bytes_read(s.get()); })
      .def("disk_bytes", [](const Store &s) { return acre_store_disk_bytes(s.get()); })
      .def("append",
           [](Store &s, int64_t start, const In &tokens, std::optional<In> k, std::optional<In> v,
              const In &reps) {
             const acre_array t = array_of("tokens", tokens), r = array_of("reps", reps);
             acre_array ka{}, va{};
             if (k) ka = array_of("k", *k);
             if (v) va = array_of("v", *v);
             check(acre_store_append(s.get(), start, &t, k ? &ka : nullptr, v ? &va : nullptr, &r));
           })
      .def(
          "read",
          [](Store &s, int64_t span, const Out &tokens, const Out &k, const Out &v) {
            const acre_buffer t = buffer_of(tokens), kb = buffer_of(k), vb = buffer_of(v);
            check(acre_store_read(s.get(), span_of(span), &t, &kb, &vb));
          },
          nb::arg("span"), nb::arg("tokens").noconvert(), nb::arg("k").noconvert(), nb::arg("v").noconvert())
      .def(
          "read_tokens",
          [](Store &s, int64_t span, const Out &tokens) {
            const acre_buffer t = buffer_of(tokens);
            check(acre_store_read_tokens(s.get(), span_of(span), &t));
          },
          nb::arg("span"), nb::arg("tokens").noconvert())
      .def(
          "read_reps",
          [](Store &s, size_t first, size_t count, const Out &out) {
            const acre_buffer b = buffer_of(out);
            check(acre_store_read_reps(s.get(), first, count, &b));
          },
          nb::arg("first"), nb::arg("count"), nb::arg("out").noconvert())
      .def("finish", [](Store &s, const NamedArrays &arrays,
                        const std::string &extra_json) { finish_or_checkpoint(s, true, arrays, extra_json); })
      .def("checkpoint",
           [](Store &s, const NamedArrays &arrays, const std::string &info_json) {
             finish_or_checkpoint(s, false, arrays, info_json);
           })
      .def("truncate", [](Store &s, size_t spans) { check(acre_store_truncate(s.get(), spans)); })
      .def("load_pot",
           [](const Store &s) {
             acre_snapshot *snapshot = nullptr;
             check(acre_store_load_pot(s.get(), &snapshot));
             return arrays_of(snapshot);
           })
      .def("load_checkpoint", [](const Store &s) {
        acre_snapshot *snapshot = nullptr;
        check(acre_store_load_checkpoint(s.get(), &snapshot));
        using Saved = std::pair<std::vector<std::pair<std::string, nb::object>>, std::string>;
        if (!snapshot) return std::optional<Saved>();
        const std::string info = acre_snapshot_info_json(snapshot);
        return std::optional<Saved>(Saved(arrays_of(snapshot), info));
      });
}
