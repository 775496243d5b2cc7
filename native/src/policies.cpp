// The policies and their layout of the pot (policies.hpp).
#include "policies.hpp"

#include <algorithm>

#include "core.hpp"

namespace acre {

const char *const CATALYST = "\nList the names, numbers, facts and key sentences of the text above.";
const char *const POLICY_NAMES[4] = {"full", "streaming", "infinipot", "acre"};

namespace {

[[noreturn]] void refuse(const std::string &message) { fail(ACRE_ERR_INVALID_ARGUMENT, message); }

template <class T>
void take(const nlohmann::json &value, const std::string &key, T &field) {
  const bool ok = std::is_same_v<T, bool>          ? value.is_boolean()
                  : std::is_same_v<T, std::string> ? value.is_string()
                  : std::is_same_v<T, double>      ? value.is_number()
                                                   : value.is_number_integer();
  if (!ok) refuse("policy switch '" + key + "' cannot be " + value.dump());
  field = value.get<T>();
}

}  // namespace

Policy Policy::named(const std::string &name, const nlohmann::json &switches) {
  Policy p;
  p.name = name;
  if (name == "full") {
    p.bounded = false;
  } else if (name == "infinipot") {
    p.l1 = true;
  } else if (name == "acre") {
    p.l1 = p.refill = true;
  } else if (name != "streaming") {
    refuse("unknown policy '" + name + "'; choose one of full, streaming, infinipot, acre");
  }
  if (!switches.is_null() && !switches.is_object()) refuse("policy switches must be a JSON object");
  const char *known =
      "use_attention, use_index, use_probes, use_tree, use_lexical, refill_mode, neighbors, min_spans, "
      "answer_recent";
  std::string unknown;  // the first in sorted order, as a host lists them
  for (auto it = switches.begin(); switches.is_object() && it != switches.end(); ++it) {
    const std::string &key = it.key();
    const nlohmann::json &value = it.value();
    if (key == "use_attention")
      take(value, key, p.use_attention);
    else if (key == "use_index")
      take(value, key, p.use_index);
    else if (key == "use_probes")
      take(value, key, p.use_probes);
    else if (key == "use_tree")
      take(value, key, p.use_tree);
    else if (key == "use_lexical")
      take(value, key, p.use_lexical);
    else if (key == "refill_mode")
      take(value, key, p.refill_mode);
    else if (key == "neighbors")
      take(value, key, p.neighbors);
    else if (key == "min_spans")
      take(value, key, p.min_spans);
    else if (key == "answer_recent")
      take(value, key, p.answer_recent);
    else if (unknown.empty() || key < unknown)
      unknown = key;
  }
  if (!unknown.empty()) refuse("unknown policy switch '" + unknown + "'; switches: " + known);
  if (p.refill_mode != "reencode" && p.refill_mode != "reuse")
    refuse("refill_mode must be reencode or reuse, not '" + p.refill_mode + "'");
  if (p.refill && !(p.use_attention || p.use_index || p.use_lexical))
    refuse("acre needs at least one of use_attention, use_index and use_lexical to choose spans");
  if (p.neighbors < 0 || p.min_spans < 0) refuse("neighbors and min_spans must be 0 or more");
  return p;
}

nlohmann::ordered_json Policy::to_json() const {
  return {{"name", name},
          {"bounded", bounded},
          {"l1", l1},
          {"refill", refill},
          {"use_attention", use_attention},
          {"use_index", use_index},
          {"use_probes", use_probes},
          {"use_tree", use_tree},
          {"use_lexical", use_lexical},
          {"novelty_weight", novelty_weight},
          {"mass", mass},
          {"min_spans", min_spans},
          {"neighbors", neighbors},
          {"refill_mode", refill_mode},
          {"answer_recent", answer_recent}};
}

Layout Layout::plan(const Policy &policy, int64_t capacity, int64_t chunk, int64_t span) {
  if (capacity < 1 || chunk < 1 || span < 1) refuse("capacity, chunk and span must be 1 or more");
  Layout out;
  if (!policy.bounded) {  // one shared pool: the question takes what the document left
    out.recent = capacity;
    return out;
  }
  out.question = std::max<int64_t>(96, capacity * 3 / 16);
  out.sink = std::min<int64_t>(32, capacity / 16);
  out.recent = chunk;
  const int64_t rest = capacity - out.question - out.sink - out.recent;
  if (rest < (policy.refill ? span : 0) + (policy.l1 ? 16 : 0) || rest < 0)
    refuse("a pot of " + std::to_string(capacity) + " slots is too small for the '" + policy.name +
           "' policy with chunk " + std::to_string(chunk) + ": it needs room for the question (" +
           std::to_string(out.question) + "), sinks (" + std::to_string(out.sink) + "), the recent window (" +
           std::to_string(out.recent) + ")" +
           (policy.refill ? " and at least one span (" + std::to_string(span) + ")" : std::string()));
  out.refill = policy.refill ? std::max((rest * 4 / 7) / span * span, span) : 0;
  out.l1 = policy.l1 ? rest - out.refill : 0;
  if (!policy.l1) out.recent += rest;  // streaming spends the rest on a longer recent window
  return out;
}

}  // namespace acre
