// The pot and its slot table (pot.hpp).
#include "pot.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "core.hpp"
#include "half.hpp"

namespace acre {

namespace {

const char *const ARRAY_NAMES[Pot::ARRAYS] = {"k", "v", "positions", "mask", "kind", "token"};

std::string str(int64_t x) { return std::to_string(x); }

void check_position(int64_t p, size_t i, const char *what) {
  if (p < 0 || p > ACRE_POT_MAX_POSITION)
    fail(ACRE_ERR_INVALID_ARGUMENT, std::string(what) + " " + str(p) + " at " + std::to_string(i) +
                                        " is outside [0, " + str(ACRE_POT_MAX_POSITION) +
                                        "]: the move would overflow the positions a key is rotated at");
}

void check_kinds(const int8_t *kinds, size_t n, bool allow_free) {
  if (!n) fail(ACRE_ERR_INVALID_ARGUMENT, "no slot kinds given");
  for (size_t i = 0; i < n; ++i)
    if (kinds[i] < (allow_free ? ACRE_SLOT_FREE : ACRE_SLOT_SINK) || kinds[i] > ACRE_SLOT_QUESTION)
      fail(ACRE_ERR_INVALID_ARGUMENT, "slot kind " + str(kinds[i]) + " is not one of " +
                                          (allow_free ? "0" : "1") + ".." + str(ACRE_SLOT_QUESTION) +
                                          " (acre_slot_kind)");
}

// One row of D values, rotated in place: (first, second) -> (first cos - second sin, second cos +
// first sin), the half-split layout of acre/step.py, float32 products and sums as numpy does them.
void rotate_row(float *x, const float *cos, const float *sin, size_t half) {
  for (size_t i = 0; i < half; ++i) {
    const float first = x[i], second = x[i + half];
    const float a = first * cos[i], b = second * sin[i], c = second * cos[i], d = first * sin[i];
    x[i] = a - b;
    x[i + half] = c + d;
  }
}

}  // namespace

Pot::Pot(PotShape shape, acre_dtype kv_dtype, std::vector<double> inv_freq)
    : shape_(shape), dtype_(kv_dtype), inv_freq_(std::move(inv_freq)) {
  if (dtype_ != ACRE_DTYPE_FLOAT32 && dtype_ != ACRE_DTYPE_FLOAT16)
    fail(ACRE_ERR_INVALID_ARGUMENT,
         std::string("the pot keeps float32 or float16 K/V, not ") + acre_dtype_name(dtype_));
  if (shape.layers < 1 || shape.kv_heads < 1 || shape.capacity < 1 || shape.head_dim < 2 ||
      shape.head_dim % 2)
    fail(ACRE_ERR_INVALID_ARGUMENT,
         "pot of layers " + str(shape.layers) + ", kv_heads " + str(shape.kv_heads) + ", capacity " +
             str(shape.capacity) + ", head_dim " + str(shape.head_dim) + ": each at least 1, head_dim even");
  if (inv_freq_.size() != size_t(shape.head_dim / 2))
    fail(ACRE_ERR_INVALID_ARGUMENT, "RoPE frequencies: " + std::to_string(inv_freq_.size()) +
                                        " values for head_dim " + str(shape.head_dim) + " (head_dim / 2)");
  for (double f : inv_freq_)
    if (!std::isfinite(f)) fail(ACRE_ERR_INVALID_ARGUMENT, "RoPE frequencies: not all finite");
  const double elems =
      double(shape.layers) * double(shape.kv_heads) * double(shape.capacity) * double(shape.head_dim);
  if (elems * 4 > double(SIZE_MAX / 4))
    fail(ACRE_ERR_INVALID_ARGUMENT, "pot of " + str(shape.capacity) + " slots: too large to allocate");
  k_.reset(new unsigned char[kv_bytes()]());
  v_.reset(new unsigned char[kv_bytes()]());
  const size_t P = size_t(shape.capacity);
  positions_.assign(P, 0);
  token_.assign(P, -1);
  mask_.assign(P, 0);
  kind_.assign(P, ACRE_SLOT_FREE);
  seen_.assign(P, 0);
}

size_t Pot::used() const { return size_t(std::count(mask_.begin(), mask_.end(), uint8_t(1))); }

void Pot::check_slots(const int64_t *slots, size_t n) const {
  size_t i = 0;
  for (; i < n; ++i) {
    const int64_t s = slots[i];
    if (s < 0 || s >= shape_.capacity || seen_[size_t(s)]) break;
    seen_[size_t(s)] = 1;
  }
  for (size_t j = 0; j < i; ++j) seen_[size_t(slots[j])] = 0;
  if (i == n) return;
  const int64_t s = slots[i];
  if (s < 0 || s >= shape_.capacity)
    fail(ACRE_ERR_INVALID_ARGUMENT, "slot " + str(s) + " at " + std::to_string(i) +
                                        " is out of range for a pot of " + str(shape_.capacity) + " slots");
  fail(ACRE_ERR_INVALID_ARGUMENT, "slot " + str(s) + " is given twice (at " + std::to_string(i) + ")");
}

void Pot::rotation(int64_t by, float *cos, float *sin) const {
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const double angle = double(by) * inv_freq_[i];
    cos[i] = float(std::cos(angle));
    sin[i] = float(std::sin(angle));
  }
}

