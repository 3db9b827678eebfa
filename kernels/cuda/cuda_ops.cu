/* kernels/cuda/cuda_ops.cu — the non-GEMM ops on the GPU, each matching its CPU twin in
 * kernels/cpu: LayerNorm/GroupNorm (double reductions, as the CPU's two-pass in double),
 * RWKV token shift and WKV-6 over runs (host run/pointer tables copied to the device first),
 * the data-dependent lerp, decay, activations, arithmetic, row gather/scatter.
 * WKV-6: one block per (run, head), thread i owns value column i of the f32 state (registers
 * for N = 64, global memory otherwise), sequential over the run's rows: the same kernel serves
 * a prefill (one long run) and a batched decode step (many runs of one row). No allocation
 * beyond the backend's scratch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

/* ---- reductions ---- */

__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result */
__device__ double block_sum_d(double v, double *red) {
    v = warp_sum_d(v);
    int w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    __syncthreads(); /* red may still be read from a previous call */
    if ((threadIdx.x & 31) == 0) red[w] = v;
    __syncthreads();
    double t = (threadIdx.x & 31) < nw ? red[threadIdx.x & 31] : 0.0;
    return warp_sum_d(t);
}

/* ---- norms ---- */

/* A row's mean and 1/sqrt(var + eps), as the CPU twin computes them (double sums). Every thread
 * of the block gets them; every read of the row is done when it returns. */
__device__ __forceinline__ void ln_stats(const float *xr, int n, float eps, double *red, float *mu, float *inv) {
    double s = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
    double mean = block_sum_d(s, red) / n;
    double v = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        double d = xr[i] - mean;
        v += d * d;
    }
    double var = block_sum_d(v, red) / n;
    *inv = (float)(1.0 / sqrt(var + (double)eps));
    *mu = (float)mean;
    __syncthreads(); /* every read of x is done before y (maybe x) is written */
}

/* (x - mu) * inv * w + b, in that order and unfused, as the CPU's C */
__device__ __forceinline__ float ln_value(float x, float mu, float inv, float w, float b) {
    return __fadd_rn(__fmul_rn(__fmul_rn(__fsub_rn(x, mu), inv), w), b);
}

__global__ void layer_norm_kernel(const float *x, int n, const float *w, const float *b, float eps, float *y) {
    __shared__ double red[32];
    const float *xr = x + (size_t)blockIdx.x * n;
    float *yr = y + (size_t)blockIdx.x * n;
    float mu, inv;
    ln_stats(xr, n, eps, red, &mu, &inv);
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = ln_value(xr[i], mu, inv, w[i], b[i]);
}

/* norm_shift_mix for one-row runs: block b is run b (its row runs[b].offset). Each column's
 * shift-state element is read and then written by one thread. */
typedef struct mix_outs {
    const float *maa[2];
    float *y[2];
    int n_mix;
} mix_outs;

__global__ void norm_shift_mix_kernel(const float *x, int n, const float *w, const float *b, float eps,
                                      const vr_run *runs, float *const *states, mix_outs mo, float *xa, float *sx) {
    __shared__ double red[32];
    size_t row = (size_t)runs[blockIdx.x].offset;
    const float *xr = x + row * n;
    float *st = states[blockIdx.x];
    float mu, inv;
    ln_stats(xr, n, eps, red, &mu, &inv);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        size_t at = row * n + i;
        float a = ln_value(xr[i], mu, inv, w[i], b[i]);
        float d = __fsub_rn(st[i], a); /* token_shift: prev - cur */
        st[i] = a;
        xa[at] = a;
        sx[at] = d;
        for (int j = 0; j < mo.n_mix; j++) mo.y[j][at] = __fadd_rn(a, __fmul_rn(d, mo.maa[j][i])); /* ddlerp */
    }
}

void vrc_layer_norm(vr_backend *be, const float *x, int m, int n, const float *w, const float *b, float eps,
                    float *y) {
    if (m <= 0) return;
    if (vrc_enter(be)) return;
    unsigned threads = n >= 1024 ? 256 : n >= 256 ? 128 : 32;
    layer_norm_kernel<<<(unsigned)m, threads, 0, vrc(be)->stream>>>(x, n, w, b, eps, y);
    vrc_check_launch(be, "layer_norm");
}

