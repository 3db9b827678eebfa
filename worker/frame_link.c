/* worker/frame_link.c — acknowledged side-path frames (see frame_link.h): the per-connection
 * server threads, the client's kept connection, and the NCCL handshake that moves their
 * payloads onto NCCL where both ends can. Must not interpret payloads, and a client must never
 * report a frame as taken without the server's acknowledgement. */
#include "worker/frame_link.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "common/log.h"

enum { POLL_MS = 250, FRAME_MS = 30000, ACK_MSG_MAX = 400 };

/* ------------------------------------------------------------------ NCCL control frames */

enum {
    CTL_UUID = VR_NCCL_DEVICE_UUID_BYTES,
    CTL_OFFER_SIZE = 4 + VR_NCCL_DEVICE_UUID_BYTES,
    CTL_DATA_SIZE = 16,
    CTL_MSG_MAX = 200,
};

/* a control frame of `kind` with a status and a message (answer, ready, confirm) */
static vr_status send_status(vr_transport *t, uint64_t tag, const char *kind, vr_status st, const char *msg,
                             vr_error *err) {
    uint8_t buf[8 + CTL_MSG_MAX];
    size_t n = st == VR_OK || !msg ? 0 : strlen(msg);
    if (n > CTL_MSG_MAX) n = CTL_MSG_MAX;
    memcpy(buf, kind, 4);
    vr_put_u32le(buf + 4, (uint32_t)(int32_t)st);
    if (n) memcpy(buf + 8, msg, n);
    return vr_transport_send(t, tag, buf, 8 + n, err);
}

/* receives a control frame of `kind`: the peer's status in *remote, the rest (at most cap
 * bytes, else the frame is malformed) in body, *body_len bytes */
static vr_status recv_ctl(vr_transport *t, uint64_t tag, const char *kind, int timeout_ms, vr_status *remote,
                          uint8_t *body, size_t cap, size_t *body_len, vr_error *err) {
    void *data = NULL;
    size_t len = 0;
    vr_status st = vr_transport_recv(t, tag, &data, &len, timeout_ms, err);
    if (st == VR_OK && (len < 8 || len > 8 + cap || memcmp(data, kind, 4) != 0))
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: expected an NCCL %.4s frame, got %zu bytes", vr_transport_peer_name(t),
                          kind, len);
    if (st == VR_OK) {
        *remote = (vr_status)(int32_t)vr_get_u32le((uint8_t *)data + 4);
        *body_len = len - 8;
        memcpy(body, (uint8_t *)data + 8, len - 8);
    }
    free(data);
    return st;
}

/* the peer's words, for our logs and errors: printable, terminated */
static void ctl_text(const uint8_t *body, size_t n, char *msg, size_t cap) {
    snprintf(msg, cap, "%.*s", (int)n, (const char *)body);
    for (char *q = msg; *q; q++)
        if ((unsigned char)*q < 0x20) *q = ' ';
}

/* a status frame of `kind`: the peer's status in *remote, its message in msg (cap bytes) */
static vr_status recv_status(vr_transport *t, uint64_t tag, const char *kind, int timeout_ms, vr_status *remote,
                             char *msg, size_t cap, vr_error *err) {
    uint8_t body[CTL_MSG_MAX];
    size_t n = 0;
    vr_status st = recv_ctl(t, tag, kind, timeout_ms, remote, body, sizeof body, &n, err);
    if (st == VR_OK) ctl_text(body, n, msg, cap);
    return st;
}

/* ------------------------------------------------------------------ server */

