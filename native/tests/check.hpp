// What the core's C++ tests share: CHECK (counts failures and goes on), the core's last error, scratch
// directories and file reads, the shared vectors (tests/vectors/selection.json) and acre_arrays over
// test data.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "acre.h"

namespace test {

inline int failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++test::failures;                                                             \
    }                                                                               \
  } while (0)

// A refusal with this status whose message names `words`.
inline bool refused(acre_status status, acre_status want, const char *words) {
  const bool ok = status == want && std::strstr(acre_last_error(), words) != nullptr;
  if (!ok) std::fprintf(stderr, "  got status %d: %s\n", int(status), acre_last_error());
  return ok;
}

inline bool error_mentions(const char *words) { return std::strstr(acre_last_error(), words) != nullptr; }

// This process's scratch directories for one test program: <tmp>/<suite>_<pid>.
inline std::filesystem::path scratch_root(const std::string &suite) {
  return std::filesystem::temp_directory_path() / (suite + "_" + std::to_string(::getpid()));
}

// A scratch path under scratch_root, removed first; its parent exists.
inline std::filesystem::path scratch(const std::string &suite, const std::string &name) {
  std::filesystem::path dir = scratch_root(suite) / name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir.parent_path());
  return dir;
}

inline std::string read_file(const std::filesystem::path &path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline nlohmann::json selection_vectors() {
  std::ifstream in(std::string(ACRE_VECTORS_DIR) + "/selection.json");
  return nlohmann::json::parse(in);
}

// An acre_array over `data`, its byte count from the dtype and dims. The name matters where the core
// keeps arrays by name (a store's snapshots); the fuzz targets (native/fuzz) build theirs here too.
inline acre_array array(const char *name, acre_dtype dtype, std::vector<int64_t> dims, const void *data) {
  acre_array a{};
  a.info.name = name;
  a.info.dtype = dtype;
  a.info.rank = int32_t(dims.size());
  size_t count = 1;
  for (size_t i = 0; i < dims.size(); ++i) a.info.dims[i] = dims[i], count *= size_t(dims[i]);
  a.info.bytes = count * acre_dtype_size(dtype);
  a.data = data;
  return a;
}

inline acre_array array(acre_dtype dtype, std::vector<int64_t> dims, const void *data) {
  return array("array", dtype, std::move(dims), data);
}

inline int finish(const char *name) {
  if (failures) {
    std::fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
    return 1;
  }
  std::printf("%s: all checks passed\n", name);
  return 0;
}

}  // namespace test