/* one warp per (row, group) */
__global__ void group_norm_kernel(const float *x, int m, int groups, int gsize, const float *w, const float *b,
                                  float eps, const float *gmul, float *y) {
    size_t gid = (blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5;
    int lane = threadIdx.x & 31;
    if (gid >= (size_t)m * groups) return;
    int g = (int)(gid % (size_t)groups);
    size_t off = gid * (size_t)gsize; /* row * groups * gsize + g * gsize */
    const float *xs = x + off;
    double s = 0.0;
    for (int i = lane; i < gsize; i += 32) s += xs[i];
    double mean = warp_sum_d(s) / gsize;
    double v = 0.0;
    for (int i = lane; i < gsize; i += 32) {
        double d = xs[i] - mean;
        v += d * d;
    }
    double var = warp_sum_d(v) / gsize;
    float inv = (float)(1.0 / sqrt(var + (double)eps));
    float mu = (float)mean;
    const float *wg = w + (size_t)g * gsize, *bg = b + (size_t)g * gsize;
    for (int i = lane; i < gsize; i += 32) {
        float v = ln_value(xs[i], mu, inv, wg[i], bg[i]); /* unfused, as the CPU's norm_span */
        y[off + i] = gmul ? v * gmul[off + i] : v; /* group_norm_mul: the mul op fused */
    }
}

void vrc_group_norm_mul(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w, const float *b,
                        float eps, const float *g, float *y) {
    if (m <= 0 || groups <= 0) return;
    if (vrc_enter(be)) return;
    size_t warps = (size_t)m * groups;
    unsigned threads = 128, blocks = (unsigned)((warps * 32 + threads - 1) / threads);
    group_norm_kernel<<<blocks, threads, 0, vrc(be)->stream>>>(x, m, groups, gsize, w, b, eps, g, y);
    vrc_check_launch(be, "group_norm");
}

void vrc_group_norm(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w, const float *b,
                    float eps, float *y) {
    vrc_group_norm_mul(be, x, m, groups, gsize, w, b, eps, NULL, y);
}

/* ---- run tables ---- */

/* Packs runs and the per-run pointers into one host buffer and copies it to the device:
 * [n_runs vr_run][n_runs float*]. Returns the device base (runs) and sets *ptrs. */
static const vr_run *upload_runs(vr_backend *be, const vr_run *runs, int n_runs, float *const *ptrs,
                                 float *const **dptrs) {
    vrc_impl *c = vrc(be);
    size_t rb = ((size_t)n_runs * sizeof(vr_run) + 15) & ~(size_t)15;
    size_t bytes = rb + (size_t)n_runs * sizeof(float *);
    if (c->host_table_cap < bytes) {
        void *p = realloc(c->host_table, bytes);
        if (!p) {
            vrc_fail(be, VR_ERR_NOMEM, "out of host memory for a run table of %d runs", n_runs);
            return NULL;
        }
        c->host_table = p;
        c->host_table_cap = bytes;
    }
    memcpy(c->host_table, runs, (size_t)n_runs * sizeof(vr_run));
    memcpy((char *)c->host_table + rb, ptrs, (size_t)n_runs * sizeof(float *));
    char *d = (char *)vrc_upload_table(be, VRC_SCR_TABLE, c->host_table, bytes);
    if (!d) return NULL;
    *dptrs = (float *const *)(d + rb);
    return (const vr_run *)d;
}

/* ---- token shift ---- */

/* Every row's difference to the row before it, over all rows at once (a step with one long
 * prefill beside many one-row runs launches blocks for its rows, not runs x longest run); the
 * first row of each run is then redone by shift_first_kernel, later on the same stream. */
__global__ void shift_diff_kernel(const float *x, size_t total, int n, float *sx) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x + (size_t)n; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        sx[i] = x[i - (size_t)n] - x[i];
}

