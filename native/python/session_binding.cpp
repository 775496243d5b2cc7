// acre._native.Policy and Session: the binding of the core's policies and session (acre.h). It converts
// and does nothing else: statuses become acre.errors exceptions, and an exception a Python step or
// progress callback raised inside the core is raised again as it was.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "acre.h"
#include "binding.hpp"

namespace nb = nanobind;

namespace {

using acre_binding::Bundle;
using acre_binding::check;
using acre_binding::dlpack_of;
using acre_binding::Engine;
using acre_binding::Pot;
using acre_binding::raise;
using acre_binding::Store;
using acre_binding::Tokenizer;

using Ids = nb::ndarray<const int32_t, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
using Offsets = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;

nb::dict layout_dict(const acre_layout &l) {
  nb::dict d;
  d["sink"] = l.sink, d["l1"] = l.l1, d["recent"] = l.recent, d["refill"] = l.refill,
  d["question"] = l.question;
  return d;
}

struct Policy {
  acre_policy *handle = nullptr;
  explicit Policy(acre_policy *h) : handle(h) {}
  ~Policy() { acre_policy_free(handle); }
  Policy(const Policy &) = delete;
  Policy &operator=(const Policy &) = delete;
};

// What a progress callback is given, and what it raised (Ctrl-C included: signals are checked per chunk).
struct Progress {
  nb::object fn;
  std::unique_ptr<nb::python_error> pending;
};

int32_t call_progress(void *user, int64_t done, int64_t total) {
  auto *progress = static_cast<Progress *>(user);
  nb::gil_scoped_acquire gil;
  try {
    if (PyErr_CheckSignals() != 0) throw nb::python_error();
    if (progress->fn.is_valid() && !progress->fn.is_none()) progress->fn(done, total);
    return 0;
  } catch (nb::python_error &e) {
    progress->pending = std::make_unique<nb::python_error>(std::move(e));
  }
  return 1;
}

struct Rng {
  acre_rng *handle = nullptr;
  explicit Rng(acre_rng *h) : handle(h) {}
  ~Rng() { acre_rng_free(handle); }
  Rng(const Rng &) = delete;
  Rng &operator=(const Rng &) = delete;
};

using Logits = nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

struct Session {
  acre_session *handle = nullptr;
  nb::object bundle, pot, tokenizer, engine;  // borrowed by the core: kept alive here
  ~Session() { acre_session_free(handle); }

  // After a failed call: what a Python callback raised, else the core's error.
  void check_call(acre_status status, Progress *progress = nullptr) const {
    if (status == ACRE_OK) return;
    if (progress && progress->pending) {
      std::unique_ptr<nb::python_error> e = std::move(progress->pending);
      e->restore();
      throw nb::python_error();
    }
    if (engine.is_valid() && !engine.is_none()) nb::cast<const Engine &>(engine).raise_pending();
    check(status);
  }
};

nb::object numpy_copy(const acre_array &a, bool optional) {
  if (!a.data && optional) return nb::none();
  auto *held = new std::vector<uint8_t>(static_cast<const uint8_t *>(a.data),
                                        static_cast<const uint8_t *>(a.data) + a.info.bytes);
  nb::capsule owner(held, [](void *p) noexcept { delete static_cast<std::vector<uint8_t> *>(p); });
  std::vector<size_t> shape(a.info.dims, a.info.dims + a.info.rank);
  return nb::cast(nb::ndarray<nb::numpy>(held->data(), shape.size(), shape.data(), owner, nullptr,
                                         dlpack_of(a.info.dtype)));
}

}  // namespace

