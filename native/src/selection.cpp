// Span selection (selection.hpp): the scores' combination, the dynamic cut-off, neighbours and
// carried spans, and where a refill goes in the pot.
#include "selection.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core.hpp"

namespace acre {

namespace {

// ---- double-double arithmetic, for exp_rounded (hi + lo, |lo| <= ulp(hi) / 2)
struct DD {
  double hi, lo;
};

DD two_sum(double a, double b) {
  const double s = a + b, bb = s - a;
  return {s, (a - (s - bb)) + (b - bb)};
}
DD quick_two_sum(double a, double b) {  // |a| >= |b|
  const double s = a + b;
  return {s, b - (s - a)};
}
DD two_prod(double a, double b) {
  const double p = a * b;
  return {p, std::fma(a, b, -p)};
}
DD add(DD a, DD b) {
  DD s = two_sum(a.hi, b.hi);
  const DD t = two_sum(a.lo, b.lo);
  s = quick_two_sum(s.hi, s.lo + t.hi);
  return quick_two_sum(s.hi, s.lo + t.lo);
}
DD mul(DD a, DD b) {
  const DD p = two_prod(a.hi, b.hi);
  return quick_two_sum(p.hi, p.lo + (a.hi * b.lo + a.lo * b.hi));
}

// ln 2 as three doubles, and 1/i! as double-doubles (from 80-digit decimals)
constexpr double LN2_HI = 0x1.62e42fefa39efp-1, LN2_MID = 0x1.abc9e3b39803fp-56,
                 LN2_LO = 0x1.7b57a079a1934p-111;
constexpr DD INV_FACTORIAL[] = {
    {0x1p+0, 0},
    {0x1p+0, 0},
    {0x1p-1, 0},
    {0x1.5555555555555p-3, 0x1.5555555555555p-57},
    {0x1.5555555555555p-5, 0x1.5555555555555p-59},
    {0x1.1111111111111p-7, 0x1.1111111111111p-63},
    {0x1.6c16c16c16c17p-10, -0x1.f49f49f49f49fp-65},
    {0x1.a01a01a01a01ap-13, 0x1.a01a01a01a01ap-73},
    {0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-76},
    {0x1.71de3a556c734p-19, -0x1.c154f8ddc6c00p-73},
    {0x1.27e4fb7789f5cp-22, 0x1.cbbc05b4fa99ap-76},
};
constexpr int TERMS = 10;      // |s| < 2^-11: the first term left out is below 2^-120 of the sum
constexpr int SQUARINGS = 10;  // s = r / 2^10

[[noreturn]] void bad(const std::string &message) { fail(ACRE_ERR_INVALID_ARGUMENT, message); }

std::string value_text(double v) {
  return std::isnan(v) ? "nan" : std::isinf(v) ? (v > 0 ? "inf" : "-inf") : std::to_string(v);
}

void need_finite(const double *x, size_t n, const char *what) {
  for (size_t i = 0; x && i < n; ++i)
    if (!std::isfinite(x[i])) bad(std::string(what) + "[" + std::to_string(i) + "] is " + value_text(x[i]));
}

double sequential_sum(const std::vector<double> &x) {
  double total = 0;
  for (double v : x) total += v;
  return total;
}

std::vector<double> normalised(const double *x, size_t n) {
  std::vector<double> out(x, x + n);
  const double total = sequential_sum(out);
  if (total > 0)
    for (double &v : out) v /= total;
  return out;
}

std::vector<double> softmax(const double *z, size_t n) {
  const double top = *std::max_element(z, z + n);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = exp_rounded(z[i] - top);
  const double total = sequential_sum(out);
  for (double &v : out) v /= total;
  return out;
}

}  // namespace

double exp_rounded(double x) {
  if (std::isnan(x)) return x;
  if (x == -std::numeric_limits<double>::infinity() || x < -745.2) return 0.0;
  if (x > 709.8) return std::numeric_limits<double>::infinity();
  // x = k ln2 + r, |r| <= ln2 / 2, r as a double-double (k ln2_hi is exact by two_prod, x - its
  // high part exact by Sterbenz)
  const double k = std::nearbyint(x * 0x1.71547652b82fep+0);
  const DD p = two_prod(k, LN2_HI);
  DD r = two_sum(x - p.hi, -p.lo);
  const DD mid = two_prod(k, LN2_MID);
  r = add(r, {-mid.hi, -mid.lo});
  r = add(r, {-k * LN2_LO, 0});
  // exp(r) = (1 + expm1(s))^(2^10), s = r / 2^10: a Taylor series for expm1(s) (Horner), then
  // squarings of 1 + e as e <- 2e + e^2, keeping e small so no bits are lost to the leading 1
  const DD s{std::ldexp(r.hi, -SQUARINGS), std::ldexp(r.lo, -SQUARINGS)};
  DD e = INV_FACTORIAL[TERMS];
  for (int i = TERMS - 1; i >= 1; --i) e = add(mul(e, s), INV_FACTORIAL[i]);
  e = mul(e, s);
  for (int i = 0; i < SQUARINGS; ++i) e = add({2 * e.hi, 2 * e.lo}, mul(e, e));
  const DD y = add({1.0, 0.0}, e);
  return std::ldexp(y.hi + y.lo, int(k));
}

std::vector<double> standardised(const double *x, size_t n) {
  std::vector<double> d(x, x + n);
  if (!n) return d;
  const double mean = sequential_sum(d) / double(n);
  double squares = 0;
  for (double &v : d) {
    v -= mean;
    squares += v * v;
  }
  const double deviation = std::sqrt(squares / double(n));
  for (double &v : d) v = deviation > 0 ? v / deviation : 0.0;
  return d;
}

std::vector<double> combine_scores(const double *attention, const double *index_z, const double *lexical,
                                   size_t n) {
  if (!attention && !index_z && !lexical) bad("no span scores: need attention, index or lexical scores");
  if (!n) bad("no spans to score");
  need_finite(attention, n, "attention");
  need_finite(lexical, n, "lexical");
  if (index_z) {
    bool reached = false;
    for (size_t i = 0; i < n; ++i) {
      if (std::isnan(index_z[i]) || index_z[i] == std::numeric_limits<double>::infinity())
        bad("index_z[" + std::to_string(i) + "] is " + value_text(index_z[i]) +
            "; index scores are finite, or -inf where the search did not reach");
      reached = reached || std::isfinite(index_z[i]);
    }
    if (!reached) bad("index_z is -inf everywhere: the index search reached no span");
  }
  std::vector<std::vector<double>> parts;
  if (attention) parts.push_back(normalised(attention, n));
  if (index_z) parts.push_back(softmax(index_z, n));
  if (lexical) {
    const std::vector<double> z = standardised(lexical, n);
    parts.push_back(softmax(z.data(), n));
  }
  std::vector<double> total = parts[0];
  for (size_t p = 1; p < parts.size(); ++p)
    for (size_t i = 0; i < n; ++i) total[i] += parts[p][i];
  if (parts.size() > 1)
    for (double &v : total) v /= double(parts.size());
  return total;
}

std::vector<int64_t> core_spans(const double *scores, size_t n, int32_t budget, double mass,
                                int32_t min_spans) {
  if (!n) bad("no spans to choose from");
  need_finite(scores, n, "scores");
  if (budget < 0) bad("a refill budget of " + std::to_string(budget) + " spans; it must be 0 or more");
  if (!(mass > 0 && mass <= 1)) bad("mass " + value_text(mass) + ": it must be in (0, 1]");
  if (min_spans < 0) bad("min_spans " + std::to_string(min_spans) + ": it must be 0 or more");
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] > scores[b]; });
  order.erase(std::find_if(order.begin(), order.end(), [&](int64_t i) { return !(scores[i] > 0); }),
              order.end());
  if (order.empty() || budget < 1) return {};
  std::vector<double> cumulative(order.size());
  double running = 0;
  for (size_t i = 0; i < order.size(); ++i) cumulative[i] = running += scores[order[i]];
  size_t count = 1;  // spans before the running share first reaches mass, and that one
  while (count <= order.size() && cumulative[count - 1] / running < mass) ++count;
  order.resize(std::min({std::max(count, size_t(min_spans)), size_t(budget), order.size()}));
  return order;
}

