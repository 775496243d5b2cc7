// Fuzz target: an L2 store's spans.bin (l2.cpp) and the span index read from it (span_index.cpp).
// The input is spans.bin of three stores of tests/vectors' geometry (S 4, L 2, Hkv 2, D 4, Lp 2, R 2),
// one per codec (float16, int8, none), each made by the core. Each store gets the input as it is, and
// again with every whole record's two crc32s made right (so the fuzzer reaches what a checksum guards:
// the decoders and the index). Opened read-only, every span is read (ids, K/V, representatives), the
// span index is built from the store and searched with and without its tree. Refusals: ACRE_ERR_STORE
// from the store, ACRE_ERR_INVALID_ARGUMENT from the index (no spans, keys that are inf or NaN). The
// float16 store is also opened for writing (a torn record is cut off), a span appended and read back,
// and the store finished.
#include <zlib.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz.hpp"

namespace {

using test::array;
constexpr int32_t S = 4, L = 2, H = 2, D = 4, LP = 2, R = 2, QUERY_HEADS = 4, TOKENS = 2;
constexpr size_t HEADER = ACRE_STORE_RECORD_HEADER_BYTES;
constexpr const char *CODECS[] = {"float16", "int8", "none"};

acre_store_meta meta(const char *codec) { return {"vectors", S, L, H, D, LP, R, codec}; }

// The input with both crc32s of every whole record set as the writer sets them (tests/vectors/README.md).
std::string with_crcs(const uint8_t *data, size_t size, size_t record_bytes) {
  std::string out(reinterpret_cast<const char *>(data), size);
  auto *bytes = reinterpret_cast<uint8_t *>(out.data());
  for (size_t at = 0; at + record_bytes <= size; at += record_bytes) {
    uint8_t *rec = bytes + at;
    const auto token_crc = uint32_t(::crc32(0, rec + HEADER, 4 * S));
    std::memcpy(rec + 24, &token_crc, 4);
    std::memset(rec + 20, 0, 4);
    const auto crc = uint32_t(::crc32(0, rec, uInt(record_bytes)));
    std::memcpy(rec + 20, &crc, 4);
  }
  return out;
}

// Every span of an open store read back, and the span index built from it and searched.
void read_all(acre_store *store, bool keeps_kv) {
  const size_t spans = acre_store_span_count(store);
  std::vector<int32_t> tokens(S);
  std::vector<float> k(size_t(L) * H * S * D), v(k.size());
  for (size_t i = 0; i < spans; ++i) {
    int64_t start = 0;
    int32_t n = 0;
    fuzz::expect(acre_store_span(store, i, &start, &n), {}, "acre_store_span");
    if (n < 1 || n > S || start < 0) fuzz::finding("a span of " + std::to_string(n) + " tokens served");
    const acre_buffer t{tokens.data(), 4 * size_t(n)}, kb{k.data(), 4 * size_t(L * H * n * D)},
        vb{v.data(), 4 * size_t(L * H * n * D)};
    fuzz::expect(acre_store_read_tokens(store, i, &t), {ACRE_ERR_STORE}, "acre_store_read_tokens");
    const acre_status read = acre_store_read(store, i, &t, &kb, &vb);
    if (fuzz::expect(read, {ACRE_ERR_STORE}, "acre_store_read") && !keeps_kv)
      fuzz::finding("a store of codec none served K/V");
  }
  std::vector<uint16_t> reps(spans * LP * H * R * D + 1);
  const acre_buffer rb{reps.data(), 2 * (reps.size() - 1)};
  fuzz::expect(acre_store_read_reps(store, 0, spans, &rb), {ACRE_ERR_STORE}, "acre_store_read_reps");

  for (int32_t fanout : {2, 8}) {
    acre_span_index *index = nullptr;
    if (!fuzz::expect(acre_span_index_from_store(store, fanout, &index), {ACRE_ERR_INVALID_ARGUMENT},
                      "acre_span_index_from_store"))
      continue;
    if (acre_span_index_span_count(index) != spans) fuzz::finding("the span index lost spans");
    std::vector<float> queries(size_t(LP) * QUERY_HEADS * TOKENS * D);
    for (size_t i = 0; i < queries.size(); ++i) queries[i] = float(int(i % 7) - 3) * 0.25f;
    const acre_array q = array("queries", ACRE_DTYPE_FLOAT32, {LP, QUERY_HEADS, TOKENS, D}, queries.data());
    const int32_t heads[] = {0, 0, 1, 3};
    std::vector<double> scores(spans);
    for (int tree : {1, 0}) {
      fuzz::expect(acre_span_index_scores(index, &q, heads, 2, 2, tree, scores.data(), scores.size()), {},
                   "acre_span_index_scores");
      for (double score : scores)
        if (std::isnan(score) || (!tree && std::isinf(score)))
          fuzz::finding("a span index score of NaN or inf");
    }
    acre_span_index_free(index);
  }
}

// Opened for writing, as a session resuming an ingest opens it: a torn tail is cut off; then one more
// span (refused after a partial one), read back, and the store finished.
void append_one(const std::string &dir) {
  acre_store *store = nullptr;
  if (!fuzz::expect(acre_store_open(dir.c_str(), nullptr, 1, &store), {ACRE_ERR_STORE}, "acre_store_open"))
    return;
  const size_t before = acre_store_span_count(store);
  int64_t start = 0;
  int32_t n = 0;
  if (before) fuzz::expect(acre_store_span(store, before - 1, &start, &n), {}, "acre_store_span");
  std::vector<int32_t> ids{7, 8, 9, 10};
  std::vector<float> k(size_t(L) * H * S * D, 0.5f), v(k.size(), -0.25f), reps(size_t(LP) * H * R * D, 1.0f);
  const acre_array t = array("tokens", ACRE_DTYPE_INT32, {S}, ids.data()),
                   ka = array("k", ACRE_DTYPE_FLOAT32, {L, H, S, D}, k.data()),
                   va = array("v", ACRE_DTYPE_FLOAT32, {L, H, S, D}, v.data()),
                   ra = array("reps", ACRE_DTYPE_FLOAT32, {LP, H, R, D}, reps.data());
  const auto next = int64_t(uint64_t(start) + uint64_t(n));  // a damaged header's start may be anything
  if (fuzz::expect(acre_store_append(store, next, &t, &ka, &va, &ra), {ACRE_ERR_INVALID_ARGUMENT},
                   "acre_store_append")) {
    std::vector<int32_t> back(S);
    std::vector<float> kb(k.size()), vb(k.size());
    const acre_buffer tb{back.data(), 4 * back.size()}, kbuf{kb.data(), 4 * kb.size()},
        vbuf{vb.data(), 4 * vb.size()};
    fuzz::expect(acre_store_read(store, before, &tb, &kbuf, &vbuf), {},
                 "acre_store_read of the appended span");
    if (back != ids || kb != k || vb != v) fuzz::finding("the appended span reads back otherwise");
  }
  const acre_array saved = array("document_ids", ACRE_DTYPE_INT32, {S}, ids.data());
  fuzz::expect(acre_store_finish(store, &saved, 1, "{}"), {}, "acre_store_finish");
  acre_store_free(store);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static fuzz::Scratch scratch("spans");
  static std::vector<std::string> headers;  // each store's store.json as made (finish rewrites it)
  static const std::vector<std::string> dirs = [] {
    std::vector<std::string> made;
    for (const char *codec : CODECS) {
      const std::string dir = scratch.path(std::string(codec) + "/store.json").parent_path().string();
      const acre_store_meta m = meta(codec);
      acre_store *store = nullptr;
      fuzz::expect(acre_store_create(dir.c_str(), &m, nullptr, &store), {}, "acre_store_create");
      acre_store_free(store);
      made.push_back(dir);
      headers.push_back(test::read_file(dir + "/store.json"));
    }
    return made;
  }();

  for (size_t c = 0; c < dirs.size(); ++c) {
    const acre_store_meta m = meta(CODECS[c]);
    size_t record_bytes = 0;
    fuzz::expect(acre_store_record_bytes(&m, &record_bytes), {}, "acre_store_record_bytes");
    const std::string raw(reinterpret_cast<const char *>(data), size);
    for (const std::string &spans : {raw, with_crcs(data, size, record_bytes)}) {
      fuzz::write_file(dirs[c] + "/store.json", headers[c]);
      fuzz::write_file(dirs[c] + "/spans.bin", spans);
      acre_store *store = nullptr;
      if (!fuzz::expect(acre_store_open(dirs[c].c_str(), nullptr, 0, &store), {ACRE_ERR_STORE},
                        "acre_store_open"))
        continue;
      if (acre_store_span_count(store) > spans.size() / record_bytes)
        fuzz::finding("more spans than records");
      read_all(store, c != 2);
      acre_store_free(store);
      if (c == 0) append_one(dirs[c]);
    }
  }
  return 0;
}
