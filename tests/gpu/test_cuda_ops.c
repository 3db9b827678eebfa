/* tests/gpu/test_cuda_ops.c — every op of the CUDA backend against its CPU twin on random
 * inputs (fresh per check, outputs poisoned first), for f32/f16/bf16 weights, both GEMM paths
 * (GEMV for few rows, tiled cuBLAS for many, and the optional GemmEx fast path with its looser
 * tolerance), plus the device argmax. Plain C: prints one line per check and a summary; exit 0
 * all passed, 1 some failed, 77 no CUDA device. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/backend.h"
#include "model/sampler.h"

static vr_backend *cpu, *gpu;
static int failures, checks;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static float frand(float lo, float hi) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((rng >> 11) * (1.0 / 9007199254740992.0));
}
static float *rand_arr(size_t n, float lo, float hi) {
    float *a = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = frand(lo, hi);
    return a;
}
static float *dev(const float *h, size_t n) {
    float *d = gpu->ops->alloc(gpu, (n ? n : 1) * sizeof(float));
    if (!d) {
        fprintf(stderr, "FAIL: cudaMalloc of %zu floats\n", n);
        exit(1);
    }
    gpu->ops->upload(gpu, d, h, n * sizeof(float));
    return d;
}
static float *poisoned(size_t n) { /* a device buffer of NaNs: unwritten outputs show */
    float *h = malloc((n ? n : 1) * sizeof(float));
    memset(h, 0xff, (n ? n : 1) * sizeof(float));
    float *d = dev(h, n);
    free(h);
    return d;
}
static float *back(const float *d, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof(float));
    gpu->ops->download(gpu, h, d, n * sizeof(float));
    return h;
}
static float *dup(const float *a, size_t n) {
    float *b = malloc((n ? n : 1) * sizeof(float));
    memcpy(b, a, n * sizeof(float));
    return b;
}

/* |got - want| <= tol * (1 + |want|) everywhere; NaN fails */
/* got against want: the worst |got - want| / (1 + max(|want|, floor)); floor (NULL: none) is a
 * per-element size below which the error is not measured relatively (see check_linear) */
static void expect_floor(const char *what, const float *got, const float *want, const float *floor, size_t n,
                         float tol) {
    checks++;
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double size = fabs((double)want[i]);
        if (floor && floor[i] > size) size = floor[i];
        double d = fabs((double)got[i] - (double)want[i]) / (1.0 + size);
        if (!(d <= worst)) {
            worst = d;
            at = i;
            if (isnan(d)) break;
        }
    }
    vr_error err = {0};
    vr_status st = gpu->ops->sync(gpu, &err);
    int ok = worst <= tol && st == VR_OK;
    printf("%s %-48s max rel err %.3g (tol %.1g)%s%s\n", ok ? "ok  " : "FAIL", what, worst, (double)tol,
           st != VR_OK ? "  backend: " : "", st != VR_OK ? err.msg : "");
    if (!ok) {
        failures++;
        if (n) printf("     first worst at %zu: got %.9g want %.9g\n", at, (double)got[at], (double)want[at]);
    }
}

static void expect(const char *what, const float *got, const float *want, size_t n, float tol) {
    expect_floor(what, got, want, NULL, n, tol);
}

/* a weight tensor in dtype from f32 values (the values are rounded to dtype first, so both
 * backends see the same numbers) */
static void make_weight(vr_dtype dt, int rows, int cols, float *vals, vr_tensor *host) {
    size_t n = (size_t)rows * cols;
    memset(host, 0, sizeof *host);
    host->dtype = dt;
    host->ndim = 2;
    host->shape[0] = rows;
    host->shape[1] = cols;
    if (dt == VR_F32) {
        host->data = dup(vals, n);
        return;
    }
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        h[i] = dt == VR_BF16 ? vr_f32_to_bf16(vals[i]) : vr_f32_to_f16(vals[i]);
        vals[i] = dt == VR_BF16 ? vr_bf16_to_f32(h[i]) : vr_f16_to_f32(h[i]);
    }
    host->data = h;
}

static void upload_weight(vr_backend *be, const vr_tensor *host, vr_tensor *out) {
    vr_error err = {0};
    if (be->ops->weight_upload(be, host, out, &err) != VR_OK) {
        fprintf(stderr, "FAIL: weight_upload on %s: %s\n", be->name, err.msg);
        exit(1);
    }
}

static float linear_x_scale = 1.0f; /* the activations' magnitude in check_linear */

static void check_linear(vr_backend *g, const char *tag, vr_dtype dt, int m, int k, int n, int ldx, float beta,
                         int with_bias, float tol) {
    float *wv = rand_arr((size_t)n * k, -1, 1);
    vr_tensor wh, wc, wg, bh, bc, bg;
    make_weight(dt, n, k, wv, &wh);
    float *bv = rand_arr((size_t)n, -1, 1);
    make_weight(dt, n, 1, bv, &bh); /* the bias in the weight's dtype: every bias kernel runs */
    bh.ndim = 1; /* shape [n] */
    upload_weight(cpu, &wh, &wc);
    upload_weight(g, &wh, &wg);
    upload_weight(cpu, &bh, &bc);
    upload_weight(g, &bh, &bg);
    float *x = rand_arr((size_t)m * ldx, -linear_x_scale, linear_x_scale);
    float *y0 = rand_arr((size_t)m * n, -1, 1);
    float *want = dup(y0, (size_t)m * n);
    cpu->ops->linear(cpu, x, m, k, ldx, &wc, with_bias ? &bc : NULL, beta, want);
    float *dx = dev(x, (size_t)m * ldx), *dy = beta != 0.0f ? dev(y0, (size_t)m * n) : poisoned((size_t)m * n);
    g->ops->linear(g, dx, m, k, ldx, &wg, with_bias ? &bg : NULL, beta, dy);
    char what[128];
    snprintf(what, sizeof what, "linear%s %s m%d k%d n%d ldx%d beta%g%s%s", tag, vr_dtype_name(dt), m, k, n, ldx,
             (double)beta, with_bias ? " bias" : "", linear_x_scale != 1.0f ? " |x|~" : "");
    if (linear_x_scale != 1.0f)
        snprintf(what + strlen(what), sizeof what - strlen(what), "%g", (double)linear_x_scale);
    /* g may be another backend (own stream): its work must be done, and its errors shown, before
     * the download through gpu's stream */
    vr_error gerr = {0};
    if (g != gpu && g->ops->sync(g, &gerr) != VR_OK) {
        checks++;
        failures++;
        printf("FAIL %-48s backend: %s\n", what, gerr.msg);
    }
    float *got = back(dy, (size_t)m * n);
    /* activations far from 1: compare relative to their scale (|got - want| / (scale + |want|)),
     * since f32 rounding of a near-zero result is relative to the terms, not to the result */
    for (size_t i = 0; linear_x_scale != 1.0f && i < (size_t)m * n; i++) {
        got[i] /= linear_x_scale;
        want[i] /= linear_x_scale;
    }
    /* the two sides sum k products in different orders, so the rounding is relative to the size of
     * the terms, not of the sum: an output that nearly cancels (beta 0, no bias) is measured
     * against its terms' typical size, sum |x w| / sqrt(k) (a random walk of k terms; about
     * sqrt(k) / 4 here), and the tolerance grows like sqrt(k) as before */
    float *floor = malloc((size_t)m * n * sizeof *floor);
    for (int r = 0; r < m; r++) {
        for (int j = 0; j < n; j++) {
            double terms = 0;
            for (int i = 0; i < k; i++) terms += fabs((double)x[(size_t)r * ldx + i] * wv[(size_t)j * k + i]);
            floor[(size_t)r * n + j] = (float)(terms / linear_x_scale / sqrt((double)k));
        }
    }
    expect_floor(what, got, want, floor, (size_t)m * n, tol * fmaxf(1.0f, sqrtf((float)k / 256.0f)));
    free(floor);
    g->ops->weight_free(g, &wg);
    g->ops->weight_free(g, &bg);
    g->ops->free(g, dx);
    g->ops->free(g, dy);
    free(wh.data), free(bh.data), free(wv), free(bv), free(x), free(y0), free(want), free(got);
}

