// The session: one document ingested into the pot (sinks, L1, the recent window) and its L2 store,
// reopened or resumed from that store. The policy decides what the pot keeps; this file runs it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bundle.hpp"
#include "l2.hpp"
#include "policies.hpp"
#include "pot.hpp"
#include "step.hpp"
#include "tokenizer.hpp"

namespace acre {

struct SessionConfig {
  int32_t span_tokens = 64, reps = 8;
  std::string codec;  // "": float16 when the refill reuses stored K/V, else none (re-encoding reads ids)
  int64_t checkpoint_tokens = 4096;  // how often an ingest saves where it is, to resume
  std::string fingerprint;           // the bundle's (acre/runtime/session.py bundle_fingerprint)
};

// The document: its prompt ids and, for sources, its text and each id's character range (or none).
struct Document {
  std::vector<int32_t> ids;
  bool has_text = false;
  std::string text;              // UTF-8
  std::vector<int32_t> offsets;  // [ids, 2]
};

// Called after each chunk with (tokens done, total); false stops the ingest.
using Progress = std::function<bool(int64_t done, int64_t total)>;

class Session {
 public:
  // bundle, pot and tokenizer (null: the session opens the bundle's) are borrowed and outlive it.
  Session(const Bundle &bundle, Pot &pot, Policy policy, SessionConfig config, const Tokenizer *tokenizer);
  ~Session();  // removes a temporary store
  void set_engine(Engine *engine) { engine_ = engine; }

  // Ingest a document, replacing any earlier one. With a refilling policy its L2 goes to store_dir
  // (a temporary directory if null). With `resume`, a store that holds this document finished is
  // reopened as it is, an unfinished one continues from its last checkpoint. A store holding another
  // document (or another bundle's) is refused unless `replace`. Returns the document's length.
  int64_t ingest(Document document, const char *store_dir, bool resume, bool replace,
                 const Progress &progress);
  // Reopen a document ingested earlier (by any process) with this bundle and policy; no re-ingest.
  int64_t open_document(const std::string &dir);
  void close_store();

  // One call of the step program on ids [n <= chunk] at positions start...; the outputs (manifest
  // order) stay valid until the next step.
  struct Output {
    std::string name;
    TensorSpec spec;
    std::vector<uint8_t> data;
  };
  const std::vector<Output> &step(const int32_t *ids, size_t n, int64_t start);
  int64_t compact();  // the visible document slots get positions 0, 1, ... in document order

  const Policy &policy() const { return policy_; }
  const Layout &layout() const { return layout_; }
  const SessionConfig &config() const { return config_; }
  std::array<int64_t, 2> region(int8_t kind) const { return regions_.at(size_t(kind)); }  // first, count
  const Document &document() const { return document_; }
  const std::shared_ptr<Store> &store() const { return store_; }
  int64_t resumed_from() const { return resumed_from_; }
  uint64_t epoch() const { return epoch_; }  // changes when the pot is reset for another document

 private:
  struct SpanBuffer;  // cuts the K/V stream into spans for the store
  std::vector<int64_t> free_in(int8_t kind) const;
  std::vector<int64_t> slots_of(int8_t kind) const;
  void check_ids(const std::vector<int32_t> &ids, const char *what) const;
  void guard_store(const std::string &dir, const std::string &digest, bool replace) const;
  bool reopen_finished(const std::string &dir, const std::string &digest);
  int64_t open_store(const char *dir, const std::string &digest, bool resume, SpanBuffer &buffer);
  void new_store(const char *dir, const std::string &digest);
  void checkpoint(const SpanBuffer &buffer, int64_t next_token, const std::string &digest);
  void place(int64_t start, int64_t n, int64_t position, const std::vector<Output> &out);
  void distil(const std::vector<int64_t> &candidates, const std::vector<float> &attention);
  void forget_temporary();

  const Bundle &bundle_;
  Pot &pot_;
  Engine *engine_ = nullptr;
  Policy policy_;
  SessionConfig config_;
  Layout layout_;
  std::array<std::array<int64_t, 2>, 6> regions_{};  // by acre_slot_kind
  std::vector<int32_t> catalyst_ids_;
  std::vector<int32_t> probe_layers_;
  std::shared_ptr<Store> store_;
  std::string temporary_;  // a store directory the session made (removed when done with)
  Document document_;
  int64_t resumed_from_ = -1;
  uint64_t epoch_ = 0;
  std::vector<std::vector<Output>> outputs_;  // per method: [0] decode (1 row), [1] prefill (chunk)
  std::vector<int64_t> tokens_, positions_, last_index_;
};

// sha256 of the document's ids as int32 little-endian bytes, lower-case hex (store.json's document_sha256).
std::string document_digest(const std::vector<int32_t> &ids);

}  // namespace acre
