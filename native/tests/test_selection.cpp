// Span selection through the C ABI (ctest): the combined scores bit for bit and the chosen spans of
// tests/vectors/selection.json, the correctly rounded softmax, the cut by mass, carried spans, refill
// placement, and the refusals (NaN, inf, empty input, bad budgets, spans out of range).
#include <cmath>
#include <limits>
#include <vector>

#include "check.hpp"

namespace {

using test::refused;
constexpr double NEG_INF = -std::numeric_limits<double>::infinity();
constexpr acre_status BAD = ACRE_ERR_INVALID_ARGUMENT;

std::vector<double> doubles(const nlohmann::json &values) {  // null: -inf (a span the search did not reach)
  std::vector<double> out;
  for (const auto &v : values) out.push_back(v.is_null() ? NEG_INF : v.get<double>());
  return out;
}

std::vector<int64_t> choose(const std::vector<double> &scores, int32_t budget, double mass, int32_t min_spans,
                            int32_t neighbors, std::vector<int64_t> carried = {},
                            std::vector<int64_t> *about = nullptr) {
  std::vector<int64_t> chosen(scores.size()), cores(scores.size());
  size_t n_chosen = 0, n_about = 0;
  CHECK(acre_choose_spans(scores.data(), scores.size(), budget, mass, min_spans, neighbors, carried.data(),
                          carried.size(), chosen.data(), &n_chosen, cores.data(), &n_about) == ACRE_OK);
  chosen.resize(n_chosen), cores.resize(n_about);
  if (about) *about = cores;
  return chosen;
}

void test_the_shared_vectors_hold_bit_for_bit() {
  const nlohmann::json data = test::selection_vectors();
  CHECK(data["choose_spans"].size() == 18);
  for (const auto &c : data["choose_spans"]) {
    const std::vector<double> attention =
        c["attention"].is_null() ? std::vector<double>() : doubles(c["attention"]);
    const std::vector<double> z = c["index_z"].is_null() ? std::vector<double>() : doubles(c["index_z"]);
    const bool lexical_given = c.contains("lexical") && !c["lexical"].is_null();
    const std::vector<double> lexical = lexical_given ? doubles(c["lexical"]) : std::vector<double>();
    const std::vector<double> want = doubles(c["scores"]);
    std::vector<double> got(want.size());
    CHECK(acre_combine_scores(attention.empty() ? nullptr : attention.data(), z.empty() ? nullptr : z.data(),
                              lexical.empty() ? nullptr : lexical.data(), got.size(), got.data()) == ACRE_OK);
    CHECK(got == want);  // the same doubles, not close ones
    CHECK(choose(got, c["budget"], c["mass"], c["min_spans"], c["neighbors"]) ==
          c["chosen"].get<std::vector<int64_t>>());
  }
  for (const auto &c : data["refill_placement"]) {
    const auto spans = c["spans"].get<std::vector<int64_t>>(),
               starts = c["starts"].get<std::vector<int64_t>>();
    const auto lengths = c["lengths"].get<std::vector<int32_t>>();
    const auto resident = c["resident"].get<std::vector<int64_t>>(),
               free = c["free_slots"].get<std::vector<int64_t>>();
    std::vector<int64_t> slots(free.size()), tokens(free.size());
    size_t n = 0;
    CHECK(acre_refill_placement(spans.data(), spans.size(), starts.data(), lengths.data(), starts.size(),
                                resident.data(), resident.size(), free.data(), free.size(), slots.data(),
                                tokens.data(), &n) == ACRE_OK);
    slots.resize(n), tokens.resize(n);
    CHECK(slots == c["slots"].get<std::vector<int64_t>>() &&
          tokens == c["tokens"].get<std::vector<int64_t>>());
  }
}

void test_the_softmax_is_correctly_rounded() {
  // want: exp by 40-digit decimals, rounded once; the sum and the divisions as stated
  const std::vector<double> z{0.0, -1.0, -2.5, NEG_INF, -700.25};
  const std::vector<double> want{0x1.611cb31dbcd86p-1, 0x1.03ce2cba5a8d3p-2, 0x1.cfc368515e119p-5, 0.0,
                                 0x1.2981cebdcb759p-1011};
  std::vector<double> got(z.size());
  CHECK(acre_combine_scores(nullptr, z.data(), nullptr, z.size(), got.data()) == ACRE_OK);
  CHECK(got == want);
  const std::vector<double> shifted{3.0, 2.0, 0.5, NEG_INF, -697.25};  // the same after z - max
  CHECK(acre_combine_scores(nullptr, shifted.data(), nullptr, z.size(), got.data()) == ACRE_OK &&
        got == want);
}

void test_the_parts_are_averaged_in_order() {
  const std::vector<double> attention{1.0, 3.0}, z{0.0, 0.0}, lexical{2.0, 2.0};
  std::vector<double> got(2);
  CHECK(acre_combine_scores(attention.data(), nullptr, nullptr, 2, got.data()) == ACRE_OK);
  CHECK(got == std::vector<double>({0.25, 0.75}));
  CHECK(acre_combine_scores(attention.data(), z.data(), lexical.data(), 2, got.data()) == ACRE_OK);
  CHECK(got ==
        std::vector<double>({(0.25 + 0.5 + 0.5) / 3, (0.75 + 0.5 + 0.5) / 3}));  // constant BM25: uniform
  const std::vector<double> zeros{0.0, 0.0};
  CHECK(acre_combine_scores(zeros.data(), nullptr, nullptr, 2, got.data()) == ACRE_OK && got == zeros);
  const std::vector<double> x{1, 2, 3, 4}, constant{3, 3, 3};
  std::vector<double> s(4);
  CHECK(acre_standardised(x.data(), 4, s.data()) == ACRE_OK);
  CHECK(std::fabs(s[0] + 1.5 / std::sqrt(1.25)) < 1e-15 && std::fabs(s[3] - 1.5 / std::sqrt(1.25)) < 1e-15);
  CHECK(acre_standardised(constant.data(), 3, s.data()) == ACRE_OK && s[0] == 0 && s[1] == 0 && s[2] == 0);
}

void test_the_cut_takes_the_fewest_spans_holding_the_mass() {
  const std::vector<double> scores{0.0, 0.5, 0.05, 0.3, 0.1, 0.05};
  CHECK(choose(scores, 6, 0.5, 1, 0) == std::vector<int64_t>({1}));
  CHECK(choose(scores, 6, 0.8, 1, 0) == std::vector<int64_t>({1, 3}));
  CHECK(choose(scores, 6, 0.8, 3, 0) == std::vector<int64_t>({1, 3, 4}));  // at least min_spans
  CHECK(choose(scores, 2, 1.0, 1, 1) == std::vector<int64_t>({0, 1}));     // a neighbour before the next core
  CHECK(choose(std::vector<double>(4, 0.0), 4, 0.9, 2, 1).empty());        // nothing scores: nothing refilled
  CHECK(choose(scores, 0, 0.9, 2, 1).empty());
  std::vector<int64_t> cores(6);
  size_t n = 0;
  const std::vector<double> ties{1.0, 2.0, 1.0, 2.0};
  CHECK(acre_core_spans(ties.data(), 4, 4, 1.0, 0, cores.data(), &n) == ACRE_OK && n == 4);
  CHECK(std::vector<int64_t>(cores.begin(), cores.begin() + 4) == std::vector<int64_t>({1, 3, 0, 2}));
}

void test_carried_spans_take_up_to_half_the_budget_before_any_neighbour() {
  const std::vector<double> scores{0.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0};
  std::vector<int64_t> about;
  CHECK(choose(scores, 4, 0.9, 1, 1, {}, &about) == std::vector<int64_t>({0, 1, 2, 8}));
  CHECK(about == std::vector<int64_t>({1, 8}));
  CHECK(choose(scores, 4, 0.9, 1, 1, {6, 3, 5}, &about) == std::vector<int64_t>({0, 1, 3, 6}));
  CHECK(about == std::vector<int64_t>({1, 6, 3}));
  CHECK(choose(scores, 4, 0.9, 1, 1, {1}, &about) ==
        std::vector<int64_t>({0, 1, 2, 8}));  // a core: no room of its own
  CHECK(about == std::vector<int64_t>({1, 8}));
  CHECK(choose(scores, 4, 0.9, 1, 1, {42, -1}) == std::vector<int64_t>({0, 1, 2, 8}));  // no span: ignored
}

void test_bad_scores_and_rules_are_refused_by_name() {
  const double nan = std::nan("");
  std::vector<double> out(3);
  const std::vector<double> good{0.1, 0.2, 0.3}, with_nan{0.1, nan, 0.3}, with_inf{0.1, 0.2, INFINITY};
  const std::vector<double> unreached{NEG_INF, NEG_INF, NEG_INF};
  CHECK(refused(acre_combine_scores(with_nan.data(), nullptr, nullptr, 3, out.data()), BAD,
                "attention[1] is nan"));
  CHECK(refused(acre_combine_scores(nullptr, nullptr, with_inf.data(), 3, out.data()), BAD,
                "lexical[2] is inf"));
  CHECK(refused(acre_combine_scores(nullptr, with_inf.data(), nullptr, 3, out.data()), BAD,
                "index_z[2] is inf"));
  CHECK(refused(acre_combine_scores(nullptr, with_nan.data(), nullptr, 3, out.data()), BAD,
                "index_z[1] is nan"));
  CHECK(refused(acre_combine_scores(nullptr, unreached.data(), nullptr, 3, out.data()), BAD,
                "reached no span"));
  CHECK(refused(acre_combine_scores(nullptr, nullptr, nullptr, 3, out.data()), BAD, "no span scores"));
  CHECK(refused(acre_combine_scores(good.data(), nullptr, nullptr, 0, out.data()), BAD, "no spans"));
  CHECK(refused(acre_combine_scores(good.data(), nullptr, nullptr, 3, nullptr), BAD, "out is NULL"));

  std::vector<int64_t> a(3), b(3);
  size_t na = 0, nb = 0;
  const auto rule = [&](const std::vector<double> &s, int32_t budget, double mass, int32_t min_spans,
                        int32_t neighbors) {
    return acre_choose_spans(s.data(), s.size(), budget, mass, min_spans, neighbors, nullptr, 0, a.data(),
                             &na, b.data(), &nb);
  };
  CHECK(refused(rule(with_nan, 2, 0.9, 1, 1), BAD, "scores[1] is nan"));
  CHECK(refused(rule(good, -1, 0.9, 1, 1), BAD, "budget of -1"));
  CHECK(refused(rule(good, 2, 0.0, 1, 1), BAD, "mass 0"));
  CHECK(refused(rule(good, 2, 1.5, 1, 1), BAD, "mass 1.5"));
  CHECK(refused(rule(good, 2, nan, 1, 1), BAD, "mass nan"));
  CHECK(refused(rule(good, 2, 0.9, -1, 1), BAD, "min_spans -1"));
  CHECK(refused(rule(good, 2, 0.9, 1, -2), BAD, "neighbors -2"));
  CHECK(refused(rule({}, 2, 0.9, 1, 1), BAD, "no spans"));
  CHECK(refused(acre_core_spans(good.data(), 3, 2, 0.9, 1, a.data(), nullptr), BAD, "n_cores is NULL"));
}

void test_bad_refills_are_refused_by_name() {
  const std::vector<int64_t> starts{0, 4, 8}, resident{0}, free{10, 11, 12, 13, 14};
  const std::vector<int32_t> lengths{4, 4, 2};
  std::vector<int64_t> slots(5), tokens(5);
  size_t n = 0;
  const auto place = [&](const std::vector<int64_t> &spans, size_t n_free) {
    return acre_refill_placement(spans.data(), spans.size(), starts.data(), lengths.data(), 3,
                                 resident.data(), resident.size(), free.data(), n_free, slots.data(),
                                 tokens.data(), &n);
  };
  CHECK(place({2, 0}, 5) == ACRE_OK && n == 5);  // document order, the resident token 0 skipped
  CHECK(std::vector<int64_t>(tokens.begin(), tokens.end()) == std::vector<int64_t>({1, 2, 3, 8, 9}));
  CHECK(slots == free);
  CHECK(place({}, 5) == ACRE_OK && n == 0);
  CHECK(refused(place({0, 1}, 5), BAD, "7 refill tokens for 5 free slots"));
  CHECK(refused(place({3}, 5), BAD, "span 3 is not one of the store's 3 spans"));
  CHECK(refused(place({-1}, 5), BAD, "span -1 is not one"));
  CHECK(refused(place({1, 1}, 5), BAD, "span 1 is listed twice"));
}

}  // namespace

int main() {
  test_the_shared_vectors_hold_bit_for_bit();
  test_the_softmax_is_correctly_rounded();
  test_the_parts_are_averaged_in_order();
  test_the_cut_takes_the_fewest_spans_holding_the_mass();
  test_carried_spans_take_up_to_half_the_budget_before_any_neighbour();
  test_bad_scores_and_rules_are_refused_by_name();
  test_bad_refills_are_refused_by_name();
  return test::finish("acre_selection_test");
}
