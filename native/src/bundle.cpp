// Bundle open and verification: format and version, every field a runtime reads, and every listed
// file's presence, size and sha256. Each refusal is ACRE_ERR_BUNDLE naming the file.
#include "bundle.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace acre {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char *kFormat = "acre-bundle";
constexpr int kMinVersion = ACRE_BUNDLE_VERSION_MIN, kMaxVersion = ACRE_BUNDLE_VERSION_MAX;

// A manifest field that is missing or of the wrong type: the message names its path.
[[noreturn]] void malformed(const std::string &where, const std::string &what) {
  fail(ACRE_ERR_BUNDLE, where + ": missing or malformed field (" + what + ")");
}

const json &member(const json &object, const char *key, const std::string &path, const std::string &where) {
  if (!object.is_object()) malformed(where, path + " is not an object");
  auto it = object.find(key);
  if (it == object.end()) malformed(where, path + "." + key + " is missing");
  return *it;
}

bool is_int(const json &value) { return value.is_number_integer(); }

int32_t positive_int(const json &object, const char *key, const std::string &path, const std::string &where) {
  const json &value = member(object, key, path, where);
  if (!is_int(value) || value.get<int64_t>() < 1 || value.get<int64_t>() > INT32_MAX)
    malformed(where, path + "." + key + " must be a positive integer, not " + value.dump());
  return static_cast<int32_t>(value.get<int64_t>());
}

double positive_number(const json &object, const char *key, const std::string &path,
                       const std::string &where) {
  const json &value = member(object, key, path, where);
  if (!value.is_number() || !(value.get<double>() > 0))
    malformed(where, path + "." + key + " must be a positive number");
  return value.get<double>();
}

// A manifest may only name files inside its bundle.
void check_relative(const std::string &name, const std::string &where) {
  bool outside = name.empty() || name[0] == '/' || name.find('\\') != std::string::npos;
  std::stringstream parts(name);
  std::string part;
  while (!outside && std::getline(parts, part, '/')) outside = part == "..";
  if (outside) fail(ACRE_ERR_BUNDLE, where + ": file name '" + name + "' points outside the bundle");
}

// step.inputs / step.outputs: names (or {"name": ...} objects), in program order.
std::vector<std::string> names(const json &step, const char *key, const std::string &where) {
  std::vector<std::string> out;
  auto it = step.find(key);
  if (it == step.end()) return out;  // an engine refuses a bundle without them
  if (!it->is_array()) malformed(where, std::string("step.") + key + " must be a list of names");
  for (const json &entry : *it) {
    const json *name = &entry;
    if (entry.is_object() && entry.contains("name")) name = &entry["name"];
    if (!name->is_string()) malformed(where, std::string("step.") + key + " must be a list of names");
    out.push_back(name->get<std::string>());
  }
  return out;
}

