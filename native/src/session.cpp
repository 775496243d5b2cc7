// The session's ingest, reopen and resume (session.hpp), as acre/runtime/session.py ran them.
#include "session.hpp"

#include <dirent.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

#include "half.hpp"
#include "pairwise_sum.hpp"
#include "span_index.hpp"

namespace acre {

namespace {

using ojson = nlohmann::ordered_json;

constexpr int8_t FREE = ACRE_SLOT_FREE, SINK = ACRE_SLOT_SINK, L1 = ACRE_SLOT_L1, REFILL = ACRE_SLOT_REFILL,
                 RECENT = ACRE_SLOT_RECENT, QUESTION = ACRE_SLOT_QUESTION;
constexpr int8_t DOCUMENT_KINDS[] = {SINK, L1, RECENT, REFILL};

[[noreturn]] void refuse(const std::string &message) { fail(ACRE_ERR_INVALID_ARGUMENT, message); }

acre_array array(const char *name, acre_dtype dtype, std::vector<int64_t> dims, const void *data) {
  acre_array a{};
  a.info.name = name;
  a.info.dtype = dtype;
  a.info.rank = int32_t(dims.size());
  size_t bytes = acre_dtype_size(dtype);
  for (size_t i = 0; i < dims.size(); ++i) a.info.dims[i] = dims[i], bytes *= size_t(dims[i]);
  a.info.bytes = bytes;
  a.data = data;
  return a;
}

// Rows `picks` of a [heads, width, D] array of `size`-byte elements (heads = L * Hkv), as [heads, picks, D].
std::vector<uint8_t> gather(const void *src, int64_t heads, int64_t width, int64_t D, size_t size,
                            const std::vector<int64_t> &picks) {
  const size_t row = size_t(D) * size, m = picks.size();
  std::vector<uint8_t> out(size_t(heads) * m * row);
  const auto *from = static_cast<const uint8_t *>(src);
  for (int64_t h = 0; h < heads; ++h)
    for (size_t j = 0; j < m; ++j)
      std::memcpy(out.data() + (size_t(h) * m + j) * row, from + (size_t(h) * width + picks[j]) * row, row);
  return out;
}

std::vector<int64_t> range(int64_t first, int64_t n) {
  std::vector<int64_t> out(size_t(std::max<int64_t>(n, 0)));
  std::iota(out.begin(), out.end(), first);
  return out;
}

bool is_file(const std::string &path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void remove_tree(const std::string &dir) {  // a temporary store: files only
  if (DIR *d = ::opendir(dir.c_str())) {
    while (dirent *e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
        ::unlink((dir + "/" + e->d_name).c_str());
    ::closedir(d);
  }
  ::rmdir(dir.c_str());
}

const NamedArray *find(const std::vector<NamedArray> &arrays, const char *name) {
  for (const NamedArray &a : arrays)
    if (a.name == name) return &a;
  return nullptr;
}

std::vector<acre_array> views(const std::vector<NamedArray> &arrays) {
  std::vector<acre_array> out;
  for (const NamedArray &a : arrays) out.push_back(array(a.name.c_str(), a.dtype, a.dims, a.data.data()));
  return out;
}

}  // namespace

std::string document_digest(const std::vector<int32_t> &ids) {
  std::vector<uint8_t> bytes(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int b = 0; b < 4; ++b) bytes[4 * i + b] = uint8_t(uint32_t(ids[i]) >> (8 * b));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    fail(ACRE_ERR_INTERNAL, "sha256 failed");
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) out += hex[digest[i] >> 4], out += hex[digest[i] & 15];
  return out;
}

// The K/V stream of an ingest cut into spans of S tokens; each full span goes to the store with its
// representative keys (what the span index searches).
struct Session::SpanBuffer {
  int64_t S = 0, heads = 0, D = 0;
  std::vector<int32_t> tokens;
  std::vector<float> k, v;  // [L, Hkv, S, D], keys un-rotated (as at position 0)
  int64_t fill = 0, start = 0;

  void reset(const StoreMeta &m, int64_t first) {
    S = m.span_tokens, heads = int64_t(m.layers) * m.kv_heads, D = m.head_dim;
    tokens.assign(size_t(S), 0);
    k.assign(size_t(heads * S * D), 0.0f);
    v.assign(k.size(), 0.0f);
    fill = 0, start = first;
  }