void Pot::write(const int64_t *slots, size_t n, const void *k, const void *v, const int64_t *positions,
                int8_t kind, const int64_t *tokens) {
  check_slots(slots, n);
  check_kinds(&kind, 1, false);
  for (size_t i = 0; positions && i < n; ++i) check_position(positions[i], i, "position");
  for (size_t i = 0; tokens && i < n; ++i)
    if (tokens[i] < -1)
      fail(ACRE_ERR_INVALID_ARGUMENT, "token " + str(tokens[i]) + " at " + std::to_string(i) +
                                          ": document tokens are numbered from 0 (-1: none)");
  const size_t row = size_t(shape_.head_dim) * acre_dtype_size(dtype_), P = size_t(shape_.capacity);
  const size_t heads = size_t(shape_.layers * shape_.kv_heads);
  const auto *ks = static_cast<const unsigned char *>(k), *vs = static_cast<const unsigned char *>(v);
  for (size_t h = 0; h < heads; ++h)
    for (size_t i = 0; i < n; ++i) {
      const size_t to = (h * P + size_t(slots[i])) * row, from = (h * n + i) * row;
      std::memcpy(k_.get() + to, ks + from, row);
      std::memcpy(v_.get() + to, vs + from, row);
    }
  for (size_t i = 0; i < n; ++i) {
    const size_t s = size_t(slots[i]);
    positions_[s] = positions ? positions[i] : 0;
    mask_[s] = 1;
    kind_[s] = kind;
    token_[s] = tokens ? tokens[i] : -1;
  }
}

void Pot::read(const int64_t *slots, size_t n, void *k, void *v) const {
  check_slots(slots, n);
  const size_t row = size_t(shape_.head_dim) * acre_dtype_size(dtype_), P = size_t(shape_.capacity);
  const size_t heads = size_t(shape_.layers * shape_.kv_heads);
  auto *ks = static_cast<unsigned char *>(k), *vs = static_cast<unsigned char *>(v);
  for (size_t h = 0; h < heads; ++h)
    for (size_t i = 0; i < n; ++i) {
      const size_t from = (h * P + size_t(slots[i])) * row, to = (h * n + i) * row;
      if (ks) std::memcpy(ks + to, k_.get() + from, row);
      if (vs) std::memcpy(vs + to, v_.get() + from, row);
    }
}

void Pot::clear(const int64_t *slots, size_t n) {
  check_slots(slots, n);
  for (size_t i = 0; i < n; ++i) {
    const size_t s = size_t(slots[i]);
    mask_[s] = 0, kind_[s] = ACRE_SLOT_FREE, token_[s] = -1;
  }
}

void Pot::show(const int64_t *slots, size_t n, bool visible) {
  check_slots(slots, n);
  for (size_t i = 0; i < n; ++i) mask_[size_t(slots[i])] = visible;
}

void Pot::move(const int64_t *slots, size_t n, const int64_t *positions) {
  check_slots(slots, n);
  for (size_t i = 0; i < n; ++i) check_position(positions[i], i, "position");
  const size_t D = size_t(shape_.head_dim), half = D / 2, P = size_t(shape_.capacity);
  const size_t heads = size_t(shape_.layers * shape_.kv_heads);
  std::vector<float> cos(half), sin(half), row(D);
  for (size_t i = 0; i < n; ++i) {
    const size_t s = size_t(slots[i]);
    const int64_t delta = positions[i] - positions_[s];
    if (!delta) continue;
    rotation(delta, cos.data(), sin.data());  // once for every layer and head
    for (size_t h = 0; h < heads; ++h) {
      const size_t at = (h * P + s) * D;
      if (dtype_ == ACRE_DTYPE_FLOAT32) {
        rotate_row(reinterpret_cast<float *>(k_.get()) + at, cos.data(), sin.data(), half);
      } else {
        uint16_t *bits = reinterpret_cast<uint16_t *>(k_.get()) + at;
        for (size_t d = 0; d < D; ++d) row[d] = from_half(bits[d]);
        rotate_row(row.data(), cos.data(), sin.data(), half);
        for (size_t d = 0; d < D; ++d) bits[d] = to_half(row[d]);
      }
    }
    positions_[s] = positions[i];
  }
}

