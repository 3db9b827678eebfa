/* worker/vision_worker.h — the vision worker: a gRPC Encode service that turns image bytes
 * (JPEG/PNG) into projected image features [n_img, n_embd] with the CLIP tower and projector.
 * Registers with the coordinator. Runs as threads of the calling process. */
#ifndef VR_VISION_WORKER_H
#define VR_VISION_WORKER_H

#include "common/error.h"

typedef struct vr_vision_worker vr_vision_worker;

typedef struct vr_vision_worker_options {
    const char *model_path, *config_path;
    const char *host; /* default 127.0.0.1 */
    int port;         /* 0 = any */
    const char *coordinator;
    int threads;
    int metrics_port; /* < 0: none */
    const char *backend; /* "cpu" (NULL) or "cuda" */
    int nccl;            /* offer NCCL to stage 0 for the features (needs backend cuda; worker/frame_link.h) */
} vr_vision_worker_options;

vr_status vr_vision_worker_start(const vr_vision_worker_options *o, vr_vision_worker **out, vr_error *err);
void vr_vision_worker_stop(vr_vision_worker *w);
const char *vr_vision_worker_address(const vr_vision_worker *w);

#endif
