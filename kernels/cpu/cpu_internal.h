/* kernels/cpu/cpu_internal.h — the CPU backend's op functions, shared between its files.
 * Not a public interface: model/ calls them only through vr_backend_ops. */
#ifndef VR_CPU_INTERNAL_H
#define VR_CPU_INTERNAL_H

#include "kernels/backend.h"

void vr_cpu_linear(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, const vr_tensor *bias,
                   float beta, float *y);
void vr_cpu_embedding(vr_backend *be, const int32_t *ids, int n, const vr_tensor *table, float *out);

void vr_cpu_layer_norm(vr_backend *be, const float *x, int m, int n, const float *w, const float *b, float eps,
                       float *y);
void vr_cpu_group_norm(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w, const float *b,
                       float eps, float *y);
void vr_cpu_token_shift(vr_backend *be, const float *x, int n, const vr_run *runs, int n_runs,
                        float *const *shift_states, float *sx);
void vr_cpu_ddlerp(vr_backend *be, const float *x, const float *sx, int m, int n, const float *maa, const float *lora,
                   int ld_lora, float *y);
void vr_cpu_wkv6(vr_backend *be, const float *r, const float *k, const float *v, const float *w, const float *u, int H,
                 int N, const vr_run *runs, int n_runs, float *const *states, float *y);

void vr_cpu_tanh(vr_backend *be, float *x, size_t n);
void vr_cpu_silu(vr_backend *be, float *x, size_t n);
void vr_cpu_sigmoid(vr_backend *be, float *x, size_t n);
void vr_cpu_relu_sq(vr_backend *be, float *x, size_t n);
void vr_cpu_quick_gelu(vr_backend *be, float *x, size_t n);
void vr_cpu_decay(vr_backend *be, const float *x, const float *base, int m, int n, float *w);
void vr_cpu_mul(vr_backend *be, const float *a, const float *b, float *y, size_t n);
void vr_cpu_add(vr_backend *be, const float *a, const float *b, float *y, size_t n);
void vr_cpu_add_row(vr_backend *be, float *x, const float *rowvec, int m, int n);

void vr_cpu_attention(vr_backend *be, const float *q, const float *k, const float *v, int L, int heads, int hd,
                      float *out);
void vr_cpu_patch_embed(vr_backend *be, const float *pixels, int S, int P, const vr_tensor *w, float *out);
void vr_cpu_gather_rows(vr_backend *be, const float *x, const int32_t *perm, int m, int n, float *rows);
void vr_cpu_scatter_rows(vr_backend *be, const float *rows, const int32_t *perm, int m, int n, float *x);

#endif
