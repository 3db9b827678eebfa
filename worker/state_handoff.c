/* worker/state_handoff.c — the session-state frame (see state_handoff.h). Must not trust a
 * frame: every length is checked before a byte is read. */
#include "worker/state_handoff.h"

#include <string.h>

#include "common/bytes.h"

size_t vr_state_frame_size(const char *tenant, const char *session, int n_layers, size_t blob_size) {
    return VR_STATE_FRAME_HEADER + strlen(tenant) + strlen(session) + (size_t)n_layers * blob_size;
}

uint8_t *vr_state_frame_begin(const vr_state_frame *f, uint8_t *buf, size_t cap, vr_error *err) {
    size_t tl = strlen(f->tenant), sl = strlen(f->session);
    int n = f->layer_last - f->layer_first;
    if (tl > VR_STATE_NAME_MAX || sl > VR_STATE_NAME_MAX || n <= 0 || f->blob_size == 0 ||
        f->blob_size > UINT32_MAX) {
        vr_error_set(err, VR_ERR_INVALID, "state frame: bad names, layers or blob size");
        return NULL;
    }
    if (cap < vr_state_frame_size(f->tenant, f->session, n, f->blob_size)) {
        vr_error_set(err, VR_ERR_INVALID, "state frame: buffer too small");
        return NULL;
    }
    memcpy(buf, VR_STATE_FRAME_MAGIC, 4);
    vr_put_u32le(buf + 4, VR_STATE_FRAME_VERSION);
    vr_put_u64le(buf + 8, f->key);
    vr_put_u64le(buf + 16, (uint64_t)f->turn);
    vr_put_u64le(buf + 24, (uint64_t)f->tokens);
    vr_put_u32le(buf + 32, (uint32_t)f->layer_first);
    vr_put_u32le(buf + 36, (uint32_t)f->layer_last);
    vr_put_u32le(buf + 40, (uint32_t)f->blob_size);
    vr_put_u16le(buf + 44, (uint16_t)tl);
    vr_put_u16le(buf + 46, (uint16_t)sl);
    memcpy(buf + VR_STATE_FRAME_HEADER, f->tenant, tl);
    memcpy(buf + VR_STATE_FRAME_HEADER + tl, f->session, sl);
    return buf + VR_STATE_FRAME_HEADER + tl + sl;
}

vr_status vr_state_frame_parse(const uint8_t *p, size_t len, vr_state_frame *f, vr_error *err) {
    memset(f, 0, sizeof *f);
    if (len >= 16) f->key = vr_get_u64le(p + 8);
    if (len < VR_STATE_FRAME_HEADER || memcmp(p, VR_STATE_FRAME_MAGIC, 4) != 0)
        return vr_error_set(err, VR_ERR_FORMAT, "not a state frame (%zu bytes)", len);
    uint32_t version = vr_get_u32le(p + 4);
    if (version != VR_STATE_FRAME_VERSION)
        return vr_error_set(err, VR_ERR_FORMAT, "state frame version %u; this build speaks %d", version,
                            VR_STATE_FRAME_VERSION);
    f->turn = (int64_t)vr_get_u64le(p + 16);
    f->tokens = (int64_t)vr_get_u64le(p + 24);
    uint32_t first = vr_get_u32le(p + 32), last = vr_get_u32le(p + 36), blob = vr_get_u32le(p + 40);
    size_t tl = vr_get_u16le(p + 44), sl = vr_get_u16le(p + 46);
    if (f->turn < 0 || f->tokens < 0)
        return vr_error_set(err, VR_ERR_FORMAT, "state frame with turn %lld, tokens %lld", (long long)f->turn,
                            (long long)f->tokens);
    if (first >= last || last > 1u << 16 || blob == 0)
        return vr_error_set(err, VR_ERR_FORMAT, "state frame with layers %u:%u and %u-byte blobs", first, last, blob);
    if (tl == 0 || sl == 0 || tl > VR_STATE_NAME_MAX || sl > VR_STATE_NAME_MAX)
        return vr_error_set(err, VR_ERR_FORMAT, "state frame with names of %zu and %zu bytes", tl, sl);
    uint64_t want = (uint64_t)VR_STATE_FRAME_HEADER + tl + sl + (uint64_t)(last - first) * blob;
    if (want != len)
        return vr_error_set(err, VR_ERR_FORMAT, "state frame of %zu bytes, its header says %llu", len,
                            (unsigned long long)want);
    memcpy(f->tenant, p + VR_STATE_FRAME_HEADER, tl);
    memcpy(f->session, p + VR_STATE_FRAME_HEADER + tl, sl);
    if (memchr(f->tenant, 0, tl) || memchr(f->session, 0, sl))
        return vr_error_set(err, VR_ERR_FORMAT, "state frame with a NUL in a name");
    f->layer_first = (int)first;
    f->layer_last = (int)last;
    f->blob_size = blob;
    f->blobs = p + VR_STATE_FRAME_HEADER + tl + sl;
    return VR_OK;
}

const uint8_t *vr_state_frame_blob(const vr_state_frame *f, int layer) {
    return f->blobs + (size_t)(layer - f->layer_first) * f->blob_size;
}