/* grid.y = run: its first row against the state, and the state becomes its last row. The thread
 * of column c alone reads and then writes state[c], so nothing races with the update. */
__global__ void shift_first_kernel(const float *x, int n, const vr_run *runs, float *const *states, float *sx) {
    vr_run run = runs[blockIdx.y];
    if (run.len <= 0) return;
    float *st = states[blockIdx.y];
    size_t row = (size_t)run.offset, last = (size_t)(run.offset + run.len - 1);
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < n; c += gridDim.x * blockDim.x) {
        float cur = x[row * n + c];
        float prev = st[c];
        sx[row * n + c] = prev - cur;
        st[c] = x[last * n + c];
    }
}

void vrc_token_shift(vr_backend *be, const float *x, int n, const vr_run *runs, int n_runs, float *const *shift_states,
                     float *sx) {
    if (n_runs <= 0) return;
    if (n_runs > 65535) {
        vrc_fail(be, VR_ERR_UNSUPPORTED, "token_shift: %d runs in one call (at most 65535)", n_runs);
        return;
    }
    vrc_enter(be);
    size_t rows = 0; /* rows [0, rows) hold every run */
    for (int i = 0; i < n_runs; i++)
        if (runs[i].len > 0 && (size_t)runs[i].offset + (size_t)runs[i].len > rows)
            rows = (size_t)runs[i].offset + (size_t)runs[i].len;
    if (rows == 0) return;
    float *const *dptrs = NULL;
    const vr_run *druns = upload_runs(be, runs, n_runs, shift_states, &dptrs);
    if (!druns || vrc_refilling(be)) return;
    cudaStream_t s = vrc(be)->stream;
    size_t total = rows * (size_t)n;
    if (rows > 1) shift_diff_kernel<<<vrc_blocks(total - (size_t)n, 256), 256, 0, s>>>(x, total, n, sx);
    shift_first_kernel<<<dim3(vrc_blocks((size_t)n, 256), (unsigned)n_runs), 256, 0, s>>>(x, n, druns, dptrs, sx);
    vrc_check_launch(be, "token_shift");
}

void vrc_norm_shift_mix(vr_backend *be, const float *x, int m, int n, const float *ln_w, const float *ln_b, float eps,
                        const vr_run *runs, int n_runs, float *const *shift_states, int n_mix, const float *const *maa,
                        float *const *y, float *xa, float *sx) {
    if (n_runs <= 0) return;
    vrc_enter(be); /* a refill still stages the state-pointer table (below) */
    if (m != n_runs || n_mix < 0 || n_mix > 2) {
        vrc_fail(be, VR_ERR_INVALID, "norm_shift_mix: %d rows in %d runs with %d mixes (one row per run, at most 2)", m,
                 n_runs, n_mix);
        return;
    }
    for (int i = 0; i < n_runs; i++)
        if (runs[i].len != 1) {
            vrc_fail(be, VR_ERR_INVALID, "norm_shift_mix: run %d has %d rows (one row per run)", i, runs[i].len);
            return;
        }
    float *const *dptrs = NULL;
    const vr_run *druns = upload_runs(be, runs, n_runs, shift_states, &dptrs);
    if (!druns || vrc_refilling(be)) return;
    mix_outs mo;
    memset(&mo, 0, sizeof mo);
    mo.n_mix = n_mix;
    for (int j = 0; j < n_mix; j++) {
        mo.maa[j] = maa[j];
        mo.y[j] = y[j];
    }
    unsigned threads = n >= 1024 ? 256 : n >= 256 ? 128 : 32;
    norm_shift_mix_kernel<<<(unsigned)n_runs, threads, 0, vrc(be)->stream>>>(x, n, ln_w, ln_b, eps, druns, dptrs, mo,
                                                                             xa, sx);
    vrc_check_launch(be, "norm_shift_mix");
}

/* ---- WKV-6 ---- */

/* N = 64: thread i keeps column i of the head's state in registers. The r, k, w and v of TC
 * tokens are staged in shared memory at once: for a sequence (prefill, TC 16) two barriers and
 * one round of loads per chunk instead of per token, so a long prompt is bound by the
 * arithmetic, not by the latency of each token's loads; a decode step (runs of one token)
 * takes TC 1. The arithmetic is the same token for token either way. */
