// The pot through the C ABI (ctest): writes and the slot table, moves (re-rotation by the change, worked
// by hand), compaction in document order, un-rotated keys, snapshots put back, and the refusals.
#include <cmath>
#include <cstring>
#include <vector>

#include "../src/half.hpp"
#include "check.hpp"

namespace {

using test::array;
using test::refused;

constexpr int32_t L = 2, H = 1, P = 8, D = 4;
const double FREQ[2] = {1.0, 0.01};

acre_pot *make(acre_dtype dtype = ACRE_DTYPE_FLOAT32) {
  acre_pot *pot = nullptr;
  CHECK(acre_pot_new(L, H, P, D, dtype, FREQ, 2, &pot) == ACRE_OK);
  return pot;
}

template <class T>
T *data(acre_pot *pot, size_t index) {
  acre_array a{};
  CHECK(acre_pot_array(pot, index, &a) == ACRE_OK);
  return static_cast<T *>(const_cast<void *>(a.data));
}

float *key(acre_pot *pot, int32_t layer, int64_t slot) {
  return data<float>(pot, 0) + (layer * P + slot) * D;
}

// rows [L, H, n, D] whose value encodes (layer, row, d)
std::vector<float> rows(size_t n, float base = 1) {
  std::vector<float> r(L * H * n * D);
  for (size_t i = 0; i < r.size(); ++i) r[i] = base + float(i % 7) * 0.25f - float(i / 7) * 0.125f;
  return r;
}

// (x0, x1, y0, y1) rotated by `by` positions as the header states: float64 angles, float32 cos, sin, math
void rotate(float *x, int64_t by) {
  for (int i = 0; i < 2; ++i) {
    const float c = float(std::cos(double(by) * FREQ[i])), s = float(std::sin(double(by) * FREQ[i]));
    const float first = x[i], second = x[i + 2];
    const float a = first * c, b = second * s, e = second * c, f = first * s;
    x[i] = a - b, x[i + 2] = e + f;
  }
}

void test_new() {
  acre_pot *pot = nullptr;
  CHECK(
      refused(acre_pot_new(L, H, P, D, ACRE_DTYPE_INT64, FREQ, 2, &pot), ACRE_ERR_INVALID_ARGUMENT, "int64"));
  CHECK(pot == nullptr);
  CHECK(refused(acre_pot_new(L, H, P, 3, ACRE_DTYPE_FLOAT32, FREQ, 1, &pot), ACRE_ERR_INVALID_ARGUMENT,
                "head_dim even"));
  CHECK(refused(acre_pot_new(L, H, 0, D, ACRE_DTYPE_FLOAT32, FREQ, 2, &pot), ACRE_ERR_INVALID_ARGUMENT,
                "capacity 0"));
  CHECK(refused(acre_pot_new(L, H, P, D, ACRE_DTYPE_FLOAT32, FREQ, 1, &pot), ACRE_ERR_INVALID_ARGUMENT,
                "1 values for head_dim 4"));
  CHECK(refused(acre_pot_new(L, H, P, D, ACRE_DTYPE_FLOAT32, nullptr, 0, &pot), ACRE_ERR_INVALID_ARGUMENT,
                "0 values"));
  const double nan[2] = {1.0, std::nan("")};
  CHECK(refused(acre_pot_new(L, H, P, D, ACRE_DTYPE_FLOAT32, nan, 2, &pot), ACRE_ERR_INVALID_ARGUMENT,
                "finite"));
  pot = make();
  CHECK(acre_pot_capacity(pot) == size_t(P));
  CHECK(acre_pot_bytes(pot) == size_t(2 * L * H * P * D * 4 + P * 18));
  CHECK(acre_pot_used(pot) == 0);
  const char *names[] = {"k", "v", "positions", "mask", "kind", "token"};
  for (size_t i = 0; i < ACRE_POT_ARRAYS; ++i) {
    acre_array a{};
    CHECK(acre_pot_array(pot, i, &a) == ACRE_OK);
    CHECK(std::strcmp(a.info.name, names[i]) == 0);
  }
  acre_array a{};
  CHECK(refused(acre_pot_array(pot, 6, &a), ACRE_ERR_INVALID_ARGUMENT, "pot array 6"));
  CHECK(data<int64_t>(pot, 5)[3] == -1);
  acre_pot_free(pot);
  acre_pot_free(nullptr);
}

void test_write() {
  acre_pot *pot = make();
  const std::vector<float> r = rows(2);
  const acre_array k = array(ACRE_DTYPE_FLOAT32, {L, H, 2, D}, r.data());
  const int64_t slots[2] = {5, 2}, positions[2] = {7, 9}, tokens[2] = {40, 41};
  CHECK(acre_pot_write(pot, slots, 2, &k, &k, positions, ACRE_SLOT_RECENT, tokens) == ACRE_OK);
  CHECK(std::memcmp(key(pot, 1, 2), r.data() + (1 * 2 + 1) * D, D * 4) == 0);  // layer 1, row 1 -> slot 2
  CHECK(data<int64_t>(pot, 2)[5] == 7 && data<int64_t>(pot, 2)[2] == 9);
  CHECK(data<uint8_t>(pot, 3)[2] == 1 && data<uint8_t>(pot, 3)[0] == 0);
  CHECK(data<int8_t>(pot, 4)[5] == ACRE_SLOT_RECENT && data<int64_t>(pot, 5)[2] == 41);
  CHECK(acre_pot_used(pot) == 2);
  const int64_t one[1] = {0};
  const acre_array k1 = array(ACRE_DTYPE_FLOAT32, {L, H, 1, D}, r.data());
  CHECK(acre_pot_write(pot, one, 1, &k1, &k1, nullptr, ACRE_SLOT_SINK, nullptr) == ACRE_OK);
  CHECK(data<int64_t>(pot, 2)[0] == 0 && data<int64_t>(pot, 5)[0] == -1);
  const acre_array none = array(ACRE_DTYPE_FLOAT32, {L, H, 0, D}, nullptr);
  CHECK(acre_pot_write(pot, nullptr, 0, &none, &none, nullptr, ACRE_SLOT_SINK, nullptr) ==
        ACRE_OK);  // no error

  // refusals, each leaving the pot as it was
  const std::vector<float> before(key(pot, 0, 0), key(pot, 0, 0) + L * P * D);
  const int64_t out_of_range[2] = {1, P}, negative[2] = {-1, 1}, twice[2] = {3, 3};
  CHECK(refused(acre_pot_write(pot, out_of_range, 2, &k, &k, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "slot 8 at 1 is out of range"));
  CHECK(refused(acre_pot_write(pot, negative, 2, &k, &k, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "slot -1"));
  CHECK(refused(acre_pot_write(pot, twice, 2, &k, &k, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "given twice"));
  CHECK(refused(acre_pot_write(pot, slots, 2, &k, &k, nullptr, ACRE_SLOT_FREE, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "slot kind 0"));
  CHECK(refused(acre_pot_write(pot, slots, 2, &k, &k, nullptr, acre_slot_kind(9), nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "slot kind 9"));
  CHECK(refused(acre_pot_write(pot, slots, 1, &k, &k, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "not [L, Hkv, n, D] = [2, 1, 1, 4]"));
  const std::vector<uint16_t> half(L * H * 2 * D);
  const acre_array k16 = array(ACRE_DTYPE_FLOAT16, {L, H, 2, D}, half.data());
  CHECK(refused(acre_pot_write(pot, slots, 2, &k16, &k16, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "must be float32"));
  acre_array short_k = k;
  short_k.info.bytes -= 4;
  CHECK(refused(acre_pot_write(pot, slots, 2, &short_k, &k, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "bytes for its shape"));
  const int64_t far[2] = {1, int64_t(ACRE_POT_MAX_POSITION) + 1}, bad_tokens[2] = {0, -2};
  CHECK(refused(acre_pot_write(pot, slots, 2, &k, &k, far, ACRE_SLOT_L1, nullptr), ACRE_ERR_INVALID_ARGUMENT,
                "overflow"));
  CHECK(refused(acre_pot_write(pot, slots, 2, &k, &k, nullptr, ACRE_SLOT_L1, bad_tokens),
                ACRE_ERR_INVALID_ARGUMENT, "token -2"));
  CHECK(refused(acre_pot_write(pot, nullptr, 2, &k, &k, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "slots is NULL"));
  CHECK(refused(acre_pot_write(nullptr, slots, 2, &k, &k, nullptr, ACRE_SLOT_L1, nullptr),
                ACRE_ERR_INVALID_ARGUMENT, "pot is NULL"));
  CHECK(std::memcmp(before.data(), key(pot, 0, 0), before.size() * 4) == 0);
  CHECK(data<int8_t>(pot, 4)[3] == ACRE_SLOT_FREE && data<int8_t>(pot, 4)[5] == ACRE_SLOT_RECENT);

  // clear and show
  CHECK(acre_pot_show(pot, slots, 1, 0) == ACRE_OK);
  CHECK(data<uint8_t>(pot, 3)[5] == 0 && data<int8_t>(pot, 4)[5] == ACRE_SLOT_RECENT &&
        acre_pot_used(pot) == 2);
  CHECK(acre_pot_show(pot, slots, 1, 1) == ACRE_OK && acre_pot_used(pot) == 3);
  CHECK(acre_pot_clear(pot, slots, 2) == ACRE_OK);
  CHECK(data<int8_t>(pot, 4)[2] == ACRE_SLOT_FREE && data<int64_t>(pot, 5)[2] == -1 &&
        acre_pot_used(pot) == 1);
  CHECK(refused(acre_pot_clear(pot, out_of_range, 2), ACRE_ERR_INVALID_ARGUMENT, "out of range"));
  CHECK(refused(acre_pot_show(pot, twice, 2, 1), ACRE_ERR_INVALID_ARGUMENT, "given twice"));
  acre_pot_free(pot);
}

void test_move() {
  acre_pot *pot = make();
  std::vector<float> r = rows(3);
  const acre_array k = array(ACRE_DTYPE_FLOAT32, {L, H, 3, D}, r.data());
  const int64_t slots[3] = {0, 1, 2}, at[3] = {0, 10, 20}, tokens[3] = {0, 1, 2};
  CHECK(acre_pot_write(pot, slots, 3, &k, &k, at, ACRE_SLOT_RECENT, tokens) == ACRE_OK);
  const int64_t to[3] = {0, 13, 1000};  // slot 0 does not move: its bits stay
  CHECK(acre_pot_move(pot, slots, 3, to) == ACRE_OK);
  for (int32_t layer = 0; layer < L; ++layer)
    for (int64_t s = 0; s < 3; ++s) {
      std::vector<float> want(r.begin() + (layer * 3 + s) * D, r.begin() + (layer * 3 + s + 1) * D);
      rotate(want.data(), to[s] - at[s]);
      CHECK(std::memcmp(want.data(), key(pot, layer, s), D * 4) == 0);
    }
  CHECK(data<int64_t>(pot, 2)[1] == 13 && data<int64_t>(pot, 2)[2] == 1000);
  // hand-worked: key (1, 0, 0, 0) moved by 1 position is (cos 1, 0, sin 1, 0) rounded to float32
  std::vector<float> unit(L * H * D, 0.0f);
  unit[0] = unit[D] = 1.0f;
  const acre_array u = array(ACRE_DTYPE_FLOAT32, {L, H, 1, D}, unit.data());
  const int64_t s5[1] = {5}, one[1] = {1};
  CHECK(acre_pot_write(pot, s5, 1, &u, &u, nullptr, ACRE_SLOT_L1, nullptr) == ACRE_OK);
  CHECK(acre_pot_move(pot, s5, 1, one) == ACRE_OK);
  CHECK(key(pot, 1, 5)[0] == float(std::cos(1.0)) && key(pot, 1, 5)[2] == float(std::sin(1.0)));
  CHECK(key(pot, 1, 5)[1] == 0.0f && key(pot, 1, 5)[3] == 0.0f);
  // there and back again: rotations compose (only float32 rounding remains)
  const int64_t back[1] = {0};
  for (int64_t p = 2; p < 200; p += 37) CHECK(acre_pot_move(pot, s5, 1, &p) == ACRE_OK);
  CHECK(acre_pot_move(pot, s5, 1, back) == ACRE_OK);
  CHECK(std::fabs(key(pot, 0, 5)[0] - 1.0f) < 1e-5f && std::fabs(key(pot, 0, 5)[2]) < 1e-5f);

  const int64_t far[1] = {int64_t(ACRE_POT_MAX_POSITION) + 1}, negative[1] = {-3}, twice[2] = {1, 1};
  const int64_t two[2] = {4, 5};
  const std::vector<float> before(key(pot, 0, 0), key(pot, 0, 0) + L * P * D);
  CHECK(refused(acre_pot_move(pot, s5, 1, far), ACRE_ERR_INVALID_ARGUMENT, "would overflow"));
  CHECK(refused(acre_pot_move(pot, s5, 1, negative), ACRE_ERR_INVALID_ARGUMENT, "position -3"));
  CHECK(refused(acre_pot_move(pot, twice, 2, two), ACRE_ERR_INVALID_ARGUMENT, "given twice"));
  CHECK(refused(acre_pot_move(pot, s5, 1, nullptr), ACRE_ERR_INVALID_ARGUMENT, "positions is NULL"));
  const int64_t beyond[1] = {P};
  CHECK(refused(acre_pot_move(pot, beyond, 1, one), ACRE_ERR_INVALID_ARGUMENT, "out of range"));
  CHECK(std::memcmp(before.data(), key(pot, 0, 0), before.size() * 4) == 0);
  CHECK(acre_pot_move(pot, nullptr, 0, nullptr) == ACRE_OK);
  acre_pot_free(pot);
}

void test_float16_move() {
  acre_pot *pot = make(ACRE_DTYPE_FLOAT16);
  const std::vector<float> r = rows(1, 0.3f);
  std::vector<uint16_t> h(r.size());
  for (size_t i = 0; i < r.size(); ++i) h[i] = acre::to_half(r[i]);
  const acre_array k = array(ACRE_DTYPE_FLOAT16, {L, H, 1, D}, h.data());
  const int64_t s[1] = {3}, to[1] = {77};
  CHECK(acre_pot_write(pot, s, 1, &k, &k, nullptr, ACRE_SLOT_L1, nullptr) == ACRE_OK);
  CHECK(acre_pot_move(pot, s, 1, to) == ACRE_OK);
  const uint16_t *bits = data<uint16_t>(pot, 0);
  for (int32_t layer = 0; layer < L; ++layer) {
    float want[D];
    for (int d = 0; d < D; ++d) want[d] = acre::from_half(h[layer * D + d]);
    rotate(want, 77);
    for (int d = 0; d < D; ++d) CHECK(bits[(layer * P + 3) * D + d] == acre::to_half(want[d]));
  }
  // un-rotated keys come back as float32 from the stored halves
  const int32_t layers[1] = {1};
  float out[D];
  const acre_buffer b{out, sizeof out};
  CHECK(acre_pot_unrotated(pot, layers, 1, s, 1, &b) == ACRE_OK);
  float want[D];
  for (int d = 0; d < D; ++d) want[d] = acre::from_half(bits[(1 * P + 3) * D + d]);
  rotate(want, -77);
  CHECK(std::memcmp(want, out, sizeof out) == 0);
  CHECK(std::fabs(out[0] - acre::from_half(h[D])) < 1e-2f);
  acre_pot_free(pot);
}

void test_compact() {
  acre_pot *pot = make();
  const std::vector<float> r = rows(6);
  const acre_array k = array(ACRE_DTYPE_FLOAT32, {L, H, 6, D}, r.data());
  // slots 0..5: tokens 30, 10, 20, 10, -1 (question), 5 (hidden later)
  const int64_t slots[6] = {0, 1, 2, 3, 4, 5}, at[6] = {100, 101, 102, 103, 104, 105};
  const int64_t tokens[6] = {30, 10, 20, 10, -1, 5};
  CHECK(acre_pot_write(pot, slots, 6, &k, &k, at, ACRE_SLOT_RECENT, tokens) == ACRE_OK);
  const int64_t q[1] = {4}, hidden[1] = {5};
  const acre_array k1 = array(ACRE_DTYPE_FLOAT32, {L, H, 1, D}, r.data());
  CHECK(acre_pot_write(pot, q, 1, &k1, &k1, at + 4, ACRE_SLOT_QUESTION, nullptr) == ACRE_OK);
  CHECK(acre_pot_show(pot, hidden, 1, 0) == ACRE_OK);
  const int64_t slot3[1] = {3};
  CHECK(acre_pot_write(pot, slot3, 1, &k1, &k1, at + 3, ACRE_SLOT_SINK, tokens + 3) == ACRE_OK);
  std::vector<float> want(key(pot, 0, 0), key(pot, 0, 0) + P * D);  // layer 0
  const acre_slot_kind kinds[2] = {ACRE_SLOT_SINK, ACRE_SLOT_RECENT};
  int64_t next = -1;
  CHECK(acre_pot_compact(pot, kinds, 2, &next) == ACRE_OK);
  CHECK(next == 4);
  const int64_t *pos = data<int64_t>(pot, 2);
  // document order: slot 1 (token 10), slot 3 (token 10: a tie, the later slot after), 2 (20), 0 (30)
  CHECK(pos[1] == 0 && pos[3] == 1 && pos[2] == 2 && pos[0] == 3);
  CHECK(pos[4] == 104 && pos[5] == 105);  // the question and the hidden slot stay where they were
  const int64_t old[4] = {100, 101, 102, 103}, now[4] = {3, 0, 2, 1};
  for (int64_t s = 0; s < 4; ++s) {
    rotate(want.data() + s * D, now[s] - old[s]);
    CHECK(std::memcmp(want.data() + s * D, key(pot, 0, s), D * 4) == 0);
  }
  CHECK(std::memcmp(want.data() + 5 * D, key(pot, 0, 5), D * 4) == 0);
  CHECK(acre_pot_compact(pot, kinds, 2, &next) == ACRE_OK && next == 4);  // nothing moves the second time
  for (int64_t s = 0; s < 4; ++s) CHECK(std::memcmp(want.data() + s * D, key(pot, 0, s), D * 4) == 0);
  CHECK(refused(acre_pot_compact(pot, kinds, 0, &next), ACRE_ERR_INVALID_ARGUMENT, "no slot kinds"));
  const acre_slot_kind bad[1] = {acre_slot_kind(6)};
  CHECK(refused(acre_pot_compact(pot, bad, 1, &next), ACRE_ERR_INVALID_ARGUMENT, "slot kind 6"));
  CHECK(refused(acre_pot_compact(pot, kinds, 2, nullptr), ACRE_ERR_INVALID_ARGUMENT, "next_position"));
  acre_pot_free(pot);
}

void test_unrotate() {
  acre_pot *pot = make();
  std::vector<float> plain = rows(2), turned = plain;
  const int64_t at[2] = {9, 400};
  for (int32_t layer = 0; layer < L; ++layer)
    for (int i = 0; i < 2; ++i) rotate(turned.data() + (layer * 2 + i) * D, at[i]);
  const acre_array k = array(ACRE_DTYPE_FLOAT32, {L, H, 2, D}, turned.data());
  const int64_t slots[2] = {6, 1};
  CHECK(acre_pot_write(pot, slots, 2, &k, &k, at, ACRE_SLOT_L1, nullptr) == ACRE_OK);
  std::vector<float> out(2 * L * H * D);
  const acre_buffer b{out.data(), out.size() * 4};
  const int32_t layers[2] = {1, 0};
  const int64_t pick[2] = {1, 6};  // slot 1 first: rows follow the slots asked for
  CHECK(acre_pot_unrotated(pot, layers, 2, pick, 2, &b) == ACRE_OK);
  for (int i = 0; i < D; ++i) {
    CHECK(std::fabs(out[i] - plain[(1 * 2 + 1) * D + i]) < 1e-5f);  // layer 1, slot 1 (row 1)
    CHECK(std::fabs(out[3 * D + i] - plain[i]) < 1e-5f);            // layer 0, slot 6 (row 0)
  }
  // the same rows un-rotated outside the pot give the same bits
  std::vector<float> direct(out.size());
  const acre_buffer bd{direct.data(), direct.size() * 4};
  CHECK(acre_pot_unrotate(pot, &k, at, &bd) == ACRE_OK);
  CHECK(std::memcmp(direct.data() + 2 * D, out.data() + D, D * 4) == 0);  // layer 1 row 0 = out's slot 6
  CHECK(std::memcmp(direct.data(), out.data() + 3 * D, D * 4) == 0);
  const int32_t no_layer[1] = {L};
  const acre_buffer one_layer{out.data(), out.size() * 2};
  CHECK(refused(acre_pot_unrotated(pot, no_layer, 1, pick, 2, &one_layer), ACRE_ERR_INVALID_ARGUMENT,
                "layer 2"));
  CHECK(refused(acre_pot_unrotated(pot, layers, 0, pick, 2, &b), ACRE_ERR_INVALID_ARGUMENT, "no layers"));
  const int64_t beyond[2] = {1, P};
  CHECK(refused(acre_pot_unrotated(pot, layers, 2, beyond, 2, &b), ACRE_ERR_INVALID_ARGUMENT, "slot 8"));
  const acre_buffer small{out.data(), 4};
  CHECK(refused(acre_pot_unrotated(pot, layers, 2, pick, 2, &small), ACRE_ERR_INVALID_ARGUMENT, "out"));
  const acre_array wrong = array(ACRE_DTYPE_FLOAT32, {L, 2, 1, D}, turned.data());
  CHECK(refused(acre_pot_unrotate(pot, &wrong, at, &bd), ACRE_ERR_INVALID_ARGUMENT, "2 heads"));
  const acre_array ints = array(ACRE_DTYPE_INT64, {L, H, 1, 2}, turned.data());
  CHECK(refused(acre_pot_unrotate(pot, &ints, at, &bd), ACRE_ERR_INVALID_ARGUMENT, "float32"));
  acre_pot_free(pot);
}

void test_slot_table() {
  acre_pot *pot = make();
  const std::vector<float> r = rows(3);
  const acre_array k = array(ACRE_DTYPE_FLOAT32, {L, H, 3, D}, r.data());
  const int64_t slots[3] = {1, 4, 6};
  CHECK(acre_pot_write(pot, slots, 3, &k, &k, nullptr, ACRE_SLOT_L1, nullptr) == ACRE_OK);
  int64_t got[P];
  size_t n = 0;
  CHECK(acre_pot_free_slots(pot, 2, 5, got, P, &n) == ACRE_OK);  // [2, 7) less 4 and 6
  CHECK(n == 3 && got[0] == 2 && got[1] == 3 && got[2] == 5);
  CHECK(acre_pot_show(pot, slots, 1, 0) == ACRE_OK);  // hidden is not free
  CHECK(acre_pot_free_slots(pot, 0, P, got, P, &n) == ACRE_OK && n == 5 && got[1] == 2);
  CHECK(refused(acre_pot_free_slots(pot, 0, P, got, 2, &n), ACRE_ERR_BUFFER_TOO_SMALL, "5 slots"));
  CHECK(n == 5);
  CHECK(refused(acre_pot_free_slots(pot, 4, 5, got, P, &n), ACRE_ERR_INVALID_ARGUMENT, "out of range"));
  CHECK(refused(acre_pot_free_slots(pot, -1, 2, got, P, &n), ACRE_ERR_INVALID_ARGUMENT, "region [-1"));
  const acre_slot_kind l1[1] = {ACRE_SLOT_L1}, free_and_l1[2] = {ACRE_SLOT_FREE, ACRE_SLOT_L1};
  CHECK(acre_pot_slots_of(pot, l1, 1, got, P, &n) == ACRE_OK && n == 3 && got[0] == 1 && got[2] == 6);
  CHECK(acre_pot_slots_of(pot, free_and_l1, 2, got, P, &n) == ACRE_OK && n == size_t(P));
  CHECK(refused(acre_pot_slots_of(pot, l1, 0, got, P, &n), ACRE_ERR_INVALID_ARGUMENT, "no slot kinds"));
  const acre_slot_kind bad[1] = {acre_slot_kind(-2)};
  CHECK(refused(acre_pot_slots_of(pot, bad, 1, got, P, &n), ACRE_ERR_INVALID_ARGUMENT, "slot kind -2"));
  acre_pot_free(pot);
}

void test_restore() {
  acre_pot *from = make(), *to = make();
  const std::vector<float> r = rows(2);
  const acre_array k = array(ACRE_DTYPE_FLOAT32, {L, H, 2, D}, r.data());
  const int64_t slots[2] = {2, 7}, at[2] = {3, 4}, tokens[2] = {8, 9};
  CHECK(acre_pot_write(from, slots, 2, &k, &k, at, ACRE_SLOT_SINK, tokens) == ACRE_OK);
  acre_array arrays[ACRE_POT_ARRAYS + 1];
  for (size_t i = 0; i < ACRE_POT_ARRAYS; ++i) CHECK(acre_pot_array(from, i, &arrays[i]) == ACRE_OK);
  arrays[ACRE_POT_ARRAYS] = array(ACRE_DTYPE_INT32, {1}, tokens);  // another array: ignored
  arrays[ACRE_POT_ARRAYS].info.name = "document_ids";
  CHECK(acre_pot_restore(to, arrays, ACRE_POT_ARRAYS + 1) == ACRE_OK);
  for (size_t i = 0; i < ACRE_POT_ARRAYS; ++i) {
    acre_array a{};
    CHECK(acre_pot_array(to, i, &a) == ACRE_OK);
    CHECK(a.data != arrays[i].data && std::memcmp(a.data, arrays[i].data, a.info.bytes) == 0);
  }
  CHECK(acre_pot_used(to) == 2);
  acre_pot *fresh = make();
  CHECK(refused(acre_pot_restore(fresh, arrays, 5), ACRE_ERR_INVALID_ARGUMENT, "no array 'token'"));
  acre_array saved = arrays[3];
  arrays[3].info.dtype = ACRE_DTYPE_UINT8;
  CHECK(
      refused(acre_pot_restore(fresh, arrays, ACRE_POT_ARRAYS), ACRE_ERR_INVALID_ARGUMENT, "'mask' is not"));
  arrays[3] = saved;
  std::vector<int8_t> kinds(P, 0);
  kinds[1] = 8;
  arrays[4].data = kinds.data();
  CHECK(refused(acre_pot_restore(fresh, arrays, ACRE_POT_ARRAYS), ACRE_ERR_INVALID_ARGUMENT, "slot 1 has"));
  CHECK(acre_pot_used(fresh) == 0 && data<int8_t>(fresh, 4)[2] == ACRE_SLOT_FREE);
  const std::vector<float> big(2 * L * H * P * D);
  arrays[4] = array(ACRE_DTYPE_FLOAT32, {L, H, 2 * P, D}, big.data());
  arrays[4].info.name = "kind";
  CHECK(
      refused(acre_pot_restore(fresh, arrays, ACRE_POT_ARRAYS), ACRE_ERR_INVALID_ARGUMENT, "'kind' is not"));
  acre_pot_free(fresh);
  acre_pot_free(from);
  acre_pot_free(to);
}

}  // namespace

int main() {
  test_new();
  test_write();
  test_move();
  test_float16_move();
  test_compact();
  test_unrotate();
  test_slot_table();
  test_restore();
  return test::finish("acre_pot_test");
}