static void check_embedding(vr_dtype dt) {
    int V = 300, C = 96, n = 7;
    float *tv = rand_arr((size_t)V * C, -2, 2);
    vr_tensor th, tc, tg;
    make_weight(dt, V, C, tv, &th);
    upload_weight(cpu, &th, &tc);
    upload_weight(gpu, &th, &tg);
    int32_t ids[7] = {0, 299, 5, 5, 123, 1, 77};
    float *want = malloc((size_t)n * C * sizeof(float));
    cpu->ops->embedding(cpu, ids, n, &tc, want);
    float *d = poisoned((size_t)n * C);
    gpu->ops->embedding(gpu, ids, n, &tg, d);
    float *got = back(d, (size_t)n * C);
    char what[64];
    snprintf(what, sizeof what, "embedding %s", vr_dtype_name(dt));
    expect(what, got, want, (size_t)n * C, 0);
    gpu->ops->weight_free(gpu, &tg);
    gpu->ops->free(gpu, d);
    free(th.data), free(tv), free(want), free(got);
}

static void check_norms(void) {
    int m = 5;
    float *x, *w, *b, *want, *dx, *dw, *db, *got;
    for (int t = 0; t < 3; t++) { /* one warp, four, and eight (a real width) */
        int n = t == 2 ? 2048 : t ? 768 : 200;
        x = rand_arr((size_t)m * n, 2, 4), w = rand_arr((size_t)n, -1, 1), b = rand_arr((size_t)n, -1, 1);
        want = malloc((size_t)m * n * sizeof(float));
        cpu->ops->layer_norm(cpu, x, m, n, w, b, 1e-5f, want);
        dx = dev(x, (size_t)m * n), dw = dev(w, n), db = dev(b, n);
        gpu->ops->layer_norm(gpu, dx, m, n, dw, db, 1e-5f, dx); /* in place */
        got = back(dx, (size_t)m * n);
        char what[64];
        snprintf(what, sizeof what, "layer_norm n%d in place", n);
        expect(what, got, want, (size_t)m * n, 1e-5f);
        free(got), free(want);
        gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dw), gpu->ops->free(gpu, db);
        free(x), free(w), free(b);
    }

    int gs[2] = {64, 40};
    for (int t = 0; t < 2; t++) {
        int groups = 3, gsize = gs[t], nn = groups * gsize;
        x = rand_arr((size_t)m * nn, -3, 3);
        w = rand_arr((size_t)nn, -1, 1);
        b = rand_arr((size_t)nn, -1, 1);
        want = malloc((size_t)m * nn * sizeof(float));
        cpu->ops->group_norm(cpu, x, m, groups, gsize, w, b, 64e-5f, want);
        dx = dev(x, (size_t)m * nn);
        dw = dev(w, nn);
        db = dev(b, nn);
        float *dy = poisoned((size_t)m * nn);
        gpu->ops->group_norm(gpu, dx, m, groups, gsize, dw, db, 64e-5f, dy);
        got = back(dy, (size_t)m * nn);
        char what[64];
        snprintf(what, sizeof what, "group_norm 3 groups of %d", gsize);
        expect(what, got, want, (size_t)m * nn, 1e-5f);
        free(got), free(want), free(x), free(w), free(b);
        gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dw), gpu->ops->free(gpu, db), gpu->ops->free(gpu, dy);
    }
}

/* want = epi(x @ W^T) on the CPU by the ops the epilogue stands for (want holds y's old values;
 * epi 0: the plain linear) */
static void cpu_epi(int epi, const float *x, int m, int k, int ldx, const vr_tensor *wc, const float *aux, float *want) {
    int n = (int)wc->shape[0];
    size_t mn = (size_t)m * n;
    float *tmp = malloc(mn * sizeof(float));
    float *s = epi == VR_EPI_GATE_ADD || epi == VR_EPI_MUL_ADD ? tmp : want;
    cpu->ops->linear(cpu, x, m, k, ldx, wc, NULL, 0.0f, s);
    switch (epi) {
    case 0: break;
    case VR_EPI_TANH: cpu->ops->tanh_(cpu, want, mn); break;
    case VR_EPI_SILU: cpu->ops->silu(cpu, want, mn); break;
    case VR_EPI_RELU_SQ: cpu->ops->relu_sq(cpu, want, mn); break;
    case VR_EPI_SIGMOID: cpu->ops->sigmoid(cpu, want, mn); break;
    case VR_EPI_DECAY: cpu->ops->decay(cpu, want, aux, m, n, want); break;
    case VR_EPI_GATE_ADD:
        cpu->ops->sigmoid(cpu, tmp, mn);
        cpu->ops->mul(cpu, tmp, aux, tmp, mn);
        cpu->ops->add(cpu, want, tmp, want, mn);
        break;
    case VR_EPI_MUL_ADD:
        cpu->ops->mul(cpu, aux, tmp, tmp, mn);
        cpu->ops->add(cpu, want, tmp, want, mn);
        break;
    }
    free(tmp);
}

static int per_row_aux(int epi) { return epi == VR_EPI_GATE_ADD || epi == VR_EPI_MUL_ADD; }

