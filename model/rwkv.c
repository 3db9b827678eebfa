/* model/rwkv.c — the RWKV-6 forward (README of the fixtures §8) in backend ops: ln0, time mix
 * with data-dependent token shift and decay, WKV-6, GroupNorm, gate; channel mix; head.
 * Scan modes permute a run's image patch rows before a layer and un-permute after it, which
 * is exactly the upstream flip/transpose loop. No I/O. */
#include "model/rwkv.h"

#include <stdlib.h>
#include <string.h>

#include "model/prompt.h"

vr_status vr_scan_mode_parse(const char *s, vr_scan_mode *out, vr_error *err) {
    if (!strcmp(s, "uni")) *out = VR_SCAN_UNI;
    else if (!strcmp(s, "bi")) *out = VR_SCAN_BI;
    else if (!strcmp(s, "multi")) *out = VR_SCAN_MULTI;
    else return vr_error_set(err, VR_ERR_INVALID, "unknown scan mode '%s' (expected uni, bi or multi)", s);
    return VR_OK;
}

const char *vr_scan_mode_name(vr_scan_mode m) {
    return m == VR_SCAN_UNI ? "uni" : m == VR_SCAN_BI ? "bi" : "multi";
}

int vr_scan_permutation(vr_scan_mode mode, int layer, int n, int32_t *perm) {
    int kind = 0; /* 0 identity, 1 reversed, 2 column-major, 3 reversed column-major */
    if (mode == VR_SCAN_BI) kind = layer % 2;
    else if (mode == VR_SCAN_MULTI) kind = layer % 4;
    int g = 0;
    while ((g + 1) * (g + 1) <= n) g++;
    if ((kind == 2 || kind == 3) && g * g != n) kind -= 2; /* not a square grid: no transpose */
    for (int j = 0; j < n; j++) {
        int src = kind == 1 || kind == 3 ? n - 1 - j : j;
        perm[j] = kind >= 2 ? (src % g) * g + src / g : src;
    }
    return kind != 0;
}

struct vr_workspace {
    vr_backend *be;
    float *buf[24];
    size_t cap[24];
};

vr_workspace *vr_workspace_create(vr_backend *be) {
    vr_workspace *ws = calloc(1, sizeof *ws);
    if (ws) ws->be = be;
    return ws;
}

void vr_workspace_free(vr_workspace *ws) {
    if (!ws) return;
    for (int i = 0; i < 24; i++)
        if (ws->buf[i]) ws->be->ops->free(ws->be, ws->buf[i]);
    free(ws);
}

float *vr_workspace_get(vr_workspace *ws, int slot, size_t n) {
    if (slot < 0 || slot >= 24) return NULL;
    if (ws->cap[slot] < n) {
        /* recorded steps (CUDA graphs) refer to the old buffer */
        if (ws->be->ops->graph_drop) ws->be->ops->graph_drop(ws->be);
        if (ws->buf[slot]) ws->be->ops->free(ws->be, ws->buf[slot]);
        size_t cap = n + n / 4 + 16;
        ws->buf[slot] = ws->be->ops->alloc(ws->be, cap * sizeof(float));
        ws->cap[slot] = ws->buf[slot] ? cap : 0;
    }
    return ws->buf[slot];
}

int vr_rwkv_embed_rows(const int32_t *ids, int n_ids, int n_img) {
    int rows = 0;
    for (int i = 0; i < n_ids; i++) rows += ids[i] == VR_IMAGE_TOKEN_ID ? n_img : 1;
    return rows;
}

