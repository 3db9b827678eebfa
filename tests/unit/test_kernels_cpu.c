/* tests/unit/test_kernels_cpu.c — the CPU backend's ops against naive double-precision
 * references: linear in every weight dtype and on every path (few rows, blocked bf16/f16,
 * f32 BLAS), every finite f16 weight read exactly on both linear paths, layer/group norm,
 * WKV-6 over several runs, token shift, scan permutations, and the f16/bf16 conversions. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kernels/backend.h"
#include "model/rwkv.h"

static uint64_t seed = 88172645463325252ull;
static float frand(void) {
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return (float)((double)(seed >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static vr_backend *cpu(void) {
    vr_backend *be = NULL;
    vr_error err = {0};
    assert_int_equal(vr_backend_cpu_create(2, &be, &err), VR_OK);
    return be;
}

static void check_linear(vr_dtype dt, int m, int k, int n, int with_bias, float beta) {
    vr_backend *be = cpu();
    float *x = malloc(sizeof(float) * (size_t)m * (k + 3));
    float *wf = malloc(sizeof(float) * (size_t)n * k);
    void *wd = malloc(vr_dtype_size(dt) * (size_t)n * k);
    float *b = malloc(sizeof(float) * (size_t)n);
    float *y = malloc(sizeof(float) * (size_t)m * n), *y0 = malloc(sizeof(float) * (size_t)m * n);
    int ldx = k + 3;
    for (int i = 0; i < m * ldx; i++) x[i] = frand();
    for (int i = 0; i < n; i++) b[i] = frand();
    for (int i = 0; i < n * k; i++) {
        float v = frand();
        if (dt == VR_BF16) {
            ((uint16_t *)wd)[i] = vr_f32_to_bf16(v);
            wf[i] = vr_bf16_to_f32(((uint16_t *)wd)[i]);
        } else if (dt == VR_F16) {
            ((uint16_t *)wd)[i] = vr_f32_to_f16(v);
            wf[i] = vr_f16_to_f32(((uint16_t *)wd)[i]);
        } else {
            ((float *)wd)[i] = v;
            wf[i] = v;
        }
    }
    for (int i = 0; i < m * n; i++) y[i] = y0[i] = frand();
    vr_tensor w = {.dtype = dt, .ndim = 2, .shape = {n, k}, .data = wd};
    vr_tensor bias = {.dtype = VR_F32, .ndim = 1, .shape = {n}, .data = b};
    be->ops->linear(be, x, m, k, ldx, &w, with_bias ? &bias : NULL, beta, y);
    double maxd = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double ref = beta != 0.0f ? y0[i * n + j] : 0.0;
            for (int q = 0; q < k; q++) ref += (double)x[i * ldx + q] * wf[j * k + q];
            if (with_bias) ref += b[j];
            double d = fabs(ref - y[i * n + j]);
            if (d > maxd) maxd = d;
        }
    if (maxd > 1e-4 * sqrt((double)k)) fail_msg("linear %s m=%d k=%d n=%d: max diff %g", vr_dtype_name(dt), m, k, n, maxd);
    /* a decode batch (few rows): each row's result is bit for bit that of the row alone, so a
     * session's tokens do not depend on who shares its step */
    for (int i = 0; m <= 16 && i < m; i++) {
        float *alone = malloc((size_t)n * sizeof(float));
        memcpy(alone, y0 + (size_t)i * n, (size_t)n * sizeof(float));
        be->ops->linear(be, x + (size_t)i * ldx, 1, k, ldx, &w, with_bias ? &bias : NULL, beta, alone);
        if (memcmp(alone, y + (size_t)i * n, (size_t)n * sizeof(float)) != 0)
            fail_msg("linear %s m=%d k=%d: row %d differs from the row alone", vr_dtype_name(dt), m, k, i);
        free(alone);
    }
    free(x);
    free(wf);
    free(wd);
    free(b);
    free(y);
    free(y0);
    vr_backend_free(be);
}