/* The fused ops against the CPU composition of the ops they stand for. */
static void check_fused(void) {
    static const vr_dtype dts[3] = {VR_F32, VR_BF16, VR_F16}; /* f32: the model's LoRA weights */
    /* GEMV with 1, 4 and 8 rows per launch, a second chunk of rows (12), GEMM + epilogue */
    enum { NM = 5 };
    static const int ms[NM] = {1, 3, 5, 12, 33};
    if (!gpu->ops->linear_epi || !gpu->ops->linear_group || !gpu->ops->ddlerp_lora || !gpu->ops->norm_shift_mix ||
        !gpu->ops->group_norm_mul) {
        printf("note: the fused ops are off (VRWKV_CUDA_FUSE=0): not checked\n");
        return;
    }
    static const vr_epilogue epis[7] = {VR_EPI_TANH, VR_EPI_SILU, VR_EPI_RELU_SQ, VR_EPI_SIGMOID, VR_EPI_DECAY,
                                        VR_EPI_GATE_ADD, VR_EPI_MUL_ADD};
    static const char *names[7] = {"tanh", "silu", "relu_sq", "sigmoid", "decay", "gate_add", "mul_add"};
    const int k = 256, n = 300;
    for (int d = 0; d < 3; d++)
        for (int mi = 0; mi < NM; mi++)
            for (int e = 0; e < 7; e++) {
                int m = ms[mi];
                float *wv = rand_arr((size_t)n * k, -0.2f, 0.2f);
                vr_tensor wh, wc, wg;
                make_weight(dts[d], n, k, wv, &wh);
                upload_weight(cpu, &wh, &wc);
                upload_weight(gpu, &wh, &wg);
                size_t mn = (size_t)m * n, na = per_row_aux(epis[e]) ? mn : (size_t)n;
                float *x = rand_arr((size_t)m * k, -1, 1);
                float *aux = rand_arr(na, -2, 1);
                float *y0 = rand_arr(mn, -1, 1);
                float *want = dup(y0, mn);
                cpu_epi(epis[e], x, m, k, k, &wc, aux, want);
                float *dx = dev(x, (size_t)m * k), *daux = dev(aux, na);
                float *dy = dev(y0, mn);
                gpu->ops->linear_epi(gpu, dx, m, k, k, &wg, epis[e], daux, dy);
                float *got = back(dy, mn);
                char what[96];
                snprintf(what, sizeof what, "linear_epi %s %s m%d", names[e], vr_dtype_name(dts[d]), m);
                expect(what, got, want, mn, 2e-5f);
                gpu->ops->weight_free(gpu, &wg);
                gpu->ops->free(gpu, dx);
                gpu->ops->free(gpu, daux);
                gpu->ops->free(gpu, dy);
                free(wv), free(wh.data), free(x), free(aux), free(y0), free(want), free(got);
            }
    /* linear_group: five jobs of one dtype (one launch), and as a decode step has them: bf16
     * projections beside the f32 decay LoRA (one launch per dtype); job 1 reads x with a row
     * stride wider than k (variant 2: all f16, and an odd stride: job 1 takes the scalar path) */
    for (int mixed = 0; mixed < 3; mixed++)
        for (int mi = 0; mi < NM; mi++) {
            enum { J = 5 };
            static const int jn[J] = {300, 300, 64, 300, 128};
            static const int jepi[J] = {0, 0, VR_EPI_SILU, VR_EPI_TANH, VR_EPI_MUL_ADD};
            static const int jld[J] = {256, 264, 256, 256, 256};
            int m = ms[mi], ld1 = mixed == 2 ? 263 : jld[1];
            vr_tensor wh[J], wc[J], wg[J];
            float *wv[J], *x[J], *aux[J], *y0[J], *want[J], *dx[J], *daux[J], *dy[J];
            vr_linear_job jobs[J];
            for (int j = 0; j < J; j++) {
                size_t mn = (size_t)m * jn[j], na = per_row_aux(jepi[j]) ? mn : (size_t)jn[j];
                int ld = j == 1 ? ld1 : jld[j];
                vr_dtype dt = mixed == 2 ? VR_F16 : mixed == 1 && j == 3 ? VR_F32 : VR_BF16;
                wv[j] = rand_arr((size_t)jn[j] * k, -0.2f, 0.2f);
                make_weight(dt, jn[j], k, wv[j], &wh[j]);
                upload_weight(cpu, &wh[j], &wc[j]);
                upload_weight(gpu, &wh[j], &wg[j]);
                x[j] = rand_arr((size_t)m * ld, -1, 1);
                aux[j] = rand_arr(na, -2, 1);
                y0[j] = rand_arr(mn, -1, 1);
                want[j] = dup(y0[j], mn);
                cpu_epi(jepi[j], x[j], m, k, ld, &wc[j], aux[j], want[j]);
                dx[j] = dev(x[j], (size_t)m * ld);
                daux[j] = dev(aux[j], na);
                dy[j] = jepi[j] == VR_EPI_MUL_ADD ? dev(y0[j], mn) : poisoned(mn);
                jobs[j] = (vr_linear_job){dx[j], ld, &wg[j], jepi[j], daux[j], dy[j]};
            }
            gpu->ops->linear_group(gpu, m, k, jobs, J);
            for (int j = 0; j < J; j++) {
                size_t mn = (size_t)m * jn[j];
                float *got = back(dy[j], mn);
                char what[96];
                snprintf(what, sizeof what, "linear_group%s m%d job %d (n%d epi %d)",
                         mixed == 2 ? " f16" : mixed ? " mixed" : "", m, j, jn[j], jepi[j]);
                expect(what, got, want[j], mn, 2e-5f);
                free(got);
                gpu->ops->weight_free(gpu, &wg[j]);
                gpu->ops->free(gpu, dx[j]), gpu->ops->free(gpu, daux[j]), gpu->ops->free(gpu, dy[j]);
                free(wv[j]), free(wh[j].data), free(x[j]), free(aux[j]), free(y0[j]), free(want[j]);
            }
        }
    /* ddlerp_lora: for each of 5 outputs the lora linear (k = 32, its slice of the strided mm)
     * then ddlerp */
    for (int mi = 0; mi < 2 * NM; mi++) {
        enum { J = 5 };
        int m = ms[mi % NM], C = 200, K = 32, ldm = J * K;
        vr_dtype ldt = mi < NM ? VR_F32 : VR_BF16; /* f32: the model's maa_w2 */
        float *x = rand_arr((size_t)m * C, -1, 1), *sx = rand_arr((size_t)m * C, -1, 1);
        float *mm = rand_arr((size_t)m * ldm, -1, 1), *lora = malloc((size_t)m * C * sizeof(float));
        float *dx = dev(x, (size_t)m * C), *dsx = dev(sx, (size_t)m * C), *dmm = dev(mm, (size_t)m * ldm);
        vr_tensor wh[J], wc[J], wg[J];
        const vr_tensor *wgp[J];
        float *wv[J], *maa[J], *want[J], *dmaa[J], *dy[J];
        const float *dmaap[J];
        for (int j = 0; j < J; j++) {
            wv[j] = rand_arr((size_t)C * K, -0.3f, 0.3f);
            make_weight(ldt, C, K, wv[j], &wh[j]);
            upload_weight(cpu, &wh[j], &wc[j]);
            upload_weight(gpu, &wh[j], &wg[j]);
            wgp[j] = &wg[j];
            maa[j] = rand_arr((size_t)C, 0, 1);
            want[j] = malloc((size_t)m * C * sizeof(float));
            cpu->ops->linear(cpu, mm + (size_t)j * K, m, K, ldm, &wc[j], NULL, 0.0f, lora);
            cpu->ops->ddlerp(cpu, x, sx, m, C, maa[j], lora, C, want[j]);
            dmaa[j] = dev(maa[j], C);
            dmaap[j] = dmaa[j];
            dy[j] = poisoned((size_t)m * C);
        }
        gpu->ops->ddlerp_lora(gpu, dx, dsx, m, C, J, dmaap, dmm, K, ldm, wgp, dy);
        for (int j = 0; j < J; j++) {
            float *got = back(dy[j], (size_t)m * C);
            char what[64];
            snprintf(what, sizeof what, "ddlerp_lora %s m%d output %d", vr_dtype_name(ldt), m, j);
            expect(what, got, want[j], (size_t)m * C, 1e-5f);
            free(got);
            gpu->ops->weight_free(gpu, &wg[j]);
            gpu->ops->free(gpu, dmaa[j]), gpu->ops->free(gpu, dy[j]);
            free(wv[j]), free(wh[j].data), free(maa[j]), free(want[j]);
        }
        gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dsx), gpu->ops->free(gpu, dmm);
        free(x), free(sx), free(mm), free(lora);
    }
    /* norm_shift_mix (one-row runs): layer_norm, token_shift (states updated), ddlerp per mix;
     * n 200 reduces in one warp, n 2048 (a real width) in eight */
    for (int t = 0; t < 4; t++) {
        enum { R = 4 };
        int n_mix = 1 + t % 2, n = t < 2 ? 200 : 2048;
        vr_run runs[R] = {{0, 1}, {1, 1}, {2, 1}, {3, 1}};
        float *x = rand_arr((size_t)R * n, -2, 3), *w = rand_arr((size_t)n, 0.5f, 1.5f), *b = rand_arr((size_t)n, -1, 1);
        float *st_h[R], *st_d[R], *maa[2], *dmaa[2], *dy[2], *want_y[2];
        const float *dmaap[2];
        for (int i = 0; i < R; i++) {
            st_h[i] = rand_arr((size_t)n, -1, 1);
            st_d[i] = dev(st_h[i], n);
        }
        float *want_xa = malloc((size_t)R * n * sizeof(float)), *want_sx = malloc((size_t)R * n * sizeof(float));
        cpu->ops->layer_norm(cpu, x, R, n, w, b, 1e-5f, want_xa);
        cpu->ops->token_shift(cpu, want_xa, n, runs, R, st_h, want_sx);
        for (int j = 0; j < n_mix; j++) {
            maa[j] = rand_arr((size_t)n, 0, 1);
            want_y[j] = malloc((size_t)R * n * sizeof(float));
            cpu->ops->ddlerp(cpu, want_xa, want_sx, R, n, maa[j], NULL, 0, want_y[j]);
            dmaa[j] = dev(maa[j], n);
            dmaap[j] = dmaa[j];
            dy[j] = poisoned((size_t)R * n);
        }
        float *dx = dev(x, (size_t)R * n), *dw = dev(w, n), *db = dev(b, n);
        float *dxa = poisoned((size_t)R * n), *dsx = poisoned((size_t)R * n);
        gpu->ops->norm_shift_mix(gpu, dx, R, n, dw, db, 1e-5f, runs, R, st_d, n_mix, dmaap, dy, dxa, dsx);
        char what[64];
        float *got = back(dxa, (size_t)R * n);
        snprintf(what, sizeof what, "norm_shift_mix n%d %d: layer_norm", n, n_mix);
        expect(what, got, want_xa, (size_t)R * n, 1e-5f);
        free(got);
        got = back(dsx, (size_t)R * n);
        snprintf(what, sizeof what, "norm_shift_mix n%d %d: token_shift", n, n_mix);
        expect(what, got, want_sx, (size_t)R * n, 1e-5f);
        free(got);
        for (int j = 0; j < n_mix; j++) {
            got = back(dy[j], (size_t)R * n);
            snprintf(what, sizeof what, "norm_shift_mix n%d %d: ddlerp %d", n, n_mix, j);
            expect(what, got, want_y[j], (size_t)R * n, 1e-5f);
            free(got), free(maa[j]), free(want_y[j]);
            gpu->ops->free(gpu, dmaa[j]), gpu->ops->free(gpu, dy[j]);
        }
        for (int i = 0; i < R; i++) {
            got = back(st_d[i], n);
            snprintf(what, sizeof what, "norm_shift_mix n%d %d: shift state %d", n, n_mix, i);
            expect(what, got, st_h[i], n, 1e-5f);
            free(got), free(st_h[i]);
            gpu->ops->free(gpu, st_d[i]);
        }
        gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dw), gpu->ops->free(gpu, db), gpu->ops->free(gpu, dxa);
        gpu->ops->free(gpu, dsx);
        free(x), free(w), free(b), free(want_xa), free(want_sx);
    }
    /* group_norm_mul: group_norm then mul */
    {
        int m = 7, groups = 4, gsize = 64, n = groups * gsize;
        float *x = rand_arr((size_t)m * n, -3, 3), *w = rand_arr((size_t)n, 0.5f, 1.5f), *b = rand_arr((size_t)n, -1, 1);
        float *g = rand_arr((size_t)m * n, -2, 2), *want = malloc((size_t)m * n * sizeof(float));
        cpu->ops->group_norm(cpu, x, m, groups, gsize, w, b, 64e-5f, want);
        cpu->ops->mul(cpu, want, g, want, (size_t)m * n);
        float *dx = dev(x, (size_t)m * n), *dw = dev(w, n), *db = dev(b, n), *dg = dev(g, (size_t)m * n);
        gpu->ops->group_norm_mul(gpu, dx, m, groups, gsize, dw, db, 64e-5f, dg, dx); /* in place, as the model */
        float *got = back(dx, (size_t)m * n);
        expect("group_norm_mul (in place)", got, want, (size_t)m * n, 1e-5f);
        gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dw), gpu->ops->free(gpu, db), gpu->ops->free(gpu, dg);
        free(x), free(w), free(b), free(g), free(want), free(got);
    }
}