vr_status vr_rwkv_embed(const vr_weights *w, const int32_t *ids, int n_ids, const float *image_features, int n_img,
                        float *x, vr_error *err) {
    const int C = w->cfg.n_embd, V = w->cfg.vocab_size;
    vr_backend *be = w->be;
    if (!w->emb.data) return vr_error_set(err, VR_ERR_INVALID, "these weights do not hold the embedding");
    int images = 0;
    for (int i = 0; i < n_ids; i++) {
        if (ids[i] == VR_IMAGE_TOKEN_ID) {
            if (++images > 1) return vr_error_set(err, VR_ERR_INVALID, "the prompt has more than one image placeholder");
            if (!image_features || n_img <= 0)
                return vr_error_set(err, VR_ERR_INVALID, "the prompt has an image placeholder but no image was given");
        } else if (ids[i] < 0 || ids[i] >= V) {
            return vr_error_set(err, VR_ERR_INVALID, "token id %d at position %d is outside the vocabulary [0, %d)",
                                ids[i], i, V);
        }
    }
    int row = 0, i = 0;
    while (i < n_ids) {
        if (ids[i] == VR_IMAGE_TOKEN_ID) {
            be->ops->copy(be, x + (size_t)row * C, image_features, (size_t)n_img * C * sizeof(float));
            row += n_img;
            i++;
            continue;
        }
        int j = i;
        while (j < n_ids && ids[j] != VR_IMAGE_TOKEN_ID) j++;
        be->ops->embedding(be, ids + i, j - i, &w->emb, x + (size_t)row * C);
        row += j - i;
        i = j;
    }
    return VR_OK;
}

enum {
    WS_XA, WS_SX, WS_XXX, WS_M, WS_LORA, WS_XW, WS_XK, WS_XV, WS_XR, WS_XG,
    WS_R, WS_K, WS_V, WS_G, WS_W, WS_D1, WS_Y, WS_FFK, WS_ROWS
};

/* Reorders each run's image segment into (undo = 0) or out of (undo = 1) layer's scan order. */
static void permute_runs(const vr_weights *w, vr_workspace *ws, float *x, const vr_run *runs, int n_runs,
                         const vr_scan_plan *plans, int layer, int undo) {
    if (!plans) return;
    vr_backend *be = w->be;
    const int C = w->cfg.n_embd;
    for (int i = 0; i < n_runs; i++) {
        const vr_scan_plan *p = &plans[i];
        if (p->img_start < 0 || p->mode == VR_SCAN_UNI) continue;
        int n = p->img_end - p->img_start;
        if (n <= 1 || p->img_end > runs[i].len) continue;
        int32_t *perm = malloc((size_t)n * sizeof *perm);
        if (!perm) continue;
        if (vr_scan_permutation(p->mode, layer, n, perm)) {
            float *seg = x + ((size_t)runs[i].offset + (size_t)p->img_start) * C;
            float *tmp = vr_workspace_get(ws, WS_ROWS, (size_t)n * C);
            if (!undo) {
                be->ops->gather_rows(be, seg, perm, n, C, tmp); /* tmp[j] = seg[perm[j]] */
                be->ops->copy(be, seg, tmp, (size_t)n * C * sizeof(float));
            } else {
                be->ops->copy(be, tmp, seg, (size_t)n * C * sizeof(float));
                be->ops->scatter_rows(be, tmp, perm, n, C, seg); /* seg[perm[j]] = tmp[j] */
            }
        }
        free(perm);
    }
}

/* ---- fused where the backend has it, composed otherwise (the same results) ---- */

static void linear_epi(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, vr_epilogue epi,
                       const float *aux, float *y, float *tmp) {
    const vr_backend_ops *op = be->ops;
    if (op->linear_epi) {
        op->linear_epi(be, x, m, k, ldx, w, epi, aux, y);
        return;
    }
    const int n = (int)w->shape[0];
    const size_t mn = (size_t)m * n;
    /* GATE_ADD and MUL_ADD add into y: the product goes elsewhere */
    float *s = epi == VR_EPI_GATE_ADD || epi == VR_EPI_MUL_ADD ? tmp : y;
    op->linear(be, x, m, k, ldx, w, NULL, 0.0f, s);
    switch (epi) {
    case VR_EPI_TANH: op->tanh_(be, y, mn); break;
    case VR_EPI_SILU: op->silu(be, y, mn); break;
    case VR_EPI_RELU_SQ: op->relu_sq(be, y, mn); break;
    case VR_EPI_SIGMOID: op->sigmoid(be, y, mn); break;
    case VR_EPI_DECAY: op->decay(be, y, aux, m, n, y); break;
    case VR_EPI_GATE_ADD:
        op->sigmoid(be, s, mn);
        op->mul(be, s, aux, s, mn);
        op->add(be, y, s, y, mn);
        break;
    case VR_EPI_MUL_ADD:
        op->mul(be, aux, s, s, mn);
        op->add(be, y, s, y, mn);
        break;
    }
}

