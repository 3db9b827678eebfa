/* model/weights.h — the VisualRWKV parameters, named by role and ready for a backend: weight
 * matrices in their loaded dtype (via ops->weight_upload), small parameters as f32 device
 * arrays (LoRA matrices transposed to [out, in] so every product is a plain `linear`).
 * Built from a checkpoint + config; holds no math. */
#ifndef VR_WEIGHTS_H
#define VR_WEIGHTS_H

#include "kernels/backend.h"
#include "model/checkpoint.h"
#include "model/config.h"

typedef struct vr_rwkv_layer_weights {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    /* time mix */
    float *maa_x, *maa_w, *maa_k, *maa_v, *maa_r, *maa_g; /* [C] */
    vr_tensor maa_w1;                                    /* f32 [5*D_MIX, C] (transposed) */
    vr_tensor maa_w2[5];                                 /* f32 [C, D_MIX] each (transposed) */
    float *time_decay;                                   /* [C] */
    vr_tensor decay_w1;                                  /* f32 [D_DECAY, C] */
    vr_tensor decay_w2;                                  /* f32 [C, D_DECAY] */
    float *time_faaaa;                                   /* [H*N] */
    vr_tensor att_r, att_k, att_v, att_o, att_g;         /* [C, C] loaded dtype */
    float *lnx_w, *lnx_b;
    /* channel mix */
    float *ffn_maa_k, *ffn_maa_r;
    vr_tensor ffn_k; /* [F, C] */
    vr_tensor ffn_r; /* [C, C] */
    vr_tensor ffn_v; /* [C, F] */
} vr_rwkv_layer_weights;

typedef struct vr_vit_layer_weights {
    vr_tensor q_w, q_b, k_w, k_b, v_w, v_b, o_w, o_b;
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    vr_tensor fc1_w, fc1_b, fc2_w, fc2_b;
} vr_vit_layer_weights;

typedef struct vr_weights {
    vr_model_config cfg;
    vr_backend *be; /* not owned */
    /* language model */
    vr_tensor emb;  /* [V, C] */
    float *ln0_w, *ln0_b;
    vr_rwkv_layer_weights *layers; /* n_layer */
    float *ln_out_w, *ln_out_b;
    vr_tensor head; /* [V, C] */
    /* vision (has_vision) */
    float *cls_emb;      /* [D] */
    vr_tensor patch_w;   /* [D, 3, P, P] */
    float *pos_emb;      /* [L, D] */
    float *pre_ln_w, *pre_ln_b;
    vr_vit_layer_weights *vit_layers;
    vr_tensor proj;      /* [C, D] */
    /* bookkeeping: every f32 array allocated through be->ops->alloc, freed in vr_weights_free */
    void **owned;
    int n_owned, cap_owned;
    vr_tensor **uploaded;
    int n_uploaded, cap_uploaded;
    uint64_t fingerprint; /* identifies the weights (used in state blob headers) */
} vr_weights;

/* Builds weights for layers [layer_first, layer_last) of the language model (a shard may hold
 * only its part; pass 0, n_layer for all). with_embed/with_head/with_vision select the rest. */
typedef struct vr_weights_select {
    int layer_first, layer_last;
    int with_embed, with_head, with_vision;
} vr_weights_select;

vr_status vr_weights_create(vr_backend *be, const vr_checkpoint *ck, const vr_model_config *cfg,
                            const vr_weights_select *sel, vr_weights **out, vr_error *err);
void vr_weights_free(vr_weights *w);
/* The identity of a checkpoint's weights (names, shapes, sampled bytes of every tensor), as
 * stored in state blob headers: a blob is only ever applied to the weights that made it. */
uint64_t vr_weights_fingerprint(const vr_checkpoint *ck);

#endif
