// The session's questions (session.hpp): the question prefilled over the document, spans chosen and
// refilled from L2 (re-encoded, or their stored K/V reused), the question prefilled again, and the
// answer decoded token by token, as acre/runtime/session.py ran them.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>

#include "half.hpp"
#include "lexical.hpp"
#include "selection.hpp"
#include "session.hpp"
#include "span_index.hpp"

namespace acre {

namespace {

constexpr int8_t SINK = ACRE_SLOT_SINK, L1 = ACRE_SLOT_L1, REFILL = ACRE_SLOT_REFILL,
                 RECENT = ACRE_SLOT_RECENT, QUESTION = ACRE_SLOT_QUESTION;
constexpr int8_t DOCUMENT_KINDS[] = {SINK, L1, RECENT, REFILL};

[[noreturn]] void refuse(const std::string &message) { fail(ACRE_ERR_INVALID_ARGUMENT, message); }

const Session::Output &output(const std::vector<Session::Output> &outs, const char *name) {
  for (const Session::Output &o : outs)
    if (o.name == name) return o;
  fail(ACRE_ERR_BUNDLE, std::string("the step program has no output ") + name);
}

std::vector<uint8_t> rows_of(const Session::Output &o, int64_t heads, int64_t D, size_t size, int64_t n) {
  const int64_t width = o.spec.dims[2];
  const size_t row = size_t(D) * size;
  std::vector<uint8_t> out(size_t(heads * n) * row);
  for (int64_t h = 0; h < heads; ++h)
    std::memcpy(out.data() + size_t(h * n) * row, o.data.data() + size_t(h * width) * row, size_t(n) * row);
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::vector<int64_t> Session::kinds_slots(const std::vector<int8_t> &kinds) const {
  return pot_.slots_of(kinds.data(), kinds.size());
}

std::vector<int8_t> Session::shown_while_answering() const {
  return policy_.answer_recent ? std::vector<int8_t>{SINK, RECENT} : std::vector<int8_t>{SINK};
}

// Back to the pot as ingest left it: no question, no refill, every stored entry visible.
void Session::reset_question() {
  const std::vector<int64_t> asked = kinds_slots({QUESTION, REFILL}),
                             stored = kinds_slots({SINK, L1, RECENT});
  pot_.clear(asked.data(), asked.size());
  pot_.show(stored.data(), stored.size(), true);
  if (!parked_.slots.empty()) {  // its keys and positions as they were, not rotated there and back
    const size_t n = parked_.slots.size();
    std::vector<uint8_t> v(parked_.k.size());  // values are not rotated: as they are now
    pot_.read(parked_.slots.data(), n, nullptr, v.data());
    pot_.write(parked_.slots.data(), n, parked_.k.data(), v.data(), parked_.positions.data(), RECENT,
               parked_.tokens.data());
    parked_ = Parked{};
  }
  compact();
}

void Session::park_recent() {
  parked_ = Parked{};
  for (int64_t s : slots_of(RECENT))
    if (pot_.mask()[s])
      parked_.slots.push_back(s), parked_.positions.push_back(pot_.positions()[s]),
          parked_.tokens.push_back(pot_.token()[s]);
  parked_.k.resize(pot_.kv_bytes() / size_t(pot_.shape().capacity) * parked_.slots.size());
  pot_.read(parked_.slots.data(), parked_.slots.size(), parked_.k.data(), nullptr);
}

// Question (or answer) tokens through the step program in chunks, their K/V into the question region.
// Leaves the logits after the last token; adds the attention the tokens put on each slot to `attention`
// and their probe-layer queries [Lp, H, n, D] to `queries` (as [T][Lp, H, D] rows), when given.
void Session::prefill(const std::vector<int32_t> &ids, std::vector<double> *attention,
                      std::vector<std::vector<float>> *queries) {
  const acre_geometry &g = bundle_.geometry;
  const int64_t heads = int64_t(g.layers) * g.kv_heads, D = g.head_dim, P = pot_.shape().capacity;
  const size_t size = acre_dtype_size(g.kv_dtype);
  for (size_t done = 0; done < ids.size(); done += size_t(g.chunk)) {
    const int64_t n = std::min<int64_t>(g.chunk, int64_t(ids.size() - done));
    int64_t start = 0;
    const uint8_t *mask = pot_.mask();
    for (int64_t s = 0; s < P; ++s)
      if (mask[s]) start = std::max(start, pot_.positions()[s] + 1);
    const std::vector<Output> &out = step(ids.data() + done, size_t(n), start);
    if (attention) {  // each row's attention summed in float32, in row order, then added in float64
      const auto *a = reinterpret_cast<const float *>(output(out, "pot_attention").data.data());
      for (int64_t j = 0; j < P; ++j) {
        float sum = a[j];
        for (int64_t r = 1; r < n; ++r) sum += a[r * P + j];
        (*attention)[size_t(j)] += double(sum);
      }
    }
    if (queries) {
      const Output &q = output(out, "q_probe");  // [Lp, H, rows, D]
      const int64_t lh = q.spec.dims[0] * q.spec.dims[1], rows = q.spec.dims[2], qd = q.spec.dims[3];
      const auto *data = reinterpret_cast<const float *>(q.data.data());
      for (int64_t r = 0; r < n; ++r) {
        std::vector<float> token(size_t(lh * qd));
        for (int64_t h = 0; h < lh; ++h) std::copy_n(data + (h * rows + r) * qd, qd, token.begin() + h * qd);
        queries->push_back(std::move(token));
      }
    }
    std::vector<int64_t> slots = free_in(QUESTION);
    if (int64_t(slots.size()) < n) refuse("the question region has no room left");
    slots.resize(size_t(n));
    const std::vector<uint8_t> k = rows_of(output(out, "k_new"), heads, D, size, n);
    const std::vector<uint8_t> v = rows_of(output(out, "v_new"), heads, D, size, n);
    std::vector<int64_t> at(static_cast<size_t>(n));
    std::iota(at.begin(), at.end(), start);
    pot_.write(slots.data(), slots.size(), k.data(), v.data(), at.data(), QUESTION, nullptr);
    const Output &logits = output(out, "logits");
    logits_.assign(reinterpret_cast<const float *>(logits.data.data()),
                   reinterpret_cast<const float *>(logits.data.data()) + logits.data.size() / 4);
  }
}

// Score spans by (a) the question's attention on their L1 entries, (b) probe queries against the span
// index and (c) BM25 of the question's ids; keep the best by a dynamic cut-off, with the carried ones.
std::vector<int64_t> Session::select_spans(const std::vector<double> &attention,
                                           const std::vector<std::vector<float>> &queries,
                                           const std::vector<int32_t> &question,
                                           const std::vector<int64_t> &carried) {
  const size_t n_spans = store_->span_count();
  const int64_t S = config_.span_tokens;
  const int64_t *token = pot_.token();
  std::vector<double> mass, index_z, lexical;
  if (policy_.use_attention) {
    mass.assign(n_spans, 0.0);
    for (int64_t s : slots_of(L1)) mass[size_t(token[s] / S)] += attention[size_t(s)];
  }
  if (policy_.use_index) {
    if (!index_) {
      const StoreMeta &m = store_->meta();
      std::vector<uint16_t> entries(n_spans * m.reps_bytes() / 2);
      store_->read_reps(0, n_spans, entries.data());
      index_ = std::make_unique<SpanIndex>(IndexShape{m.probe_layers, m.kv_heads, m.reps, m.head_dim},
                                           std::move(entries), ACRE_SPAN_INDEX_FANOUT);
    }
    const acre_geometry &g = bundle_.geometry;
    const int64_t Lp = int64_t(probe_layers_.size()), H = g.heads, D = g.head_dim,
                  T = int64_t(queries.size());
    std::vector<float> all(size_t(Lp * H * T * D));  // [Lp, H, T, D]
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < Lp * H; ++h)
        std::copy_n(&queries[size_t(t)][size_t(h * D)], D, &all[size_t((h * T + t) * D)]);
    std::vector<int64_t> picks{T - 1};  // without probes the question's last token probes alone
    if (policy_.use_probes) picks = probe_queries(all.data(), Lp, H, T, D, 0.25);
    const int64_t K = int64_t(picks.size());
    std::vector<float> probes(size_t(Lp * H * K * D));
    for (int64_t h = 0; h < Lp * H; ++h)
      for (int64_t k = 0; k < K; ++k)
        std::copy_n(&all[size_t((h * T + picks[size_t(k)]) * D)], D, &probes[size_t((h * K + k) * D)]);
    index_z.assign(n_spans, 0.0);
    index_->scores(probes.data(), H, K, heads_, 8, policy_.use_tree, index_z.data());
    // mean, not sum, of the heads' standardised scores: a softmax over sums is one-hot
    for (double &z : index_z) z /= double(heads_.size());
  }
  if (policy_.use_lexical) {
    if (!lexical_)
      lexical_ = std::make_unique<LexicalIndex>(document_.ids.data(), document_.ids.size(), int32_t(S));
    std::vector<int32_t> query;
    for (int32_t t : question)
      if (!std::binary_search(template_ids_.begin(), template_ids_.end(), t)) query.push_back(t);
    lexical.assign(n_spans, 0.0);
    lexical_->scores(query.data(), query.size(), lexical.data());
  }
  std::vector<double> scores =
      combine_scores(mass.empty() ? nullptr : mass.data(), index_z.empty() ? nullptr : index_z.data(),
                     lexical.empty() ? nullptr : lexical.data(), n_spans);
  std::vector<int64_t> resident;
  for (int64_t s : kinds_slots(shown_while_answering())) resident.push_back(token[s]);
  std::sort(resident.begin(), resident.end());
  for (size_t i = 0; i < resident.size();) {  // spans wholly in the pot need no refill
    const int64_t span = resident[i] / S, first = span * S, end = first + store_->length(size_t(span));
    size_t j = i;
    std::vector<int64_t> have;
    while (j < resident.size() && resident[j] / S == span) have.push_back(resident[j++]);
    have.erase(std::unique(have.begin(), have.end()), have.end());
    bool whole = true;
    for (int64_t t = first; t < end && whole; ++t) whole = std::binary_search(have.begin(), have.end(), t);
    if (whole) scores[size_t(span)] = 0.0;
    i = j;
  }
  last_.span_scores = scores;
  const int32_t budget = int32_t(layout_.refill / S);
  Choice choice = choose_spans(scores.data(), n_spans, budget, policy_.mass, policy_.min_spans,
                               policy_.neighbors, carried.data(), carried.size());
  last_.spans = choice.spans;
  last_.cores = choice.about;
  return choice.spans;
}

// Bring the chosen spans from L2 into the refill slots, in document order. Entries already in the pot
// as sinks or recent tokens are not duplicated; L1 is hidden while the answer is made.
void Session::refill(const std::vector<int64_t> &spans) {
  const int64_t *token = pot_.token();
  std::vector<int64_t> resident;
  for (int64_t s : kinds_slots(shown_while_answering())) resident.push_back(token[s]);
  std::sort(resident.begin(), resident.end());
  resident.erase(std::unique(resident.begin(), resident.end()), resident.end());
  const bool reuse = policy_.refill_mode == "reuse";
  auto started = std::chrono::steady_clock::now();
  const StoreMeta &m = store_->meta();
  std::vector<int32_t> ids(size_t(m.span_tokens));
  if (!reuse)
    for (int64_t span : spans) store_->read_tokens(size_t(span), ids.data());  // verifies the ids before use
  last_.read_s = seconds_since(started);
  std::vector<int64_t> starts;
  std::vector<int32_t> lengths;
  for (size_t i = 0; i < store_->span_count(); ++i)
    starts.push_back(store_->start(i)), lengths.push_back(store_->length(i));
  const std::vector<int64_t> free = free_in(REFILL);
  const Placement place =
      refill_placement(spans.data(), spans.size(), starts.data(), lengths.data(), starts.size(),
                       resident.data(), resident.size(), free.data(), free.size());
  const PotShape &p = pot_.shape();
  const size_t n = place.slots.size(), D = size_t(p.head_dim), heads = size_t(p.layers * p.kv_heads);
  const size_t size = acre_dtype_size(pot_.kv_dtype());
  std::vector<uint8_t> k(heads * n * D * size, 0), v(k.size(), 0);
  if (reuse) {  // the stored activations of the tokens refilled (keys as at position 0)
    std::vector<float> sk(heads * size_t(m.span_tokens) * D), sv(sk.size());
    for (int64_t span : spans) {
      started = std::chrono::steady_clock::now();
      store_->read(size_t(span), ids.data(), sk.data(), sv.data());
      last_.read_s += seconds_since(started);
      const int64_t first = store_->start(size_t(span)), len = store_->length(size_t(span));
      for (size_t r = 0; r < n; ++r) {
        const int64_t t = place.tokens[r];
        if (t < first || t >= first + len) continue;
        for (size_t h = 0; h < heads; ++h)
          for (size_t d = 0; d < D; ++d) {
            const size_t from = (h * size_t(len) + size_t(t - first)) * D + d, to = (h * n + r) * D + d;
            if (size == 4) {
              reinterpret_cast<float *>(k.data())[to] = sk[from];
              reinterpret_cast<float *>(v.data())[to] = sv[from];
            } else {
              reinterpret_cast<uint16_t *>(k.data())[to] = to_half(sk[from]);
              reinterpret_cast<uint16_t *>(v.data())[to] = to_half(sv[from]);
            }
          }
      }
    }
  }
  pot_.write(place.slots.data(), n, k.data(), v.data(), nullptr, REFILL, place.tokens.data());
  const std::vector<int64_t> l1 = slots_of(L1), recent = slots_of(RECENT);
  pot_.show(l1.data(), l1.size(), false);
  if (!policy_.answer_recent) pot_.show(recent.data(), recent.size(), false);
  if (!reuse)
    reencode();
  else if (!policy_.answer_recent)
    compact();
}

// The K/V of the refilled tokens computed in the context they are now shown in: the sinks and the
// refilled tokens before them, in document order (the recent window and L1 hidden).
void Session::reencode() {
  const int64_t *token = pot_.token();
  std::vector<int64_t> slots = slots_of(REFILL);
  std::stable_sort(slots.begin(), slots.end(), [&](int64_t a, int64_t b) { return token[a] < token[b]; });
  std::vector<int64_t> later;  // what the answer sees: a hidden recent window stays hidden
  for (int64_t s : kinds_slots({RECENT, REFILL}))
    if (pot_.mask()[s]) later.push_back(s);
  pot_.show(later.data(), later.size(), false);
  int64_t position = compact();  // the sinks
  const acre_geometry &g = bundle_.geometry;
  const int64_t heads = int64_t(g.layers) * g.kv_heads, D = g.head_dim;
  const size_t size = acre_dtype_size(g.kv_dtype);
  for (size_t done = 0; done < slots.size(); done += size_t(g.chunk)) {
    const size_t n = std::min(slots.size() - done, size_t(g.chunk));
    std::vector<int64_t> part(slots.begin() + long(done), slots.begin() + long(done + n)), tokens, at;
    std::vector<int32_t> ids;
    for (size_t i = 0; i < n; ++i) {
      tokens.push_back(token[part[i]]);
      ids.push_back(document_.ids[size_t(tokens.back())]);
      at.push_back(position + int64_t(i));
    }
    const std::vector<Output> &out = step(ids.data(), n, position);
    const std::vector<uint8_t> k = rows_of(output(out, "k_new"), heads, D, size, int64_t(n));
    const std::vector<uint8_t> v = rows_of(output(out, "v_new"), heads, D, size, int64_t(n));
    pot_.write(part.data(), n, k.data(), v.data(), at.data(), REFILL, tokens.data());
    position += int64_t(n);
  }
  pot_.show(later.data(), later.size(), true);
  compact();
}

void Session::ask(const std::vector<int32_t> &question, const std::vector<int32_t> &selection,
                  const std::vector<int64_t> &carried, const Decoding &decoding) {
  if (document_.ids.empty()) refuse("no document ingested; call ingest() or open_document() first");
  check_ids(question, "question");
  if (!engine_) refuse("the session has no engine");
  reset_question();
  const int64_t room = int64_t(free_in(QUESTION).size());
  if (int64_t(question.size()) >= room)
    refuse("the question has " + std::to_string(question.size()) + " tokens; only " + std::to_string(room) +
           " pot slots are left for it");
  last_ = Question{};
  decoding_ = decoding;
  rng_ = decoding.has_seed ? Rng(decoding.seed) : Rng::from_entropy();
  produced_ = 0, pending_ = -1, done_ = false;
  const bool refills = policy_.refill && store_ && store_->span_count();
  const std::vector<int32_t> &probe = !selection.empty() && refills ? selection : question;
  std::vector<double> attention(size_t(pot_.shape().capacity), 0.0);
  std::vector<std::vector<float>> queries;
  prefill(probe, &attention, &queries);
  if (refills) {
    const uint64_t read_before = store_->bytes_read();
    const std::vector<int64_t> spans = select_spans(attention, queries, probe, carried);
    const std::vector<int64_t> asked = slots_of(QUESTION);  // refilled spans must not see the question
    pot_.clear(asked.data(), asked.size());
    if (policy_.answer_recent) park_recent();  // the refill moves it; reset_question puts it back
    refill(spans);
    last_.bytes_read = store_->bytes_read() - read_before;
    compact();
    prefill(question, nullptr, nullptr);
  }
  std::vector<int64_t> shown;
  for (int64_t s : pot_.slots_of(DOCUMENT_KINDS, 4))
    if (pot_.mask()[s]) shown.push_back(pot_.token()[s]);
  std::sort(shown.begin(), shown.end());
  last_.prompt_ids.clear();
  for (int64_t t : shown) last_.prompt_ids.push_back(document_.ids[size_t(t)]);
  last_.prompt_ids.insert(last_.prompt_ids.end(), question.begin(), question.end());
  asking_ = true;
}

int32_t Session::next() {
  if (!asking_ || done_) return -1;
  if (pending_ >= 0) {  // the token answered last is prefilled when the next one is asked for
    if (free_in(QUESTION).empty()) return finish();  // the question region is full: the answer is cut here
    const std::vector<int32_t> one{pending_};
    pending_ = -1;
    prefill(one, nullptr, nullptr);
  }
  if (produced_ >= decoding_.max_new_tokens) return finish();
  const int32_t token = sample(logits_.data(), logits_.size(), decoding_.temperature, decoding_.top_p, rng_);
  ++produced_;
  const auto &stops = stop_ids_;
  if (decoding_.stop_at_eos && std::find(stops.begin(), stops.end(), token) != stops.end()) return finish();
  pending_ = token;
  return token;
}

int32_t Session::finish() {
  done_ = true;
  return -1;
}

}  // namespace acre
