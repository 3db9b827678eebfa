/* kernels/cpu/cpu_linear.c — the CPU GEMM: y = x @ W^T with W kept in its loaded dtype.
 * Few activation rows (decode, bandwidth-bound): each weight row is read once for all of them,
 * converted to f32 as it streams in. Many rows (prefill, the ViT, compute-bound): f32 weights
 * go straight to BLAS, bf16/f16 ones are converted a block of rows at a time and handed to
 * BLAS. Never converts a whole matrix. */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/cpu_internal.h"

enum { VR_SMALL_M = 16, VR_BLOCK_ROWS = 512 };

typedef float vr_f32x8 __attribute__((vector_size(32)));     /* 8 lanes: AVX, or two SSE halves */
typedef uint16_t vr_u16x8 __attribute__((vector_size(16)));
typedef uint32_t vr_u32x8 __attribute__((vector_size(32)));

/* Weight rows are read as f32 (W_F32), bf16 (W_BF16: widened exactly, the bits move up by 16)
 * or f16 (W_F16). Vectors travel by pointer, not by value: a vector return would change the ABI
 * where AVX is off (-Wpsabi). */
enum { W_F32 = 0, W_BF16, W_F16 };

/* 8 f16 values as f32, exactly (subnormals, infinities and NaN included): the exponent and
 * mantissa bits moved into f32's place form a float 2^-112 times the value, and the multiply
 * by 2^112 is exact; a result at 2^16 or more was an infinity or NaN and gets the top
 * exponent. Branch-free, so it vectorises. */
static inline void f16x8_to_f32(vr_f32x8 *out, const uint16_t *p) {
    vr_u16x8 h;
    memcpy(&h, p, sizeof h);
    vr_u32x8 u = __builtin_convertvector(h, vr_u32x8);
    vr_u32x8 bits = (u & 0x7fffu) << 13;
    vr_f32x8 f;
    memcpy(&f, &bits, sizeof f);
    const vr_f32x8 scale = {0x1p112f, 0x1p112f, 0x1p112f, 0x1p112f, 0x1p112f, 0x1p112f, 0x1p112f, 0x1p112f};
    const vr_f32x8 infnan = {0x1p16f, 0x1p16f, 0x1p16f, 0x1p16f, 0x1p16f, 0x1p16f, 0x1p16f, 0x1p16f};
    f *= scale;
    vr_u32x8 big = (vr_u32x8)(f >= infnan); /* all ones where the f16 exponent was 31 */
    memcpy(&bits, &f, sizeof bits);
    bits |= (big & (255u << 23)) | ((u & 0x8000u) << 16);
    memcpy(out, &bits, sizeof *out);
}

/* 8 weights from element i of a row, as f32 */
static inline void load_w8(vr_f32x8 *v, const void *w, int kind, int i) {
    if (kind == W_BF16) {
        vr_u16x8 h;
        memcpy(&h, (const uint16_t *)w + i, sizeof h);
        vr_u32x8 u = __builtin_convertvector(h, vr_u32x8) << 16;
        memcpy(v, &u, sizeof *v);
    } else if (kind == W_F16) {
        f16x8_to_f32(v, (const uint16_t *)w + i);
    } else {
        memcpy(v, (const float *)w + i, sizeof *v);
    }
}

static inline float w_at(const void *w, int kind, int i) {
    if (kind == W_F32) return ((const float *)w)[i];
    if (kind == W_F16) return vr_f16_to_f32(((const uint16_t *)w)[i]);
    uint32_t u = (uint32_t)((const uint16_t *)w)[i] << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int weight_kind(vr_dtype t) { return t == VR_BF16 ? W_BF16 : t == VR_F16 ? W_F16 : W_F32; }

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
        int i = 0;
        for (; i + 8 <= k; i += 8) {
            vr_f32x8 v;
            f16x8_to_f32(&v, s + i);
            memcpy(dst + i, &v, sizeof v);
        }
        for (; i < k; i++) dst[i] = vr_f16_to_f32(s[i]);
        break;
    }
    default: memcpy(dst, (const float *)w->data + off, (size_t)k * sizeof(float)); break;
    }
}


/* The dots of up to 4 activation rows with one weight row (converted as it streams in, so the
 * conversion overlaps the memory traffic): each weight vector is loaded once for all the
 * rows. Every row's sum is made in one fixed order (lane l sums the products i = l mod 8 in
 * order, the lanes pair as ((0+4)+(1+5))+((2+6)+(3+7)), then the tail past a multiple of 8), so
 * a row's result does not depend on the rows beside it nor on how its weights were read. Rows
 * past `rows` repeat row 0 and are not written. */
static void dot_rows(const float *x, int ldx, int rows, const void *w, int kind, int k, float *out) {
    const float *xr[4];
    for (int r = 0; r < 4; r++) xr[r] = x + (size_t)(r < rows ? r : 0) * (size_t)ldx;
    vr_f32x8 acc[4] = {{0}, {0}, {0}, {0}};
    int i = 0;
    if (rows == 1) { /* decode at batch 1: bandwidth-bound, no wasted lanes */
        for (; i + 8 <= k; i += 8) {
            vr_f32x8 wv, v0;
            load_w8(&wv, w, kind, i);
            memcpy(&v0, xr[0] + i, sizeof v0);
            acc[0] += v0 * wv;
        }
    } else {
        for (; i + 8 <= k; i += 8) {
            vr_f32x8 wv, v0, v1, v2, v3;
            load_w8(&wv, w, kind, i);
            memcpy(&v0, xr[0] + i, sizeof v0);
            memcpy(&v1, xr[1] + i, sizeof v1);
            memcpy(&v2, xr[2] + i, sizeof v2);
            memcpy(&v3, xr[3] + i, sizeof v3);
            acc[0] += v0 * wv;
            acc[1] += v1 * wv;
            acc[2] += v2 * wv;
            acc[3] += v3 * wv;
        }
    }
    for (int r = 0; r < rows; r++) {
        const vr_f32x8 a = acc[r];
        float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
        for (int j = i; j < k; j++) s += xr[r][j] * w_at(w, kind, j);
        out[r] = s;
    }
}

static void linear_few_rows(const float *x, int m, int k, int ldx, const vr_tensor *w, float beta, float *y) {
    int n = (int)w->shape[0], kind = weight_kind(w->dtype);
    size_t row_bytes = (size_t)k * vr_dtype_size(w->dtype);
#pragma omp parallel for schedule(static)
    for (int j = 0; j < n; j++) {
        const void *wr = (const uint8_t *)w->data + (size_t)j * row_bytes;
        for (int i0 = 0; i0 < m; i0 += 4) {
            float d[4];
            int rows = m - i0 < 4 ? m - i0 : 4;
            dot_rows(x + (size_t)i0 * (size_t)ldx, ldx, rows, wr, kind, k, d);
            for (int r = 0; r < rows; r++) {
                float *out = y + (size_t)(i0 + r) * (size_t)n + j;
                *out = beta != 0.0f ? *out + d[r] : d[r];
            }
        }
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
