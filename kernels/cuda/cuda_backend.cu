/* kernels/cuda/cuda_backend.cu — the CUDA backend's op table, creation, device memory ops,
 * scratch and error recording. Everything runs in order on one stream of the backend; a
 * download waits for it. Holds no model math (see cuda_ops.cu, cuda_linear.cu, sampling.cu).
 * Must not let a CUDA failure pass silently: the first one is kept and sync() reports it. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.h"

static void set_err(vr_error *err, vr_status code, const char *fmt, va_list ap) {
    if (!err) return;
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
}

static vr_status err_set(vr_error *err, vr_status code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static vr_status err_set(vr_error *err, vr_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_err(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void vrc_fail(vr_backend *be, vr_status code, const char *fmt, ...) {
    vrc_impl *c = vrc(be);
    if (c->first_error != VR_OK) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->first_msg, sizeof c->first_msg, fmt, ap);
    va_end(ap);
    c->first_error = code;
    fprintf(stderr, "vrwkv cuda backend: %s\n", c->first_msg);
}

int vrc_check(vr_backend *be, cudaError_t e, const char *what) {
    if (e == cudaSuccess) return 0;
    vrc_fail(be, e == cudaErrorMemoryAllocation ? VR_ERR_NOMEM : VR_ERR_INTERNAL, "%s: %s (%s)", what,
             cudaGetErrorString(e), cudaGetErrorName(e));
    return 1;
}

int vrc_check_launch(vr_backend *be, const char *what) { return vrc_check(be, cudaGetLastError(), what); }

int vrc_check_blas(vr_backend *be, cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    vrc_fail(be, s == CUBLAS_STATUS_ALLOC_FAILED ? VR_ERR_NOMEM : VR_ERR_INTERNAL, "%s: cuBLAS status %d", what,
             (int)s);
    return 1;
}

int vrc_enter_as(vr_backend *be, const char *op) {
    vrc_impl *c = vrc(be);
    cudaSetDevice(c->device);
    if (c->prof && c->mode == VRC_EAGER) vrc_profile_mark(be, op);
    return c->mode == VRC_REFILL;
}

void vrc_stream_drained(vr_backend *be) {
    vrc_impl *c = vrc(be);
    if (c->mode == VRC_EAGER) c->arena_off = 0;
}

void *vrc_scratch(vr_backend *be, int slot, size_t bytes) {
    vrc_impl *c = vrc(be);
    if (c->scratch_cap[slot] >= bytes && c->scratch[slot]) return c->scratch[slot];
    if (c->mode != VRC_EAGER) { /* a recording must not reallocate what it refers to */
        vrc_fail(be, VR_ERR_INTERNAL, "device scratch would grow while recording a step");
        return NULL;
    }
    if (c->n_graphs) vrc_graph_drop(be); /* recordings refer to the old buffer */
    if (c->scratch[slot]) cudaFree(c->scratch[slot]); /* waits for the device: nothing still reads it */
    c->scratch[slot] = NULL;
    c->scratch_cap[slot] = 0;
    size_t cap = bytes + bytes / 4 + 256;
    if (vrc_check(be, cudaMalloc(&c->scratch[slot], cap), "allocating device scratch")) {
        c->scratch[slot] = NULL;
        return NULL;
    }
    c->scratch_cap[slot] = cap;
    return c->scratch[slot];
}

/* a table too large for the arena: the scratch slot, from pageable memory (eager only) */
static void *upload_via_scratch(vr_backend *be, int slot, const void *host, size_t bytes) {
    vrc_impl *c = vrc(be);
    if (c->mode != VRC_EAGER) {
        vrc_fail(be, VR_ERR_INTERNAL, "a %zu-byte table does not fit the %zu-byte table arena of a recording",
                 bytes, c->arena_cap);
        return NULL;
    }
    void *d = vrc_scratch(be, slot, bytes);
    if (!d) return NULL;
    if (vrc_check(be, cudaMemcpyAsync(d, host, bytes, cudaMemcpyHostToDevice, c->stream), "copying a table"))
        return NULL;
    return d;
}

