/* kernels/backend.h — the compute backend contract: one table of ops that model/ expresses its
 * forward passes in. A backend decides how the ops run (cpu/: C + OpenMP + BLAS; cuda/: kernels
 * + cuBLAS). Pointers passed to ops live on the backend's device (alloc/upload/download move
 * data). Activations are f32; weight matrices and embedding tables stay in their loaded dtype
 * (f32/f16/bf16) and are passed as vr_tensor. Index arrays (token ids, row permutations, runs)
 * and the tables of per-run state pointers are HOST memory (the pointers in the tables point
 * to device memory); a device backend copies them over itself. Must not know model
 * structure. */
#ifndef VR_BACKEND_H
#define VR_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "kernels/sample.h"
#include "kernels/tensor.h"

/* A run of consecutive activation rows that belong to one sequence (one session): rows
 * [offset, offset+len) of the batch. Token shift and WKV carry state along a run, and each run
 * has its own recurrent state. A prefill is one run of T rows; a decode step is B runs of 1. */
typedef struct vr_run {
    int offset, len;
} vr_run;

typedef struct vr_backend vr_backend;

/* What a fused linear does with each result (linear_epi). */
typedef enum {
    VR_EPI_TANH = 1,
    VR_EPI_SILU,
    VR_EPI_RELU_SQ,
    VR_EPI_SIGMOID,
    VR_EPI_DECAY,
    VR_EPI_GATE_ADD,
    VR_EPI_MUL_ADD
} vr_epilogue;

/* One product of a linear_group: y = epi(x @ W^T) as linear_epi does it (epi 0: the plain
 * linear, beta 0). */
typedef struct vr_linear_job {
    const float *x;
    int ldx;
    const vr_tensor *w;
    int epi; /* 0 or a vr_epilogue */
    const float *aux;
    float *y;
} vr_linear_job;

