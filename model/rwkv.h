/* model/rwkv.h — the RWKV-6 language model split the way the cluster splits it:
 * embed (tokens + image features → hidden rows), layers [first, last) over a batch of runs
 * (each run one session with its own state and scan plan), and head (hidden → logits).
 * Expressed only in backend ops; no I/O, no networking, no sampling. */
#ifndef VR_RWKV_H
#define VR_RWKV_H

#include "kernels/backend.h"
#include "model/state.h"
#include "model/weights.h"

typedef enum { VR_SCAN_UNI = 0, VR_SCAN_BI, VR_SCAN_MULTI } vr_scan_mode;

vr_status vr_scan_mode_parse(const char *s, vr_scan_mode *out, vr_error *err);
const char *vr_scan_mode_name(vr_scan_mode m);

/* Where a run's image patch segment lies: rows [img_start, img_end) relative to the run
 * (img_end = the cls row, which never moves). img_start < 0: no image in this run. */
typedef struct vr_scan_plan {
    vr_scan_mode mode;
    int img_start, img_end;
} vr_scan_plan;

/* The order in which layer `layer` visits an n-row segment (perm[j] = original index at slot j).
 * Returns 1 when it is not the identity. perm has n entries. */
int vr_scan_permutation(vr_scan_mode mode, int layer, int n, int32_t *perm);

/* Grow-only scratch memory for forward passes; one per thread of work. */
typedef struct vr_workspace vr_workspace;
vr_workspace *vr_workspace_create(vr_backend *be);
void vr_workspace_free(vr_workspace *ws);
/* A device buffer of at least n floats that stays valid until the next call with the same slot. */
float *vr_workspace_get(vr_workspace *ws, int slot, size_t n);

/* x[n, C] = rows for ids, with image_features [n_img, C] placed at the -200 (at most one).
 * ids and image_features are host/device as the backend's memory; ids are host. */
vr_status vr_rwkv_embed(const vr_weights *w, const int32_t *ids, int n_ids, const float *image_features, int n_img,
                        float *x, vr_error *err);
/* Number of rows vr_rwkv_embed produces. */
int vr_rwkv_embed_rows(const int32_t *ids, int n_ids, int n_img);

/* Runs layers [first, last) over x [rows, C] in place. runs[i] uses states[i] and plans[i]
 * (plans may be NULL: all uni, no image). Layer 0 applies ln0 first. */
vr_status vr_rwkv_layers(const vr_weights *w, vr_workspace *ws, float *x, const vr_run *runs, int n_runs,
                         vr_state *const *states, const vr_scan_plan *plans, int first, int last, vr_error *err);

/* logits[m, V] = head(LN(x[m rows at stride C]; ln_out)). */
vr_status vr_rwkv_head(const vr_weights *w, vr_workspace *ws, const float *x, int m, float *logits, vr_error *err);

#endif