/* tmp: room for m rows of the widest job, used when a GATE_ADD or MUL_ADD job is composed */
static void linear_group(vr_backend *be, int m, int k, const vr_linear_job *jobs, int n_jobs, float *tmp) {
    if (be->ops->linear_group) {
        be->ops->linear_group(be, m, k, jobs, n_jobs);
        return;
    }
    for (int j = 0; j < n_jobs; j++) {
        if (jobs[j].epi) linear_epi(be, jobs[j].x, m, k, jobs[j].ldx, jobs[j].w, jobs[j].epi, jobs[j].aux, jobs[j].y, tmp);
        else be->ops->linear(be, jobs[j].x, m, k, jobs[j].ldx, jobs[j].w, NULL, 0.0f, jobs[j].y);
    }
}

static void ddlerp_lora(vr_backend *be, const float *x, const float *sx, int m, int n, int count,
                        const float *const *maa, const float *mm, int k, int ldm, const vr_tensor *const *w, float *lora,
                        float *const *y) {
    if (be->ops->ddlerp_lora) {
        be->ops->ddlerp_lora(be, x, sx, m, n, count, maa, mm, k, ldm, w, y);
        return;
    }
    for (int j = 0; j < count; j++) {
        be->ops->linear(be, mm + (size_t)j * k, m, k, ldm, w[j], NULL, 0.0f, lora);
        be->ops->ddlerp(be, x, sx, m, n, maa[j], lora, n, y[j]);
    }
}

static void norm_shift_mix(vr_backend *be, const float *x, int m, int n, const float *ln_w, const float *ln_b,
                           float eps, const vr_run *runs, int n_runs, float *const *shift, int n_mix,
                           const float *const *maa, float *const *y, float *xa, float *sx) {
    if (be->ops->norm_shift_mix && m == n_runs) { /* decode: every run one row */
        be->ops->norm_shift_mix(be, x, m, n, ln_w, ln_b, eps, runs, n_runs, shift, n_mix, maa, y, xa, sx);
        return;
    }
    be->ops->layer_norm(be, x, m, n, ln_w, ln_b, eps, xa);
    be->ops->token_shift(be, xa, n, runs, n_runs, shift, sx);
    for (int j = 0; j < n_mix; j++) be->ops->ddlerp(be, xa, sx, m, n, maa[j], NULL, 0, y[j]);
}

static void group_norm_mul(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w,
                           const float *b, float eps, const float *g, float *y) {
    if (be->ops->group_norm_mul) {
        be->ops->group_norm_mul(be, x, m, groups, gsize, w, b, eps, g, y);
        return;
    }
    be->ops->group_norm(be, x, m, groups, gsize, w, b, eps, y);
    be->ops->mul(be, y, g, y, (size_t)m * groups * gsize);
}

