/* model/vision.h — the VisualRWKV image path after preprocessing: CLIP ViT (HF
 * CLIPVisionModel semantics, last_hidden_state without post layer norm), grid pooling
 * (-1, 0, 1, g) and the projector. Backend ops only; no image decoding, no I/O. */
#ifndef VR_VISION_H
#define VR_VISION_H

#include "model/rwkv.h"
#include "model/weights.h"

/* Optional host copies of intermediates, for tests and debugging (any pointer may be NULL).
 * layers needs vis_layers pointers of [L, D]. */
typedef struct vr_vision_trace {
    float *embeddings, *pre_layrnorm, **layers, *last_hidden, *grid_pooled;
} vr_vision_trace;

/* pixels: device [3, S, S]; features: device [num_image_tokens, n_embd]. */
vr_status vr_vision_encode(const vr_weights *w, vr_workspace *ws, const float *pixels, float *features,
                           vr_vision_trace *trace, vr_error *err);

#endif
