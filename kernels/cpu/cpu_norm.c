/* kernels/cpu/cpu_norm.c — LayerNorm and GroupNorm on f32 rows (biased variance, two-pass in
 * double for stability). No allocation. */
#include <math.h>

#include "kernels/cpu/cpu_internal.h"

static void norm_span(const float *x, int n, const float *w, const float *b, float eps, float *y) {
    double mean = 0.0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    double var = 0.0;
    for (int i = 0; i < n; i++) {
        double d = x[i] - mean;
        var += d * d;
    }
    var /= n;
    float inv = (float)(1.0 / sqrt(var + (double)eps));
    float mu = (float)mean;
    for (int i = 0; i < n; i++) y[i] = (x[i] - mu) * inv * w[i] + b[i];
}

void vr_cpu_layer_norm(vr_backend *be, const float *x, int m, int n, const float *w, const float *b, float eps,
                       float *y) {
    (void)be;
#pragma omp parallel for schedule(static) if (m > 4)
    for (int r = 0; r < m; r++) norm_span(x + (size_t)r * (size_t)n, n, w, b, eps, y + (size_t)r * (size_t)n);
}

void vr_cpu_group_norm(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w, const float *b,
                       float eps, float *y) {
    (void)be;
    int n = groups * gsize;
#pragma omp parallel for schedule(static) if (m > 4)
    for (int r = 0; r < m; r++)
        for (int g = 0; g < groups; g++) {
            size_t off = (size_t)r * (size_t)n + (size_t)g * (size_t)gsize;
            norm_span(x + off, gsize, w + g * gsize, b + g * gsize, eps, y + off);
        }
}
