/* worker/transport_nccl.c — the activation transport over NCCL (see worker/transport.h for
 * the framing and the rules): ncclSend/ncclRecv between two ranks of one communicator, host
 * frames staged through device buffers. Compiled in every build; without VRWKV_HAVE_NCCL the
 * create calls only report that this build has no NCCL. Must not interpret payloads, and must
 * not bootstrap itself: the unique id comes from the caller (the coordinator).
 *
 * A link carries frames one way (a pipeline link: activations to the next stage): NCCL runs the
 * operations of one communicator in the order they were issued, so a receive still waiting
 * would hold up a later send of the same rank. A timeout or a communicator error aborts the
 * communicator under the enqueue lock; every later call finds the link broken. */
#include "worker/transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"

#ifndef VRWKV_HAVE_NCCL

vr_status vr_nccl_unique_id(void *id, vr_error *err) {
    (void)id;
    return vr_error_set(err, VR_ERR_UNAVAILABLE,
                        "this vrwkv was built without NCCL: rebuild with -DVRWKV_CUDA=ON where nccl.h and libnccl are "
                        "installed, or use the TCP transport");
}

vr_status vr_transport_nccl_create(const void *unique_id, int nranks, int rank, int peer, int device, int timeout_ms,
                                   vr_transport **out, vr_error *err) {
    (void)unique_id, (void)nranks, (void)rank, (void)peer, (void)device, (void)timeout_ms;
    *out = NULL;
    return vr_nccl_unique_id(NULL, err);
}

vr_status vr_nccl_device_uuid(int device, uint8_t *uuid, vr_error *err) {
    (void)device, (void)uuid;
    return vr_nccl_unique_id(NULL, err);
}

vr_status vr_nccl_available(vr_error *err) { return vr_nccl_unique_id(NULL, err); }

#else

#include <cuda_runtime.h>
#include <nccl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

_Static_assert(sizeof(ncclUniqueId) == VR_NCCL_UNIQUE_ID_BYTES, "ncclUniqueId size");

enum { HDR = 16 };

typedef struct self_frame {
    struct self_frame *next;
    uint64_t tag;
    size_t len;
    void *data; /* host copy */
} self_frame;

typedef struct nccl_transport {
    vr_transport base;
    ncclComm_t comm;
    int rank, peer, device;
    cudaStream_t send_stream, recv_stream;
    void *send_buf, *recv_buf; /* device staging, grow-only */
    size_t send_cap, recv_cap;
    pthread_mutex_t enqueue; /* NCCL calls on one communicator must not run concurrently */
    pthread_mutex_t queue_mu;
    self_frame *head, *tail;  /* frames to oneself, in order */
    atomic_int broken;          /* set for good on any failure */
    atomic_int abort_requested; /* vr_transport_interrupt: the thread in a wait aborts */
    char name[64];
} nccl_transport;

static vr_status nccl_fail(vr_error *err, vr_status code, const char *what, ncclResult_t r) {
    return vr_error_set(err, code, "NCCL %s: %s", what, ncclGetErrorString(r));
}

/* A non-blocking communicator may answer a call with ncclInProgress: the call is then still
 * being enqueued; wait until it is (or failed) before anything else touches the communicator. */
/* With t->enqueue held: the communicator goes (the link is broken from now on). */
static void abort_locked(nccl_transport *t) {
    atomic_store(&t->broken, 1);
    if (t->comm) ncclCommAbort(t->comm);
    t->comm = NULL;
}

/* With t->enqueue held. An interrupt meanwhile aborts the communicator (an enqueue that never
 * settles, say a peer that went away, cannot hold the thread). */
