// The C ABI (acre.h) over the core's C++: handles own the C++ objects, every call catches what the
// core throws and turns it into a status and a thread-local message.
#include <cmath>
#include <cstring>
#include <new>

#include "acre.h"
#include "bundle.hpp"
#include "l2.hpp"
#include "lexical.hpp"
#include "policies.hpp"
#include "pot.hpp"
#include "sampling.hpp"
#include "selection.hpp"
#include "session.hpp"
#include "span_index.hpp"
#include "step.hpp"
#include "tokenizer.hpp"

struct acre_bundle {
  std::unique_ptr<acre::Bundle> impl;
  std::string fingerprint;
};
struct acre_tokenizer {
  std::unique_ptr<acre::Tokenizer> impl;
};
struct acre_engine {
  std::unique_ptr<acre::Engine> impl;
};
struct acre_store {
  std::shared_ptr<acre::Store> impl;  // shared with a session that writes it
};
struct acre_snapshot {
  std::unique_ptr<acre::Snapshot> impl;
};
struct acre_span_index {
  std::unique_ptr<acre::SpanIndex> impl;
};
struct acre_lexical {
  std::unique_ptr<acre::LexicalIndex> impl;
};
struct acre_pot {
  std::unique_ptr<acre::Pot> impl;
};
struct acre_policy {
  acre::Policy impl;
  std::string json;
};
struct acre_rng {
  acre::Rng impl;
};
struct acre_session {
  std::unique_ptr<acre::Session> impl;
  std::string policy_json;
};

namespace {

thread_local std::string last_error;

template <class F>
acre_status guard(F &&body) {
  try {
    body();
    return ACRE_OK;
  } catch (const acre::Error &e) {
    last_error = e.what();
    return e.status();
  } catch (const std::bad_alloc &) {
    last_error = "out of memory";
  } catch (const std::exception &e) {
    last_error = std::string("internal error: ") + e.what();
  } catch (...) {
    last_error = "internal error (unknown exception)";
  }
  return ACRE_ERR_INTERNAL;
}

void need(const void *p, const char *what) {
  if (!p) acre::fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " is NULL");
}

void info_of(const acre::TensorSpec &spec, acre_tensor_info *out) {
  if (spec.dims.size() > ACRE_MAX_DIMS)
    acre::fail(ACRE_ERR_UNSUPPORTED, spec.name + " has more than ACRE_MAX_DIMS dimensions");
  out->name = spec.name.c_str();
  out->dtype = spec.dtype;
  out->rank = static_cast<int32_t>(spec.dims.size());
  for (size_t i = 0; i < ACRE_MAX_DIMS; ++i) out->dims[i] = i < spec.dims.size() ? spec.dims[i] : 0;
  out->bytes = spec.bytes();
}

}  // namespace