static void test_linear_paths(void **st) {
    (void)st;
    vr_dtype dts[] = {VR_F32, VR_BF16, VR_F16};
    for (int d = 0; d < 3; d++) {
        check_linear(dts[d], 1, 70, 33, 0, 0.0f);     /* decode, one row */
        check_linear(dts[d], 8, 64, 129, 1, 0.0f);    /* decode batch 8 */
        check_linear(dts[d], 40, 97, 600, 1, 0.0f);   /* prefill: blocked conversion, two blocks */
        check_linear(dts[d], 40, 64, 50, 0, 1.0f);    /* accumulate */
        check_linear(dts[d], 3, 64, 50, 0, 1.0f);
        check_linear(dts[d], 5, 75, 40, 1, 1.0f);     /* rows in fours and one; k with a tail */
        check_linear(dts[d], 16, 83, 21, 0, 0.0f);
    }
}

/* Every finite f16 weight reaches the products exactly as vr_f16_to_f32 reads it, on both
 * paths: few rows (converted as the row streams in) with one-hot activation rows, and many rows
 * (converted a block at a time for BLAS) with an identity matrix. */
static void test_f16_weights_exact(void **st) {
    (void)st;
    enum { K = 1024, N = 64 };
    uint16_t *wd = malloc(sizeof(uint16_t) * N * K);
    for (int i = 0; i < N * K; i++) {
        uint16_t h = (uint16_t)i;
        wd[i] = ((h >> 10) & 0x1f) == 0x1f ? 0 : h; /* infinities and NaN would spread through the zeros */
    }
    vr_tensor w = {.dtype = VR_F16, .ndim = 2, .shape = {N, K}, .data = wd};
    vr_backend *be = cpu();
    float *x = calloc((size_t)K * K, sizeof(float)), *y = malloc(sizeof(float) * (size_t)K * N);
    for (int i = 0; i < K; i++) x[(size_t)i * K + i] = 1.0f; /* the identity: y = W^T */
    for (int q0 = 0; q0 < K; q0 += 4) { /* few rows: 4 one-hot rows per call */
        be->ops->linear(be, x + (size_t)q0 * K, 4, K, K, &w, NULL, 0.0f, y + (size_t)q0 * N);
    }
    for (int pass = 0; pass < 2; pass++) {
        for (int q = 0; q < K; q++)
            for (int j = 0; j < N; j++) {
                float want = vr_f16_to_f32(wd[(size_t)j * K + q]), got = y[(size_t)q * N + j];
                /* bit for bit; a -0 weight sums to +0 with the other lanes' zeros */
                if (want == 0.0f ? got != 0.0f : memcmp(&want, &got, sizeof want) != 0)
                    fail_msg("%s: f16 %04x read as %a, expected %a", pass ? "many rows" : "few rows",
                             wd[(size_t)j * K + q], (double)got, (double)want);
            }
        be->ops->linear(be, x, K, K, K, &w, NULL, 0.0f, y); /* many rows: the blocked path */
    }
    free(x);
    free(y);
    free(wd);
    vr_backend_free(be);
}

static void test_conversions(void **st) {
    (void)st;
    float vals[] = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 1e-9f, 1e6f, INFINITY};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        float v = vals[i];
        float h = vr_f16_to_f32(vr_f32_to_f16(v));
        if (fabsf(v) <= 65504.0f && fabsf(v) >= 6.1035156e-05f) assert_true(fabsf(h - v) <= fabsf(v) * 1e-3f);
        if (v == 1e6f) assert_true(isinf(h));
        float b = vr_bf16_to_f32(vr_f32_to_bf16(v));
        assert_true(isinf(v) ? isinf(b) : fabsf(b - v) <= fabsf(v) * 8e-3f);
    }
    assert_true(isnan(vr_bf16_to_f32(vr_f32_to_bf16(NAN))));
    assert_true(isnan(vr_f16_to_f32(vr_f32_to_f16(NAN))));
    /* round to nearest even: 1 + 2^-8 is exactly halfway between two bf16 values */
    assert_int_equal(vr_f32_to_bf16(1.00390625f), 0x3f80);
    assert_int_equal(vr_f32_to_bf16(1.01171875f), 0x3f82);
}