typedef struct vr_backend_ops {
    /* memory */
    void *(*alloc)(vr_backend *be, size_t bytes); /* zeroed; NULL on failure */
    void (*free)(vr_backend *be, void *p);
    void (*upload)(vr_backend *be, void *dst, const void *src, size_t bytes);
    void (*download)(vr_backend *be, void *dst, const void *src, size_t bytes);
    void (*copy)(vr_backend *be, void *dst, const void *src, size_t bytes); /* ranges must not overlap */
    /* Makes a weight matrix usable by the ops, in its loaded dtype: the CPU backend uses the
     * host (mapped) bytes in place; a GPU backend copies them to the device. weight_free
     * releases what weight_upload made (nothing on the CPU). */
    vr_status (*weight_upload)(vr_backend *be, const vr_tensor *host, vr_tensor *out, vr_error *err);
    void (*weight_free)(vr_backend *be, vr_tensor *t);

    /* y[m, n] = x[m, k] (row stride ldx) @ w[n, k]^T (+ bias[n] when bias != NULL);
     * beta = 0 overwrites y, beta = 1 accumulates into y. */
    void (*linear)(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, const vr_tensor *bias,
                   float beta, float *y);
    /* out[i, :] = table[ids[i], :] (f32 result) */
    void (*embedding)(vr_backend *be, const int32_t *ids, int n, const vr_tensor *table, float *out);
    /* Row-wise LayerNorm over n columns, biased variance. In place allowed. */
    void (*layer_norm)(vr_backend *be, const float *x, int m, int n, const float *w, const float *b, float eps,
                       float *y);
    /* Per-row GroupNorm: each row of groups*gsize columns is normalised per group, then
     * scaled by w and shifted by b (both groups*gsize). In place allowed. */
    void (*group_norm)(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w, const float *b,
                       float eps, float *y);

    /* RWKV token shift over runs: sx[r] = prev(r) - x[r] where prev is the previous row of the
     * same run, or shift_state[run] for a run's first row; then shift_state[run] = x[last row].
     * shift_states[i] points at run i's n-float state. Rows outside every run: sx undefined. */
    void (*token_shift)(vr_backend *be, const float *x, int n, const vr_run *runs, int n_runs, float *const *shift_states,
                        float *sx);
    /* y = x + sx * (maa + (lora ? lora[r] : 0))  row-wise; maa has n entries, lora [m, n] with row
     * stride ld_lora. */
    void (*ddlerp)(vr_backend *be, const float *x, const float *sx, int m, int n, const float *maa, const float *lora,
                   int ld_lora, float *y);
    /* WKV-6 over runs. r, k, v, w: [rows, H*N] where w is the decay already in (0,1):
     * exp(-exp(w_raw)); u: [H*N] (time_faaaa); states[i] -> run i's [H][N][N] f32 state
     * S[j][i] (key j, value i). y: [rows, H*N]. */
    void (*wkv6)(vr_backend *be, const float *r, const float *k, const float *v, const float *w, const float *u,
                 int H, int N, const vr_run *runs, int n_runs, float *const *states, float *y);

    /* elementwise, in place allowed */
    void (*tanh_)(vr_backend *be, float *x, size_t n);
    void (*silu)(vr_backend *be, float *x, size_t n);
    void (*sigmoid)(vr_backend *be, float *x, size_t n);
    void (*relu_sq)(vr_backend *be, float *x, size_t n);
    void (*quick_gelu)(vr_backend *be, float *x, size_t n);
    /* w = exp(-exp(base[c] + x[r, c])) for the RWKV-6 decay */
    void (*decay)(vr_backend *be, const float *x, const float *base, int m, int n, float *w);
    void (*mul)(vr_backend *be, const float *a, const float *b, float *y, size_t n);  /* y = a * b */
    void (*add)(vr_backend *be, const float *a, const float *b, float *y, size_t n);  /* y = a + b */
    /* x[r, :] += rowvec[:] for m rows of n */
    void (*add_row)(vr_backend *be, float *x, const float *rowvec, int m, int n);

    /* Non-causal multi-head attention (ViT): q, k, v [L, heads*hd] (q already scaled),
     * out [L, heads*hd]. */
    void (*attention)(vr_backend *be, const float *q, const float *k, const float *v, int L, int heads, int hd,
                      float *out);
    /* Patch embedding: conv with kernel = stride = P, no bias. pixels [3, S, S] f32,
     * w [D, 3, P, P]; out [G*G, D] row py*G + px. */
    void (*patch_embed)(vr_backend *be, const float *pixels, int S, int P, const vr_tensor *w, float *out);
    /* rows[i, :] = x[perm[i], :] (gather); rows and x must differ. */
    void (*gather_rows)(vr_backend *be, const float *x, const int32_t *perm, int m, int n, float *rows);
    /* x[perm[i], :] = rows[i, :] (scatter) */
    void (*scatter_rows)(vr_backend *be, const float *rows, const int32_t *perm, int m, int n, float *x);

    /* ---- optional (NULL where a backend has nothing to add; callers check) ---- */
    /* Fused ops: fewer launches for a decode step. Each equals the composition of the ops above
     * that it names (model/ composes them where these are NULL). */
    /* y = epi(x @ W^T): s = (x @ W^T)[r, c], then
     *   VR_EPI_TANH / SILU / RELU_SQ / SIGMOID: y = that op's function of s;
     *   VR_EPI_DECAY: y = exp(-exp(aux[c] + s)) (the decay op, base aux [n]);
     *   VR_EPI_GATE_ADD: y[r, c] = y[r, c] + sigmoid(s) * aux[r * n + c] (sigmoid, mul, add);
     *   VR_EPI_MUL_ADD: y[r, c] = y[r, c] + aux[r * n + c] * s (mul, add). */
    void (*linear_epi)(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, vr_epilogue epi,
                       const float *aux, float *y);
    /* Several linears over m rows of k columns at once (a decode step's r, k, v, g and decay
     * projections in one launch): each job as linear_epi. No job may write what another reads. */
    void (*linear_group)(vr_backend *be, int m, int k, const vr_linear_job *jobs, int n_jobs);
    /* For j < count: y[j] = x + sx * (maa[j] + mm_j @ W[j]^T), mm_j = mm + j * k: the linear of
     * mm_j [m, k] (row stride ldm) by W[j] [n, k], then ddlerp with it as the lora. */
    void (*ddlerp_lora)(vr_backend *be, const float *x, const float *sx, int m, int n, int count,
                        const float *const *maa, const float *mm, int k, int ldm, const vr_tensor *const *w,
                        float *const *y);
    /* Only for steps whose runs are all one row (m == n_runs, decode): xa = layer_norm(x); then
     * token_shift of xa into sx (the shift states updated); then y[j] = ddlerp(xa, sx, maa[j])
     * without a lora, for j < n_mix (at most 2). */
    void (*norm_shift_mix)(vr_backend *be, const float *x, int m, int n, const float *ln_w, const float *ln_b,
                           float eps, const vr_run *runs, int n_runs, float *const *shift_states, int n_mix,
                           const float *const *maa, float *const *y, float *xa, float *sx);
    /* group_norm, then y *= g elementwise (the mul op). */
    void (*group_norm_mul)(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w,
                           const float *b, float eps, const float *g, float *y);
    /* Releases the backend and everything it holds (vr_backend_free calls it; NULL: free(be)). */
    void (*destroy)(vr_backend *be);
    /* Waits for queued device work and reports the first failure since the last call (ops
     * themselves return nothing: a device backend records its first error and keeps it). */
    vr_status (*sync)(vr_backend *be, vr_error *err);
    /* Greedy choice on the device: for each of m rows of n logits (device memory), the first
     * index of the maximum (NaN never wins), its logit and log softmax(row)[index], written to
     * HOST arrays ids/logit/logprob (logit, logprob may be NULL). */
    vr_status (*argmax_rows)(vr_backend *be, const float *logits, int m, int n, int32_t *ids, float *logit,
                             float *logprob, vr_error *err);
    /* Token choice on the device for m rows of n logits (device memory): row i by the rule of
     * kernels/sample.h with rows[i], after subtracting its penalties (pen_ids[j] loses pen_sub[j]
     * for j in [pen_start[i], pen_start[i + 1]); host arrays, pen_start has m + 1 entries).
     * Writes HOST ids and the chosen token's raw logit and log softmax (logit, logprob may be
     * NULL); the logits are not modified. Sums run in another order than the host's, so a draw
     * within double rounding of a boundary may take the neighbouring token. */
    vr_status (*sample_rows)(vr_backend *be, const float *logits, int m, int n, const vr_sample_row *rows,
                             const int32_t *pen_start, const int32_t *pen_ids, const float *pen_sub, int32_t *ids,
                             float *logit, float *logprob, vr_error *err);
    /* Device memory in use now, in bytes, by every process on the device (for figures such as
     * memory per session: take differences). */
    size_t (*memory_in_use)(vr_backend *be);
    /* Page-locked host memory (downloads into it run at full link speed); NULL on failure.
     * Where these are NULL, plain malloc'd memory is used. */
    void *(*host_alloc)(vr_backend *be, size_t bytes);
    void (*host_free)(vr_backend *be, void *p);
    /* Recorded steps (CUDA graphs). graph_begin(key, replay = 0) starts a recording: the ops that
     * follow are recorded, not run, until graph_end, which keeps the recording as `key` and runs
     * it. graph_begin(key, replay = 1), when graph_ready(key): the ops that follow run nothing
     * but refresh the host tables they pass (token ids, runs, state pointers); graph_end then
     * runs the recording with those tables. A recording stays valid while every device buffer
     * and size the ops were given stays the same: whoever reallocates one calls graph_drop.
     * graph_end returns VR_ERR_UNAVAILABLE, having run nothing and kept no error, when the
     * recording failed or the replayed ops differed from it: run the step without it.
     * graph_end(run = 0) abandons the recording or replay (nothing runs, nothing is kept). No
     * upload, download, sync or argmax between graph_begin and graph_end. */
    vr_status (*graph_begin)(vr_backend *be, int key, int replay, vr_error *err);
    vr_status (*graph_end)(vr_backend *be, int run, vr_error *err);
    int (*graph_ready)(vr_backend *be, int key);
    void (*graph_drop)(vr_backend *be);
    /* Optional (NULL: not offered): writes a text table of where the device time went, op by op,
     * since the last call, into buf (cap bytes) and starts over; returns the bytes written, 0
     * when nothing was gathered (the CUDA backend gathers with VRWKV_CUDA_PROFILE=1). */
    size_t (*profile_take)(vr_backend *be, char *buf, size_t cap);
} vr_backend_ops;

