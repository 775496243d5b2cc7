// Sampling (sampling.hpp): numpy's SeedSequence, PCG64 (XSL-RR 128/64) and Generator.choice.
#include "sampling.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "pairwise_sum.hpp"

namespace acre {

namespace {

constexpr uint32_t INIT_A = 0x43b0d7e5, MULT_A = 0x931e8875, INIT_B = 0x8b51f9dd, MULT_B = 0x58f38ded;
constexpr uint32_t MIX_MULT_L = 0xca01f9dd, MIX_MULT_R = 0x4973f715;
constexpr uint64_t PCG_MULT_HI = 2549297995355413924ULL, PCG_MULT_LO = 4865540595714422341ULL;

// the 128-bit product of two 64-bit values, from 32-bit halves
void mul64(uint64_t a, uint64_t b, uint64_t &hi, uint64_t &lo) {
  const uint64_t a0 = uint32_t(a), a1 = a >> 32, b0 = uint32_t(b), b1 = b >> 32;
  const uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
  const uint64_t middle = (p00 >> 32) + uint32_t(p01) + uint32_t(p10);
  lo = (middle << 32) | uint32_t(p00);
  hi = p11 + (p01 >> 32) + (p10 >> 32) + (middle >> 32);
}

uint32_t hashmix(uint32_t value, uint32_t &hash) {
  value ^= hash;
  hash *= MULT_A;
  value *= hash;
  return value ^ (value >> 16);
}

uint32_t mix(uint32_t x, uint32_t y) {
  uint32_t r = MIX_MULT_L * x - MIX_MULT_R * y;
  return r ^ (r >> 16);
}

}  // namespace

Rng::Rng(const uint32_t *entropy, size_t n) {
  uint32_t pool[4], hash = INIT_A;  // SeedSequence's pool of 4 words
  for (size_t i = 0; i < 4; ++i) pool[i] = hashmix(i < n ? entropy[i] : 0, hash);
  for (size_t src = 0; src < 4; ++src)
    for (size_t dst = 0; dst < 4; ++dst)
      if (src != dst) pool[dst] = mix(pool[dst], hashmix(pool[src], hash));
  for (size_t src = 4; src < n; ++src)
    for (size_t dst = 0; dst < 4; ++dst) pool[dst] = mix(pool[dst], hashmix(entropy[src], hash));
  uint32_t words[8];  // generate_state(4, uint64)
  uint32_t h = INIT_B;
  for (size_t i = 0; i < 8; ++i) {
    uint32_t v = pool[i % 4] ^ h;
    h *= MULT_B;
    v *= h;
    words[i] = v ^ (v >> 16);
  }
  uint64_t seed[4];
  for (size_t i = 0; i < 4; ++i) seed[i] = uint64_t(words[2 * i]) | (uint64_t(words[2 * i + 1]) << 32);
  // pcg_setseq_128_srandom_r(initstate = seed[0..1], initseq = seed[2..3])
  inc_ = {(seed[2] << 1) | (seed[3] >> 63), (seed[3] << 1) | 1};
  state_ = {0, 0};
  advance();
  state_ = add(state_, {seed[0], seed[1]});
  advance();
}

Rng::U128 Rng::add(U128 a, U128 b) {
  const uint64_t lo = a.lo + b.lo;
  return {a.hi + b.hi + (lo < a.lo ? 1 : 0), lo};
}

Rng::U128 Rng::mul(U128 a, U128 b) {
  U128 out;
  mul64(a.lo, b.lo, out.hi, out.lo);
  out.hi += a.hi * b.lo + a.lo * b.hi;
  return out;
}

void Rng::advance() { state_ = add(mul(state_, {PCG_MULT_HI, PCG_MULT_LO}), inc_); }

Rng::Rng(uint64_t seed) {
  uint32_t words[2] = {uint32_t(seed), uint32_t(seed >> 32)};
  *this = Rng(words, seed >> 32 ? 2 : 1);
}

Rng Rng::from_entropy() {
  std::random_device device;
  uint32_t words[4];
  for (uint32_t &w : words) w = device();
  return Rng(words, 4);
}

double Rng::uniform() {
  advance();  // XSL-RR: the halves xor'ed, rotated by the top 6 bits
  const uint64_t x = state_.hi ^ state_.lo;
  const unsigned rot = unsigned(state_.hi >> 58);
  const uint64_t out = (x >> rot) | (x << ((64 - rot) & 63));
  return double(out >> 11) * (1.0 / 9007199254740992.0);
}

int32_t greedy(const float *logits, size_t n) {
  return int32_t(std::max_element(logits, logits + n) - logits);  // the first of equals, as np.argmax
}

int32_t sample(const float *logits, size_t n, double temperature, double top_p, Rng &rng) {
  if (temperature <= 0) return greedy(logits, n);
  std::vector<double> probs(n);
  for (size_t i = 0; i < n; ++i) probs[i] = double(logits[i]) / temperature;
  const double top = *std::max_element(probs.begin(), probs.end());
  for (double &p : probs) p = std::exp(p - top);
  const double total = pairwise_sum(probs.data(), n);
  for (double &p : probs) p /= total;
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return -probs[a] < -probs[b]; });
  // the smallest prefix whose mass reaches top_p (always at least the top token)
  size_t keep = 0;
  for (double cumulative = 0.0; keep < n; ++keep) {
    cumulative += probs[order[keep]];
    if (cumulative >= top_p) break;
  }
  keep = std::min(keep + 1, n);
  std::vector<double> kept(keep);
  for (size_t i = 0; i < keep; ++i) kept[i] = probs[order[i]];
  const double mass = pairwise_sum(kept.data(), keep);
  for (double &p : kept) p /= mass;
  std::vector<double> cdf(keep);  // Generator.choice: cumsum, divided by its last, searched on the right
  std::partial_sum(kept.begin(), kept.end(), cdf.begin());
  const double last = cdf.back();
  for (double &c : cdf) c /= last;
  const double u = rng.uniform();
  const size_t i = size_t(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
  return int32_t(order[std::min(i, keep - 1)]);
}

}  // namespace acre