Choice choose_spans(const double *scores, size_t n, int32_t budget, double mass, int32_t min_spans,
                    int32_t neighbors, const int64_t *carried_in, size_t n_carried) {
  if (neighbors < 0) bad("neighbors " + std::to_string(neighbors) + ": it must be 0 or more");
  std::vector<int64_t> carried;
  for (size_t i = 0; carried_in && i < n_carried; ++i) {
    const int64_t c = carried_in[i];
    if (c >= 0 && uint64_t(c) < n && std::find(carried.begin(), carried.end(), c) == carried.end())
      carried.push_back(c);
  }
  const int32_t reserve = std::min(int32_t(carried.size()), std::max(budget, 0) / 2);
  const std::vector<int64_t> cores = core_spans(scores, n, budget - reserve, mass, min_spans);
  const auto is_core = [&](int64_t c) { return std::find(cores.begin(), cores.end(), c) != cores.end(); };
  carried.erase(std::remove_if(carried.begin(), carried.end(), is_core), carried.end());
  carried.resize(std::min(carried.size(), size_t(reserve)));

  Choice out;
  std::vector<bool> chosen(n, false);
  const auto take = [&](int64_t span) {
    out.spans.push_back(span);
    chosen[span] = true;
  };
  const auto add_neighbourhoods = [&](size_t limit) {
    for (int64_t span : cores)
      for (int64_t d = 0; d <= 2 * int64_t(neighbors); ++d) {  // span, span - 1, span + 1, span - 2, ...
        const int64_t near = span + (d % 2 ? -(d + 1) / 2 : d / 2);
        if (out.spans.size() < limit && near >= 0 && uint64_t(near) < n && !chosen[near]) take(near);
      }
  };
  add_neighbourhoods(size_t(budget) - carried.size());
  for (int64_t c : carried)
    if (!chosen[c]) take(c);
  add_neighbourhoods(size_t(budget));
  std::sort(out.spans.begin(), out.spans.end());
  for (int64_t c : cores)
    if (chosen[c]) out.about.push_back(c);
  for (int64_t c : carried)
    if (chosen[c]) out.about.push_back(c);
  return out;
}

