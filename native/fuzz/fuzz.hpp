// What the fuzz targets share: a scratch directory per process, whole-file writes, and the rule that
// a parser's documented refusal is the normal outcome while anything else is a finding. A finding
// aborts, so libFuzzer (and the plain replay driver, replay.cpp) report it as a crash. acre_arrays
// over the targets' data and whole-file reads are the C++ tests' (test::array, test::read_file in
// tests/check.hpp; its CHECK, which counts and goes on, is not for the targets).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include "../tests/check.hpp"
#include "acre.h"

namespace fuzz {

// Print what went wrong and abort: the fuzzer keeps the input as a crash.
[[noreturn]] inline void finding(const std::string &what) {
  std::fprintf(stderr, "fuzz finding: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// ACRE_FUZZ_VERBOSE set: each refusal is printed (to see how far the seeds get).
inline bool verbose() {
  static const bool on = std::getenv("ACRE_FUZZ_VERBOSE") != nullptr;
  return on;
}

// A status the call may return (the core's documented refusals); any other, ACRE_ERR_INTERNAL above
// all (an exception the core did not expect, turned into a status by the C ABI), is a finding.
inline bool expect(acre_status status, std::initializer_list<acre_status> allowed, const char *call) {
  if (status == ACRE_OK) return true;
  for (acre_status s : allowed) {
    if (status != s) continue;
    if (verbose())
      std::fprintf(stderr, "  %s refused (%s): %s\n", call, acre_status_name(s), acre_last_error());
    return false;
  }
  finding(std::string(call) + " returned " + acre_status_name(status) + ": " + acre_last_error());
}

// This process's scratch directory, <tmp>/acre-fuzz-<name>-<pid>, made on first use and removed when
// the process exits normally (a crash leaves it for the post-mortem).
class Scratch {
 public:
  explicit Scratch(const char *name) {
    dir_ = std::filesystem::temp_directory_path() /
           ("acre-fuzz-" + std::string(name) + "-" + std::to_string(::getpid()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  ~Scratch() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;

  // dir/name, its parent directories made
  std::filesystem::path path(const std::string &name) const {
    std::filesystem::path p = dir_ / name;
    std::filesystem::create_directories(p.parent_path());
    return p;
  }

 private:
  std::filesystem::path dir_;
};

// Replace the file at `path` with exactly these bytes (not durably: scratch files only).
inline void write_file(const std::filesystem::path &path, const void *data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char *>(data), static_cast<std::streamsize>(size));
  if (!out) finding("cannot write the scratch file " + path.string());
}

inline void write_file(const std::filesystem::path &path, const std::string &text) {
  write_file(path, text.data(), text.size());
}

}  // namespace fuzz
