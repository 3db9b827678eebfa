/* kernels/cuda/cuda_internal.h — what the CUDA backend's files share: the backend's private
 * state (stream, cuBLAS handle, grow-only device scratch), error recording, the op functions.
 * Not a public interface: model/ reaches the ops only through vr_backend_ops. CUDA C++ kept
 * C-like; must not be included from C files. */
#ifndef VR_CUDA_INTERNAL_H
#define VR_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "kernels/backend.h"
}

/* Grow-only device scratch slots (contents do not survive the op that filled them). */
enum {
    VRC_SCR_TABLE = 0, VRC_SCR_WTILE, VRC_SCR_PATCH, VRC_SCR_SCORES, VRC_SCR_XCONV, VRC_SCR_SAMPLE,
    /* sample_rows: its tables (rows, penalties, segment offsets), work arrays, CUB's temporary */
    VRC_SCR_SROWS, VRC_SCR_SPEN, VRC_SCR_SOFF, VRC_SCR_SWORK, VRC_SCR_SCUB,
    VRC_SCR_EPI, /* a fused linear's products (many rows, GATE_ADD or MUL_ADD) */
    VRC_SCR_SPLIT, /* split f16 GEMMs: the scaled products and the rows' scales */
    VRC_SCR_N
};

/* Many-row f16/bf16 GEMMs split into tensor-core products by default (1 since the H100 run of
 * 2026-11-27 passed the op tests and fixture cases with them and ran the ViT and large batches
 * 1.6-1.7x faster than the f32 path; VRWKV_CUDA_GEMM=f32 keeps that path; docs/cuda.md) */
enum { VRC_SPLIT_DEFAULT = 1 };

/* Recording modes (graph_begin/graph_end): ops run (EAGER), are captured into a CUDA graph
 * (CAPTURE), or only refresh their host tables for a replay (REFILL: nothing is launched). */
enum { VRC_EAGER = 0, VRC_CAPTURE, VRC_REFILL };

/* One recorded step: the executable graph and the tables its copy nodes read (offsets and
 * sizes in the pinned arena, in op order): a replay's ops must write the same sequence. */
typedef struct vrc_graph {
    int key;
    cudaGraphExec_t exec;
    int n_tables;
    size_t *table_off, *table_size;
} vrc_graph;

typedef struct vrc_impl {
    int device;
    cudaStream_t stream;
    cublasHandle_t blas;
    int fast_gemm;             /* VRWKV_CUDA_FAST_GEMM=1 */
    int split_gemm;            /* many-row bf16/f16 GEMMs on 3 activation slices, tensor cores (VRWKV_CUDA_GEMM) */
    size_t tile_floats;        /* f32 weight tile for many-row f16/bf16 GEMMs (VRWKV_CUDA_TILE_FLOATS, tests) */
    int num_sms;
    void *scratch[VRC_SCR_N];  /* device */
    size_t scratch_cap[VRC_SCR_N];
    void *host_table;          /* host staging for index arrays and pointer tables */
    size_t host_table_cap;
    vr_status first_error;     /* VR_OK until something fails; kept until sync() reports it */
    char first_msg[480];
    /* Table arena: host tables are staged in pinned memory at increasing offsets and copied to
     * the same offsets of a device buffer, asynchronously. Offsets restart at 0 only once the
     * stream has drained (every earlier copy done). */
    uint8_t *arena_host; /* pinned */
    uint8_t *arena_dev;
    size_t arena_cap, arena_off;
    /* recording */
    int mode;                  /* VRC_EAGER / VRC_CAPTURE / VRC_REFILL */
    int mode_key;
    int refill_index, refill_mismatch;
    vr_status error_before;    /* first_error when the recording began */
    size_t *rec_off, *rec_size; /* the table sequence of the capture in progress */
    int rec_n, rec_cap;
    vrc_graph *graphs;
    int n_graphs, cap_graphs;
    cudaEvent_t replay_done;
    void *blas_workspace;
    void **deferred_free;      /* freed while capturing (cudaFree is not allowed then): freed later */
    int n_deferred, cap_deferred;
    struct vrc_profile *prof;  /* VRWKV_CUDA_PROFILE=1: per-op device times (cuda_profile.cu); else NULL */
} vrc_impl;