static void check_token_shift_ddlerp(void) {
    int n = 96;
    vr_run runs[3] = {{0, 5}, {5, 1}, {6, 3}};
    int rows = 9;
    float *x = rand_arr((size_t)rows * n, -1, 1);
    float *st_h[3], *st_d[3];
    for (int i = 0; i < 3; i++) {
        st_h[i] = rand_arr((size_t)n, -1, 1);
        st_d[i] = dev(st_h[i], n);
    }
    float *want = malloc((size_t)rows * n * sizeof(float));
    cpu->ops->token_shift(cpu, x, n, runs, 3, st_h, want);
    float *dx = dev(x, (size_t)rows * n), *dsx = poisoned((size_t)rows * n);
    gpu->ops->token_shift(gpu, dx, n, runs, 3, st_d, dsx);
    float *got = back(dsx, (size_t)rows * n);
    expect("token_shift 3 runs", got, want, (size_t)rows * n, 0);
    for (int i = 0; i < 3; i++) {
        float *s = back(st_d[i], n);
        expect("token_shift state after", s, st_h[i], n, 0);
        free(s);
    }
    /* ddlerp with and without lora (lora rows strided) */
    float *maa = rand_arr((size_t)n, -1, 1), *lora = rand_arr((size_t)rows * 5 * n, -1, 1);
    float *w1 = malloc((size_t)rows * n * sizeof(float)), *w2 = malloc((size_t)rows * n * sizeof(float));
    cpu->ops->ddlerp(cpu, x, want, rows, n, maa, lora + n, 5 * n, w1);
    cpu->ops->ddlerp(cpu, x, want, rows, n, maa, NULL, 0, w2);
    float *dmaa = dev(maa, n), *dl = dev(lora, (size_t)rows * 5 * n), *dy = poisoned((size_t)rows * n);
    gpu->ops->ddlerp(gpu, dx, dsx, rows, n, dmaa, dl + n, 5 * n, dy);
    float *g1 = back(dy, (size_t)rows * n);
    expect("ddlerp lora", g1, w1, (size_t)rows * n, 0);
    gpu->ops->ddlerp(gpu, dx, dsx, rows, n, dmaa, NULL, 0, dy);
    float *g2 = back(dy, (size_t)rows * n);
    expect("ddlerp", g2, w2, (size_t)rows * n, 0);
    for (int i = 0; i < 3; i++) free(st_h[i]), gpu->ops->free(gpu, st_d[i]);
    free(x), free(want), free(got), free(maa), free(lora), free(w1), free(w2), free(g1), free(g2);
    gpu->ops->free(gpu, dx), gpu->ops->free(gpu, dsx), gpu->ops->free(gpu, dmaa), gpu->ops->free(gpu, dl);
    gpu->ops->free(gpu, dy);
}