int64_t Pot::compact(const int8_t *kinds, size_t n_kinds) {
  std::vector<int64_t> slots = slots_of(kinds, n_kinds);
  slots.erase(std::remove_if(slots.begin(), slots.end(), [&](int64_t s) { return !mask_[size_t(s)]; }),
              slots.end());
  std::stable_sort(slots.begin(), slots.end(),
                   [&](int64_t a, int64_t b) { return token_[size_t(a)] < token_[size_t(b)]; });
  std::vector<int64_t> to(slots.size());
  for (size_t i = 0; i < to.size(); ++i) to[i] = int64_t(i);
  move(slots.data(), slots.size(), to.data());
  return int64_t(slots.size());
}

void Pot::unrotate(const void *keys, acre_dtype dtype, int64_t layers, size_t n, const int64_t *positions,
                   float *out) const {
  if (dtype != ACRE_DTYPE_FLOAT32 && dtype != ACRE_DTYPE_FLOAT16)
    fail(ACRE_ERR_INVALID_ARGUMENT,
         std::string("keys must be float32 or float16, not ") + acre_dtype_name(dtype));
  for (size_t i = 0; i < n; ++i) check_position(positions[i], i, "position");
  const size_t D = size_t(shape_.head_dim), half = D / 2, heads = size_t(layers * shape_.kv_heads);
  std::vector<float> cos(n * half), sin(n * half);
  for (size_t i = 0; i < n; ++i) rotation(-positions[i], cos.data() + i * half, sin.data() + i * half);
  for (size_t h = 0; h < heads; ++h)
    for (size_t i = 0; i < n; ++i) {
      const size_t at = (h * n + i) * D;
      float *row = out + at;
      if (dtype == ACRE_DTYPE_FLOAT32) {
        if (row != static_cast<const float *>(keys) + at)
          std::memcpy(row, static_cast<const float *>(keys) + at, D * 4);
      } else {
        const uint16_t *bits = static_cast<const uint16_t *>(keys) + at;
        for (size_t d = 0; d < D; ++d) row[d] = from_half(bits[d]);
      }
      rotate_row(row, cos.data() + i * half, sin.data() + i * half, half);
    }
}

void Pot::unrotated(const int32_t *layers, size_t n_layers, const int64_t *slots, size_t n,
                    float *out) const {
  if (!n_layers) fail(ACRE_ERR_INVALID_ARGUMENT, "no layers given");
  for (size_t i = 0; i < n_layers; ++i)
    if (layers[i] < 0 || layers[i] >= shape_.layers)
      fail(ACRE_ERR_INVALID_ARGUMENT,
           "layer " + str(layers[i]) + " is out of range for a pot of " + str(shape_.layers) + " layers");
  for (size_t i = 0; i < n; ++i)  // repeats are fine here: nothing is written
    if (slots[i] < 0 || slots[i] >= shape_.capacity)
      fail(ACRE_ERR_INVALID_ARGUMENT, "slot " + str(slots[i]) + " at " + std::to_string(i) +
                                          " is out of range for a pot of " + str(shape_.capacity) + " slots");
  const size_t D = size_t(shape_.head_dim), P = size_t(shape_.capacity), Hkv = size_t(shape_.kv_heads);
  const size_t size = acre_dtype_size(dtype_);
  std::vector<unsigned char> rows(n_layers * Hkv * n * D * size);
  std::vector<int64_t> at(n);
  for (size_t i = 0; i < n; ++i) at[i] = positions_[size_t(slots[i])];
  for (size_t l = 0; l < n_layers; ++l)
    for (size_t h = 0; h < Hkv; ++h)
      for (size_t i = 0; i < n; ++i)
        std::memcpy(rows.data() + ((l * Hkv + h) * n + i) * D * size,
                    k_.get() + ((size_t(layers[l]) * Hkv + h) * P + size_t(slots[i])) * D * size, D * size);
  unrotate(rows.data(), dtype_, int64_t(n_layers), n, at.data(), out);
}

