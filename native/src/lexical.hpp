// Lexical span scores: BM25 of a question's token ids against each span's token ids. A third signal
// beside the question's attention on L1 and the span index; it needs no model and no flash reads,
// only the document's ids. One (token, span, count) posting per distinct token of each span, int32,
// sorted by token then span: at most 12 bytes per document token, and much less for real text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace acre {

constexpr double BM25_K1 = 1.2, BM25_B = 0.75;  // the usual BM25 constants

class LexicalIndex {
 public:
  // The document's ids (>= 0, at least one), cut into spans of span_tokens (the last may be shorter).
  LexicalIndex(const int32_t *ids, size_t n, int32_t span_tokens);

  size_t spans() const { return norm_.size(); }
  size_t bytes() const { return 12 * token_.size() + 8 * norm_.size(); }
  // BM25 of every span for the distinct query ids (ids the document lacks add 0) into out[spans()].
  void scores(const int32_t *query, size_t n, double *out) const;

 private:
  std::vector<int32_t> token_, span_, count_;
  std::vector<double> norm_;  // K1 (1 - B + B length / mean length), per span
};

}  // namespace acre
