// Internal C++ of the core: the types behind the C handles. Nothing here crosses acre.h.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "acre.h"

namespace acre {

// Every failure inside the core is an Error with the status the C ABI returns and its message.
class Error : public std::runtime_error {
 public:
  Error(acre_status status, const std::string &message) : std::runtime_error(message), status_(status) {}
  acre_status status() const { return status_; }

 private:
  acre_status status_;
};

[[noreturn]] inline void fail(acre_status status, const std::string &message) {
  throw Error(status, message);
}

// The sha256 of a file, or of a string, as lower-case hex (sha256.cpp).
std::string sha256_file(const std::string &path);
std::string sha256_hex(const std::string &data);

struct Bundle;  // bundle.cpp
std::unique_ptr<Bundle> open_bundle(const std::string &dir, bool verify_checksums);

}  // namespace acre
