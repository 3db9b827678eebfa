/* model/state.c — state allocation, copy and the per-layer blob format. Little-endian on the
 * wire. Must not trust a blob: every field is checked before anything is copied. */
#include "model/state.h"

#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"

vr_status vr_state_create(vr_backend *be, const vr_model_config *cfg, int layer_first, int layer_last, vr_state **out,
                          vr_error *err) {
    *out = NULL;
    if (layer_first < 0 || layer_last > cfg->n_layer || layer_first >= layer_last)
        return vr_error_set(err, VR_ERR_INVALID, "state layer range [%d, %d) is invalid for %d layers", layer_first,
                            layer_last, cfg->n_layer);
    vr_state *s = calloc(1, sizeof *s);
    if (!s) return vr_error_set(err, VR_ERR_NOMEM, "out of memory allocating a state");
    s->be = be;
    s->layer_first = layer_first;
    s->layer_last = layer_last;
    s->n_embd = cfg->n_embd;
    s->n_head = cfg->n_head;
    s->head_size = cfg->head_size;
    s->layer_floats = 2 * (size_t)cfg->n_embd + (size_t)cfg->n_head * cfg->head_size * cfg->head_size;
    s->data = be->ops->alloc(be, (size_t)(layer_last - layer_first) * s->layer_floats * sizeof(float));
    if (!s->data) {
        free(s);
        return vr_error_set(err, VR_ERR_NOMEM, "out of device memory allocating a state");
    }
    *out = s;
    return VR_OK;
}

void vr_state_free(vr_state *s) {
    if (!s) return;
    s->be->ops->free(s->be, s->data);
    free(s);
}

static size_t state_bytes(const vr_state *s) {
    return (size_t)(s->layer_last - s->layer_first) * s->layer_floats * sizeof(float);
}

void vr_state_reset(vr_state *s) {
    size_t n = state_bytes(s);
    float *zero = calloc(1, n);
    if (zero) {
        s->be->ops->upload(s->be, s->data, zero, n);
        free(zero);
    }
}

vr_status vr_state_copy(vr_state *dst, const vr_state *src, vr_error *err) {
    if (dst->layer_first != src->layer_first || dst->layer_last != src->layer_last ||
        dst->layer_floats != src->layer_floats)
        return vr_error_set(err, VR_ERR_INVALID, "state copy between different layer ranges or shapes");
    dst->be->ops->copy(dst->be, dst->data, src->data, state_bytes(src));
    return VR_OK;
}

static float *layer_base(vr_state *s, int layer) {
    return s->data + (size_t)(layer - s->layer_first) * s->layer_floats;
}
float *vr_state_att_shift(vr_state *s, int layer) { return layer_base(s, layer); }
float *vr_state_wkv(vr_state *s, int layer) { return layer_base(s, layer) + s->n_embd; }
float *vr_state_ffn_shift(vr_state *s, int layer) {
    return layer_base(s, layer) + s->n_embd + (size_t)s->n_head * s->head_size * s->head_size;
}

size_t vr_state_blob_size(const vr_state *s) { return VR_STATE_HEADER_SIZE + s->layer_floats * sizeof(float); }

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}


/* Header layout (64 bytes):
 *  0 magic[8]  8 version u32  12 layer u32  16 fingerprint u64  24 dtype u32 (0 = f32)
 * 28 n_embd u32  32 n_head u32  36 head_size u32  40 payload bytes u64  48 payload fnv1a64 u64
 * 56 header fnv1a64 of bytes [0, 56) u64 */
/* Fills the 64-byte header of a blob whose payload (one layer, f32) is already at
 * buf + VR_STATE_HEADER_SIZE. */
static void finish_blob(uint8_t *buf, int layer, uint64_t fingerprint, int n_embd, int n_head, int head_size,
                        size_t payload) {
    uint8_t *h = buf;
    memset(h, 0, VR_STATE_HEADER_SIZE);
    memcpy(h, VR_STATE_MAGIC, 8);
    vr_put_u32le(h + 8, VR_STATE_FORMAT_VERSION);
    vr_put_u32le(h + 12, (uint32_t)layer);
    vr_put_u64le(h + 16, fingerprint);
    vr_put_u32le(h + 24, 0);
    vr_put_u32le(h + 28, (uint32_t)n_embd);
    vr_put_u32le(h + 32, (uint32_t)n_head);
    vr_put_u32le(h + 36, (uint32_t)head_size);
    vr_put_u64le(h + 40, payload);
    vr_put_u64le(h + 48, fnv1a64(buf + VR_STATE_HEADER_SIZE, payload));
    vr_put_u64le(h + 56, fnv1a64(h, 56));
}

vr_status vr_state_serialize_layer(const vr_state *s, int layer, uint64_t fingerprint, uint8_t *buf, size_t cap,
                                   vr_error *err) {
    if (layer < s->layer_first || layer >= s->layer_last)
        return vr_error_set(err, VR_ERR_INVALID, "layer %d is not in this state [%d, %d)", layer, s->layer_first,
                            s->layer_last);
    size_t payload = s->layer_floats * sizeof(float);
    if (cap < VR_STATE_HEADER_SIZE + payload)
        return vr_error_set(err, VR_ERR_INVALID, "state blob buffer too small");
    s->be->ops->download(s->be, buf + VR_STATE_HEADER_SIZE, layer_base((vr_state *)s, layer), payload);
    finish_blob(buf, layer, fingerprint, s->n_embd, s->n_head, s->head_size, payload);
    return VR_OK;
}

/* ---- snapshots ---- */