/* long: runs of 40, 1 and 17 tokens (chunks of 16 and their remainders; decode-only steps
 * take another kernel than sequences) */
static void check_wkv6(int H, int N, int long_runs) {
    vr_run runs[3] = {{0, 7}, {7, 1}, {8, 4}};
    int rows = 12;
    if (long_runs) {
        runs[0] = (vr_run){0, 40}, runs[1] = (vr_run){40, 1}, runs[2] = (vr_run){41, 17};
        rows = 58;
    }
    int C = H * N;
    size_t RC = (size_t)rows * C, SS = (size_t)H * N * N;
    float *r = rand_arr(RC, -1, 1), *k = rand_arr(RC, -1, 1), *v = rand_arr(RC, -1, 1), *w = rand_arr(RC, -2, 1);
    for (size_t i = 0; i < RC; i++) w[i] = expf(-expf(w[i]));
    float *u = rand_arr((size_t)C, -1, 1);
    float *sh[3], *sd[3];
    for (int i = 0; i < 3; i++) {
        sh[i] = rand_arr(SS, -1, 1);
        sd[i] = dev(sh[i], SS);
    }
    float *want = malloc(RC * sizeof(float));
    cpu->ops->wkv6(cpu, r, k, v, w, u, H, N, runs, 3, sh, want);
    float *dr = dev(r, RC), *dk = dev(k, RC), *dv = dev(v, RC), *dw = dev(w, RC), *du = dev(u, C);
    float *dy = poisoned(RC);
    gpu->ops->wkv6(gpu, dr, dk, dv, dw, du, H, N, runs, 3, sd, dy);
    float *got = back(dy, RC);
    char what[64];
    snprintf(what, sizeof what, "wkv6 H%d N%d%s y", H, N, long_runs ? " long runs" : "");
    expect(what, got, want, RC, 1e-5f);
    for (int i = 0; i < 3; i++) {
        float *s = back(sd[i], SS);
        snprintf(what, sizeof what, "wkv6 H%d N%d%s state %d", H, N, long_runs ? " long runs" : "", i);
        expect(what, s, sh[i], SS, 1e-5f);
        free(s);
        free(sh[i]);
        gpu->ops->free(gpu, sd[i]);
    }
    free(r), free(k), free(v), free(w), free(u), free(want), free(got);
    gpu->ops->free(gpu, dr), gpu->ops->free(gpu, dk), gpu->ops->free(gpu, dv), gpu->ops->free(gpu, dw);
    gpu->ops->free(gpu, du), gpu->ops->free(gpu, dy);
}

static void check_pointwise(void) {
    size_t n = 1000;
    const char *names[5] = {"tanh", "silu", "sigmoid", "relu_sq", "quick_gelu"};
    for (int op = 0; op < 5; op++) {
        float *x = rand_arr(n, -6, 6), *want = dup(x, n);
        float *d = dev(x, n);
        void (*c)(vr_backend *, float *, size_t) = op == 0 ? cpu->ops->tanh_ : op == 1 ? cpu->ops->silu
                                                   : op == 2 ? cpu->ops->sigmoid : op == 3 ? cpu->ops->relu_sq
                                                                                           : cpu->ops->quick_gelu;
        void (*g)(vr_backend *, float *, size_t) = op == 0 ? gpu->ops->tanh_ : op == 1 ? gpu->ops->silu
                                                   : op == 2 ? gpu->ops->sigmoid : op == 3 ? gpu->ops->relu_sq
                                                                                           : gpu->ops->quick_gelu;
        c(cpu, want, n);
        g(gpu, d, n);
        float *got = back(d, n);
        expect(names[op], got, want, n, 2e-6f);
        free(x), free(want), free(got);
        gpu->ops->free(gpu, d);
    }
    int m = 7, c = 33;
    float *a = rand_arr((size_t)m * c, -2, 2), *b = rand_arr((size_t)m * c, -2, 2), *base = rand_arr((size_t)c, -3, 1);
    float *wm = malloc((size_t)m * c * 4), *wa = malloc((size_t)m * c * 4), *wd = malloc((size_t)m * c * 4);
    cpu->ops->mul(cpu, a, b, wm, (size_t)m * c);
    cpu->ops->add(cpu, a, b, wa, (size_t)m * c);
    cpu->ops->decay(cpu, a, base, m, c, wd);
    float *da = dev(a, (size_t)m * c), *db = dev(b, (size_t)m * c), *dbase = dev(base, c), *dy = poisoned((size_t)m * c);
    gpu->ops->mul(gpu, da, db, dy, (size_t)m * c);
    float *g = back(dy, (size_t)m * c);
    expect("mul", g, wm, (size_t)m * c, 0);
    free(g);
    gpu->ops->add(gpu, da, db, dy, (size_t)m * c);
    g = back(dy, (size_t)m * c);
    expect("add", g, wa, (size_t)m * c, 0);
    free(g);
    gpu->ops->decay(gpu, da, dbase, m, c, dy);
    g = back(dy, (size_t)m * c);
    expect("decay", g, wd, (size_t)m * c, 1e-5f); /* nested expf: device vs libm ulps */
    free(g);
    cpu->ops->add_row(cpu, a, base, m, c);
    gpu->ops->add_row(gpu, da, dbase, m, c);
    g = back(da, (size_t)m * c);
    expect("add_row", g, a, (size_t)m * c, 0);
    free(g);
    /* gather / scatter with a permutation */
    int32_t perm[7] = {3, 0, 6, 1, 5, 2, 4};
    float *rows = malloc((size_t)m * c * 4);
    cpu->ops->gather_rows(cpu, b, perm, m, c, rows);
    gpu->ops->gather_rows(gpu, db, perm, m, c, dy);
    g = back(dy, (size_t)m * c);
    expect("gather_rows", g, rows, (size_t)m * c, 0);
    free(g);
    float *xs = rand_arr((size_t)m * c, -1, 1), *dxs = dev(xs, (size_t)m * c);
    cpu->ops->scatter_rows(cpu, rows, perm, m, c, xs);
    gpu->ops->scatter_rows(gpu, dy, perm, m, c, dxs);
    g = back(dxs, (size_t)m * c);
    expect("scatter_rows", g, xs, (size_t)m * c, 0);
    free(g);
    /* copy and zeroed alloc */
    gpu->ops->copy(gpu, dy, db, (size_t)m * c * 4);
    g = back(dy, (size_t)m * c);
    expect("copy", g, b, (size_t)m * c, 0);
    free(g);
    /* fresh device memory is often zero anyway: dirty a block, free it, and allocate the same
     * size again (usually the same block) */
    float *z = gpu->ops->alloc(gpu, 4096 * 4), zero[4096] = {0}, ones[4096];
    for (int i = 0; i < 4096; i++) ones[i] = 1.0f;
    gpu->ops->upload(gpu, z, ones, sizeof ones);
    gpu->ops->free(gpu, z);
    z = gpu->ops->alloc(gpu, 4096 * 4);
    g = back(z, 4096);
    expect("alloc is zeroed", g, zero, 4096, 0);
    free(g);
    gpu->ops->free(gpu, z);
    free(a), free(b), free(base), free(wm), free(wa), free(wd), free(rows), free(xs);
    gpu->ops->free(gpu, da), gpu->ops->free(gpu, db), gpu->ops->free(gpu, dbase), gpu->ops->free(gpu, dy);
    gpu->ops->free(gpu, dxs);
}

