/* worker/shard.h — a layer-shard worker: holds layers [first, last) of the language model (plus
 * the embedding on the first stage and ln_out + head + sampling on the last), the live states
 * of the sessions it serves, and a gRPC server for the coordinator's commands (Assign,
 * Prepare, Step, Checkpoint, Evict). Activations arrive from the previous stage and leave for
 * the next over the worker transport. States are checkpointed to the store per turn and
 * restored from it on a miss. Runs as threads of the calling process. */
#ifndef VR_SHARD_H
#define VR_SHARD_H

#include "common/error.h"

typedef struct vr_shard vr_shard;

typedef struct vr_shard_options {
    const char *model_path, *config_path;
    int layer_first, layer_last;  /* layer_last <= 0: up to the last layer */
    const char *host;             /* bind and advertise (default 127.0.0.1) */
    int port;                     /* gRPC port, 0 = any */
    int transport_port;           /* activation listener port, 0 = any */
    const char *coordinator;      /* host:port to register with */
    const char *store_url;        /* "redis://…", "memory", "dir:…" (default "memory") */
    int ttl_seconds;
    int max_sessions;             /* live state slots (default 256) */
    int threads;
    int metrics_port;             /* < 0: no metrics endpoint */
    const char *backend;          /* "cpu" (NULL) or "cuda" (GPU 0 of CUDA_VISIBLE_DEVICES: one process per GPU) */
    int nccl;                     /* links to neighbours that have it too go over NCCL (needs backend cuda;
                                   * the coordinator hands out the links' ids when it assigns the pipeline) */
} vr_shard_options;

vr_status vr_shard_start(const vr_shard_options *o, vr_shard **out, vr_error *err);
void vr_shard_stop(vr_shard *s);
/* host:port of its gRPC server. */
const char *vr_shard_address(const vr_shard *s);
/* host:port of its transport listener (activations from the previous stage; features on stage 0). */
const char *vr_shard_transport_address(const vr_shard *s);

#endif