typedef struct peer {
    vr_frame_server *fs;
    vr_transport *t;
    vr_transport *nccl; /* the payloads' NCCL link, once the client's offer succeeded; else NULL */
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
    int nccl_device; /* < 0: NCCL offers are declined */
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

/* Answers a client's NCCL offer (declines are answers too: the connection goes on over TCP).
 * Not VR_OK only when the connection itself failed or the offer is malformed. */
static vr_status accept_offer(peer *p, const uint8_t *offer, size_t len, vr_error *err) {
    vr_frame_server *fs = p->fs;
    const char *who = vr_transport_peer_name(p->t);
    if (len != CTL_OFFER_SIZE || p->nccl)
        return vr_error_set(err, VR_ERR_FORMAT, "%s sent a malformed NCCL offer (%zu bytes%s)", who, len,
                            p->nccl ? ", and NCCL is up already" : "");
    uint8_t mine[CTL_UUID];
    uint8_t answer[8 + VR_NCCL_UNIQUE_ID_BYTES] = "VRNA"; /* status 0, then the communicator's id */
    vr_error e2 = {0};
    vr_status decline = VR_OK;
    if (fs->nccl_device < 0)
        decline = vr_error_set(&e2, VR_ERR_UNAVAILABLE, "this worker does not use NCCL (started without --transport nccl)");
    else if (vr_nccl_device_uuid(fs->nccl_device, mine, &e2) != VR_OK)
        decline = e2.code;
    else if (!memcmp(mine, offer + 4, CTL_UUID))
        decline = vr_error_set(&e2, VR_ERR_UNAVAILABLE, "both ends are on the same GPU (NCCL needs a GPU per rank)");
    else if (vr_nccl_unique_id(answer + 8, &e2) != VR_OK) /* only now: an id starts a thread until both join */
        decline = e2.code;
    if (decline != VR_OK) return send_status(p->t, VR_FRAME_NCCL_ANSWER_TAG, "VRNA", decline, e2.msg, err);
    vr_status st = vr_transport_send(p->t, VR_FRAME_NCCL_ANSWER_TAG, answer, sizeof answer, err);
    if (st != VR_OK) return st;
    vr_transport *n = NULL;
    vr_status joined = vr_transport_nccl_create(answer + 8, 2, 1, 0, fs->nccl_device, VR_FRAME_NCCL_JOIN_MS, &n, &e2);
    st = send_status(p->t, VR_FRAME_NCCL_ANSWER_TAG, "VRNR", joined, e2.msg, err);
    vr_status confirmed = VR_ERR_UNAVAILABLE;
    char why[CTL_MSG_MAX + 1] = "";
    if (st == VR_OK)
        st = recv_status(p->t, VR_FRAME_NCCL_TAG, "VRNC", VR_FRAME_NCCL_JOIN_MS + 5000, &confirmed, why, sizeof why, err);
    if (st == VR_OK && joined == VR_OK && confirmed == VR_OK) {
        p->nccl = n;
        vr_log(VR_LOG_INFO, "side_link_nccl", "peer=%s device=%d", who, fs->nccl_device);
        return VR_OK;
    }
    vr_transport_close(n);
    if (st == VR_OK)
        vr_log(VR_LOG_WARN, "side_link_nccl_failed", "peer=%s error=%s (frames stay on TCP)", who,
               joined != VR_OK ? e2.msg : why);
    return st;
}

/* The connection's next data frame: straight from TCP, or over NCCL after its announce; NCCL
 * offers on the way are answered here. */
static vr_status next_frame(peer *p, void **data, size_t *len, vr_error *err) {
    vr_frame_server *fs = p->fs;
    for (;;) {
        uint64_t got = 0;
        vr_status st = vr_transport_recv_either(p->t, fs->tag, VR_FRAME_NCCL_TAG, &got, data, len, FRAME_MS, err);
        if (st != VR_OK || got == fs->tag) return st;
        uint8_t *ctl = *data;
        size_t n = *len;
        *data = NULL;
        *len = 0;
        if (n >= 4 && !memcmp(ctl, "VRNO", 4)) {
            st = accept_offer(p, ctl, n, err);
            free(ctl);
            if (st != VR_OK) return st;
            continue;
        }
        if (n != CTL_DATA_SIZE || memcmp(ctl, "VRND", 4) != 0 || !p->nccl) {
            free(ctl);
            return vr_error_set(err, VR_ERR_FORMAT, "%s sent an unexpected NCCL control frame (%zu bytes%s)",
                                vr_transport_peer_name(p->t), n, p->nccl ? "" : "; no NCCL link is up");
        }
        uint64_t want = vr_get_u64le(ctl + 4);
        uint32_t crc = vr_get_u32le(ctl + 12);
        free(ctl);
        if (want > fs->max_frame)
            return vr_error_set(err, VR_ERR_FORMAT, "%s announced a %llu-byte frame, over the %zu-byte limit",
                                vr_transport_peer_name(p->t), (unsigned long long)want, fs->max_frame);
        st = vr_transport_recv(p->nccl, fs->tag, data, len, FRAME_MS, err);
        if (st == VR_OK && (*len != want || vr_crc32c(0, *data, *len) != crc)) {
            free(*data);
            *data = NULL;
            st = vr_error_set(err, VR_ERR_FORMAT, "the NCCL frame from %s (%zu bytes) does not match its announce",
                              vr_transport_peer_name(p->t), *len);
        }
        return st;
    }
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
        vr_status st = next_frame(p, &data, &len, &err);
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
    vr_transport_close(p->nccl); /* after: the peer learns of the end from TCP first */
    pthread_mutex_lock(&fs->mu);
    p->nccl = NULL;
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
    fs->nccl_device = -1;
    pthread_mutex_init(&fs->mu, NULL);
    *out = fs;
    return VR_OK;
}

void vr_frame_server_use_nccl(vr_frame_server *fs, int device) { fs->nccl_device = device; }

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

enum { NCCL_OFF_MAX = 8 };

struct vr_frame_client {
    vr_peer_role role;
    uint64_t tag, ack_tag;
    pthread_mutex_t mu;
    vr_transport *t;
    char address[300];
    int nccl_device;    /* < 0: frames stay on TCP */
    vr_transport *nccl; /* the kept connection's payloads go here when NCCL is up */
    char nccl_off[NCCL_OFF_MAX][300]; /* addresses NCCL is not offered to any more (a ring) */
    int nccl_off_next;
};

vr_status vr_frame_client_create(vr_peer_role role, uint64_t tag, uint64_t ack_tag, vr_frame_client **out,
                                 vr_error *err) {
    vr_frame_client *c = calloc(1, sizeof *c);
    *out = c;
    if (!c) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    c->role = role;
    c->tag = tag;
    c->ack_tag = ack_tag;
    c->nccl_device = -1;
    pthread_mutex_init(&c->mu, NULL);
    return VR_OK;
}

void vr_frame_client_use_nccl(vr_frame_client *c, int device) {
    pthread_mutex_lock(&c->mu);
    c->nccl_device = device;
    pthread_mutex_unlock(&c->mu);
}

int vr_frame_client_on_nccl(vr_frame_client *c) {
    pthread_mutex_lock(&c->mu);
    int on = c->nccl != NULL;
    pthread_mutex_unlock(&c->mu);
    return on;
}

static int nccl_is_off(const vr_frame_client *c, const char *address) {
    for (int i = 0; i < NCCL_OFF_MAX; i++)
        if (!strcmp(c->nccl_off[i], address)) return 1;
    return 0;
}

static void nccl_turn_off(vr_frame_client *c, const char *address, const char *why) {
    if (nccl_is_off(c, address)) return;
    vr_log(VR_LOG_INFO, "side_link_tcp", "peer=%s reason=%s", address, why);
    snprintf(c->nccl_off[c->nccl_off_next], sizeof c->nccl_off[0], "%s", address);
    c->nccl_off_next = (c->nccl_off_next + 1) % NCCL_OFF_MAX;
}

/* closes the kept connection, then its NCCL link (the server learns of the end from TCP) */
static void drop_link(vr_frame_client *c) {
    vr_transport_close(c->t);
    vr_transport_close(c->nccl);
    c->nccl = NULL;
    c->t = NULL;
}

/* Offers NCCL on the new connection to c->address. A decline or a failed join leaves it on TCP
 * (VR_OK); not VR_OK only when the connection failed, which also turns NCCL off for the address
 * (a server that does not know the offer closes the connection). */
static vr_status offer_nccl(vr_frame_client *c, vr_error *err) {
    uint8_t offer[CTL_OFFER_SIZE];
    memcpy(offer, "VRNO", 4);
    vr_error e2 = {0};
    if (vr_nccl_device_uuid(c->nccl_device, offer + 4, &e2) != VR_OK) {
        vr_log(VR_LOG_WARN, "side_link_nccl_unusable", "device=%d error=%s (frames stay on TCP)", c->nccl_device, e2.msg);
        c->nccl_device = -1; /* this process cannot: never again */
        return VR_OK;
    }
    vr_status remote = VR_OK, ready = VR_OK;
    char why[CTL_MSG_MAX + 1] = "";
    uint8_t body[CTL_MSG_MAX > VR_NCCL_UNIQUE_ID_BYTES ? CTL_MSG_MAX : VR_NCCL_UNIQUE_ID_BYTES];
    size_t blen = 0;
    vr_status st = vr_transport_send(c->t, VR_FRAME_NCCL_TAG, offer, sizeof offer, err);
    if (st == VR_OK)
        st = recv_ctl(c->t, VR_FRAME_NCCL_ANSWER_TAG, "VRNA", VR_FRAME_NCCL_JOIN_MS, &remote, body, sizeof body, &blen,
                      err);
    if (st == VR_OK && remote == VR_OK && blen != VR_NCCL_UNIQUE_ID_BYTES)
        st = vr_error_set(err, VR_ERR_FORMAT, "%s accepted NCCL with a %zu-byte id", c->address, blen);
    if (st != VR_OK) {
        nccl_turn_off(c, c->address, err->msg);
        return st;
    }
    if (remote != VR_OK) {
        ctl_text(body, blen, why, sizeof why);
        nccl_turn_off(c, c->address, why);
        return VR_OK;
    }
    vr_transport *n = NULL;
    vr_status joined = vr_transport_nccl_create(body, 2, 0, 1, c->nccl_device, VR_FRAME_NCCL_JOIN_MS, &n, &e2);
    st = recv_status(c->t, VR_FRAME_NCCL_ANSWER_TAG, "VRNR", VR_FRAME_NCCL_JOIN_MS + 5000, &ready, why, sizeof why, err);
    if (st == VR_OK) st = send_status(c->t, VR_FRAME_NCCL_TAG, "VRNC", joined, e2.msg, err);
    if (st == VR_OK && joined == VR_OK && ready == VR_OK) {
        c->nccl = n;
        vr_log(VR_LOG_INFO, "side_link_nccl", "peer=%s device=%d", c->address, c->nccl_device);
        return VR_OK;
    }
    vr_transport_close(n);
    nccl_turn_off(c, c->address, st != VR_OK ? err->msg : joined != VR_OK ? e2.msg : why);
    return st;
}

/* One attempt on the kept connection (made when missing). *payload_sent: the frame itself went
 * out (so the server may have taken it). */
static vr_status send_once(vr_frame_client *c, const char *address, uint64_t key, const void *frame, size_t len,
                           int timeout_ms, int *payload_sent, vr_error *err) {
    vr_status st = VR_OK;
    *payload_sent = 0;
    if (c->t && strcmp(c->address, address) != 0) drop_link(c);
    /* an idle kept connection with something to read was closed by the server (it speaks only to
     * acknowledge): a fresh one, rather than a payload sent into a dead link */
    if (c->t && vr_transport_wait_readable(c->t, 0)) drop_link(c);
    if (!c->t) {
        int ct = timeout_ms < 0 || timeout_ms > VR_FRAME_CONNECT_MS ? VR_FRAME_CONNECT_MS : timeout_ms;
        st = vr_transport_tcp_connect_address(address, ct, &c->t, err);
        if (st == VR_OK) st = vr_transport_hello_send(c->t, c->role, err);
        snprintf(c->address, sizeof c->address, "%s", address);
        if (st == VR_OK && c->nccl_device >= 0 && !nccl_is_off(c, address)) st = offer_nccl(c, err);
    }
    if (st == VR_OK) *payload_sent = 1;
    if (st == VR_OK && c->nccl) { /* the announce on TCP, then the payload over NCCL */
        uint8_t ann[CTL_DATA_SIZE];
        memcpy(ann, "VRND", 4);
        vr_put_u64le(ann + 4, (uint64_t)len);
        vr_put_u32le(ann + 12, vr_crc32c(0, frame, len));
        st = vr_transport_send(c->t, VR_FRAME_NCCL_TAG, ann, sizeof ann, err);
        if (st == VR_OK) st = vr_transport_send(c->nccl, c->tag, frame, len, err);
        if (st != VR_OK) nccl_turn_off(c, address, err->msg); /* the retry goes over TCP */
    } else if (st == VR_OK) {
        st = vr_transport_send(c->t, c->tag, frame, len, err);
    }
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
    if (st != VR_OK) drop_link(c); /* the link is in an unknown state: never reuse it */
    return st;
}

vr_status vr_frame_client_send(vr_frame_client *c, const char *address, uint64_t key, const void *frame, size_t len,
                               int timeout_ms, vr_error *err) {
    if (!address || !*address) return vr_error_set(err, VR_ERR_INVALID, "frame client: no address");
    pthread_mutex_lock(&c->mu);
    int had_link = c->t != NULL && !strcmp(c->address, address);
    int nccl_was_off = nccl_is_off(c, address), sent = 0;
    vr_status st = send_once(c, address, key, frame, len, timeout_ms, &sent, err);
    /* a kept connection may have died since (the server restarted), or the NCCL handshake failed
     * before the frame went out (however: a server that does not know it closes the connection,
     * one out of step answers wrongly): the frame was not taken, one fresh try (NCCL is off for
     * the address now). Not after a timeout of the frame: the server may still take it. */
    int handshake_failed = !sent && !nccl_was_off && nccl_is_off(c, address);
    if (st != VR_OK && !c->t && ((st == VR_ERR_UNAVAILABLE && had_link) || handshake_failed)) {
        vr_error first = *err;
        st = send_once(c, address, key, frame, len, timeout_ms, &sent, err);
        if (st != VR_OK) vr_error_wrap(err, "after %s", first.msg);
    }
    pthread_mutex_unlock(&c->mu);
    return st;
}

void vr_frame_client_free(vr_frame_client *c) {
    if (!c) return;
    drop_link(c);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
