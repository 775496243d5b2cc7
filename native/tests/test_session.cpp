// The session through the C ABI (ctest), on the vector bundle with a byte-level tokenizer and a step
// callback whose outputs depend on its inputs alone: an ingest that is interrupted and resumed must end
// byte-identical to one that was not; a question refills spans and decodes the same answer every time.
// Also the policies and their layouts, sampling (numpy's default_rng stream), and the refusals (bad ids,
// another document's store, a pot too small, a question without a document or room).
#include <unistd.h>

#include <algorithm>
#include <cmath>

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "check.hpp"

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::refused;

namespace {

fs::path scratch(const std::string &name) { return test::scratch("acre_session_test", name); }

using test::read_file;

// The vector bundle with the step's signature and a byte-level BPE of the 256 bytes (no merges).
fs::path session_bundle() {
  fs::path dir = scratch("bundle");
  fs::copy(fs::path(ACRE_VECTORS_DIR) / "bundle", dir, fs::copy_options::recursive);
  json vocab = json::object();
  for (int b = 0, shifted = 256; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const int cp = printable ? b : shifted++;
    std::string utf8 =
        cp < 0x80 ? std::string(1, char(cp)) : std::string{char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
    vocab[utf8] = b;
  }
  const json tokenizer = {
      {"version", "1.0"},
      {"added_tokens", json::array()},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
  const std::string text = tokenizer.dump();
  std::ofstream(dir / "tokenizer" / "tokenizer.json", std::ios::binary) << text;
  json m = json::parse(read_file(dir / "manifest.json"));
  m["step"]["inputs"] = {"tokens",  "positions", "pot_mask", "last_index",
                         "pot_k_0", "pot_k_1",   "pot_v_0",  "pot_v_1"};
  m["step"]["outputs"] = {"logits", "k_new", "v_new", "pot_attention", "q_probe"};
  m["files"]["tokenizer/tokenizer.json"]["bytes"] = text.size();
  std::ofstream(dir / "manifest.json", std::ios::binary) << m.dump(2);
  return dir;
}

// A step whose outputs are a function of its inputs: k/v from token and position, the attention from
// the chunk's tokens and the visible slots. stop_after: fail that call (an interrupted ingest).
struct Fake {
  int calls = 0, stop_after = -1;
};

int32_t fake_step(void *user, int32_t rows, const acre_buffer *in, size_t, const acre_buffer *out, size_t,
                  char *error, size_t capacity) {
  auto *fake = static_cast<Fake *>(user);
  if (++fake->calls == fake->stop_after) {
    std::snprintf(error, capacity, "stopped at call %d", fake->calls);
    return 1;
  }
  const auto *tokens = static_cast<const int64_t *>(in[0].data),
             *positions = static_cast<const int64_t *>(in[1].data);
  const auto *mask = static_cast<const uint8_t *>(in[2].data);
  const int64_t P = int64_t(in[2].bytes), heads = 2 * 2, D = 4;
  for (size_t i = 0; i < 5; ++i) std::memset(out[i].data, 0, out[i].bytes);
  auto *k = static_cast<float *>(out[1].data), *v = static_cast<float *>(out[2].data);
  auto *attention = static_cast<float *>(out[3].data);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t d = 0; d < D; ++d) {
        k[(h * rows + r) * D + d] =
            float((tokens[r] * 7 + h * 3 + d) % 11) - 5.0f + 0.01f * float(positions[r] % 5);
        v[(h * rows + r) * D + d] = float((tokens[r] + h + d) % 5);
      }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < P; ++j)
      attention[r * P + j] = mask[j] ? float(1 + (tokens[r] * 7 + j * 13) % 17) / 100.0f : 0.0f;
  static_cast<float *>(out[0].data)[tokens[0] % 300] = 1.0f;
  return 0;
}

struct Fixture {
  acre_bundle *bundle = nullptr;
  acre_pot *pot = nullptr;
  acre_engine *engine = nullptr;
  acre_policy *policy = nullptr;
  acre_session *session = nullptr;
  Fake fake;