extern "C" {

const char *acre_last_error(void) { return last_error.c_str(); }

const char *acre_status_name(acre_status status) {
  switch (status) {
    case ACRE_OK: return "ok";
    case ACRE_ERR_INVALID_ARGUMENT: return "invalid argument";
    case ACRE_ERR_BUNDLE: return "bundle";
    case ACRE_ERR_TOKENIZER: return "tokenizer";
    case ACRE_ERR_ENGINE: return "engine";
    case ACRE_ERR_UNSUPPORTED: return "unsupported";
    case ACRE_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case ACRE_ERR_INTERNAL: return "internal";
    case ACRE_ERR_STORE: return "store";
    case ACRE_ERR_CANCELLED: return "cancelled";
  }
  return "unknown status";
}

int32_t acre_abi_version(void) { return ACRE_ABI_VERSION; }

size_t acre_dtype_size(acre_dtype dtype) {
  switch (dtype) {
    case ACRE_DTYPE_FLOAT32:
    case ACRE_DTYPE_INT32: return 4;
    case ACRE_DTYPE_FLOAT16: return 2;
    case ACRE_DTYPE_INT64: return 8;
    case ACRE_DTYPE_UINT8:
    case ACRE_DTYPE_INT8:
    case ACRE_DTYPE_BOOL: return 1;
    default: return 0;
  }
}

const char *acre_dtype_name(acre_dtype dtype) {
  switch (dtype) {
    case ACRE_DTYPE_FLOAT32: return "float32";
    case ACRE_DTYPE_FLOAT16: return "float16";
    case ACRE_DTYPE_INT64: return "int64";
    case ACRE_DTYPE_INT32: return "int32";
    case ACRE_DTYPE_UINT8: return "uint8";
    case ACRE_DTYPE_BOOL: return "bool";
    case ACRE_DTYPE_INT8: return "int8";
    default: return "invalid";
  }
}

acre_dtype acre_dtype_from_name(const char *name) {
  for (int d = ACRE_DTYPE_FLOAT32; name && d <= ACRE_DTYPE_INT8; ++d)
    if (std::strcmp(name, acre_dtype_name(acre_dtype(d))) == 0) return acre_dtype(d);
  return ACRE_DTYPE_INVALID;
}

// ---- bundle

acre_status acre_bundle_open(const char *dir, int verify_checksums, acre_bundle **out) {
  return guard([&] {
    need(dir, "dir");
    need(out, "out");
    *out = nullptr;
    auto bundle = std::make_unique<acre_bundle>();
    bundle->impl = acre::open_bundle(dir, verify_checksums != 0);
    bundle->fingerprint = acre::bundle_fingerprint(*bundle->impl);
    *out = bundle.release();
  });
}

void acre_bundle_free(acre_bundle *bundle) { delete bundle; }

const char *acre_bundle_root(const acre_bundle *bundle) { return bundle ? bundle->impl->root.c_str() : ""; }

const char *acre_bundle_manifest_json(const acre_bundle *bundle) {
  return bundle ? bundle->impl->manifest_text.c_str() : "";
}

const char *acre_bundle_fingerprint(const acre_bundle *bundle) {
  return bundle ? bundle->fingerprint.c_str() : "";
}

acre_status acre_bundle_geometry(const acre_bundle *bundle, acre_geometry *out) {
  return guard([&] {
    need(bundle, "bundle");
    need(out, "out");
    *out = bundle->impl->geometry;
  });
}

acre_status acre_bundle_program_path(const acre_bundle *bundle, const char *engine, const char **path) {
  return guard([&] {
    need(bundle, "bundle");
    need(engine, "engine");
    need(path, "path");
    *path = bundle->impl->program_path(engine).c_str();
  });
}

// ---- tokenizer

acre_status acre_tokenizer_open(const char *tokenizer_json_path, acre_tokenizer **out) {
  return guard([&] {
    need(tokenizer_json_path, "tokenizer_json_path");
    need(out, "out");
    *out = nullptr;
    auto tokenizer = std::make_unique<acre_tokenizer>();
    tokenizer->impl = std::make_unique<acre::Tokenizer>(tokenizer_json_path);
    *out = tokenizer.release();
  });
}

acre_status acre_bundle_tokenizer(const acre_bundle *bundle, acre_tokenizer **out) {
  if (!bundle) return guard([] { need(nullptr, "bundle"); });
  return acre_tokenizer_open((bundle->impl->tokenizer_dir + "/tokenizer.json").c_str(), out);
}

void acre_tokenizer_free(acre_tokenizer *tokenizer) { delete tokenizer; }

int32_t acre_tokenizer_vocab_size(const acre_tokenizer *tokenizer) {
  return tokenizer ? tokenizer->impl->vocab_size() : 0;
}

namespace {

// acre_tokenize with or without offsets: one size check, one copy out
acre_status tokenize(const acre_tokenizer *tokenizer, const char *text, size_t text_len, int32_t *ids,
                     bool with_offsets, uint32_t *offsets, size_t capacity, size_t *n_ids) {
  return guard([&] {
    need(tokenizer, "tokenizer");
    need(n_ids, "n_ids");
    if (text_len) need(text, "text");
    std::vector<std::pair<uint32_t, uint32_t>> spans;
    const auto encoded = tokenizer->impl->encode(std::string_view(text ? text : "", text_len),
                                                 with_offsets ? &spans : nullptr);
    *n_ids = encoded.size();
    if (encoded.size() > capacity)
      acre::fail(ACRE_ERR_BUFFER_TOO_SMALL, "the text encodes to " + std::to_string(encoded.size()) +
                                                " ids, the buffer holds " + std::to_string(capacity));
    if (encoded.empty()) return;
    need(ids, "ids");
    if (with_offsets) need(offsets, "offsets");
    std::memcpy(ids, encoded.data(), encoded.size() * sizeof(int32_t));
    for (size_t i = 0; with_offsets && i < spans.size(); ++i) {
      offsets[2 * i] = spans[i].first;
      offsets[2 * i + 1] = spans[i].second;
    }
  });
}

}  // namespace

acre_status acre_tokenize(const acre_tokenizer *tokenizer, const char *text, size_t text_len, int32_t *ids,
                          size_t capacity, size_t *n_ids) {
  return tokenize(tokenizer, text, text_len, ids, false, nullptr, capacity, n_ids);
}

acre_status acre_tokenize_offsets(const acre_tokenizer *tokenizer, const char *text, size_t text_len,
                                  int32_t *ids, uint32_t *offsets, size_t capacity, size_t *n_ids) {
  return tokenize(tokenizer, text, text_len, ids, true, offsets, capacity, n_ids);
}

acre_status acre_detokenize(const acre_tokenizer *tokenizer, const int32_t *ids, size_t n_ids,
                            int skip_special, char *out, size_t capacity, size_t *n_bytes) {
  return guard([&] {
    need(tokenizer, "tokenizer");
    need(n_bytes, "n_bytes");
    if (n_ids) need(ids, "ids");
    const std::string text = tokenizer->impl->decode(ids, n_ids, skip_special != 0);
    *n_bytes = text.size();
    if (text.size() > capacity)
      acre::fail(ACRE_ERR_BUFFER_TOO_SMALL, "the text is " + std::to_string(text.size()) +
                                                " bytes, the buffer holds " + std::to_string(capacity));
    if (!text.empty()) {
      need(out, "out");
      std::memcpy(out, text.data(), text.size());
    }
  });
}

acre_status acre_token_to_id(const acre_tokenizer *tokenizer, const char *token, int32_t *id) {
  return guard([&] {
    need(tokenizer, "tokenizer");
    need(token, "token");
    need(id, "id");
    if (!tokenizer->impl->token_to_id(token, id))
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, std::string("no token ") + token + " in the vocabulary");
  });
}

// ---- engine

acre_status acre_engine_open_executorch(const acre_bundle *bundle, acre_engine **out) {
  return guard([&] {
    need(bundle, "bundle");
    need(out, "out");
    *out = nullptr;
    auto engine = std::make_unique<acre_engine>();
    engine->impl = acre::open_executorch_engine(*bundle->impl);
    *out = engine.release();
  });
}

acre_status acre_engine_open_callback(const acre_bundle *bundle, acre_step_fn step, void *user,
                                      void (*free_user)(void *user), acre_engine **out) {
  return guard([&] {
    if (!bundle || !out) {
      if (free_user) free_user(user);
      need(bundle, "bundle");
      need(out, "out");
    }
    *out = nullptr;
    auto engine = std::make_unique<acre_engine>();
    engine->impl = acre::open_callback_engine(*bundle->impl, step, user, free_user);
    *out = engine.release();
  });
}

void acre_engine_free(acre_engine *engine) { delete engine; }

const char *acre_engine_name(const acre_engine *engine) { return engine ? engine->impl->name() : ""; }

size_t acre_engine_planned_bytes(const acre_engine *engine) {
  return engine ? engine->impl->planned_bytes() : 0;
}

uint64_t acre_engine_calls(const acre_engine *engine, int32_t rows) {
  if (!engine) return 0;
  for (const acre::Engine::Method &m : engine->impl->methods())
    if (m.rows == rows) return m.calls;
  return 0;
}

size_t acre_engine_num_inputs(const acre_engine *engine) { return engine ? engine->impl->num_inputs() : 0; }

size_t acre_engine_num_outputs(const acre_engine *engine) { return engine ? engine->impl->num_outputs() : 0; }

acre_status acre_engine_input_info(const acre_engine *engine, int32_t rows, size_t index,
                                   acre_tensor_info *out) {
  return guard([&] {
    need(engine, "engine");
    need(out, "out");
    const auto &specs = engine->impl->method(rows).inputs;
    if (index >= specs.size())
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "input index " + std::to_string(index) + " out of range");
    info_of(specs[index], out);
  });
}

acre_status acre_engine_output_info(const acre_engine *engine, int32_t rows, size_t index,
                                    acre_tensor_info *out) {
  return guard([&] {
    need(engine, "engine");
    need(out, "out");
    const auto &specs = engine->impl->method(rows).outputs;
    if (index >= specs.size())
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "output index " + std::to_string(index) + " out of range");
    info_of(specs[index], out);
  });
}

