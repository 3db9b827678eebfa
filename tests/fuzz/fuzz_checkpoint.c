/* tests/fuzz/fuzz_checkpoint.c — fuzz target for the checkpoint loaders (.pth zip + pickle and
 * .safetensors) and vr_config_load. Seeds are small synthetic VisualRWKV checkpoints written by
 * vr_pth_write / vr_safetensors_write, so the target runs without ../shared. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/mapped_file.h"
#include "model/checkpoint.h"
#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    if (vr_checkpoint_open_memory(data, size, "fuzz.bin", &ck, &err) != VR_OK) return 0;
    /* Every tensor view must lie inside the input (checked in elements, so a shape whose byte
     * count wraps is caught too): touch its first and last byte. */
    volatile uint8_t sink = 0;
    for (int i = 0; i < vr_checkpoint_count(ck); i++) {
        const vr_checkpoint_entry *e = vr_checkpoint_entry_at(ck, i);
        const uint8_t *p = e->tensor.data;
        int64_t numel = vr_tensor_numel(&e->tensor);
        if (!p || p < data || p > data + size || numel < 0 ||
            (uint64_t)numel > (uint64_t)(size - (size_t)(p - data)) / vr_dtype_size(e->tensor.dtype))
            abort();
        size_t nb = vr_tensor_nbytes(&e->tensor);
        if (nb) sink ^= ((const uint8_t *)e->tensor.data)[0] ^ ((const uint8_t *)e->tensor.data)[nb - 1];
        if (vr_checkpoint_find(ck, e->name) == NULL) abort();
    }
    (void)sink;
    vr_model_config cfg;
    (void)vr_config_load(ck, NULL, &cfg, &err);
    vr_checkpoint_free(ck);
    return 0;
}

/* --- seeds ------------------------------------------------------------------------------ */

typedef struct seed_model {
    vr_checkpoint_entry e[128];
    char names[128][80];
    int n;
} seed_model;

static uint16_t g_zeros[64 * 64]; /* shared (all-zero bf16) data for every tensor */

static void add(seed_model *m, const char *name, int ndim, int64_t a, int64_t b, int64_t c, int64_t d) {
    if (m->n >= 128) return;
    vr_checkpoint_entry *e = &m->e[m->n];
    snprintf(m->names[m->n], sizeof m->names[0], "%s", name);
    memset(e, 0, sizeof *e);
    e->name = m->names[m->n];
    e->tensor.dtype = VR_BF16;
    e->tensor.ndim = ndim;
    e->tensor.shape[0] = a, e->tensor.shape[1] = b, e->tensor.shape[2] = c, e->tensor.shape[3] = d;
    e->tensor.data = g_zeros;
    m->n++;
}

/* A one-layer RWKV-6 (C=8, 2 heads of 4, F=16, vocab 512) and, with vision, a one-layer CLIP
 * (hidden 64 so the heads infer as 1, patch 2, 2x2 grid). */