static void check_attention(int L, int heads, int hd) {
    int D = heads * hd;
    size_t n = (size_t)L * D;
    float *q = rand_arr(n, -1, 1), *k = rand_arr(n, -1, 1), *v = rand_arr(n, -1, 1);
    float *want = malloc(n * 4);
    cpu->ops->attention(cpu, q, k, v, L, heads, hd, want);
    float *dq = dev(q, n), *dk = dev(k, n), *dv = dev(v, n), *dy = poisoned(n);
    gpu->ops->attention(gpu, dq, dk, dv, L, heads, hd, dy);
    float *got = back(dy, n);
    char what[64];
    snprintf(what, sizeof what, "attention L%d heads%d hd%d", L, heads, hd);
    expect(what, got, want, n, 1e-5f);
    free(q), free(k), free(v), free(want), free(got);
    gpu->ops->free(gpu, dq), gpu->ops->free(gpu, dk), gpu->ops->free(gpu, dv), gpu->ops->free(gpu, dy);
}

static void check_patch_embed(vr_dtype dt, int S) { /* S 28: 4 patches (GEMV); 70: 25 (GEMM) */
    int P = 14, D = 48, G = S / P, K = 3 * P * P;
    float *px = rand_arr((size_t)3 * S * S, -2, 2), *wv = rand_arr((size_t)D * K, -0.1f, 0.1f);
    vr_tensor wh, wc, wg;
    make_weight(dt, D, K, wv, &wh);
    wh.ndim = 4;
    wh.shape[1] = 3, wh.shape[2] = P, wh.shape[3] = P;
    upload_weight(cpu, &wh, &wc);
    upload_weight(gpu, &wh, &wg);
    float *want = malloc((size_t)G * G * D * 4);
    cpu->ops->patch_embed(cpu, px, S, P, &wc, want);
    float *dp = dev(px, (size_t)3 * S * S), *dy = poisoned((size_t)G * G * D);
    gpu->ops->patch_embed(gpu, dp, S, P, &wg, dy);
    float *got = back(dy, (size_t)G * G * D);
    char what[64];
    snprintf(what, sizeof what, "patch_embed %s S%d", vr_dtype_name(dt), S);
    expect(what, got, want, (size_t)G * G * D, 1e-5f);
    gpu->ops->weight_free(gpu, &wg);
    free(wh.data), free(px), free(wv), free(want), free(got);
    gpu->ops->free(gpu, dp), gpu->ops->free(gpu, dy);
}

static int same_value(double a, double b, double tol) {
    return (isnan(a) && isnan(b)) || a == b || fabs(a - b) <= tol * (1 + fabs(b));
}

/* sample_rows on m rows of n logits against the host rule (vr_sample_pick on the same
 * penalised logits and draw): ids must agree exactly, logits and log-probabilities closely. */
static void compare_sampling(const char *what, const float *l, int m, int n, const vr_sample_row *rows,
                             const int32_t *pen_start, const int32_t *pen_ids, const float *pen_sub) {
    float *dl = dev(l, (size_t)m * n);
    int32_t *got = malloc((size_t)m * sizeof *got);
    float *glogit = malloc((size_t)m * sizeof(float)), *glp = malloc((size_t)m * sizeof(float));
    vr_error err = {0};
    vr_status st = gpu->ops->sample_rows(gpu, dl, m, n, rows, pen_start, pen_ids, pen_sub, got, glogit, glp, &err);
    float *adj = malloc((size_t)n * sizeof(float));
    vr_sample_cand *cand = malloc((size_t)n * sizeof *cand);
    uint8_t *kept = malloc((size_t)n);
    int bad = 0;
    for (int i = 0; st == VR_OK && i < m; i++) {
        const float *raw = l + (size_t)i * n;
        memcpy(adj, raw, (size_t)n * sizeof(float));
        for (int j = pen_start[i]; j < pen_start[i + 1]; j++) adj[pen_ids[j]] -= pen_sub[j];
        int32_t want = vr_sample_pick(adj, n, &rows[i], cand, kept);
        double lp = vr_logprob(raw, n, want); /* NaN for a row holding a NaN, on both sides */
        if (got[i] != want || !same_value(glogit[i], raw[want], 0) || !same_value(glp[i], lp, 1e-5)) {
            if (bad++ < 5)
                printf("     row %d (T %.2f k %d p %.2f u %.3f): got %d (%g, %g) want %d (%g, %g)\n", i,
                       (double)rows[i].temperature, rows[i].top_k, (double)rows[i].top_p, rows[i].u, got[i],
                       (double)glogit[i], (double)glp[i], want, (double)raw[want], lp);
        }
    }
    checks++;
    int ok = st == VR_OK && !bad;
    if (!ok) failures++;
    printf("%s sample_rows equals the host rule: %s (%d rows of %d)%s%s\n", ok ? "ok  " : "FAIL", what, m, n,
           st != VR_OK ? ": " : "", st != VR_OK ? err.msg : "");
    gpu->ops->free(gpu, dl);
    free(got), free(glogit), free(glp), free(adj), free(cand), free(kept);
}