void *vrc_upload_table(vr_backend *be, int slot, const void *host, size_t bytes) {
    vrc_impl *c = vrc(be);
    size_t need = (bytes + 255) & ~(size_t)255;
    if (!c->arena_host || need > c->arena_cap) return upload_via_scratch(be, slot, host, bytes);
    if (c->arena_off + need > c->arena_cap) {
        if (c->mode != VRC_EAGER) return upload_via_scratch(be, slot, host, bytes); /* fails, with the reason */
        /* full: wait until every staged table has been copied, then start over */
        if (vrc_check(be, cudaStreamSynchronize(c->stream), "waiting for the table arena")) return NULL;
        c->arena_off = 0;
    }
    size_t off = c->arena_off;
    c->arena_off += need;
    memcpy(c->arena_host + off, host, bytes);
    if (c->mode == VRC_REFILL) {
        vrc_graph *g = NULL;
        for (int i = 0; i < c->n_graphs; i++)
            if (c->graphs[i].key == c->mode_key) g = &c->graphs[i];
        int at = c->refill_index++;
        if (!g || at >= g->n_tables || g->table_off[at] != off || g->table_size[at] != bytes) c->refill_mismatch = 1;
        return c->arena_dev + off; /* not read: nothing is launched while refilling */
    }
    if (c->mode == VRC_CAPTURE) {
        if (c->rec_n == c->rec_cap) {
            int cap = c->rec_cap ? c->rec_cap * 2 : 256;
            size_t *o = (size_t *)realloc(c->rec_off, (size_t)cap * sizeof *o);
            if (o) c->rec_off = o;
            size_t *s = (size_t *)realloc(c->rec_size, (size_t)cap * sizeof *s);
            if (s) c->rec_size = s;
            if (!o || !s) {
                vrc_fail(be, VR_ERR_NOMEM, "out of host memory recording a step");
                return NULL;
            }
            c->rec_cap = cap;
        }
        c->rec_off[c->rec_n] = off;
        c->rec_size[c->rec_n] = bytes;
        c->rec_n++;
    }
    if (vrc_check(be,
                  cudaMemcpyAsync(c->arena_dev + off, c->arena_host + off, bytes, cudaMemcpyHostToDevice, c->stream),
                  "copying a table"))
        return NULL;
    return c->arena_dev + off;
}

int vrc_upload_tables(vr_backend *be, int n, const int *slots, const void *const *hosts, const size_t *sizes,
                      void **outs) {
    vrc_impl *c = vrc(be);
    size_t total = 0;
    for (int i = 0; i < n; i++) total += (sizes[i] + 255) & ~(size_t)255;
    int via_arena = c->arena_host && total <= c->arena_cap;
    if (via_arena && c->mode == VRC_EAGER && c->arena_off + total > c->arena_cap) {
        /* start over now, not between two of them */
        if (vrc_check(be, cudaStreamSynchronize(c->stream), "waiting for the table arena")) return 0;
        c->arena_off = 0;
    }
    int ok = 1;
    for (int i = 0; i < n; i++) {
        outs[i] = NULL;
        if (!sizes[i]) continue;
        outs[i] = via_arena ? vrc_upload_table(be, slots[i], hosts[i], sizes[i])
                            : upload_via_scratch(be, slots[i], hosts[i], sizes[i]);
        ok &= outs[i] != NULL;
    }
    return ok;
}

vr_status vrc_error_take(vr_backend *be, vr_error *err, vr_status fallback, const char *what) {
    vrc_impl *c = vrc(be);
    vr_status st = c->first_error != VR_OK
                       ? vrc_error_out(be, err, c->first_error, "CUDA backend: %s", c->first_msg)
                       : vrc_error_out(be, err, fallback, "CUDA backend: %s", what);
    if (c->mode == VRC_EAGER) {
        c->first_error = VR_OK;
        c->first_msg[0] = 0;
    }
    return st;
}

