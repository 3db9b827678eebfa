/* tests/support/sha256.h — a small SHA-256 for checking fixture tensors against model.json's
 * sha256_le. Tests only; not constant-time and not meant for anything security-related. */
#ifndef VR_TEST_SHA256_H
#define VR_TEST_SHA256_H

#include <stddef.h>
#include <stdint.h>

/* Writes the 64-character lowercase hex digest of data[0..n) plus a NUL into hex[65]. */
void vrt_sha256_hex(const void *data, size_t n, char hex[65]);

#endif