void register_session(nb::module_ &m) {
  nb::list names;
  for (size_t i = 0; acre_policy_name(i); ++i) names.append(acre_policy_name(i));
  m.attr("POLICIES") = nb::tuple(names);
  m.attr("CATALYST") = acre_catalyst();

  nb::class_<Rng>(m, "Rng", "numpy's default_rng(seed) stream (PCG64 through SeedSequence), in the core.")
      .def(
          "__init__",
          [](Rng *self, std::optional<uint64_t> seed) {
            acre_rng *h = nullptr;
            check(acre_rng_new(seed.has_value(), seed.value_or(0), &h));
            new (self) Rng(h);
          },
          nb::arg("seed").none() = nb::none())
      .def("uniform", [](Rng &r) { return acre_rng_uniform(r.handle); });
  m.def(
      "sample",
      [](const Logits &logits, double temperature, double top_p, Rng &rng) {
        int32_t token = -1;
        check(acre_sample(logits.data(), logits.shape(0), temperature, top_p, rng.handle, &token));
        return token;
      },
      nb::arg("logits"), nb::arg("temperature"), nb::arg("top_p"), nb::arg("rng"));

  nb::class_<Policy>(m, "Policy", "A policy of the core: a named base with switches turned.")
      .def(
          "__init__",
          [](Policy *self, const std::string &name, const std::string &switches_json) {
            acre_policy *h = nullptr;
            check(acre_policy_new(name.c_str(), switches_json.c_str(), &h));
            new (self) Policy(h);
          },
          nb::arg("name"), nb::arg("switches_json") = "{}")
      .def_prop_ro("json", [](const Policy &p) { return std::string(acre_policy_json(p.handle)); })
      .def(
          "layout",
          [](const Policy &p, int64_t capacity, int64_t chunk, int64_t span) {
            acre_layout l{};
            check(acre_policy_layout(p.handle, capacity, chunk, span, &l));
            return layout_dict(l);
          },
          nb::arg("capacity"), nb::arg("chunk"), nb::arg("span"));

  nb::class_<Session>(m, "Session", "A session of the core: one document's ingest, reopen and resume.")
      .def(
          "__init__",
          [](Session *self, nb::object bundle, nb::object pot, const Policy &policy, int32_t span_tokens,
             int32_t reps, std::optional<std::string> codec, int64_t checkpoint_tokens,
             const std::string &fingerprint, nb::object tokenizer) {
            acre_session_config c{};
            c.span_tokens = span_tokens, c.reps = reps, c.codec = codec ? codec->c_str() : nullptr;
            c.checkpoint_tokens = checkpoint_tokens, c.fingerprint = fingerprint.c_str();
            c.tokenizer = tokenizer.is_none() ? nullptr : nb::cast<const Tokenizer &>(tokenizer).handle;
            acre_session *h = nullptr;
            check(acre_session_new(nb::cast<const Bundle &>(bundle).handle, nb::cast<Pot &>(pot).handle,
                                   policy.handle, &c, &h));
            new (self) Session{h, bundle, pot, tokenizer, nb::none()};
          },
          nb::arg("bundle"), nb::arg("pot"), nb::arg("policy"), nb::arg("span_tokens"), nb::arg("reps"),
          nb::arg("codec").none(), nb::arg("checkpoint_tokens"), nb::arg("fingerprint"),
          nb::arg("tokenizer").none())
      .def(
          "set_engine",
          [](Session &s, nb::object engine) {
            check(acre_session_set_engine(
                s.handle, engine.is_none() ? nullptr : nb::cast<const Engine &>(engine).handle));
            s.engine = engine;
          },
          nb::arg("engine").none())
      .def(
          "ingest",
          [](Session &s, const Ids &ids, std::optional<std::string> store, bool resume, bool replace,
             std::optional<nb::bytes> text, std::optional<Offsets> offsets, nb::object progress) {
            if (text.has_value() != offsets.has_value())
              raise(ACRE_ERR_INVALID_ARGUMENT, "a document's text and offsets come together");
            if (offsets && (offsets->shape(0) != ids.shape(0) || offsets->shape(1) != 2))
              raise(ACRE_ERR_INVALID_ARGUMENT, "the source map covers " + std::to_string(offsets->shape(0)) +
                                                   " tokens, not " + std::to_string(ids.shape(0)));
            acre_document d{ids.data(), ids.shape(0), text ? text->c_str() : nullptr, text ? text->size() : 0,
                            offsets ? offsets->data() : nullptr};
            Progress p{progress, nullptr};
            int64_t n = 0;
            acre_status status;
            {
              nb::gil_scoped_release release;
              status = acre_session_ingest(s.handle, &d, store ? store->c_str() : nullptr, resume, replace,
                                           call_progress, &p, &n);
            }
            s.check_call(status, &p);
            return n;
          },
          nb::arg("ids"), nb::arg("store").none(), nb::arg("resume"), nb::arg("replace"),
          nb::arg("text").none(), nb::arg("offsets").none(), nb::arg("progress").none())
      .def(
          "open_document",
          [](Session &s, const std::string &store) {
            int64_t n = 0;
            acre_status status;
            {
              nb::gil_scoped_release release;
              status = acre_session_open_document(s.handle, store.c_str(), &n);
            }
            s.check_call(status);
            return n;
          },
          nb::arg("store"))
      .def(
          "store",
          [](const Session &s) -> nb::object {
            acre_store *h = nullptr;
            check(acre_session_store(s.handle, &h));
            if (!h) return nb::none();
            return nb::cast(new Store(h), nb::rv_policy::take_ownership);
          },
          "A new handle on the session's store (None if it has none).")
      .def("close_store", [](Session &s) { acre_session_close_store(s.handle); })
      .def_prop_ro("resumed_from",
                   [](const Session &s) -> std::optional<int64_t> {
                     const int64_t r = acre_session_resumed_from(s.handle);
                     return r < 0 ? std::nullopt : std::optional<int64_t>(r);
                   })
      .def_prop_ro("epoch", [](const Session &s) { return acre_session_epoch(s.handle); })
      .def_prop_ro("policy_json",
                   [](const Session &s) { return std::string(acre_session_policy_json(s.handle)); })
      .def_prop_ro("codec", [](const Session &s) { return std::string(acre_session_codec(s.handle)); })
      .def_prop_ro("layout",
                   [](const Session &s) {
                     acre_layout l{};
                     check(acre_session_layout(s.handle, &l));
                     return layout_dict(l);
                   })
      .def(
          "region",
          [](const Session &s, int kind) {
            int64_t first = 0, count = 0;
            check(acre_session_region(s.handle, acre_slot_kind(kind), &first, &count));
            return std::make_pair(first, count);
          },
          nb::arg("kind"))
      .def(
          "document",
          [](const Session &s) {
            acre_array ids{}, text{}, offsets{};
            check(acre_session_document(s.handle, &ids, &text, &offsets));
            nb::object t = text.data
                               ? nb::object(nb::bytes(static_cast<const char *>(text.data), text.info.bytes))
                               : nb::none();
            return nb::make_tuple(numpy_copy(ids, false), t, numpy_copy(offsets, true));
          },
          "(ids int32, text bytes or None, offsets int32 [n, 2] or None): copies.")
      .def(
          "set_template_ids",
          [](Session &s, const std::vector<int32_t> &ids) {
            check(acre_session_set_template_ids(s.handle, ids.data(), ids.size()));
          },
          nb::arg("ids"))
      .def(
          "set_stop_ids",
          [](Session &s, const std::vector<int32_t> &ids) {
            check(acre_session_set_stop_ids(s.handle, ids.data(), ids.size()));
          },
          nb::arg("ids"))
      .def(
          "ask",
          [](Session &s, const std::vector<int32_t> &question, const std::vector<int32_t> &selection,
             const std::vector<int64_t> &carried, int32_t max_new_tokens, double temperature, double top_p,
             std::optional<uint64_t> seed, bool stop_at_eos) {
            const acre_decoding d{max_new_tokens,   temperature,      top_p,
                                  seed.has_value(), seed.value_or(0), stop_at_eos};
            acre_status status;
            {
              nb::gil_scoped_release release;
              status = acre_session_ask(s.handle, question.data(), question.size(), selection.data(),
                                        selection.size(), carried.data(), carried.size(), &d);
            }
            s.check_call(status);
          },
          nb::arg("question"), nb::arg("selection"), nb::arg("carried"), nb::arg("max_new_tokens"),
          nb::arg("temperature"), nb::arg("top_p"), nb::arg("seed").none(), nb::arg("stop_at_eos"))
      .def("next",
           [](Session &s) -> std::optional<int32_t> {
             int32_t token = -1;
             acre_status status;
             {
               nb::gil_scoped_release release;
               status = acre_session_next(s.handle, &token);
             }
             s.check_call(status);
             return token < 0 ? std::nullopt : std::optional<int32_t>(token);
           })
      .def("last",
           [](const Session &s) {
             acre_question q{};
             check(acre_session_last(s.handle, &q));
             nb::dict d;
             d["spans"] = std::vector<int64_t>(q.spans, q.spans + q.n_spans);
             d["cores"] = std::vector<int64_t>(q.cores, q.cores + q.n_cores);
             if (q.n_scores) {
               auto *held = new std::vector<double>(q.span_scores, q.span_scores + q.n_scores);
               nb::capsule owner(held,
                                 [](void *p) noexcept { delete static_cast<std::vector<double> *>(p); });
               const size_t shape[1] = {held->size()};
               d["span_scores"] = nb::cast(nb::ndarray<nb::numpy, double>(held->data(), 1, shape, owner));
             } else {
               d["span_scores"] = nb::none();
             }
             d["prompt_ids"] = std::vector<int32_t>(q.prompt_ids, q.prompt_ids + q.n_prompt);
             d["bytes_read"] = q.bytes_read, d["read_s"] = q.read_s;
             return d;
           })
      .def_prop_ro("index_bytes", [](const Session &s) { return acre_session_index_bytes(s.handle); })
      .def("compact",
           [](Session &s) {
             int64_t next = 0;
             check(acre_session_compact(s.handle, &next));
             return next;
           })
      .def(
          "step",
          [](Session &s, const std::vector<int32_t> &ids, int64_t start) {
            nb::list out;
            const size_t n_outputs =
                s.engine.is_none() ? 0 : acre_engine_num_outputs(nb::cast<const Engine &>(s.engine).handle);
            std::vector<acre_array> outputs(n_outputs);
            acre_status status;
            {
              nb::gil_scoped_release release;
              status =
                  acre_session_step(s.handle, ids.data(), ids.size(), start, outputs.data(), outputs.size());
            }
            s.check_call(status);
            for (const acre_array &a : outputs) {
              std::vector<size_t> shape(a.info.dims, a.info.dims + a.info.rank);
              out.append(
                  nb::cast(nb::ndarray<nb::numpy>(const_cast<void *>(a.data), shape.size(), shape.data(),
                                                  nb::find(&s), nullptr, dlpack_of(a.info.dtype))));
            }
            return out;
          },
          nb::arg("ids"), nb::arg("start"),
          "One step; its outputs in manifest order, numpy views valid until the session's next step.");
}
