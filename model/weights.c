/* model/weights.c — maps checkpoint tensors to the roles of vr_weights and hands them to the
 * backend. Shapes were validated by vr_config_load; this file still checks every lookup so a
 * bad pairing of checkpoint and config is an error, never a crash. Holds no math beyond the
 * layout changes (f32 conversion, LoRA transposes). */
#include "model/weights.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct loader {
    vr_weights *w;
    const vr_checkpoint *ck;
    vr_error *err;
} loader;

static vr_status remember_alloc(vr_weights *w, void *p) {
    if (w->n_owned == w->cap_owned) {
        int cap = w->cap_owned ? w->cap_owned * 2 : 64;
        void **n = realloc(w->owned, (size_t)cap * sizeof *n);
        if (!n) return VR_ERR_NOMEM;
        w->owned = n;
        w->cap_owned = cap;
    }
    w->owned[w->n_owned++] = p;
    return VR_OK;
}

static const vr_tensor *find(loader *L, const char *name, int64_t numel) {
    const vr_tensor *t = vr_checkpoint_find(L->ck, name);
    if (!t) {
        vr_error_set(L->err, VR_ERR_FORMAT, "%s: tensor %s is missing", vr_checkpoint_path(L->ck), name);
        return NULL;
    }
    if (t->dtype != VR_F32 && t->dtype != VR_F16 && t->dtype != VR_BF16) {
        vr_error_set(L->err, VR_ERR_UNSUPPORTED, "%s: tensor %s has dtype %s, expected f32, f16 or bf16",
                     vr_checkpoint_path(L->ck), name, vr_dtype_name(t->dtype));
        return NULL;
    }
    if (numel >= 0 && vr_tensor_numel(t) != numel) {
        char buf[96];
        vr_error_set(L->err, VR_ERR_FORMAT, "%s: tensor %s has shape %s (%lld elements), expected %lld elements",
                     vr_checkpoint_path(L->ck), name, vr_shape_str(t, buf, sizeof buf),
                     (long long)vr_tensor_numel(t), (long long)numel);
        return NULL;
    }
    return t;
}

/* f32 device copy of a small parameter, optionally transposed from [rows, cols] to [cols, rows]. */
static float *param_f32(loader *L, const char *name, int64_t numel, int rows, int cols) {
    const vr_tensor *t = find(L, name, numel);
    if (!t) return NULL;
    float *host = malloc((size_t)numel * sizeof(float) + 1);
    if (!host) {
        vr_error_set(L->err, VR_ERR_NOMEM, "out of memory loading %s", name);
        return NULL;
    }
    vr_to_f32(t->dtype, t->data, host, (size_t)numel);
    if (rows > 0) {
        float *tr = malloc((size_t)numel * sizeof(float) + 1);
        if (!tr) {
            free(host);
            vr_error_set(L->err, VR_ERR_NOMEM, "out of memory loading %s", name);
            return NULL;
        }
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) tr[(size_t)c * (size_t)rows + r] = host[(size_t)r * (size_t)cols + c];
        free(host);
        host = tr;
    }
    vr_backend *be = L->w->be;
    float *dev = be->ops->alloc(be, (size_t)numel * sizeof(float));
    if (!dev || remember_alloc(L->w, dev) != VR_OK) {
        free(host);
        if (dev) be->ops->free(be, dev);
        vr_error_set(L->err, VR_ERR_NOMEM, "out of device memory loading %s", name);
        return NULL;
    }
    be->ops->upload(be, dev, host, (size_t)numel * sizeof(float));
    free(host);
    return dev;
}

static vr_status param_matrix_f32(loader *L, const char *name, int rows, int cols, int transpose, vr_tensor *out) {
    float *d = param_f32(L, name, (int64_t)rows * cols, transpose ? rows : 0, cols);
    if (!d) return L->err->code;
    memset(out, 0, sizeof *out);
    out->dtype = VR_F32;
    out->device = L->w->be->device;
    out->ndim = 2;
    out->shape[0] = transpose ? cols : rows;
    out->shape[1] = transpose ? rows : cols;
    out->data = d;
    return VR_OK;
}

