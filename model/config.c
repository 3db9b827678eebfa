/* model/config.c — infers a VisualRWKV model's hyper-parameters from the checkpoint's tensor
 * shapes, applies an optional model.json (fixture layout), and checks every expected tensor's
 * shape and dtype against the result. Must not read or touch tensor data; only shapes/dtypes. */
#include "model/config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"

#define VR_MAX_CONFIG_BYTES ((size_t)16 << 20)

typedef struct cfg_ctx {
    const vr_checkpoint *ck;
    const char *ckpath;
    const char *cfgpath;
    vr_error *err;
} cfg_ctx;

/* ---------------------------------------------------------------------------------------------
 * Tensor lookups */

static vr_status need(cfg_ctx *c, const char *name, int ndim, const char *purpose, const vr_tensor **out) {
    const vr_tensor *t = vr_checkpoint_find(c->ck, name);
    if (!t)
        return vr_error_set(c->err, VR_ERR_FORMAT, "%s: tensor %s is missing%s%s", c->ckpath, name,
                            purpose ? " (needed to infer " : "", purpose ? purpose : "");
    if (t->ndim != ndim) {
        char b[96];
        return vr_error_set(c->err, VR_ERR_FORMAT, "%s: tensor %s has shape %s, expected %d dimensions", c->ckpath,
                            name, vr_shape_str(t, b, sizeof b), ndim);
    }
    *out = t;
    return VR_OK;
}

/* Fits in a positive int. */
static int pos_int(int64_t v) { return v > 0 && v <= INT_MAX; }

static vr_status infer_dim(cfg_ctx *c, const char *name, int64_t v, const char *field, int *dst) {
    if (!pos_int(v))
        return vr_error_set(c->err, VR_ERR_FORMAT, "%s: tensor %s gives %s = %lld, which is not a positive size",
                            c->ckpath, name, field, (long long)v);
    *dst = (int)v;
    return VR_OK;
}

/* 1 + the largest i such that some tensor is named "<prefix><i>.…"; 0 when none. */
static int count_indexed(const vr_checkpoint *ck, const char *prefix) {
    size_t pl = strlen(prefix);
    long max = -1;
    for (int i = 0; i < vr_checkpoint_count(ck); i++) {
        const char *n = vr_checkpoint_entry_at(ck, i)->name;
        if (strncmp(n, prefix, pl) != 0) continue;
        const char *p = n + pl;
        if (*p < '0' || *p > '9') continue;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || *end != '.' || v > 100000) continue;
        if (v > max) max = v;
    }
    return (int)(max + 1);
}

static int has_prefix(const vr_checkpoint *ck, const char *prefix) {
    size_t pl = strlen(prefix);
    for (int i = 0; i < vr_checkpoint_count(ck); i++)
        if (strncmp(vr_checkpoint_entry_at(ck, i)->name, prefix, pl) == 0) return 1;
    return 0;
}

