/* model/synthetic.h — random VisualRWKV weights of real shapes (RWKV-6 1.6B/3B/7B with CLIP
 * ViT-L/14-336, or the fixtures' tiny shape), written in the upstream .pth format, for tests
 * and benchmarks. Distributions follow the fixtures' generator so activations stay sane. */
#ifndef VR_SYNTHETIC_H
#define VR_SYNTHETIC_H

#include <stdint.h>

#include "common/error.h"
#include "kernels/tensor.h"

typedef struct vr_synthetic_shape {
    const char *name;
    int n_embd, n_layer, head_size, dim_ffn, vocab;
    int vis_hidden, vis_layers, vis_intermediate, image_size, patch_size;
} vr_synthetic_shape;

/* "tiny", "1b6", "3b", "7b"; NULL when unknown. */
const vr_synthetic_shape *vr_synthetic_shape_find(const char *name);

/* Writes weights of dtype (VR_BF16 or VR_F16) to path (.pth, or .safetensors when the name
 * ends so). */
vr_status vr_synthetic_write(const vr_synthetic_shape *shape, uint64_t seed, vr_dtype dtype, const char *path,
                             vr_error *err);

/* "bf16" or "f16" (NULL: bf16) → dtype, for --dtype options. */
vr_status vr_synthetic_dtype_parse(const char *s, vr_dtype *out, vr_error *err);

#endif
