/* kernels/cpu/cpu_elementwise.c — pointwise activations and arithmetic on f32 arrays,
 * plus row gather/scatter. No allocation. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

void vr_cpu_tanh(vr_backend *be, float *x, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
}
void vr_cpu_silu(vr_backend *be, float *x, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}
void vr_cpu_sigmoid(vr_backend *be, float *x, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] = 1.0f / (1.0f + expf(-x[i]));
}
void vr_cpu_relu_sq(vr_backend *be, float *x, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) {
        float v = x[i] > 0.0f ? x[i] : 0.0f;
        x[i] = v * v;
    }
}
void vr_cpu_quick_gelu(vr_backend *be, float *x, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) x[i] = x[i] * (1.0f / (1.0f + expf(-1.702f * x[i])));
}
void vr_cpu_mul(vr_backend *be, const float *a, const float *b, float *y, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}
void vr_cpu_add(vr_backend *be, const float *a, const float *b, float *y, size_t n) {
    (void)be;
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}
void vr_cpu_add_row(vr_backend *be, float *x, const float *rowvec, int m, int n) {
    (void)be;
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) x[(size_t)r * (size_t)n + c] += rowvec[c];
}
void vr_cpu_gather_rows(vr_backend *be, const float *x, const int32_t *perm, int m, int n, float *rows) {
    (void)be;
    for (int i = 0; i < m; i++)
        memcpy(rows + (size_t)i * (size_t)n, x + (size_t)perm[i] * (size_t)n, (size_t)n * sizeof(float));
}
void vr_cpu_scatter_rows(vr_backend *be, const float *rows, const int32_t *perm, int m, int n, float *x) {
    (void)be;
    for (int i = 0; i < m; i++)
        memcpy(x + (size_t)perm[i] * (size_t)n, rows + (size_t)i * (size_t)n, (size_t)n * sizeof(float));
}
