/* tests/gpu/test_nccl.c — the NCCL transport: a one-rank communicator on GPU 0 sending frames
 * to itself (empty, small, 8 MiB), checking bytes and tags, and the refusal of a wrong tag; a
 * peer that never joins is given up after the timeout; the side path (worker/frame_link.h, the
 * features' and handed-off states' path) with NCCL asked for at both ends: with one GPU the
 * server declines (same GPU) and every frame arrives over TCP; with two or more the frames'
 * payloads go over NCCL between GPUs 0 and 1; a server that answers the handshake wrongly gets
 * the frame over a fresh TCP connection.
 * With two or more GPUs, also two ranks in two threads (one per GPU) exchanging frames both
 * ways. Plain C; 77 without a GPU or without NCCL in this build. */
#include <cuda_runtime.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker/frame_link.h"
#include "worker/transport.h"

static int failures;

#define CHECK(cond, ...)                        \
    do {                                        \
        if (!(cond)) {                          \
            printf("FAIL: " __VA_ARGS__);       \
            printf("\n");                       \
            failures++;                         \
        }                                       \
    } while (0)

static uint8_t *pattern(size_t n, unsigned seed) {
    uint8_t *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 131u + seed) ^ (i >> 7));
    return p;
}

static void one_rank(void) {
    uint8_t id[VR_NCCL_UNIQUE_ID_BYTES];
    vr_error err = {0};
    vr_transport *t = NULL;
    if (vr_nccl_unique_id(id, &err) != VR_OK || vr_transport_nccl_create(id, 1, 0, 0, 0, 30000, &t, &err) != VR_OK) {
        CHECK(0, "one-rank communicator: %s", err.msg);
        return;
    }
    size_t sizes[3] = {0, 1000, (size_t)8 << 20};
    for (int i = 0; i < 3; i++) {
        uint8_t *p = pattern(sizes[i], (unsigned)i);
        CHECK(vr_transport_send(t, 100 + i, sizes[i] ? p : NULL, sizes[i], &err) == VR_OK, "send %zu: %s", sizes[i],
              err.msg);
        free(p);
    }
    for (int i = 0; i < 3; i++) {
        void *d = NULL;
        size_t n = 0;
        if (vr_transport_recv(t, 100 + i, &d, &n, 5000, &err) != VR_OK) {
            CHECK(0, "recv %d: %s", i, err.msg);
            continue;
        }
        uint8_t *p = pattern(sizes[i], (unsigned)i);
        CHECK(n == sizes[i] && (n == 0 || !memcmp(d, p, n)), "frame %d: %zu bytes back, %zu sent, or bytes differ", i,
              n, sizes[i]);
        free(p);
        free(d);
    }
    CHECK(vr_transport_send(t, 7, "x", 1, &err) == VR_OK, "send: %s", err.msg);
    void *d = NULL;
    size_t n = 0;
    vr_status st = vr_transport_recv(t, 8, &d, &n, 1000, &err);
    CHECK(st == VR_ERR_FORMAT, "a wrong tag gave %s, expected FORMAT", vr_status_name(st));
    free(d);
    printf("%s nccl one rank: %s\n", failures ? "FAIL" : "ok  ", vr_transport_peer_name(t));
    vr_transport_close(t);
}

