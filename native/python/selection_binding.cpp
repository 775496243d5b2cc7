// acre._native's span selection: the binding of the span index, BM25 and the selection rule (acre.h,
// "span selection"). It converts and does nothing else: statuses become acre.errors exceptions
// (InputError, StoreError), numpy arrays are passed to the core without a copy, and results are
// numpy arrays over the memory the core wrote them to (no copy out).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/vector.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "acre.h"
#include "binding.hpp"

namespace nb = nanobind;

namespace {

using acre_binding::check;
using acre_binding::raise;

template <class T, class... Shape>
using In = nb::ndarray<const T, nb::c_contig, nb::device::cpu, Shape...>;
using Values = In<double, nb::ndim<1>>;
using Ids = In<int64_t, nb::ndim<1>>;

// A numpy array that owns `values` (moved, not copied), of this shape and dtype.
template <class T>
nb::object numpy_of(std::vector<T> values, std::vector<size_t> shape,
                    nb::dlpack::dtype dtype = nb::dtype<T>()) {
  auto *held = new std::vector<T>(std::move(values));
  nb::capsule owner(held, [](void *p) noexcept { delete static_cast<std::vector<T> *>(p); });
  return nb::cast(nb::ndarray<nb::numpy>(held->data(), shape.size(), shape.data(), owner, nullptr, dtype));
}

template <class T>
nb::object numpy_of(std::vector<T> values) {
  const size_t n = values.size();
  return numpy_of(std::move(values), {n});
}

acre_array array_of(const char *name, acre_dtype dtype, const void *data, size_t ndim, const size_t *shape,
                    size_t bytes) {
  acre_array a{};
  a.info.name = name;
  a.info.dtype = dtype;
  a.info.rank = int32_t(ndim);
  for (size_t i = 0; i < ndim; ++i) a.info.dims[i] = int64_t(shape[i]);
  a.info.bytes = bytes;
  a.data = data;
  return a;
}

template <class A>
acre_array array_of(const char *name, acre_dtype dtype, const A &a) {
  std::vector<size_t> shape(a.ndim());
  for (size_t i = 0; i < a.ndim(); ++i) shape[i] = a.shape(i);
  return array_of(name, dtype, a.data(), a.ndim(), shape.data(), a.nbytes());
}

const nb::dlpack::dtype FLOAT16{uint8_t(nb::dlpack::dtype_code::Float), 16, 1};

struct SpanIndex {
  acre_span_index *handle = nullptr;
  explicit SpanIndex(acre_span_index *h) : handle(h) {}
  ~SpanIndex() { acre_span_index_free(handle); }
  SpanIndex(const SpanIndex &) = delete;
  SpanIndex &operator=(const SpanIndex &) = delete;
};

struct Lexical {
  acre_lexical *handle = nullptr;
  explicit Lexical(acre_lexical *h) : handle(h) {}
  ~Lexical() { acre_lexical_free(handle); }
  Lexical(const Lexical &) = delete;
  Lexical &operator=(const Lexical &) = delete;
};

size_t length_of(const std::optional<Values> &a, size_t n, const char *what, const char *first) {
  if (a && n != size_t(-1) && a->shape(0) != n)
    raise(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " has " + std::to_string(a->shape(0)) + " values, " +
                                         first + " " + std::to_string(n));
  return a ? a->shape(0) : n;
}

const double *data_of(const std::optional<Values> &a) { return a ? a->data() : nullptr; }

}  // namespace

