/* worker/state_handoff.h — a session's live state handed from a shard to the shard that replaces
 * it (rebalancing, draining a node), over the side path of worker/frame_link.h (hello
 * VR_PEER_SHARD_STATE), so the session's next turn need not restore from the store. This file
 * is the frame only; the shard decides what to send and whether to take it. Must not apply
 * anything: the per-layer blobs inside keep their own checks (model/state.h).
 *
 * One frame per session (tag VR_STATE_TAG), little-endian:
 *   0  magic "VRSH"        4  version u32 (1)
 *   8  key u64 (the sender's sequence, echoed in the ack)
 *   16 turn i64 (the committed turn the state started from)   24 tokens i64 (ids consumed)
 *   32 layer_first u32     36 layer_last u32 (the layers whose blobs follow, in order)
 *   40 blob_size u32 (bytes of each blob)
 *   44 tenant_len u16      46 session_len u16
 *   48 tenant, session (no terminators), then the blobs. */
#ifndef VR_STATE_HANDOFF_H
#define VR_STATE_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

#define VR_STATE_TAG 0x4554415453485256ull     /* "VRHSTATE" little-endian */
#define VR_STATE_ACK_TAG 0x4b43415453485256ull /* "VRHSTACK" little-endian */
#define VR_STATE_FRAME_MAGIC "VRSH"
#define VR_STATE_FRAME_VERSION 1
#define VR_STATE_FRAME_HEADER 48
#define VR_STATE_NAME_MAX 128 /* tenant and session ids, as the coordinator allows */

typedef struct vr_state_frame {
    uint64_t key;
    int64_t turn, tokens;
    int layer_first, layer_last;
    size_t blob_size;
    char tenant[VR_STATE_NAME_MAX + 1], session[VR_STATE_NAME_MAX + 1];
    const uint8_t *blobs; /* (layer_last - layer_first) blobs of blob_size bytes, inside the frame */
} vr_state_frame;

/* Bytes of a frame for these names and layers. */
size_t vr_state_frame_size(const char *tenant, const char *session, int n_layers, size_t blob_size);
/* Writes the header and names of f into buf (cap bytes, at least vr_state_frame_size) and returns
 * where the n_layers blobs go, in layer order. */
uint8_t *vr_state_frame_begin(const vr_state_frame *f, uint8_t *buf, size_t cap, vr_error *err);
/* Parses a frame: every length is checked against len; the names are copied, the blobs point
 * into p. Malformed: VR_ERR_FORMAT (f->key is set where the frame is long enough to hold it). */
vr_status vr_state_frame_parse(const uint8_t *p, size_t len, vr_state_frame *f, vr_error *err);
/* The blob of layer (which must lie in [f->layer_first, f->layer_last)). */
const uint8_t *vr_state_frame_blob(const vr_state_frame *f, int layer);

#endif