void read_fields(Bundle &b) {
  const std::string where = b.manifest_path();
  const json &m = b.manifest;
  const json &model = member(m, "model", "manifest", where);
  const json &g = member(model, "geometry", "model", where);
  const std::string gp = "model.geometry";
  acre_geometry &geo = b.geometry;
  geo.layers = positive_int(g, "layers", gp, where);
  geo.heads = positive_int(g, "heads", gp, where);
  geo.kv_heads = positive_int(g, "kv_heads", gp, where);
  geo.head_dim = positive_int(g, "head_dim", gp, where);
  geo.hidden = positive_int(g, "hidden", gp, where);
  geo.intermediate = positive_int(g, "intermediate", gp, where);
  geo.vocab = positive_int(g, "vocab", gp, where);
  geo.window = positive_int(g, "window", gp, where);
  geo.rope_theta = positive_number(g, "rope_theta", gp, where);
  geo.rms_eps = positive_number(g, "rms_eps", gp, where);
  if (geo.heads % geo.kv_heads) malformed(where, "model.geometry.heads must be a multiple of kv_heads");

  const json &step = member(m, "step", "manifest", where);
  geo.chunk = positive_int(step, "chunk", "step", where);
  geo.pot = positive_int(step, "pot", "step", where);
  const json &kv = member(step, "kv_dtype", "step", where);
  if (kv == "float32")
    geo.kv_dtype = ACRE_DTYPE_FLOAT32;
  else if (kv == "float16")
    geo.kv_dtype = ACRE_DTYPE_FLOAT16;
  else
    malformed(where, "step.kv_dtype " + kv.dump() + " is not float32 or float16");

  const json &heads = member(step, "signal_heads", "step", where);
  if (!heads.is_array()) malformed(where, "step.signal_heads must be [layer, head] pairs inside the model");
  std::set<int32_t> layers;
  for (const json &h : heads) {
    bool ok = h.is_array() && h.size() == 2 && is_int(h[0]) && is_int(h[1]) && h[0].get<int64_t>() >= 0 &&
              h[0].get<int64_t>() < geo.layers && h[1].get<int64_t>() >= 0 && h[1].get<int64_t>() < geo.heads;
    if (!ok) malformed(where, "step.signal_heads must be [layer, head] pairs inside the model");
    b.signal_heads.push_back({h[0].get<int32_t>(), h[1].get<int32_t>()});
    layers.insert(h[0].get<int32_t>());
  }
  const json &probe = member(step, "probe_layers", "step", where);
  std::vector<int32_t> want(layers.begin(), layers.end());
  if (!probe.is_array() || !std::all_of(probe.begin(), probe.end(), is_int) ||
      probe.get<std::vector<int64_t>>() != std::vector<int64_t>(want.begin(), want.end()))
    malformed(where, "step.probe_layers must be the layers of the signal heads");
  b.probe_layers = want;
  b.step_inputs = names(step, "inputs", where);
  b.step_outputs = names(step, "outputs", where);

  const json &programs = member(m, "programs", "manifest", where);
  if (!programs.is_object()) malformed(where, "programs must map engines to {file: ...}");
  for (const auto &[engine, info] : programs.items()) {
    if (!info.is_object() || !info.contains("file") || !info["file"].is_string())
      malformed(where, "programs must map engines to {file: ...}");
    check_relative(info["file"].get<std::string>(), where);
    b.program_paths[engine] = b.path(info["file"].get<std::string>());
  }

  const json &tokenizer = member(m, "tokenizer", "manifest", where);
  const json &dir = member(tokenizer, "dir", "tokenizer", where);
  if (!dir.is_string()) malformed(where, "tokenizer.dir must be a path");
  check_relative(dir.get<std::string>(), where);
  b.tokenizer_dir = b.path(dir.get<std::string>());
  const json &eos = member(tokenizer, "eos_token_ids", "tokenizer", where);
  if (!eos.is_array()) malformed(where, "tokenizer.eos_token_ids must be token ids of the vocabulary");
  for (const json &t : eos) {
    if (!is_int(t) || t.get<int64_t>() < 0 || t.get<int64_t>() >= geo.vocab)
      malformed(where, "tokenizer.eos_token_ids must be token ids of the vocabulary");
    b.eos_token_ids.push_back(t.get<int32_t>());
  }

  const json &files = member(m, "files", "manifest", where);
  if (!files.is_object()) malformed(where, "files must map names to {sha256, bytes}");
  for (const auto &[name, info] : files.items()) {
    if (!info.is_object() || !info.contains("sha256") || !info["sha256"].is_string() ||
        !info.contains("bytes") || !is_int(info["bytes"]))
      malformed(where, "files must map names to {sha256, bytes}");
    check_relative(name, where);
  }
}