static ncclResult_t settle(nccl_transport *t, ncclResult_t r) {
    while (r == ncclInProgress) {
        if (atomic_load(&t->abort_requested)) {
            abort_locked(t);
            return ncclInvalidUsage;
        }
        sched_yield();
        if (ncclCommGetAsyncError(t->comm, &r) != ncclSuccess) return ncclInternalError;
    }
    return r;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static vr_status grow(void **buf, size_t *cap, size_t need, vr_error *err) {
    if (*cap >= need && *buf) return VR_OK;
    if (*buf) cudaFree(*buf);
    *buf = NULL;
    *cap = 0;
    size_t c = need < 4096 ? 4096 : need;
    cudaError_t e = cudaMalloc(buf, c);
    if (e != cudaSuccess) {
        *buf = NULL;
        return vr_error_set(err, VR_ERR_NOMEM, "NCCL transport: no GPU memory for a %zu-byte frame: %s", need,
                            cudaGetErrorString(e));
    }
    *cap = c;
    return VR_OK;
}

/* Waits for the stream until deadline_ms (now_ms() clock; < 0: forever), watching the
 * communicator. On timeout or a communicator error the communicator is aborted and the
 * transport broken. */
static vr_status wait_stream(nccl_transport *t, cudaStream_t s, double deadline_ms, vr_error *err) {
    for (;;) {
        cudaError_t q = cudaStreamQuery(s);
        if (q == cudaSuccess) {
            /* an abort lets the kernels end early: complete then means nothing */
            pthread_mutex_lock(&t->enqueue);
            int gone = !t->comm;
            pthread_mutex_unlock(&t->enqueue);
            if (gone) return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport to rank %d was aborted", t->peer);
            return VR_OK;
        }
        if (q != cudaErrorNotReady) {
            atomic_store(&t->broken, 1);
            return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport to rank %d: %s", t->peer,
                                cudaGetErrorString(q));
        }
        int late = (deadline_ms >= 0 && now_ms() > deadline_ms) || atomic_load(&t->abort_requested);
        pthread_mutex_lock(&t->enqueue);
        ncclResult_t async = ncclSuccess;
        int gone = !t->comm;
        if (!gone) ncclCommGetAsyncError(t->comm, &async);
        int failed = async != ncclSuccess && async != ncclInProgress;
        if (!gone && (failed || late)) abort_locked(t);
        pthread_mutex_unlock(&t->enqueue);
        if (gone) return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport to rank %d was aborted", t->peer);
        if (failed) return nccl_fail(err, VR_ERR_UNAVAILABLE, "communicator failed", async);
        if (late && atomic_load(&t->abort_requested))
            return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport to rank %d was interrupted (replaced by a "
                                "newer link)", t->peer);
        if (late)
            return vr_error_set(err, VR_ERR_CANCELLED,
                                "NCCL transport: the frame to or from rank %d did not complete in time; the "
                                "communicator was aborted",
                                t->peer);
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
}

static double deadline_after(int timeout_ms) { return timeout_ms < 0 ? -1.0 : now_ms() + timeout_ms; }

/* header then payload into the send buffer, ordered on the send stream before the ncclSend that
 * follows (a plain cudaMemcpy from pageable memory may return before its data has landed) */
static vr_status stage_frame(nccl_transport *t, uint64_t tag, const void *data, size_t len, vr_error *err) {
    uint8_t hdr[HDR];
    vr_put_u64le(hdr, tag);
    vr_put_u64le(hdr + 8, (uint64_t)len);
    cudaError_t e = cudaMemcpyAsync(t->send_buf, hdr, HDR, cudaMemcpyHostToDevice, t->send_stream);
    if (e == cudaSuccess && len)
        e = cudaMemcpyAsync((uint8_t *)t->send_buf + HDR, data, len, cudaMemcpyHostToDevice, t->send_stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(t->send_stream); /* hdr lives on this stack */
    if (e != cudaSuccess)
        return vr_error_set(err, VR_ERR_INTERNAL, "NCCL transport: staging a frame: %s", cudaGetErrorString(e));
    return VR_OK;
}

static vr_status fetch(void *host, const void *dev, size_t n, vr_error *err) {
    cudaError_t e = cudaMemcpy(host, dev, n, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess)
        return vr_error_set(err, VR_ERR_INTERNAL, "NCCL transport: reading a frame back: %s", cudaGetErrorString(e));
    return VR_OK;
}


/* Frame to oneself: one grouped send+receive through NCCL, the result queued for recv. */
static vr_status send_self(nccl_transport *t, uint64_t tag, const void *data, size_t len, vr_error *err) {
    size_t total = HDR + len;
    vr_status st = grow(&t->send_buf, &t->send_cap, total, err);
    if (st == VR_OK) st = grow(&t->recv_buf, &t->recv_cap, total, err);
    if (st != VR_OK) return st;
    if ((st = stage_frame(t, tag, data, len, err)) != VR_OK) return st;
    pthread_mutex_lock(&t->enqueue);
    ncclResult_t r = ncclInvalidUsage;
    if (t->comm) {
        r = ncclGroupStart();
        if (r == ncclSuccess) r = ncclSend(t->send_buf, total, ncclUint8, t->peer, t->comm, t->send_stream);
        if (r == ncclSuccess) r = ncclRecv(t->recv_buf, total, ncclUint8, t->peer, t->comm, t->send_stream);
        ncclResult_t r2 = settle(t, ncclGroupEnd());
        if (r == ncclSuccess) r = r2;
        if (r != ncclSuccess) abort_locked(t);
    }
    pthread_mutex_unlock(&t->enqueue);
    if (r != ncclSuccess) return nccl_fail(err, VR_ERR_UNAVAILABLE, "self send/recv", r);
    st = wait_stream(t, t->send_stream, deadline_after(VR_TRANSPORT_DEFAULT_SEND_STALL_MS), err);
    if (st != VR_OK) return st;
    self_frame *f = calloc(1, sizeof *f);
    uint8_t got[HDR];
    void *host = malloc(len ? len : 1);
    if (!f || !host) {
        free(f);
        free(host);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory queueing a %zu-byte frame", len);
    }
    st = fetch(got, t->recv_buf, HDR, err);
    if (st == VR_OK && len) st = fetch(host, (uint8_t *)t->recv_buf + HDR, len, err);
    if (st != VR_OK) {
        free(f);
        free(host);
        return st;
    }
    f->tag = vr_get_u64le(got);
    f->len = (size_t)vr_get_u64le(got + 8);
    f->data = host;
    pthread_mutex_lock(&t->queue_mu);
    if (t->tail) t->tail->next = f;
    else t->head = f;
    t->tail = f;
    pthread_mutex_unlock(&t->queue_mu);
    return VR_OK;
}

static vr_status nccl_send(vr_transport *base, uint64_t tag, const void *data, size_t len, vr_error *err) {
    nccl_transport *t = (nccl_transport *)base;
    if (atomic_load(&t->broken) || atomic_load(&t->abort_requested))
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport to rank %d is broken", t->peer);
    if (len > VR_TRANSPORT_DEFAULT_MAX_FRAME)
        return vr_error_set(err, VR_ERR_INVALID, "a %zu-byte frame is over the %zu-byte limit", len,
                            (size_t)VR_TRANSPORT_DEFAULT_MAX_FRAME);
    cudaSetDevice(t->device);
    if (t->peer == t->rank) return send_self(t, tag, data, len, err);
    vr_status st = grow(&t->send_buf, &t->send_cap, HDR + len, err);
    if (st == VR_OK) st = stage_frame(t, tag, data, len, err);
    if (st != VR_OK) return st;
    pthread_mutex_lock(&t->enqueue);
    ncclResult_t r = ncclInvalidUsage;
    if (t->comm) {
        r = settle(t, ncclSend(t->send_buf, HDR, ncclUint8, t->peer, t->comm, t->send_stream));
        if (r == ncclSuccess && len)
            r = settle(t,
                       ncclSend((uint8_t *)t->send_buf + HDR, len, ncclUint8, t->peer, t->comm, t->send_stream));
        if (r != ncclSuccess) abort_locked(t);
    }
    pthread_mutex_unlock(&t->enqueue);
    if (r != ncclSuccess) return nccl_fail(err, VR_ERR_UNAVAILABLE, "send", r);
    return wait_stream(t, t->send_stream, deadline_after(VR_TRANSPORT_DEFAULT_SEND_STALL_MS), err);
}

/* posts a receive of n bytes on the receive stream; an enqueue failure aborts the link */
static ncclResult_t post_recv(nccl_transport *t, void *buf, size_t n) {
    pthread_mutex_lock(&t->enqueue);
    ncclResult_t r = ncclInvalidUsage;
    if (t->comm) {
        r = settle(t, ncclRecv(buf, n, ncclUint8, t->peer, t->comm, t->recv_stream));
        if (r != ncclSuccess) abort_locked(t);
    }
    pthread_mutex_unlock(&t->enqueue);
    return r;
}

static vr_status nccl_recv(vr_transport *base, uint64_t tag_a, uint64_t tag_b, uint64_t *got_tag, void **data,
                           size_t *len, int timeout_ms, vr_error *err) {
    nccl_transport *t = (nccl_transport *)base;
    if (t->peer == t->rank) {
        pthread_mutex_lock(&t->queue_mu);
        self_frame *f = t->head;
        if (f) {
            t->head = f->next;
            if (!t->head) t->tail = NULL;
        }
        pthread_mutex_unlock(&t->queue_mu);
        if (!f) return vr_error_set(err, VR_ERR_CANCELLED, "NCCL transport: no frame sent to oneself is waiting");
        vr_status st = VR_OK;
        if (f->tag != tag_a && f->tag != tag_b) {
            st = vr_error_set(err, VR_ERR_FORMAT, "NCCL frame tag %llu, expected %llu", (unsigned long long)f->tag,
                              (unsigned long long)tag_a);
            free(f->data);
        } else {
            *data = f->data;
            *len = f->len;
            *got_tag = f->tag;
        }
        free(f);
        return st;
    }
    if (atomic_load(&t->broken) || atomic_load(&t->abort_requested))
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport to rank %d is broken", t->peer);
    cudaSetDevice(t->device);
    double deadline = deadline_after(timeout_ms); /* for the whole frame: header and payload */
    vr_status st = grow(&t->recv_buf, &t->recv_cap, HDR, err);
    if (st != VR_OK) return st;
    ncclResult_t r = post_recv(t, t->recv_buf, HDR);
    if (r != ncclSuccess) return nccl_fail(err, VR_ERR_UNAVAILABLE, "recv", r);
    if ((st = wait_stream(t, t->recv_stream, deadline, err)) != VR_OK) return st;
    uint8_t hdr[HDR];
    if ((st = fetch(hdr, t->recv_buf, HDR, err)) != VR_OK) {
        atomic_store(&t->broken, 1);
        return st;
    }
    uint64_t tag = vr_get_u64le(hdr), n = vr_get_u64le(hdr + 8);
    if (n > VR_TRANSPORT_DEFAULT_MAX_FRAME) {
        atomic_store(&t->broken, 1);
        return vr_error_set(err, VR_ERR_FORMAT, "NCCL frame of %llu bytes is over the limit", (unsigned long long)n);
    }
    void *host = malloc(n ? (size_t)n : 1);
    if (!host) {
        atomic_store(&t->broken, 1);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %llu-byte frame", (unsigned long long)n);
    }
    if (n) {
        if ((st = grow(&t->recv_buf, &t->recv_cap, (size_t)n, err)) != VR_OK) {
            free(host);
            atomic_store(&t->broken, 1);
            return st;
        }
        r = post_recv(t, t->recv_buf, (size_t)n);
        if (r != ncclSuccess) {
            free(host);
            return nccl_fail(err, VR_ERR_UNAVAILABLE, "recv", r);
        }
        if ((st = wait_stream(t, t->recv_stream, deadline, err)) != VR_OK ||
            (st = fetch(host, t->recv_buf, (size_t)n, err)) != VR_OK) {
            free(host);
            atomic_store(&t->broken, 1);
            return st;
        }
    }
    if (tag != tag_a && tag != tag_b) {
        free(host);
        atomic_store(&t->broken, 1);
        return vr_error_set(err, VR_ERR_FORMAT, "NCCL frame tag %llu, expected %llu", (unsigned long long)tag,
                            (unsigned long long)tag_a);
    }
    *data = host;
    *len = (size_t)n;
    *got_tag = tag;
    return VR_OK;
}

static const char *nccl_peer_name(vr_transport *base) { return ((nccl_transport *)base)->name; }

static void nccl_close(vr_transport *base) {
    nccl_transport *t = (nccl_transport *)base;
    cudaSetDevice(t->device);
    /* abort, not destroy: newer NCCL's destroy may wait for the peer to destroy its end too, and a
     * link is closed when its work is done or has failed, so nothing is left to finish */
    if (t->comm) ncclCommAbort(t->comm);
    if (t->send_stream) cudaStreamDestroy(t->send_stream);
    if (t->recv_stream) cudaStreamDestroy(t->recv_stream);
    if (t->send_buf) cudaFree(t->send_buf);
    if (t->recv_buf) cudaFree(t->recv_buf);
    while (t->head) {
        self_frame *f = t->head;
        t->head = f->next;
        free(f->data);
        free(f);
    }
    pthread_mutex_destroy(&t->enqueue);
    pthread_mutex_destroy(&t->queue_mu);
    free(t);
}

/* Never blocks (the caller may hold its own locks): the thread waiting in this transport, or
 * the next call, aborts the communicator and fails. */
static void nccl_interrupt(vr_transport *base, const char *why) {
    nccl_transport *t = (nccl_transport *)base;
    (void)why;
    atomic_store(&t->abort_requested, 1);
}

static const vr_transport_ops nccl_ops = {nccl_send, nccl_recv, nccl_peer_name, nccl_close, NULL, nccl_interrupt};

vr_status vr_nccl_unique_id(void *id, vr_error *err) {
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) return nccl_fail(err, VR_ERR_UNAVAILABLE, "making a unique id", r);
    memcpy(id, &u, sizeof u);
    return VR_OK;
}

vr_status vr_nccl_available(vr_error *err) {
    int version = 0, count = 0;
    ncclResult_t r = ncclGetVersion(&version);
    if (r != ncclSuccess) return nccl_fail(err, VR_ERR_UNAVAILABLE, "asking the library's version", r);
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL: no CUDA device is visible");
    }
    return VR_OK;
}