template <int N, int TC>
__global__ void __launch_bounds__(N) wkv6_chunk_kernel(const float *__restrict__ r, const float *__restrict__ k,
                                                       const float *__restrict__ v, const float *__restrict__ w,
                                                       const float *__restrict__ u, int H, const vr_run *runs,
                                                       float *const *states, float *__restrict__ y) {
    __shared__ float sr[TC * N], sk[TC * N], sw[TC * N], sv[TC * N], su[N];
    int ri = blockIdx.x / H, h = blockIdx.x % H, i = threadIdx.x;
    vr_run run = runs[ri];
    if (run.len <= 0) return; /* the whole block: an empty run leaves its state alone, as on the CPU */
    const size_t C = (size_t)H * N;
    float *S = states[ri] + (size_t)h * N * N; /* S[j][i]: thread i owns column i */
    float s[N];
#pragma unroll
    for (int j = 0; j < N; j++) s[j] = S[(size_t)j * N + i];
    su[i] = u[h * N + i];
    for (int t0 = 0; t0 < run.len; t0 += TC) {
        int tc = run.len - t0 < TC ? run.len - t0 : TC;
        __syncthreads(); /* the previous chunk is consumed */
        for (int q = 0; q < tc; q++) {
            size_t base = (size_t)(run.offset + t0 + q) * C + (size_t)h * N;
            sr[q * N + i] = r[base + i];
            sk[q * N + i] = k[base + i];
            sw[q * N + i] = w[base + i];
            sv[q * N + i] = v[base + i];
        }
        __syncthreads();
        for (int q = 0; q < tc; q++) {
            const float *qr = sr + q * N, *qk = sk + q * N, *qw = sw + q * N;
            float vi = sv[q * N + i];
            float out = 0.0f;
#pragma unroll
            for (int j = 0; j < N; j++) {
                float kv = qk[j] * vi;
                out += qr[j] * (su[j] * kv + s[j]);
                s[j] = kv + qw[j] * s[j];
            }
            y[(size_t)(run.offset + t0 + q) * C + (size_t)h * N + i] = out;
        }
    }
#pragma unroll
    for (int j = 0; j < N; j++) S[(size_t)j * N + i] = s[j];
}

/* any N up to 1024: the state stays in global memory (each thread its own column) */
__global__ void wkv6_global_kernel(const float *r, const float *k, const float *v, const float *w, const float *u,
                                   int H, int N, const vr_run *runs, float *const *states, float *y) {
    extern __shared__ float sh[];
    float *sr = sh, *sk = sh + N, *sw = sh + 2 * N, *su = sh + 3 * N;
    int ri = blockIdx.x / H, h = blockIdx.x % H, i = threadIdx.x;
    vr_run run = runs[ri];
    const size_t C = (size_t)H * N;
    float *S = states[ri] + (size_t)h * N * N;
    su[i] = u[h * N + i];
    for (int t = 0; t < run.len; t++) {
        size_t base = (size_t)(run.offset + t) * C + (size_t)h * N;
        __syncthreads();
        sr[i] = r[base + i];
        sk[i] = k[base + i];
        sw[i] = w[base + i];
        float vi = v[base + i];
        __syncthreads();
        float out = 0.0f;
        for (int j = 0; j < N; j++) {
            float *sj = S + (size_t)j * N + i;
            float kv = sk[j] * vi;
            out += sr[j] * (su[j] * kv + *sj);
            *sj = kv + sw[j] * *sj;
        }
        y[base + i] = out;
    }
}