static vr_status infer(cfg_ctx *c, vr_model_config *cfg) {
    const vr_tensor *t = NULL;
    vr_status st;
#define TRY(x)                                                                                                       \
    do {                                                                                                             \
        st = (x);                                                                                                    \
        if (st != VR_OK) return st;                                                                                  \
    } while (0)
    TRY(need(c, "rwkv.emb.weight", 2, "vocab_size and n_embd)", &t));
    TRY(infer_dim(c, "rwkv.emb.weight", t->shape[0], "vocab_size", &cfg->vocab_size));
    TRY(infer_dim(c, "rwkv.emb.weight", t->shape[1], "n_embd", &cfg->n_embd));
    cfg->n_layer = count_indexed(c->ck, "rwkv.blocks.");
    if (cfg->n_layer <= 0)
        return vr_error_set(c->err, VR_ERR_FORMAT, "%s: no rwkv.blocks.<i>.* tensors; not a VisualRWKV checkpoint",
                            c->ckpath);
    TRY(need(c, "rwkv.blocks.0.att.key.weight", 2, "dim_att)", &t));
    TRY(infer_dim(c, "rwkv.blocks.0.att.key.weight", t->shape[0], "dim_att", &cfg->dim_att));
    TRY(need(c, "rwkv.blocks.0.ffn.key.weight", 2, "dim_ffn)", &t));
    TRY(infer_dim(c, "rwkv.blocks.0.ffn.key.weight", t->shape[0], "dim_ffn", &cfg->dim_ffn));
    TRY(need(c, "rwkv.blocks.0.att.time_faaaa", 2, "n_head and head_size)", &t));
    TRY(infer_dim(c, "rwkv.blocks.0.att.time_faaaa", t->shape[0], "n_head", &cfg->n_head));
    TRY(infer_dim(c, "rwkv.blocks.0.att.time_faaaa", t->shape[1], "head_size", &cfg->head_size));
    TRY(need(c, "rwkv.blocks.0.att.time_maa_w1", 2, "D_MIX_LORA)", &t));
    if (t->shape[1] % 5 != 0) {
        char b[96];
        return vr_error_set(c->err, VR_ERR_FORMAT,
                            "%s: tensor rwkv.blocks.0.att.time_maa_w1 has shape %s; its second dimension must be 5 * "
                            "D_MIX_LORA",
                            c->ckpath, vr_shape_str(t, b, sizeof b));
    }
    TRY(infer_dim(c, "rwkv.blocks.0.att.time_maa_w1", t->shape[1] / 5, "D_MIX_LORA", &cfg->d_mix_lora));
    TRY(need(c, "rwkv.blocks.0.att.time_decay_w1", 2, "D_DECAY_LORA)", &t));
    TRY(infer_dim(c, "rwkv.blocks.0.att.time_decay_w1", t->shape[1], "D_DECAY_LORA", &cfg->d_decay_lora));

    cfg->has_vision = has_prefix(c->ck, "vit.");
    if (cfg->has_vision) {
        TRY(need(c, "vit.vision_model.embeddings.class_embedding", 1, "vision hidden_size)", &t));
        TRY(infer_dim(c, "vit.vision_model.embeddings.class_embedding", t->shape[0], "vision.hidden_size",
                      &cfg->vis_hidden));
        cfg->vis_layers = count_indexed(c->ck, "vit.vision_model.encoder.layers.");
        if (cfg->vis_layers <= 0)
            return vr_error_set(c->err, VR_ERR_FORMAT, "%s: no vit.vision_model.encoder.layers.<j>.* tensors",
                                c->ckpath);
        TRY(need(c, "vit.vision_model.encoder.layers.0.mlp.fc1.weight", 2, "vision intermediate_size)", &t));
        TRY(infer_dim(c, "vit.vision_model.encoder.layers.0.mlp.fc1.weight", t->shape[0],
                      "vision.intermediate_size", &cfg->vis_intermediate));
        TRY(need(c, "vit.vision_model.embeddings.patch_embedding.weight", 4, "vision patch_size)", &t));
        TRY(infer_dim(c, "vit.vision_model.embeddings.patch_embedding.weight", t->shape[2], "vision.patch_size",
                      &cfg->patch_size));
        TRY(need(c, "vit.vision_model.embeddings.position_embedding.weight", 2, "the vision grid)", &t));
        int64_t rows = t->shape[0];
        int64_t g = rows > 1 ? (int64_t)sqrt((double)(rows - 1)) : 0;
        while (g > 0 && g * g > rows - 1) g--;
        while ((g + 1) * (g + 1) <= rows - 1) g++;
        if (g <= 0 || g * g + 1 != rows || g > 65536) {
            char b[96];
            return vr_error_set(c->err, VR_ERR_FORMAT,
                                "%s: tensor vit.vision_model.embeddings.position_embedding.weight has shape %s; its "
                                "rows must be G*G+1 (a square patch grid plus the class token)",
                                c->ckpath, vr_shape_str(t, b, sizeof b));
        }
        cfg->vis_grid = (int)g;
        if ((int64_t)cfg->vis_grid * cfg->patch_size > INT_MAX)
            return vr_error_set(c->err, VR_ERR_FORMAT, "%s: vision image size is too large", c->ckpath);
        cfg->image_size = cfg->vis_grid * cfg->patch_size;
        cfg->vis_heads = cfg->vis_hidden % 64 == 0 ? cfg->vis_hidden / 64 : 0; /* CLIP: 64-wide heads */
    }
#undef TRY
    return VR_OK;
}