acre_status acre_engine_step(acre_engine *engine, int32_t rows, const acre_buffer *inputs, size_t n_inputs,
                             const acre_buffer *outputs, size_t n_outputs) {
  return guard([&] {
    need(engine, "engine");
    engine->impl->step(rows, inputs, n_inputs, outputs, n_outputs);
  });
}

// ---- L2 store

namespace {

acre::Store &store_of(const acre_store *store) {
  need(store, "store");
  return *store->impl;
}

std::vector<acre_array> arrays_of(const acre_array *arrays, size_t n) {
  if (n) need(arrays, "arrays");
  return std::vector<acre_array>(arrays, arrays + n);
}

void need_bytes(const acre_buffer *buffer, size_t bytes, const char *what) {
  need(buffer, what);
  if (buffer->bytes != bytes || (bytes && !buffer->data))
    acre::fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " must be " + std::to_string(bytes) +
                                              " bytes, not " + std::to_string(buffer->bytes));
}

void take_snapshot(std::unique_ptr<acre::Snapshot> snapshot, acre_snapshot **out) {
  if (snapshot) {
    *out = new acre_snapshot;
    (*out)->impl = std::move(snapshot);
  }
}

}  // namespace

const char *acre_store_codec_name(size_t index) {
  return index < std::size(acre::CODECS) ? acre::CODECS[index] : nullptr;
}

acre_status acre_store_record_bytes(const acre_store_meta *meta, size_t *out) {
  return guard([&] {
    need(meta, "meta");
    need(out, "out");
    *out = acre::store_meta(*meta).record_bytes();
  });
}

acre_status acre_store_peek(const char *dir, char *out, size_t capacity, size_t *n_bytes) {
  return guard([&] {
    need(dir, "dir");
    need(n_bytes, "n_bytes");
    const std::string text = acre::peek_store(dir);
    *n_bytes = text.size();
    if (text.size() > capacity)
      acre::fail(ACRE_ERR_BUFFER_TOO_SMALL, "store.json is " + std::to_string(text.size()) +
                                                " bytes, the buffer holds " + std::to_string(capacity));
    if (!text.empty()) {
      need(out, "out");
      std::memcpy(out, text.data(), text.size());
    }
  });
}

acre_status acre_store_create(const char *dir, const acre_store_meta *meta, const char *document_sha256,
                              acre_store **out) {
  return guard([&] {
    need(dir, "dir");
    need(meta, "meta");
    need(out, "out");
    *out = nullptr;
    auto store = std::make_unique<acre_store>();
    store->impl = acre::Store::create(dir, acre::store_meta(*meta), document_sha256);
    *out = store.release();
  });
}

acre_status acre_store_open(const char *dir, const char *fingerprint, int writable, acre_store **out) {
  return guard([&] {
    need(dir, "dir");
    need(out, "out");
    *out = nullptr;
    auto store = std::make_unique<acre_store>();
    store->impl = acre::Store::open(dir, fingerprint, writable != 0);
    *out = store.release();
  });
}

void acre_store_free(acre_store *store) { delete store; }

acre_status acre_store_get_meta(const acre_store *store, acre_store_meta *out) {
  return guard([&] {
    need(out, "out");
    const acre::StoreMeta &m = store_of(store).meta();
    *out = {m.fingerprint.c_str(), m.span_tokens, m.layers,       m.kv_heads, m.head_dim,
            m.probe_layers,        m.reps,        m.codec.c_str()};
  });
}

const char *acre_store_dir(const acre_store *store) { return store ? store->impl->dir().c_str() : ""; }

const char *acre_store_info_json(const acre_store *store) {
  return store ? store->impl->info_json().c_str() : "";
}

size_t acre_store_span_count(const acre_store *store) { return store ? store->impl->span_count() : 0; }

acre_status acre_store_span(const acre_store *store, size_t span, int64_t *start, int32_t *n_tokens) {
  return guard([&] {
    need(start, "start");
    need(n_tokens, "n_tokens");
    const acre::Store &s = store_of(store);
    if (span >= s.span_count())
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "span " + std::to_string(span) + " does not exist");
    *start = s.start(span);
    *n_tokens = s.length(span);
  });
}

uint64_t acre_store_bytes_read(const acre_store *store) { return store ? store->impl->bytes_read() : 0; }

uint64_t acre_store_disk_bytes(const acre_store *store) { return store ? store->impl->disk_bytes() : 0; }

acre_status acre_store_append(acre_store *store, int64_t start, const acre_array *tokens, const acre_array *k,
                              const acre_array *v, const acre_array *reps) {
  return guard([&] {
    need(tokens, "tokens");
    need(reps, "reps");
    store_of(store).append(start, *tokens, k, v, *reps);
  });
}

acre_status acre_store_read(acre_store *store, size_t span, const acre_buffer *tokens, const acre_buffer *k,
                            const acre_buffer *v) {
  return guard([&] {
    acre::Store &s = store_of(store);
    if (span < s.span_count() && s.meta().keeps_kv()) {
      const acre::StoreMeta &m = s.meta();
      const size_t n = size_t(s.length(span));
      need_bytes(tokens, 4 * n, "tokens");
      need_bytes(k, 4 * n * (m.kv_values() / size_t(m.span_tokens)), "k");
      need_bytes(v, 4 * n * (m.kv_values() / size_t(m.span_tokens)), "v");
    }
    s.read(span, tokens ? static_cast<int32_t *>(tokens->data) : nullptr,
           k ? static_cast<float *>(k->data) : nullptr, v ? static_cast<float *>(v->data) : nullptr);
  });
}

acre_status acre_store_read_tokens(acre_store *store, size_t span, const acre_buffer *tokens) {
  return guard([&] {
    acre::Store &s = store_of(store);
    if (span < s.span_count()) need_bytes(tokens, 4 * size_t(s.length(span)), "tokens");
    s.read_tokens(span, tokens ? static_cast<int32_t *>(tokens->data) : nullptr);
  });
}

acre_status acre_store_read_reps(acre_store *store, size_t first, size_t count, const acre_buffer *out) {
  return guard([&] {
    acre::Store &s = store_of(store);
    need_bytes(out, count * s.meta().reps_bytes(), "out");
    s.read_reps(first, count, static_cast<uint16_t *>(out->data));
  });
}

acre_status acre_store_finish(acre_store *store, const acre_array *arrays, size_t n_arrays,
                              const char *extra_json) {
  return guard([&] { store_of(store).finish(arrays_of(arrays, n_arrays), extra_json ? extra_json : "{}"); });
}