vr_status vr_state_snapshot_take(const vr_state *s, vr_state_snapshot *snap, vr_error *err) {
    vr_backend *be = s->be;
    size_t bytes = state_bytes(s);
    if (snap->cap < bytes || snap->be != be) {
        vr_state_snapshot_release(snap);
        snap->be = be;
        snap->pinned = be->ops->host_alloc != NULL;
        snap->data = snap->pinned ? be->ops->host_alloc(be, bytes) : NULL;
        if (!snap->data) { /* no page-locked memory: plain memory works, more slowly */
            snap->pinned = 0;
            snap->data = malloc(bytes);
        }
        if (!snap->data) {
            snap->pinned = 0;
            return vr_error_set(err, VR_ERR_NOMEM, "out of host memory for a %zu-byte state snapshot", bytes);
        }
        snap->cap = bytes;
    }
    be->ops->download(be, snap->data, s->data, bytes); /* one transfer (pinned: at full link speed) */
    snap->layer_first = s->layer_first;
    snap->layer_last = s->layer_last;
    snap->layer_floats = s->layer_floats;
    snap->n_embd = s->n_embd;
    snap->n_head = s->n_head;
    snap->head_size = s->head_size;
    if (be->ops->sync) return be->ops->sync(be, err);
    return VR_OK;
}

vr_status vr_state_snapshot_blob(const vr_state_snapshot *snap, int layer, uint64_t fingerprint, uint8_t *buf,
                                 size_t cap, vr_error *err) {
    if (!snap->data || layer < snap->layer_first || layer >= snap->layer_last)
        return vr_error_set(err, VR_ERR_INVALID, "layer %d is not in this snapshot [%d, %d)", layer,
                            snap->layer_first, snap->layer_last);
    size_t payload = snap->layer_floats * sizeof(float);
    if (cap < VR_STATE_HEADER_SIZE + payload)
        return vr_error_set(err, VR_ERR_INVALID, "state blob buffer too small");
    memcpy(buf + VR_STATE_HEADER_SIZE, snap->data + (size_t)(layer - snap->layer_first) * snap->layer_floats,
           payload);
    finish_blob(buf, layer, fingerprint, snap->n_embd, snap->n_head, snap->head_size, payload);
    return VR_OK;
}

void vr_state_snapshot_release(vr_state_snapshot *snap) {
    if (snap->data) {
        if (snap->pinned) snap->be->ops->host_free(snap->be, snap->data);
        else free(snap->data);
    }
    memset(snap, 0, sizeof *snap);
}

vr_status vr_state_deserialize_layer(vr_state *s, int layer, uint64_t fingerprint, const uint8_t *buf, size_t size,
                                     vr_error *err) {
    if (layer < s->layer_first || layer >= s->layer_last)
        return vr_error_set(err, VR_ERR_INVALID, "layer %d is not in this state [%d, %d)", layer, s->layer_first,
                            s->layer_last);
    if (size < VR_STATE_HEADER_SIZE)
        return vr_error_set(err, VR_ERR_FORMAT, "state blob for layer %d is truncated (%zu bytes)", layer, size);
    const uint8_t *h = buf;
    if (memcmp(h, VR_STATE_MAGIC, 8) != 0)
        return vr_error_set(err, VR_ERR_FORMAT, "state blob for layer %d has a wrong magic", layer);
    if (vr_get_u64le(h + 56) != fnv1a64(h, 56))
        return vr_error_set(err, VR_ERR_FORMAT, "state blob for layer %d has a corrupt header (checksum mismatch)",
                            layer);
    if (vr_get_u32le(h + 8) != VR_STATE_FORMAT_VERSION)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "state blob for layer %d has format version %u, expected %u",
                            layer, vr_get_u32le(h + 8), VR_STATE_FORMAT_VERSION);
    if (vr_get_u32le(h + 12) != (uint32_t)layer)
        return vr_error_set(err, VR_ERR_FORMAT, "state blob is for layer %u, expected layer %d", vr_get_u32le(h + 12), layer);
    if (vr_get_u64le(h + 16) != fingerprint)
        return vr_error_set(err, VR_ERR_FORMAT, "state blob for layer %d was made by a different model", layer);
    if (vr_get_u32le(h + 24) != 0)
        return vr_error_set(err, VR_ERR_UNSUPPORTED, "state blob for layer %d has an unknown dtype %u", layer,
                            vr_get_u32le(h + 24));
    if (vr_get_u32le(h + 28) != (uint32_t)s->n_embd || vr_get_u32le(h + 32) != (uint32_t)s->n_head ||
        vr_get_u32le(h + 36) != (uint32_t)s->head_size)
        return vr_error_set(err, VR_ERR_FORMAT, "state blob for layer %d has shape C=%u H=%u N=%u, expected C=%d H=%d N=%d",
                            layer, vr_get_u32le(h + 28), vr_get_u32le(h + 32), vr_get_u32le(h + 36), s->n_embd, s->n_head,
                            s->head_size);
    size_t payload = s->layer_floats * sizeof(float);
    if (vr_get_u64le(h + 40) != payload || size != VR_STATE_HEADER_SIZE + payload)
        return vr_error_set(err, VR_ERR_FORMAT, "state blob for layer %d has %zu payload bytes, expected %zu", layer,
                            size - VR_STATE_HEADER_SIZE, payload);
    if (vr_get_u64le(h + 48) != fnv1a64(buf + VR_STATE_HEADER_SIZE, payload))
        return vr_error_set(err, VR_ERR_FORMAT, "state blob for layer %d is corrupt (payload checksum mismatch)", layer);
    s->be->ops->upload(s->be, layer_base(s, layer), buf + VR_STATE_HEADER_SIZE, payload);
    return VR_OK;
}
