// The L2 store through the C ABI: round trips of both codecs, reopening, torn and corrupt records,
// the writer's lock, refusals naming the file, snapshots and checkpoints, bad input. numpy parity
// (float16 rounding, .npz files np.savez wrote) is checked by tests/test_l2.py, which has numpy.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "acre.h"
#include "check.hpp"

namespace fs = std::filesystem;

namespace {

using test::array;
using test::error_mentions;
using test::read_file;

fs::path scratch(const std::string &name) { return test::scratch("acre_l2_test", name); }

void write(const fs::path &path, const std::string &data) { std::ofstream(path, std::ios::binary) << data; }

constexpr int32_t S = 4, L = 2, H = 2, D = 8, LP = 1, R = 2;

acre_store_meta meta(const char *codec, const char *fingerprint = "model-a") {
  return {fingerprint, S, L, H, D, LP, R, codec};
}

// A span of n tokens with K/V values that float16 keeps exactly (multiples of 1/8 below 64).
struct SpanData {
  std::vector<int32_t> tokens;
  std::vector<float> k, v, reps;
  SpanData(int32_t n, int seed)
      : tokens(n), k(size_t(L) * H * n * D), v(k.size()), reps(size_t(LP) * H * R * D) {
    for (int32_t i = 0; i < n; ++i) tokens[i] = 100 * seed + i;
    for (size_t i = 0; i < k.size(); ++i) k[i] = float(int(i * 7 + seed) % 97 - 48) / 8, v[i] = -k[i] / 2;
    for (size_t i = 0; i < reps.size(); ++i) reps[i] = float(i + seed) / 4;
  }
};

acre_status append(acre_store *store, int64_t start, const SpanData &d) {
  const int64_t n = int64_t(d.tokens.size());
  const acre_array t = array("tokens", ACRE_DTYPE_INT32, {n}, d.tokens.data());
  const acre_array k = array("k", ACRE_DTYPE_FLOAT32, {L, H, n, D}, d.k.data());
  const acre_array v = array("v", ACRE_DTYPE_FLOAT32, {L, H, n, D}, d.v.data());
  const acre_array r = array("reps", ACRE_DTYPE_FLOAT32, {LP, H, R, D}, d.reps.data());
  return acre_store_append(store, start, &t, &k, &v, &r);
}

// A store of spans of 4, 4 and 3 tokens; returns the spans written.
std::vector<SpanData> fill(acre_store *store) {
  std::vector<SpanData> spans{SpanData(S, 1), SpanData(S, 2), SpanData(3, 3)};
  int64_t start = 0;
  for (const SpanData &d : spans) {
    CHECK(append(store, start, d) == ACRE_OK);
    start += int64_t(d.tokens.size());
  }
  return spans;
}

bool reads_back(acre_store *store, size_t span, const SpanData &d, float tolerance) {
  const size_t n = d.tokens.size();
  std::vector<int32_t> tokens(n);
  std::vector<float> k(d.k.size()), v(d.v.size());
  const acre_buffer tb{tokens.data(), 4 * n}, kb{k.data(), 4 * k.size()}, vb{v.data(), 4 * v.size()};
  if (acre_store_read(store, span, &tb, &kb, &vb) != ACRE_OK || tokens != d.tokens) return false;
  for (size_t i = 0; i < k.size(); ++i)
    if (std::fabs(k[i] - d.k[i]) > tolerance || std::fabs(v[i] - d.v[i]) > tolerance) return false;
  return true;
}

acre_store *create(const fs::path &dir, const char *codec = "float16") {
  const acre_store_meta m = meta(codec);
  acre_store *store = nullptr;
  CHECK(acre_store_create(dir.c_str(), &m, "digest", &store) == ACRE_OK);
  return store;
}

acre_store *open(const fs::path &dir, int writable = 0, const char *fingerprint = nullptr) {
  acre_store *store = nullptr;
  acre_store_open(dir.c_str(), fingerprint, writable, &store);
  return store;
}

void test_both_codecs_round_trip_and_reopen() {
  for (const char *codec : {"float16", "int8"}) {
    const fs::path dir = scratch(std::string("round_") + codec);
    acre_store *store = create(dir, codec);
    const std::vector<SpanData> spans = fill(store);
    const float tolerance = std::strcmp(codec, "int8") ? 0.0f : 6.0f / 127;  // float16 is exact here
    for (size_t i = 0; i < spans.size(); ++i) CHECK(reads_back(store, i, spans[i], tolerance));
    acre_store_free(store);
    store = open(dir, 0, "model-a");
    CHECK(store && acre_store_span_count(store) == 3);
    int64_t start = 0;
    int32_t n = 0;
    CHECK(acre_store_span(store, 2, &start, &n) == ACRE_OK && start == 8 && n == 3);
    CHECK(reads_back(store, 2, spans[2], tolerance));
    std::vector<uint16_t> reps(3 * LP * H * R * D);
    const acre_buffer out{reps.data(), 2 * reps.size()};
    CHECK(acre_store_read_reps(store, 0, 3, &out) == ACRE_OK);
    CHECK(reps[3] == 0x3c00 && reps[LP * H * R * D + 4] == 0x3e00);  // 1.0 and 1.5 as float16
    acre_store_free(store);
  }
}

void test_float16_rounds_to_nearest_even() {
  const fs::path dir = scratch("half");
  acre_store *store = create(dir);
  SpanData d(1, 0);
  const float in[] = {65504.0f,
                      65519.0f,
                      65520.0f,
                      1.0f + 1.0f / 2048,
                      1.0f + 3.0f / 2048,
                      5.960464477539063e-08f,
                      2.98023223876953125e-08f,
                      -0.0f};
  const float want[] = {65504.0f, 65504.0f, INFINITY, 1.0f, 1.0f + 2.0f / 1024, 5.960464477539063e-08f,
                        0.0f,     -0.0f};
  for (size_t i = 0; i < 8; ++i) d.k[i] = in[i];
  CHECK(append(store, 0, d) == ACRE_OK);
  std::vector<int32_t> tokens(1);
  std::vector<float> k(d.k.size()), v(d.v.size());
  const acre_buffer tb{tokens.data(), 4}, kb{k.data(), 4 * k.size()}, vb{v.data(), 4 * v.size()};
  CHECK(acre_store_read(store, 0, &tb, &kb, &vb) == ACRE_OK);
  for (size_t i = 0; i < 8; ++i) CHECK(k[i] == want[i] && std::signbit(k[i]) == std::signbit(want[i]));
  acre_store_free(store);
}

void test_a_torn_or_corrupt_last_record_is_discarded_and_a_corrupt_span_never_served() {
  const fs::path dir = scratch("torn");
  acre_store *store = create(dir);
  const std::vector<SpanData> spans = fill(store);
  const acre_store_meta m = meta("float16");
  size_t rb = 0;
  CHECK(acre_store_record_bytes(&m, &rb) == ACRE_OK && acre_store_disk_bytes(store) == 3 * rb);
  acre_store_free(store);
  const std::string data = read_file(dir / "spans.bin");
  for (size_t cut = 2 * rb; cut < 3 * rb; cut += 7) {
    write(dir / "spans.bin", data.substr(0, cut));
    store = open(dir, 1);
    CHECK(store && acre_store_span_count(store) == 2 && reads_back(store, 1, spans[1], 0));
    CHECK(fs::file_size(dir / "spans.bin") == 2 * rb);
    acre_store_free(store);
  }
  std::string flipped = data;
  flipped[rb + 100] ^= 0x40;         // inside span 1's K/V
  flipped[data.size() - 5] ^= 0x01;  // inside the last record
  write(dir / "spans.bin", flipped);
  store = open(dir);
  CHECK(store && acre_store_span_count(store) == 2);
  CHECK(!reads_back(store, 1, spans[1], 0) && error_mentions("spans.bin: span 1 fails its checksum"));
  std::vector<int32_t> ids(S);
  const acre_buffer tb{ids.data(), 4 * ids.size()};
  CHECK(acre_store_read_tokens(store, 1, &tb) == ACRE_OK && ids == spans[1].tokens);  // the ids are intact
  CHECK(reads_back(store, 0, spans[0], 0));
  CHECK(acre_store_read_tokens(store, 2, &tb) == ACRE_ERR_STORE && error_mentions("span 2 does not exist"));
  acre_store_free(store);
}

// A record whose first token runs past int64 (a flipped high byte, its crc32 made right: the last record's
// is checked on open) ends the store there, as any damaged header does, so the store never serves a span
// there or finishes with a document length that overflows (native/fuzz: fuzz_spans found it). The
// writer takes no such start either.
void test_a_first_token_past_int64_ends_the_store_there() {
  const fs::path dir = scratch("start");
  acre_store *store = create(dir);
  fill(store);
  acre_store_free(store);
  const acre_store_meta m = meta("float16");
  size_t rb = 0;
  CHECK(acre_store_record_bytes(&m, &rb) == ACRE_OK);
  const std::string data = read_file(dir / "spans.bin");
  for (uint64_t start : {uint64_t(INT64_MAX) - 2, uint64_t(1) << 63}) {
    std::string damaged = data;
    auto *last = reinterpret_cast<uint8_t *>(&damaged[2 * rb]);
    std::memcpy(last + 12, &start, 8);
    std::memset(last + 20, 0, 4);
    const auto crc = uint32_t(::crc32(0, last, uInt(rb)));
    std::memcpy(last + 20, &crc, 4);
    write(dir / "spans.bin", damaged);
    store = open(dir, 1);
    CHECK(store && acre_store_span_count(store) == 2 && fs::file_size(dir / "spans.bin") == 2 * rb);
    const int32_t ids[] = {1, 2};
    const acre_array saved = array("ids", ACRE_DTYPE_INT32, {2}, ids);
    CHECK(acre_store_finish(store, &saved, 1, "{}") == ACRE_OK &&
          std::string(acre_store_info_json(store)).find("\"document_tokens\": 8,") != std::string::npos);
    acre_store_free(store);
  }
  store = create(scratch("start_append"));
  CHECK(append(store, INT64_MAX - 1, SpanData(S, 1)) == ACRE_ERR_INVALID_ARGUMENT &&
        error_mentions("a span cannot start at token 9223372036854775806"));
  acre_store_free(store);
}

void test_one_writer_at_a_time() {
  const fs::path dir = scratch("lock");
  acre_store *first = create(dir);
  acre_store *second = open(dir, 1);
  CHECK(!second && error_mentions("another process is writing this document"));
  const acre_store_meta m = meta("float16");
  CHECK(acre_store_create(dir.c_str(), &m, nullptr, &second) == ACRE_ERR_STORE && !second);
  acre_store *reader = open(dir);
  CHECK(reader != nullptr);  // readers take no lock
  acre_store_free(reader);
  acre_store_free(first);
  second = open(dir, 1);
  CHECK(second != nullptr);
  acre_store_free(second);
}

void test_stores_that_cannot_be_served_are_refused_naming_the_file() {
  const fs::path dir = scratch("refusals");
  acre_store_free(create(dir));
  CHECK(!open(dir, 0, "model-b") && error_mentions("another model or bundle"));
  const std::string header = read_file(dir / "store.json");
  std::string other = header;
  other.replace(other.find("\"version\": 1"), 12, "\"version\": 7");
  write(dir / "store.json", other);
  CHECK(!open(dir) && error_mentions("store.json: L2 format version 7, expected 1"));
  write(dir / "store.json", "{\"format\": ");
  CHECK(!open(dir) && error_mentions("store.json: unreadable store header"));
  other = header;
  other.replace(other.find("\"layers\": 2"), 11, "\"layers\": -2");
  write(dir / "store.json", other);
  CHECK(!open(dir) && error_mentions("meta.layers must be a positive integer"));
  fs::remove(dir / "spans.bin");
  CHECK(!open(dir) && error_mentions("store.json or spans.bin missing"));
  CHECK(!open(scratch("absent")) && error_mentions("no such store"));
  write(dir.parent_path() / "notes.txt", "mine");
  CHECK(!open(dir.parent_path() / "notes.txt") && error_mentions("notes.txt: is a file"));
  size_t n = 0;
  CHECK(acre_store_peek((dir.parent_path() / "notes.txt").c_str(), nullptr, 0, &n) == ACRE_ERR_STORE);
  write(dir / "thesis.tex", "draft");
  CHECK(acre_store_peek(dir.c_str(), nullptr, 0, &n) == ACRE_ERR_STORE &&
        error_mentions("not an acre L2 store (it holds thesis.tex)"));
  CHECK(acre_store_peek(scratch("empty").c_str(), nullptr, 0, &n) == ACRE_OK && n == 0);
}

void test_snapshots_round_trip_and_damage_is_refused() {
  const fs::path dir = scratch("snapshots");
  acre_store *store = create(dir);
  fill(store);
  const std::vector<float> k{1.5f, -2.0f, 3.25f, 0.0f, 7.0f, 8.0f};
  const std::vector<int8_t> kind{1, -1, 3};
  const acre_array state[] = {array("k", ACRE_DTYPE_FLOAT32, {2, 3}, k.data()),
                              array("kind", ACRE_DTYPE_INT8, {3}, kind.data())};
  CHECK(acre_store_checkpoint(store, state, 2, "{\"next_token\": 8}") == ACRE_OK);
  acre_snapshot *saved = nullptr;
  CHECK(acre_store_load_checkpoint(store, &saved) == ACRE_OK && saved);
  CHECK(acre_snapshot_count(saved) == 2 &&
        std::string(acre_snapshot_info_json(saved)).find("\"spans\":3") != std::string::npos);
  acre_array got{};
  CHECK(acre_snapshot_array(saved, 0, &got) == ACRE_OK && std::string(got.info.name) == "k");
  CHECK(got.info.rank == 2 && got.info.dims[1] == 3 && std::memcmp(got.data, k.data(), 24) == 0);
  acre_snapshot_free(saved);
  const std::string resume = read_file(dir / "resume.npz");
  write(dir / "resume.npz", resume.substr(0, resume.size() / 2));
  CHECK(acre_store_load_checkpoint(store, &saved) == ACRE_OK && !saved);  // unusable: start again

  CHECK(acre_store_load_pot(store, &saved) == ACRE_ERR_STORE && error_mentions("ingest did not finish"));
  CHECK(acre_store_finish(store, state, 2, "{\"policy\": \"acre\"}") == ACRE_OK &&
        !fs::exists(dir / "resume.npz"));
  const std::string info = acre_store_info_json(store);
  CHECK(info.find("\"complete\": true") != std::string::npos &&
        info.find("\"pot_crc32\"") != std::string::npos);
  CHECK(info.find("\"document_tokens\": 11") != std::string::npos &&
        info.find("\"policy\": \"acre\"") != std::string::npos);
  acre_store_free(store);
  store = open(dir);
  CHECK(acre_store_load_pot(store, &saved) == ACRE_OK && acre_snapshot_count(saved) == 2);
  CHECK(acre_snapshot_array(saved, 1, &got) == ACRE_OK && got.info.dtype == ACRE_DTYPE_INT8);
  CHECK(std::memcmp(got.data, kind.data(), 3) == 0);
  acre_snapshot_free(saved);
  std::string pot = read_file(dir / "pot.npz");
  pot[pot.size() / 2] ^= 0x20;
  write(dir / "pot.npz", pot);
  CHECK(acre_store_load_pot(store, &saved) == ACRE_ERR_STORE &&
        error_mentions("pot.npz: missing or corrupt"));
  acre_store_free(store);
}

void test_bad_input_is_refused_clearly() {
  const fs::path dir = scratch("bad_input");
  acre_store *store = create(dir);
  SpanData d(S, 0);
  const acre_array t = array("tokens", ACRE_DTYPE_INT32, {S}, d.tokens.data());
  const acre_array wrong = array("k", ACRE_DTYPE_FLOAT32, {L, H, D, S}, d.k.data());  // transposed
  const acre_array r = array("reps", ACRE_DTYPE_FLOAT32, {LP, H, R, D}, d.reps.data());
  CHECK(acre_store_append(store, 0, &t, &wrong, &wrong, &r) == ACRE_ERR_INVALID_ARGUMENT &&
        error_mentions("k must be float32 [2, 2, 4, 8], not float32 [2, 2, 8, 4]"));
  const acre_array as_int = array("reps", ACRE_DTYPE_INT32, {LP, H, R, D}, d.reps.data());
  const acre_array k = array("k", ACRE_DTYPE_FLOAT32, {L, H, S, D}, d.k.data());
  CHECK(acre_store_append(store, 0, &t, &k, &k, &as_int) == ACRE_ERR_INVALID_ARGUMENT &&
        error_mentions("reps must be float32"));
  CHECK(acre_store_append(store, 0, &t, nullptr, nullptr, &r) == ACRE_ERR_INVALID_ARGUMENT &&
        error_mentions("k is NULL"));
  CHECK(acre_store_span_count(store) == 0 && acre_store_disk_bytes(store) == 0);
  SpanData partial(2, 1);
  CHECK(append(store, 0, partial) == ACRE_OK);
  CHECK(append(store, 2, d) == ACRE_ERR_INVALID_ARGUMENT && error_mentions("only the last span"));
  const acre_store_meta bad = meta("zip");
  acre_store *other = nullptr;
  CHECK(acre_store_create(scratch("codec").c_str(), &bad, nullptr, &other) == ACRE_ERR_STORE &&
        error_mentions("unknown L2 codec 'zip'"));
  CHECK(acre_store_read(store, 0, nullptr, nullptr, nullptr) == ACRE_ERR_INVALID_ARGUMENT);
  acre_store_free(store);
}

}  // namespace

int main() {
  test_both_codecs_round_trip_and_reopen();
  test_float16_rounds_to_nearest_even();
  test_a_torn_or_corrupt_last_record_is_discarded_and_a_corrupt_span_never_served();
  test_a_first_token_past_int64_ends_the_store_there();
  test_one_writer_at_a_time();
  test_stores_that_cannot_be_served_are_refused_naming_the_file();
  test_snapshots_round_trip_and_damage_is_refused();
  test_bad_input_is_refused_clearly();
  fs::remove_all(test::scratch_root("acre_l2_test"));
  return test::finish("acre_l2_test");
}