acre_status acre_store_checkpoint(acre_store *store, const acre_array *arrays, size_t n_arrays,
                                  const char *info_json) {
  return guard(
      [&] { store_of(store).checkpoint(arrays_of(arrays, n_arrays), info_json ? info_json : "{}"); });
}

acre_status acre_store_truncate(acre_store *store, size_t spans) {
  return guard([&] { store_of(store).truncate(spans); });
}

acre_status acre_store_load_pot(const acre_store *store, acre_snapshot **out) {
  return guard([&] {
    need(out, "out");
    *out = nullptr;
    take_snapshot(store_of(store).load_pot(), out);
  });
}

acre_status acre_store_load_checkpoint(const acre_store *store, acre_snapshot **out) {
  return guard([&] {
    need(out, "out");
    *out = nullptr;
    take_snapshot(store_of(store).load_checkpoint(), out);
  });
}

size_t acre_snapshot_count(const acre_snapshot *snapshot) {
  return snapshot ? snapshot->impl->arrays.size() : 0;
}

acre_status acre_snapshot_array(const acre_snapshot *snapshot, size_t index, acre_array *out) {
  return guard([&] {
    need(snapshot, "snapshot");
    need(out, "out");
    const auto &arrays = snapshot->impl->arrays;
    if (index >= arrays.size())
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "array index " + std::to_string(index) + " out of range");
    const acre::NamedArray &a = arrays[index];
    *out = {};
    out->info.name = a.name.c_str();
    out->info.dtype = a.dtype;
    out->info.rank = int32_t(a.dims.size());
    for (size_t i = 0; i < a.dims.size(); ++i) out->info.dims[i] = a.dims[i];
    out->info.bytes = a.data.size();
    out->data = a.data.data();
  });
}

const char *acre_snapshot_info_json(const acre_snapshot *snapshot) {
  return snapshot ? snapshot->impl->info_json.c_str() : "";
}

void acre_snapshot_free(acre_snapshot *snapshot) { delete snapshot; }

// ---- span selection

namespace {

// The dims of an array of this dtype and rank given through the C ABI (its bytes and data checked).
std::vector<int64_t> dims_of(const acre_array *a, const char *what, acre_dtype dtype, int32_t rank) {
  need(a, what);
  const acre_tensor_info &info = a->info;
  if (info.dtype != dtype || info.rank != rank)
    acre::fail(ACRE_ERR_INVALID_ARGUMENT,
               std::string(what) + " must be " + acre_dtype_name(dtype) + " of rank " + std::to_string(rank) +
                   ", not " + acre_dtype_name(info.dtype) + " of rank " + std::to_string(info.rank));
  size_t count = 1;
  for (int32_t i = 0; i < rank; ++i) {
    if (info.dims[i] < 0)
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " has a negative dimension");
    count *= size_t(info.dims[i]);
  }
  if (info.bytes != count * acre_dtype_size(dtype))
    acre::fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + ": " + std::to_string(info.bytes) +
                                              " bytes for its shape's " +
                                              std::to_string(count * acre_dtype_size(dtype)));
  if (count) need(a->data, what);
  return {info.dims, info.dims + rank};
}

void need_values(const void *p, size_t n, const char *what) {
  if (n) need(p, what);
}

void need_count(size_t got, size_t want, const char *what) {
  if (got != want)
    acre::fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " holds " + std::to_string(got) +
                                              " values for " + std::to_string(want) + " spans");
}

void put(const std::vector<int64_t> &values, int64_t *out, size_t *n) {
  std::copy(values.begin(), values.end(), out);
  *n = values.size();
}

}  // namespace

acre_status acre_representatives(const acre_array *keys, int32_t reps, const acre_buffer *out) {
  return guard([&] {
    const std::vector<int64_t> d = dims_of(keys, "keys", ACRE_DTYPE_FLOAT32, 4);
    if (reps < 1)
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, std::to_string(reps) + " representatives per head; at least 1");
    need_bytes(out, size_t(d[0] * d[1] * reps * d[3]) * 4, "out");
    acre::representatives(static_cast<const float *>(keys->data), d[0], d[1], d[2], d[3], reps,
                          static_cast<float *>(out->data));
  });
}

acre_status acre_probe_queries(const acre_array *queries, double share, int64_t *picks, size_t capacity,
                               size_t *n_picks) {
  return guard([&] {
    const std::vector<int64_t> d = dims_of(queries, "queries", ACRE_DTYPE_FLOAT32, 4);
    need(n_picks, "n_picks");
    const std::vector<int64_t> got =
        acre::probe_queries(static_cast<const float *>(queries->data), d[0], d[1], d[2], d[3], share);
    *n_picks = got.size();
    if (got.size() > capacity)
      acre::fail(ACRE_ERR_BUFFER_TOO_SMALL,
                 std::to_string(got.size()) + " probe queries for room for " + std::to_string(capacity));
    need(picks, "picks");
    put(got, picks, n_picks);
  });
}

acre_status acre_span_index_new(const acre_array *reps, int32_t fanout, acre_span_index **out) {
  return guard([&] {
    need(out, "out");
    *out = nullptr;
    const std::vector<int64_t> d = dims_of(reps, "reps", ACRE_DTYPE_FLOAT16, 5);
    const auto *bits = static_cast<const uint16_t *>(reps->data);
    std::vector<uint16_t> entries(bits, bits + reps->info.bytes / 2);
    auto index = std::make_unique<acre_span_index>();
    index->impl = std::make_unique<acre::SpanIndex>(acre::IndexShape{d[1], d[2], d[3], d[4]},
                                                    std::move(entries), fanout);
    *out = index.release();
  });
}

acre_status acre_span_index_from_store(acre_store *store, int32_t fanout, acre_span_index **out) {
  return guard([&] {
    need(out, "out");
    *out = nullptr;
    acre::Store &s = store_of(store);
    const acre::StoreMeta &m = s.meta();
    std::vector<uint16_t> entries(s.span_count() * m.reps_bytes() / 2);
    s.read_reps(0, s.span_count(), entries.data());
    auto index = std::make_unique<acre_span_index>();
    index->impl = std::make_unique<acre::SpanIndex>(
        acre::IndexShape{m.probe_layers, m.kv_heads, m.reps, m.head_dim}, std::move(entries), fanout);
    *out = index.release();
  });
}

void acre_span_index_free(acre_span_index *index) { delete index; }

size_t acre_span_index_span_count(const acre_span_index *index) { return index ? index->impl->spans() : 0; }