Placement refill_placement(const int64_t *spans, size_t n_spans, const int64_t *starts,
                           const int32_t *lengths, size_t n_store_spans, const int64_t *resident,
                           size_t n_resident, const int64_t *free_slots, size_t n_free) {
  std::vector<int64_t> order(spans, spans + n_spans);
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] < 0 || uint64_t(order[i]) >= n_store_spans)
      bad("span " + std::to_string(order[i]) + " is not one of the store's " + std::to_string(n_store_spans) +
          " spans");
    if (i && order[i] == order[i - 1]) bad("span " + std::to_string(order[i]) + " is listed twice");
  }
  std::vector<int64_t> shown(resident, resident + n_resident);
  std::sort(shown.begin(), shown.end());
  Placement out;
  for (int64_t span : order) {
    if (starts[span] < 0 || lengths[span] < 0)
      bad("span " + std::to_string(span) + " has a negative start or length");
    for (int64_t t = starts[span]; t < starts[span] + lengths[span]; ++t)
      if (!std::binary_search(shown.begin(), shown.end(), t)) out.tokens.push_back(t);
  }
  if (out.tokens.size() > n_free)
    bad(std::to_string(out.tokens.size()) + " refill tokens for " + std::to_string(n_free) + " free slots");
  out.slots.assign(free_slots, free_slots + out.tokens.size());
  return out;
}

}  // namespace acre