std::vector<int64_t> Pot::free_slots(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first > shape_.capacity || count > shape_.capacity - first)
    fail(ACRE_ERR_INVALID_ARGUMENT, "region [" + str(first) + ", " + str(first) + " + " + str(count) +
                                        ") is out of range for a pot of " + str(shape_.capacity) + " slots");
  std::vector<int64_t> out;
  for (int64_t s = first; s < first + count; ++s)
    if (kind_[size_t(s)] == ACRE_SLOT_FREE) out.push_back(s);
  return out;
}

std::vector<int64_t> Pot::slots_of(const int8_t *kinds, size_t n_kinds) const {
  check_kinds(kinds, n_kinds, true);
  std::vector<int64_t> out;
  for (int64_t s = 0; s < shape_.capacity; ++s)
    if (std::find(kinds, kinds + n_kinds, kind_[size_t(s)]) != kinds + n_kinds) out.push_back(s);
  return out;
}

acre_array Pot::array(size_t i) const {
  if (i >= ARRAYS)
    fail(ACRE_ERR_INVALID_ARGUMENT, "pot array " + std::to_string(i) + " of " + std::to_string(ARRAYS));
  acre_array a{};
  a.info.name = ARRAY_NAMES[i];
  const int64_t P = shape_.capacity;
  if (i < 2) {
    a.info.dtype = dtype_;
    a.info.rank = 4;
    a.info.dims[0] = shape_.layers, a.info.dims[1] = shape_.kv_heads, a.info.dims[2] = P;
    a.info.dims[3] = shape_.head_dim;
    a.info.bytes = kv_bytes();
    a.data = i == 0 ? k_.get() : v_.get();
    return a;
  }
  static const acre_dtype dtypes[] = {ACRE_DTYPE_INT64, ACRE_DTYPE_BOOL, ACRE_DTYPE_INT8, ACRE_DTYPE_INT64};
  const void *data[] = {positions_.data(), mask_.data(), kind_.data(), token_.data()};
  a.info.dtype = dtypes[i - 2];
  a.info.rank = 1;
  a.info.dims[0] = P;
  a.info.bytes = size_t(P) * acre_dtype_size(a.info.dtype);
  a.data = data[i - 2];
  return a;
}

void Pot::restore(const acre_array *arrays, size_t n) {
  const acre_array *found[ARRAYS] = {};
  for (size_t i = 0; i < ARRAYS; ++i) {
    for (size_t j = 0; j < n; ++j)
      if (arrays[j].info.name && std::strcmp(arrays[j].info.name, ARRAY_NAMES[i]) == 0) found[i] = &arrays[j];
    const acre_array want = array(i);
    const acre_array *got = found[i];
    if (!got)
      fail(ACRE_ERR_INVALID_ARGUMENT, std::string("the pot snapshot has no array '") + ARRAY_NAMES[i] + "'");
    bool same = got->info.dtype == want.info.dtype && got->info.rank == want.info.rank &&
                got->info.bytes == want.info.bytes && (got->data || !want.info.bytes);
    for (int32_t d = 0; same && d < want.info.rank; ++d) same = got->info.dims[d] == want.info.dims[d];
    if (!same)
      fail(ACRE_ERR_INVALID_ARGUMENT, std::string("the pot snapshot's '") + ARRAY_NAMES[i] +
                                          "' is not the pot's: " + acre_dtype_name(want.info.dtype) + " of " +
                                          std::to_string(want.info.bytes) + " bytes in its shape");
  }
  const size_t P = size_t(shape_.capacity);
  const auto *pos = static_cast<const int64_t *>(found[2]->data);
  const auto *mask = static_cast<const uint8_t *>(found[3]->data);
  const auto *kind = static_cast<const int8_t *>(found[4]->data);
  const auto *token = static_cast<const int64_t *>(found[5]->data);
  for (size_t s = 0; s < P; ++s) {
    check_position(pos[s], s, "the snapshot's position");
    if (mask[s] > 1 || kind[s] < ACRE_SLOT_FREE || kind[s] > ACRE_SLOT_QUESTION || token[s] < -1)
      fail(ACRE_ERR_INVALID_ARGUMENT, "the pot snapshot's slot " + std::to_string(s) + " has mask " +
                                          str(mask[s]) + ", kind " + str(kind[s]) + ", token " +
                                          str(token[s]));
  }
  std::memcpy(k_.get(), found[0]->data, kv_bytes());
  std::memcpy(v_.get(), found[1]->data, kv_bytes());
  std::copy(pos, pos + P, positions_.begin());
  std::copy(mask, mask + P, mask_.begin());
  std::copy(kind, kind + P, kind_.begin());
  std::copy(token, token + P, token_.begin());
}

}  // namespace acre