struct vr_backend {
    const vr_backend_ops *ops;
    const char *name;
    vr_device device;
    void *impl;
};

/* The CPU backend (always available). threads <= 0: OpenMP default. */
vr_status vr_backend_cpu_create(int threads, vr_backend **out, vr_error *err);
/* The CUDA backend on GPU `device` (kernels/cuda; weights copied to the device in their dtype,
 * GEMMs through cuBLAS with TF32 off). VR_ERR_UNAVAILABLE when this build has no CUDA or no
 * device is present; VR_ERR_INVALID for a device index out of range. Environment:
 * VRWKV_CUDA_FAST_GEMM=1 runs many-row bf16/f16 GEMMs as cublasGemmEx on the weight dtype with
 * f32 compute (faster, not exact: activations rounded to bf16/f16). Many-row bf16/f16 GEMMs
 * otherwise run as three tensor-core GEMMs on slices of the activations (f32 precision up to
 * summation order; VRWKV_CUDA_GEMM=split, the default) or as SGEMMs on weights converted to f32
 * a tile at a time (VRWKV_CUDA_GEMM=f32). */
vr_status vr_backend_cuda_create(int device, vr_backend **out, vr_error *err);
/* By name: "cpu" (arg = threads) or "cuda" (arg = device index; <= 0 means device 0); NULL
 * means "cpu". kernels/backend.c. */
vr_status vr_backend_create(const char *name, int threads_or_device, vr_backend **out, vr_error *err);
void vr_backend_free(vr_backend *be);

/* Helpers over ops, for readability in model/ code. */
static inline float *vr_alloc_f32(vr_backend *be, size_t n) { return (float *)be->ops->alloc(be, n * sizeof(float)); }

#endif
