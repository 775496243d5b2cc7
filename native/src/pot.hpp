// The pot: the bounded RAM key/value buffer the step program attends to, and its slot table.
//
// Allocated once at capacity and never grown or reallocated, so a host (and the engine) can hold
// pointers into it for its whole life. Each slot's key is kept rotated (RoPE) at the slot's
// position, so the step program reads keys as they are; the one rule that keeps this true lives
// here: a slot whose position changes is re-rotated by the difference (move, compact). Angles are
// float64 (a slot moved many times carries no drift from them), cos and sin rounded to float32, the
// rotation itself float32 (built with -ffp-contract=off: the same bits as numpy's float32 math).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "acre.h"

namespace acre {

struct PotShape {
  int64_t layers, kv_heads, capacity, head_dim;
};

class Pot {
 public:
  // Zeroed, every slot free and hidden. kv_dtype float32 or float16; inv_freq [head_dim / 2], finite.
  Pot(PotShape shape, acre_dtype kv_dtype, std::vector<double> inv_freq);

  const PotShape &shape() const { return shape_; }
  acre_dtype kv_dtype() const { return dtype_; }
  size_t kv_bytes() const { return kv_elems() * acre_dtype_size(dtype_); }  // of k (and of v)
  size_t bytes() const { return 2 * kv_bytes() + size_t(shape_.capacity) * (8 + 1 + 1 + 8); }
  size_t used() const;  // visible slots

  void *k() { return k_.get(); }
  void *v() { return v_.get(); }
  const void *k() const { return k_.get(); }
  const void *v() const { return v_.get(); }
  int64_t *positions() { return positions_.data(); }
  uint8_t *mask() { return mask_.data(); }  // 1: visible to the step program
  int8_t *kind() { return kind_.data(); }   // an acre_slot_kind
  int64_t *token() { return token_.data(); }

  // Rows k, v [L, Hkv, n, D] of the pot's dtype into `slots` (distinct), rotated at `positions` (null:
  // 0, un-rotated), visible, of `kind` (not FREE), from document `tokens` (null: -1, none).
  void write(const int64_t *slots, size_t n, const void *k, const void *v, const int64_t *positions,
             int8_t kind, const int64_t *tokens);
  // The rows of `slots` (valid) as write() takes them, k and v [L, Hkv, n, D]; a null k or v is skipped.
  void read(const int64_t *slots, size_t n, void *k, void *v) const;
  void clear(const int64_t *slots, size_t n);               // free and hidden
  void show(const int64_t *slots, size_t n, bool visible);  // the mask only
  // New positions for `slots` (distinct); keys re-rotated by the change where it is not 0.
  void move(const int64_t *slots, size_t n, const int64_t *positions);
  // The visible slots of `kinds` get positions 0, 1, ... in the order of their document tokens
  // (stable: ties keep slot order). Returns the next free position.
  int64_t compact(const int8_t *kinds, size_t n_kinds);
  // Keys of `layers` and `slots` as at position 0, float32 [n_layers, Hkv, n, D].
  void unrotated(const int32_t *layers, size_t n_layers, const int64_t *slots, size_t n, float *out) const;
  // Rows keys [layers, Hkv, n, D] (float32 or float16) rotated at `positions` [n], as at position 0:
  // float32 into out (may be keys itself when float32).
  void unrotate(const void *keys, acre_dtype dtype, int64_t layers, size_t n, const int64_t *positions,
                float *out) const;
  // Free slots (kind FREE) in [first, first + count), ascending.
  std::vector<int64_t> free_slots(int64_t first, int64_t count) const;
  // Slots of any of `kinds`, ascending.
  std::vector<int64_t> slots_of(const int8_t *kinds, size_t n_kinds) const;

  // Array i of ARRAYS over the pot's memory (k, v [L, Hkv, P, D], positions, mask, kind, token [P]).
  acre_array array(size_t i) const;
  // Every array of ARRAYS from a snapshot, by name, each of the pot's dtype and shape; all are checked
  // before anything is copied.
  void restore(const acre_array *arrays, size_t n);
  static constexpr size_t ARRAYS = 6;

 private:
  size_t kv_elems() const {
    return size_t(shape_.layers * shape_.kv_heads * shape_.capacity * shape_.head_dim);
  }
  void check_slots(const int64_t *slots, size_t n) const;  // in range and distinct
  // cos and sin [D/2] of a rotation by `by` positions
  void rotation(int64_t by, float *cos, float *sin) const;

  PotShape shape_;
  acre_dtype dtype_;
  std::vector<double> inv_freq_;
  std::unique_ptr<unsigned char[]> k_, v_;
  std::vector<int64_t> positions_, token_;
  std::vector<uint8_t> mask_;
  std::vector<int8_t> kind_;
  mutable std::vector<uint8_t> seen_;  // check_slots' scratch, one flag per slot
};

}  // namespace acre
