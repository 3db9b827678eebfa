/* model/state.h — the recurrent state of a range of RWKV-6 layers for one session: per layer
 * att token-shift [C], WKV [H][N][N] f32, ffn token-shift [C], on the backend's device.
 * Also the serialised per-layer blob: a 64-byte header (magic, format version, model
 * fingerprint, layer index, dtype, shape, payload checksum) + the f32 payload. A blob that
 * fails any check is refused with a message naming the check; never partially applied. */
#ifndef VR_STATE_H
#define VR_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "kernels/backend.h"
#include "model/config.h"

typedef struct vr_state {
    vr_backend *be; /* not owned */
    int layer_first, layer_last;
    int n_embd, n_head, head_size;
    size_t layer_floats; /* 2*C + H*N*N */
    float *data;         /* device, (layer_last-layer_first) * layer_floats, zero = fresh */
} vr_state;

vr_status vr_state_create(vr_backend *be, const vr_model_config *cfg, int layer_first, int layer_last, vr_state **out,
                          vr_error *err);
void vr_state_free(vr_state *s);
void vr_state_reset(vr_state *s);
/* dst must cover the same layers and shape. */
vr_status vr_state_copy(vr_state *dst, const vr_state *src, vr_error *err);

float *vr_state_att_shift(vr_state *s, int layer);
float *vr_state_wkv(vr_state *s, int layer);
float *vr_state_ffn_shift(vr_state *s, int layer);

#define VR_STATE_MAGIC "VRWKVST1"
#define VR_STATE_FORMAT_VERSION 1u
#define VR_STATE_HEADER_SIZE 64

/* Bytes of one layer's blob. */
size_t vr_state_blob_size(const vr_state *s);
/* Writes layer's blob into buf (vr_state_blob_size bytes). */
vr_status vr_state_serialize_layer(const vr_state *s, int layer, uint64_t fingerprint, uint8_t *buf, size_t cap,
                                   vr_error *err);
/* A host copy of a whole state, taken in one transfer into pinned memory where the backend
 * has it, so that blobs are made and stored after the state's owner has moved on (a shard
 * holds its compute lock only for the copy, not for the store's writes). Zero-initialise;
 * take reuses the buffer; release frees it. */
typedef struct vr_state_snapshot {
    vr_backend *be;
    float *data; /* host (pinned when `pinned`) */
    size_t cap;
    int pinned;
    int layer_first, layer_last;
    size_t layer_floats;
    int n_embd, n_head, head_size;
} vr_state_snapshot;
vr_status vr_state_snapshot_take(const vr_state *s, vr_state_snapshot *snap, vr_error *err);
/* The same blob vr_state_serialize_layer makes, from the snapshot. */
vr_status vr_state_snapshot_blob(const vr_state_snapshot *snap, int layer, uint64_t fingerprint, uint8_t *buf,
                                 size_t cap, vr_error *err);
void vr_state_snapshot_release(vr_state_snapshot *snap);

/* Checks the blob completely, then copies it into the layer. */
vr_status vr_state_deserialize_layer(vr_state *s, int layer, uint64_t fingerprint, const uint8_t *buf, size_t size,
                                     vr_error *err);

#endif
