/*
 * The part of OpenSSL's EVP interface the core calls (native/src/sha256.cpp, session.cpp: sha256 of
 * a file and of a document's ids), over CommonCrypto, which every Apple SDK has; iOS has no OpenSSL.
 * Only this package puts it on the include path (headerSearchPath "compat"); the Linux build of the
 * core links the real OpenSSL. Every EVP_MD is sha256: the core asks for no other digest.
 */
#ifndef ACRE_COMPAT_OPENSSL_EVP_H
#define ACRE_COMPAT_OPENSSL_EVP_H

#include <CommonCrypto/CommonDigest.h>
#include <stddef.h>
#include <stdlib.h>

#define EVP_MAX_MD_SIZE 64

typedef struct acre_evp_md {
  int sha256;
} EVP_MD;
typedef struct acre_evp_md_ctx {
  CC_SHA256_CTX sha;
} EVP_MD_CTX;
typedef struct acre_evp_engine ENGINE;

static inline const EVP_MD *EVP_sha256(void) {
  static const EVP_MD md = {1};
  return &md;
}

static inline EVP_MD_CTX *EVP_MD_CTX_new(void) { return (EVP_MD_CTX *)calloc(1, sizeof(EVP_MD_CTX)); }

static inline void EVP_MD_CTX_free(EVP_MD_CTX *ctx) { free(ctx); }

static inline int EVP_DigestInit_ex(EVP_MD_CTX *ctx, const EVP_MD *md, ENGINE *impl) {
  (void)impl;
  if (ctx == NULL || md == NULL || !md->sha256) return 0;
  return CC_SHA256_Init(&ctx->sha) == 1;
}

/* CommonCrypto takes 32-bit lengths: longer inputs go in pieces. */
static inline int EVP_DigestUpdate(EVP_MD_CTX *ctx, const void *data, size_t count) {
  const unsigned char *p = (const unsigned char *)data;
  while (count > 0) {
    const CC_LONG piece = count > 0x40000000u ? (CC_LONG)0x40000000u : (CC_LONG)count;
    if (CC_SHA256_Update(&ctx->sha, p, piece) != 1) return 0;
    p += piece;
    count -= piece;
  }
  return 1;
}

static inline int EVP_DigestFinal_ex(EVP_MD_CTX *ctx, unsigned char *digest, unsigned int *length) {
  if (CC_SHA256_Final(digest, &ctx->sha) != 1) return 0;
  if (length != NULL) *length = CC_SHA256_DIGEST_LENGTH;
  return 1;
}

static inline int EVP_Digest(const void *data, size_t count, unsigned char *digest, unsigned int *length,
                             const EVP_MD *md, ENGINE *impl) {
  EVP_MD_CTX ctx;
  return EVP_DigestInit_ex(&ctx, md, impl) && EVP_DigestUpdate(&ctx, data, count) &&
         EVP_DigestFinal_ex(&ctx, digest, length);
}

#endif /* ACRE_COMPAT_OPENSSL_EVP_H */