static void test_norms(void **st) {
    (void)st;
    vr_backend *be = cpu();
    enum { M = 3, G = 4, S = 16, N = G * S };
    float x[M * N], y[M * N], w[N], b[N];
    for (int i = 0; i < M * N; i++) x[i] = frand() * 3 + 1;
    for (int i = 0; i < N; i++) w[i] = frand(), b[i] = frand();
    be->ops->layer_norm(be, x, M, N, w, b, 1e-5f, y);
    for (int r = 0; r < M; r++) {
        double mu = 0, var = 0;
        for (int i = 0; i < N; i++) mu += x[r * N + i];
        mu /= N;
        for (int i = 0; i < N; i++) var += (x[r * N + i] - mu) * (x[r * N + i] - mu);
        var /= N;
        for (int i = 0; i < N; i++)
            assert_true(fabs((x[r * N + i] - mu) / sqrt(var + 1e-5) * w[i] + b[i] - y[r * N + i]) < 1e-5);
    }
    be->ops->group_norm(be, x, M, G, S, w, b, 6.4e-4f, y);
    for (int r = 0; r < M; r++)
        for (int g = 0; g < G; g++) {
            const float *xs = x + r * N + g * S;
            double mu = 0, var = 0;
            for (int i = 0; i < S; i++) mu += xs[i];
            mu /= S;
            for (int i = 0; i < S; i++) var += (xs[i] - mu) * (xs[i] - mu);
            var /= S;
            for (int i = 0; i < S; i++) {
                double ref = (xs[i] - mu) / sqrt(var + 6.4e-4) * w[g * S + i] + b[g * S + i];
                assert_true(fabs(ref - y[r * N + g * S + i]) < 1e-5);
            }
        }
    vr_backend_free(be);
}

/* WKV-6 on two runs at once equals each run alone, and equals the README recurrence. */
static void test_wkv6_runs(void **st) {
    (void)st;
    vr_backend *be = cpu();
    enum { H = 2, N = 8, C = H * N, T1 = 5, T2 = 3, T = T1 + T2 };
    float r[T * C], k[T * C], v[T * C], w[T * C], u[C], y[T * C];
    for (int i = 0; i < T * C; i++) r[i] = frand(), k[i] = frand(), v[i] = frand(), w[i] = 0.5f + 0.49f * frand();
    for (int i = 0; i < C; i++) u[i] = frand();
    float *s1 = calloc(H * N * N, sizeof(float)), *s2 = calloc(H * N * N, sizeof(float));
    for (int i = 0; i < H * N * N; i++) s2[i] = frand(); /* a run that continues from a state */
    float *s2_init = malloc(sizeof(float) * H * N * N);
    memcpy(s2_init, s2, sizeof(float) * H * N * N);
    vr_run runs[2] = {{0, T1}, {T1, T2}};
    float *states[2] = {s1, s2};
    be->ops->wkv6(be, r, k, v, w, u, H, N, runs, 2, states, y);
    /* reference in double */
    for (int run = 0; run < 2; run++) {
        double S[H][N][N];
        for (int h = 0; h < H; h++)
            for (int j = 0; j < N; j++)
                for (int i = 0; i < N; i++) S[h][j][i] = run ? s2_init[(h * N + j) * N + i] : 0.0;
        for (int t = runs[run].offset; t < runs[run].offset + runs[run].len; t++) {
            for (int h = 0; h < H; h++)
                for (int i = 0; i < N; i++) {
                    double acc = 0;
                    for (int j = 0; j < N; j++) {
                        int c = h * N + j;
                        acc += r[t * C + c] * (u[c] * k[t * C + c] * v[t * C + h * N + i] + S[h][j][i]);
                    }
                    assert_true(fabs(acc - y[t * C + h * N + i]) < 1e-4);
                }
            for (int h = 0; h < H; h++)
                for (int j = 0; j < N; j++)
                    for (int i = 0; i < N; i++) {
                        int c = h * N + j;
                        S[h][j][i] = k[t * C + c] * v[t * C + h * N + i] + w[t * C + c] * S[h][j][i];
                    }
        }
        float *fin = run ? s2 : s1;
        for (int h = 0; h < H; h++)
            for (int j = 0; j < N; j++)
                for (int i = 0; i < N; i++) assert_true(fabs(S[h][j][i] - fin[(h * N + j) * N + i]) < 1e-4);
    }
    free(s1);
    free(s2);
    free(s2_init);
    vr_backend_free(be);
}