static vr_status matrix(loader *L, const char *name, int rows, int cols, vr_tensor *out) {
    const vr_tensor *t = find(L, name, (int64_t)rows * cols);
    if (!t) return L->err->code;
    vr_tensor host = *t;
    host.ndim = 2;
    host.shape[0] = rows;
    host.shape[1] = cols;
    vr_weights *w = L->w;
    vr_status st = w->be->ops->weight_upload(w->be, &host, out, L->err);
    if (st != VR_OK) return vr_error_wrap(L->err, "loading %s", name);
    if (w->n_uploaded == w->cap_uploaded) {
        int cap = w->cap_uploaded ? w->cap_uploaded * 2 : 64;
        vr_tensor **n = realloc(w->uploaded, (size_t)cap * sizeof *n);
        if (!n) return vr_error_set(L->err, VR_ERR_NOMEM, "out of memory");
        w->uploaded = n;
        w->cap_uploaded = cap;
    }
    w->uploaded[w->n_uploaded++] = out;
    return VR_OK;
}

#define PARAM(dst, name, n)                                                                                  \
    do {                                                                                                     \
        if (!((dst) = param_f32(&L, name, (n), 0, 0))) goto fail;                                            \
    } while (0)
#define CHECK(expr)                                                                                          \
    do {                                                                                                     \
        if ((expr) != VR_OK) goto fail;                                                                      \
    } while (0)

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* A cheap identity of the weights: names, shapes and a sample of bytes of every tensor. */
uint64_t vr_weights_fingerprint(const vr_checkpoint *ck) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < vr_checkpoint_count(ck); i++) {
        const vr_checkpoint_entry *e = vr_checkpoint_entry_at(ck, i);
        h = fnv1a(h, e->name, strlen(e->name));
        h = fnv1a(h, e->tensor.shape, sizeof e->tensor.shape);
        size_t nb = vr_tensor_nbytes(&e->tensor);
        size_t s = nb < 64 ? nb : 64;
        h = fnv1a(h, e->tensor.data, s);
        if (nb > 64) h = fnv1a(h, (const uint8_t *)e->tensor.data + nb - 64, 64);
    }
    return h;
}

