/* tests/support/sha256.h — a small SHA-256 for checking fixture digests in tests.
 * Tests only; not constant-time, not for anything security related. */
#ifndef VR_TEST_SHA256_H
#define VR_TEST_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct vrt_sha256_ctx {
    uint32_t h[8];
    uint64_t total; /* bytes hashed so far */
    uint8_t buf[64];
    size_t nbuf;
} vrt_sha256_ctx;

void vrt_sha256_init(vrt_sha256_ctx *c);
void vrt_sha256_update(vrt_sha256_ctx *c, const void *data, size_t n);
void vrt_sha256_final(vrt_sha256_ctx *c, uint8_t out[32]);
/* One-shot digest of data[0,n). */
void vrt_sha256(const void *data, size_t n, uint8_t out[32]);
/* Lowercase hex of a digest into hex[65] (NUL-terminated). */
void vrt_sha256_hex(const uint8_t digest[32], char hex[65]);

#endif