void verify_files(const Bundle &b, bool verify_checksums) {
  const json &files = b.manifest["files"];
  for (const auto &[name, info] : files.items()) {
    const std::string path = b.path(name);
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) fail(ACRE_ERR_BUNDLE, path + ": missing from the bundle");
    const auto size = static_cast<int64_t>(fs::file_size(path, ec));
    const auto want = info["bytes"].get<int64_t>();
    if (ec || size != want)
      fail(ACRE_ERR_BUNDLE, path + ": " + std::to_string(size) + " bytes, manifest says " +
                                std::to_string(want) + " (truncated or replaced)");
    if (verify_checksums && sha256_file(path) != info["sha256"].get<std::string>())
      fail(ACRE_ERR_BUNDLE, path + ": sha256 checksum mismatch (file modified or corrupt)");
  }
  for (const auto &[engine, info] : b.manifest["programs"].items()) {
    const std::string file = info["file"].get<std::string>();
    bool listed = false;
    for (const auto &entry : files.items())
      listed = listed || entry.key() == file || entry.key().rfind(file + "/", 0) == 0;
    if (!listed)
      fail(ACRE_ERR_BUNDLE,
           b.manifest_path() + ": " + engine + " program " + file + " has no checksum entry");
  }
}

}  // namespace

const std::string &Bundle::program_path(const std::string &engine) const {
  auto it = program_paths.find(engine);
  if (it == program_paths.end()) {
    std::string have;
    for (const auto &entry : program_paths) have += (have.empty() ? "" : ", ") + entry.first;
    fail(ACRE_ERR_BUNDLE, root + ": no " + engine +
                              " program in this bundle (it has: " + (have.empty() ? "none" : have) + ")");
  }
  return it->second;
}

std::map<std::string, int32_t> Bundle::methods(const std::string &engine) const {
  program_path(engine);  // refuses a bundle without this program
  std::map<std::string, int32_t> out;
  const json &info = manifest["programs"][engine];
  auto it = info.find("methods");
  if (it == info.end() || !it->is_object())
    malformed(manifest_path(), "programs." + engine + ".methods must map method names to rows");
  for (const auto &[name, rows] : it->items()) {
    if (!is_int(rows) || rows.get<int64_t>() < 1 || rows.get<int64_t>() > INT32_MAX)
      malformed(manifest_path(), "programs." + engine + ".methods must map method names to rows");
    out[name] = rows.get<int32_t>();
  }
  return out;
}

std::unique_ptr<Bundle> open_bundle(const std::string &dir, bool verify_checksums) {
  auto b = std::make_unique<Bundle>();
  b->root = dir;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) fail(ACRE_ERR_BUNDLE, dir + ": bundle directory not found");
  const std::string where = b->manifest_path();
  if (!fs::is_regular_file(where, ec)) fail(ACRE_ERR_BUNDLE, where + ": missing; not an acre bundle");
  std::ifstream in(where, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in.good() && !in.eof()) fail(ACRE_ERR_BUNDLE, where + ": cannot be read");
  b->manifest_text = text.str();
  try {
    b->manifest = json::parse(b->manifest_text);
  } catch (const json::exception &e) {
    fail(ACRE_ERR_BUNDLE, where + ": not valid JSON (" + e.what() + ")");
  }
  const json &m = b->manifest;
  if (!m.is_object() || !m.contains("format") || m["format"] != kFormat)
    fail(ACRE_ERR_BUNDLE,
         where + ": not an acre bundle manifest (format is not '" + std::string(kFormat) + "')");
  if (!m.contains("version") || !is_int(m["version"]) || m["version"].get<int64_t>() < kMinVersion ||
      m["version"].get<int64_t>() > kMaxVersion)
    fail(ACRE_ERR_BUNDLE, where + ": bundle format version " +
                              (m.contains("version") ? m["version"].dump() : std::string("missing")) +
                              ", this acre core reads versions " + std::to_string(kMinVersion) + " to " +
                              std::to_string(kMaxVersion) + "; re-export the bundle with this acre");
  read_fields(*b);
  verify_files(*b, verify_checksums);
  return b;
}

}  // namespace acre