size_t acre_span_index_bytes(const acre_span_index *index) { return index ? index->impl->bytes() : 0; }

acre_status acre_span_index_shape(const acre_span_index *index, int64_t dims[4]) {
  return guard([&] {
    need(index, "index");
    need(dims, "dims");
    const acre::IndexShape &shape = index->impl->shape();
    dims[0] = shape.probe_layers, dims[1] = shape.kv_heads, dims[2] = shape.reps, dims[3] = shape.head_dim;
  });
}

size_t acre_span_index_levels(const acre_span_index *index) { return index ? index->impl->levels() : 0; }

size_t acre_span_index_level_size(const acre_span_index *index, size_t level) {
  return index && level < index->impl->levels() ? index->impl->level_size(level) : 0;
}

acre_status acre_span_index_level_reps(const acre_span_index *index, size_t level, const acre_buffer *out) {
  return guard([&] {
    need(index, "index");
    if (level >= index->impl->levels())
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "level " + std::to_string(level) + " of a span index of " +
                                                std::to_string(index->impl->levels()) + " levels");
    const std::vector<uint16_t> &entries = index->impl->level(level);
    need(out, "out");
    need_bytes(out, 2 * entries.size(), "out");
    std::copy(entries.begin(), entries.end(), static_cast<uint16_t *>(out->data));
  });
}

acre_status acre_span_index_scores(const acre_span_index *index, const acre_array *queries,
                                   const int32_t *heads, size_t n_heads, int32_t beam, int tree,
                                   double *scores, size_t n_scores) {
  return guard([&] {
    need(index, "index");
    const acre::SpanIndex &ix = *index->impl;
    const std::vector<int64_t> d = dims_of(queries, "queries", ACRE_DTYPE_FLOAT32, 4);
    if (d[0] != ix.shape().probe_layers || d[3] != ix.shape().head_dim)
      acre::fail(ACRE_ERR_INVALID_ARGUMENT,
                 "queries [Lp, H, T, D] = [" + std::to_string(d[0]) + ", " + std::to_string(d[1]) + ", " +
                     std::to_string(d[2]) + ", " + std::to_string(d[3]) + "] for an index of " +
                     std::to_string(ix.shape().probe_layers) + " probe layers and head_dim " +
                     std::to_string(ix.shape().head_dim));
    need_values(heads, n_heads, "heads");
    std::vector<acre::Head> use;
    for (size_t i = 0; i < n_heads; ++i) use.emplace_back(heads[2 * i], heads[2 * i + 1]);
    need_count(n_scores, ix.spans(), "scores");
    need(scores, "scores");
    ix.scores(static_cast<const float *>(queries->data), d[1], d[2], use, beam, tree != 0, scores);
  });
}

acre_status acre_lexical_new(const int32_t *document_ids, size_t n_ids, int32_t span_tokens,
                             acre_lexical **out) {
  return guard([&] {
    need(out, "out");
    *out = nullptr;
    need_values(document_ids, n_ids, "document_ids");
    auto lexical = std::make_unique<acre_lexical>();
    lexical->impl = std::make_unique<acre::LexicalIndex>(document_ids, n_ids, span_tokens);
    *out = lexical.release();
  });
}

void acre_lexical_free(acre_lexical *lexical) { delete lexical; }

size_t acre_lexical_span_count(const acre_lexical *lexical) { return lexical ? lexical->impl->spans() : 0; }

size_t acre_lexical_bytes(const acre_lexical *lexical) { return lexical ? lexical->impl->bytes() : 0; }

acre_status acre_lexical_scores(const acre_lexical *lexical, const int32_t *query_ids, size_t n_query,
                                double *scores, size_t n_scores) {
  return guard([&] {
    need(lexical, "lexical");
    need_values(query_ids, n_query, "query_ids");
    need_count(n_scores, lexical->impl->spans(), "scores");
    need(scores, "scores");
    lexical->impl->scores(query_ids, n_query, scores);
  });
}

acre_status acre_standardised(const double *x, size_t n, double *out) {
  return guard([&] {
    need_values(x, n, "x");
    need_values(out, n, "out");
    const std::vector<double> z = acre::standardised(x, n);
    std::copy(z.begin(), z.end(), out);
  });
}

acre_status acre_combine_scores(const double *attention, const double *index_z, const double *lexical,
                                size_t n, double *out) {
  return guard([&] {
    const std::vector<double> total = acre::combine_scores(attention, index_z, lexical, n);
    need(out, "out");
    std::copy(total.begin(), total.end(), out);
  });
}

acre_status acre_core_spans(const double *scores, size_t n, int32_t budget, double mass, int32_t min_spans,
                            int64_t *cores, size_t *n_cores) {
  return guard([&] {
    need_values(scores, n, "scores");
    need(n_cores, "n_cores");
    const std::vector<int64_t> got = acre::core_spans(scores, n, budget, mass, min_spans);
    if (!got.empty()) need(cores, "cores");
    put(got, cores, n_cores);
  });
}

acre_status acre_choose_spans(const double *scores, size_t n, int32_t budget, double mass, int32_t min_spans,
                              int32_t neighbors, const int64_t *carried, size_t n_carried, int64_t *chosen,
                              size_t *n_chosen, int64_t *about, size_t *n_about) {
  return guard([&] {
    need_values(scores, n, "scores");
    need_values(carried, n_carried, "carried");
    need(n_chosen, "n_chosen");
    need(n_about, "n_about");
    const acre::Choice choice =
        acre::choose_spans(scores, n, budget, mass, min_spans, neighbors, carried, n_carried);
    if (!choice.spans.empty()) need(chosen, "chosen"), need(about, "about");
    put(choice.spans, chosen, n_chosen);
    put(choice.about, about, n_about);
  });
}

acre_status acre_refill_placement(const int64_t *spans, size_t n_spans, const int64_t *starts,
                                  const int32_t *lengths, size_t n_store_spans, const int64_t *resident,
                                  size_t n_resident, const int64_t *free_slots, size_t n_free, int64_t *slots,
                                  int64_t *tokens, size_t *n_placed) {
  return guard([&] {
    need_values(spans, n_spans, "spans");
    need_values(starts, n_store_spans, "starts");
    need_values(lengths, n_store_spans, "lengths");
    need_values(resident, n_resident, "resident");
    need_values(free_slots, n_free, "free_slots");
    need(n_placed, "n_placed");
    const acre::Placement placed = acre::refill_placement(spans, n_spans, starts, lengths, n_store_spans,
                                                          resident, n_resident, free_slots, n_free);
    if (!placed.tokens.empty()) need(slots, "slots"), need(tokens, "tokens");
    put(placed.slots, slots, n_placed);
    put(placed.tokens, tokens, n_placed);
  });
}

