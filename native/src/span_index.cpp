// The span index (span_index.hpp): representatives, the tree, its beam search, probe queries.
#include "span_index.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>

#include "core.hpp"
#include "half.hpp"

namespace acre {

namespace {

[[noreturn]] void bad(const std::string &message) { fail(ACRE_ERR_INVALID_ARGUMENT, message); }

double value(float x) { return x; }
double value(uint16_t h) { return from_half(h); }

// The rows of `n` keys of D values (key i at keys[i * stride ...]), ordered by norm, largest first,
// ties kept in order; squared norms in float64 (exact for float16 keys).
template <class T>
std::vector<int64_t> by_norm(const T *keys, int64_t n, int64_t head_dim,
                             const std::vector<const T *> *rows = nullptr) {
  std::vector<double> norms(n);
  for (int64_t i = 0; i < n; ++i) {
    const T *key = rows ? (*rows)[i] : keys + i * head_dim;
    double sum = 0;
    for (int64_t d = 0; d < head_dim; ++d) sum += value(key[d]) * value(key[d]);
    norms[i] = sum;
  }
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return norms[a] > norms[b]; });
  return order;
}

// mean and population standard deviation, sums sequential
std::pair<double, double> moments(const std::vector<double> &x) {
  double sum = 0, squares = 0;
  for (double v : x) sum += v;
  const double mean = sum / double(x.size());
  for (double v : x) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / double(x.size()))};
}

// Indices of x largest first, ties: lower index first (numpy's argsort(-x, kind="stable")).
std::vector<int64_t> descending(const std::vector<double> &x) {
  std::vector<int64_t> order(x.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return x[a] > x[b]; });
  return order;
}

}  // namespace

void representatives(const float *keys, int64_t probe_layers, int64_t kv_heads, int64_t n, int64_t head_dim,
                     int64_t reps, float *out) {
  if (n < 1) bad("representatives of a span with no keys");
  if (reps < 1) bad(std::to_string(reps) + " representatives per head; at least 1");
  for (int64_t i = 0; i < probe_layers * kv_heads * n * head_dim; ++i)
    if (!std::isfinite(keys[i])) bad("the span's keys hold inf or NaN (value " + std::to_string(i) + ")");
  for (int64_t head = 0; head < probe_layers * kv_heads; ++head) {
    const float *k = keys + head * n * head_dim;
    const std::vector<int64_t> order = by_norm(k, n, head_dim);
    for (int64_t r = 0; r < reps; ++r)
      std::copy_n(k + order[r % n] * head_dim, head_dim, out + (head * reps + r) * head_dim);
  }
}

std::vector<int64_t> probe_queries(const float *queries, int64_t probe_layers, int64_t heads, int64_t tokens,
                                   int64_t head_dim, double share) {
  if (tokens < 1) bad("no question tokens to pick probe queries from");
  if (!(share > 0 && share <= 1)) bad("a probe share of " + std::to_string(share) + "; it must be in (0, 1]");
  std::vector<double> bias(tokens, 0.0), mean(head_dim);
  for (int64_t lh = 0; lh < probe_layers * heads; ++lh) {
    const float *q = queries + lh * tokens * head_dim;
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int64_t t = 0; t < tokens; ++t)
      for (int64_t d = 0; d < head_dim; ++d) {
        if (!std::isfinite(q[t * head_dim + d])) bad("the probe queries hold inf or NaN");
        mean[d] += q[t * head_dim + d];
      }
    for (double &m : mean) m /= double(tokens);
    for (int64_t t = 0; t < tokens; ++t) {
      double sum = 0;
      for (int64_t d = 0; d < head_dim; ++d)
        sum += (q[t * head_dim + d] - mean[d]) * (q[t * head_dim + d] - mean[d]);
      bias[t] += std::sqrt(sum);
    }
  }
  const auto k = std::max<int64_t>(1, int64_t(std::ceil(double(tokens) * share)));
  std::vector<int64_t> picks = descending(bias);
  picks.resize(size_t(k));
  if (std::find(picks.begin(), picks.end(), tokens - 1) == picks.end()) picks.push_back(tokens - 1);
  std::sort(picks.begin(), picks.end());
  return picks;
}

