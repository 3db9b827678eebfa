/* worker/frame_link.c — acknowledged side-path frames (see frame_link.h): the per-connection
 * server threads and the client's kept connection. Must not interpret payloads, and a client
 * must never report a frame as taken without the server's acknowledgement. */
#include "worker/frame_link.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"

enum { POLL_MS = 250, FRAME_MS = 30000, ACK_MSG_MAX = 400 };

/* ------------------------------------------------------------------ server */

typedef struct peer {
    vr_frame_server *fs;
    vr_transport *t;
    pthread_t thread;
    int done; /* the thread has ended (under fs->mu): join and free it */
    struct peer *next;
} peer;

struct vr_frame_server {
    uint64_t tag, ack_tag;
    int max_peers;
    size_t max_frame;
    vr_frame_handler handler;
    void *ctx;
    pthread_mutex_t mu;
    peer *peers;
    int n_peers;
    int stop;
};

static vr_status send_ack(vr_transport *t, uint64_t ack_tag, uint64_t key, vr_status st, const char *msg,
                          vr_error *err) {
    uint8_t buf[12 + ACK_MSG_MAX];
    size_t n = st == VR_OK || !msg ? 0 : strlen(msg);
    if (n > ACK_MSG_MAX) n = ACK_MSG_MAX;
    vr_put_u64le(buf, key);
    vr_put_u32le(buf + 8, (uint32_t)(int32_t)st);
    if (n) memcpy(buf + 12, msg, n);
    return vr_transport_send(t, ack_tag, buf, 12 + n, err);
}

static int stopping(vr_frame_server *fs) {
    pthread_mutex_lock(&fs->mu);
    int s = fs->stop;
    pthread_mutex_unlock(&fs->mu);
    return s;
}

static void *serve_peer(void *arg) {
    peer *p = arg;
    vr_frame_server *fs = p->fs;
    vr_error err = {0};
    for (;;) {
        if (stopping(fs)) break;
        if (!vr_transport_wait_readable(p->t, POLL_MS)) continue;
        void *data = NULL;
        size_t len = 0;
        vr_status st = vr_transport_recv(p->t, fs->tag, &data, &len, FRAME_MS, &err);
        if (st != VR_OK) {
            free(data);
            if (st != VR_ERR_UNAVAILABLE)
                vr_log(VR_LOG_WARN, "side_link_failed", "peer=%s error=%s", vr_transport_peer_name(p->t), err.msg);
            break; /* closed, broken or out of step: the client reconnects */
        }
        uint64_t key = 0;
        vr_error herr = {0};
        vr_status hst = fs->handler(fs->ctx, data, len, &key, &herr);
        free(data);
        if (send_ack(p->t, fs->ack_tag, key, hst, herr.msg, &err) != VR_OK) break;
        if (hst == VR_ERR_FORMAT) break;
    }
    vr_transport_close(p->t); /* at once, so the peer sees the end now, not at the next reaping */
    pthread_mutex_lock(&fs->mu);
    p->t = NULL;
    p->done = 1;
    pthread_mutex_unlock(&fs->mu);
    return NULL;
}

/* Joins and frees the peers whose threads have ended, or all (with mu held, released around
 * each join). */
static void reap_peers(vr_frame_server *fs, int all) {
    for (peer **pp = &fs->peers; *pp;) {
        peer *p = *pp;
        if (!p->done && !all) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        fs->n_peers--;
        pthread_mutex_unlock(&fs->mu);
        pthread_join(p->thread, NULL);
        free(p);
        pthread_mutex_lock(&fs->mu);
        pp = &fs->peers; /* the list may have changed meanwhile */
    }
}

vr_status vr_frame_server_create(uint64_t tag, uint64_t ack_tag, int max_peers, size_t max_frame,
                                 vr_frame_handler handler, void *ctx, vr_frame_server **out, vr_error *err) {
    *out = NULL;
    if (max_peers <= 0 || !handler || !max_frame) return vr_error_set(err, VR_ERR_INVALID, "frame server: bad arguments");
    vr_frame_server *fs = calloc(1, sizeof *fs);
    if (!fs) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    fs->tag = tag;
    fs->ack_tag = ack_tag;
    fs->max_peers = max_peers;
    fs->max_frame = max_frame;
    fs->handler = handler;
    fs->ctx = ctx;
    pthread_mutex_init(&fs->mu, NULL);
    *out = fs;
    return VR_OK;
}

