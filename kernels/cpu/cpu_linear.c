/* kernels/cpu/cpu_linear.c — the CPU GEMM: y = x @ W^T with W kept in its loaded dtype.
 * f32 weights go straight to BLAS; bf16/f16 weights are either read row by row into a small
 * f32 buffer (few activation rows: decode, bandwidth-bound) or converted a block of rows at a
 * time and handed to BLAS (many rows: prefill, compute-bound). Never converts a whole matrix. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_internal.h"

enum { VR_SMALL_M = 16, VR_BLOCK_ROWS = 512 };

static void row_to_f32(const vr_tensor *w, int64_t row, int k, float *dst) {
    size_t off = (size_t)row * (size_t)k;
    switch (w->dtype) {
    case VR_BF16: {
        const uint16_t *s = (const uint16_t *)w->data + off;
        uint32_t *d = (uint32_t *)dst;
        for (int i = 0; i < k; i++) d[i] = (uint32_t)s[i] << 16;
        break;
    }
    case VR_F16: {
        const uint16_t *s = (const uint16_t *)w->data + off;
        for (int i = 0; i < k; i++) dst[i] = vr_f16_to_f32(s[i]);
        break;
    }
    default: memcpy(dst, (const float *)w->data + off, (size_t)k * sizeof(float)); break;
    }
}

static float dot_f32(const float *a, const float *b, int k) {
    float acc[8] = {0};
    int i = 0;
    for (; i + 8 <= k; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[i + l] * b[i + l];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < k; i++) s += a[i] * b[i];
    return s;
}

typedef float vr_f32x8 __attribute__((vector_size(32))); /* 8 lanes: AVX, or two SSE halves */

/* by pointer, not by value: a vector return would change the ABI where AVX is off (-Wpsabi) */
static inline void load8(vr_f32x8 *v, const float *p) { memcpy(v, p, sizeof *v); }

/* dot_f32 of up to 4 activation rows with one weight row at once (each weight vector loaded once
 * for all of them: ~1.4x the rows per second at 4 to 16 rows): every row's sum is made exactly
 * as dot_f32 makes it (lane l sums the products i = l mod 8 in order, then the same pairing), so
 * a row's result does not depend on the rows beside it. Rows past `rows` repeat row 0 and are
 * not written. */
static void dot4_f32(const float *x, int ldx, int rows, const float *w, int k, float *out) {
    const float *x0 = x, *x1 = x + (size_t)(rows > 1) * (size_t)ldx, *x2 = x + (size_t)(rows > 2 ? 2 : 0) * (size_t)ldx,
                *x3 = x + (size_t)(rows > 3 ? 3 : 0) * (size_t)ldx;
    vr_f32x8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int i = 0;
    for (; i + 8 <= k; i += 8) {
        vr_f32x8 wv, v0, v1, v2, v3;
        load8(&wv, w + i);
        load8(&v0, x0 + i);
        load8(&v1, x1 + i);
        load8(&v2, x2 + i);
        load8(&v3, x3 + i);
        a0 += v0 * wv;
        a1 += v1 * wv;
        a2 += v2 * wv;
        a3 += v3 * wv;
    }
    const float *xr[4] = {x0, x1, x2, x3};
    vr_f32x8 acc[4] = {a0, a1, a2, a3};
    for (int r = 0; r < rows; r++) {
        const vr_f32x8 a = acc[r];
        float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        for (int j = i; j < k; j++) s += xr[r][j] * w[j];
        out[r] = s;
    }
}

static void linear_few_rows(const float *x, int m, int k, int ldx, const vr_tensor *w, float beta, float *y) {
    int n = (int)w->shape[0];
#pragma omp parallel
    {
        float *buf = malloc((size_t)k * sizeof(float) + 64);
#pragma omp for schedule(static)
        for (int j = 0; j < n; j++) {
            const float *wr;
            if (w->dtype == VR_F32) {
                wr = (const float *)w->data + (size_t)j * (size_t)k;
            } else {
                row_to_f32(w, j, k, buf);
                wr = buf;
            }
            if (m == 1) {
                float d = dot_f32(x, wr, k);
                y[j] = beta != 0.0f ? y[j] + d : d;
                continue;
            }
            for (int i0 = 0; i0 < m; i0 += 4) {
                float d[4];
                int rows = m - i0 < 4 ? m - i0 : 4;
                dot4_f32(x + (size_t)i0 * (size_t)ldx, ldx, rows, wr, k, d);
                for (int r = 0; r < rows; r++) {
                    float *out = y + (size_t)(i0 + r) * (size_t)n + j;
                    *out = beta != 0.0f ? *out + d[r] : d[r];
                }
            }
        }
        free(buf);
    }
}

static void linear_blocked(const float *x, int m, int k, int ldx, const vr_tensor *w, float beta, float *y) {
    int n = (int)w->shape[0];
    int block = n < VR_BLOCK_ROWS ? n : VR_BLOCK_ROWS;
    float *buf = malloc((size_t)block * (size_t)k * sizeof(float));
    for (int j0 = 0; j0 < n; j0 += block) {
        int nb = n - j0 < block ? n - j0 : block;
#pragma omp parallel for schedule(static)
        for (int j = 0; j < nb; j++) row_to_f32(w, j0 + j, k, buf + (size_t)j * (size_t)k);
        vr_cpu_sgemm(VR_CBLAS_TRANS, m, nb, k, x, ldx, buf, k, beta, y + j0, n);
    }
    free(buf);
}

void vr_cpu_linear(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, const vr_tensor *bias,
                   float beta, float *y) {
    (void)be;
    int n = (int)w->shape[0];
    if (m <= 0 || n <= 0) return;
    if (m <= VR_SMALL_M)
        linear_few_rows(x, m, k, ldx, w, beta, y);
    else if (w->dtype == VR_F32)
        vr_cpu_sgemm(VR_CBLAS_TRANS, m, n, k, x, ldx, (const float *)w->data, k, beta, y, n);
    else
        linear_blocked(x, m, k, ldx, w, beta, y);
    if (bias) {
        float *b = malloc((size_t)n * sizeof(float));
        vr_to_f32(bias->dtype, bias->data, b, (size_t)n);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) y[(size_t)i * (size_t)n + j] += b[j];
        free(b);
    }
}

void vr_cpu_embedding(vr_backend *be, const int32_t *ids, int n, const vr_tensor *table, float *out) {
    (void)be;
    int c = (int)table->shape[1];
    for (int i = 0; i < n; i++) row_to_f32(table, ids[i], c, out + (size_t)i * (size_t)c);
}
