/* kernels/cpu/cpu_rwkv.c — the RWKV-6 specific ops on the CPU: token shift over runs, the
 * data-dependent lerp, the decay, and the WKV-6 recurrence with f32 state. The recurrence
 * is sequential along a run; runs and heads run in parallel. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_internal.h"

void vr_cpu_token_shift(vr_backend *be, const float *x, int n, const vr_run *runs, int n_runs,
                        float *const *shift_states, float *sx) {
    (void)be;
    for (int ri = 0; ri < n_runs; ri++) {
        const vr_run *run = &runs[ri];
        if (run->len <= 0) continue;
        for (int t = 0; t < run->len; t++) {
            size_t row = (size_t)(run->offset + t);
            const float *cur = x + row * (size_t)n;
            const float *prev = t == 0 ? shift_states[ri] : cur - n;
            float *out = sx + row * (size_t)n;
            for (int c = 0; c < n; c++) out[c] = prev[c] - cur[c];
        }
        memcpy(shift_states[ri], x + (size_t)(run->offset + run->len - 1) * (size_t)n, (size_t)n * sizeof(float));
    }
}

void vr_cpu_ddlerp(vr_backend *be, const float *x, const float *sx, int m, int n, const float *maa, const float *lora,
                   int ld_lora, float *y) {
    (void)be;
    for (int r = 0; r < m; r++) {
        const float *xr = x + (size_t)r * (size_t)n;
        const float *sr = sx + (size_t)r * (size_t)n;
        float *yr = y + (size_t)r * (size_t)n;
        if (lora) {
            const float *lr = lora + (size_t)r * (size_t)ld_lora;
            for (int c = 0; c < n; c++) yr[c] = xr[c] + sr[c] * (maa[c] + lr[c]);
        } else {
            for (int c = 0; c < n; c++) yr[c] = xr[c] + sr[c] * maa[c];
        }
    }
}

void vr_cpu_decay(vr_backend *be, const float *x, const float *base, int m, int n, float *w) {
    (void)be;
    for (int r = 0; r < m; r++)
        for (int c = 0; c < n; c++) {
            size_t i = (size_t)r * (size_t)n + c;
            w[i] = expf(-expf(base[c] + x[i]));
        }
}

void vr_cpu_wkv6(vr_backend *be, const float *r, const float *k, const float *v, const float *w, const float *u, int H,
                 int N, const vr_run *runs, int n_runs, float *const *states, float *y) {
    (void)be;
    int C = H * N;
    int jobs = n_runs * H;
#pragma omp parallel for schedule(dynamic, 1) if (jobs > 1)
    for (int job = 0; job < jobs; job++) {
        int ri = job / H, h = job % H;
        const vr_run *run = &runs[ri];
        float *S = states[ri] + (size_t)h * (size_t)N * (size_t)N; /* S[j][i] */
        const float *uh = u + h * N;
        for (int t = 0; t < run->len; t++) {
            size_t base = (size_t)(run->offset + t) * (size_t)C + (size_t)h * (size_t)N;
            const float *rt = r + base, *kt = k + base, *vt = v + base, *wt = w + base;
            float *yt = y + base;
            float acc[256];
            float *out = N <= 256 ? acc : yt;
            for (int i = 0; i < N; i++) out[i] = 0.0f;
            for (int j = 0; j < N; j++) {
                float rj = rt[j], kj = kt[j], uj = uh[j], wj = wt[j];
                float *Sj = S + (size_t)j * (size_t)N;
                for (int i = 0; i < N; i++) {
                    float kv = kj * vt[i];
                    out[i] += rj * (uj * kv + Sj[i]);
                    Sj[i] = kv + wj * Sj[i];
                }
            }
            if (out != yt) memcpy(yt, out, (size_t)N * sizeof(float));
        }
    }
}
