/* model/config.h — the hyper-parameters of a VisualRWKV model. Most are inferred from the
 * checkpoint's tensor shapes; the rest (vision heads, grid size, …) come from an optional
 * model.json (the fixtures' model.json is accepted as it is) or from upstream defaults.
 * Must not touch tensor data. */
#ifndef VR_CONFIG_H
#define VR_CONFIG_H

#include "common/error.h"
#include "model/checkpoint.h"

typedef struct vr_model_config {
    /* RWKV-6 language model */
    int vocab_size, n_embd, n_layer, dim_att, dim_ffn;
    int head_size, n_head;
    int head_size_divisor; /* 8 */
    float ln_x_eps;        /* 1e-5 * head_size_divisor^2 */
    float layer_norm_eps;  /* 1e-5 */
    int d_mix_lora, d_decay_lora;
    /* CLIP vision tower (has_vision = 0 for a text-only checkpoint) */
    int has_vision;
    int vis_hidden, vis_intermediate, vis_layers, vis_heads;
    int image_size, patch_size, vis_grid; /* vis_grid = image_size / patch_size */
    float vis_ln_eps;
    /* VisualRWKV */
    int grid_size;       /* -1: all patches; 0: cls only; 1: mean + cls; g >= 2: g x g pool */
    int num_image_tokens;
    int stop_token;      /* 261 */
    float image_mean[3], image_std[3];
} vr_model_config;

/* Infers what the shapes tell, then applies config_path (may be NULL) for the rest and checks
 * that everything given in the file agrees with the checkpoint. Errors name the field or tensor. */
vr_status vr_config_load(const vr_checkpoint *ck, const char *config_path, vr_model_config *cfg, vr_error *err);

/* Writes a model.json (the fixture layout's hyper-parameter fields) for cfg. */
vr_status vr_config_write_json(const vr_model_config *cfg, const char *path, vr_error *err);

#endif