/* 37 rows (three chunks) of temperature / top-k / top-p / penalty mixes, greedy rows with
 * penalties among them; sampled rows with ties, a NaN, a +inf, and rows all -inf but a third or
 * all NaN; then a vocabulary-sized call of coarse (heavily tied) logits that reuses the scratch
 * at another shape. */
static void check_sampling(void) {
    const int m = 37, n = 3001;
    float *l = malloc((size_t)m * n * sizeof(float));
    for (size_t i = 0; i < (size_t)m * n; i++) l[i] = frand(-6, 6);
    for (int j = 0; j < n; j++) l[(size_t)5 * n + j] = (float)(int)(l[(size_t)5 * n + j] * 2) * 0.5f; /* ties */
    l[(size_t)7 * n + 11] = NAN;
    for (int j = 0; j < n; j++) l[(size_t)9 * n + j] = j % 3 ? -INFINITY : l[(size_t)9 * n + j];
    l[(size_t)11 * n + 700] = INFINITY;
    for (int j = 0; j < n; j++) l[(size_t)13 * n + j] = NAN;
    static const float temps[4] = {0.0f, 0.7f, 1.0f, 1.6f}, tops[4] = {1.0f, 0.9f, 0.5f, 0.02f};
    static const int topk[4] = {0, 1, 7, 200};
    vr_sample_row rows[37];
    int32_t pen_start[38], pen_ids[37 * 3];
    float pen_sub[37 * 3];
    int np = 0;
    for (int i = 0; i < m; i++) {
        rows[i].temperature = temps[i % 4];
        rows[i].top_k = topk[(i / 4) % 4];
        rows[i].top_p = tops[(i / 2) % 4];
        rows[i].u = frand(0, 1);
        if (i == 5 || i == 7 || i == 11 || i == 13) { /* the odd rows go through the sort, not argmax */
            rows[i].temperature = 1.0f;
            rows[i].top_k = 200;
            rows[i].top_p = 0.9f;
        }
        pen_start[i] = np;
        for (int q = 0; q < (i / 3) % 4; q++) { /* greedy rows (i % 4 == 0) too */
            pen_ids[np] = (i * 131 + q * 977) % n;
            pen_sub[np] = frand(0, 3);
            np++;
        }
    }
    pen_start[m] = np;
    compare_sampling("mixed rows", l, m, n, rows, pen_start, pen_ids, pen_sub);
    free(l);

    const int m2 = 3, n2 = 65536;
    float *l2 = malloc((size_t)m2 * n2 * sizeof(float));
    for (size_t i = 0; i < (size_t)m2 * n2; i++) l2[i] = (float)(int)frand(-8, 8); /* 16 values: ties everywhere */
    /* temperature, top_p, top_k, u */
    vr_sample_row rows2[3] = {{1.0f, 1.0f, 0, 0.37}, {0.8f, 0.95f, 50, 0.99}, {1.3f, 0.3f, 0, 0.01}};
    int32_t ps2[4] = {0, 0, 2, 2}, pid2[2] = {65535, 0};
    float psub2[2] = {1.5f, 0.25f};
    compare_sampling("65536-token vocabulary, coarse logits", l2, m2, n2, rows2, ps2, pid2, psub2);
    free(l2);
}

static void check_argmax(void) {
    int m = 4, n = 1000;
    float *x = rand_arr((size_t)m * n, -5, 5);
    x[0 * n + 10] = 9, x[0 * n + 500] = 9;        /* tie: the first wins */
    x[1 * n + 3] = NAN, x[1 * n + 4] = 20;         /* NaN never wins */
    for (int i = 0; i < n; i++) x[2 * n + i] = 1.0f; /* all equal: index 0 */
    float *d = dev(x, (size_t)m * n);
    int32_t ids[4];
    float lg[4], lp[4];
    vr_error err = {0};
    checks++;
    if (gpu->ops->argmax_rows(gpu, d, m, n, ids, lg, lp, &err) != VR_OK) {
        printf("FAIL argmax_rows: %s\n", err.msg);
        failures++;
    } else {
        int ok = 1;
        for (int r = 0; r < m; r++) {
            const float *row = x + (size_t)r * n;
            int32_t want = vr_argmax(row, n);
            double wlp = vr_logprob(row, n, want);
            int row_ok = ids[r] == want && lg[r] == row[want] && (r == 1 || fabs(lp[r] - wlp) <= 1e-5);
            if (!row_ok)
                printf("     row %d: device %d (%g, %g), host %d (%g, %g)\n", r, ids[r], (double)lg[r], (double)lp[r],
                       want, (double)row[want], wlp);
            ok &= row_ok;
        }
        printf("%s argmax_rows (ties, NaN, flat rows)\n", ok ? "ok  " : "FAIL");
        failures += !ok;
    }
    free(x);
    gpu->ops->free(gpu, d);
}

