/* worker/feature_delivery.h — image features handed from a vision worker straight to pipeline
 * stage 0 over the worker transport, so they never pass through the coordinator: the frame
 * format, the sender (vision worker side) and the inbox (stage 0 side). Must not know what the
 * features mean or how they were made.
 *
 * Over worker/frame_link.h: the vision worker connects to stage 0's listener, says hello as
 * VR_PEER_VISION and sends one frame per image (tag VR_FEATURES_TAG):
 *   0  magic    "VRFE"
 *   4  version  u32 (1)
 *   8  key      u64  the coordinator's name for this image in this request
 *   16 n_img    u32  rows
 *   20 n_embd   u32  floats per row
 *   24 f32 LE [n_img, n_embd]
 * Stage 0 stores them and acknowledges every frame (tag VR_FEATURES_ACK_TAG, frame_link's ack).
 * The sender reports success only for an acknowledged store, so a delivered key is in the inbox
 * until it is taken or expires (its time to live). */
#ifndef VR_FEATURE_DELIVERY_H
#define VR_FEATURE_DELIVERY_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "worker/transport.h"

#define VR_FEATURES_TAG 0x5345525554414546ull     /* "FEATURES" little-endian */
#define VR_FEATURES_ACK_TAG 0x4b4341455246ull      /* "FREACK" little-endian */
#define VR_FEATURES_MAGIC "VRFE"
#define VR_FEATURES_VERSION 1
#define VR_FEATURES_HEADER_SIZE 24
/* How long stage 0 keeps delivered features that were not taken; the coordinator re-encodes
 * rather than count on features older than half of it. */
#define VR_FEATURES_TTL_MS 600000

/* Checks a features frame (the payload of a VR_FEATURES_TAG frame) for the shape [n_img, n_embd]:
 * *key (0 when the frame is too short to hold one) and *floats, which points into p. Another
 * shape: VR_ERR_INVALID; anything malformed: VR_ERR_FORMAT. */
vr_status vr_features_frame_check(const uint8_t *p, size_t len, int n_img, int n_embd, uint64_t *key,
                                  const uint8_t **floats, vr_error *err);

/* ---- stage 0: the inbox ---- */

typedef struct vr_feature_inbox vr_feature_inbox;

typedef struct vr_feature_inbox_options {
    int n_img, n_embd;  /* the only shape accepted */
    size_t max_bytes;   /* stored features beyond this are refused (the sender falls back) */
    int ttl_ms;         /* an entry not taken within this is dropped */
    int max_peers;      /* vision connections served at once */
} vr_feature_inbox_options;

vr_status vr_feature_inbox_create(const vr_feature_inbox_options *o, vr_feature_inbox **out, vr_error *err);
/* Accepts NCCL for the features from vision workers on other GPUs (worker/frame_link.h), joining
 * as CUDA device `device`. */
void vr_feature_inbox_use_nccl(vr_feature_inbox *in, int device);
/* Serves a vision worker's connection (after its hello) from a thread of its own until the peer
 * goes away or the inbox is freed. Takes ownership of t, also on failure (too many peers). */
vr_status vr_feature_inbox_serve(vr_feature_inbox *in, vr_transport *t, vr_error *err);
/* Moves the features stored under key to the caller (*features malloc'd, [n_img * n_embd]).
 * Absent (never delivered here, taken already, or expired): VR_ERR_NOT_FOUND. */
vr_status vr_feature_inbox_take(vr_feature_inbox *in, uint64_t key, float **features, vr_error *err);
/* 1 when features are stored under key (and not expired). */
int vr_feature_inbox_has(vr_feature_inbox *in, uint64_t key);
/* Entries and bytes held now (for metrics and tests). */
void vr_feature_inbox_usage(vr_feature_inbox *in, int *entries, size_t *bytes);
/* Stops the peer threads, closes their connections and frees every entry. NULL is ignored. */
void vr_feature_inbox_free(vr_feature_inbox *in);

/* ---- vision worker: the sender ---- */

typedef struct vr_feature_sender vr_feature_sender;

vr_status vr_feature_sender_create(vr_feature_sender **out, vr_error *err);
/* Offers NCCL (as CUDA device `device`) to each stage 0 it connects to (worker/frame_link.h). */
void vr_feature_sender_use_nccl(vr_feature_sender *s, int device);
/* Sends features [n_img, n_embd] to the inbox behind address ("host:port" of stage 0's transport
 * listener) under key, and waits up to timeout_ms for the acknowledgement. The connection is kept
 * for the next delivery to the same address; one that turns out broken is replaced once. Fails
 * (and the caller falls back to answering the features itself) when stage 0 cannot be reached,
 * does not answer in time or refuses the frame; an address that could not be reached is not
 * tried again for VR_FEATURES_RETRY_MS (those deliveries fail at once). One delivery at a time
 * per sender. */
#define VR_FEATURES_RETRY_MS 10000
vr_status vr_feature_sender_deliver(vr_feature_sender *s, const char *address, uint64_t key, const float *features,
                                    int n_img, int n_embd, int timeout_ms, vr_error *err);
void vr_feature_sender_free(vr_feature_sender *s);

#endif
