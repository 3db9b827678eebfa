/* model/vision.c — CLIP ViT forward, grid pooling and projection (fixtures README §7). */
#include "model/vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { WV_H, WV_A, WV_Q, WV_K, WV_V, WV_O, WV_MLP, WV_POOL, WV_PATCH };

static void trace_copy(vr_backend *be, float *dst, const float *src, size_t n) {
    if (dst) be->ops->download(be, dst, src, n * sizeof(float));
}

vr_status vr_vision_encode(const vr_weights *w, vr_workspace *ws, const float *pixels, float *features,
                           vr_vision_trace *trace, vr_error *err) {
    const vr_model_config *cfg = &w->cfg;
    if (!w->vit_layers) return vr_error_set(err, VR_ERR_INVALID, "these weights do not hold the vision tower");
    vr_backend *be = w->be;
    const vr_backend_ops *op = be->ops;
    const int D = cfg->vis_hidden, I = cfg->vis_intermediate, G = cfg->vis_grid, L = G * G + 1;
    const int heads = cfg->vis_heads, hd = D / heads;
    /* ws slots above the RWKV ones (see rwkv.c) are free for the vision path */
    float *h = vr_workspace_get(ws, 4 + WV_H, (size_t)L * D);
    float *a = vr_workspace_get(ws, 4 + WV_A, (size_t)L * D);
    float *q = vr_workspace_get(ws, 4 + WV_Q, (size_t)L * D);
    float *k = vr_workspace_get(ws, 4 + WV_K, (size_t)L * D);
    float *v = vr_workspace_get(ws, 4 + WV_V, (size_t)L * D);
    float *o = vr_workspace_get(ws, 4 + WV_O, (size_t)L * D);
    float *mlp = vr_workspace_get(ws, 4 + WV_MLP, (size_t)L * I);
    float *pool = vr_workspace_get(ws, 4 + WV_POOL, (size_t)L * D);
    if (!h || !a || !q || !k || !v || !o || !mlp || !pool)
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory for the vision tower");

    /* embeddings: cls at row 0, patches after, plus positions */
    op->copy(be, h, w->cls_emb, (size_t)D * sizeof(float));
    op->patch_embed(be, pixels, cfg->image_size, cfg->patch_size, &w->patch_w, h + D);
    op->add(be, h, w->pos_emb, h, (size_t)L * D);
    if (trace) trace_copy(be, trace->embeddings, h, (size_t)L * D);
    op->layer_norm(be, h, L, D, w->pre_ln_w, w->pre_ln_b, cfg->vis_ln_eps, h);
    if (trace) trace_copy(be, trace->pre_layrnorm, h, (size_t)L * D);

    float scale = (float)pow((double)hd, -0.5); /* python's head_dim**-0.5, applied in f32 */
    /* one upload of the whole [L, D] block (a device backend waits once, not once per row) */
    float *scale_host = malloc((size_t)L * D * sizeof(float));
    if (!scale_host) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < (size_t)L * D; i++) scale_host[i] = scale;
    float *scale_dev = vr_workspace_get(ws, 4 + WV_PATCH, (size_t)L * D);
    if (!scale_dev) {
        free(scale_host);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    op->upload(be, scale_dev, scale_host, (size_t)L * D * sizeof(float));
    free(scale_host);

    for (int j = 0; j < cfg->vis_layers; j++) {
        const vr_vit_layer_weights *vl = &w->vit_layers[j];
        op->layer_norm(be, h, L, D, vl->ln1_w, vl->ln1_b, cfg->vis_ln_eps, a);
        op->linear(be, a, L, D, D, &vl->q_w, &vl->q_b, 0.0f, q);
        op->mul(be, q, scale_dev, q, (size_t)L * D);
        op->linear(be, a, L, D, D, &vl->k_w, &vl->k_b, 0.0f, k);
        op->linear(be, a, L, D, D, &vl->v_w, &vl->v_b, 0.0f, v);
        op->attention(be, q, k, v, L, heads, hd, o);
        op->linear(be, o, L, D, D, &vl->o_w, &vl->o_b, 0.0f, a);
        op->add(be, h, a, h, (size_t)L * D);
        op->layer_norm(be, h, L, D, vl->ln2_w, vl->ln2_b, cfg->vis_ln_eps, a);
        op->linear(be, a, L, D, D, &vl->fc1_w, &vl->fc1_b, 0.0f, mlp);
        op->quick_gelu(be, mlp, (size_t)L * I);
        op->linear(be, mlp, L, I, I, &vl->fc2_w, &vl->fc2_b, 0.0f, a);
        op->add(be, h, a, h, (size_t)L * D);
        if (trace && trace->layers) trace_copy(be, trace->layers[j], h, (size_t)L * D);
    }
    if (trace) trace_copy(be, trace->last_hidden, h, (size_t)L * D);

    /* grid pooling on the host side of the op table: pooled rows are averages of patch rows */
    int n_img = cfg->num_image_tokens;
    const float *patches = h + D;
    if (cfg->grid_size == -1) {
        op->copy(be, pool, patches, (size_t)(L - 1) * D * sizeof(float));
    } else if (cfg->grid_size == 1 || cfg->grid_size >= 2) {
        int g = cfg->grid_size == 1 ? 1 : cfg->grid_size;
        int kk = G / g;
        /* average pooling expressed as gathers + adds keeps it in backend ops */
        float *acc = a; /* reuse */
        float inv = 1.0f / (float)(kk * kk);
        float *inv_row = vr_workspace_get(ws, 4 + WV_PATCH, (size_t)D); /* uploaded once */
        float *host = malloc((size_t)D * sizeof(float));
        if (!host || !inv_row) {
            free(host);
            return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        }
        for (int i = 0; i < D; i++) host[i] = inv;
        op->upload(be, inv_row, host, (size_t)D * sizeof(float));
        free(host);
        for (int py = 0; py < g; py++)
            for (int px = 0; px < g; px++) {
                float *dst = pool + ((size_t)py * g + px) * D;
                op->copy(be, acc, patches + ((size_t)(py * kk) * G + (size_t)px * kk) * D, (size_t)D * sizeof(float));
                for (int dy = 0; dy < kk; dy++)
                    for (int dx = 0; dx < kk; dx++) {
                        if (dy == 0 && dx == 0) continue;
                        const float *src = patches + ((size_t)(py * kk + dy) * G + (size_t)(px * kk + dx)) * D;
                        op->add(be, acc, src, acc, (size_t)D);
                    }
                op->mul(be, acc, inv_row, dst, (size_t)D);
            }
    }
    /* cls last */
    op->copy(be, pool + (size_t)(n_img - 1) * D, h, (size_t)D * sizeof(float));
    if (trace) trace_copy(be, trace->grid_pooled, pool, (size_t)n_img * D);
    op->linear(be, pool, n_img, D, D, &w->proj, NULL, 0.0f, features);
    return VR_OK;
}
