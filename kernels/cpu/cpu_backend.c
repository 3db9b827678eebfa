/* kernels/cpu/cpu_backend.c — the CPU backend's op table and host memory ops.
 * Memory is plain host memory; upload/download are copies. Holds no math. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_internal.h"

static void *cpu_alloc(vr_backend *be, size_t bytes) {
    (void)be;
    return calloc(1, bytes ? bytes : 1);
}
static void cpu_free(vr_backend *be, void *p) {
    (void)be;
    free(p);
}
static void cpu_copy(vr_backend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes) memmove(dst, src, bytes);
}

static vr_status cpu_weight_upload(vr_backend *be, const vr_tensor *host, vr_tensor *out, vr_error *err) {
    (void)be;
    (void)err;
    *out = *host; /* used in place: the checkpoint mapping owns the bytes */
    out->device = VR_DEVICE_CPU;
    return VR_OK;
}

static void cpu_weight_free(vr_backend *be, vr_tensor *t) {
    (void)be;
    t->data = NULL;
}

static const vr_backend_ops cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .copy = cpu_copy,
    .weight_upload = cpu_weight_upload,
    .weight_free = cpu_weight_free,
    .linear = vr_cpu_linear,
    .embedding = vr_cpu_embedding,
    .layer_norm = vr_cpu_layer_norm,
    .group_norm = vr_cpu_group_norm,
    .token_shift = vr_cpu_token_shift,
    .ddlerp = vr_cpu_ddlerp,
    .wkv6 = vr_cpu_wkv6,
    .tanh_ = vr_cpu_tanh,
    .silu = vr_cpu_silu,
    .sigmoid = vr_cpu_sigmoid,
    .relu_sq = vr_cpu_relu_sq,
    .quick_gelu = vr_cpu_quick_gelu,
    .decay = vr_cpu_decay,
    .mul = vr_cpu_mul,
    .add = vr_cpu_add,
    .add_row = vr_cpu_add_row,
    .attention = vr_cpu_attention,
    .patch_embed = vr_cpu_patch_embed,
    .gather_rows = vr_cpu_gather_rows,
    .scatter_rows = vr_cpu_scatter_rows,
};

vr_status vr_backend_cpu_create(int threads, vr_backend **out, vr_error *err) {
    vr_backend *be = calloc(1, sizeof *be);
    if (!be) return vr_error_set(err, VR_ERR_NOMEM, "out of memory creating the CPU backend");
    if (threads > 0) omp_set_num_threads(threads);
    vr_cpu_blas_init();
    be->ops = &cpu_ops;
    be->name = "cpu";
    be->device = VR_DEVICE_CPU;
    *out = be;
    return VR_OK;
}

