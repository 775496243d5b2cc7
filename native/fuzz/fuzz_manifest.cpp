// Fuzz target: a bundle's manifest.json (bundle.cpp, the fingerprint, the step signature of step.cpp).
// The input is the manifest of a bundle whose other files are tests/vectors/bundle's (program.bin and
// the stand-in tokenizer.json, written here with the same bytes, so the seeds' checksums hold). It is
// opened with checksums verified; a refusal must be ACRE_ERR_BUNDLE. An open bundle is then read as a
// host reads it: its fingerprint, every engine's program and methods, the step signature through the
// callback engine (refusals ACRE_ERR_BUNDLE, or ACRE_ERR_INVALID_ARGUMENT for a row count it lacks),
// and its tokenizer (ACRE_ERR_TOKENIZER for the stand-in).
#include <cstdint>
#include <cstring>
#include <string>

#include "../src/bundle.hpp"
#include "../src/step.hpp"
#include "fuzz.hpp"

namespace {

// A host's step function is never run: the target only reads the signature.
int32_t no_step(void *, int32_t, const acre_buffer *, size_t, const acre_buffer *, size_t, char *, size_t) {
  return 1;
}

// Run `body`; an acre::Error with a status in `allowed` is a refusal (false), any other a finding.
// Exceptions of other types escape: libFuzzer reports them as crashes.
template <class F>
bool refusable(std::initializer_list<acre_status> allowed, const char *call, F &&body) {
  try {
    body();
    return true;
  } catch (const acre::Error &e) {
    for (acre_status s : allowed) {
      if (e.status() != s) continue;
      if (fuzz::verbose())
        std::fprintf(stderr, "  %s refused (%s): %s\n", call, acre_status_name(s), e.what());
      return false;
    }
    fuzz::finding(std::string(call) + " threw " + acre_status_name(e.status()) + ": " + e.what());
  }
}

const std::string &bundle_dir() {
  static fuzz::Scratch scratch("manifest");
  static const std::string dir = [] {
    std::string program(1024, '\0');
    for (size_t i = 0; i < program.size(); ++i) program[i] = char(i % 256);
    fuzz::write_file(scratch.path("bundle/program.bin"), program);
    fuzz::write_file(scratch.path("bundle/tokenizer/tokenizer.json"), "{\"model\": \"stand-in\"}\n");
    return scratch.path("bundle/manifest.json").parent_path().string();
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const std::string &dir = bundle_dir();
  fuzz::write_file(dir + "/manifest.json", data, size);

  // Through the C ABI, as a host opens it (this also takes the fingerprint).
  acre_bundle *opened = nullptr;
  if (!fuzz::expect(acre_bundle_open(dir.c_str(), 1, &opened), {ACRE_ERR_BUNDLE}, "acre_bundle_open"))
    return 0;
  if (std::strlen(acre_bundle_fingerprint(opened)) != 64)
    fuzz::finding("a fingerprint that is not sha256 hex");
  acre_geometry geometry{};
  fuzz::expect(acre_bundle_geometry(opened, &geometry), {}, "acre_bundle_geometry");
  for (const char *engine : {"executorch", "onnx", "coreml"}) {
    const char *path = nullptr;
    fuzz::expect(acre_bundle_program_path(opened, engine, &path), {ACRE_ERR_BUNDLE},
                 "acre_bundle_program_path");
  }
  acre_tokenizer *tokenizer = nullptr;
  if (fuzz::expect(acre_bundle_tokenizer(opened, &tokenizer), {ACRE_ERR_TOKENIZER}, "acre_bundle_tokenizer"))
    acre_tokenizer_free(tokenizer);
  acre_bundle_free(opened);

  // The rest through the core's C++: what the engines read of the manifest.
  std::unique_ptr<acre::Bundle> bundle;
  refusable({}, "open_bundle", [&] { bundle = acre::open_bundle(dir, false); });
  for (const auto &program : bundle->program_paths)
    refusable({ACRE_ERR_BUNDLE}, "Bundle::methods", [&] { bundle->methods(program.first); });
  std::unique_ptr<acre::Engine> engine;
  if (!refusable({ACRE_ERR_BUNDLE}, "open_callback_engine",
                 [&] { engine = acre::open_callback_engine(*bundle, no_step, nullptr, nullptr); }))
    return 0;
  for (int32_t rows : {bundle->geometry.chunk, 1}) {
    const acre::Engine::Method *method = nullptr;
    refusable({}, "Engine::method", [&] { method = &engine->method(rows); });
    for (const auto &specs : {method->inputs, method->outputs})
      for (const acre::TensorSpec &spec : specs) {
        if (spec.dims.empty() || spec.describe().empty()) fuzz::finding("a step tensor without a shape");
        spec.bytes();
      }
  }
  return 0;
}