int main(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("SKIP: no CUDA device (cudaGetDeviceCount found none): the CUDA op tests need a GPU\n");
        return 77;
    }
    vr_error err = {0};
    if (vr_backend_create("cpu", 4, &cpu, &err) != VR_OK || vr_backend_create("cuda", 0, &gpu, &err) != VR_OK) {
        printf("FAIL: creating the backends: %s\n", err.msg);
        return 1;
    }
    struct cudaDeviceProp prop;
    cudaGetDeviceProperties(&prop, 0);
    printf("device: %s (sm_%d%d, %d SMs, %.1f GiB)\n", prop.name, prop.major, prop.minor, prop.multiProcessorCount,
           prop.totalGlobalMem / 1073741824.0);

    vr_dtype dts[3] = {VR_F32, VR_F16, VR_BF16};
    int ms[6] = {1, 3, 8, 9, 16, 40};
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < 6; i++) {
            check_linear(gpu, "", dts[d], ms[i], 512, 130, 512, 0.0f, 0, 1e-5f);
            check_linear(gpu, "", dts[d], ms[i], 200, 96, 1000, 1.0f, 1, 1e-5f); /* strided x */
            check_linear(gpu, "", dts[d], ms[i], 199, 96, 1001, 1.0f, 1, 1e-5f); /* odd k and ldx: scalar path */
        }
    check_linear(gpu, "", VR_BF16, 1, 4096, 1024, 4096, 0.0f, 0, 1e-5f);
    /* tall matrices: 2 and 4 weight rows per warp (row counts not multiples of them) */
    for (int i = 0; i < 4; i++) {
        static const int tall_m[4] = {1, 3, 8, 13};
        check_linear(gpu, " tall", VR_F16, tall_m[i], 64, 16387, 64, 0.0f, 0, 1e-5f);
        check_linear(gpu, " tall", VR_BF16, tall_m[i], 72, 9001, 72, 1.0f, 1, 1e-5f);
    }
    check_linear(gpu, "", VR_F16, 300, 1024, 700, 1024, 1.0f, 1, 1e-5f);
    /* weight tiles of a few rows (the bounded-scratch path) */
    setenv("VRWKV_CUDA_TILE_FLOATS", "5000", 1);
    setenv("VRWKV_CUDA_GEMM", "f32", 1); /* the tiles belong to the f32 path, whatever the default */
    vr_backend *tiled = NULL;
    if (vr_backend_create("cuda", 0, &tiled, &err) == VR_OK) {
        check_linear(tiled, " tiled", VR_BF16, 50, 512, 130, 512, 0.0f, 1, 1e-5f);
        check_linear(tiled, " tiled", VR_F16, 33, 200, 61, 208, 1.0f, 0, 1e-5f);
        /* with f32 GEMMs, f16/bf16 weights keep the GEMV up to 16 rows (split GEMMs: up to 4) */
        check_linear(tiled, " f32-gemm", VR_F16, 8, 512, 130, 512, 0.0f, 0, 1e-5f);
        check_linear(tiled, " f32-gemm", VR_BF16, 13, 200, 96, 1000, 1.0f, 1, 1e-5f);
        vr_backend_free(tiled);
    }
    unsetenv("VRWKV_CUDA_TILE_FLOATS");
    unsetenv("VRWKV_CUDA_GEMM");
    /* the optional fast path: activations rounded to the weight dtype, tensor cores */
    setenv("VRWKV_CUDA_FAST_GEMM", "1", 1);
    vr_backend *fast = NULL;
    if (vr_backend_create("cuda", 0, &fast, &err) == VR_OK) {
        check_linear(fast, " fast", VR_BF16, 64, 512, 256, 512, 0.0f, 1, 3e-2f);
        check_linear(fast, " fast", VR_F16, 64, 512, 256, 512, 1.0f, 0, 5e-3f);
        vr_backend_free(fast);
    }
    unsetenv("VRWKV_CUDA_FAST_GEMM");
    /* split GEMMs: three tensor-core products of activation slices, f32 precision */
    setenv("VRWKV_CUDA_GEMM", "split", 1);
    vr_backend *split = NULL;
    if (vr_backend_create("cuda", 0, &split, &err) == VR_OK) {
        check_linear(split, " split", VR_BF16, 40, 512, 130, 512, 0.0f, 0, 1e-5f);
        check_linear(split, " split", VR_BF16, 300, 1024, 700, 1024, 1.0f, 1, 1e-5f);
        check_linear(split, " split", VR_BF16, 577, 199, 96, 1001, 0.0f, 1, 1e-5f); /* odd k, strided x */
        /* f16: 11-bit slices of row-scaled activations; magnitudes beyond f16's range both ways */
        check_linear(split, " split", VR_F16, 40, 512, 130, 512, 0.0f, 0, 1e-5f);
        check_linear(split, " split", VR_F16, 300, 1024, 700, 1024, 1.0f, 1, 1e-5f);
        check_linear(split, " split", VR_F16, 577, 199, 96, 1001, 0.0f, 1, 1e-5f);
        linear_x_scale = 3e5f; /* the CPU reference's own rounding reaches ~1e-5 here: a wrong scale gives O(1) */
        check_linear(split, " split", VR_F16, 64, 1024, 256, 1024, 1.0f, 0, 5e-5f);
        check_linear(split, " split", VR_BF16, 64, 1024, 256, 1024, 0.0f, 0, 5e-5f);
        linear_x_scale = 1e-6f; /* no bias, beta 0: the products alone */
        check_linear(split, " split", VR_F16, 64, 1024, 256, 1024, 0.0f, 0, 1e-5f);
        linear_x_scale = 1.0f;
        vr_backend_free(split);
    }
    unsetenv("VRWKV_CUDA_GEMM");
    for (int d = 0; d < 3; d++) check_embedding(dts[d]);
    check_norms();
    check_fused();
    check_token_shift_ddlerp();
    check_wkv6(3, 64, 0);
    check_wkv6(3, 64, 1);
    check_wkv6(2, 32, 0);
    check_wkv6(2, 48, 1);
    check_wkv6(1, 320, 0);
    check_pointwise();
    check_attention(50, 3, 32);
    check_attention(577, 2, 64);
    check_attention(577, 16, 64); /* ViT-L/14-336's shape */
    check_patch_embed(VR_F32, 28);
    check_patch_embed(VR_BF16, 28);
    check_patch_embed(VR_F32, 70);
    check_patch_embed(VR_BF16, 70);
    check_argmax();
    check_sampling();
    /* a failed op's error is reported by the next sync, once; the backend goes on */
    {
        float *d1 = poisoned(2000);
        vr_run run1 = {0, 1};
        float *sp = d1;
        gpu->ops->wkv6(gpu, d1, d1, d1, d1, d1, 1, 2000, &run1, 1, &sp, d1); /* head size 2000: refused */
        vr_status s1 = gpu->ops->sync(gpu, &err);
        vr_error e2 = {0};
        vr_status s2 = gpu->ops->sync(gpu, &e2);
        checks++;
        int ok = s1 == VR_ERR_UNSUPPORTED && s2 == VR_OK;
        failures += !ok;
        printf("%s a refused op: sync says %s (%s), then %s\n", ok ? "ok  " : "FAIL", vr_status_name(s1), err.msg,
               vr_status_name(s2));
        gpu->ops->free(gpu, d1);
    }
    /* memory_in_use sees an allocation; pinned host memory is writable */
    {
        size_t before = gpu->ops->memory_in_use(gpu);
        void *big = gpu->ops->alloc(gpu, (size_t)64 << 20);
        size_t after = gpu->ops->memory_in_use(gpu);
        uint8_t *h = gpu->ops->host_alloc(gpu, (size_t)1 << 20);
        if (h) memset(h, 0x5a, (size_t)1 << 20);
        checks++;
        int ok = big && h && after >= before + ((size_t)60 << 20) && h[12345] == 0x5a;
        failures += !ok;
        printf("%s memory_in_use %zu -> %zu MiB around a 64 MiB allocation; host_alloc %s\n", ok ? "ok  " : "FAIL",
               before >> 20, after >> 20, h ? "ok" : "failed");
        gpu->ops->free(gpu, big);
        if (h) gpu->ops->host_free(gpu, h);
    }
    /* a weight dtype the backend refuses, with a message */
    vr_tensor bad = {VR_I32, VR_DEVICE_CPU, 2, {2, 2}, (int32_t[4]){0}}, out;
    checks++;
    if (gpu->ops->weight_upload(gpu, &bad, &out, &err) == VR_OK) {
        printf("FAIL weight_upload accepted i32\n");
        failures++;
    } else {
        printf("ok   weight_upload refuses i32: %s\n", err.msg);
    }
    vr_backend_free(gpu);
    vr_backend_free(cpu);
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