vr_status vrc_error_out(vr_backend *be, vr_error *err, vr_status code, const char *fmt, ...) {
    (void)be;
    va_list ap;
    va_start(ap, fmt);
    set_err(err, code, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- memory ---- */

static void *cu_alloc(vr_backend *be, size_t bytes) {
    vrc_enter(be);
    if (vrc(be)->mode == VRC_CAPTURE) { /* not allowed while capturing: the recording fails instead */
        vrc_fail(be, VR_ERR_INTERNAL, "device memory was allocated while a step was being recorded");
        return NULL;
    }
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError(); /* an allocation failure is reported by the NULL, not kept */
        return NULL;
    }
    /* zeroed, as the contract says; ordered before any later use on the stream */
    if (vrc_check(be, cudaMemsetAsync(p, 0, bytes ? bytes : 1, vrc(be)->stream), "zeroing an allocation")) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

static void cu_free(vr_backend *be, void *p) {
    if (!p) return;
    vrc_enter(be);
    vrc_impl *c = vrc(be);
    if (c->mode == VRC_CAPTURE) { /* cudaFree would break the capture: later (the recording fails) */
        if (c->n_deferred == c->cap_deferred) {
            int cap = c->cap_deferred ? 2 * c->cap_deferred : 8;
            void **d = (void **)realloc(c->deferred_free, (size_t)cap * sizeof *d);
            if (!d) {
                vrc_fail(be, VR_ERR_NOMEM, "out of host memory recording a step");
                return; /* leaked: freeing it now would be worse */
            }
            c->deferred_free = d;
            c->cap_deferred = cap;
        }
        c->deferred_free[c->n_deferred++] = p;
        vrc_fail(be, VR_ERR_INTERNAL, "device memory was freed while a step was being recorded");
        return;
    }
    vrc_check(be, cudaFree(p), "freeing device memory");
}

void vrc_free_deferred(vr_backend *be) {
    vrc_impl *c = vrc(be);
    if (c->mode != VRC_EAGER || !c->n_deferred) return;
    vrc_graph_drop(be); /* recordings may refer to what goes (the drop was refused while capturing) */
    for (int i = 0; i < c->n_deferred; i++) cudaFree(c->deferred_free[i]);
    c->n_deferred = 0;
}

static int refuse_while_recording(vr_backend *be, const char *what) {
    if (vrc(be)->mode == VRC_EAGER) return 0;
    vrc_fail(be, VR_ERR_INTERNAL, "%s while recording a step (only ops may be recorded)", what);
    return 1;
}

static void cu_upload(vr_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    vrc_enter(be);
    if (refuse_while_recording(be, "an upload")) return;
    vrc_impl *c = vrc(be);
    if (vrc_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream), "upload")) return;
    if (!vrc_check(be, cudaStreamSynchronize(c->stream), "upload (waiting)")) vrc_stream_drained(be);
}

static void cu_download(vr_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes) return;
    vrc_enter(be);
    vrc_impl *c = vrc(be);
    if (refuse_while_recording(be, "a download") ||
        vrc_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream), "download")) {
        memset(dst, 0xff, bytes); /* NaN-poison: a failed download must not look like data */
        return;
    }
    if (vrc_check(be, cudaStreamSynchronize(c->stream), "download (waiting)")) memset(dst, 0xff, bytes);
    else vrc_stream_drained(be);
}

static void cu_copy(vr_backend *be, void *dst, const void *src, size_t bytes) {
    if (!bytes || dst == src) return;
    if (vrc_enter(be)) return;
    vrc_check(be, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, vrc(be)->stream), "device copy");
}

/* local copies of tensor.c's helpers: this library must not need the core library's symbols */
static size_t dtype_size(vr_dtype t) { return t == VR_F32 || t == VR_I32 ? 4 : t == VR_I64 ? 8 : t == VR_U8 ? 1 : 2; }
static const char *dtype_name(vr_dtype t) {
    static const char *names[] = {"f32", "f16", "bf16", "i32", "i64", "u8"};
    return (unsigned)t < 6 ? names[t] : "?";
}

static vr_status cu_weight_upload(vr_backend *be, const vr_tensor *host, vr_tensor *out, vr_error *err) {
    if (host->dtype != VR_F32 && host->dtype != VR_F16 && host->dtype != VR_BF16)
        return err_set(err, VR_ERR_UNSUPPORTED, "the CUDA backend takes f32, f16 or bf16 weights, not %s",
                       dtype_name(host->dtype));
    size_t bytes = dtype_size(host->dtype);
    for (int i = 0; i < host->ndim; i++) bytes *= (size_t)host->shape[i];
    vrc_enter(be);
    if (refuse_while_recording(be, "a weight upload"))
        return err_set(err, VR_ERR_INTERNAL, "a weight cannot be uploaded while a step is being recorded");
    void *d = NULL;
    cudaError_t e = cudaMalloc(&d, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return err_set(err, VR_ERR_NOMEM, "out of GPU memory for a %zu-byte weight (%zu of %zu MiB free)", bytes,
                       free_b >> 20, total_b >> 20);
    }
    vrc_impl *c = vrc(be);
    e = cudaMemcpyAsync(d, host->data, bytes, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess) {
        cudaFree(d);
        return err_set(err, VR_ERR_INTERNAL, "copying a weight to the GPU: %s", cudaGetErrorString(e));
    }
    *out = *host;
    out->device = VR_DEVICE_CUDA;
    out->data = d;
    return VR_OK;
}

static void cu_weight_free(vr_backend *be, vr_tensor *t) {
    if (t->data) cu_free(be, t->data);
    t->data = NULL;
}

