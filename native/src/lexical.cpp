// BM25 over token ids per span (lexical.hpp).
#include "lexical.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core.hpp"

namespace acre {

namespace {

void need_ids(const int32_t *ids, size_t n, const char *what) {
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0)
      fail(ACRE_ERR_INVALID_ARGUMENT,
           std::string(what) + " id " + std::to_string(ids[i]) + " at " + std::to_string(i) + " is negative");
}

}  // namespace

LexicalIndex::LexicalIndex(const int32_t *ids, size_t n, int32_t span_tokens) {
  if (span_tokens < 1)
    fail(ACRE_ERR_INVALID_ARGUMENT, "spans of " + std::to_string(span_tokens) + " tokens; at least 1");
  if (!n) fail(ACRE_ERR_INVALID_ARGUMENT, "the document has no token ids to index");
  need_ids(ids, n, "document token");
  const size_t S = size_t(span_tokens), spans = (n + S - 1) / S;
  if (spans > size_t(INT32_MAX)) fail(ACRE_ERR_INVALID_ARGUMENT, "too many spans for the lexical index");
  // (token, span) as one key, sorted: a run of equal keys is one posting and its length the count
  std::vector<uint64_t> keys(n);
  for (size_t i = 0; i < n; ++i) keys[i] = uint64_t(ids[i]) << 32 | uint64_t(i / S);
  std::sort(keys.begin(), keys.end());
  size_t postings = 0;  // sized exactly: no growth beyond the index and the keys while building
  for (size_t i = 0; i < n; ++i) postings += i == 0 || keys[i] != keys[i - 1];
  token_.reserve(postings), span_.reserve(postings), count_.reserve(postings);
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && keys[j] == keys[i]) ++j;
    token_.push_back(int32_t(keys[i] >> 32));
    span_.push_back(int32_t(keys[i] & 0xffffffffu));
    count_.push_back(int32_t(j - i));
    i = j;
  }
  const double mean = double(n) / double(spans);  // the lengths' mean: S, but for the last span
  norm_.resize(spans);
  for (size_t s = 0; s < spans; ++s) {
    const double length = s + 1 < spans ? double(S) : double(n - S * (spans - 1));
    norm_[s] = BM25_K1 * ((1 - BM25_B) + BM25_B * length / mean);
  }
}

void LexicalIndex::scores(const int32_t *query, size_t n, double *out) const {
  need_ids(query, n, "query token");
  std::vector<int32_t> distinct(query, query + n);
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  std::fill(out, out + spans(), 0.0);
  const double N = double(spans());
  for (int32_t t : distinct) {
    const auto [lo, hi] = std::equal_range(token_.begin(), token_.end(), t);
    if (lo == hi) continue;
    const double df = double(hi - lo);
    const double idf = std::log((N - df + 0.5) / (df + 0.5) + 1.0);
    for (auto p = size_t(lo - token_.begin()); p < size_t(hi - token_.begin()); ++p) {
      const double tf = count_[p];
      out[span_[p]] += idf * tf * (BM25_K1 + 1) / (tf + norm_[span_[p]]);
    }
  }
}

}  // namespace acre
