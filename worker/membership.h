/* worker/membership.h — a worker's link to the coordinator: registers, then heartbeats on a
 * thread, and registers again whenever the coordinator answers that it does not know the
 * worker (a restarted coordinator) or was unreachable. */
#ifndef VR_MEMBERSHIP_H
#define VR_MEMBERSHIP_H

#include <stdint.h>

#include "common/error.h"

typedef struct vr_membership vr_membership;

typedef struct vr_membership_info {
    const char *coordinator;       /* host:port */
    const char *address;           /* this worker's gRPC host:port */
    const char *transport_address; /* shards: activation listener host:port */
    int role;                      /* VRWKV__INTERNAL__WORKER_ROLE__* */
    int layer_first, layer_last;
    uint64_t fingerprint;
    int max_sessions;
    int (*live_sessions)(void *ctx); /* may be NULL */
    void *ctx;
    int nccl; /* shards: can link to neighbours over NCCL */
} vr_membership_info;

vr_status vr_membership_start(const vr_membership_info *info, vr_membership **out, vr_error *err);
void vr_membership_stop(vr_membership *m);
const char *vr_membership_worker_id(const vr_membership *m);

#endif