static vr_status layer_forward(const vr_weights *w, vr_workspace *ws, float *x, int rows, const vr_run *runs,
                               int n_runs, vr_state *const *states, int li, vr_error *err) {
    vr_backend *be = w->be;
    const vr_backend_ops *op = be->ops;
    const vr_model_config *cfg = &w->cfg;
    const vr_rwkv_layer_weights *L = &w->layers[li];
    const int C = cfg->n_embd, A = cfg->dim_att, F = cfg->dim_ffn, H = cfg->n_head, N = cfg->head_size;
    const int DM = cfg->d_mix_lora, DD = cfg->d_decay_lora;
    const size_t RC = (size_t)rows * C, RA = (size_t)rows * A;
    if (!L->att_r.data) return vr_error_set(err, VR_ERR_INVALID, "these weights do not hold layer %d", li);

    float *xa = vr_workspace_get(ws, WS_XA, RC), *sx = vr_workspace_get(ws, WS_SX, RC);
    float *xxx = vr_workspace_get(ws, WS_XXX, RC), *m = vr_workspace_get(ws, WS_M, (size_t)rows * 5 * DM);
    float *lora = vr_workspace_get(ws, WS_LORA, RC);
    float *xw = vr_workspace_get(ws, WS_XW, RC), *xk = vr_workspace_get(ws, WS_XK, RC);
    float *xv = vr_workspace_get(ws, WS_XV, RC), *xr = vr_workspace_get(ws, WS_XR, RC);
    float *xg = vr_workspace_get(ws, WS_XG, RC);
    float *r = vr_workspace_get(ws, WS_R, RA), *k = vr_workspace_get(ws, WS_K, RA);
    float *v = vr_workspace_get(ws, WS_V, RA), *g = vr_workspace_get(ws, WS_G, RA);
    float *dw = vr_workspace_get(ws, WS_W, RA), *d1 = vr_workspace_get(ws, WS_D1, (size_t)rows * DD);
    float *y = vr_workspace_get(ws, WS_Y, RA), *ffk = vr_workspace_get(ws, WS_FFK, (size_t)rows * F);
    if (!xa || !sx || !xxx || !m || !lora || !xw || !xk || !xv || !xr || !xg || !r || !k || !v || !g || !dw || !d1 ||
        !y || !ffk)
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %d-row forward pass", rows);
    /* host-side pointer table (the CPU backend's memory is host memory; a device backend
     * receives an array of device pointers the same way) */
    float **shift = malloc((size_t)n_runs * sizeof *shift), **wkv = malloc((size_t)n_runs * sizeof *wkv);
    if (!shift || !wkv) {
        free(shift);
        free(wkv);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }

    /* time mix */
    for (int i = 0; i < n_runs; i++) shift[i] = vr_state_att_shift(states[i], li);
    const float *maa_x = L->maa_x;
    norm_shift_mix(be, x, rows, C, L->ln1_w, L->ln1_b, cfg->layer_norm_eps, runs, n_runs, shift, 1, &maa_x, &xxx, xa,
                   sx);
    linear_epi(be, xxx, rows, C, C, &L->maa_w1, VR_EPI_TANH, NULL, m, NULL);
    const float *maa[5] = {L->maa_w, L->maa_k, L->maa_v, L->maa_r, L->maa_g};
    float *mixed[5] = {xw, xk, xv, xr, xg};
    const vr_tensor *maa_w2[5] = {&L->maa_w2[0], &L->maa_w2[1], &L->maa_w2[2], &L->maa_w2[3], &L->maa_w2[4]};
    ddlerp_lora(be, xa, sx, rows, C, 5, maa, m, DM, 5 * DM, maa_w2, lora, mixed);
    const vr_linear_job att[5] = {{xr, C, &L->att_r, 0, NULL, r},
                                  {xk, C, &L->att_k, 0, NULL, k},
                                  {xv, C, &L->att_v, 0, NULL, v},
                                  {xg, C, &L->att_g, VR_EPI_SILU, NULL, g},
                                  {xw, C, &L->decay_w1, VR_EPI_TANH, NULL, d1}};
    linear_group(be, rows, C, att, 5, y); /* y is free until the WKV */
    linear_epi(be, d1, rows, DD, DD, &L->decay_w2, VR_EPI_DECAY, L->time_decay, dw, NULL);
    for (int i = 0; i < n_runs; i++) wkv[i] = vr_state_wkv(states[i], li);
    op->wkv6(be, r, k, v, dw, L->time_faaaa, H, N, runs, n_runs, wkv, y);
    group_norm_mul(be, y, rows, H, N, L->lnx_w, L->lnx_b, cfg->ln_x_eps, g, y);
    op->linear(be, y, rows, A, A, &L->att_o, NULL, 1.0f, x);

    /* channel mix */
    for (int i = 0; i < n_runs; i++) shift[i] = vr_state_ffn_shift(states[i], li);
    const float *ffn_maa[2] = {L->ffn_maa_k, L->ffn_maa_r};
    float *ffn_mixed[2] = {xk, xr};
    norm_shift_mix(be, x, rows, C, L->ln2_w, L->ln2_b, cfg->layer_norm_eps, runs, n_runs, shift, 2, ffn_maa, ffn_mixed,
                   xa, sx);
    if (op->linear_group) { /* k and sigmoid(r) in one go, then x += sigmoid(r) * v in v's epilogue */
        const vr_linear_job ffn[2] = {{xk, C, &L->ffn_k, VR_EPI_RELU_SQ, NULL, ffk},
                                      {xr, C, &L->ffn_r, VR_EPI_SIGMOID, NULL, xg}};
        op->linear_group(be, rows, C, ffn, 2);
        linear_epi(be, ffk, rows, F, F, &L->ffn_v, VR_EPI_MUL_ADD, xg, x, xv);
    } else {
        linear_epi(be, xk, rows, C, C, &L->ffn_k, VR_EPI_RELU_SQ, NULL, ffk, NULL);
        op->linear(be, ffk, rows, F, F, &L->ffn_v, NULL, 0.0f, xv);
        linear_epi(be, xr, rows, C, C, &L->ffn_r, VR_EPI_GATE_ADD, xv, x, xg); /* x += sigmoid(r) * v */
    }
    free(shift);
    free(wkv);
    return VR_OK;
}

