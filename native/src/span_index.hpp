// The span index: representative keys per span, grouped into a tree searched top-down by probe queries.
//
// Each span is summarised, for every probe layer and KV head, by its R keys of largest norm. (Measured
// on SmolLM2-135M: the best query-key match inside a span predicts the needle's span as well as
// keeping every key does, while group-mean keys lose it.) A coarser node keeps the R largest-norm keys
// of its `fanout` children, in the spirit of SharedLLM's multi-grained tree.
//
// Only the model's retrieval heads score: for each head, a node's score is the best dot product of
// any probe query with any of its keys, standardised over the candidate nodes; the heads' standardised
// scores are summed, in the order the heads are given. Keys are float16, queries float32; dot products
// and the standardisation are computed in float64.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace acre {

struct IndexShape {
  int64_t probe_layers = 0, kv_heads = 0, reps = 0, head_dim = 0;  // Lp, Hkv, R, D
  size_t node_values() const { return size_t(probe_layers * kv_heads * reps * head_dim); }
};

// keys float32 [Lp, Hkv, n, D] (n >= 1) -> out float32 [Lp, Hkv, R, D]: per head the R keys of largest
// norm, largest first (ties: the earlier key), repeated from the first when n < R.
void representatives(const float *keys, int64_t probe_layers, int64_t kv_heads, int64_t n, int64_t head_dim,
                     int64_t reps, float *out);

// ActQKV: the question tokens whose queries deviate most (L2 norm, summed over layers and heads) from the
// question's mean query, ceil(T * share) of them (at least 1), and the last token; ascending.
// queries float32 [Lp, H, T, D].
std::vector<int64_t> probe_queries(const float *queries, int64_t probe_layers, int64_t heads, int64_t tokens,
                                   int64_t head_dim, double share);

using Head = std::pair<int32_t, int32_t>;  // (index into the probe layers, query head)

class SpanIndex {
 public:
  // spans: float16 bits [N, Lp, Hkv, R, D], N >= 1, all finite. Builds the coarser levels at once.
  SpanIndex(const IndexShape &shape, std::vector<uint16_t> spans, int32_t fanout);

  const IndexShape &shape() const { return shape_; }
  size_t spans() const { return level_size(0); }
  size_t levels() const { return levels_.size(); }
  size_t level_size(size_t level) const { return levels_.at(level).size() / shape_.node_values(); }
  const std::vector<uint16_t> &level(size_t level) const { return levels_.at(level); }
  size_t bytes() const;

  // The score of every span into out[spans()]: -inf where the tree search did not reach. queries
  // float32 [Lp, H, T, D] with H a multiple of Hkv; beam: nodes kept per level; tree false: every
  // span is scored, flat.
  void scores(const float *queries, int64_t heads, int64_t tokens, const std::vector<Head> &use, int32_t beam,
              bool tree, double *out) const;

 private:
  std::vector<double> head_scores(size_t level, const std::vector<int64_t> &nodes,
                                  const std::vector<double> &q, int64_t heads, int64_t tokens,
                                  const std::vector<Head> &use) const;

  IndexShape shape_;
  int32_t fanout_;
  std::vector<std::vector<uint16_t>> levels_;  // [0]: the spans; each next one 1/fanout of the one before
};

}  // namespace acre
