// Fuzz target: an L2 store's store.json (l2.cpp: the header and its meta, which sizes every record). The
// store it heads is made by the core per process with tests/vectors' float16 geometry (3 spans, the last
// partial, and a finished pot.npz); its spans.bin and pot.npz are put back before each input. The input
// is peeked at, opened read-only (every span's ids and K/V read, the pot and the checkpoint loaded) and
// opened for writing. Refusals: ACRE_ERR_STORE (and ACRE_ERR_BUFFER_TOO_SMALL from a peek too small).
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz.hpp"

namespace {

using test::array;
constexpr int32_t S = 4, L = 2, H = 2, D = 4, LP = 2, R = 2;

struct Setup {
  fuzz::Scratch scratch{"store"};
  std::string dir, spans, pot;  // the store, and the bytes of its spans.bin and pot.npz

  Setup() {
    dir = scratch.path("store/store.json").parent_path().string();
    const acre_store_meta meta{"vectors", S, L, H, D, LP, R, "float16"};
    acre_store *store = nullptr;
    fuzz::expect(acre_store_create(dir.c_str(), &meta, nullptr, &store), {}, "acre_store_create");
    std::vector<int32_t> ids{5, 6, 7, 8};
    std::vector<float> k(size_t(L) * H * S * D, 0.5f), reps(size_t(LP) * H * R * D, 0.25f);
    for (int64_t n : {4, 4, 2}) {
      const acre_array t = array("tokens", ACRE_DTYPE_INT32, {n}, ids.data()),
                       ka = array("k", ACRE_DTYPE_FLOAT32, {L, H, n, D}, k.data()),
                       r = array("reps", ACRE_DTYPE_FLOAT32, {LP, H, R, D}, reps.data());
      fuzz::expect(acre_store_append(store, int64_t(acre_store_span_count(store)) * S, &t, &ka, &ka, &r), {},
                   "acre_store_append");
    }
    const acre_array saved = array("document_ids", ACRE_DTYPE_INT32, {4}, ids.data());
    fuzz::expect(acre_store_finish(store, &saved, 1, "{\"policy\": \"acre\"}"), {}, "acre_store_finish");
    acre_store_free(store);
    spans = test::read_file(dir + "/spans.bin");
    pot = test::read_file(dir + "/pot.npz");
  }
};

void read_all(acre_store *store) {
  acre_store_meta meta{};
  fuzz::expect(acre_store_get_meta(store, &meta), {}, "acre_store_get_meta");
  size_t record_bytes = 0;
  fuzz::expect(acre_store_record_bytes(&meta, &record_bytes), {}, "acre_store_record_bytes of an open store");
  const size_t values = size_t(meta.layers) * meta.kv_heads * meta.head_dim;
  for (size_t i = 0; i < acre_store_span_count(store); ++i) {
    int64_t start = 0;
    int32_t n = 0;
    fuzz::expect(acre_store_span(store, i, &start, &n), {}, "acre_store_span");
    if (n < 1 || n > meta.span_tokens) fuzz::finding("a span of " + std::to_string(n) + " tokens served");
    std::vector<int32_t> tokens(static_cast<size_t>(n));
    std::vector<float> k(values * size_t(n)), v(k.size());
    const acre_buffer t{tokens.data(), 4 * tokens.size()}, kb{k.data(), 4 * k.size()},
        vb{v.data(), 4 * v.size()};
    fuzz::expect(acre_store_read_tokens(store, i, &t), {ACRE_ERR_STORE}, "acre_store_read_tokens");
    fuzz::expect(acre_store_read(store, i, &t, &kb, &vb), {ACRE_ERR_STORE}, "acre_store_read");
  }
  acre_snapshot *snapshot = nullptr;
  if (fuzz::expect(acre_store_load_pot(store, &snapshot), {ACRE_ERR_STORE}, "acre_store_load_pot"))
    acre_snapshot_free(snapshot);
  snapshot = nullptr;
  fuzz::expect(acre_store_load_checkpoint(store, &snapshot), {}, "acre_store_load_checkpoint");
  acre_snapshot_free(snapshot);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static Setup setup;
  fuzz::write_file(setup.dir + "/store.json", data, size);
  fuzz::write_file(setup.dir + "/spans.bin", setup.spans);  // a writable open may have cut it
  fuzz::write_file(setup.dir + "/pot.npz", setup.pot);

  char peeked[4096];
  size_t n = 0;
  fuzz::expect(acre_store_peek(setup.dir.c_str(), peeked, sizeof peeked, &n),
               {ACRE_ERR_STORE, ACRE_ERR_BUFFER_TOO_SMALL}, "acre_store_peek");
  for (int writable : {0, 1}) {
    acre_store *store = nullptr;
    if (!fuzz::expect(acre_store_open(setup.dir.c_str(), nullptr, writable, &store), {ACRE_ERR_STORE},
                      "acre_store_open"))
      continue;
    if (!writable) read_all(store);
    acre_store_free(store);
  }
  return 0;
}