vr_status vr_nccl_device_uuid(int device, uint8_t *uuid, vr_error *err) {
    struct cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, device);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "CUDA device %d: %s", device, cudaGetErrorString(e));
    }
    _Static_assert(sizeof prop.uuid.bytes == VR_NCCL_DEVICE_UUID_BYTES, "cudaUUID_t size");
    memcpy(uuid, prop.uuid.bytes, VR_NCCL_DEVICE_UUID_BYTES);
    return VR_OK;
}

vr_status vr_transport_nccl_create(const void *unique_id, int nranks, int rank, int peer, int device, int timeout_ms,
                                   vr_transport **out, vr_error *err) {
    *out = NULL;
    if (!unique_id || nranks < 1 || rank < 0 || rank >= nranks || peer < 0 || peer >= nranks)
        return vr_error_set(err, VR_ERR_INVALID, "NCCL transport: rank %d / peer %d out of range for %d ranks", rank,
                            peer, nranks);
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        (void)cudaGetLastError();
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport: no CUDA device is present");
    }
    if (device < 0 || device >= count)
        return vr_error_set(err, VR_ERR_INVALID, "NCCL transport: CUDA device %d does not exist (%d visible)", device,
                            count);
    nccl_transport *t = calloc(1, sizeof *t);
    if (!t) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    t->base.ops = &nccl_ops;
    t->rank = rank;
    t->peer = peer;
    t->device = device;
    pthread_mutex_init(&t->enqueue, NULL);
    pthread_mutex_init(&t->queue_mu, NULL);
    snprintf(t->name, sizeof t->name, "nccl rank %d", peer);
    cudaSetDevice(device);
    if (cudaStreamCreateWithFlags(&t->send_stream, cudaStreamNonBlocking) != cudaSuccess ||
        cudaStreamCreateWithFlags(&t->recv_stream, cudaStreamNonBlocking) != cudaSuccess) {
        nccl_close(&t->base);
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "NCCL transport: cannot create CUDA streams on device %d", device);
    }
    ncclUniqueId u;
    memcpy(&u, unique_id, sizeof u);
    /* non-blocking, so that a peer that never joins costs timeout_ms, not a hung thread */
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclResult_t r = ncclCommInitRankConfig(&t->comm, nranks, u, rank, &config);
    double start = now_ms();
    while (r == ncclInProgress) {
        if (timeout_ms >= 0 && now_ms() - start > timeout_ms) {
            ncclCommAbort(t->comm);
            t->comm = NULL;
            nccl_close(&t->base);
            return vr_error_set(err, VR_ERR_CANCELLED,
                                "NCCL transport: rank %d of %d did not join within %d ms (the communicator was aborted)",
                                peer, nranks, timeout_ms);
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
        if (ncclCommGetAsyncError(t->comm, &r) != ncclSuccess) r = ncclInternalError;
    }
    if (r != ncclSuccess) {
        if (t->comm) ncclCommAbort(t->comm);
        t->comm = NULL;
        nccl_close(&t->base);
        return nccl_fail(err, VR_ERR_UNAVAILABLE, "joining the communicator", r);
    }
    *out = &t->base;
    return VR_OK;
}

#endif
