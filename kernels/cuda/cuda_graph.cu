/* kernels/cuda/cuda_graph.cu — recorded steps: a decode step's ops captured once as a CUDA graph
 * and replayed, so a step costs one launch instead of hundreds. The ops' host tables (token ids,
 * runs, state pointers) reach the device through copy nodes that read the pinned table arena;
 * a replay first re-runs the ops in REFILL mode, which stages the new tables at the same
 * offsets and launches nothing, then launches the graph. A replay whose ops staged a different
 * table sequence is refused (the caller runs the step eagerly). Must not record anything that
 * allocates, waits or copies to the host: those are refused while recording. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

static vrc_graph *find(vrc_impl *c, int key) {
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].key == key) return &c->graphs[i];
    return NULL;
}

static void graph_release(vrc_graph *g) {
    if (g->exec) cudaGraphExecDestroy(g->exec);
    free(g->table_off);
    free(g->table_size);
    memset(g, 0, sizeof *g);
}

int vrc_graph_ready(vr_backend *be, int key) { return find(vrc(be), key) != NULL; }

/* the recording of key is gone (its replay was refused: the next eager step records it anew) */
static void forget(vrc_impl *c, int key) {
    for (int i = 0; i < c->n_graphs; i++)
        if (c->graphs[i].key == key) {
            graph_release(&c->graphs[i]);
            c->graphs[i] = c->graphs[--c->n_graphs];
            return;
        }
}

void vrc_graph_drop(vr_backend *be) {
    vrc_impl *c = vrc(be);
    if (c->mode == VRC_CAPTURE) { /* no wait may be recorded: the recording fails instead */
        vrc_fail(be, VR_ERR_INTERNAL, "a device buffer grew while a step was being recorded");
        return;
    }
    cudaSetDevice(c->device);
    if (c->n_graphs) cudaStreamSynchronize(c->stream); /* none may still run */
    for (int i = 0; i < c->n_graphs; i++) graph_release(&c->graphs[i]);
    c->n_graphs = 0;
}

void vrc_graphs_free(vr_backend *be) {
    vrc_impl *c = vrc(be);
    vrc_graph_drop(be);
    vrc_free_deferred(be);
    free(c->deferred_free);
    c->deferred_free = NULL;
    c->n_deferred = c->cap_deferred = 0;
    free(c->graphs);
    free(c->rec_off);
    free(c->rec_size);
    if (c->replay_done) cudaEventDestroy(c->replay_done);
    c->graphs = NULL;
    c->rec_off = c->rec_size = NULL;
    c->replay_done = NULL;
}

vr_status vrc_graph_begin(vr_backend *be, int key, int replay, vr_error *err) {
    vrc_impl *c = vrc(be);
    vrc_enter(be);
    if (c->mode != VRC_EAGER) return vrc_error_out(be, err, VR_ERR_INTERNAL, "a step is already being recorded");
    if (!c->arena_host)
        return vrc_error_out(be, err, VR_ERR_UNSUPPORTED, "steps cannot be recorded: no pinned table arena");
    if (replay && !find(c, key))
        return vrc_error_out(be, err, VR_ERR_INVALID, "no recorded step %d to replay", key);
    if (!replay && find(c, key))
        return vrc_error_out(be, err, VR_ERR_INVALID, "step %d is already recorded", key);
    if (c->first_error != VR_OK)
        return vrc_error_out(be, err, c->first_error, "CUDA backend: %s", c->first_msg);
    /* the arena's offsets restart at 0: nothing queued may still read it */
    if (vrc_check(be, cudaStreamSynchronize(c->stream), "waiting before a recorded step"))
        return vrc_error_out(be, err, VR_ERR_INTERNAL, "CUDA backend: %s", c->first_msg);
    c->arena_off = 0;
    c->mode_key = key;
    c->error_before = c->first_error;
    if (replay) {
        c->mode = VRC_REFILL;
        c->refill_index = 0;
        c->refill_mismatch = 0;
        return VR_OK;
    }
    c->rec_n = 0;
    cudaError_t e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return vrc_error_out(be, err, VR_ERR_INTERNAL, "starting a CUDA graph capture: %s", cudaGetErrorString(e));
    }
    c->mode = VRC_CAPTURE;
    return VR_OK;
}