/* A peer that never joins costs the timeout, not a hung thread: rank 0 of 2 alone. */
static void peer_never_joins(void) {
    uint8_t id[VR_NCCL_UNIQUE_ID_BYTES];
    vr_error err = {0};
    vr_transport *t = NULL;
    if (vr_nccl_unique_id(id, &err) != VR_OK) {
        CHECK(0, "unique id: %s", err.msg);
        return;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    vr_status st = vr_transport_nccl_create(id, 2, 0, 1, 0, 2000, &t, &err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) * 1e-9;
    CHECK(st == VR_ERR_CANCELLED && !t, "a 2-rank communicator whose peer never joins gave %s (%s), expected CANCELLED",
          vr_status_name(st), err.msg);
    if (t) vr_transport_close(t);
    printf("%s nccl: a peer that never joins is given up after %.1f s: %s\n", st == VR_ERR_CANCELLED ? "ok  " : "FAIL",
           s, err.msg);
}

typedef struct two_rank_arg {
    const uint8_t *id;
    int rank;
    int failed;
    char msg[1024];
} two_rank_arg;

static void *rank_main(void *p) {
    two_rank_arg *a = p;
    vr_error err = {0};
    vr_transport *t = NULL;
    if (vr_transport_nccl_create(a->id, 2, a->rank, 1 - a->rank, a->rank, 30000, &t, &err) != VR_OK) {
        a->failed = 1;
        snprintf(a->msg, sizeof a->msg, "rank %d: %s", a->rank, err.msg);
        return NULL;
    }
    size_t n = (size_t)3 << 20;
    uint8_t *mine = pattern(n, (unsigned)a->rank), *theirs = pattern(n, (unsigned)(1 - a->rank));
    for (int round = 0; round < 3 && !a->failed; round++) {
        void *d = NULL;
        size_t got = 0;
        vr_status st;
        if (a->rank == 0) {
            st = vr_transport_send(t, round, mine, n, &err);
            if (st == VR_OK) st = vr_transport_recv(t, round, &d, &got, 20000, &err);
        } else {
            st = vr_transport_recv(t, round, &d, &got, 20000, &err);
            if (st == VR_OK) st = vr_transport_send(t, round, mine, n, &err);
        }
        if (st != VR_OK || got != n || memcmp(d, theirs, n)) {
            a->failed = 1;
            snprintf(a->msg, sizeof a->msg, "rank %d round %d: %s", a->rank, round, st != VR_OK ? err.msg : "bytes");
        }
        free(d);
    }
    free(mine);
    free(theirs);
    vr_transport_close(t);
    return NULL;
}

/* ---- the side path with NCCL asked for at both ends ---- */

enum { SIDE_TAG = 0x51, SIDE_ACK = 0x52, SIDE_FRAMES = 4 };

typedef struct side_server {
    vr_frame_server *fs;
    vr_transport_listener *l;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t mu;
    void *got[SIDE_FRAMES];
    size_t got_len[SIDE_FRAMES];
} side_server;

static vr_status side_take(void *ctx, const uint8_t *frame, size_t len, uint64_t *key, vr_error *err) {
    side_server *s = ctx;
    if (len < 8) return vr_error_set(err, VR_ERR_FORMAT, "short frame");
    memcpy(key, frame, 8);
    if (*key >= SIDE_FRAMES) return vr_error_set(err, VR_ERR_INVALID, "key out of range");
    void *copy = malloc(len);
    memcpy(copy, frame, len);
    pthread_mutex_lock(&s->mu);
    free(s->got[*key]);
    s->got[*key] = copy;
    s->got_len[*key] = len;
    pthread_mutex_unlock(&s->mu);
    return VR_OK;
}

static void *side_accept(void *p) {
    side_server *s = p;
    while (!s->stop) {
        vr_transport *t = NULL;
        vr_error err = {0};
        if (vr_transport_tcp_accept(s->l, 100, &t, &err) != VR_OK) continue;
        vr_peer_role role;
        if (vr_transport_hello_recv(t, 2000, &role, &err) != VR_OK) {
            vr_transport_close(t);
            continue;
        }
        vr_frame_server_serve(s->fs, t, &err);
    }
    return NULL;
}

static void side_path(int count) {
    int failures_before = failures;
    int server_device = count >= 2 ? 1 : 0;
    side_server s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    vr_error err = {0};
    int port = 0;
    vr_frame_client *c = NULL;
    if (vr_frame_server_create(SIDE_TAG, SIDE_ACK, 2, (size_t)64 << 20, side_take, &s, &s.fs, &err) != VR_OK ||
        vr_transport_tcp_listen("127.0.0.1", 0, &port, &s.l, &err) != VR_OK ||
        vr_frame_client_create(VR_PEER_VISION, SIDE_TAG, SIDE_ACK, &c, &err) != VR_OK) {
        CHECK(0, "side path setup: %s", err.msg);
        return;
    }
    vr_frame_server_use_nccl(s.fs, server_device);
    vr_frame_client_use_nccl(c, 0);
    pthread_create(&s.thread, NULL, side_accept, &s);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    size_t sizes[SIDE_FRAMES] = {8, 1000, (size_t)5 << 20, 8}; /* a features frame of a 336-px image is ~4.7 MB */
    for (uint64_t k = 0; k < SIDE_FRAMES; k++) {
        uint8_t *p = pattern(sizes[k], (unsigned)k + 40);
        memcpy(p, &k, 8);
        vr_status st = vr_frame_client_send(c, address, k, p, sizes[k], 30000, &err);
        CHECK(st == VR_OK, "side frame %d (%zu bytes): %s", (int)k, sizes[k], err.msg);
        pthread_mutex_lock(&s.mu);
        CHECK(st != VR_OK || (s.got_len[k] == sizes[k] && !memcmp(s.got[k], p, sizes[k])),
              "side frame %d: the server got %zu bytes, %zu sent, or the bytes differ", (int)k, s.got_len[k], sizes[k]);
        pthread_mutex_unlock(&s.mu);
        free(p);
    }
    int on = vr_frame_client_on_nccl(c);
    CHECK(on == (count >= 2), "side path: the payloads went over %s with %d GPU(s)", on ? "NCCL" : "TCP", count);
    printf("%s side path (features, handed-off states) with NCCL asked for, %d GPU(s): frames over %s\n",
           failures > failures_before ? "FAIL" : "ok  ", count, on ? "NCCL (GPU 0 -> GPU 1)" : "TCP (one GPU: declined, same GPU)");
    vr_frame_client_free(c);
    s.stop = 1;
    pthread_join(s.thread, NULL);
    vr_frame_server_free(s.fs);
    vr_transport_listener_close(s.l);
    for (int k = 0; k < SIDE_FRAMES; k++) free(s.got[k]);
    pthread_mutex_destroy(&s.mu);
}

/* A server out of step (it accepts NCCL with a malformed id): the client turns NCCL off for it
 * and sends the frame again, once, over a fresh TCP connection, without an offer. */
typedef struct odd_server {
    vr_transport_listener *l;
    int offers, frames;
    char msg[256];
} odd_server;

static void *odd_serve(void *arg) {
    odd_server *o = arg;
    vr_error err = {0};
    for (int conn = 0; conn < 2; conn++) {
        vr_transport *t = NULL;
        vr_peer_role role;
        if (vr_transport_tcp_accept(o->l, 10000, &t, &err) != VR_OK || vr_transport_hello_recv(t, 2000, &role, &err)) {
            snprintf(o->msg, sizeof o->msg, "connection %d: %.200s", conn, err.msg);
            vr_transport_close(t);
            return NULL;
        }
        void *d = NULL;
        size_t n = 0;
        uint64_t tag = 0;
        if (vr_transport_recv_either(t, SIDE_TAG, VR_FRAME_NCCL_TAG, &tag, &d, &n, 10000, &err) == VR_OK) {
            if (tag == VR_FRAME_NCCL_TAG) { /* the offer: accept with a 5-byte id */
                o->offers++;
                uint8_t answer[13] = {'V', 'R', 'N', 'A', 0, 0, 0, 0, 1, 2, 3, 4, 5};
                vr_transport_send(t, VR_FRAME_NCCL_ANSWER_TAG, answer, sizeof answer, &err);
                free(d);
                d = NULL;
                vr_transport_recv(t, SIDE_TAG, &d, &n, 10000, &err); /* the client closes: UNAVAILABLE */
            } else if (n >= 8) { /* the frame itself: acknowledged */
                o->frames++;
                uint8_t ack[12] = {0};
                memcpy(ack, d, 8);
                vr_transport_send(t, SIDE_ACK, ack, sizeof ack, &err);
            }
        }
        free(d);
        vr_transport_close(t);
    }
    return NULL;
}

static void side_path_odd_server(void) {
    int failures_before = failures;
    odd_server o;
    memset(&o, 0, sizeof o);
    vr_error err = {0};
    int port = 0;
    vr_frame_client *c = NULL;
    if (vr_transport_tcp_listen("127.0.0.1", 0, &port, &o.l, &err) != VR_OK ||
        vr_frame_client_create(VR_PEER_VISION, SIDE_TAG, SIDE_ACK, &c, &err) != VR_OK) {
        CHECK(0, "odd server setup: %s", err.msg);
        return;
    }
    vr_frame_client_use_nccl(c, 0);
    pthread_t th;
    pthread_create(&th, NULL, odd_serve, &o);
    char address[64];
    snprintf(address, sizeof address, "127.0.0.1:%d", port);
    uint64_t key = 1;
    uint8_t frame[16] = {0};
    memcpy(frame, &key, 8);
    vr_status st = vr_frame_client_send(c, address, key, frame, sizeof frame, 10000, &err);
    vr_frame_client_free(c);
    pthread_join(th, NULL);
    vr_transport_listener_close(o.l);
    CHECK(st == VR_OK, "a server out of step in the NCCL handshake: the frame was not delivered: %s", err.msg);
    CHECK(o.offers == 1 && o.frames == 1 && !o.msg[0], "odd server: %d offers, %d frames (want 1, 1) %s", o.offers,
          o.frames, o.msg);
    printf("%s side path: a malformed NCCL answer -> the frame again over TCP, once\n",
           failures > failures_before ? "FAIL" : "ok  ");
}

int main(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        printf("SKIP: no CUDA device (cudaGetDeviceCount found none): the NCCL tests need a GPU\n");
        return 77;
    }
    uint8_t id[VR_NCCL_UNIQUE_ID_BYTES];
    vr_error err = {0};
    if (vr_nccl_unique_id(id, &err) != VR_OK) {
        printf("SKIP: %s\n", err.msg);
        return 77;
    }
    one_rank();
    peer_never_joins();
    side_path(count);
    side_path_odd_server();
    if (count >= 2) {
        vr_nccl_unique_id(id, &err);
        two_rank_arg a[2] = {{id, 0, 0, ""}, {id, 1, 0, ""}};
        pthread_t th[2];
        for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, rank_main, &a[i]);
        for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
        for (int i = 0; i < 2; i++) CHECK(!a[i].failed, "%s", a[i].msg);
        printf("%s nccl two ranks on GPUs 0 and 1\n", a[0].failed || a[1].failed ? "FAIL" : "ok  ");
    } else {
        printf("note: one GPU visible: the two-rank NCCL test needs two and was not run\n");
    }
    return failures ? 1 : 0;
}