static inline vrc_impl *vrc(vr_backend *be) { return (vrc_impl *)be->impl; }

/* Records the first failure (later ones are dropped); prints it to stderr once. */
void vrc_fail(vr_backend *be, vr_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Checks a CUDA runtime result / the last launch; records a failure. Returns 0 when fine. */
int vrc_check(vr_backend *be, cudaError_t e, const char *what);
int vrc_check_launch(vr_backend *be, const char *what);
int vrc_check_blas(vr_backend *be, cublasStatus_t s, const char *what);
/* Makes the backend's device current for this thread. Returns 1 while the backend refills a
 * recording's tables (VRC_REFILL): the op must then launch nothing (ops that pass host tables
 * upload them first, then check vrc_refilling). */
int vrc_enter_as(vr_backend *be, const char *op);
#define vrc_enter(be) vrc_enter_as((be), __func__) /* the op's name, for VRWKV_CUDA_PROFILE */
static inline int vrc_refilling(vr_backend *be) { return vrc(be)->mode == VRC_REFILL; }
/* Frees what was freed while a step was being captured (call outside a capture). */
void vrc_free_deferred(vr_backend *be);
/* The stream drained: table-arena offsets may restart. */
void vrc_stream_drained(vr_backend *be);
/* A device scratch slot of at least bytes (NULL after recording a failure). */
void *vrc_scratch(vr_backend *be, int slot, size_t bytes);
/* Copies a host array (index list, runs, pointer table) to the device, ordered on the
 * backend's stream, without waiting: through the pinned table arena (a recorded copy node when
 * capturing; only the staging when refilling), or, for a table larger than the arena, through
 * the scratch slot. */
void *vrc_upload_table(vr_backend *be, int slot, const void *host, size_t bytes);
/* Several tables one op reads together (outs[i] NULL where sizes[i] is 0): as vrc_upload_table,
 * but the arena never starts over between them (it would overwrite the earlier ones before the
 * op reads them); through their scratch slots when they do not fit the arena together.
 * 0 after recording a failure. */
/* For ops that return a status: the recorded failure (else fallback with what) as that
 * status, and the record cleared, as sync does, so the failure is charged to this call only. */
vr_status vrc_error_take(vr_backend *be, vr_error *err, vr_status fallback, const char *what);
int vrc_upload_tables(vr_backend *be, int n, const int *slots, const void *const *hosts, const size_t *sizes,
                      void **outs);
/* Writes a vr_error from the recorded failure. */
vr_status vrc_error_out(vr_backend *be, vr_error *err, vr_status code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static inline unsigned vrc_blocks(size_t n, unsigned threads) {
    size_t b = (n + threads - 1) / threads;
    if (b > 65535u * 32u) b = 65535u * 32u; /* grid-stride loops cover the rest */
    return (unsigned)(b ? b : 1);
}

/* per-op device times (cuda_profile.cu), with VRWKV_CUDA_PROFILE=1: init reads the variable;
 * mark puts an event for op on the stream (eager ops only); flush times the pending marks (after
 * the stream drained); take writes the table into buf and starts over (the profile_take op). */
typedef struct vrc_profile vrc_profile;
void vrc_profile_init(vr_backend *be);
void vrc_profile_mark(vr_backend *be, const char *op);
void vrc_profile_flush(vr_backend *be);
size_t vrc_profile_take(vr_backend *be, char *buf, size_t cap);
void vrc_profile_free(vr_backend *be);

/* recorded steps (cuda_graph.cu): the backend ops of the same names, and the release of all */
vr_status vrc_graph_begin(vr_backend *be, int key, int replay, vr_error *err);
vr_status vrc_graph_end(vr_backend *be, int run, vr_error *err);
int vrc_graph_ready(vr_backend *be, int key);
void vrc_graph_drop(vr_backend *be);
void vrc_graphs_free(vr_backend *be);

/* ops (cuda_linear.cu) */
void vrc_linear(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, const vr_tensor *bias,
                float beta, float *y);
void vrc_embedding(vr_backend *be, const int32_t *ids, int n, const vr_tensor *table, float *out);
void vrc_linear_epi(vr_backend *be, const float *x, int m, int k, int ldx, const vr_tensor *w, vr_epilogue epi,
                    const float *aux, float *y);
void vrc_ddlerp_lora(vr_backend *be, const float *x, const float *sx, int m, int n, int count, const float *const *maa,
                     const float *mm, int k, int ldm, const vr_tensor *const *w, float *const *y);
void vrc_linear_group(vr_backend *be, int m, int k, const vr_linear_job *jobs, int n_jobs);
void vrc_norm_shift_mix(vr_backend *be, const float *x, int m, int n, const float *ln_w, const float *ln_b, float eps,
                        const vr_run *runs, int n_runs, float *const *shift_states, int n_mix, const float *const *maa,
                        float *const *y, float *xa, float *sx);
void vrc_attention(vr_backend *be, const float *q, const float *k, const float *v, int L, int heads, int hd,
                   float *out);
void vrc_patch_embed(vr_backend *be, const float *pixels, int S, int P, const vr_tensor *w, float *out);
/* ops (cuda_ops.cu) */
void vrc_layer_norm(vr_backend *be, const float *x, int m, int n, const float *w, const float *b, float eps,
                    float *y);
void vrc_group_norm(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w, const float *b,
                    float eps, float *y);
void vrc_group_norm_mul(vr_backend *be, const float *x, int m, int groups, int gsize, const float *w, const float *b,
                        float eps, const float *g, float *y);
void vrc_token_shift(vr_backend *be, const float *x, int n, const vr_run *runs, int n_runs, float *const *shift_states,
                     float *sx);
void vrc_ddlerp(vr_backend *be, const float *x, const float *sx, int m, int n, const float *maa, const float *lora,
                int ld_lora, float *y);
void vrc_wkv6(vr_backend *be, const float *r, const float *k, const float *v, const float *w, const float *u, int H,
              int N, const vr_run *runs, int n_runs, float *const *states, float *y);
void vrc_tanh(vr_backend *be, float *x, size_t n);
void vrc_silu(vr_backend *be, float *x, size_t n);
void vrc_sigmoid(vr_backend *be, float *x, size_t n);
void vrc_relu_sq(vr_backend *be, float *x, size_t n);
void vrc_quick_gelu(vr_backend *be, float *x, size_t n);
void vrc_decay(vr_backend *be, const float *x, const float *base, int m, int n, float *w);
void vrc_mul(vr_backend *be, const float *a, const float *b, float *y, size_t n);
void vrc_add(vr_backend *be, const float *a, const float *b, float *y, size_t n);
void vrc_add_row(vr_backend *be, float *x, const float *rowvec, int m, int n);
void vrc_gather_rows(vr_backend *be, const float *x, const int32_t *perm, int m, int n, float *rows);
void vrc_scatter_rows(vr_backend *be, const float *rows, const int32_t *perm, int m, int n, float *x);
/* sampling.cu */
vr_status vrc_argmax_rows(vr_backend *be, const float *logits, int m, int n, int32_t *ids, float *logit,
                          float *logprob, vr_error *err);
vr_status vrc_sample_rows(vr_backend *be, const float *logits, int m, int n, const vr_sample_row *rows,
                          const int32_t *pen_start, const int32_t *pen_ids, const float *pen_sub, int32_t *ids,
                          float *logit, float *logprob, vr_error *err);

#endif
