/* worker/transport.c — the transport-independent part: dispatch through the ops table and the
 * CRC-32C used by the frame format. Must not know about sockets or any one implementation. */
#include "worker/transport.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE4_2__) && (defined(__x86_64__) || defined(__i386__))
#include <nmmintrin.h>
#define VR_CRC32C_HW 1
#endif

vr_status vr_transport_send(vr_transport *t, uint64_t tag, const void *data, size_t len, vr_error *err) {
    if (!t) return vr_error_set(err, VR_ERR_INVALID, "transport send: no transport given");
    if (len && !data) return vr_error_set(err, VR_ERR_INVALID, "transport send: %zu bytes from a NULL buffer", len);
    return t->ops->send(t, tag, data, len, err);
}

vr_status vr_transport_recv(vr_transport *t, uint64_t expected_tag, void **data, size_t *len, int timeout_ms,
                            vr_error *err) {
    return vr_transport_recv_either(t, expected_tag, expected_tag, NULL, data, len, timeout_ms, err);
}

vr_status vr_transport_recv_either(vr_transport *t, uint64_t tag_a, uint64_t tag_b, uint64_t *got_tag, void **data,
                                   size_t *len, int timeout_ms, vr_error *err) {
    if (data) *data = NULL;
    if (len) *len = 0;
    if (!t || !data || !len) return vr_error_set(err, VR_ERR_INVALID, "transport recv: missing argument");
    uint64_t got = 0;
    vr_status st = t->ops->recv(t, tag_a, tag_b, &got, data, len, timeout_ms, err);
    if (got_tag) *got_tag = got;
    return st;
}

int vr_transport_wait_readable(vr_transport *t, int timeout_ms) {
    return t && t->ops->wait_readable ? t->ops->wait_readable(t, timeout_ms) : 1;
}

const char *vr_transport_peer_name(vr_transport *t) {
    if (!t) return "(none)";
    const char *n = t->ops->peer_name ? t->ops->peer_name(t) : NULL;
    return n ? n : "(unknown peer)";
}

void vr_transport_interrupt(vr_transport *t, const char *why) {
    if (t && t->ops->interrupt) t->ops->interrupt(t, why ? why : "interrupted");
}

void vr_transport_close(vr_transport *t) {
    if (t) t->ops->close(t);
}

vr_status vr_transport_hello_send(vr_transport *t, vr_peer_role role, vr_error *err) {
    uint8_t b = (uint8_t)role;
    return vr_transport_send(t, VR_TRANSPORT_HELLO_TAG, &b, 1, err);
}

vr_status vr_transport_hello_recv(vr_transport *t, int timeout_ms, vr_peer_role *role, vr_error *err) {
    void *data = NULL;
    size_t len = 0;
    vr_status st = vr_transport_recv(t, VR_TRANSPORT_HELLO_TAG, &data, &len, timeout_ms, err);
    if (st == VR_OK) {
        uint8_t b = len == 1 ? *(uint8_t *)data : 0;
        if (b == VR_PEER_PREV_STAGE || b == VR_PEER_VISION || b == VR_PEER_SHARD_STATE) *role = (vr_peer_role)b;
        else st = vr_error_set(err, VR_ERR_FORMAT, "%s sent a hello of %zu bytes with an unknown role", vr_transport_peer_name(t), len);
    }
    free(data);
    return st;
}

/* ---- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) ---- */

#ifndef VR_CRC32C_HW
static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int s = 1; s < 8; s++) crc_table[s][i] = (crc_table[s - 1][i] >> 8) ^ crc_table[0][crc_table[s - 1][i] & 0xff];
}
#endif

uint32_t vr_crc32c(uint32_t crc, const void *buf, size_t len) {
    const uint8_t *p = buf;
    uint32_t c = ~crc;
#ifdef VR_CRC32C_HW
#if defined(__x86_64__)
    uint64_t c64 = c;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        len -= 8;
    }
    c = (uint32_t)c64;
#endif
    while (len--) c = _mm_crc32_u8(c, *p++);
#else
    pthread_once(&crc_once, crc_init);
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
#endif
    return ~c;
}
