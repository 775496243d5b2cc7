// Which spans a question refills, and where they go in the pot: functions of numbers only. Scores
// are float64 and every sum is sequential, in the order stated, so the results are the same bits on
// every machine (the core is built with -ffp-contract=off, and exp is correctly rounded, not libm's).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace acre {

// exp(x) correctly rounded (double-double arithmetic; a wrong rounding needs x within ~2^-100 of a
// halfway point between doubles). exp(-inf) = 0. Below -708 (a subnormal result) it may be off by
// an ulp of the subnormal.
double exp_rounded(double x);

// (x - mean) / std, population std, sums sequential; all zeros when x is constant.
std::vector<double> standardised(const double *x, size_t n);

// One score per span, the mean of the parts given (any may be null, not all): (a) attention mass on
// each span's L1 entries, normalised to sum 1; (b) the span index's scores (-inf where the tree
// search did not reach) as a softmax; (c) BM25 scores, standardised, as a softmax. Summed in the
// order (a), (b), (c).
std::vector<double> combine_scores(const double *attention, const double *index_z, const double *lexical,
                                   size_t n);

// The spans a question is about, best first: the fewest of the positive-scored spans (ranked, ties:
// lower index first) whose running sum reaches `mass` of their total, at least min_spans, at most
// budget.
std::vector<int64_t> core_spans(const double *scores, size_t n, int32_t budget, double mass,
                                int32_t min_spans);

struct Choice {
  std::vector<int64_t> spans;  // to refill, in document order
  std::vector<int64_t> about;  // what the question is about: its cores and the carried refilled
};

// The core spans each bring their neighbours (1 before, 1 after, 2 before, ...) while the budget
// lasts. Up to half the budget goes first to the carried spans (those the turn before was about;
// ids that are no span are ignored); what they leave goes to more neighbours.
Choice choose_spans(const double *scores, size_t n, int32_t budget, double mass, int32_t min_spans,
                    int32_t neighbors, const int64_t *carried, size_t n_carried);

struct Placement {
  std::vector<int64_t> slots, tokens;
};

// (slots, document tokens) for refilling `spans` in document order into free_slots, in slot order,
// skipping tokens resident in the pot (sinks, recent window).
Placement refill_placement(const int64_t *spans, size_t n_spans, const int64_t *starts,
                           const int32_t *lengths, size_t n_store_spans, const int64_t *resident,
                           size_t n_resident, const int64_t *free_slots, size_t n_free);

}  // namespace acre