void vrc_wkv6(vr_backend *be, const float *r, const float *k, const float *v, const float *w, const float *u, int H,
              int N, const vr_run *runs, int n_runs, float *const *states, float *y) {
    if (n_runs <= 0 || H <= 0) return;
    if (N <= 0 || N > 1024) {
        vrc_fail(be, VR_ERR_UNSUPPORTED, "wkv6: head size %d is not supported (1..1024)", N);
        return;
    }
    if ((size_t)n_runs * H > 0x7fffffffu) {
        vrc_fail(be, VR_ERR_UNSUPPORTED, "wkv6: %d runs x %d heads is too many for one launch", n_runs, H);
        return;
    }
    vrc_enter(be);
    float *const *dptrs = NULL;
    const vr_run *druns = upload_runs(be, runs, n_runs, states, &dptrs);
    if (!druns || vrc_refilling(be)) return;
    cudaStream_t s = vrc(be)->stream;
    unsigned blocks = (unsigned)(n_runs * H);
    int max_len = 0;
    for (int i = 0; i < n_runs; i++) max_len = runs[i].len > max_len ? runs[i].len : max_len;
    if (N == 64 && max_len > 1)
        wkv6_chunk_kernel<64, 16><<<blocks, 64, 0, s>>>(r, k, v, w, u, H, druns, dptrs, y);
    else if (N == 64)
        wkv6_chunk_kernel<64, 1><<<blocks, 64, 0, s>>>(r, k, v, w, u, H, druns, dptrs, y);
    else
        wkv6_global_kernel<<<blocks, (unsigned)N, 4 * (size_t)N * sizeof(float), s>>>(r, k, v, w, u, H, N, druns,
                                                                                        dptrs, y);
    vrc_check_launch(be, "wkv6");
}

/* ---- pointwise ---- */

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

enum { U_TANH, U_SILU, U_SIGMOID, U_RELU_SQ, U_QUICK_GELU };

template <int OP> __global__ void unary_kernel(float *x, size_t n) {
    GRID_STRIDE(i, n) {
        float a = x[i];
        if (OP == U_TANH) a = tanhf(a);
        else if (OP == U_SILU) a = a / (1.0f + expf(-a));
        else if (OP == U_SIGMOID) a = 1.0f / (1.0f + expf(-a));
        else if (OP == U_RELU_SQ) {
            float p = a > 0.0f ? a : 0.0f;
            a = p * p;
        } else a = a * (1.0f / (1.0f + expf(-1.702f * a)));
        x[i] = a;
    }
}

template <int OP> static void unary(vr_backend *be, float *x, size_t n, const char *what) {
    if (!n) return;
    if (vrc_enter_as(be, what)) return; /* named: __func__ would say "unary" for all five */
    unary_kernel<OP><<<vrc_blocks(n, 256), 256, 0, vrc(be)->stream>>>(x, n);
    vrc_check_launch(be, what);
}

void vrc_tanh(vr_backend *be, float *x, size_t n) { unary<U_TANH>(be, x, n, "tanh"); }
void vrc_silu(vr_backend *be, float *x, size_t n) { unary<U_SILU>(be, x, n, "silu"); }
void vrc_sigmoid(vr_backend *be, float *x, size_t n) { unary<U_SIGMOID>(be, x, n, "sigmoid"); }
void vrc_relu_sq(vr_backend *be, float *x, size_t n) { unary<U_RELU_SQ>(be, x, n, "relu_sq"); }
void vrc_quick_gelu(vr_backend *be, float *x, size_t n) { unary<U_QUICK_GELU>(be, x, n, "quick_gelu"); }

__global__ void mul_kernel(const float *a, const float *b, float *y, size_t n) { GRID_STRIDE(i, n) y[i] = a[i] * b[i]; }
__global__ void add_kernel(const float *a, const float *b, float *y, size_t n) { GRID_STRIDE(i, n) y[i] = a[i] + b[i]; }

void vrc_mul(vr_backend *be, const float *a, const float *b, float *y, size_t n) {
    if (!n) return;
    if (vrc_enter(be)) return;
    mul_kernel<<<vrc_blocks(n, 256), 256, 0, vrc(be)->stream>>>(a, b, y, n);
    vrc_check_launch(be, "mul");
}
void vrc_add(vr_backend *be, const float *a, const float *b, float *y, size_t n) {
    if (!n) return;
    if (vrc_enter(be)) return;
    add_kernel<<<vrc_blocks(n, 256), 256, 0, vrc(be)->stream>>>(a, b, y, n);
    vrc_check_launch(be, "add");
}