vr_status vr_weights_create(vr_backend *be, const vr_checkpoint *ck, const vr_model_config *cfg,
                            const vr_weights_select *sel, vr_weights **out, vr_error *err) {
    *out = NULL;
    vr_weights *w = calloc(1, sizeof *w);
    if (!w) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    w->cfg = *cfg;
    w->be = be;
    w->fingerprint = vr_weights_fingerprint(ck);
    loader L = {w, ck, err};
    const int C = cfg->n_embd, F = cfg->dim_ffn, V = cfg->vocab_size, A = cfg->dim_att;
    const int DM = cfg->d_mix_lora, DD = cfg->d_decay_lora;
    char name[256];
    if (sel->layer_first < 0 || sel->layer_last > cfg->n_layer || sel->layer_first > sel->layer_last) {
        vr_error_set(err, VR_ERR_INVALID, "layer range [%d, %d) is outside the model's %d layers", sel->layer_first,
                     sel->layer_last, cfg->n_layer);
        goto fail;
    }
    if (sel->with_embed || sel->layer_first == 0) {
        PARAM(w->ln0_w, "rwkv.blocks.0.ln0.weight", C);
        PARAM(w->ln0_b, "rwkv.blocks.0.ln0.bias", C);
    }
    if (sel->with_embed) CHECK(matrix(&L, "rwkv.emb.weight", V, C, &w->emb));
    w->layers = calloc((size_t)cfg->n_layer, sizeof *w->layers);
    if (!w->layers) {
        vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = sel->layer_first; i < sel->layer_last; i++) {
        vr_rwkv_layer_weights *lw = &w->layers[i];
#define NAME(fmt) (snprintf(name, sizeof name, "rwkv.blocks.%d." fmt, i), name)
        PARAM(lw->ln1_w, NAME("ln1.weight"), C);
        PARAM(lw->ln1_b, NAME("ln1.bias"), C);
        PARAM(lw->ln2_w, NAME("ln2.weight"), C);
        PARAM(lw->ln2_b, NAME("ln2.bias"), C);
        PARAM(lw->maa_x, NAME("att.time_maa_x"), C);
        PARAM(lw->maa_w, NAME("att.time_maa_w"), C);
        PARAM(lw->maa_k, NAME("att.time_maa_k"), C);
        PARAM(lw->maa_v, NAME("att.time_maa_v"), C);
        PARAM(lw->maa_r, NAME("att.time_maa_r"), C);
        PARAM(lw->maa_g, NAME("att.time_maa_g"), C);
        CHECK(param_matrix_f32(&L, NAME("att.time_maa_w1"), C, 5 * DM, 1, &lw->maa_w1));
        {
            /* time_maa_w2 [5, DM, C]: slice j is [DM, C]; we need [C, DM] */
            const vr_tensor *t = find(&L, NAME("att.time_maa_w2"), (int64_t)5 * DM * C);
            if (!t) goto fail;
            for (int j = 0; j < 5; j++) {
                vr_tensor slice = *t;
                slice.ndim = 2;
                slice.shape[0] = DM;
                slice.shape[1] = C;
                slice.data = (uint8_t *)t->data + (size_t)j * DM * C * vr_dtype_size(t->dtype);
                float *host = malloc((size_t)DM * C * sizeof(float));
                float *tr = malloc((size_t)DM * C * sizeof(float));
                float *dev = be->ops->alloc(be, (size_t)DM * C * sizeof(float));
                if (!host || !tr || !dev || remember_alloc(w, dev) != VR_OK) {
                    free(host);
                    free(tr);
                    if (dev) be->ops->free(be, dev);
                    vr_error_set(err, VR_ERR_NOMEM, "out of memory loading %s", name);
                    goto fail;
                }
                vr_to_f32(slice.dtype, slice.data, host, (size_t)DM * C);
                for (int r = 0; r < DM; r++)
                    for (int c = 0; c < C; c++) tr[(size_t)c * DM + r] = host[(size_t)r * C + c];
                be->ops->upload(be, dev, tr, (size_t)DM * C * sizeof(float));
                free(host);
                free(tr);
                lw->maa_w2[j] = (vr_tensor){.dtype = VR_F32, .device = be->device, .ndim = 2, .shape = {C, DM},
                                            .data = dev};
            }
        }
        PARAM(lw->time_decay, NAME("att.time_decay"), A);
        CHECK(param_matrix_f32(&L, NAME("att.time_decay_w1"), C, DD, 1, &lw->decay_w1));
        CHECK(param_matrix_f32(&L, NAME("att.time_decay_w2"), DD, A, 1, &lw->decay_w2));
        PARAM(lw->time_faaaa, NAME("att.time_faaaa"), A);
        CHECK(matrix(&L, NAME("att.receptance.weight"), A, C, &lw->att_r));
        CHECK(matrix(&L, NAME("att.key.weight"), A, C, &lw->att_k));
        CHECK(matrix(&L, NAME("att.value.weight"), A, C, &lw->att_v));
        CHECK(matrix(&L, NAME("att.output.weight"), C, A, &lw->att_o));
        CHECK(matrix(&L, NAME("att.gate.weight"), A, C, &lw->att_g));
        PARAM(lw->lnx_w, NAME("att.ln_x.weight"), A);
        PARAM(lw->lnx_b, NAME("att.ln_x.bias"), A);
        PARAM(lw->ffn_maa_k, NAME("ffn.time_maa_k"), C);
        PARAM(lw->ffn_maa_r, NAME("ffn.time_maa_r"), C);
        CHECK(matrix(&L, NAME("ffn.key.weight"), F, C, &lw->ffn_k));
        CHECK(matrix(&L, NAME("ffn.receptance.weight"), C, C, &lw->ffn_r));
        CHECK(matrix(&L, NAME("ffn.value.weight"), C, F, &lw->ffn_v));
#undef NAME
    }
    if (sel->with_head) {
        PARAM(w->ln_out_w, "rwkv.ln_out.weight", C);
        PARAM(w->ln_out_b, "rwkv.ln_out.bias", C);
        CHECK(matrix(&L, "rwkv.head.weight", V, C, &w->head));
    }
    if (sel->with_vision) {
        if (!cfg->has_vision) {
            vr_error_set(err, VR_ERR_INVALID, "%s: the checkpoint has no vision tower (no vit.* tensors)",
                         vr_checkpoint_path(ck));
            goto fail;
        }
        const int D = cfg->vis_hidden, I = cfg->vis_intermediate, P = cfg->patch_size, G = cfg->vis_grid;
        PARAM(w->cls_emb, "vit.vision_model.embeddings.class_embedding", D);
        CHECK(matrix(&L, "vit.vision_model.embeddings.patch_embedding.weight", D, 3 * P * P, &w->patch_w));
        PARAM(w->pos_emb, "vit.vision_model.embeddings.position_embedding.weight", (int64_t)(G * G + 1) * D);
        PARAM(w->pre_ln_w, "vit.vision_model.pre_layrnorm.weight", D);
        PARAM(w->pre_ln_b, "vit.vision_model.pre_layrnorm.bias", D);
        w->vit_layers = calloc((size_t)cfg->vis_layers, sizeof *w->vit_layers);
        if (!w->vit_layers) {
            vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int j = 0; j < cfg->vis_layers; j++) {
            vr_vit_layer_weights *vl = &w->vit_layers[j];
#define NAME(fmt) (snprintf(name, sizeof name, "vit.vision_model.encoder.layers.%d." fmt, j), name)
            CHECK(matrix(&L, NAME("self_attn.q_proj.weight"), D, D, &vl->q_w));
            CHECK(matrix(&L, NAME("self_attn.q_proj.bias"), 1, D, &vl->q_b));
            CHECK(matrix(&L, NAME("self_attn.k_proj.weight"), D, D, &vl->k_w));
            CHECK(matrix(&L, NAME("self_attn.k_proj.bias"), 1, D, &vl->k_b));
            CHECK(matrix(&L, NAME("self_attn.v_proj.weight"), D, D, &vl->v_w));
            CHECK(matrix(&L, NAME("self_attn.v_proj.bias"), 1, D, &vl->v_b));
            CHECK(matrix(&L, NAME("self_attn.out_proj.weight"), D, D, &vl->o_w));
            CHECK(matrix(&L, NAME("self_attn.out_proj.bias"), 1, D, &vl->o_b));
            PARAM(vl->ln1_w, NAME("layer_norm1.weight"), D);
            PARAM(vl->ln1_b, NAME("layer_norm1.bias"), D);
            PARAM(vl->ln2_w, NAME("layer_norm2.weight"), D);
            PARAM(vl->ln2_b, NAME("layer_norm2.bias"), D);
            CHECK(matrix(&L, NAME("mlp.fc1.weight"), I, D, &vl->fc1_w));
            CHECK(matrix(&L, NAME("mlp.fc1.bias"), 1, I, &vl->fc1_b));
            CHECK(matrix(&L, NAME("mlp.fc2.weight"), D, I, &vl->fc2_w));
            CHECK(matrix(&L, NAME("mlp.fc2.bias"), 1, D, &vl->fc2_b));
#undef NAME
        }
        CHECK(matrix(&L, "proj.weight", C, D, &w->proj));
    }
    *out = w;
    return VR_OK;
fail:
    vr_weights_free(w);
    return err ? err->code : VR_ERR_INTERNAL;
}

void vr_weights_free(vr_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_uploaded; i++) w->be->ops->weight_free(w->be, w->uploaded[i]);
    for (int i = 0; i < w->n_owned; i++) w->be->ops->free(w->be, w->owned[i]);
    free(w->uploaded);
    free(w->owned);
    free(w->layers);
    free(w->vit_layers);
    free(w);
}
