// The span index through the C ABI (ctest): the tree, its levels and its beam search against
// tests/vectors/selection.json, representatives and probe queries worked by hand, an index read from
// an L2 store, and refusals (bad shapes and dtypes, NaN, empty inputs, heads out of range).
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <vector>

#include "../src/half.hpp"
#include "check.hpp"

namespace {

using test::array;
using test::refused;
constexpr acre_status BAD = ACRE_ERR_INVALID_ARGUMENT;

std::vector<uint16_t> halves(const std::vector<double> &values) {
  std::vector<uint16_t> out;
  for (double v : values) out.push_back(acre::to_half(float(v)));
  return out;
}

acre_span_index *index_of(const std::vector<uint16_t> &reps, std::vector<int64_t> dims, int32_t fanout = 8) {
  const acre_array a = array(ACRE_DTYPE_FLOAT16, dims, reps.data());
  acre_span_index *index = nullptr;
  CHECK(acre_span_index_new(&a, fanout, &index) == ACRE_OK);
  return index;
}

std::vector<double> scores_of(const acre_span_index *index, const std::vector<float> &q,
                              std::vector<int64_t> dims, const std::vector<int32_t> &heads, int32_t beam,
                              int tree) {
  const acre_array a = array(ACRE_DTYPE_FLOAT32, dims, q.data());
  std::vector<double> out(acre_span_index_span_count(index));
  CHECK(acre_span_index_scores(index, &a, heads.data(), heads.size() / 2, beam, tree, out.data(),
                               out.size()) == ACRE_OK);
  return out;
}

std::vector<double> level_of(const acre_span_index *index, size_t level) {
  int64_t dims[4] = {};
  CHECK(acre_span_index_shape(index, dims) == ACRE_OK);
  std::vector<uint16_t> bits(acre_span_index_level_size(index, level) *
                             size_t(dims[0] * dims[1] * dims[2] * dims[3]));
  const acre_buffer out{bits.data(), 2 * bits.size()};
  CHECK(acre_span_index_level_reps(index, level, &out) == ACRE_OK);
  std::vector<double> values;
  for (uint16_t h : bits) values.push_back(acre::from_half(h));
  return values;
}

void test_the_shared_vectors_hold() {
  const nlohmann::json c = test::selection_vectors()["span_index"];
  const auto shape = c["reps_shape"].get<std::vector<int64_t>>(),
             qshape = c["queries_shape"].get<std::vector<int64_t>>();
  acre_span_index *index = index_of(halves(c["reps"].get<std::vector<double>>()), shape, c["fanout"]);
  CHECK(acre_span_index_levels(index) == c["levels"].size());
  for (size_t level = 0; level < c["levels"].size(); ++level)
    CHECK(acre_span_index_level_size(index, level) == c["levels"][level].get<size_t>());
  for (size_t level = 1; level < acre_span_index_levels(index); ++level)
    CHECK(level_of(index, level) == c["level_reps"][level - 1].get<std::vector<double>>());  // exactly
  CHECK(acre_span_index_bytes(index) == 2 * size_t(70 + 9 + 2) * 2 * 2 * 2 * 4);
  std::vector<int32_t> heads;
  for (const auto &h : c["heads"]) heads.push_back(h[0]), heads.push_back(h[1]);
  const auto queries = c["queries"].get<std::vector<float>>();
  const double tolerance = c["tolerance"];
  const std::vector<double> tree = scores_of(index, queries, qshape, heads, c["beam"], 1);
  const std::vector<double> flat = scores_of(index, queries, qshape, heads, 8, 0);
  for (size_t i = 0; i < tree.size(); ++i) {
    const nlohmann::json &want = c["tree_scores"][i];
    CHECK(want.is_null() == std::isinf(tree[i]));  // the same spans reached
    if (!want.is_null()) CHECK(std::fabs(tree[i] - want.get<double>()) <= tolerance);
    CHECK(std::fabs(flat[i] - c["flat_scores"][i].get<double>()) <= tolerance);
  }
  acre_span_index_free(index);
}

void test_representatives_are_the_largest_keys_repeated_when_few() {
  const std::vector<float> keys{1, 0, 0, 3, 2, 0, /* head 2: a tie */ 0, 1, 1, 0, 0, 0.5};
  const acre_array k = array(ACRE_DTYPE_FLOAT32, {1, 2, 3, 2}, keys.data());
  std::vector<float> out(2 * 4 * 2);
  const acre_buffer b{out.data(), 4 * out.size()};
  CHECK(acre_representatives(&k, 4, &b) == ACRE_OK);
  CHECK(out == std::vector<float>({0, 3, 2, 0, 1, 0, 0, 3, /* head 2 */ 0, 1, 1, 0, 0, 0.5, 0, 1}));
}

void test_probe_queries_are_the_most_deviating_tokens_and_the_last() {
  const std::vector<float> q{0, 0, 10, 0, 0};  // T = 5, D = 1: deviations 2, 2, 8, 2, 2
  const acre_array a = array(ACRE_DTYPE_FLOAT32, {1, 1, 5, 1}, q.data());
  std::vector<int64_t> picks(5);
  size_t n = 0;
  CHECK(acre_probe_queries(&a, 0.25, picks.data(), picks.size(), &n) == ACRE_OK && n == 3);
  CHECK(std::vector<int64_t>(picks.begin(), picks.begin() + 3) ==
        std::vector<int64_t>({0, 2, 4}));  // ties: earlier
  CHECK(acre_probe_queries(&a, 1.0, picks.data(), picks.size(), &n) == ACRE_OK && n == 5);
  CHECK(acre_probe_queries(&a, 0.25, picks.data(), 2, &n) == ACRE_ERR_BUFFER_TOO_SMALL && n == 3);
  CHECK(refused(acre_probe_queries(&a, 0.0, picks.data(), 5, &n), BAD, "probe share"));
  const acre_array none = array(ACRE_DTYPE_FLOAT32, {1, 1, 0, 1}, q.data());
  CHECK(refused(acre_probe_queries(&none, 0.25, picks.data(), 5, &n), BAD, "no question tokens"));
}

// 20 spans of one key each, all [0.1, 0] but span 13's [0, 4]; the query [0, 1] matches span 13
std::vector<uint16_t> needle_reps() {
  std::vector<double> values;
  for (int i = 0; i < 20; ++i) values.insert(values.end(), {i == 13 ? 0.0 : 0.1, i == 13 ? 4.0 : 0.0});
  return halves(values);
}

void test_the_tree_search_reaches_the_matching_span_through_its_parent() {
  acre_span_index *index = index_of(needle_reps(), {20, 1, 1, 1, 2});
  CHECK(acre_span_index_levels(index) == 2 && acre_span_index_level_size(index, 1) == 3);
  const std::vector<double> tree = scores_of(index, {0, 1}, {1, 1, 1, 2}, {0, 0}, 1, 1);
  for (int i = 0; i < 20; ++i) CHECK(std::isinf(tree[i]) == (i < 8 || i >= 16));  // parent 1 alone kept
  CHECK(std::max_element(tree.begin(), tree.end()) - tree.begin() == 13);
  const std::vector<double> flat = scores_of(index, {0, 1}, {1, 1, 1, 2}, {0, 0}, 1, 0);
  for (double s : flat) CHECK(std::isfinite(s));
  CHECK(std::max_element(flat.begin(), flat.end()) - flat.begin() == 13);
  acre_span_index_free(index);
}

void test_an_index_reads_its_entries_from_a_store() {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("acre_span_index_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  const acre_store_meta meta{"model", 2, 1, 1, 2, 1, 1, "none"};
  acre_store *store = nullptr;
  CHECK(acre_store_create(dir.c_str(), &meta, nullptr, &store) == ACRE_OK);
  const std::vector<int32_t> tokens{1, 2};
  for (int span = 0; span < 3; ++span) {
    const std::vector<float> reps{float(span), 0.5f};
    const acre_array t = array(ACRE_DTYPE_INT32, {2}, tokens.data()),
                     r = array(ACRE_DTYPE_FLOAT32, {1, 1, 1, 2}, reps.data());
    CHECK(acre_store_append(store, 2 * span, &t, nullptr, nullptr, &r) == ACRE_OK);
  }
  acre_span_index *index = nullptr;
  CHECK(acre_span_index_from_store(store, 8, &index) == ACRE_OK && acre_span_index_span_count(index) == 3);
  CHECK(level_of(index, 0) == std::vector<double>({0, 0.5, 1, 0.5, 2, 0.5}));
  acre_span_index_free(index);
  CHECK(refused(acre_span_index_from_store(nullptr, 8, &index), BAD, "store is NULL"));
  acre_store_free(store);
  std::filesystem::remove_all(dir);
}

void test_bad_input_is_refused_by_name() {
  acre_span_index *index = nullptr;
  const std::vector<uint16_t> reps = needle_reps();
  const std::vector<float> as_float(40, 0.5f);
  const acre_array wrong_dtype = array(ACRE_DTYPE_FLOAT32, {20, 1, 1, 1, 2}, as_float.data());
  CHECK(refused(acre_span_index_new(&wrong_dtype, 8, &index), BAD, "reps must be float16 of rank 5") &&
        !index);
  const acre_array wrong_rank = array(ACRE_DTYPE_FLOAT16, {20, 1, 1, 2}, reps.data());
  CHECK(refused(acre_span_index_new(&wrong_rank, 8, &index), BAD, "reps must be float16 of rank 5"));
  const acre_array empty = array(ACRE_DTYPE_FLOAT16, {0, 1, 1, 1, 2}, reps.data());
  CHECK(refused(acre_span_index_new(&empty, 8, &index), BAD, "at least one span"));
  std::vector<uint16_t> with_nan = reps;
  with_nan[3] = 0x7e00;
  const acre_array nan_reps = array(ACRE_DTYPE_FLOAT16, {20, 1, 1, 1, 2}, with_nan.data());
  CHECK(refused(acre_span_index_new(&nan_reps, 8, &index), BAD,
                "span 1's representative keys hold inf or NaN"));
  const acre_array good = array(ACRE_DTYPE_FLOAT16, {20, 1, 1, 1, 2}, reps.data());
  CHECK(refused(acre_span_index_new(&good, 1, &index), BAD, "fanout of 1"));

  index = index_of(reps, {20, 1, 1, 1, 2});
  std::vector<double> out(20);
  const std::vector<float> q{0, 1, 0, 1, 0, 1, 0, 1};
  const auto search = [&](std::vector<int64_t> dims, std::vector<int32_t> heads, int32_t beam, size_t n_out,
                          const float *data) {
    const acre_array a = array(ACRE_DTYPE_FLOAT32, dims, data);
    return acre_span_index_scores(index, &a, heads.data(), heads.size() / 2, beam, 1, out.data(), n_out);
  };
  CHECK(search({1, 1, 1, 2}, {0, 0}, 2, 20, q.data()) == ACRE_OK);
  CHECK(refused(search({2, 1, 1, 2}, {0, 0}, 2, 20, q.data()), BAD, "for an index of 1 probe layers"));
  CHECK(refused(search({1, 1, 1, 4}, {0, 0}, 2, 20, q.data()), BAD, "head_dim 2"));
  CHECK(refused(search({1, 1, 1, 2}, {1, 0}, 2, 20, q.data()), BAD, "retrieval head (1, 0) is outside"));
  CHECK(refused(search({1, 1, 1, 2}, {0, 1}, 2, 20, q.data()), BAD, "retrieval head (0, 1) is outside"));
  CHECK(refused(search({1, 1, 1, 2}, {0, -1}, 2, 20, q.data()), BAD, "retrieval head (0, -1)"));
  CHECK(refused(search({1, 1, 1, 2}, {}, 2, 20, q.data()), BAD, "no retrieval heads"));
  CHECK(refused(search({1, 1, 0, 2}, {0, 0}, 2, 20, q.data()), BAD, "no probe queries"));
  CHECK(refused(search({1, 1, 1, 2}, {0, 0}, 0, 20, q.data()), BAD, "beam of 0"));
  CHECK(refused(search({1, 1, 1, 2}, {0, 0}, 2, 19, q.data()), BAD, "holds 19 values for 20 spans"));
  const std::vector<float> nan_q{0, std::nanf("")};
  CHECK(refused(search({1, 1, 1, 2}, {0, 0}, 2, 20, nan_q.data()), BAD, "inf or NaN"));
  acre_array short_bytes = array(ACRE_DTYPE_FLOAT32, {1, 1, 1, 2}, q.data());
  short_bytes.info.bytes = 4;
  const std::vector<int32_t> head{0, 0};
  CHECK(refused(acre_span_index_scores(index, &short_bytes, head.data(), 1, 2, 1, out.data(), 20), BAD,
                "4 bytes for its shape's 8"));
  std::vector<uint16_t> level(10);
  const acre_buffer small{level.data(), 2 * level.size()};
  CHECK(refused(acre_span_index_level_reps(index, 1, &small), BAD, "out must be 12 bytes"));
  CHECK(refused(acre_span_index_level_reps(index, 2, &small), BAD, "level 2 of a span index of 2 levels"));
  acre_span_index_free(index);

  std::vector<float> reps_out(4);
  const acre_buffer b{reps_out.data(), 4 * reps_out.size()};
  const acre_array no_keys = array(ACRE_DTYPE_FLOAT32, {1, 1, 0, 2}, q.data());
  CHECK(refused(acre_representatives(&no_keys, 2, &b), BAD, "no keys"));
  const acre_array keys = array(ACRE_DTYPE_FLOAT32, {1, 1, 2, 2}, q.data());
  CHECK(refused(acre_representatives(&keys, 0, &b), BAD, "0 representatives"));
  CHECK(refused(acre_representatives(&keys, 1, &b), BAD, "out must be 8 bytes"));
  const acre_array nan_keys = array(ACRE_DTYPE_FLOAT32, {1, 1, 1, 2}, nan_q.data());
  const acre_buffer one{reps_out.data(), 8};
  CHECK(refused(acre_representatives(&nan_keys, 1, &one), BAD, "inf or NaN"));
}

}  // namespace

int main() {
  test_the_shared_vectors_hold();
  test_representatives_are_the_largest_keys_repeated_when_few();
  test_probe_queries_are_the_most_deviating_tokens_and_the_last();
  test_the_tree_search_reaches_the_matching_span_through_its_parent();
  test_an_index_reads_its_entries_from_a_store();
  test_bad_input_is_refused_by_name();
  return test::finish("acre_span_index_test");
}
