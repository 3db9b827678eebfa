/* model/synthetic.c — generation of random checkpoints of real shapes. Streams nothing to the
 * network; builds every tensor in memory (bf16 or f16) and hands them to the checkpoint writer.
 * Values depend only on the seed, the tensor's position and the element index (chunks of 1 Mi
 * elements are generated in parallel, each from its own stream), never on the thread count. */
#include "model/synthetic.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"

static const vr_synthetic_shape shapes[] = {
    {"tiny", 64, 4, 16, 224, 65536, 64, 2, 128, 56, 14}, /* CLIP width 64: one head by the hidden/64 rule */
    {"1b6", 2048, 24, 64, 7168, 65536, 1024, 24, 4096, 336, 14},
    {"3b", 2560, 32, 64, 8960, 65536, 1024, 24, 4096, 336, 14},
    {"7b", 4096, 32, 64, 14336, 65536, 1024, 24, 4096, 336, 14},
};

const vr_synthetic_shape *vr_synthetic_shape_find(const char *name) {
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        if (!strcmp(shapes[i].name, name)) return &shapes[i];
    return NULL;
}

vr_status vr_synthetic_dtype_parse(const char *s, vr_dtype *out, vr_error *err) {
    if (!s || !strcmp(s, "bf16")) *out = VR_BF16;
    else if (!strcmp(s, "f16")) *out = VR_F16;
    else return vr_error_set(err, VR_ERR_INVALID, "--dtype %s: expected bf16 or f16", s);
    return VR_OK;
}

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t next_u64(rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double uniform(rng *r) { return (double)(next_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

typedef enum { DIST_UNIFORM, DIST_NORMAL } dist_kind;

typedef struct builder {
    vr_checkpoint_entry *e;
    int n, cap;
    uint64_t seed;
    vr_dtype dtype;
    vr_status st;
    vr_error *err;
} builder;

static void add(builder *b, const char *name, dist_kind kind, double p0, double p1, int ndim, int64_t d0, int64_t d1,
                int64_t d2, int64_t d3) {
    if (b->st != VR_OK) return;
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 256;
        vr_checkpoint_entry *ne = realloc(b->e, (size_t)cap * sizeof *ne);
        if (!ne) {
            b->st = vr_error_set(b->err, VR_ERR_NOMEM, "out of memory");
            return;
        }
        b->e = ne;
        b->cap = cap;
    }
    vr_checkpoint_entry *e = &b->e[b->n];
    memset(e, 0, sizeof *e);
    e->tensor.dtype = b->dtype;
    e->tensor.ndim = ndim;
    int64_t dims[4] = {d0, d1, d2, d3};
    for (int i = 0; i < ndim; i++) e->tensor.shape[i] = dims[i];
    int64_t n = vr_tensor_numel(&e->tensor);
    uint16_t *data = malloc((size_t)n * sizeof(uint16_t));
    e->name = strdup(name);
    if (!data || !e->name) {
        free(data);
        free(e->name);
        b->st = vr_error_set(b->err, VR_ERR_NOMEM, "out of memory generating %s", name);
        return;
    }
    const int64_t chunk = (int64_t)1 << 20;
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    const uint64_t tensor_seed = b->seed ^ ((uint64_t)(b->n + 1) * 0xd1b54a32d192ed03ull);
    const int f16 = b->dtype == VR_F16;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t ci = 0; ci < n_chunks; ci++) {
        rng r = {tensor_seed + (uint64_t)ci * 0x9e3779b97f4a7c15ull};
        (void)next_u64(&r);
        int64_t end = (ci + 1) * chunk < n ? (ci + 1) * chunk : n;
        for (int64_t i = ci * chunk; i < end; i++) {
            double v;
            if (kind == DIST_UNIFORM) {
                v = p0 + (p1 - p0) * uniform(&r);
            } else { /* Box-Muller */
                double u1 = uniform(&r), u2 = uniform(&r);
                v = p0 + p1 * sqrt(-2.0 * log(u1 + 1e-300)) * cos(6.283185307179586 * u2);
            }
            data[i] = f16 ? vr_f32_to_f16((float)v) : vr_f32_to_bf16((float)v);
        }
    }
    e->tensor.data = data;
    b->n++;
}

#define U(lo, hi) DIST_UNIFORM, lo, hi
#define N(mu, sd) DIST_NORMAL, mu, sd

vr_status vr_synthetic_write(const vr_synthetic_shape *s, uint64_t seed, vr_dtype dtype, const char *path,
                             vr_error *err) {
    if (dtype != VR_BF16 && dtype != VR_F16)
        return vr_error_set(err, VR_ERR_INVALID, "synthetic weights are bf16 or f16, not %s", vr_dtype_name(dtype));
    builder b = {.seed = seed * 0x9e3779b97f4a7c15ull + 1, .dtype = dtype, .st = VR_OK, .err = err};
    const int C = s->n_embd, F = s->dim_ffn, V = s->vocab, H = C / s->head_size, Nh = s->head_size;
    const int D = s->vis_hidden, I = s->vis_intermediate, P = s->patch_size, G = s->image_size / s->patch_size;
    char name[256];
    add(&b, "rwkv.emb.weight", N(0, 1), 2, V, C, 0, 0);
    for (int i = 0; i < s->n_layer; i++) {
#define NM(fmt) (snprintf(name, sizeof name, "rwkv.blocks.%d." fmt, i), name)
        add(&b, NM("ln1.weight"), U(0.6, 1.4), 1, C, 0, 0, 0);
        add(&b, NM("ln1.bias"), N(0, 0.2), 1, C, 0, 0, 0);
        add(&b, NM("ln2.weight"), U(0.6, 1.4), 1, C, 0, 0, 0);
        add(&b, NM("ln2.bias"), N(0, 0.2), 1, C, 0, 0, 0);
        if (i == 0) {
            add(&b, NM("ln0.weight"), U(0.6, 1.4), 1, C, 0, 0, 0);
            add(&b, NM("ln0.bias"), N(0, 0.2), 1, C, 0, 0, 0);
        }
        const char *maa[] = {"x", "w", "k", "v", "r", "g"};
        for (int j = 0; j < 6; j++) {
            char nm2[64];
            snprintf(nm2, sizeof nm2, "att.time_maa_%s", maa[j]);
            snprintf(name, sizeof name, "rwkv.blocks.%d.%s", i, nm2);
            add(&b, name, U(0, 1), 3, 1, 1, C, 0);
        }
        add(&b, NM("att.time_maa_w1"), N(0, 0.1), 2, C, 160, 0, 0);
        add(&b, NM("att.time_maa_w2"), N(0, 0.1), 3, 5, 32, C, 0);
        add(&b, NM("att.time_decay"), U(-3.5, 1), 3, 1, 1, C, 0);
        add(&b, NM("att.time_decay_w1"), N(0, 0.1), 2, C, 64, 0, 0);
        add(&b, NM("att.time_decay_w2"), N(0, 0.1), 2, 64, C, 0, 0);
        add(&b, NM("att.time_faaaa"), U(-0.5, 1), 2, H, Nh, 0, 0);
        double sc = 1.0 / sqrt((double)C);
        add(&b, NM("att.receptance.weight"), N(0, sc), 2, C, C, 0, 0);
        add(&b, NM("att.key.weight"), N(0, sc), 2, C, C, 0, 0);
        add(&b, NM("att.value.weight"), N(0, sc), 2, C, C, 0, 0);
        add(&b, NM("att.output.weight"), N(0, sc), 2, C, C, 0, 0);
        add(&b, NM("att.gate.weight"), N(0, sc), 2, C, C, 0, 0);
        add(&b, NM("att.ln_x.weight"), U(0.6, 1.4), 1, C, 0, 0, 0);
        add(&b, NM("att.ln_x.bias"), N(0, 0.2), 1, C, 0, 0, 0);
        add(&b, NM("ffn.time_maa_k"), U(0, 1), 3, 1, 1, C, 0);
        add(&b, NM("ffn.time_maa_r"), U(0, 1), 3, 1, 1, C, 0);
        add(&b, NM("ffn.key.weight"), N(0, sc), 2, F, C, 0, 0);
        add(&b, NM("ffn.receptance.weight"), N(0, sc), 2, C, C, 0, 0);
        add(&b, NM("ffn.value.weight"), N(0, 1.0 / sqrt((double)F)), 2, C, F, 0, 0);
#undef NM
    }
    add(&b, "rwkv.ln_out.weight", U(0.6, 1.4), 1, C, 0, 0, 0);
    add(&b, "rwkv.ln_out.bias", N(0, 0.2), 1, C, 0, 0, 0);
    add(&b, "rwkv.head.weight", N(0, 0.5), 2, V, C, 0, 0);
    add(&b, "vit.vision_model.embeddings.class_embedding", N(0, 1), 1, D, 0, 0, 0);
    add(&b, "vit.vision_model.embeddings.patch_embedding.weight", N(0, 1.0 / sqrt(3.0 * P * P)), 4, D, 3, P, P);
    add(&b, "vit.vision_model.embeddings.position_embedding.weight", N(0, 0.2), 2, G * G + 1, D, 0, 0);
    add(&b, "vit.vision_model.pre_layrnorm.weight", U(0.6, 1.4), 1, D, 0, 0, 0);
    add(&b, "vit.vision_model.pre_layrnorm.bias", N(0, 0.2), 1, D, 0, 0, 0);
    for (int j = 0; j < s->vis_layers; j++) {
#define NM(fmt) (snprintf(name, sizeof name, "vit.vision_model.encoder.layers.%d." fmt, j), name)
        double sc = 1.0 / sqrt((double)D);
        const char *proj[] = {"k_proj", "v_proj", "q_proj", "out_proj"};
        for (int p = 0; p < 4; p++) {
            snprintf(name, sizeof name, "vit.vision_model.encoder.layers.%d.self_attn.%s.weight", j, proj[p]);
            add(&b, name, N(0, sc), 2, D, D, 0, 0);
            snprintf(name, sizeof name, "vit.vision_model.encoder.layers.%d.self_attn.%s.bias", j, proj[p]);
            add(&b, name, N(0, 0.1), 1, D, 0, 0, 0);
        }
        add(&b, NM("layer_norm1.weight"), U(0.6, 1.4), 1, D, 0, 0, 0);
        add(&b, NM("layer_norm1.bias"), N(0, 0.2), 1, D, 0, 0, 0);
        add(&b, NM("mlp.fc1.weight"), N(0, sc), 2, I, D, 0, 0);
        add(&b, NM("mlp.fc1.bias"), N(0, 0.1), 1, I, 0, 0, 0);
        add(&b, NM("mlp.fc2.weight"), N(0, 1.0 / sqrt((double)I)), 2, D, I, 0, 0);
        add(&b, NM("mlp.fc2.bias"), N(0, 0.1), 1, D, 0, 0, 0);
        add(&b, NM("layer_norm2.weight"), U(0.6, 1.4), 1, D, 0, 0, 0);
        add(&b, NM("layer_norm2.bias"), N(0, 0.2), 1, D, 0, 0, 0);
#undef NM
    }
    add(&b, "vit.vision_model.post_layernorm.weight", U(0.6, 1.4), 1, D, 0, 0, 0);
    add(&b, "vit.vision_model.post_layernorm.bias", N(0, 0.2), 1, D, 0, 0, 0);
    add(&b, "proj.weight", N(0, 1.0 / sqrt((double)D)), 2, C, D, 0, 0);
    vr_status st = b.st;
    if (st == VR_OK) {
        size_t len = strlen(path);
        int safetensors = len > 12 && !strcmp(path + len - 12, ".safetensors");
        st = safetensors ? vr_safetensors_write(path, b.e, b.n, err) : vr_pth_write(path, b.e, b.n, err);
    }
    for (int i = 0; i < b.n; i++) {
        free(b.e[i].name);
        free(b.e[i].tensor.data);
    }
    free(b.e);
    return st;
}