static vr_status cu_sync(vr_backend *be, vr_error *err) {
    vrc_enter(be);
    vrc_impl *c = vrc(be);
    if (c->mode != VRC_EAGER)
        return err_set(err, VR_ERR_INTERNAL, "CUDA backend: sync() while recording a step");
    if (!vrc_check(be, cudaStreamSynchronize(c->stream), "waiting for the GPU")) vrc_stream_drained(be);
    vrc_profile_flush(be);
    if (c->first_error == VR_OK) return VR_OK;
    vr_status st = err_set(err, c->first_error, "CUDA backend: %s", c->first_msg);
    c->first_error = VR_OK;
    c->first_msg[0] = 0;
    return st;
}

static void cu_destroy(vr_backend *be) {
    vrc_impl *c = vrc(be);
    if (c) {
        cudaSetDevice(c->device);
        cudaStreamSynchronize(c->stream);
        for (int i = 0; i < VRC_SCR_N; i++)
            if (c->scratch[i]) cudaFree(c->scratch[i]);
        vrc_graphs_free(be);
        vrc_profile_free(be);
        if (c->arena_host) cudaFreeHost(c->arena_host);
        if (c->arena_dev) cudaFree(c->arena_dev);
        if (c->blas_workspace) cudaFree(c->blas_workspace);
        if (c->host_table) free(c->host_table);
        if (c->blas) cublasDestroy(c->blas);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c);
    }
    free(be);
}

static size_t cu_memory_in_use(vr_backend *be) {
    vrc_enter(be);
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return total_b - free_b;
}

static void *cu_host_alloc(vr_backend *be, size_t bytes) {
    vrc_enter(be);
    void *p = NULL;
    if (cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocDefault) != cudaSuccess) {
        (void)cudaGetLastError();
        return NULL;
    }
    return p;
}

static void cu_host_free(vr_backend *be, void *p) {
    if (!p) return;
    vrc_enter(be);
    vrc_check(be, cudaFreeHost(p), "freeing pinned host memory");
}

/* fused: the optional fused ops (fewer launches per decode step); VRWKV_CUDA_FUSE=0 leaves them
 * out, and model/ composes the plain ops instead (for bisecting and measuring) */
static vr_backend_ops make_ops(int fused) {
    vr_backend_ops o;
    memset(&o, 0, sizeof o);
    o.alloc = cu_alloc;
    o.free = cu_free;
    o.upload = cu_upload;
    o.download = cu_download;
    o.copy = cu_copy;
    o.weight_upload = cu_weight_upload;
    o.weight_free = cu_weight_free;
    o.linear = vrc_linear;
    o.embedding = vrc_embedding;
    o.layer_norm = vrc_layer_norm;
    o.group_norm = vrc_group_norm;
    o.token_shift = vrc_token_shift;
    o.ddlerp = vrc_ddlerp;
    o.wkv6 = vrc_wkv6;
    o.tanh_ = vrc_tanh;
    o.silu = vrc_silu;
    o.sigmoid = vrc_sigmoid;
    o.relu_sq = vrc_relu_sq;
    o.quick_gelu = vrc_quick_gelu;
    o.decay = vrc_decay;
    o.mul = vrc_mul;
    o.add = vrc_add;
    o.add_row = vrc_add_row;
    o.attention = vrc_attention;
    o.patch_embed = vrc_patch_embed;
    o.gather_rows = vrc_gather_rows;
    o.scatter_rows = vrc_scatter_rows;
    o.destroy = cu_destroy;
    o.sync = cu_sync;
    o.argmax_rows = vrc_argmax_rows;
    o.sample_rows = vrc_sample_rows;
    if (fused) {
        o.linear_epi = vrc_linear_epi;
        o.ddlerp_lora = vrc_ddlerp_lora;
        o.linear_group = vrc_linear_group;
        o.norm_shift_mix = vrc_norm_shift_mix;
        o.group_norm_mul = vrc_group_norm_mul;
    }
    o.memory_in_use = cu_memory_in_use;
    o.host_alloc = cu_host_alloc;
    o.host_free = cu_host_free;
    o.graph_begin = vrc_graph_begin;
    o.graph_end = vrc_graph_end;
    o.graph_ready = vrc_graph_ready;
    o.graph_drop = vrc_graph_drop;
    o.profile_take = vrc_profile_take;
    return o;
}