/* ---------------------------------------------------------------------------------------------
 * model.json */

static vr_status json_int(cfg_ctx *c, const cJSON *obj, const char *key, const char *field, int *dst, int inferred,
                          int *given) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (given) *given = 0;
    if (!j || cJSON_IsNull(j)) return VR_OK;
    double d = j->valuedouble;
    if (!cJSON_IsNumber(j) || d != floor(d) || d < INT_MIN || d > INT_MAX)
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: %s must be an integer", c->cfgpath, field);
    int v = (int)d;
    if (inferred && v != *dst)
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: %s is %d but the checkpoint %s has %d", c->cfgpath, field, v,
                            c->ckpath, *dst);
    *dst = v;
    if (given) *given = 1;
    return VR_OK;
}

static vr_status json_float(cfg_ctx *c, const cJSON *obj, const char *key, const char *field, float *dst,
                            int *given) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (given) *given = 0;
    if (!j || cJSON_IsNull(j)) return VR_OK;
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble) || j->valuedouble < 0)
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: %s must be a non-negative number", c->cfgpath, field);
    *dst = (float)j->valuedouble;
    if (given) *given = 1;
    return VR_OK;
}

static vr_status json_vec3(cfg_ctx *c, const cJSON *obj, const char *key, const char *alias, const char *field,
                           float *dst, int positive) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j && alias) j = cJSON_GetObjectItemCaseSensitive(obj, alias);
    if (!j || cJSON_IsNull(j)) return VR_OK;
    if (!cJSON_IsArray(j) || cJSON_GetArraySize(j) != 3)
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: %s must be an array of 3 numbers", c->cfgpath, field);
    float v[3];
    for (int i = 0; i < 3; i++) {
        const cJSON *x = cJSON_GetArrayItem(j, i);
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || (positive && !(x->valuedouble > 0)))
            return vr_error_set(c->err, VR_ERR_INVALID, "%s: %s[%d] must be a %snumber", c->cfgpath, field, i,
                                positive ? "positive " : "");
        v[i] = (float)x->valuedouble;
    }
    memcpy(dst, v, sizeof v);
    return VR_OK;
}