SpanIndex::SpanIndex(const IndexShape &shape, std::vector<uint16_t> spans, int32_t fanout)
    : shape_(shape), fanout_(fanout) {
  const size_t per = shape.node_values();
  if (shape.probe_layers < 1 || shape.kv_heads < 1 || shape.reps < 1 || shape.head_dim < 1)
    bad("a span index of shape [Lp, Hkv, R, D] = [" + std::to_string(shape.probe_layers) + ", " +
        std::to_string(shape.kv_heads) + ", " + std::to_string(shape.reps) + ", " +
        std::to_string(shape.head_dim) + "]; each must be at least 1");
  if (fanout < 2) bad("a span index fanout of " + std::to_string(fanout) + "; at least 2");
  if (spans.empty() || spans.size() % per)
    bad("the span index needs the representatives of at least one span");
  for (size_t i = 0; i < spans.size(); ++i)
    if ((spans[i] & 0x7c00u) == 0x7c00u)
      bad("span " + std::to_string(i / per) + "'s representative keys hold inf or NaN");
  levels_.push_back(std::move(spans));
  const int64_t R = shape.reps, D = shape.head_dim, heads = shape.probe_layers * shape.kv_heads;
  while (level_size(levels_.size() - 1) > size_t(fanout)) {
    const std::vector<uint16_t> &child = levels_.back();
    const size_t children = level_size(levels_.size() - 1), parents = (children + fanout - 1) / fanout;
    std::vector<uint16_t> up(parents * per);
    std::vector<const uint16_t *> rows;
    for (size_t p = 0; p < parents; ++p) {
      const size_t first = p * fanout, group = std::min(children, first + fanout) - first;
      for (int64_t head = 0; head < heads; ++head) {
        rows.clear();  // the group's g * R keys of this head, child by child
        for (size_t c = 0; c < group; ++c)
          for (int64_t r = 0; r < R; ++r) rows.push_back(&child[(first + c) * per + (head * R + r) * D]);
        const std::vector<int64_t> order = by_norm<uint16_t>(nullptr, int64_t(rows.size()), D, &rows);
        for (int64_t r = 0; r < R; ++r)
          std::copy_n(rows[order[r % rows.size()]], D, &up[p * per + (head * R + r) * D]);
      }
    }
    levels_.push_back(std::move(up));
  }
}

size_t SpanIndex::bytes() const {
  size_t total = 0;
  for (const auto &level : levels_) total += 2 * level.size();
  return total;
}

std::vector<double> SpanIndex::head_scores(size_t level, const std::vector<int64_t> &nodes,
                                           const std::vector<double> &q, int64_t heads, int64_t tokens,
                                           const std::vector<Head> &use) const {
  const int64_t R = shape_.reps, D = shape_.head_dim, groups = heads / shape_.kv_heads;
  const std::vector<uint16_t> &data = levels_[level];
  std::vector<double> total(nodes.size(), 0.0), best(nodes.size()), keys(size_t(R * D));
  for (const auto &[lp, h] : use) {
    const double *qh = &q[size_t((lp * heads + h) * tokens * D)];
    for (size_t i = 0; i < nodes.size(); ++i) {
      const uint16_t *k = &data[size_t(nodes[i]) * shape_.node_values() +
                                size_t((lp * shape_.kv_heads + h / groups) * R * D)];
      for (int64_t j = 0; j < R * D; ++j) keys[j] = from_half(k[j]);
      double top = -std::numeric_limits<double>::infinity();
      for (int64_t t = 0; t < tokens; ++t)
        for (int64_t r = 0; r < R; ++r) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qh[t * D + d] * keys[r * D + d];
          top = std::max(top, dot);
        }
      best[i] = top;
    }
    const auto [mean, deviation] = moments(best);
    for (size_t i = 0; i < nodes.size(); ++i) total[i] += (best[i] - mean) / (deviation + 1e-6);
  }
  return total;
}

void SpanIndex::scores(const float *queries, int64_t heads, int64_t tokens, const std::vector<Head> &use,
                       int32_t beam, bool tree, double *out) const {
  const int64_t Lp = shape_.probe_layers, D = shape_.head_dim;
  if (heads < 1 || heads % shape_.kv_heads)
    bad(std::to_string(heads) + " query heads for " + std::to_string(shape_.kv_heads) +
        " KV heads; the query heads must be a multiple of them");
  if (tokens < 1) bad("no probe queries to search the span index with");
  if (use.empty()) bad("no retrieval heads to score the span index with");
  for (const auto &[lp, h] : use)
    if (lp < 0 || lp >= Lp || h < 0 || h >= heads)
      bad("retrieval head (" + std::to_string(lp) + ", " + std::to_string(h) + ") is outside the " +
          std::to_string(Lp) + " probe layers and " + std::to_string(heads) + " query heads");
  if (beam < 1) bad("a beam of " + std::to_string(beam) + " nodes; at least 1");
  std::vector<double> q(queries, queries + Lp * heads * tokens * D);
  for (double v : q)
    if (!std::isfinite(v)) bad("the probe queries hold inf or NaN");

  std::fill(out, out + spans(), -std::numeric_limits<double>::infinity());
  std::vector<int64_t> candidates(tree && levels() > 1 ? level_size(levels() - 1) : spans());
  std::iota(candidates.begin(), candidates.end(), 0);
  for (size_t depth = levels() - 1; tree && depth > 0; --depth) {
    const std::vector<int64_t> order = descending(head_scores(depth, candidates, q, heads, tokens, use));
    const size_t below = level_size(depth - 1);
    std::vector<int64_t> children;
    for (size_t i = 0; i < std::min(order.size(), size_t(beam)); ++i) {
      const auto node = size_t(candidates[order[i]]);
      for (size_t c = node * fanout_; c < std::min((node + 1) * fanout_, below); ++c)
        children.push_back(int64_t(c));
    }
    std::sort(children.begin(), children.end());
    candidates = std::move(children);
  }
  const std::vector<double> z = head_scores(0, candidates, q, heads, tokens, use);
  for (size_t i = 0; i < candidates.size(); ++i) out[candidates[i]] = z[i];
}

}  // namespace acre