vr_status vr_frame_server_serve(vr_frame_server *fs, vr_transport *t, vr_error *err) {
    pthread_mutex_lock(&fs->mu);
    reap_peers(fs, 0);
    if (fs->stop || fs->n_peers >= fs->max_peers) {
        int n = fs->n_peers;
        pthread_mutex_unlock(&fs->mu);
        vr_transport_close(t);
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "too many side-path connections (%d)", n);
    }
    vr_error lerr = {0};
    size_t limit = fs->max_frame > 12 + ACK_MSG_MAX ? fs->max_frame : 12 + ACK_MSG_MAX; /* both ways: acks too */
    if (vr_transport_tcp_set_limits(t, limit, 0, &lerr) != VR_OK && lerr.code != VR_ERR_INVALID) {
        pthread_mutex_unlock(&fs->mu); /* INVALID: not TCP, which keeps its own limits */
        vr_transport_close(t);
        return vr_error_set(err, lerr.code, "%s", lerr.msg);
    }
    peer *p = calloc(1, sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&fs->mu);
        vr_transport_close(t);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    p->fs = fs;
    p->t = t;
    if (pthread_create(&p->thread, NULL, serve_peer, p) != 0) {
        pthread_mutex_unlock(&fs->mu);
        vr_transport_close(t);
        free(p);
        return vr_error_set(err, VR_ERR_INTERNAL, "cannot start a thread for a side-path connection");
    }
    p->next = fs->peers;
    fs->peers = p;
    fs->n_peers++;
    pthread_mutex_unlock(&fs->mu);
    return VR_OK;
}

void vr_frame_server_free(vr_frame_server *fs) {
    if (!fs) return;
    pthread_mutex_lock(&fs->mu);
    fs->stop = 1;
    reap_peers(fs, 1);
    pthread_mutex_unlock(&fs->mu);
    pthread_mutex_destroy(&fs->mu);
    free(fs);
}

/* ------------------------------------------------------------------ client */

struct vr_frame_client {
    vr_peer_role role;
    uint64_t tag, ack_tag;
    pthread_mutex_t mu;
    vr_transport *t;
    char address[300];
};

vr_status vr_frame_client_create(vr_peer_role role, uint64_t tag, uint64_t ack_tag, vr_frame_client **out,
                                 vr_error *err) {
    vr_frame_client *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    c->role = role;
    c->tag = tag;
    c->ack_tag = ack_tag;
    pthread_mutex_init(&c->mu, NULL);
    return VR_OK;
}

/* One attempt on the kept connection (made when missing). */
static vr_status send_once(vr_frame_client *c, const char *address, uint64_t key, const void *frame, size_t len,
                           int timeout_ms, vr_error *err) {
    vr_status st = VR_OK;
    if (c->t && strcmp(c->address, address) != 0) {
        vr_transport_close(c->t);
        c->t = NULL;
    }
    if (!c->t) {
        int ct = timeout_ms < 0 || timeout_ms > VR_FRAME_CONNECT_MS ? VR_FRAME_CONNECT_MS : timeout_ms;
        st = vr_transport_tcp_connect_address(address, ct, &c->t, err);
        if (st == VR_OK) st = vr_transport_hello_send(c->t, c->role, err);
        snprintf(c->address, sizeof c->address, "%s", address);
    }
    if (st == VR_OK) st = vr_transport_send(c->t, c->tag, frame, len, err);
    void *ack = NULL;
    size_t alen = 0;
    if (st == VR_OK) st = vr_transport_recv(c->t, c->ack_tag, &ack, &alen, timeout_ms, err);
    if (st == VR_OK && (alen < 12 || vr_get_u64le(ack) != key))
        st = vr_error_set(err, VR_ERR_FORMAT, "%s answered a frame out of step", address);
    if (st == VR_OK) {
        vr_status remote = (vr_status)(int32_t)vr_get_u32le((uint8_t *)ack + 8);
        if (remote != VR_OK) {
            int n = (int)(alen - 12);
            vr_error_set(err, remote, "%s refused: %.*s", address, n, (char *)ack + 12);
            free(ack);
            return remote; /* refused but in step: the connection stays */
        }
    }
    free(ack);
    if (st != VR_OK) { /* the link is in an unknown state: never reuse it */
        vr_transport_close(c->t);
        c->t = NULL;
    }
    return st;
}

vr_status vr_frame_client_send(vr_frame_client *c, const char *address, uint64_t key, const void *frame, size_t len,
                               int timeout_ms, vr_error *err) {
    if (!address || !*address) return vr_error_set(err, VR_ERR_INVALID, "frame client: no address");
    pthread_mutex_lock(&c->mu);
    int had_link = c->t != NULL && !strcmp(c->address, address);
    vr_status st = send_once(c, address, key, frame, len, timeout_ms, err);
    /* a kept connection may have died since (the server restarted): the frame was not taken,
     * one fresh try. Not after a timeout: the server may still take that frame. */
    if (st == VR_ERR_UNAVAILABLE && had_link && !c->t) {
        vr_error first = *err;
        st = send_once(c, address, key, frame, len, timeout_ms, err);
        if (st != VR_OK) vr_error_wrap(err, "after %s", first.msg);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

void vr_frame_client_free(vr_frame_client *c) {
    if (!c) return;
    vr_transport_close(c->t);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
