/* kernels/cuda/cuda_profile.cu — where the device time goes, op by op (VRWKV_CUDA_PROFILE=1):
 * an event goes on the stream at each op's entry (vrc_enter), and the time from one mark to the
 * next is charged to the op of the first, so launch gaps and host waits count against the op
 * before them, which is what a batch-1 decode step is made of. sync() times the pending marks
 * (its own mark closes the last op; the time after a sync is nobody's); profile_take() hands
 * out the table and starts over. Only eager ops are marked:
 * a replayed CUDA graph runs none, so profile decode steps with VRWKV_CUDA_GRAPHS=0. Must not
 * change what any op computes or launches; when off it costs one branch per op. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

enum { MAX_MARKS = 1 << 16, MAX_OPS = 128 };

typedef struct prof_op {
    const char *name; /* an op function's __func__: static storage */
    double ms;
    long calls;
} prof_op;

struct vrc_profile {
    cudaEvent_t *events; /* a pool, reused from one sync to the next */
    const char **names;  /* the op of each pending mark */
    int n_marks, n_events;
    prof_op ops[MAX_OPS];
    int n_ops;
    long steps;          /* syncs that closed marks */
};

void vrc_profile_init(vr_backend *be) {
    const char *on = getenv("VRWKV_CUDA_PROFILE");
    if (!on || strcmp(on, "1") != 0) return;
    vrc_impl *c = vrc(be);
    c->prof = (vrc_profile *)calloc(1, sizeof *c->prof);
    if (c->prof) {
        c->prof->events = (cudaEvent_t *)calloc(MAX_MARKS, sizeof(cudaEvent_t));
        c->prof->names = (const char **)calloc(MAX_MARKS, sizeof(const char *));
    }
    if (!c->prof || !c->prof->events || !c->prof->names) {
        vrc_profile_free(be);
        fprintf(stderr, "vrwkv: VRWKV_CUDA_PROFILE=1: out of memory; profiling off\n");
    }
}

static void charge(vrc_profile *p, const char *name, double ms) {
    for (int i = 0; i < p->n_ops; i++)
        if (p->ops[i].name == name || !strcmp(p->ops[i].name, name)) {
            p->ops[i].ms += ms;
            p->ops[i].calls++;
            return;
        }
    if (p->n_ops == MAX_OPS) return;
    p->ops[p->n_ops].name = name;
    p->ops[p->n_ops].ms = ms;
    p->ops[p->n_ops].calls = 1;
    p->n_ops++;
}

void vrc_profile_flush(vr_backend *be) {
    vrc_impl *c = vrc(be);
    vrc_profile *p = c->prof;
    if (!p || p->n_marks == 0) return;
    cudaEventSynchronize(p->events[p->n_marks - 1]);
    for (int i = 0; i + 1 < p->n_marks; i++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, p->events[i], p->events[i + 1]) == cudaSuccess)
            charge(p, p->names[i], ms);
    }
    (void)cudaGetLastError(); /* an unrecorded event (a failed record) is skipped, not a backend error */
    p->steps++;
    p->n_marks = 0;
}

void vrc_profile_mark(vr_backend *be, const char *op) {
    vrc_impl *c = vrc(be);
    vrc_profile *p = c->prof;
    if (p->n_marks == MAX_MARKS) vrc_profile_flush(be); /* no sync for long: time what is there */
    if (p->n_marks == p->n_events) {
        if (cudaEventCreate(&p->events[p->n_events]) != cudaSuccess) {
            (void)cudaGetLastError();
            return;
        }
        p->n_events++;
    }
    if (cudaEventRecord(p->events[p->n_marks], c->stream) != cudaSuccess) {
        (void)cudaGetLastError();
        return;
    }
    p->names[p->n_marks++] = op;
}

size_t vrc_profile_take(vr_backend *be, char *buf, size_t cap) {
    vrc_impl *c = vrc(be);
    vrc_profile *p = c->prof;
    if (!p || !cap) return 0;
    if (p->n_marks && c->mode == VRC_EAGER) vrc_profile_mark(be, "(end)"); /* closes the last op */
    vrc_profile_flush(be);
    buf[0] = 0;
    if (p->n_ops == 0) return 0;
    /* by time, most first */
    for (int i = 1; i < p->n_ops; i++)
        for (int j = i; j > 0 && p->ops[j].ms > p->ops[j - 1].ms; j--) {
            prof_op t = p->ops[j];
            p->ops[j] = p->ops[j - 1];
            p->ops[j - 1] = t;
        }
    double total = 0;
    for (int i = 0; i < p->n_ops; i++) total += p->ops[i].ms;
    size_t n = 0;
    int w = snprintf(buf, cap, "  %-24s %8s %11s %10s %7s   (device time from each op's start to the next's; %ld syncs)\n",
                     "op", "calls", "total ms", "us/call", "share", p->steps);
    n = w > 0 && (size_t)w < cap ? (size_t)w : cap - 1;
    for (int i = 0; i < p->n_ops && n + 1 < cap; i++) {
        const char *name = p->ops[i].name;
        if (!strncmp(name, "vrc_", 4) || !strncmp(name, "cu_", 3)) name += name[0] == 'v' ? 4 : 3;
        w = snprintf(buf + n, cap - n, "  %-24s %8ld %11.3f %10.2f %6.1f%%\n", name, p->ops[i].calls, p->ops[i].ms,
                     1e3 * p->ops[i].ms / (double)p->ops[i].calls, total > 0 ? 100.0 * p->ops[i].ms / total : 0.0);
        if (w < 0) break;
        n += (size_t)w < cap - n ? (size_t)w : cap - n - 1;
    }
    p->n_ops = 0;
    p->steps = 0;
    return n;
}

void vrc_profile_free(vr_backend *be) {
    vrc_impl *c = vrc(be);
    vrc_profile *p = c->prof;
    if (!p) return;
    for (int i = 0; p->events && i < p->n_events; i++) cudaEventDestroy(p->events[i]);
    free(p->events);
    free(p->names);
    free(p);
    c->prof = NULL;
}
