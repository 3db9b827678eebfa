/* worker/feature_delivery.c — the vision-to-stage-0 feature path (see feature_delivery.h): frames,
 * the inbox with its peer threads, and the sender's connection. Must not interpret the floats
 * beyond their shape, and must never hand out features that were not acknowledged as stored. */
#include "worker/feature_delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/bytes.h"
#include "common/log.h"

enum { POLL_MS = 250, FRAME_MS = 30000, ACK_MSG_MAX = 400 };

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------ inbox */

typedef struct entry {
    uint64_t key;
    float *data;
    size_t bytes;
    int64_t expires_ms;
    struct entry *next;
} entry;

typedef struct peer {
    vr_feature_inbox *in;
    vr_transport *t;
    pthread_t thread;
    int done; /* the thread has ended (under in->mu): join and free it */
    struct peer *next;
} peer;

struct vr_feature_inbox {
    vr_feature_inbox_options o;
    pthread_mutex_t mu;
    entry *entries;
    int n_entries;
    size_t bytes;
    peer *peers;
    int n_peers;
    int stop;
};

/* Drops expired entries (with mu held). */
static void expire(vr_feature_inbox *in, int64_t now) {
    for (entry **pp = &in->entries; *pp;) {
        entry *e = *pp;
        if (e->expires_ms > now) {
            pp = &e->next;
            continue;
        }
        *pp = e->next;
        in->bytes -= e->bytes;
        in->n_entries--;
        vr_log(VR_LOG_WARN, "features_expired", "key=%016llx", (unsigned long long)e->key);
        free(e->data);
        free(e);
    }
}

vr_status vr_features_frame_check(const uint8_t *p, size_t len, int n_img, int n_embd, uint64_t *key,
                                  const uint8_t **floats, vr_error *err) {
    *key = len >= 16 ? vr_get_u64le(p + 8) : 0;
    *floats = NULL;
    if (len < VR_FEATURES_HEADER_SIZE || memcmp(p, VR_FEATURES_MAGIC, 4) != 0)
        return vr_error_set(err, VR_ERR_FORMAT, "not a features frame (%zu bytes)", len);
    uint32_t version = vr_get_u32le(p + 4), rows = vr_get_u32le(p + 16), cols = vr_get_u32le(p + 20);
    if (version != VR_FEATURES_VERSION)
        return vr_error_set(err, VR_ERR_FORMAT, "features frame version %u; this build speaks %d", version,
                            VR_FEATURES_VERSION);
    if ((int64_t)rows != n_img || (int64_t)cols != n_embd)
        return vr_error_set(err, VR_ERR_INVALID, "features of shape [%u, %u]; this model takes [%d, %d]", rows, cols,
                            n_img, n_embd);
    size_t bytes = (size_t)rows * cols * sizeof(float);
    if (len != VR_FEATURES_HEADER_SIZE + bytes)
        return vr_error_set(err, VR_ERR_FORMAT, "features frame of %zu bytes, its header says %zu", len,
                            VR_FEATURES_HEADER_SIZE + bytes);
    *floats = p + VR_FEATURES_HEADER_SIZE;
    return VR_OK;
}

/* Checks one features frame and stores it; the status and message go back in the ack. */
static vr_status store_frame(vr_feature_inbox *in, const uint8_t *p, size_t len, uint64_t *key, vr_error *err) {
    const uint8_t *floats = NULL;
    vr_status st = vr_features_frame_check(p, len, in->o.n_img, in->o.n_embd, key, &floats, err);
    if (st != VR_OK) return st;
    size_t bytes = len - VR_FEATURES_HEADER_SIZE;
    entry *e = calloc(1, sizeof *e);
    float *data = malloc(bytes ? bytes : 1);
    if (!e || !data) {
        free(e);
        free(data);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory for %zu bytes of features", bytes);
    }
    memcpy(data, floats, bytes);
    pthread_mutex_lock(&in->mu);
    int64_t now = now_ms();
    expire(in, now);
    for (entry **pp = &in->entries; *pp; pp = &(*pp)->next) /* a key sent again replaces the old copy */
        if ((*pp)->key == *key) {
            entry *old = *pp;
            *pp = old->next;
            in->bytes -= old->bytes;
            in->n_entries--;
            free(old->data);
            free(old);
            break;
        }
    if (in->bytes + bytes > in->o.max_bytes) {
        st = vr_error_set(err, VR_ERR_NOMEM, "the features inbox is full (%zu of %zu bytes held)", in->bytes,
                          in->o.max_bytes);
    } else {
        e->key = *key;
        e->data = data;
        e->bytes = bytes;
        e->expires_ms = now + in->o.ttl_ms;
        e->next = in->entries;
        in->entries = e;
        in->n_entries++;
        in->bytes += bytes;
        e = NULL;
        data = NULL;
    }
    pthread_mutex_unlock(&in->mu);
    free(e);
    free(data);
    return st;
}