static vr_status apply_json(cfg_ctx *c, const cJSON *root, vr_model_config *cfg) {
    vr_status st;
    int given;
#define TRY(x)                                                                                                       \
    do {                                                                                                             \
        st = (x);                                                                                                    \
        if (st != VR_OK) return st;                                                                                  \
    } while (0)
    if (!cJSON_IsObject(root))
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: the model config must be a JSON object", c->cfgpath);
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(root, "rwkv");
    if (rw) {
        if (!cJSON_IsObject(rw)) return vr_error_set(c->err, VR_ERR_INVALID, "%s: rwkv must be an object", c->cfgpath);
        TRY(json_int(c, rw, "vocab_size", "rwkv.vocab_size", &cfg->vocab_size, 1, NULL));
        TRY(json_int(c, rw, "n_embd", "rwkv.n_embd", &cfg->n_embd, 1, NULL));
        TRY(json_int(c, rw, "n_layer", "rwkv.n_layer", &cfg->n_layer, 1, NULL));
        TRY(json_int(c, rw, "dim_att", "rwkv.dim_att", &cfg->dim_att, 1, NULL));
        TRY(json_int(c, rw, "dim_ffn", "rwkv.dim_ffn", &cfg->dim_ffn, 1, NULL));
        TRY(json_int(c, rw, "head_size", "rwkv.head_size", &cfg->head_size, 1, NULL));
        TRY(json_int(c, rw, "n_head", "rwkv.n_head", &cfg->n_head, 1, NULL));
        TRY(json_int(c, rw, "D_MIX_LORA", "rwkv.D_MIX_LORA", &cfg->d_mix_lora, 1, NULL));
        TRY(json_int(c, rw, "D_DECAY_LORA", "rwkv.D_DECAY_LORA", &cfg->d_decay_lora, 1, NULL));
        int div_given, eps_given;
        TRY(json_int(c, rw, "head_size_divisor", "rwkv.head_size_divisor", &cfg->head_size_divisor, 0, &div_given));
        if (cfg->head_size_divisor <= 0)
            return vr_error_set(c->err, VR_ERR_INVALID, "%s: rwkv.head_size_divisor must be positive", c->cfgpath);
        TRY(json_float(c, rw, "ln_x_eps", "rwkv.ln_x_eps", &cfg->ln_x_eps, &eps_given));
        if (div_given && !eps_given)
            cfg->ln_x_eps = 1e-5f * (float)cfg->head_size_divisor * (float)cfg->head_size_divisor;
        TRY(json_float(c, rw, "layer_norm_eps", "rwkv.layer_norm_eps", &cfg->layer_norm_eps, NULL));
    }
    const cJSON *vis = cJSON_GetObjectItemCaseSensitive(root, "vision");
    if (vis && cfg->has_vision) {
        if (!cJSON_IsObject(vis))
            return vr_error_set(c->err, VR_ERR_INVALID, "%s: vision must be an object", c->cfgpath);
        TRY(json_int(c, vis, "hidden_size", "vision.hidden_size", &cfg->vis_hidden, 1, NULL));
        TRY(json_int(c, vis, "intermediate_size", "vision.intermediate_size", &cfg->vis_intermediate, 1, NULL));
        TRY(json_int(c, vis, "num_hidden_layers", "vision.num_hidden_layers", &cfg->vis_layers, 1, NULL));
        TRY(json_int(c, vis, "image_size", "vision.image_size", &cfg->image_size, 1, NULL));
        TRY(json_int(c, vis, "patch_size", "vision.patch_size", &cfg->patch_size, 1, NULL));
        TRY(json_int(c, vis, "grid", "vision.grid", &cfg->vis_grid, 1, NULL));
        int np = cfg->vis_grid * cfg->vis_grid, npos = np + 1, nch = 3;
        TRY(json_int(c, vis, "num_patches", "vision.num_patches", &np, 1, NULL));
        TRY(json_int(c, vis, "num_positions", "vision.num_positions", &npos, 1, NULL));
        TRY(json_int(c, vis, "num_channels", "vision.num_channels", &nch, 1, NULL));
        int heads = cfg->vis_heads, heads_given, alias_given;
        TRY(json_int(c, vis, "num_attention_heads", "vision.num_attention_heads", &heads, 0, &heads_given));
        int alias = heads;
        TRY(json_int(c, vis, "vision_heads", "vision.vision_heads", &alias, 0, &alias_given));
        if (heads_given && alias_given && alias != heads)
            return vr_error_set(c->err, VR_ERR_INVALID,
                                "%s: vision.vision_heads (%d) and vision.num_attention_heads (%d) disagree",
                                c->cfgpath, alias, heads);
        if (heads_given || alias_given) {
            cfg->vis_heads = heads_given ? heads : alias;
            if (cfg->vis_heads <= 0 || cfg->vis_hidden % cfg->vis_heads != 0)
                return vr_error_set(c->err, VR_ERR_INVALID,
                                    "%s: vision.num_attention_heads = %d does not divide the vision hidden size %d",
                                    c->cfgpath, cfg->vis_heads, cfg->vis_hidden);
        }
        if (cfg->vis_heads > 0) {
            int hd = cfg->vis_hidden / cfg->vis_heads;
            TRY(json_int(c, vis, "head_dim", "vision.head_dim", &hd, 1, NULL));
        }
        TRY(json_float(c, vis, "layer_norm_eps", "vision.layer_norm_eps", &cfg->vis_ln_eps, NULL));
        const cJSON *act = cJSON_GetObjectItemCaseSensitive(vis, "hidden_act");
        if (act && (!cJSON_IsString(act) || strcmp(act->valuestring, "quick_gelu") != 0))
            return vr_error_set(c->err, VR_ERR_UNSUPPORTED, "%s: vision.hidden_act must be \"quick_gelu\" (CLIP)",
                                c->cfgpath);
    }
    const cJSON *ip = cJSON_GetObjectItemCaseSensitive(root, "image_processor");
    if (ip && cfg->has_vision) {
        if (!cJSON_IsObject(ip))
            return vr_error_set(c->err, VR_ERR_INVALID, "%s: image_processor must be an object", c->cfgpath);
        TRY(json_vec3(c, ip, "image_mean", "mean", "image_processor.image_mean", cfg->image_mean, 0));
        TRY(json_vec3(c, ip, "image_std", "std", "image_processor.image_std", cfg->image_std, 1));
    }
    TRY(json_int(c, root, "grid_size", "grid_size", &cfg->grid_size, 0, NULL));
    TRY(json_int(c, root, "stop_token", "stop_token", &cfg->stop_token, 0, NULL));
    int nit = -1;
    TRY(json_int(c, root, "num_image_tokens", "num_image_tokens", &nit, 0, &given));
    if (given) cfg->num_image_tokens = nit; /* checked against grid_size after derivation */
#undef TRY
    return VR_OK;
}

