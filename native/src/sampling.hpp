// Next-token choice: greedy, or temperature with nucleus (top-p) filtering. The random stream is
// numpy's default_rng (PCG64 seeded through SeedSequence) and the choice numpy's, so a seed draws the
// tokens it drew in Python.
#pragma once

#include <cstddef>
#include <cstdint>

namespace acre {

class Rng {
 public:
  explicit Rng(uint64_t seed);  // as np.random.default_rng(seed)
  static Rng from_entropy();    // as np.random.default_rng(None)
  double uniform();             // [0, 1) from 53 bits, as Generator.random()

 private:
  Rng(const uint32_t *entropy, size_t n);
  struct U128 {  // 128-bit arithmetic in two halves: no __int128 in ISO C++ (nor on every target)
    uint64_t hi = 0, lo = 0;
  };
  static U128 add(U128 a, U128 b);
  static U128 mul(U128 a, U128 b);  // the low 128 bits
  void advance();                   // state = state * multiplier + inc
  U128 state_, inc_;
};

// The index of the largest logit (the first of equals).
int32_t greedy(const float *logits, size_t n);
// temperature <= 0: greedy. Else softmax(logits / temperature), the fewest most probable tokens whose
// mass reaches top_p (at least the top one), one drawn from them by rng.
int32_t sample(const float *logits, size_t n, double temperature, double top_p, Rng &rng);

}  // namespace acre