vr_status vr_rwkv_layers(const vr_weights *w, vr_workspace *ws, float *x, const vr_run *runs, int n_runs,
                         vr_state *const *states, const vr_scan_plan *plans, int first, int last, vr_error *err) {
    if (n_runs <= 0) return VR_OK;
    int rows = 0;
    for (int i = 0; i < n_runs; i++) {
        if (runs[i].offset != rows || runs[i].len <= 0)
            return vr_error_set(err, VR_ERR_INVALID, "runs must be consecutive and non-empty");
        if (!states[i] || states[i]->layer_first > first || states[i]->layer_last < last)
            return vr_error_set(err, VR_ERR_INVALID, "run %d has no state for layers [%d, %d)", i, first, last);
        rows += runs[i].len;
    }
    const int C = w->cfg.n_embd;
    if (first == 0 && last > 0) {
        if (!w->ln0_w) return vr_error_set(err, VR_ERR_INVALID, "these weights do not hold ln0");
        w->be->ops->layer_norm(w->be, x, rows, C, w->ln0_w, w->ln0_b, w->cfg.layer_norm_eps, x);
    }
    for (int li = first; li < last; li++) {
        permute_runs(w, ws, x, runs, n_runs, plans, li, 0);
        vr_status st = layer_forward(w, ws, x, rows, runs, n_runs, states, li, err);
        if (st != VR_OK) return st;
        permute_runs(w, ws, x, runs, n_runs, plans, li, 1);
    }
    return VR_OK;
}

vr_status vr_rwkv_head(const vr_weights *w, vr_workspace *ws, const float *x, int m, float *logits, vr_error *err) {
    if (!w->head.data) return vr_error_set(err, VR_ERR_INVALID, "these weights do not hold the head");
    const int C = w->cfg.n_embd;
    float *t = vr_workspace_get(ws, WS_XA, (size_t)m * C);
    if (!t) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    w->be->ops->layer_norm(w->be, x, m, C, w->ln_out_w, w->ln_out_b, w->cfg.layer_norm_eps, t);
    w->be->ops->linear(w->be, t, m, C, C, &w->head, NULL, 0.0f, logits);
    return VR_OK;
}