// ---- the pot

namespace {

acre::Pot &pot_of(acre_pot *pot) {
  need(pot, "pot");
  return *pot->impl;
}

const acre::Pot &const_pot_of(const acre_pot *pot) {
  need(pot, "pot");
  return *pot->impl;
}

// kinds as the pot keeps them (int8); their values are checked by the pot
std::vector<int8_t> kinds_of(const acre_slot_kind *kinds, size_t n) {
  need_values(kinds, n, "kinds");
  std::vector<int8_t> out(n);
  for (size_t i = 0; i < n; ++i)
    out[i] = kinds[i] >= -128 && kinds[i] <= 127 ? int8_t(kinds[i]) : int8_t(-1);  // -1: refused by name
  return out;
}

// rows [L, Hkv, n, D] of the pot's dtype
void need_rows(const acre_array *a, const char *what, const acre::Pot &p, size_t n) {
  const std::vector<int64_t> d = dims_of(a, what, p.kv_dtype(), 4);
  const acre::PotShape &s = p.shape();
  if (d[0] != s.layers || d[1] != s.kv_heads || d[2] != int64_t(n) || d[3] != s.head_dim)
    acre::fail(ACRE_ERR_INVALID_ARGUMENT,
               std::string(what) + " is [" + std::to_string(d[0]) + ", " + std::to_string(d[1]) + ", " +
                   std::to_string(d[2]) + ", " + std::to_string(d[3]) + "], not [L, Hkv, n, D] = [" +
                   std::to_string(s.layers) + ", " + std::to_string(s.kv_heads) + ", " + std::to_string(n) +
                   ", " + std::to_string(s.head_dim) + "]");
}

void put_slots(const std::vector<int64_t> &got, int64_t *slots, size_t capacity, size_t *n_slots) {
  need(n_slots, "n_slots");
  *n_slots = got.size();
  if (got.size() > capacity)
    acre::fail(ACRE_ERR_BUFFER_TOO_SMALL,
               std::to_string(got.size()) + " slots for room for " + std::to_string(capacity));
  need_values(slots, got.size(), "slots");
  std::copy(got.begin(), got.end(), slots);
}

}  // namespace

acre_status acre_pot_new(int32_t layers, int32_t kv_heads, int32_t capacity, int32_t head_dim,
                         acre_dtype kv_dtype, const double *inv_freq, size_t n_freq, acre_pot **out) {
  return guard([&] {
    need(out, "out");
    *out = nullptr;
    need_values(inv_freq, n_freq, "inv_freq");
    auto pot = std::make_unique<acre_pot>();
    pot->impl = std::make_unique<acre::Pot>(acre::PotShape{layers, kv_heads, capacity, head_dim}, kv_dtype,
                                            std::vector<double>(inv_freq, inv_freq + n_freq));
    *out = pot.release();
  });
}

void acre_pot_free(acre_pot *pot) { delete pot; }

size_t acre_pot_capacity(const acre_pot *pot) { return pot ? size_t(pot->impl->shape().capacity) : 0; }

size_t acre_pot_bytes(const acre_pot *pot) { return pot ? pot->impl->bytes() : 0; }

size_t acre_pot_used(const acre_pot *pot) { return pot ? pot->impl->used() : 0; }

acre_status acre_pot_array(const acre_pot *pot, size_t index, acre_array *out) {
  return guard([&] {
    const acre::Pot &p = const_pot_of(pot);
    need(out, "out");
    *out = p.array(index);
  });
}

acre_status acre_pot_write(acre_pot *pot, const int64_t *slots, size_t n, const acre_array *k,
                           const acre_array *v, const int64_t *positions, acre_slot_kind kind,
                           const int64_t *tokens) {
  return guard([&] {
    acre::Pot &p = pot_of(pot);
    need_values(slots, n, "slots");
    need_rows(k, "k", p, n);
    need_rows(v, "v", p, n);
    const int8_t kind8 = kinds_of(&kind, 1)[0];
    p.write(slots, n, k->data, v->data, positions, kind8, tokens);
  });
}

acre_status acre_pot_clear(acre_pot *pot, const int64_t *slots, size_t n) {
  return guard([&] {
    acre::Pot &p = pot_of(pot);
    need_values(slots, n, "slots");
    p.clear(slots, n);
  });
}

acre_status acre_pot_show(acre_pot *pot, const int64_t *slots, size_t n, int visible) {
  return guard([&] {
    acre::Pot &p = pot_of(pot);
    need_values(slots, n, "slots");
    p.show(slots, n, visible != 0);
  });
}

acre_status acre_pot_move(acre_pot *pot, const int64_t *slots, size_t n, const int64_t *positions) {
  return guard([&] {
    acre::Pot &p = pot_of(pot);
    need_values(slots, n, "slots");
    need_values(positions, n, "positions");
    p.move(slots, n, positions);
  });
}

acre_status acre_pot_compact(acre_pot *pot, const acre_slot_kind *kinds, size_t n_kinds,
                             int64_t *next_position) {
  return guard([&] {
    acre::Pot &p = pot_of(pot);
    need(next_position, "next_position");
    const std::vector<int8_t> k = kinds_of(kinds, n_kinds);
    *next_position = p.compact(k.data(), k.size());
  });
}

acre_status acre_pot_unrotated(const acre_pot *pot, const int32_t *layers, size_t n_layers,
                               const int64_t *slots, size_t n, const acre_buffer *out) {
  return guard([&] {
    const acre::Pot &p = const_pot_of(pot);
    need_values(layers, n_layers, "layers");
    if (!n_layers) acre::fail(ACRE_ERR_INVALID_ARGUMENT, "no layers given");
    need_values(slots, n, "slots");
    const acre::PotShape &s = p.shape();
    need_bytes(out, n_layers * size_t(s.kv_heads) * n * size_t(s.head_dim) * 4, "out");
    p.unrotated(layers, n_layers, slots, n, static_cast<float *>(out->data));
  });
}