static vr_status read_config(cfg_ctx *c, vr_model_config *cfg) {
    char *text = NULL;
    size_t n = 0;
    vr_status st = vr_read_file(c->cfgpath, VR_MAX_CONFIG_BYTES, &text, &n, c->err);
    if (st != VR_OK) return st;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + n ? (size_t)(end - text) : 0;
        free(text);
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: not valid JSON (near byte %zu)", c->cfgpath, at);
    }
    st = apply_json(c, root, cfg);
    cJSON_Delete(root);
    free(text);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Consistency and tensor validation */

static vr_status derive_and_check(cfg_ctx *c, vr_model_config *cfg, int nit_given) {
    const char *src = c->cfgpath ? c->cfgpath : c->ckpath;
    if ((int64_t)cfg->n_head * cfg->head_size != cfg->dim_att)
        return vr_error_set(c->err, VR_ERR_FORMAT,
                            "%s: n_head %d x head_size %d != dim_att %d (tensors rwkv.blocks.0.att.time_faaaa and "
                            "rwkv.blocks.0.att.key.weight)",
                            c->ckpath, cfg->n_head, cfg->head_size, cfg->dim_att);
    if (cfg->stop_token < 0 || cfg->stop_token >= cfg->vocab_size)
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: stop_token %d is outside the vocabulary (0..%d)", src,
                            cfg->stop_token, cfg->vocab_size - 1);
    if (!cfg->has_vision) {
        cfg->grid_size = -1;
        cfg->num_image_tokens = 0;
        return VR_OK;
    }
    if (cfg->vis_heads <= 0 || cfg->vis_hidden % cfg->vis_heads != 0)
        return vr_error_set(c->err, VR_ERR_INVALID,
                            "%s: cannot infer the vision attention heads for hidden size %d; give "
                            "vision.num_attention_heads in the model config",
                            src, cfg->vis_hidden);
    int g = cfg->grid_size, G = cfg->vis_grid, nit;
    if (g == -1)
        nit = G * G + 1;
    else if (g == 0)
        nit = 1;
    else if (g == 1)
        nit = 2;
    else if (g >= 2 && g <= G && G % g == 0)
        nit = g * g + 1;
    else
        return vr_error_set(c->err, VR_ERR_INVALID,
                            "%s: grid_size %d is not supported for a %dx%d patch grid (use -1, 0, 1 or a divisor of %d)",
                            src, g, G, G, G);
    if (nit_given && cfg->num_image_tokens != nit)
        return vr_error_set(c->err, VR_ERR_INVALID, "%s: num_image_tokens is %d but grid_size %d gives %d", src,
                            cfg->num_image_tokens, g, nit);
    cfg->num_image_tokens = nit;
    return VR_OK;
}

static int is_float(vr_dtype t) { return t == VR_F32 || t == VR_F16 || t == VR_BF16; }

