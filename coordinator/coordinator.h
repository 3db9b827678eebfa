/* coordinator/coordinator.h — the coordinator: the public gRPC API (vrwkv.v1.Vrwkv + health),
 * tenants and sessions, the continuous-batching scheduler, routing to the vision worker and
 * the shard pipeline, cluster membership and health. Holds no model math: it tokenises,
 * builds prompts and moves ids, features and state checkpoints between the parts. */
#ifndef VR_COORDINATOR_H
#define VR_COORDINATOR_H

#include "common/error.h"

typedef struct vr_coordinator vr_coordinator;

typedef struct vr_coordinator_options {
    const char *model_path, *config_path, *vocab_path;
    const char *host;          /* default 127.0.0.1 */
    int port;                  /* 0 = any */
    const char *tenants_path;  /* or api_key: one tenant "default" */
    const char *api_key;
    const char *store_url;     /* default "memory" */
    int ttl_seconds;
    int metrics_port;          /* < 0: none */
    int max_batch;             /* sessions per step (default 64) */
    int max_prompt_tokens;     /* > 0: overrides every tenant's limit */
    int default_max_tokens;    /* when a request gives none (default 256) */
    int inline_features;       /* image features come back through the coordinator, never straight
                                * from the vision worker to stage 0 (when workers cannot reach the
                                * shards' transport ports) */
} vr_coordinator_options;

vr_status vr_coordinator_start(const vr_coordinator_options *o, vr_coordinator **out, vr_error *err);
void vr_coordinator_stop(vr_coordinator *c);
int vr_coordinator_port(const vr_coordinator *c);
/* host:port workers register with */
const char *vr_coordinator_address(const vr_coordinator *c);
/* 1 once a vision worker (when the model has one) and a full shard pipeline are assigned. */
int vr_coordinator_ready(vr_coordinator *c);

#endif