  // n tokens with their keys and values, float32 [heads, n, D]
  void add(Store &store, const std::vector<int32_t> &probe_layers, int64_t sinks, const int32_t *ids,
           int64_t n, const float *keys, const float *values) {
    for (int64_t done = 0; done < n;) {
      const int64_t take = std::min(n - done, S - fill);
      std::copy(ids + done, ids + done + take, tokens.begin() + fill);
      for (int64_t h = 0; h < heads; ++h) {
        std::copy_n(keys + (h * n + done) * D, take * D, k.begin() + (h * S + fill) * D);
        std::copy_n(values + (h * n + done) * D, take * D, v.begin() + (h * S + fill) * D);
      }
      fill += take, done += take;
      if (fill == S) flush(store, probe_layers, sinks);
    }
  }

  void flush(Store &store, const std::vector<int32_t> &probe_layers, int64_t sinks) {
    if (!fill) return;
    const int64_t n = fill;
    const StoreMeta &m = store.meta();
    const std::vector<int64_t> rows = range(0, n);
    const std::vector<uint8_t> ks = gather(k.data(), heads, S, D, 4, rows),
                               vs = gather(v.data(), heads, S, D, 4, rows);
    // The sinks stay in the pot for good, and their keys (large norms, matched by every query) would make
    // their span win every search: they are left out of its representatives.
    const int64_t skip = std::min(std::max<int64_t>(sinks - start, 0), n - 1);
    const int64_t Hkv = m.kv_heads, Lp = int64_t(probe_layers.size());
    std::vector<float> probe(size_t(Lp * Hkv * (n - skip) * D));
    for (int64_t l = 0; l < Lp; ++l)
      for (int64_t h = 0; h < Hkv; ++h)
        std::copy_n(k.begin() + ((int64_t(probe_layers[l]) * Hkv + h) * S + skip) * D, (n - skip) * D,
                    probe.begin() + (l * Hkv + h) * (n - skip) * D);
    std::vector<float> reps(size_t(Lp * Hkv * m.reps * D));
    representatives(probe.data(), Lp, Hkv, n - skip, D, m.reps, reps.data());
    const std::vector<int64_t> kv_dims{m.layers, m.kv_heads, n, D};
    const acre_array t = array("tokens", ACRE_DTYPE_INT32, {n}, tokens.data());
    const acre_array ka = array("k", ACRE_DTYPE_FLOAT32, kv_dims, ks.data());
    const acre_array va = array("v", ACRE_DTYPE_FLOAT32, kv_dims, vs.data());
    const acre_array r = array("reps", ACRE_DTYPE_FLOAT32, {Lp, Hkv, m.reps, D}, reps.data());
    store.append(start, t, m.keeps_kv() ? &ka : nullptr, m.keeps_kv() ? &va : nullptr, r);
    start += n, fill = 0;
  }
};

Session::Session(const Bundle &bundle, Pot &pot, Policy policy, SessionConfig config,
                 const Tokenizer *tokenizer)
    : bundle_(bundle), pot_(pot), policy_(std::move(policy)), config_(std::move(config)) {
  const acre_geometry &g = bundle.geometry;
  const PotShape &s = pot.shape();
  if (s.layers != g.layers || s.kv_heads != g.kv_heads || s.head_dim != g.head_dim ||
      pot.kv_dtype() != g.kv_dtype)
    refuse("the pot's shape or dtype is not the bundle's");
  if (config_.span_tokens < 1 || config_.reps < 1 || config_.checkpoint_tokens < 1)
    refuse("span_tokens, reps and checkpoint_tokens must be 1 or more");
  if (config_.codec.empty()) config_.codec = policy_.refill_mode == "reuse" ? "float16" : "none";
  if (std::find_if(std::begin(CODECS), std::end(CODECS), [&](const char *c) { return config_.codec == c; }) ==
      std::end(CODECS))
    refuse("unknown codec '" + config_.codec + "'; choose none, float16 or int8");
  layout_ = Layout::plan(policy_, s.capacity, g.chunk, config_.span_tokens);
  if (!policy_.bounded) {  // full: one shared pool, the question takes what the document left
    regions_[size_t(RECENT)] = regions_[size_t(QUESTION)] = {0, s.capacity};
  } else {
    int64_t first = 0;
    for (auto [kind, size] : {std::pair<int8_t, int64_t>{SINK, layout_.sink},
                              {L1, layout_.l1},
                              {RECENT, layout_.recent},
                              {REFILL, layout_.refill},
                              {QUESTION, layout_.question}}) {
      regions_[size_t(kind)] = {first, size};
      first += size;
    }
  }
  if (policy_.l1) {
    std::unique_ptr<Tokenizer> own;
    if (!tokenizer) own = std::make_unique<Tokenizer>(bundle.tokenizer_dir + "/tokenizer.json");
    const std::vector<int32_t> ids = (tokenizer ? tokenizer : own.get())->encode(CATALYST);
    const size_t keep = std::min(ids.size(), size_t(g.chunk / 4));  // its last chunk / 4 tokens
    catalyst_ids_.assign(ids.end() - keep, ids.end());
  }
  probe_layers_ = bundle.probe_layers;
  stop_ids_ = bundle.eos_token_ids;
  for (const auto &[layer, head] : bundle.signal_heads) {
    const auto at = std::find(probe_layers_.begin(), probe_layers_.end(), layer);
    if (at == probe_layers_.end())
      fail(ACRE_ERR_BUNDLE, bundle.manifest_path() + ": a signal head's layer is no probe layer");
    heads_.push_back({int32_t(at - probe_layers_.begin()), head});
  }
  for (const std::string &name : bundle.step_outputs)
    if (!expected_spec(bundle, name, g.chunk, true))
      fail(ACRE_ERR_BUNDLE, bundle.manifest_path() + ": step output " + name + " is not one the core knows");
}

Session::~Session() {
  store_.reset();
  forget_temporary();
}

void Session::forget_temporary() {
  if (!temporary_.empty()) remove_tree(temporary_);
  temporary_.clear();
}

std::vector<int64_t> Session::free_in(int8_t kind) const {
  const auto [first, count] = regions_[size_t(kind)];
  return count ? pot_.free_slots(first, count) : std::vector<int64_t>{};
}

std::vector<int64_t> Session::slots_of(int8_t kind) const { return pot_.slots_of(&kind, 1); }

int64_t Session::compact() { return pot_.compact(DOCUMENT_KINDS, 4); }

const std::vector<Session::Output> &Session::step(const int32_t *ids, size_t n, int64_t start) {
  if (!engine_) refuse("the session has no engine");
  const int64_t chunk = bundle_.geometry.chunk;
  if (n == 0 || int64_t(n) > chunk)
    refuse("a step takes 1.." + std::to_string(chunk) + " tokens, not " + std::to_string(n));
  if (start + int64_t(n) > bundle_.geometry.window)
    refuse(std::to_string(start + int64_t(n)) + " positions exceed the model's window of " +
           std::to_string(bundle_.geometry.window));
  const int32_t rows = engine_->rows_for(int32_t(n));
  tokens_.assign(size_t(rows), 0);
  std::copy(ids, ids + n, tokens_.begin());
  positions_ = range(start, rows);
  last_index_ = {int64_t(n) - 1};
  const Engine::Method &method = engine_->method(rows);
  const size_t layer_bytes = pot_.kv_bytes() / size_t(bundle_.geometry.layers);
  std::vector<acre_buffer> in;
  for (const TensorSpec &spec : method.inputs) {
    const std::string &name = spec.name;
    auto *k = static_cast<uint8_t *>(pot_.k()), *v = static_cast<uint8_t *>(pot_.v());
    if (name == "tokens")
      in.push_back({tokens_.data(), tokens_.size() * 8});
    else if (name == "positions")
      in.push_back({positions_.data(), positions_.size() * 8});
    else if (name == "last_index")
      in.push_back({last_index_.data(), 8});
    else if (name == "pot_mask")
      in.push_back({pot_.mask(), size_t(pot_.shape().capacity)});
    else if (name == "pot_positions")
      in.push_back({pot_.positions(), size_t(pot_.shape().capacity) * 8});
    else if (name == "pot_k")
      in.push_back({k, pot_.kv_bytes()});
    else if (name == "pot_v")
      in.push_back({v, pot_.kv_bytes()});
    else if (name.rfind("pot_k_", 0) == 0)
      in.push_back({k + std::stoul(name.substr(6)) * layer_bytes, layer_bytes});
    else if (name.rfind("pot_v_", 0) == 0)
      in.push_back({v + std::stoul(name.substr(6)) * layer_bytes, layer_bytes});
    else
      fail(ACRE_ERR_BUNDLE,
           bundle_.manifest_path() + ": step input " + name + " is not one the session feeds");
  }
  std::vector<Output> &outs = outputs_[rows];
  if (outs.empty())
    for (const std::string &name : bundle_.step_outputs) {
      const std::optional<TensorSpec> spec = expected_spec(bundle_, name, rows, true);
      outs.push_back({name, *spec, std::vector<uint8_t>(spec->bytes())});
    }
  std::vector<acre_buffer> out;
  for (Output &o : outs) out.push_back({o.data.data(), o.data.size()});
  engine_->step(rows, in.data(), in.size(), out.data(), out.size());
  return outs;
}

void Session::check_ids(const std::vector<int32_t> &ids, const char *what) const {
  if (ids.empty()) refuse(std::string("the ") + what + " has no tokens");
  const int32_t vocab = bundle_.geometry.vocab;
  for (int32_t t : ids)
    if (t < 0 || t >= vocab)
      refuse(std::string("the ") + what + " has token id " + std::to_string(t) +
             " outside the model's vocabulary [0, " + std::to_string(vocab) + ")");
}

namespace {

const Session::Output &output(const std::vector<Session::Output> &outs, const char *name) {
  for (const Session::Output &o : outs)
    if (o.name == name) return o;
  fail(ACRE_ERR_BUNDLE, std::string("the step program has no output ") + name);
}

}  // namespace

int64_t Session::ingest(Document document, const char *store_dir, bool resume, bool replace,
                        const Progress &progress) {
  const std::vector<int32_t> &ids = document.ids;
  check_ids(ids, "document");
  const int64_t n_ids = int64_t(ids.size()), capacity = pot_.shape().capacity;
  if (document.has_text && document.offsets.size() != 2 * ids.size())
    refuse("the source map covers " + std::to_string(document.offsets.size() / 2) + " tokens, not " +
           std::to_string(ids.size()));
  if (!policy_.bounded && n_ids > capacity - 1)
    refuse("the document has " + std::to_string(n_ids) +
           " tokens; the 'full' policy keeps all of them in the pot, which holds " +
           std::to_string(capacity) + " slots. Use a bounded policy (acre) or a larger --pot.");
  if (!engine_) refuse("the session has no engine");
  const std::string digest = document_digest(ids);
  resumed_from_ = -1;
  const bool refill = policy_.refill;
  if (store_dir && refill) guard_store(store_dir, digest, replace);
  resume = resume && !replace;
  if (resume && store_dir && refill && reopen_finished(store_dir, digest)) {
    resumed_from_ = n_ids;
    if (!document_.has_text && document.has_text) {  // a store that keeps no text: this one's
      document_.has_text = true;
      document_.text = std::move(document.text);
      document_.offsets = std::move(document.offsets);
    }
    return n_ids;
  }
  ++epoch_;
  index_.reset(), lexical_.reset(), asking_ = false, parked_ = Parked{};
  const std::vector<int64_t> every = range(0, capacity);
  pot_.clear(every.data(), every.size());
  document_ = Document{};
  SpanBuffer buffer;
  const int64_t begin = refill ? open_store(store_dir, digest, resume, buffer) : 0;
  resumed_from_ = begin ? begin : -1;
  const acre_geometry &g = bundle_.geometry;
  const int64_t per_step = g.chunk - int64_t(catalyst_ids_.size());
  const int64_t heads = int64_t(g.layers) * g.kv_heads, D = g.head_dim;
  std::vector<int32_t> piece;
  std::vector<float> keys, values;
  for (int64_t start = begin; start < n_ids; start += per_step) {
    const int64_t n = std::min(per_step, n_ids - start);
    piece.assign(ids.begin() + start, ids.begin() + start + n);
    piece.insert(piece.end(), catalyst_ids_.begin(), catalyst_ids_.end());
    const int64_t position = compact();
    const std::vector<Output> &out = step(piece.data(), piece.size(), position);
    if (store_) {  // L2 keeps keys un-rotated (as at position 0): refills place them anywhere
      const Output &k_new = output(out, "k_new"), &v_new = output(out, "v_new");
      const int64_t width = k_new.spec.dims[2];
      const std::vector<int64_t> rows = range(0, n), at = range(position, n);
      const size_t size = acre_dtype_size(g.kv_dtype);
      const std::vector<uint8_t> k = gather(k_new.data.data(), heads, width, D, size, rows);
      const std::vector<uint8_t> v = gather(v_new.data.data(), heads, width, D, size, rows);
      keys.resize(size_t(heads * n * D)), values.resize(keys.size());
      pot_.unrotate(k.data(), g.kv_dtype, g.layers, size_t(n), at.data(), keys.data());
      for (size_t i = 0; i < values.size(); ++i)
        values[i] = g.kv_dtype == ACRE_DTYPE_FLOAT16
                        ? from_half(reinterpret_cast<const uint16_t *>(v.data())[i])
                        : reinterpret_cast<const float *>(v.data())[i];
      buffer.add(*store_, probe_layers_, layout_.sink, ids.data() + start, n, keys.data(), values.data());
    }
    place(start, n, position, out);
    if (store_ && start + n < n_ids &&
        (start + n) / config_.checkpoint_tokens > start / config_.checkpoint_tokens)
      checkpoint(buffer, start + n, digest);
    if (progress && !progress(start + n, n_ids))
      fail(ACRE_ERR_CANCELLED, "the ingest was stopped at token " + std::to_string(start + n) +
                                   (store_ ? "; ingest again to resume from its last checkpoint" : ""));
  }
  document_ = std::move(document);
  if (store_) {
    buffer.flush(*store_, probe_layers_, layout_.sink);
    std::vector<acre_array> arrays;
    for (size_t i = 0; i < Pot::ARRAYS; ++i) arrays.push_back(pot_.array(i));
    arrays.push_back(array("document_ids", ACRE_DTYPE_INT32, {n_ids}, document_.ids.data()));
    if (document_.has_text) {
      arrays.push_back(
          array("document_text", ACRE_DTYPE_UINT8, {int64_t(document_.text.size())}, document_.text.data()));
      arrays.push_back(array("document_offsets", ACRE_DTYPE_INT32, {n_ids, 2}, document_.offsets.data()));
    }
    store_->finish(arrays, ojson{{"policy", policy_.name}, {"document_sha256", digest}}.dump());
  }
  return n_ids;
}

// Refuse to write over a store that holds another document or another bundle's L2: an ingest there
// would silently destroy it. A store of this very document is fine (reopened or resumed), and so is a
// damaged header (nothing in it can be served).
void Session::guard_store(const std::string &dir, const std::string &digest, bool replace) const {
  const std::string text = peek_store(dir);  // refuses a file, or a directory of other files
  if (text.empty() || replace) return;
  const ojson info = ojson::parse(text, nullptr, false);
  std::string fingerprint, held;
  bool has_held = false;
  if (info.is_object()) {
    auto meta = info.find("meta");
    if (meta != info.end() && meta->is_object() && meta->contains("fingerprint") &&
        (*meta)["fingerprint"].is_string())
      fingerprint = (*meta)["fingerprint"].get<std::string>();
    auto d = info.find("document_sha256");
    if (d != info.end() && !d->is_null())
      has_held = true, held = d->is_string() ? d->get<std::string>() : d->dump();
  }
  std::string what;
  if (fingerprint != config_.fingerprint) {
    what = "a document ingested with another model or bundle";
  } else if (has_held && held != digest) {
    const auto complete = info.find("complete");
    const bool done = complete != info.end() && complete->is_boolean() && complete->get<bool>();
    what = std::string("another document") + (done ? "" : " (its ingest unfinished)");
  } else {
    return;
  }
  fail(ACRE_ERR_STORE, dir + ": already holds " + what +
                           "; to replace it pass replace=True (acre run --replace), or choose another store "
                           "directory");
}

// If `dir` already holds this very document, finished, with this bundle and policy: reopen it.
bool Session::reopen_finished(const std::string &dir, const std::string &digest) {
  ojson info;
  try {
    info = ojson::parse(Store::open(dir, config_.fingerprint.c_str(), false)->info_json());
  } catch (const Error &e) {
    if (e.status() != ACRE_ERR_STORE) throw;
    return false;
  }
  const auto is = [&](const char *key, const std::string &value) {
    auto it = info.find(key);
    return it != info.end() && it->is_string() && it->get<std::string>() == value;
  };
  const auto complete = info.find("complete");
  if (!(complete != info.end() && complete->is_boolean() && complete->get<bool>() &&
        is("document_sha256", digest)))
    return false;
  return is("policy", policy_.name) && open_document(dir) > 0;
}

// The L2 store to ingest into and the token to start at: an interrupted ingest of the same document
// resumes from its checkpoint; anything else starts a new store.
int64_t Session::open_store(const char *dir, const std::string &digest, bool resume, SpanBuffer &buffer) {
  store_.reset();
  if (resume && dir && is_file(std::string(dir) + "/store.json")) {
    std::shared_ptr<Store> opened;
    try {
      opened = Store::open(dir, config_.fingerprint.c_str(), true);
    } catch (const Error &e) {
      if (e.status() != ACRE_ERR_STORE) throw;  // another model's or a damaged store: start again
    }
    std::unique_ptr<Snapshot> saved = opened ? opened->load_checkpoint() : nullptr;
    if (saved) {
      const ojson info = ojson::parse(saved->info_json, nullptr, false);
      const auto is = [&](const char *key, const std::string &value) {
        return info.is_object() && info.contains(key) && info[key].is_string() &&
               info[key].get<std::string>() == value;
      };
      const auto number = [&](const char *key) {
        return info.is_object() && info.contains(key) && info[key].is_number_integer()
                   ? info[key].get<int64_t>()
                   : -1;
      };
      const StoreMeta &m = opened->meta();
      const std::vector<int64_t> kv{m.layers, m.kv_heads, m.span_tokens, m.head_dim};
      const NamedArray *k = find(saved->arrays, "k"), *t = find(saved->arrays, "span_t"),
                       *sk = find(saved->arrays, "span_k"), *sv = find(saved->arrays, "span_v");
      const PotShape &p = pot_.shape();
      const std::vector<int64_t> pot_kv{p.layers, p.kv_heads, p.capacity, p.head_dim};
      const int64_t next = number("next_token"), fill = number("fill"), span_start = number("span_start"),
                    spans = number("spans");
      const bool usable = is("document_sha256", digest) && is("policy", policy_.name) && k &&
                          k->dims == pot_kv && t && t->dtype == ACRE_DTYPE_INT32 &&
                          t->dims == std::vector<int64_t>{m.span_tokens} && sk && sk->dims == kv &&
                          sk->dtype == ACRE_DTYPE_FLOAT32 && sv && sv->dims == kv &&
                          sv->dtype == ACRE_DTYPE_FLOAT32 && next > 0 && fill >= 0 && fill < m.span_tokens &&
                          span_start >= 0 && spans >= 0 && size_t(spans) <= opened->span_count();
      if (usable) {
        const std::vector<acre_array> arrays = views(saved->arrays);
        pot_.restore(arrays.data(), arrays.size());  // in place: the pot is never reallocated
        opened->truncate(size_t(spans));
        store_ = opened;
        buffer.reset(m, span_start);
        std::memcpy(buffer.tokens.data(), t->data.data(), t->data.size());
        std::memcpy(buffer.k.data(), sk->data.data(), sk->data.size());
        std::memcpy(buffer.v.data(), sv->data.data(), sv->data.size());
        buffer.fill = fill;
        return next;
      }
    }
  }
  new_store(dir, digest);
  buffer.reset(store_->meta(), 0);
  return 0;
}

void Session::new_store(const char *dir, const std::string &digest) {
  std::string path;
  if (dir) {
    path = dir;
  } else {
    forget_temporary();
    const char *tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/acre-l2-XXXXXX";
    if (!::mkdtemp(pattern.data()))
      fail(ACRE_ERR_STORE, pattern + ": cannot make a temporary store (" + os_error() + ")");
    path = temporary_ = pattern;
  }
  const acre_geometry &g = bundle_.geometry;
  StoreMeta m;
  m.fingerprint = config_.fingerprint;
  m.span_tokens = config_.span_tokens, m.layers = g.layers, m.kv_heads = g.kv_heads, m.head_dim = g.head_dim;
  m.probe_layers = int32_t(probe_layers_.size()), m.reps = config_.reps, m.codec = config_.codec;
  store_ = Store::create(path, m, digest.c_str());
}

void Session::checkpoint(const SpanBuffer &buffer, int64_t next_token, const std::string &digest) {
  std::vector<acre_array> arrays;
  for (size_t i = 0; i < Pot::ARRAYS; ++i) arrays.push_back(pot_.array(i));
  const StoreMeta &m = store_->meta();
  const std::vector<int64_t> kv{m.layers, m.kv_heads, m.span_tokens, m.head_dim};
  arrays.push_back(array("span_t", ACRE_DTYPE_INT32, {m.span_tokens}, buffer.tokens.data()));
  arrays.push_back(array("span_k", ACRE_DTYPE_FLOAT32, kv, buffer.k.data()));
  arrays.push_back(array("span_v", ACRE_DTYPE_FLOAT32, kv, buffer.v.data()));
  const ojson info{{"next_token", next_token},
                   {"fill", buffer.fill},
                   {"span_start", buffer.start},
                   {"document_sha256", digest},
                   {"policy", policy_.name}};
  store_->checkpoint(arrays, info.dump());
}

int64_t Session::open_document(const std::string &dir) {
  if (!policy_.refill)
    refuse("policy '" + policy_.name + "' keeps no L2 store; open documents with policy acre");
  std::shared_ptr<Store> opened = Store::open(dir, config_.fingerprint.c_str(), false);
  std::unique_ptr<Snapshot> state = opened->load_pot();
  const PotShape &p = pot_.shape();
  const std::vector<int64_t> pot_kv{p.layers, p.kv_heads, p.capacity, p.head_dim};
  const NamedArray *k = find(state->arrays, "k");
  const ojson info = ojson::parse(opened->info_json(), nullptr, false);
  const bool same_policy = info.is_object() && info.contains("policy") && info["policy"] == policy_.name;
  if (!k || k->dims != pot_kv || !same_policy)
    refuse(dir + ": ingested with another pot layout or policy; ingest it again");
  const NamedArray *ids = find(state->arrays, "document_ids");
  if (!ids || ids->dtype != ACRE_DTYPE_INT32 || ids->dims.size() != 1)
    fail(ACRE_ERR_STORE, dir + "/pot.npz: has no document_ids (int32)");
  const std::vector<acre_array> arrays = views(state->arrays);
  pot_.restore(arrays.data(), arrays.size());  // in place: the pot is never reallocated
  ++epoch_;
  index_.reset(), lexical_.reset(), asking_ = false, parked_ = Parked{};
  store_ = std::move(opened);
  document_ = Document{};
  document_.ids.resize(size_t(ids->dims[0]));
  std::memcpy(document_.ids.data(), ids->data.data(), ids->data.size());
  const NamedArray *text = find(state->arrays, "document_text"),
                   *offsets = find(state->arrays, "document_offsets");
  if (text && offsets && text->dtype == ACRE_DTYPE_UINT8 && offsets->dtype == ACRE_DTYPE_INT32 &&
      offsets->dims.size() == 2 && offsets->dims[1] == 2) {  // stores written before sources have neither
    document_.has_text = true;
    document_.text.assign(text->data.begin(), text->data.end());
    document_.offsets.resize(offsets->data.size() / 4);
    std::memcpy(document_.offsets.data(), offsets->data.data(), offsets->data.size());
  }
  return int64_t(document_.ids.size());
}

void Session::close_store() { store_.reset(); }

void Session::set_template_ids(std::vector<int32_t> ids) {
  std::sort(ids.begin(), ids.end());
  template_ids_ = std::move(ids);
}

// Put the chunk's K/V (its rows at `position` on) into the pot: sinks first, then the recent window;
// what leaves the recent window is distilled into L1 (or dropped, for streaming).
void Session::place(int64_t start, int64_t n, int64_t position, const std::vector<Output> &out) {
  const acre_geometry &g = bundle_.geometry;
  const Output &k_new = output(out, "k_new"), &v_new = output(out, "v_new");
  const int64_t heads = int64_t(g.layers) * g.kv_heads, D = g.head_dim, width = k_new.spec.dims[2];
  const size_t size = acre_dtype_size(g.kv_dtype);
  std::vector<int64_t> sink_rows, rest_rows;
  for (int64_t i = 0; i < n; ++i) (start + i < layout_.sink ? sink_rows : rest_rows).push_back(i);
  const auto write = [&](const std::vector<int64_t> &slots, const std::vector<int64_t> &rows, int8_t kind) {
    const std::vector<uint8_t> k = gather(k_new.data.data(), heads, width, D, size, rows);
    const std::vector<uint8_t> v = gather(v_new.data.data(), heads, width, D, size, rows);
    std::vector<int64_t> at, token;
    for (int64_t r : rows) at.push_back(position + r), token.push_back(start + r);
    pot_.write(slots.data(), slots.size(), k.data(), v.data(), at.data(), kind, token.data());
  };
  if (!sink_rows.empty()) {
    std::vector<int64_t> slots = free_in(SINK);
    slots.resize(std::min(slots.size(), sink_rows.size()));
    if (slots.size() < sink_rows.size()) fail(ACRE_ERR_INTERNAL, "no free sink slots");
    write(slots, sink_rows, SINK);
  }
  const size_t need = rest_rows.size();
  std::vector<int64_t> free = free_in(RECENT);
  if (need > free.size()) {
    std::vector<int64_t> recent = slots_of(RECENT);
    const int64_t *token = pot_.token();
    std::stable_sort(recent.begin(), recent.end(), [&](int64_t a, int64_t b) { return token[a] < token[b]; });
    recent.resize(std::min(recent.size(), need - free.size()));
    if (policy_.l1) {  // the catalyst's attention, summed over its rows in order (float32)
      const Output &attention = output(out, "pot_attention");
      const int64_t P = pot_.shape().capacity;
      const auto *a = reinterpret_cast<const float *>(attention.data.data());
      std::vector<float> importance(a + n * P, a + (n + 1) * P);
      for (int64_t r = n + 1; r < n + int64_t(catalyst_ids_.size()); ++r)
        for (int64_t j = 0; j < P; ++j) importance[size_t(j)] += a[r * P + j];
      distil(recent, importance);
    }
    pot_.clear(recent.data(), recent.size());
    free = free_in(RECENT);
  }
  if (free.size() < need) fail(ACRE_ERR_INTERNAL, "the recent window has no room for the chunk");
  free.resize(need);
  if (need) write(free, rest_rows, RECENT);
}

// CCD: of the current L1 and the candidates, keep the most important in L1. Importance mixes the
// catalyst's attention with novelty (1 - max cosine to the others' keys), as float32 the way numpy
// computed it; the cosines are float64 dot products rounded to float32.
void Session::distil(const std::vector<int64_t> &candidates, const std::vector<float> &attention) {
  std::vector<int64_t> pool = slots_of(L1);
  const size_t held = pool.size();
  pool.insert(pool.end(), candidates.begin(), candidates.end());
  const size_t N = pool.size();
  if (!N) return;
  float top = attention[size_t(pool[0])];
  for (int64_t s : pool) top = std::max(top, attention[size_t(s)]);
  const float scale = float(std::max(double(top), 1e-12));
  const PotShape &p = pot_.shape();
  const size_t Lp = probe_layers_.size(), D = size_t(p.head_dim), heads = Lp * size_t(p.kv_heads);
  std::vector<float> keys(heads * N * D);  // [Lp, Hkv, N, D]
  pot_.unrotated(probe_layers_.data(), Lp, pool.data(), N, keys.data());
  const size_t width = heads * D;
  std::vector<float> vecs(N * width);  // [N, Lp * Hkv * D], each row normalised
  for (size_t i = 0; i < N; ++i)
    for (size_t h = 0; h < heads; ++h) std::copy_n(&keys[(h * N + i) * D], D, &vecs[i * width + h * D]);
  std::vector<float> squares(width);
  for (size_t i = 0; i < N; ++i) {
    float *row = &vecs[i * width];
    for (size_t j = 0; j < width; ++j) squares[j] = row[j] * row[j];
    const float norm = std::sqrt(pairwise_sum(squares.data(), width)) + float(1e-12);
    for (size_t j = 0; j < width; ++j) row[j] /= norm;
  }
  const float w = float(policy_.novelty_weight), keep_share = float(1.0 - policy_.novelty_weight);
  std::vector<float> importance(N);
  for (size_t i = 0; i < N; ++i) {
    float novelty = 1.0f;
    if (N > 1) {
      float best = -1.0f;
      for (size_t j = 0; j < N; ++j) {
        if (j == i) continue;
        double dot = 0.0;
        for (size_t d = 0; d < width; ++d) dot += double(vecs[i * width + d]) * double(vecs[j * width + d]);
        best = std::max(best, float(dot));
      }
      novelty = std::min(std::max(1.0f - best, 0.0f), 1.0f);
    }
    const float att = attention[size_t(pool[i])] / scale;
    importance[i] = keep_share * att + w * novelty;
  }
  std::vector<size_t> order(N);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return -importance[a] < -importance[b]; });
  order.resize(std::min(N, size_t(layout_.l1)));
  std::vector<uint8_t> kept(N, 0);
  for (size_t i : order) kept[i] = 1;
  std::vector<int64_t> gone, moving;  // L1 entries that lose their place; candidates that win one
  for (size_t i = 0; i < N; ++i) {
    if (i < held && !kept[i]) gone.push_back(pool[i]);
    if (i >= held && kept[i]) moving.push_back(pool[i]);
  }
  pot_.clear(gone.data(), gone.size());
  std::vector<int64_t> slots = free_in(L1);
  slots.resize(std::min(slots.size(), moving.size()));
  if (slots.size() < moving.size()) fail(ACRE_ERR_INTERNAL, "L1 has no room for the distilled entries");
  if (moving.empty()) return;
  const size_t size = acre_dtype_size(pot_.kv_dtype());
  const int64_t kv_heads = p.layers * p.kv_heads;
  const std::vector<uint8_t> k = gather(pot_.k(), kv_heads, p.capacity, p.head_dim, size, moving);
  const std::vector<uint8_t> v = gather(pot_.v(), kv_heads, p.capacity, p.head_dim, size, moving);
  std::vector<int64_t> at, token;
  for (int64_t s : moving) at.push_back(pot_.positions()[s]), token.push_back(pot_.token()[s]);
  pot_.write(slots.data(), slots.size(), k.data(), v.data(), at.data(), L1, token.data());
}

}  // namespace acre
