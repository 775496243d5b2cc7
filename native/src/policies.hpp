// Policies: what the pot keeps while a document streams in, and what it refills for a question.
//
//   full       every token in the pot (the reference; the document must fit)
//   streaming  attention sinks + the most recent tokens
//   infinipot  sinks + L1 distilled by CCD (catalyst attention and novelty) + recent; no refill
//   acre       infinipot's L1, plus query-guided refill of whole spans from L2 (the default)
//
// A policy is a value: the named base and the switches a host turned (the ablations of span scoring,
// how chosen spans come back). Layout::plan turns it into the regions of the pot.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace acre {

// A fixed prompt whose attention over the pot rates what is worth keeping (InfiniPot's catalyst).
extern const char *const CATALYST;
extern const char *const POLICY_NAMES[4];  // full, streaming, infinipot, acre

struct Policy {
  std::string name;
  bool bounded = true;  // false: the pot must hold the whole document
  bool l1 = false;      // keep a CCD-distilled L1
  bool refill = false;  // refill spans from L2 per question
  bool use_attention = true, use_index = true, use_probes = true, use_tree = true, use_lexical = true;
  double novelty_weight = 0.2;  // CCD: importance = (1 - w) * catalyst attention + w * novelty
  double mass = 0.9;            // dynamic cut: the fewest spans holding this share of the span scores
  int32_t min_spans = 2;
  int32_t neighbors = 1;                 // also refill this many spans on each side of a chosen span
  std::string refill_mode = "reencode";  // or "reuse": copy the stored K/V instead of re-encoding
  bool answer_recent = true;             // the recent window stays in view while the answer is made

  // The named policy with `switches` (a JSON object of the switches above) turned; ACRE_ERR_INVALID_ARGUMENT
  // for an unknown name or switch, a value of the wrong type, or a combination that cannot choose spans.
  static Policy named(const std::string &name, const nlohmann::json &switches);
  nlohmann::ordered_json to_json() const;
};

// How many pot slots each region gets; the regions partition the pot, in this order.
struct Layout {
  int64_t sink = 0, l1 = 0, recent = 0, refill = 0, question = 0;
  static Layout plan(const Policy &policy, int64_t capacity, int64_t chunk, int64_t span);
};

}  // namespace acre