extern "C" vr_status vr_backend_cuda_create(int device, vr_backend **out, vr_error *err) {
    *out = NULL;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        return err_set(err, VR_ERR_UNAVAILABLE, "no CUDA device is present (%s): use the cpu backend",
                       e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found 0 devices");
    }
    if (device < 0 || device >= count)
        return err_set(err, VR_ERR_INVALID, "CUDA device %d does not exist (%d visible: 0..%d)", device, count,
                       count - 1);
    if ((e = cudaSetDevice(device)) != cudaSuccess)
        return err_set(err, VR_ERR_UNAVAILABLE, "cannot use CUDA device %d: %s", device, cudaGetErrorString(e));
    vr_backend *be = (vr_backend *)calloc(1, sizeof *be);
    vrc_impl *c = (vrc_impl *)calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return err_set(err, VR_ERR_NOMEM, "out of memory creating the CUDA backend");
    }
    c->device = device;
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, device) == cudaSuccess) c->num_sms = prop.multiProcessorCount;
    if ((e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking)) != cudaSuccess) {
        free(be);
        free(c);
        return err_set(err, VR_ERR_UNAVAILABLE, "creating a CUDA stream on device %d: %s", device,
                       cudaGetErrorString(e));
    }
    cublasStatus_t bs = cublasCreate(&c->blas);
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(c->blas, c->stream);
    /* exactness first: no TF32. CUBLAS_DEFAULT_MATH computes f32 GEMMs with at least f32
     * precision (TF32 would need CUBLAS_TF32_TENSOR_OP_MATH; NVIDIA_TF32_OVERRIDE=0 keeps it
     * off for the process as well). */
    if (bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);
    if (bs != CUBLAS_STATUS_SUCCESS) {
        if (c->blas) cublasDestroy(c->blas);
        cudaStreamDestroy(c->stream);
        free(be);
        free(c);
        return err_set(err, VR_ERR_UNAVAILABLE, "creating a cuBLAS handle on device %d: status %d", device, (int)bs);
    }
    /* the table arena (pinned staging + device mirror) and a fixed cuBLAS workspace, so that a
     * step can be recorded as a CUDA graph (no allocation inside it) */
    c->arena_cap = (size_t)8 << 20;
    if (cudaHostAlloc((void **)&c->arena_host, c->arena_cap, cudaHostAllocDefault) != cudaSuccess ||
        cudaMalloc((void **)&c->arena_dev, c->arena_cap) != cudaSuccess) {
        (void)cudaGetLastError();
        if (c->arena_host) cudaFreeHost(c->arena_host);
        c->arena_host = NULL; /* tables then go through the scratch slot, and steps are not recorded */
        c->arena_dev = NULL;
        c->arena_cap = 0;
    }
    size_t blas_ws = (size_t)32 << 20;
    if (cudaMalloc(&c->blas_workspace, blas_ws) == cudaSuccess) {
        if (cublasSetWorkspace(c->blas, c->blas_workspace, blas_ws) != CUBLAS_STATUS_SUCCESS) {
            cudaFree(c->blas_workspace);
            c->blas_workspace = NULL;
        }
    } else {
        (void)cudaGetLastError();
        c->blas_workspace = NULL;
    }
    if (cudaEventCreateWithFlags(&c->replay_done, cudaEventDisableTiming) != cudaSuccess) {
        (void)cudaGetLastError();
        c->replay_done = NULL;
    }
    /* many-row f16/bf16 GEMMs: split (tensor cores, f32 precision) or f32 (converted tiles,
     * SGEMM); VRWKV_CUDA_GEMM=split|f32 chooses, VRC_SPLIT_DEFAULT otherwise */
    const char *gemm = getenv("VRWKV_CUDA_GEMM");
    if (gemm && !*gemm) gemm = NULL;
    c->split_gemm = gemm && !strcmp(gemm, "split") ? 1 : gemm && !strcmp(gemm, "f32") ? 0 : VRC_SPLIT_DEFAULT;
    if (gemm && strcmp(gemm, "split") && strcmp(gemm, "f32"))
        fprintf(stderr, "vrwkv: VRWKV_CUDA_GEMM=%s is not split or f32; using %s\n", gemm,
                VRC_SPLIT_DEFAULT ? "split" : "f32");
    const char *fast = getenv("VRWKV_CUDA_FAST_GEMM");
    c->fast_gemm = fast && !strcmp(fast, "1");
    const char *tile = getenv("VRWKV_CUDA_TILE_FLOATS");
    c->tile_floats = tile && atol(tile) > 0 ? (size_t)atol(tile) : (size_t)32 << 20; /* 128 MiB of f32 */
    static const vr_backend_ops cuda_ops = make_ops(1), cuda_ops_unfused = make_ops(0); /* once, thread-safely */
    const char *fuse = getenv("VRWKV_CUDA_FUSE");
    be->ops = fuse && !strcmp(fuse, "0") ? &cuda_ops_unfused : &cuda_ops;
    be->name = "cuda";
    be->device = VR_DEVICE_CUDA;
    be->impl = c;
    vrc_profile_init(be);
    *out = be;
    return VR_OK;
}
