// BM25 through the C ABI (ctest): the scores of tests/vectors/selection.json, BM25 worked by hand,
// repeated and unknown query ids, the index's size, and refusals (no ids, negative ids, bad spans).
#include <cmath>
#include <vector>

#include "check.hpp"

namespace {

using test::refused;
constexpr acre_status BAD = ACRE_ERR_INVALID_ARGUMENT;

std::vector<double> scores_of(const acre_lexical *index, const std::vector<int32_t> &query) {
  std::vector<double> out(acre_lexical_span_count(index));
  CHECK(acre_lexical_scores(index, query.data(), query.size(), out.data(), out.size()) == ACRE_OK);
  return out;
}

void test_the_shared_vectors_hold() {
  const nlohmann::json data = test::selection_vectors();
  CHECK(data["lexical"].size() == 3);
  for (const auto &c : data["lexical"]) {
    const auto ids = c["document_ids"].get<std::vector<int32_t>>();
    acre_lexical *index = nullptr;
    CHECK(acre_lexical_new(ids.data(), ids.size(), c["span_tokens"], &index) == ACRE_OK);
    const auto want = c["scores"].get<std::vector<double>>();
    const std::vector<double> got = scores_of(index, c["query_ids"].get<std::vector<int32_t>>());
    CHECK(got.size() == want.size());
    for (size_t i = 0; i < want.size() && i < got.size(); ++i) CHECK(std::fabs(got[i] - want[i]) <= 1e-12);
    acre_lexical_free(index);
  }
}

void test_scores_are_bm25_worked_by_hand() {
  // spans of 3: [5 5 7] [7 8 9] [5]; the mean length is 7/3
  const std::vector<int32_t> ids{5, 5, 7, 7, 8, 9, 5};
  acre_lexical *index = nullptr;
  CHECK(acre_lexical_new(ids.data(), ids.size(), 3, &index) == ACRE_OK);
  CHECK(acre_lexical_span_count(index) == 3);
  CHECK(acre_lexical_bytes(index) == 12 * 6 + 8 * 3);  // postings (5,0) (5,2) (7,0) (7,1) (8,1) (9,1)
  const double k1 = ACRE_BM25_K1, b = ACRE_BM25_B, mean = 7.0 / 3;
  const auto norm = [&](double length) { return k1 * (1 - b + b * length / mean); };
  const double idf5 = std::log((3 - 2 + 0.5) / (2 + 0.5) + 1.0),
               idf8 = std::log((3 - 1 + 0.5) / (1 + 0.5) + 1.0);
  const std::vector<double> got = scores_of(index, {8, 5, 5, 42});  // 5 counts once; 42 is not in it
  CHECK(std::fabs(got[0] - idf5 * 2 * (k1 + 1) / (2 + norm(3))) < 1e-15);
  CHECK(std::fabs(got[1] - idf8 * 1 * (k1 + 1) / (1 + norm(3))) < 1e-15);
  CHECK(std::fabs(got[2] - idf5 * 1 * (k1 + 1) / (1 + norm(1))) < 1e-15);
  CHECK(scores_of(index, {}) == std::vector<double>(3, 0.0));
  CHECK(scores_of(index, {42}) == std::vector<double>(3, 0.0));
  acre_lexical_free(index);
}

void test_bad_input_is_refused_by_name() {
  const std::vector<int32_t> ids{1, 2, -3, 4};
  acre_lexical *index = nullptr;
  CHECK(refused(acre_lexical_new(ids.data(), 0, 4, &index), BAD, "no token ids") && !index);
  CHECK(refused(acre_lexical_new(ids.data(), 4, 4, &index), BAD, "id -3 at 2 is negative"));
  CHECK(refused(acre_lexical_new(ids.data(), 2, 0, &index), BAD, "spans of 0 tokens"));
  CHECK(refused(acre_lexical_new(nullptr, 2, 4, &index), BAD, "document_ids is NULL"));
  CHECK(acre_lexical_new(ids.data(), 2, 4, &index) == ACRE_OK);
  std::vector<double> out(2);
  CHECK(refused(acre_lexical_scores(index, ids.data(), 3, out.data(), 1), BAD, "query token id -3"));
  CHECK(refused(acre_lexical_scores(index, ids.data(), 2, out.data(), 2), BAD, "holds 2 values for 1 spans"));
  CHECK(refused(acre_lexical_scores(nullptr, ids.data(), 2, out.data(), 1), BAD, "lexical is NULL"));
  acre_lexical_free(index);
  acre_lexical_free(nullptr);
}

}  // namespace

int main() {
  test_the_shared_vectors_hold();
  test_scores_are_bm25_worked_by_hand();
  test_bad_input_is_refused_by_name();
  return test::finish("acre_lexical_test");
}
