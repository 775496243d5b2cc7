// The bundle fingerprint: what identifies the model and programs an L2 store's activations came from.
// It is the sha256 of json.dumps({"geometry", "step", "programs"}, sort_keys=True) of the manifest, as
// the Python host wrote it before the core did, so stores ingested then still open.
#include "bundle.hpp"

namespace acre {

namespace {

using json = nlohmann::json;

// json.dumps(value, sort_keys=True) with Python's defaults: separators ", " and ": ", ensure_ascii.
void dumps(const json &v, std::string &out) {
  if (v.is_object()) {
    out += '{';
    bool first = true;
    for (const auto &[key, item] : v.items()) {  // nlohmann's object is a std::map: sorted keys
      if (!first) out += ", ";
      first = false;
      out += json(key).dump(-1, ' ', true);
      out += ": ";
      dumps(item, out);
    }
    out += '}';
  } else if (v.is_array()) {
    out += '[';
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out += ", ";
      dumps(v[i], out);
    }
    out += ']';
  } else {
    // scalars: nlohmann writes floats shortest round-trip with ".0" or "e-05" as Python's repr does
    out += v.dump(-1, ' ', true);
  }
}

}  // namespace

std::string bundle_fingerprint(const Bundle &bundle) {
  const json &m = bundle.manifest;
  const std::string tokenizer_dir =
      "tokenizer/";  // acre.bundle.TOKENIZER_DIR: the tokenizer is not a program
  json programs = json::object();
  for (const auto &[name, info] : m["files"].items())
    if (name.compare(0, tokenizer_dir.size(), tokenizer_dir) != 0) programs[name] = info["sha256"];
  const json blob = {{"geometry", m["model"]["geometry"]}, {"step", m["step"]}, {"programs", programs}};
  std::string text;
  dumps(blob, text);
  return sha256_hex(text);
}

}  // namespace acre