static void build_model(seed_model *m, int vision) {
    char n[80];
    const int V = 512, C = 8, A = 8, F = 16, H = 2, N = 4, DM = 2, DD = 4;
    m->n = 0;
    add(m, "rwkv.emb.weight", 2, V, C, 0, 0);
    add(m, "rwkv.blocks.0.ln0.weight", 1, C, 0, 0, 0);
    add(m, "rwkv.blocks.0.ln0.bias", 1, C, 0, 0, 0);
    const char *ln[] = {"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias"};
    for (int k = 0; k < 4; k++) {
        snprintf(n, sizeof n, "rwkv.blocks.0.%s", ln[k]);
        add(m, n, 1, C, 0, 0, 0);
    }
    const char *maa[] = {"x", "w", "k", "v", "r", "g"};
    for (int k = 0; k < 6; k++) {
        snprintf(n, sizeof n, "rwkv.blocks.0.att.time_maa_%s", maa[k]);
        add(m, n, 3, 1, 1, C, 0);
    }
    add(m, "rwkv.blocks.0.att.time_maa_w1", 2, C, 5 * DM, 0, 0);
    add(m, "rwkv.blocks.0.att.time_maa_w2", 3, 5, DM, C, 0);
    add(m, "rwkv.blocks.0.att.time_decay", 3, 1, 1, A, 0);
    add(m, "rwkv.blocks.0.att.time_decay_w1", 2, C, DD, 0, 0);
    add(m, "rwkv.blocks.0.att.time_decay_w2", 2, DD, A, 0, 0);
    add(m, "rwkv.blocks.0.att.time_faaaa", 2, H, N, 0, 0);
    const char *proj[] = {"receptance", "key", "value", "gate"};
    for (int k = 0; k < 4; k++) {
        snprintf(n, sizeof n, "rwkv.blocks.0.att.%s.weight", proj[k]);
        add(m, n, 2, A, C, 0, 0);
    }
    add(m, "rwkv.blocks.0.att.output.weight", 2, C, A, 0, 0);
    add(m, "rwkv.blocks.0.att.ln_x.weight", 1, A, 0, 0, 0);
    add(m, "rwkv.blocks.0.att.ln_x.bias", 1, A, 0, 0, 0);
    add(m, "rwkv.blocks.0.ffn.time_maa_k", 3, 1, 1, C, 0);
    add(m, "rwkv.blocks.0.ffn.time_maa_r", 3, 1, 1, C, 0);
    add(m, "rwkv.blocks.0.ffn.key.weight", 2, F, C, 0, 0);
    add(m, "rwkv.blocks.0.ffn.receptance.weight", 2, C, C, 0, 0);
    add(m, "rwkv.blocks.0.ffn.value.weight", 2, C, F, 0, 0);
    add(m, "rwkv.ln_out.weight", 1, C, 0, 0, 0);
    add(m, "rwkv.ln_out.bias", 1, C, 0, 0, 0);
    add(m, "rwkv.head.weight", 2, V, C, 0, 0);
    if (!vision) return;
    const int D = 64, I = 16, P = 2, G = 2;
    add(m, "vit.vision_model.embeddings.class_embedding", 1, D, 0, 0, 0);
    add(m, "vit.vision_model.embeddings.patch_embedding.weight", 4, D, 3, P, P);
    add(m, "vit.vision_model.embeddings.position_embedding.weight", 2, G * G + 1, D, 0, 0);
    add(m, "vit.vision_model.pre_layrnorm.weight", 1, D, 0, 0, 0);
    add(m, "vit.vision_model.pre_layrnorm.bias", 1, D, 0, 0, 0);
    const char *pr[] = {"k_proj", "v_proj", "q_proj", "out_proj"};
    for (int k = 0; k < 4; k++) {
        snprintf(n, sizeof n, "vit.vision_model.encoder.layers.0.self_attn.%s.weight", pr[k]);
        add(m, n, 2, D, D, 0, 0);
        snprintf(n, sizeof n, "vit.vision_model.encoder.layers.0.self_attn.%s.bias", pr[k]);
        add(m, n, 1, D, 0, 0, 0);
    }
    add(m, "vit.vision_model.encoder.layers.0.layer_norm1.weight", 1, D, 0, 0, 0);
    add(m, "vit.vision_model.encoder.layers.0.layer_norm1.bias", 1, D, 0, 0, 0);
    add(m, "vit.vision_model.encoder.layers.0.mlp.fc1.weight", 2, I, D, 0, 0);
    add(m, "vit.vision_model.encoder.layers.0.mlp.fc1.bias", 1, I, 0, 0, 0);
    add(m, "vit.vision_model.encoder.layers.0.mlp.fc2.weight", 2, D, I, 0, 0);
    add(m, "vit.vision_model.encoder.layers.0.mlp.fc2.bias", 1, D, 0, 0, 0);
    add(m, "vit.vision_model.encoder.layers.0.layer_norm2.weight", 1, D, 0, 0, 0);
    add(m, "vit.vision_model.encoder.layers.0.layer_norm2.bias", 1, D, 0, 0, 0);
    add(m, "proj.weight", 2, C, D, 0, 0);
}

static int write_and_read(const char *dir, const char *name, int pth, const seed_model *m, uint8_t **out,
                          size_t *size) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    vr_error err = {0};
    vr_status st = pth ? vr_pth_write(path, m->e, m->n, &err) : vr_safetensors_write(path, m->e, m->n, &err);
    if (st != VR_OK) {
        fprintf(stderr, "seed %s: %s\n", name, err.msg);
        return 0;
    }
    char *data = NULL;
    st = vr_read_file(path, (size_t)1 << 26, &data, size, &err);
    unlink(path);
    if (st != VR_OK) {
        fprintf(stderr, "seed %s: %s\n", name, err.msg);
        return 0;
    }
    *out = (uint8_t *)data;
    return 1;
}

int vr_fuzz_seeds(uint8_t ***seeds, size_t **sizes) {
    const char *base = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/vr_fuzz_ckpt_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) return 0;
    static seed_model m; /* large: keep it off the stack */
    *seeds = calloc(5, sizeof **seeds);
    *sizes = calloc(5, sizeof **sizes);
    int n = 0;
    build_model(&m, 0);
    n += write_and_read(dir, "text.pth", 1, &m, &(*seeds)[n], &(*sizes)[n]);
    n += write_and_read(dir, "text.safetensors", 0, &m, &(*seeds)[n], &(*sizes)[n]);
    build_model(&m, 1);
    n += write_and_read(dir, "vision.safetensors", 0, &m, &(*seeds)[n], &(*sizes)[n]);
    n += write_and_read(dir, "vision.pth", 1, &m, &(*seeds)[n], &(*sizes)[n]);
    /* one int64 tensor of a different rank, as position_ids is */
    static int64_t pos[5] = {0, 1, 2, 3, 4};
    m.n = 1;
    m.e[0].tensor.dtype = VR_I64;
    m.e[0].tensor.ndim = 2;
    m.e[0].tensor.shape[0] = 1;
    m.e[0].tensor.shape[1] = 5;
    m.e[0].tensor.data = pos;
    n += write_and_read(dir, "ids.pth", 1, &m, &(*seeds)[n], &(*sizes)[n]);
    rmdir(dir);
    return n;
}