static void test_token_shift(void **st) {
    (void)st;
    vr_backend *be = cpu();
    enum { C = 4 };
    float x[3 * C], sx[3 * C], st0[C] = {1, 2, 3, 4}, st1[C] = {0};
    for (int i = 0; i < 3 * C; i++) x[i] = (float)i;
    vr_run runs[2] = {{0, 2}, {2, 1}};
    float *states[2] = {st0, st1};
    be->ops->token_shift(be, x, C, runs, 2, states, sx);
    for (int c = 0; c < C; c++) {
        assert_true(sx[c] == (float)(c + 1) - x[c]);     /* run 0 row 0: previous = its state */
        assert_true(sx[C + c] == x[c] - x[C + c]);        /* run 0 row 1 */
        assert_true(sx[2 * C + c] == 0.0f - x[2 * C + c]); /* run 1 row 0: its own (zero) state */
        assert_true(st0[c] == x[C + c] && st1[c] == x[2 * C + c]);
    }
    vr_backend_free(be);
}

/* Non-causal multi-head attention against a double-precision reference. */
static void test_attention(void **st) {
    (void)st;
    vr_backend *be = cpu();
    enum { L = 37, H = 3, HD = 8, D = H * HD };
    float *q = malloc(sizeof(float) * L * D), *k = malloc(sizeof(float) * L * D), *v = malloc(sizeof(float) * L * D);
    float *out = malloc(sizeof(float) * L * D);
    for (int i = 0; i < L * D; i++) q[i] = frand() * 2, k[i] = frand() * 2, v[i] = frand();
    be->ops->attention(be, q, k, v, L, H, HD, out);
    for (int h = 0; h < H; h++)
        for (int i = 0; i < L; i++) {
            double s[L], mx = -1e300, sum = 0;
            for (int j = 0; j < L; j++) {
                s[j] = 0;
                for (int d = 0; d < HD; d++) s[j] += (double)q[i * D + h * HD + d] * k[j * D + h * HD + d];
                if (s[j] > mx) mx = s[j];
            }
            for (int j = 0; j < L; j++) sum += (s[j] = exp(s[j] - mx));
            for (int d = 0; d < HD; d++) {
                double ref = 0;
                for (int j = 0; j < L; j++) ref += s[j] / sum * v[j * D + h * HD + d];
                if (fabs(ref - out[i * D + h * HD + d]) > 1e-5) fail_msg("attention h%d i%d d%d", h, i, d);
            }
        }
    free(q);
    free(k);
    free(v);
    free(out);
    vr_backend_free(be);
}

static void test_scan_permutations(void **st) {
    (void)st;
    int32_t p[16];
    assert_int_equal(vr_scan_permutation(VR_SCAN_UNI, 1, 16, p), 0);
    assert_int_equal(vr_scan_permutation(VR_SCAN_BI, 0, 16, p), 0);
    assert_int_equal(vr_scan_permutation(VR_SCAN_BI, 3, 16, p), 1);
    for (int j = 0; j < 16; j++) assert_int_equal(p[j], 15 - j);
    int cm[16] = {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15};
    int rcm[16] = {15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0};
    vr_scan_permutation(VR_SCAN_MULTI, 6, 16, p);
    for (int j = 0; j < 16; j++) assert_int_equal(p[j], cm[j]);
    vr_scan_permutation(VR_SCAN_MULTI, 7, 16, p);
    for (int j = 0; j < 16; j++) assert_int_equal(p[j], rcm[j]);
    vr_scan_permutation(VR_SCAN_MULTI, 5, 16, p);
    for (int j = 0; j < 16; j++) assert_int_equal(p[j], 15 - j);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_paths), cmocka_unit_test(test_f16_weights_exact), cmocka_unit_test(test_conversions), cmocka_unit_test(test_norms),
        cmocka_unit_test(test_wkv6_runs),    cmocka_unit_test(test_attention),    cmocka_unit_test(test_token_shift), cmocka_unit_test(test_scan_permutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
