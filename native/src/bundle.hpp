// The bundle: manifest.json, program files and the tokenizer, validated on open (acre/bundle.py is
// the same check in Python; tests/vectors/bad_manifests.json holds both to the same refusals).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core.hpp"

namespace acre {

struct Bundle {
  std::string root;           // the directory as given
  std::string manifest_text;  // manifest.json as read
  nlohmann::json manifest;
  acre_geometry geometry{};
  std::vector<std::array<int32_t, 2>> signal_heads;  // [layer, head]
  std::vector<int32_t> probe_layers;
  std::vector<std::string> step_inputs;              // names, in the order the programs take them
  std::vector<std::string> step_outputs;             // names, in the order the programs return them
  std::map<std::string, std::string> program_paths;  // engine -> path of its program file
  std::string tokenizer_dir;                         // path of the tokenizer directory
  std::vector<int32_t> eos_token_ids;

  std::string path(const std::string &name) const { return root + "/" + name; }
  std::string manifest_path() const { return path("manifest.json"); }
  const std::string &program_path(const std::string &engine) const;
  // rows of each method of a program ({"prefill": C, "decode": 1}), from programs.<engine>.methods
  std::map<std::string, int32_t> methods(const std::string &engine) const;
};

// The sha256 hex of the model and programs the bundle runs (fingerprint.cpp): an L2 store serves only it.
std::string bundle_fingerprint(const Bundle &bundle);

}  // namespace acre