  explicit Fixture(const fs::path &dir, const char *name = "acre", const char *switches = nullptr) {
    CHECK(acre_bundle_open(dir.c_str(), 0, &bundle) == ACRE_OK);
    acre_geometry g{};
    acre_bundle_geometry(bundle, &g);
    const double freq[2] = {1.0, 0.01};
    CHECK(acre_pot_new(g.layers, g.kv_heads, g.pot, g.head_dim, g.kv_dtype, freq, 2, &pot) == ACRE_OK);
    CHECK(acre_engine_open_callback(bundle, fake_step, &fake, nullptr, &engine) == ACRE_OK);
    CHECK(acre_policy_new(name, switches, &policy) == ACRE_OK);
    acre_session_config c{64, 8, nullptr, 64, "fingerprint", nullptr};
    CHECK(acre_session_new(bundle, pot, policy, &c, &session) == ACRE_OK);
    CHECK(acre_session_set_engine(session, engine) == ACRE_OK);
  }
  ~Fixture() {
    acre_session_free(session);
    acre_policy_free(policy);
    acre_engine_free(engine);
    acre_pot_free(pot);
    acre_bundle_free(bundle);
  }

  acre_status ingest(const std::vector<int32_t> &ids, const fs::path *store, bool replace = false,
                     int64_t *n = nullptr) {
    acre_document d{ids.data(), ids.size(), nullptr, 0, nullptr};
    int64_t got = 0;
    return acre_session_ingest(session, &d, store ? store->c_str() : nullptr, 1, replace, nullptr, nullptr,
                               n ? n : &got);
  }
  std::string pot_bytes() const {  // all six arrays
    std::string out;
    for (size_t i = 0; i < ACRE_POT_ARRAYS; ++i) {
      acre_array a{};
      acre_pot_array(pot, i, &a);
      out.append(static_cast<const char *>(a.data), a.info.bytes);
    }
    return out;
  }
  std::string slot_table() const {  // positions, mask, kind, token
    std::string out;
    for (size_t i = 2; i < ACRE_POT_ARRAYS; ++i) {
      acre_array a{};
      acre_pot_array(pot, i, &a);
      out.append(static_cast<const char *>(a.data), a.info.bytes);
    }
    return out;
  }
  std::vector<int32_t> document() const {
    acre_array ids{}, text{}, offsets{};
    CHECK(acre_session_document(session, &ids, &text, &offsets) == ACRE_OK);
    const auto *p = static_cast<const int32_t *>(ids.data);
    return std::vector<int32_t>(p, p + ids.info.dims[0]);
  }
};

std::vector<int32_t> document(int n, int seed) {
  std::vector<int32_t> ids;
  for (int i = 0; i < n; ++i) ids.push_back(int32_t((i * 37 + seed * 101) % 290 + 3));
  return ids;
}

void test_policies_resolve_switches_and_plan_layouts() {
  acre_policy *p = nullptr;
  CHECK(acre_policy_new("acre", "{\"use_tree\": false, \"neighbors\": 2}", &p) == ACRE_OK);
  const json resolved = json::parse(acre_policy_json(p));
  CHECK(resolved["use_tree"] == false && resolved["neighbors"] == 2 && resolved["l1"] == true);
  acre_layout l{};
  CHECK(acre_policy_layout(p, 1024, 128, 64, &l) == ACRE_OK);
  CHECK(l.sink == 32 && l.l1 == 288 && l.recent == 128 && l.refill == 384 && l.question == 192);
  CHECK(refused(acre_policy_layout(p, 300, 128, 64, &l), ACRE_ERR_INVALID_ARGUMENT,
                "too small for the 'acre'"));
  acre_policy_free(p);
  CHECK(acre_policy_new("streaming", nullptr, &p) == ACRE_OK);
  CHECK(acre_policy_layout(p, 1024, 128, 64, &l) == ACRE_OK);
  CHECK(l.l1 == 0 && l.refill == 0 && l.recent == 128 + 672);  // the rest goes to the recent window
  acre_policy_free(p);
  CHECK(refused(acre_policy_new("lru", nullptr, &p), ACRE_ERR_INVALID_ARGUMENT, "unknown policy 'lru'"));
  CHECK(refused(acre_policy_new("acre", "{\"bogus\": 1, \"also\": 2}", &p), ACRE_ERR_INVALID_ARGUMENT,
                "unknown policy switch 'also'"));
  CHECK(refused(acre_policy_new("acre", "{\"use_tree\": 1}", &p), ACRE_ERR_INVALID_ARGUMENT,
                "'use_tree' cannot be 1"));
  CHECK(refused(acre_policy_new("acre", "{\"refill_mode\": \"copy\"}", &p), ACRE_ERR_INVALID_ARGUMENT,
                "reencode or reuse"));
  CHECK(refused(
      acre_policy_new("acre", "{\"use_attention\": false, \"use_index\": false, \"use_lexical\": false}", &p),
      ACRE_ERR_INVALID_ARGUMENT, "at least one of"));
  CHECK(p == nullptr && acre_policy_name(3) == std::string("acre") && acre_policy_name(4) == nullptr);
}

void test_an_ingest_fills_the_regions_and_writes_every_span() {
  const fs::path dir = session_bundle(), store = scratch("store");
  Fixture f(dir);
  const std::vector<int32_t> ids = document(600, 1);
  int64_t n = 0;
  CHECK(f.ingest(ids, &store, false, &n) == ACRE_OK && n == 600);
  CHECK(f.document() == ids && acre_session_resumed_from(f.session) == -1);
  acre_layout l{};
  acre_session_layout(f.session, &l);
  CHECK(l.sink == 16 && l.l1 == 64 && l.recent == 16 && l.refill == 64 && l.question == 96);
  acre_array kind{}, mask{}, positions{};
  acre_pot_array(f.pot, 4, &kind), acre_pot_array(f.pot, 3, &mask), acre_pot_array(f.pot, 2, &positions);
  int counts[6] = {0};
  for (int64_t s = 0; s < 256; ++s) ++counts[static_cast<const int8_t *>(kind.data)[s]];
  CHECK(counts[ACRE_SLOT_SINK] == 16 && counts[ACRE_SLOT_L1] == 64 && counts[ACRE_SLOT_RECENT] == 16);
  int64_t first = 0, count = 0;
  CHECK(acre_session_region(f.session, ACRE_SLOT_L1, &first, &count) == ACRE_OK && first == 16 &&
        count == 64);
  acre_store *s = nullptr;
  CHECK(acre_session_store(f.session, &s) == ACRE_OK && s != nullptr);
  CHECK(acre_store_span_count(s) == 10);  // ceil(600 / 64)
  const json info = json::parse(acre_store_info_json(s));
  CHECK(info["complete"] == true && info["policy"] == "acre" && info["document_tokens"] == 600);
  acre_store_free(s);
  CHECK(!fs::exists(store / "resume.npz"));  // a finished store keeps no checkpoint
}

void test_a_reopened_document_restores_the_pot_without_stepping() {
  const fs::path dir = session_bundle(), store = scratch("reopen");
  std::string pot;
  {
    Fixture f(dir);
    CHECK(f.ingest(document(500, 2), &store) == ACRE_OK);
    pot = f.pot_bytes();
  }
  Fixture again(dir);
  int64_t n = 0;
  CHECK(acre_session_open_document(again.session, store.c_str(), &n) == ACRE_OK && n == 500);
  CHECK(again.pot_bytes() == pot && again.document() == document(500, 2) && again.fake.calls == 0);
  // ingesting the same document into the same store reopens it too
  CHECK(again.ingest(document(500, 2), &store, false, &n) == ACRE_OK && n == 500);
  CHECK(acre_session_resumed_from(again.session) == 500 && again.fake.calls == 0);
  Fixture streaming(dir, "streaming");
  CHECK(refused(acre_session_open_document(streaming.session, store.c_str(), &n), ACRE_ERR_INVALID_ARGUMENT,
                "keeps no L2 store"));
}

void test_an_interrupted_ingest_resumes_and_ends_identical() {
  const fs::path dir = session_bundle(), ref = scratch("ref"), doc = scratch("doc");
  const std::vector<int32_t> ids = document(900, 3);
  std::string pot;
  {
    Fixture f(dir);
    CHECK(f.ingest(ids, &ref) == ACRE_OK);
    pot = f.pot_bytes();
  }
  {
    Fixture f(dir);
    f.fake.stop_after = 40;
    CHECK(refused(f.ingest(ids, &doc), ACRE_ERR_ENGINE, "stopped at call 40"));
    CHECK(f.document().empty());
  }
  Fixture resumed(dir);
  CHECK(resumed.ingest(ids, &doc) == ACRE_OK);
  const int64_t from = acre_session_resumed_from(resumed.session);
  CHECK(from >= 39 * 12 - 64 && from < 900 && resumed.fake.calls < 900 / 12);  // not from the start
  CHECK(read_file(doc / "spans.bin") == read_file(ref / "spans.bin") && resumed.pot_bytes() == pot);
  CHECK(read_file(doc / "pot.npz") == read_file(ref / "pot.npz"));
}

void test_a_store_of_another_document_is_refused_unless_replaced() {
  const fs::path dir = session_bundle(), store = scratch("other");
  Fixture f(dir);
  CHECK(f.ingest(document(300, 4), &store) == ACRE_OK);
  const uint64_t epoch = acre_session_epoch(f.session);
  CHECK(refused(f.ingest(document(300, 5), &store), ACRE_ERR_STORE, "already holds another document"));
  CHECK(f.document() == document(300, 4) && acre_session_epoch(f.session) == epoch);  // nothing lost
  int64_t n = 0;
  CHECK(f.ingest(document(300, 5), &store, true, &n) == ACRE_OK && n == 300);
  CHECK(acre_session_resumed_from(f.session) == -1 && f.document() == document(300, 5));
  Fixture another(dir);  // the first session still writes it: its lock refuses a second writer
  CHECK(refused(another.ingest(document(300, 6), &store, true), ACRE_ERR_STORE, "another process"));
}

void test_bad_input_is_refused_and_loses_nothing() {
  const fs::path dir = session_bundle(), store = scratch("bad");
  Fixture f(dir);
  CHECK(f.ingest(document(200, 7), &store) == ACRE_OK);
  const std::string pot = f.pot_bytes();
  CHECK(refused(f.ingest({}, &store), ACRE_ERR_INVALID_ARGUMENT, "the document has no tokens"));
  CHECK(refused(f.ingest({5, 300}, &store), ACRE_ERR_INVALID_ARGUMENT, "token id 300 outside"));
  CHECK(refused(f.ingest({5, -1}, nullptr), ACRE_ERR_INVALID_ARGUMENT, "token id -1 outside"));
  int64_t n = 0;
  CHECK(f.pot_bytes() == pot && f.document() == document(200, 7));
  CHECK(refused(acre_session_ingest(f.session, nullptr, nullptr, 1, 0, nullptr, nullptr, &n),
                ACRE_ERR_INVALID_ARGUMENT, "document is NULL"));
  Fixture full(dir, "full");
  CHECK(refused(full.ingest(document(256, 1), nullptr), ACRE_ERR_INVALID_ARGUMENT,
                "the 'full' policy keeps all"));
  CHECK(full.ingest(document(255, 1), nullptr) == ACRE_OK);
  const int32_t one = 7;
  acre_array out[5];
  CHECK(refused(acre_session_step(f.session, &one, 1, 2048, out, 5), ACRE_ERR_INVALID_ARGUMENT,
                "exceed the model's window of 2048"));
}

int32_t stop_at_300(void *, int64_t done, int64_t) { return done >= 300 ? 1 : 0; }

void test_a_progress_callback_can_stop_an_ingest_that_then_resumes() {
  const fs::path dir = session_bundle(), store = scratch("progress");
  const std::vector<int32_t> ids = document(700, 8);
  {
    Fixture f(dir);
    acre_document d{ids.data(), ids.size(), nullptr, 0, nullptr};
    int64_t n = 0;
    CHECK(refused(acre_session_ingest(f.session, &d, store.c_str(), 1, 0, stop_at_300, nullptr, &n),
                  ACRE_ERR_CANCELLED, "stopped at token 300"));
  }
  Fixture f(dir);
  CHECK(f.ingest(ids, &store) == ACRE_OK && acre_session_resumed_from(f.session) > 0);
}

std::vector<int32_t> answer(acre_session *session) {
  std::vector<int32_t> tokens;
  for (int32_t t = 0; acre_session_next(session, &t) == ACRE_OK && t >= 0;) tokens.push_back(t);
  return tokens;
}

void test_a_question_refills_spans_and_decodes_the_same_answer_again() {
  const fs::path dir = session_bundle();
  for (const char *switches : {"{}", "{\"refill_mode\": \"reuse\"}", "{\"answer_recent\": false}"}) {
    const fs::path store = scratch("ask");
    Fixture f(dir, "acre", switches);
    CHECK(f.ingest(document(900, 9), &store) == ACRE_OK);
    const std::vector<int32_t> q{40, 41, 42, 43};
    const acre_decoding greedy{8, 0.0, 1.0, 0, 0, 0};
    CHECK(acre_session_ask(f.session, q.data(), q.size(), nullptr, 0, nullptr, 0, &greedy) == ACRE_OK);
    const std::vector<int32_t> first = answer(f.session);
    const std::string slots = f.slot_table();
    acre_question last{};
    CHECK(acre_session_last(f.session, &last) == ACRE_OK);
    CHECK(first.size() == 8 && last.n_spans >= 1 && last.n_scores == 15 && last.n_cores >= 1);  // 15 spans
    CHECK(std::is_sorted(last.spans, last.spans + last.n_spans));
    CHECK(last.n_prompt > q.size() &&
          std::equal(q.begin(), q.end(), last.prompt_ids + last.n_prompt - q.size()));
    acre_array kind{}, mask{}, token{};
    acre_pot_array(f.pot, 4, &kind), acre_pot_array(f.pot, 3, &mask), acre_pot_array(f.pot, 5, &token);
    int refilled = 0, l1_shown = 0;
    for (int64_t s = 0; s < 256; ++s) {
      const int8_t k = static_cast<const int8_t *>(kind.data)[s];
      const bool shown = static_cast<const uint8_t *>(mask.data)[s];
      if (k == ACRE_SLOT_REFILL) {
        ++refilled;
        const int64_t span = static_cast<const int64_t *>(token.data)[s] / 64;
        CHECK(std::find(last.spans, last.spans + last.n_spans, span) != last.spans + last.n_spans);
      }
      if (k == ACRE_SLOT_L1 && shown) ++l1_shown;
    }
    CHECK(refilled > 0 && l1_shown == 0);  // L1 is hidden while the answer is made
    // every question starts again from the document: the same answer and pot
    CHECK(acre_session_ask(f.session, q.data(), q.size(), nullptr, 0, nullptr, 0, &greedy) == ACRE_OK);
    // (the slot table, not the keys: a recent window moved for the refill and back is re-rotated twice)
    CHECK(answer(f.session) == first && f.slot_table() == slots);
    const acre_decoding sampled{12, 1.5, 0.9, 1, 7, 0};
    CHECK(acre_session_ask(f.session, q.data(), q.size(), nullptr, 0, nullptr, 0, &sampled) == ACRE_OK);
    const std::vector<int32_t> a = answer(f.session);
    CHECK(acre_session_ask(f.session, q.data(), q.size(), nullptr, 0, nullptr, 0, &sampled) == ACRE_OK);
    CHECK(a.size() == 12 && answer(f.session) == a);  // a seed draws the same tokens
  }
}

void test_a_question_is_refused_without_a_document_or_room() {
  const fs::path dir = session_bundle();
  Fixture f(dir);
  const std::vector<int32_t> q{40, 41};
  const acre_decoding d{4, 0.0, 1.0, 0, 0, 1};
  CHECK(refused(acre_session_ask(f.session, q.data(), q.size(), nullptr, 0, nullptr, 0, &d),
                ACRE_ERR_INVALID_ARGUMENT, "no document ingested"));
  int32_t t = 0;
  CHECK(acre_session_next(f.session, &t) == ACRE_OK && t == -1);  // nothing asked: nothing to decode
  CHECK(f.ingest(document(300, 1), nullptr) == ACRE_OK);
  const std::vector<int32_t> long_question(96, 5), bad{5, 400};
  CHECK(refused(acre_session_ask(f.session, long_question.data(), 96, nullptr, 0, nullptr, 0, &d),
                ACRE_ERR_INVALID_ARGUMENT, "only 96 pot slots are left"));
  CHECK(refused(acre_session_ask(f.session, bad.data(), 2, nullptr, 0, nullptr, 0, &d),
                ACRE_ERR_INVALID_ARGUMENT, "the question has token id 400"));
  const acre_decoding negative{-1, 0.0, 1.0, 0, 0, 1};
  CHECK(refused(acre_session_ask(f.session, q.data(), q.size(), nullptr, 0, nullptr, 0, &negative),
                ACRE_ERR_INVALID_ARGUMENT, "max_new_tokens"));
  CHECK(acre_session_ask(f.session, q.data(), q.size(), nullptr, 0, nullptr, 0, &d) == ACRE_OK);
}

void test_the_rng_is_numpys_default_rng_and_top_p_keeps_the_nucleus() {
  acre_rng *rng = nullptr;
  CHECK(acre_rng_new(1, 0, &rng) == ACRE_OK);  // np.random.default_rng(0).random() x 2
  CHECK(acre_rng_uniform(rng) == 0.6369616873214543 && acre_rng_uniform(rng) == 0.2697867137638703);
  acre_rng_free(rng);
  CHECK(acre_rng_new(1, 1ULL << 40, &rng) == ACRE_OK);  // a seed of two words
  CHECK(acre_rng_uniform(rng) == 0.3608095734199638);
  acre_rng_free(rng);
  const float logits[4] = {std::log(0.5f), std::log(0.3f), std::log(0.15f), std::log(0.05f)};
  CHECK(acre_rng_new(1, 0, &rng) == ACRE_OK);
  int seen[4] = {0};
  for (int i = 0; i < 300; ++i) {
    int32_t t = -1;
    CHECK(acre_sample(logits, 4, 1.0, 0.7, rng, &t) == ACRE_OK && t >= 0 && t < 4);
    ++seen[t];
  }
  CHECK(seen[0] && seen[1] && !seen[2] && !seen[3]);
  int32_t t = -1;
  CHECK(acre_sample(logits, 4, 0.0, 1.0, rng, &t) == ACRE_OK && t == 0);
  CHECK(refused(acre_sample(logits, 0, 1.0, 1.0, rng, &t), ACRE_ERR_INVALID_ARGUMENT, "no logits"));
  acre_rng_free(rng);
}

}  // namespace

int main() {
  test_policies_resolve_switches_and_plan_layouts();
  test_an_ingest_fills_the_regions_and_writes_every_span();
  test_a_reopened_document_restores_the_pot_without_stepping();
  test_an_interrupted_ingest_resumes_and_ends_identical();
  test_a_store_of_another_document_is_refused_unless_replaced();
  test_bad_input_is_refused_and_loses_nothing();
  test_a_progress_callback_can_stop_an_ingest_that_then_resumes();
  test_a_question_refills_spans_and_decodes_the_same_answer_again();
  test_a_question_is_refused_without_a_document_or_room();
  test_the_rng_is_numpys_default_rng_and_top_p_keeps_the_nucleus();
  fs::remove_all(test::scratch_root("acre_session_test"));
  return test::finish("acre_session_test");
}