static vr_status send_ack(vr_transport *t, uint64_t key, vr_status st, const char *msg, vr_error *err) {
    uint8_t buf[12 + ACK_MSG_MAX];
    size_t n = st == VR_OK || !msg ? 0 : strlen(msg);
    if (n > ACK_MSG_MAX) n = ACK_MSG_MAX;
    vr_put_u64le(buf, key);
    vr_put_u32le(buf + 8, (uint32_t)(int32_t)st);
    if (n) memcpy(buf + 12, msg, n);
    return vr_transport_send(t, VR_FEATURES_ACK_TAG, buf, 12 + n, err);
}

static int stopping(vr_feature_inbox *in) {
    pthread_mutex_lock(&in->mu);
    int s = in->stop;
    pthread_mutex_unlock(&in->mu);
    return s;
}

static void *serve_peer(void *arg) {
    peer *p = arg;
    vr_feature_inbox *in = p->in;
    vr_error err = {0};
    for (;;) {
        if (stopping(in)) break;
        if (!vr_transport_wait_readable(p->t, POLL_MS)) continue;
        void *data = NULL;
        size_t len = 0;
        vr_status st = vr_transport_recv(p->t, VR_FEATURES_TAG, &data, &len, FRAME_MS, &err);
        if (st != VR_OK) {
            free(data);
            if (st != VR_ERR_UNAVAILABLE)
                vr_log(VR_LOG_WARN, "features_link_failed", "peer=%s error=%s", vr_transport_peer_name(p->t), err.msg);
            break; /* closed, broken or out of step: the sender reconnects */
        }
        uint64_t key = 0;
        vr_error ferr = {0};
        vr_status fst = store_frame(in, data, len, &key, &ferr);
        free(data);
        if (fst == VR_OK)
            vr_log(VR_LOG_DEBUG, "features_received", "key=%016llx peer=%s", (unsigned long long)key,
                   vr_transport_peer_name(p->t));
        else
            vr_log(VR_LOG_WARN, "features_refused", "key=%016llx peer=%s error=%s", (unsigned long long)key,
                   vr_transport_peer_name(p->t), ferr.msg);
        if (send_ack(p->t, key, fst, ferr.msg, &err) != VR_OK) break;
        if (fst == VR_ERR_FORMAT) break; /* a peer that sends garbage is not served further */
    }
    vr_transport_close(p->t); /* at once, so the peer sees the end now, not at the next reaping */
    pthread_mutex_lock(&in->mu);
    p->t = NULL;
    p->done = 1;
    pthread_mutex_unlock(&in->mu);
    return NULL;
}

/* Joins and frees the peers whose threads have ended (with mu held, released around joins). */
static void reap_peers(vr_feature_inbox *in, int all) {
    for (peer **pp = &in->peers; *pp;) {
        peer *p = *pp;
        if (!p->done && !all) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        in->n_peers--;
        pthread_mutex_unlock(&in->mu);
        pthread_join(p->thread, NULL);
        vr_transport_close(p->t);
        free(p);
        pthread_mutex_lock(&in->mu);
        pp = &in->peers; /* the list may have changed meanwhile */
    }
}

vr_status vr_feature_inbox_create(const vr_feature_inbox_options *o, vr_feature_inbox **out, vr_error *err) {
    *out = NULL;
    if (o->n_img <= 0 || o->n_embd <= 0 || o->ttl_ms <= 0 || o->max_peers <= 0)
        return vr_error_set(err, VR_ERR_INVALID, "features inbox: bad options");
    vr_feature_inbox *in = calloc(1, sizeof *in);
    if (!in) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    in->o = *o;
    pthread_mutex_init(&in->mu, NULL);
    *out = in;
    return VR_OK;
}

vr_status vr_feature_inbox_serve(vr_feature_inbox *in, vr_transport *t, vr_error *err) {
    pthread_mutex_lock(&in->mu);
    reap_peers(in, 0);
    if (in->stop || in->n_peers >= in->o.max_peers) {
        int n = in->n_peers;
        pthread_mutex_unlock(&in->mu);
        vr_transport_close(t);
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "too many vision connections (%d)", n);
    }
    peer *p = calloc(1, sizeof *p);
    if (!p) {
        pthread_mutex_unlock(&in->mu);
        vr_transport_close(t);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    p->in = in;
    p->t = t;
    if (pthread_create(&p->thread, NULL, serve_peer, p) != 0) {
        pthread_mutex_unlock(&in->mu);
        vr_transport_close(t);
        free(p);
        return vr_error_set(err, VR_ERR_INTERNAL, "cannot start a thread for a vision connection");
    }
    p->next = in->peers;
    in->peers = p;
    in->n_peers++;
    pthread_mutex_unlock(&in->mu);
    return VR_OK;
}

vr_status vr_feature_inbox_take(vr_feature_inbox *in, uint64_t key, float **features, vr_error *err) {
    *features = NULL;
    pthread_mutex_lock(&in->mu);
    expire(in, now_ms());
    for (entry **pp = &in->entries; *pp; pp = &(*pp)->next) {
        if ((*pp)->key != key) continue;
        entry *e = *pp;
        *pp = e->next;
        in->bytes -= e->bytes;
        in->n_entries--;
        pthread_mutex_unlock(&in->mu);
        *features = e->data;
        free(e);
        return VR_OK;
    }
    pthread_mutex_unlock(&in->mu);
    return vr_error_set(err, VR_ERR_NOT_FOUND,
                        "image features %016llx are not on this shard (taken already, expired, or sent to another "
                        "stage 0); retry the request",
                        (unsigned long long)key);
}