/* a failed recording or replay leaves no error behind: the caller runs the step eagerly */
static vr_status give_up(vr_backend *be, vr_error *err, const char *what, const char *why) {
    vrc_impl *c = vrc(be);
    c->mode = VRC_EAGER;
    char msg[480];
    snprintf(msg, sizeof msg, "%s", c->first_error != VR_OK ? c->first_msg : why);
    if (c->error_before == VR_OK) {
        c->first_error = VR_OK;
        c->first_msg[0] = 0;
    }
    (void)cudaGetLastError();
    cudaStreamSynchronize(c->stream);
    c->arena_off = 0;
    vrc_free_deferred(be); /* what the capture freed */
    return vrc_error_out(be, err, VR_ERR_UNAVAILABLE, "%s: %s", what, msg);
}

static vr_status launch(vr_backend *be, vrc_graph *g, vr_error *err) {
    vrc_impl *c = vrc(be);
    cudaError_t e = cudaGraphLaunch(g->exec, c->stream);
    if (e == cudaSuccess && c->replay_done) e = cudaEventRecord(c->replay_done, c->stream);
    if (e != cudaSuccess) {
        vrc_check(be, e, "launching a recorded step");
        return vrc_error_out(be, err, VR_ERR_INTERNAL, "CUDA backend: %s", c->first_msg);
    }
    return VR_OK;
}

vr_status vrc_graph_end(vr_backend *be, int run, vr_error *err) {
    vrc_impl *c = vrc(be);
    vrc_enter(be);
    if (!run) {
        if (c->mode == VRC_CAPTURE) {
            cudaGraph_t graph = NULL;
            cudaStreamEndCapture(c->stream, &graph);
            if (graph) cudaGraphDestroy(graph);
        }
        if (c->mode != VRC_EAGER) give_up(be, NULL, "", "");
        return VR_OK;
    }
    if (c->mode == VRC_REFILL) {
        vrc_graph *g = find(c, c->mode_key);
        int ok = g && !c->refill_mismatch && c->refill_index == g->n_tables && c->first_error == c->error_before;
        if (!ok) {
            vr_status st = give_up(be, err, "replaying a recorded step", "the step's ops differ from the recording");
            forget(c, c->mode_key); /* give_up waited: it is not running */
            return st;
        }
        c->mode = VRC_EAGER;
        return launch(be, g, err);
    }
    if (c->mode != VRC_CAPTURE) return vrc_error_out(be, err, VR_ERR_INTERNAL, "no step is being recorded");
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    c->mode = VRC_EAGER;
    if (e != cudaSuccess || !graph || c->first_error != c->error_before) {
        if (graph) cudaGraphDestroy(graph);
        return give_up(be, err, "recording a step", e != cudaSuccess ? cudaGetErrorString(e) : "an op failed");
    }
    cudaGraphExec_t exec = NULL;
    e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) return give_up(be, err, "instantiating a recorded step", cudaGetErrorString(e));
    if (c->n_graphs == c->cap_graphs) {
        int cap = c->cap_graphs ? c->cap_graphs * 2 : 16;
        vrc_graph *ng = (vrc_graph *)realloc(c->graphs, (size_t)cap * sizeof *ng);
        if (!ng) {
            cudaGraphExecDestroy(exec);
            return give_up(be, err, "recording a step", "out of host memory");
        }
        c->graphs = ng;
        c->cap_graphs = cap;
    }
    vrc_graph *g = &c->graphs[c->n_graphs];
    memset(g, 0, sizeof *g);
    g->key = c->mode_key;
    g->exec = exec;
    g->n_tables = c->rec_n;
    g->table_off = (size_t *)malloc((size_t)(c->rec_n ? c->rec_n : 1) * sizeof(size_t));
    g->table_size = (size_t *)malloc((size_t)(c->rec_n ? c->rec_n : 1) * sizeof(size_t));
    if (!g->table_off || !g->table_size) {
        graph_release(g);
        return give_up(be, err, "recording a step", "out of host memory");
    }
    memcpy(g->table_off, c->rec_off, (size_t)c->rec_n * sizeof(size_t));
    memcpy(g->table_size, c->rec_size, (size_t)c->rec_n * sizeof(size_t));
    c->n_graphs++;
    /* the captured work has not run yet: run it now, with the tables staged while capturing */
    return launch(be, g, err);
}