acre_status acre_pot_unrotate(const acre_pot *pot, const acre_array *keys, const int64_t *positions,
                              const acre_buffer *out) {
  return guard([&] {
    const acre::Pot &p = const_pot_of(pot);
    need(keys, "keys");
    const acre_dtype dtype = keys->info.dtype == ACRE_DTYPE_FLOAT16 ? ACRE_DTYPE_FLOAT16 : ACRE_DTYPE_FLOAT32;
    const std::vector<int64_t> d = dims_of(keys, "keys", dtype, 4);
    const acre::PotShape &s = p.shape();
    if (d[1] != s.kv_heads || d[3] != s.head_dim)
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "keys have " + std::to_string(d[1]) + " heads of " +
                                                std::to_string(d[3]) + " values; the pot has " +
                                                std::to_string(s.kv_heads) + " of " +
                                                std::to_string(s.head_dim));
    need_values(positions, size_t(d[2]), "positions");
    need_bytes(out, size_t(d[0] * d[1] * d[2] * d[3]) * 4, "out");
    p.unrotate(keys->data, dtype, d[0], size_t(d[2]), positions, static_cast<float *>(out->data));
  });
}

acre_status acre_pot_free_slots(const acre_pot *pot, int64_t first, int64_t count, int64_t *slots,
                                size_t capacity, size_t *n_slots) {
  return guard([&] { put_slots(const_pot_of(pot).free_slots(first, count), slots, capacity, n_slots); });
}

acre_status acre_pot_slots_of(const acre_pot *pot, const acre_slot_kind *kinds, size_t n_kinds,
                              int64_t *slots, size_t capacity, size_t *n_slots) {
  return guard([&] {
    const acre::Pot &p = const_pot_of(pot);
    const std::vector<int8_t> k = kinds_of(kinds, n_kinds);
    put_slots(p.slots_of(k.data(), k.size()), slots, capacity, n_slots);
  });
}

acre_status acre_pot_restore(acre_pot *pot, const acre_array *arrays, size_t n_arrays) {
  return guard([&] {
    acre::Pot &p = pot_of(pot);
    need_values(arrays, n_arrays, "arrays");
    p.restore(arrays, n_arrays);
  });
}

// ---- policies

const char *acre_policy_name(size_t index) {
  return index < std::size(acre::POLICY_NAMES) ? acre::POLICY_NAMES[index] : nullptr;
}

const char *acre_catalyst(void) { return acre::CATALYST; }

acre_status acre_policy_new(const char *name, const char *switches_json, acre_policy **out) {
  return guard([&] {
    need(name, "name");
    need(out, "out");
    *out = nullptr;
    nlohmann::json switches;
    if (switches_json) {
      switches = nlohmann::json::parse(switches_json, nullptr, false);
      if (switches.is_discarded())
        acre::fail(ACRE_ERR_INVALID_ARGUMENT, "policy switches are not valid JSON");
    }
    auto policy = std::make_unique<acre_policy>();
    policy->impl = acre::Policy::named(name, switches);
    policy->json = policy->impl.to_json().dump();
    *out = policy.release();
  });
}

void acre_policy_free(acre_policy *policy) { delete policy; }

const char *acre_policy_json(const acre_policy *policy) { return policy ? policy->json.c_str() : ""; }

namespace {

void put_layout(const acre::Layout &l, acre_layout *out) {
  *out = {l.sink, l.l1, l.recent, l.refill, l.question};
}

acre::Session &session_of(const acre_session *session) {
  need(session, "session");
  return *session->impl;
}

}  // namespace

acre_status acre_policy_layout(const acre_policy *policy, int64_t capacity, int64_t chunk, int64_t span,
                               acre_layout *out) {
  return guard([&] {
    need(policy, "policy");
    need(out, "out");
    put_layout(acre::Layout::plan(policy->impl, capacity, chunk, span), out);
  });
}

// ---- session

acre_status acre_session_new(const acre_bundle *bundle, acre_pot *pot, const acre_policy *policy,
                             const acre_session_config *config, acre_session **out) {
  return guard([&] {
    need(bundle, "bundle");
    need(pot, "pot");
    need(policy, "policy");
    need(config, "config");
    need(out, "out");
    *out = nullptr;
    acre::SessionConfig c;
    c.span_tokens = config->span_tokens, c.reps = config->reps,
    c.checkpoint_tokens = config->checkpoint_tokens;
    c.codec = config->codec ? config->codec : "";
    c.fingerprint = config->fingerprint ? config->fingerprint : "";
    auto session = std::make_unique<acre_session>();
    session->impl =
        std::make_unique<acre::Session>(*bundle->impl, *pot->impl, policy->impl, c,
                                        config->tokenizer ? config->tokenizer->impl.get() : nullptr);
    session->policy_json = session->impl->policy().to_json().dump();
    *out = session.release();
  });
}

void acre_session_free(acre_session *session) { delete session; }

acre_status acre_session_set_engine(acre_session *session, acre_engine *engine) {
  return guard([&] { session_of(session).set_engine(engine ? engine->impl.get() : nullptr); });
}

acre_status acre_session_ingest(acre_session *session, const acre_document *document, const char *store_dir,
                                int resume, int replace, acre_progress_fn progress, void *user,
                                int64_t *n_tokens) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need(document, "document");
    need(n_tokens, "n_tokens");
    if (document->n_ids) need_values(document->ids, document->n_ids, "document ids");
    acre::Document d;
    d.ids.assign(document->ids, document->ids + document->n_ids);
    if (document->text) {
      need(document->offsets, "document offsets");
      d.has_text = true;
      d.text.assign(document->text, document->text_bytes);
      d.offsets.assign(document->offsets, document->offsets + 2 * document->n_ids);
    }
    acre::Progress report;
    if (progress) report = [&](int64_t done, int64_t total) { return progress(user, done, total) == 0; };
    *n_tokens = s.ingest(std::move(d), store_dir, resume != 0, replace != 0, report);
  });
}

acre_status acre_session_open_document(acre_session *session, const char *store_dir, int64_t *n_tokens) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need(store_dir, "store_dir");
    need(n_tokens, "n_tokens");
    *n_tokens = s.open_document(store_dir);
  });
}

acre_status acre_session_store(const acre_session *session, acre_store **out) {
  return guard([&] {
    const acre::Session &s = session_of(session);
    need(out, "out");
    *out = nullptr;
    if (!s.store()) return;
    auto store = std::make_unique<acre_store>();
    store->impl = s.store();
    *out = store.release();
  });
}

void acre_session_close_store(acre_session *session) {
  if (session) session->impl->close_store();
}

int64_t acre_session_resumed_from(const acre_session *session) {
  return session ? session->impl->resumed_from() : -1;
}

uint64_t acre_session_epoch(const acre_session *session) { return session ? session->impl->epoch() : 0; }

