// sha256 of a file or a string through OpenSSL's EVP interface (its context calls only: the iOS build
// maps them onto CommonCrypto, ios_demo/AcreKit/Sources/CAcre/compat/openssl/evp.h).
#include <openssl/evp.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "core.hpp"

namespace acre {

namespace {

using Context = std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX *)>;

Context start() {
  Context ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    fail(ACRE_ERR_INTERNAL, "OpenSSL cannot start a sha256 digest");
  return ctx;
}

std::string finish(EVP_MD_CTX *ctx) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx, digest, &length) != 1) fail(ACRE_ERR_INTERNAL, "sha256 final failed");
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::string sha256_hex(const std::string &data) {
  Context ctx = start();
  if (EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1)
    fail(ACRE_ERR_INTERNAL, "sha256 update failed");
  return finish(ctx.get());
}

std::string sha256_file(const std::string &path) {
  std::unique_ptr<FILE, int (*)(FILE *)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!file) fail(ACRE_ERR_BUNDLE, path + ": cannot be read");
  Context ctx = start();
  std::vector<unsigned char> block(1 << 20);
  size_t got;
  while ((got = std::fread(block.data(), 1, block.size(), file.get())) > 0) {
    if (EVP_DigestUpdate(ctx.get(), block.data(), got) != 1) fail(ACRE_ERR_INTERNAL, "sha256 update failed");
  }
  if (std::ferror(file.get())) fail(ACRE_ERR_BUNDLE, path + ": read error while checking its sha256");
  return finish(ctx.get());
}

}  // namespace acre