__global__ void add_row_kernel(float *x, const float *rowvec, int n, size_t total) {
    GRID_STRIDE(i, total) x[i] += rowvec[i % (size_t)n];
}
void vrc_add_row(vr_backend *be, float *x, const float *rowvec, int m, int n) {
    size_t total = (size_t)m * n;
    if (!total || m < 0) return;
    if (vrc_enter(be)) return;
    add_row_kernel<<<vrc_blocks(total, 256), 256, 0, vrc(be)->stream>>>(x, rowvec, n, total);
    vrc_check_launch(be, "add_row");
}

__global__ void decay_kernel(const float *x, const float *base, int n, size_t total, float *w) {
    GRID_STRIDE(i, total) w[i] = expf(-expf(base[i % (size_t)n] + x[i]));
}
void vrc_decay(vr_backend *be, const float *x, const float *base, int m, int n, float *w) {
    size_t total = (size_t)m * n;
    if (!total || m < 0) return;
    if (vrc_enter(be)) return;
    decay_kernel<<<vrc_blocks(total, 256), 256, 0, vrc(be)->stream>>>(x, base, n, total, w);
    vrc_check_launch(be, "decay");
}

__global__ void ddlerp_kernel(const float *x, const float *sx, int n, size_t total, const float *maa,
                              const float *lora, int ld_lora, float *y) {
    GRID_STRIDE(i, total) {
        size_t r = i / (size_t)n, c = i % (size_t)n;
        /* unfused, as the CPU twin (C11, no contraction): bit-identical results */
        float mix = lora ? __fadd_rn(maa[c], lora[r * (size_t)ld_lora + c]) : maa[c];
        y[i] = __fadd_rn(x[i], __fmul_rn(sx[i], mix));
    }
}
void vrc_ddlerp(vr_backend *be, const float *x, const float *sx, int m, int n, const float *maa, const float *lora,
                int ld_lora, float *y) {
    size_t total = (size_t)m * n;
    if (!total || m < 0) return;
    if (vrc_enter(be)) return;
    ddlerp_kernel<<<vrc_blocks(total, 256), 256, 0, vrc(be)->stream>>>(x, sx, n, total, maa, lora, ld_lora, y);
    vrc_check_launch(be, "ddlerp");
}

/* ---- rows ---- */

__global__ void gather_kernel(const float *x, const int32_t *perm, int n, size_t total, float *rows) {
    GRID_STRIDE(i, total) rows[i] = x[(size_t)perm[i / (size_t)n] * n + i % (size_t)n];
}
__global__ void scatter_kernel(const float *rows, const int32_t *perm, int n, size_t total, float *x) {
    GRID_STRIDE(i, total) x[(size_t)perm[i / (size_t)n] * n + i % (size_t)n] = rows[i];
}

void vrc_gather_rows(vr_backend *be, const float *x, const int32_t *perm, int m, int n, float *rows) {
    size_t total = (size_t)m * n;
    if (!total || m < 0) return;
    vrc_enter(be);
    const int32_t *dp = (const int32_t *)vrc_upload_table(be, VRC_SCR_TABLE, perm, (size_t)m * sizeof(int32_t));
    if (!dp || vrc_refilling(be)) return;
    gather_kernel<<<vrc_blocks(total, 256), 256, 0, vrc(be)->stream>>>(x, dp, n, total, rows);
    vrc_check_launch(be, "gather_rows");
}
void vrc_scatter_rows(vr_backend *be, const float *rows, const int32_t *perm, int m, int n, float *x) {
    size_t total = (size_t)m * n;
    if (!total || m < 0) return;
    vrc_enter(be);
    const int32_t *dp = (const int32_t *)vrc_upload_table(be, VRC_SCR_TABLE, perm, (size_t)m * sizeof(int32_t));
    if (!dp || vrc_refilling(be)) return;
    scatter_kernel<<<vrc_blocks(total, 256), 256, 0, vrc(be)->stream>>>(rows, dp, n, total, x);
    vrc_check_launch(be, "scatter_rows");
}