/* Checks tensor `name` has shape [d0, d1, ...] (ndim dims) and a float dtype. optional: absent is fine. */
static vr_status expect(cfg_ctx *c, const char *name, int optional, int ndim, int64_t d0, int64_t d1, int64_t d2,
                        int64_t d3) {
    const vr_tensor *t = vr_checkpoint_find(c->ck, name);
    if (!t) {
        if (optional) return VR_OK;
        return vr_error_set(c->err, VR_ERR_FORMAT, "%s: tensor %s is missing", c->ckpath, name);
    }
    vr_tensor want;
    memset(&want, 0, sizeof want);
    want.ndim = ndim;
    want.shape[0] = d0, want.shape[1] = d1, want.shape[2] = d2, want.shape[3] = d3;
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == want.shape[i];
    if (!ok) {
        char a[96], b[96];
        return vr_error_set(c->err, VR_ERR_FORMAT, "%s: tensor %s has shape %s, expected %s", c->ckpath, name,
                            vr_shape_str(t, a, sizeof a), vr_shape_str(&want, b, sizeof b));
    }
    if (!is_float(t->dtype))
        return vr_error_set(c->err, VR_ERR_FORMAT, "%s: tensor %s has dtype %s, expected f32, f16 or bf16", c->ckpath,
                            name, vr_dtype_name(t->dtype));
    return VR_OK;
}