const char *acre_session_policy_json(const acre_session *session) {
  return session ? session->policy_json.c_str() : "";
}

acre_status acre_session_layout(const acre_session *session, acre_layout *out) {
  return guard([&] {
    const acre::Session &s = session_of(session);
    need(out, "out");
    put_layout(s.layout(), out);
  });
}

acre_status acre_session_region(const acre_session *session, acre_slot_kind kind, int64_t *first,
                                int64_t *count) {
  return guard([&] {
    const acre::Session &s = session_of(session);
    need(first, "first");
    need(count, "count");
    if (kind < ACRE_SLOT_FREE || kind > ACRE_SLOT_QUESTION)
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "slot kind " + std::to_string(int(kind)) + " is none");
    const auto r = s.region(int8_t(kind));
    *first = r[0], *count = r[1];
  });
}

const char *acre_session_codec(const acre_session *session) {
  return session ? session->impl->config().codec.c_str() : "";
}

acre_status acre_session_document(const acre_session *session, acre_array *ids, acre_array *text,
                                  acre_array *offsets) {
  return guard([&] {
    const acre::Session &s = session_of(session);
    need(ids, "ids");
    need(text, "text");
    need(offsets, "offsets");
    const acre::Document &d = s.document();
    const auto set = [](acre_array *a, const char *name, acre_dtype dtype, std::vector<int64_t> dims,
                        const void *data) {
      *a = acre_array{};
      a->info.name = name;
      a->info.dtype = dtype;
      a->info.rank = int32_t(dims.size());
      size_t bytes = acre_dtype_size(dtype);
      for (size_t i = 0; i < dims.size(); ++i) a->info.dims[i] = dims[i], bytes *= size_t(dims[i]);
      a->info.bytes = bytes;
      a->data = data;
    };
    const int64_t n = int64_t(d.ids.size());
    set(ids, "document_ids", ACRE_DTYPE_INT32, {n}, d.ids.data());
    set(text, "document_text", ACRE_DTYPE_UINT8, {int64_t(d.text.size())},
        d.has_text ? d.text.data() : nullptr);
    set(offsets, "document_offsets", ACRE_DTYPE_INT32, {d.has_text ? n : 0, 2},
        d.has_text ? d.offsets.data() : nullptr);
  });
}

acre_status acre_session_compact(acre_session *session, int64_t *next_position) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need(next_position, "next_position");
    *next_position = s.compact();
  });
}

acre_status acre_session_step(acre_session *session, const int32_t *ids, size_t n, int64_t start,
                              acre_array *outputs, size_t n_outputs) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need_values(ids, n, "ids");
    const auto &out = s.step(ids, n, start);
    if (n_outputs != out.size())
      acre::fail(ACRE_ERR_INVALID_ARGUMENT,
                 "the step has " + std::to_string(out.size()) + " outputs, not " + std::to_string(n_outputs));
    need_values(outputs, n_outputs, "outputs");
    for (size_t i = 0; i < out.size(); ++i) {
      outputs[i] = acre_array{};
      info_of(out[i].spec, &outputs[i].info);
      outputs[i].data = out[i].data.data();
    }
  });
}

acre_status acre_session_set_template_ids(acre_session *session, const int32_t *ids, size_t n) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need_values(ids, n, "ids");
    s.set_template_ids(std::vector<int32_t>(ids, ids + n));
  });
}

acre_status acre_session_set_stop_ids(acre_session *session, const int32_t *ids, size_t n) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need_values(ids, n, "ids");
    s.set_stop_ids(std::vector<int32_t>(ids, ids + n));
  });
}

acre_status acre_session_ask(acre_session *session, const int32_t *question, size_t n,
                             const int32_t *selection, size_t n_selection, const int64_t *carried,
                             size_t n_carried, const acre_decoding *decoding) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need_values(question, n, "question");
    need_values(selection, n_selection, "selection");
    need_values(carried, n_carried, "carried");
    need(decoding, "decoding");
    if (decoding->max_new_tokens < 0 || !std::isfinite(decoding->temperature) ||
        !std::isfinite(decoding->top_p))
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "max_new_tokens must be 0 or more, temperature and top_p finite");
    acre::Decoding d;
    d.max_new_tokens = decoding->max_new_tokens, d.temperature = decoding->temperature,
    d.top_p = decoding->top_p;
    d.has_seed = decoding->has_seed != 0, d.seed = decoding->seed, d.stop_at_eos = decoding->stop_at_eos != 0;
    s.ask(std::vector<int32_t>(question, question + n),
          std::vector<int32_t>(selection, selection + n_selection),
          std::vector<int64_t>(carried, carried + n_carried), d);
  });
}

acre_status acre_session_next(acre_session *session, int32_t *token) {
  return guard([&] {
    acre::Session &s = session_of(session);
    need(token, "token");
    *token = s.next();
  });
}

acre_status acre_session_last(const acre_session *session, acre_question *out) {
  return guard([&] {
    const acre::Session &s = session_of(session);
    need(out, "out");
    const acre::Question &q = s.last();
    *out = acre_question{
        q.spans.data(),       q.spans.size(),      q.cores.data(),      q.cores.size(), q.span_scores.data(),
        q.span_scores.size(), q.prompt_ids.data(), q.prompt_ids.size(), q.bytes_read,   q.read_s};
  });
}

size_t acre_session_index_bytes(const acre_session *session) {
  return session ? session->impl->index_bytes() : 0;
}

// ---- sampling

acre_status acre_rng_new(int has_seed, uint64_t seed, acre_rng **out) {
  return guard([&] {
    need(out, "out");
    *out = new acre_rng{has_seed ? acre::Rng(seed) : acre::Rng::from_entropy()};
  });
}

void acre_rng_free(acre_rng *rng) { delete rng; }

double acre_rng_uniform(acre_rng *rng) { return rng ? rng->impl.uniform() : 0.0; }

acre_status acre_sample(const float *logits, size_t n, double temperature, double top_p, acre_rng *rng,
                        int32_t *token) {
  return guard([&] {
    need(logits, "logits");
    need(rng, "rng");
    need(token, "token");
    if (!n) acre::fail(ACRE_ERR_INVALID_ARGUMENT, "no logits given");
    if (!std::isfinite(temperature) || !std::isfinite(top_p))
      acre::fail(ACRE_ERR_INVALID_ARGUMENT, "temperature and top_p must be finite");
    *token = acre::sample(logits, n, temperature, top_p, rng->impl);
  });
}

}  // extern "C"