void register_selection(nb::module_ &m) {
  m.attr("SPAN_INDEX_FANOUT") = ACRE_SPAN_INDEX_FANOUT;
  m.attr("BM25_K1") = ACRE_BM25_K1;
  m.attr("BM25_B") = ACRE_BM25_B;

  m.def(
      "representatives",
      [](const In<float, nb::ndim<4>> &keys, int32_t reps) {
        const acre_array k = array_of("keys", ACRE_DTYPE_FLOAT32, keys);
        std::vector<float> out(keys.shape(0) * keys.shape(1) * size_t(std::max(reps, 0)) * keys.shape(3));
        const acre_buffer b{out.data(), 4 * out.size()};
        check(acre_representatives(&k, reps, &b));
        return numpy_of(std::move(out), {keys.shape(0), keys.shape(1), size_t(reps), keys.shape(3)});
      },
      nb::arg("keys"), nb::arg("reps"), "keys [Lp, Hkv, n, D] -> the R keys of largest norm per head.");
  m.def(
      "probe_queries",
      [](const In<float, nb::ndim<4>> &queries, double share) {
        const acre_array q = array_of("queries", ACRE_DTYPE_FLOAT32, queries);
        std::vector<int64_t> picks(queries.shape(2));
        size_t n = 0;
        check(acre_probe_queries(&q, share, picks.data(), picks.size(), &n));
        picks.resize(n);
        return numpy_of(std::move(picks));
      },
      nb::arg("queries"), nb::arg("share"), "The question tokens whose queries probe the span index.");

  nb::class_<SpanIndex>(m, "SpanIndex", "The span index: representative keys per span in a tree.")
      .def(
          "__init__",
          [](SpanIndex *self, const In<uint16_t, nb::ndim<5>> &reps, int32_t fanout) {
            const acre_array r = array_of("reps", ACRE_DTYPE_FLOAT16, reps);
            acre_span_index *h = nullptr;
            check(acre_span_index_new(&r, fanout, &h));
            new (self) SpanIndex(h);
          },
          nb::arg("reps"), nb::arg("fanout") = ACRE_SPAN_INDEX_FANOUT)
      .def_static(
          "from_store",
          [](const acre_binding::Store &store, int32_t fanout) {
            acre_span_index *h = nullptr;
            check(acre_span_index_from_store(store.get(), fanout, &h));
            return new SpanIndex(h);
          },
          nb::arg("store"), nb::arg("fanout") = ACRE_SPAN_INDEX_FANOUT, nb::rv_policy::take_ownership)
      .def_prop_ro("span_count", [](const SpanIndex &s) { return acre_span_index_span_count(s.handle); })
      .def_prop_ro("nbytes", [](const SpanIndex &s) { return acre_span_index_bytes(s.handle); })
      .def_prop_ro("level_sizes",
                   [](const SpanIndex &s) {
                     std::vector<size_t> sizes;
                     for (size_t i = 0; i < acre_span_index_levels(s.handle); ++i)
                       sizes.push_back(acre_span_index_level_size(s.handle, i));
                     return sizes;
                   })
      .def(
          "level_reps",
          [](const SpanIndex &s, size_t level) {
            int64_t dims[4] = {};
            check(acre_span_index_shape(s.handle, dims));
            std::vector<size_t> shape{acre_span_index_level_size(s.handle, level)};
            for (int64_t d : dims) shape.push_back(size_t(d));
            std::vector<uint16_t> out(shape[0] * shape[1] * shape[2] * shape[3] * shape[4]);
            const acre_buffer b{out.data(), 2 * out.size()};
            check(acre_span_index_level_reps(s.handle, level, &b));
            return numpy_of(std::move(out), shape, FLOAT16);
          },
          nb::arg("level"), "A level's entries, float16 [nodes, Lp, Hkv, R, D] (a copy).")
      .def(
          "scores",
          [](const SpanIndex &s, const In<float, nb::ndim<4>> &queries,
             const std::vector<std::pair<int32_t, int32_t>> &heads, int32_t beam, bool tree) {
            const acre_array q = array_of("queries", ACRE_DTYPE_FLOAT32, queries);
            std::vector<int32_t> flat;
            for (const auto &[lp, h] : heads) flat.push_back(lp), flat.push_back(h);
            std::vector<double> out(acre_span_index_span_count(s.handle));
            acre_status status;
            {
              nb::gil_scoped_release release;
              status = acre_span_index_scores(s.handle, &q, flat.data(), heads.size(), beam, tree, out.data(),
                                              out.size());
            }
            check(status);
            return numpy_of(std::move(out));
          },
          nb::arg("queries"), nb::arg("heads"), nb::arg("beam"), nb::arg("tree"));

  nb::class_<Lexical>(m, "LexicalIndex", "BM25 over the token ids of each span.")
      .def(
          "__init__",
          [](Lexical *self, const In<int32_t, nb::ndim<1>> &ids, int32_t span_tokens) {
            acre_lexical *h = nullptr;
            acre_status status;
            {
              nb::gil_scoped_release release;
              status = acre_lexical_new(ids.data(), ids.shape(0), span_tokens, &h);
            }
            check(status);
            new (self) Lexical(h);
          },
          nb::arg("document_ids"), nb::arg("span_tokens"))
      .def_prop_ro("span_count", [](const Lexical &l) { return acre_lexical_span_count(l.handle); })
      .def_prop_ro("nbytes", [](const Lexical &l) { return acre_lexical_bytes(l.handle); })
      .def(
          "scores",
          [](const Lexical &l, const In<int32_t, nb::ndim<1>> &query) {
            std::vector<double> out(acre_lexical_span_count(l.handle));
            check(acre_lexical_scores(l.handle, query.data(), query.shape(0), out.data(), out.size()));
            return numpy_of(std::move(out));
          },
          nb::arg("query_ids"));

  m.def(
      "standardised",
      [](const Values &x) {
        std::vector<double> out(x.shape(0));
        check(acre_standardised(x.data(), out.size(), out.data()));
        return numpy_of(std::move(out));
      },
      nb::arg("x"));
  m.def(
      "combine_scores",
      [](const std::optional<Values> &attention, const std::optional<Values> &index_z,
         const std::optional<Values> &lexical) {
        size_t n = length_of(attention, size_t(-1), "attention", "");
        n = length_of(index_z, n, "index_z", "attention");
        n = length_of(lexical, n, "lexical", "the other scores");
        std::vector<double> out(n == size_t(-1) ? 0 : n);
        check(acre_combine_scores(data_of(attention), data_of(index_z), data_of(lexical), out.size(),
                                  out.data()));
        return numpy_of(std::move(out));
      },
      nb::arg("attention").none(), nb::arg("index_z").none(), nb::arg("lexical").none());
  m.def(
      "core_spans",
      [](const Values &scores, int32_t budget, double mass, int32_t min_spans) {
        std::vector<int64_t> cores(std::min<size_t>(scores.shape(0), size_t(std::max(budget, 0))));
        size_t n = 0;
        check(acre_core_spans(scores.data(), scores.shape(0), budget, mass, min_spans, cores.data(), &n));
        cores.resize(n);
        return cores;
      },
      nb::arg("scores"), nb::arg("budget"), nb::arg("mass"), nb::arg("min_spans"));
  m.def(
      "choose_spans",
      [](const Values &scores, int32_t budget, double mass, int32_t min_spans, int32_t neighbors,
         const Ids &carried) {
        const size_t room = std::min<size_t>(scores.shape(0), size_t(std::max(budget, 0)));
        std::vector<int64_t> chosen(room), about(room);
        size_t n_chosen = 0, n_about = 0;
        check(acre_choose_spans(scores.data(), scores.shape(0), budget, mass, min_spans, neighbors,
                                carried.data(), carried.shape(0), chosen.data(), &n_chosen, about.data(),
                                &n_about));
        chosen.resize(n_chosen), about.resize(n_about);
        return std::make_pair(chosen, about);
      },
      nb::arg("scores"), nb::arg("budget"), nb::arg("mass"), nb::arg("min_spans"), nb::arg("neighbors"),
      nb::arg("carried"));
  m.def(
      "refill_placement",
      [](const Ids &spans, const Ids &starts, const In<int32_t, nb::ndim<1>> &lengths, const Ids &resident,
         const Ids &free_slots) {
        if (starts.shape(0) != lengths.shape(0))
          raise(ACRE_ERR_INVALID_ARGUMENT, std::to_string(starts.shape(0)) + " span starts for " +
                                               std::to_string(lengths.shape(0)) + " span lengths");
        std::vector<int64_t> slots(free_slots.shape(0)), tokens(free_slots.shape(0));
        size_t n = 0;
        check(acre_refill_placement(spans.data(), spans.shape(0), starts.data(), lengths.data(),
                                    starts.shape(0), resident.data(), resident.shape(0), free_slots.data(),
                                    free_slots.shape(0), slots.data(), tokens.data(), &n));
        slots.resize(n), tokens.resize(n);
        return std::make_pair(numpy_of(std::move(slots)), numpy_of(std::move(tokens)));
      },
      nb::arg("spans"), nb::arg("starts"), nb::arg("lengths"), nb::arg("resident"), nb::arg("free_slots"));
}