void vr_feature_inbox_usage(vr_feature_inbox *in, int *entries, size_t *bytes) {
    pthread_mutex_lock(&in->mu);
    expire(in, now_ms());
    if (entries) *entries = in->n_entries;
    if (bytes) *bytes = in->bytes;
    pthread_mutex_unlock(&in->mu);
}

void vr_feature_inbox_free(vr_feature_inbox *in) {
    if (!in) return;
    pthread_mutex_lock(&in->mu);
    in->stop = 1;
    reap_peers(in, 1);
    pthread_mutex_unlock(&in->mu);
    while (in->entries) {
        entry *e = in->entries;
        in->entries = e->next;
        free(e->data);
        free(e);
    }
    pthread_mutex_destroy(&in->mu);
    free(in);
}

/* ------------------------------------------------------------------ sender */

struct vr_feature_sender {
    pthread_mutex_t mu;
    vr_transport *t;
    char address[300];
    uint8_t *frame;
    size_t frame_cap;
};

vr_status vr_feature_sender_create(vr_feature_sender **out, vr_error *err) {
    *out = calloc(1, sizeof **out);
    if (!*out) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    pthread_mutex_init(&(*out)->mu, NULL);
    return VR_OK;
}

/* One attempt on the cached connection (made when missing). */
static vr_status deliver_once(vr_feature_sender *s, const char *address, uint64_t key, size_t len, int timeout_ms,
                              vr_error *err) {
    vr_status st = VR_OK;
    if (s->t && strcmp(s->address, address) != 0) {
        vr_transport_close(s->t);
        s->t = NULL;
    }
    if (!s->t) {
        st = vr_transport_tcp_connect_address(address, timeout_ms, &s->t, err);
        if (st == VR_OK) st = vr_transport_hello_send(s->t, VR_PEER_VISION, err);
        snprintf(s->address, sizeof s->address, "%s", address);
    }
    if (st == VR_OK) st = vr_transport_send(s->t, VR_FEATURES_TAG, s->frame, len, err);
    void *ack = NULL;
    size_t alen = 0;
    if (st == VR_OK) st = vr_transport_recv(s->t, VR_FEATURES_ACK_TAG, &ack, &alen, timeout_ms, err);
    if (st == VR_OK && (alen < 12 || vr_get_u64le(ack) != key))
        st = vr_error_set(err, VR_ERR_FORMAT, "stage 0 at %s answered a features frame out of step", address);
    if (st == VR_OK) {
        vr_status remote = (vr_status)(int32_t)vr_get_u32le((uint8_t *)ack + 8);
        if (remote != VR_OK) {
            int n = (int)(alen - 12);
            vr_error_set(err, remote, "stage 0 at %s refused the features: %.*s", address, n, (char *)ack + 12);
            free(ack);
            return remote; /* refused but in step: the connection stays */
        }
    }
    free(ack);
    if (st != VR_OK) { /* the link is in an unknown state: never reuse it */
        vr_transport_close(s->t);
        s->t = NULL;
    }
    return st;
}

vr_status vr_feature_sender_deliver(vr_feature_sender *s, const char *address, uint64_t key, const float *features,
                                    int n_img, int n_embd, int timeout_ms, vr_error *err) {
    if (!address || !*address || n_img <= 0 || n_embd <= 0 || !features)
        return vr_error_set(err, VR_ERR_INVALID, "features delivery: bad arguments");
    size_t bytes = (size_t)n_img * n_embd * sizeof(float), len = VR_FEATURES_HEADER_SIZE + bytes;
    pthread_mutex_lock(&s->mu);
    vr_status st = VR_OK;
    if (len > s->frame_cap) {
        uint8_t *f = realloc(s->frame, len);
        if (!f) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory for a %zu-byte features frame", len);
        else s->frame = f, s->frame_cap = len;
    }
    if (st == VR_OK) {
        memcpy(s->frame, VR_FEATURES_MAGIC, 4);
        vr_put_u32le(s->frame + 4, VR_FEATURES_VERSION);
        vr_put_u64le(s->frame + 8, key);
        vr_put_u32le(s->frame + 16, (uint32_t)n_img);
        vr_put_u32le(s->frame + 20, (uint32_t)n_embd);
        memcpy(s->frame + VR_FEATURES_HEADER_SIZE, features, bytes);
        int had_link = s->t != NULL && !strcmp(s->address, address);
        st = deliver_once(s, address, key, len, timeout_ms, err);
        /* a kept connection may have died since (stage 0 restarted): one fresh try */
        if (st != VR_OK && had_link && !s->t) {
            vr_error first = *err;
            st = deliver_once(s, address, key, len, timeout_ms, err);
            if (st != VR_OK) vr_error_wrap(err, "after %s", first.msg);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

void vr_feature_sender_free(vr_feature_sender *s) {
    if (!s) return;
    vr_transport_close(s->t);
    free(s->frame);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