static vr_status validate_tensors(cfg_ctx *c, const vr_model_config *cfg) {
    vr_status st;
    char n[160];
    const int64_t V = cfg->vocab_size, C = cfg->n_embd, A = cfg->dim_att, F = cfg->dim_ffn;
    const int64_t H = cfg->n_head, N = cfg->head_size, DM = cfg->d_mix_lora, DD = cfg->d_decay_lora;
#define E1(name, a) E(name, 0, 1, a, 0, 0, 0)
#define E2(name, a, b) E(name, 0, 2, a, b, 0, 0)
#define E3(name, a, b, cc) E(name, 0, 3, a, b, cc, 0)
#define E(name, opt, nd, a, b, cc, d)                                                                                 \
    do {                                                                                                             \
        st = expect(c, name, opt, nd, a, b, cc, d);                                                                  \
        if (st != VR_OK) return st;                                                                                  \
    } while (0)
#define NM(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    E2("rwkv.emb.weight", V, C);
    E1("rwkv.blocks.0.ln0.weight", C);
    E1("rwkv.blocks.0.ln0.bias", C);
    for (int i = 0; i < cfg->n_layer; i++) {
        static const char *ln[] = {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"};
        for (int k = 0; k < 4; k++) E1(NM("rwkv.blocks.%d.%s", i, ln[k]), C);
        static const char *maa[] = {"x", "w", "k", "v", "r", "g"};
        for (int k = 0; k < 6; k++) E3(NM("rwkv.blocks.%d.att.time_maa_%s", i, maa[k]), 1, 1, C);
        E2(NM("rwkv.blocks.%d.att.time_maa_w1", i), C, 5 * DM);
        E3(NM("rwkv.blocks.%d.att.time_maa_w2", i), 5, DM, C);
        E3(NM("rwkv.blocks.%d.att.time_decay", i), 1, 1, A);
        E2(NM("rwkv.blocks.%d.att.time_decay_w1", i), C, DD);
        E2(NM("rwkv.blocks.%d.att.time_decay_w2", i), DD, A);
        E2(NM("rwkv.blocks.%d.att.time_faaaa", i), H, N);
        static const char *proj[] = {"receptance", "key", "value", "gate"};
        for (int k = 0; k < 4; k++) E2(NM("rwkv.blocks.%d.att.%s.weight", i, proj[k]), A, C);
        E2(NM("rwkv.blocks.%d.att.output.weight", i), C, A);
        E1(NM("rwkv.blocks.%d.att.ln_x.weight", i), A);
        E1(NM("rwkv.blocks.%d.att.ln_x.bias", i), A);
        E3(NM("rwkv.blocks.%d.ffn.time_maa_k", i), 1, 1, C);
        E3(NM("rwkv.blocks.%d.ffn.time_maa_r", i), 1, 1, C);
        E2(NM("rwkv.blocks.%d.ffn.key.weight", i), F, C);
        E2(NM("rwkv.blocks.%d.ffn.receptance.weight", i), C, C);
        E2(NM("rwkv.blocks.%d.ffn.value.weight", i), C, F);
    }
    E1("rwkv.ln_out.weight", C);
    E1("rwkv.ln_out.bias", C);
    E2("rwkv.head.weight", V, C);
    if (!cfg->has_vision) return VR_OK;
    const int64_t D = cfg->vis_hidden, I = cfg->vis_intermediate, P = cfg->patch_size, G = cfg->vis_grid;
    E1("vit.vision_model.embeddings.class_embedding", D);
    E("vit.vision_model.embeddings.patch_embedding.weight", 0, 4, D, 3, P, P);
    E2("vit.vision_model.embeddings.position_embedding.weight", G * G + 1, D);
    /* position_ids (int64 in real checkpoints) is accepted and ignored: positions are 0..L-1. */
    E1("vit.vision_model.pre_layrnorm.weight", D);
    E1("vit.vision_model.pre_layrnorm.bias", D);
    for (int j = 0; j < cfg->vis_layers; j++) {
        static const char *pr[] = {"k_proj", "v_proj", "q_proj", "out_proj"};
        for (int k = 0; k < 4; k++) {
            E2(NM("vit.vision_model.encoder.layers.%d.self_attn.%s.weight", j, pr[k]), D, D);
            E1(NM("vit.vision_model.encoder.layers.%d.self_attn.%s.bias", j, pr[k]), D);
        }
        E1(NM("vit.vision_model.encoder.layers.%d.layer_norm1.weight", j), D);
        E1(NM("vit.vision_model.encoder.layers.%d.layer_norm1.bias", j), D);
        E2(NM("vit.vision_model.encoder.layers.%d.mlp.fc1.weight", j), I, D);
        E1(NM("vit.vision_model.encoder.layers.%d.mlp.fc1.bias", j), I);
        E2(NM("vit.vision_model.encoder.layers.%d.mlp.fc2.weight", j), D, I);
        E1(NM("vit.vision_model.encoder.layers.%d.mlp.fc2.bias", j), D);
        E1(NM("vit.vision_model.encoder.layers.%d.layer_norm2.weight", j), D);
        E1(NM("vit.vision_model.encoder.layers.%d.layer_norm2.bias", j), D);
    }
    /* post_layernorm is unused by VisualRWKV: optional, but checked when present. */
    E("vit.vision_model.post_layernorm.weight", 1, 1, D, 0, 0, 0);
    E("vit.vision_model.post_layernorm.bias", 1, 1, D, 0, 0, 0);
    E2("proj.weight", C, D);
#undef E
#undef E1
#undef E2
#undef E3
#undef NM
    return VR_OK;
}

vr_status vr_config_load(const vr_checkpoint *ck, const char *config_path, vr_model_config *cfg, vr_error *err) {
    memset(cfg, 0, sizeof *cfg);
    if (!ck) return vr_error_set(err, VR_ERR_INVALID, "vr_config_load: no checkpoint given");
    cfg_ctx c = {ck, vr_checkpoint_path(ck), config_path, err};
    cfg->head_size_divisor = 8;
    cfg->ln_x_eps = 1e-5f * 8 * 8;
    cfg->layer_norm_eps = 1e-5f;
    cfg->vis_ln_eps = 1e-5f;
    cfg->grid_size = -1;
    cfg->stop_token = 261;
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memcpy(cfg->image_mean, mean, sizeof mean);
    memcpy(cfg->image_std, std, sizeof std);
    vr_status st = infer(&c, cfg);
    if (st != VR_OK) return st;
    cfg->num_image_tokens = -1;
    if (config_path) {
        st = read_config(&c, cfg);
        if (st != VR_OK) return st;
    }
    int nit_given = cfg->num_image_tokens != -1;
    st = derive_and_check(&c, cfg, nit_given);
    if (st != VR_OK) return st;
    return validate_tensors(&c, cfg);
}

/* ---------------------------------------------------------------------------------------------
 * Writing */

/* The shortest decimal that reads back as the same float (so 6.4e-4 prints as 0.00064). */
static double short_float(float f) {
    char b[40];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)f);
        double d = strtod(b, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

vr_status vr_config_write_json(const vr_model_config *cfg, const char *path, vr_error *err) {
    cJSON *root = cJSON_CreateObject();
    if (!root) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    cJSON *rw = cJSON_AddObjectToObject(root, "rwkv");
    cJSON_AddNumberToObject(rw, "vocab_size", cfg->vocab_size);
    cJSON_AddNumberToObject(rw, "n_embd", cfg->n_embd);
    cJSON_AddNumberToObject(rw, "n_layer", cfg->n_layer);
    cJSON_AddNumberToObject(rw, "dim_att", cfg->dim_att);
    cJSON_AddNumberToObject(rw, "head_size", cfg->head_size);
    cJSON_AddNumberToObject(rw, "n_head", cfg->n_head);
    cJSON_AddNumberToObject(rw, "dim_ffn", cfg->dim_ffn);
    cJSON_AddNumberToObject(rw, "head_size_divisor", cfg->head_size_divisor);
    cJSON_AddNumberToObject(rw, "ln_x_eps", short_float(cfg->ln_x_eps));
    cJSON_AddNumberToObject(rw, "layer_norm_eps", short_float(cfg->layer_norm_eps));
    cJSON_AddNumberToObject(rw, "D_MIX_LORA", cfg->d_mix_lora);
    cJSON_AddNumberToObject(rw, "D_DECAY_LORA", cfg->d_decay_lora);
    if (cfg->has_vision) {
        cJSON *v = cJSON_AddObjectToObject(root, "vision");
        cJSON_AddNumberToObject(v, "hidden_size", cfg->vis_hidden);
        cJSON_AddNumberToObject(v, "intermediate_size", cfg->vis_intermediate);
        cJSON_AddNumberToObject(v, "num_hidden_layers", cfg->vis_layers);
        cJSON_AddNumberToObject(v, "num_attention_heads", cfg->vis_heads);
        cJSON_AddNumberToObject(v, "vision_heads", cfg->vis_heads);
        cJSON_AddNumberToObject(v, "head_dim", cfg->vis_heads > 0 ? cfg->vis_hidden / cfg->vis_heads : 0);
        cJSON_AddNumberToObject(v, "image_size", cfg->image_size);
        cJSON_AddNumberToObject(v, "patch_size", cfg->patch_size);
        cJSON_AddNumberToObject(v, "num_channels", 3);
        cJSON_AddNumberToObject(v, "grid", cfg->vis_grid);
        cJSON_AddNumberToObject(v, "num_patches", cfg->vis_grid * cfg->vis_grid);
        cJSON_AddNumberToObject(v, "num_positions", cfg->vis_grid * cfg->vis_grid + 1);
        cJSON_AddNumberToObject(v, "layer_norm_eps", short_float(cfg->vis_ln_eps));
        cJSON_AddStringToObject(v, "hidden_act", "quick_gelu");
        cJSON *ip = cJSON_AddObjectToObject(root, "image_processor");
        cJSON_AddNumberToObject(ip, "shortest_edge", cfg->image_size);
        cJSON_AddNumberToObject(ip, "crop_size", cfg->image_size);
        cJSON_AddNumberToObject(ip, "rescale_factor", 1.0 / 255.0);
        cJSON *m = cJSON_AddArrayToObject(ip, "image_mean");
        cJSON *s = cJSON_AddArrayToObject(ip, "image_std");
        for (int i = 0; i < 3; i++) {
            cJSON_AddItemToArray(m, cJSON_CreateNumber(short_float(cfg->image_mean[i])));
            cJSON_AddItemToArray(s, cJSON_CreateNumber(short_float(cfg->image_std[i])));
        }
    }
    cJSON_AddNumberToObject(root, "grid_size", cfg->grid_size);
    cJSON_AddNumberToObject(root, "num_image_tokens", cfg->num_image_tokens);
    cJSON_AddNumberToObject(root, "stop_token", cfg->stop_token);
    cJSON_AddNumberToObject(root, "image_placeholder_id", -200);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        vr_status st = vr_error_set(err, VR_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        cJSON_free(text);
        return st;
    }
    size_t len = strlen(text);
    int bad = fwrite(text, 1, len, fp) != len || fputc('\n', fp) == EOF;
    bad |= fclose(fp) != 0;
    cJSON_free(text);
    if (bad) return vr_error_set(err, VR_ERR_IO, "%s: write failed", path);
    return VR_OK;
}
