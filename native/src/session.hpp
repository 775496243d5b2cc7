// The session: one document ingested into the pot (sinks, L1, the recent window) and its L2 store,
// reopened or resumed from that store. The policy decides what the pot keeps; this file runs it.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "bundle.hpp"
#include "l2.hpp"
#include "lexical.hpp"
#include "policies.hpp"
#include "pot.hpp"
#include "sampling.hpp"
#include "span_index.hpp"
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

// How an answer is decoded: at most max_new_tokens, greedy (temperature <= 0) or sampled from the
// top_p nucleus with numpy's default_rng(seed) stream (no seed: fresh entropy).
struct Decoding {
  int32_t max_new_tokens = 256;
  double temperature = 0.0, top_p = 1.0;
  bool has_seed = false;
  uint64_t seed = 0;
  bool stop_at_eos = true;  // false: decode max_new_tokens whatever comes (speed benchmarks)
};

// What the last question chose and cost.
struct Question {
  std::vector<int64_t> spans;       // refilled, in document order
  std::vector<int64_t> cores;       // what it is about: its core spans and the carried refilled
  std::vector<double> span_scores;  // per span (empty when nothing was scored)
  uint64_t bytes_read = 0;          // from spans.bin
  double read_s = 0.0;              // wall time reading (and checking) the chosen spans
  std::vector<int32_t> prompt_ids;  // the prompt as the model saw it: shown document tokens, question
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

  // Tokens of the chat template: BM25 leaves them out of a question (they match the document's template).
  void set_template_ids(std::vector<int32_t> ids);
  // The tokens that end an answer (the bundle's eos_token_ids unless set).
  void set_stop_ids(std::vector<int32_t> ids) { stop_ids_ = std::move(ids); }
  // Prefill a question after the document: spans are chosen with `selection` (empty: the question) and
  // refilled (with `carried` while there is room), then the question is prefilled again; the answer is
  // then decoded by next(). Every question starts again from the document as ingest left it.
  void ask(const std::vector<int32_t> &question, const std::vector<int32_t> &selection,
           const std::vector<int64_t> &carried, const Decoding &decoding);
  int32_t next();  // the next answer token, or -1 when the answer is done
  const Question &last() const { return last_; }
  size_t index_bytes() const { return index_ ? index_->bytes() : 0; }
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
  // questions (question.cpp)
  std::vector<int64_t> kinds_slots(const std::vector<int8_t> &kinds) const;
  std::vector<int8_t> shown_while_answering() const;
  void reset_question();
  void park_recent();
  void prefill(const std::vector<int32_t> &ids, std::vector<double> *attention,
               std::vector<std::vector<float>> *queries);
  std::vector<int64_t> select_spans(const std::vector<double> &attention,
                                    const std::vector<std::vector<float>> &queries,
                                    const std::vector<int32_t> &question,
                                    const std::vector<int64_t> &carried);
  void refill(const std::vector<int64_t> &spans);
  void reencode();
  int32_t finish();

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
  std::map<int32_t, std::vector<Output>> outputs_;  // per method's rows, made on its first call
  std::vector<int64_t> tokens_, positions_, last_index_;
  // questions
  std::vector<int32_t> template_ids_;  // sorted
  std::vector<int32_t> stop_ids_;
  std::vector<Head> heads_;           // retrieval heads: (index into the probe layers, query head)
  std::unique_ptr<SpanIndex> index_;  // of the store's spans, made on first use
  std::unique_ptr<LexicalIndex> lexical_;
  Question last_;
  Decoding decoding_;
  Rng rng_{0};
  std::vector<float> logits_;  // after the last token prefilled
  int32_t produced_ = 0, pending_ = -1;
  // The recent window as ingest left it (slots, positions, tokens, keys [heads, n, D]): an answer moves
  // it after the refilled spans, and rotating its keys back would round, so they are written back.
  struct Parked {
    std::vector<int64_t> slots, positions, tokens;
    std::vector<uint8_t> k;
  } parked_;
  bool asking_ = false, done_ = false;
};

// sha256 of the document's ids as int32 little-endian bytes, lower-case hex (store.json's document_sha256).
std::string document_digest(const std::vector<int32_t> &ids);

}  // namespace acre
