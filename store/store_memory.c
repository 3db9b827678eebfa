/* store/store_memory.c — the embedded in-process backend ("memory"): a hash table of sessions,
 * each holding its record and its blobs, with lazy TTL expiry. For tests, single-process
 * development and coordinators without Redis. Must not outlive the process or share data
 * between processes; store.c holds the lock, so nothing here locks. */
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mem_blob {
    int64_t turn;
    int layer;
    uint8_t *data;
    size_t len;
    int64_t expires; /* monotonic ns; 0 = never */
} mem_blob;

typedef struct mem_session {
    struct mem_session *next;
    char *key; /* "tenant:session" (':' cannot occur in ids) */
    uint64_t hash;
    int has_rec;
    uint8_t *rec;
    size_t rec_len;
    int64_t rec_expires;
    mem_blob *blobs;
    size_t n_blobs, cap_blobs;
} mem_session;

typedef struct mem_impl {
    mem_session **buckets;
    size_t n_buckets, n_sessions;
    uint64_t calls; /* for the periodic sweep */
} mem_impl;

static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t expiry(const vr_store *s) { return s->ttl > 0 ? mono_ns() + (int64_t)s->ttl * 1000000000 : 0; }

static int expired(int64_t expires, int64_t now) { return expires != 0 && expires <= now; }

static uint64_t fnv1a(const char *k) {
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++) h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return h;
}

static void session_free(mem_session *ss) {
    for (size_t i = 0; i < ss->n_blobs; i++) free(ss->blobs[i].data);
    free(ss->blobs);
    free(ss->rec);
    free(ss->key);
    free(ss);
}

static void blob_remove(mem_session *ss, size_t i) {
    free(ss->blobs[i].data);
    ss->blobs[i] = ss->blobs[ss->n_blobs - 1];
    ss->n_blobs--;
}

/* Drops expired values; returns 1 when the session is now empty. */
static int session_purge(mem_session *ss, int64_t now) {
    if (ss->has_rec && expired(ss->rec_expires, now)) {
        free(ss->rec);
        ss->rec = NULL;
        ss->rec_len = 0;
        ss->has_rec = 0;
    }
    for (size_t i = 0; i < ss->n_blobs;) {
        if (expired(ss->blobs[i].expires, now))
            blob_remove(ss, i);
        else
            i++;
    }
    return !ss->has_rec && ss->n_blobs == 0;
}

static void unlink_session(mem_impl *m, mem_session *ss) {
    mem_session **pp = &m->buckets[ss->hash % m->n_buckets];
    while (*pp && *pp != ss) pp = &(*pp)->next;
    if (*pp) {
        *pp = ss->next;
        m->n_sessions--;
    }
    session_free(ss);
}

static void sweep(mem_impl *m) {
    int64_t now = mono_ns();
    for (size_t b = 0; b < m->n_buckets; b++) {
        mem_session **pp = &m->buckets[b];
        while (*pp) {
            mem_session *ss = *pp;
            if (session_purge(ss, now)) {
                *pp = ss->next;
                m->n_sessions--;
                session_free(ss);
            } else {
                pp = &ss->next;
            }
        }
    }
}

static void make_key(char *key, size_t cap, const char *tenant, const char *session) {
    snprintf(key, cap, "%s:%s", tenant, session);
}

/* Finds the session (purging expired values first); NULL when absent or fully expired. */
static mem_session *find(vr_store *s, const char *tenant, const char *session) {
    mem_impl *m = s->impl;
    char key[2 * VR_STORE_ID_MAX + 2];
    make_key(key, sizeof key, tenant, session);
    uint64_t h = fnv1a(key);
    for (mem_session *ss = m->buckets[h % m->n_buckets]; ss; ss = ss->next) {
        if (ss->hash == h && strcmp(ss->key, key) == 0) {
            if (session_purge(ss, mono_ns())) {
                unlink_session(m, ss);
                return NULL;
            }
            return ss;
        }
    }
    return NULL;
}

static vr_status grow(mem_impl *m, vr_error *err) {
    size_t nb = m->n_buckets * 2;
    mem_session **b = calloc(nb, sizeof *b);
    if (!b) return vr_error_set(err, VR_ERR_NOMEM, "out of memory growing the memory store");
    for (size_t i = 0; i < m->n_buckets; i++) {
        mem_session *ss = m->buckets[i];
        while (ss) {
            mem_session *next = ss->next;
            ss->next = b[ss->hash % nb];
            b[ss->hash % nb] = ss;
            ss = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->n_buckets = nb;
    return VR_OK;
}

static vr_status find_or_create(vr_store *s, const char *tenant, const char *session, mem_session **out,
                                vr_error *err) {
    mem_impl *m = s->impl;
    if (++m->calls % 4096 == 0) sweep(m);
    mem_session *ss = find(s, tenant, session);
    if (ss) {
        *out = ss;
        return VR_OK;
    }
    if (m->n_sessions >= m->n_buckets) {
        vr_status st = grow(m, err);
        if (st != VR_OK) return st;
    }
    char key[2 * VR_STORE_ID_MAX + 2];
    make_key(key, sizeof key, tenant, session);
    ss = calloc(1, sizeof *ss);
    if (!ss || !(ss->key = strdup(key))) {
        free(ss);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory adding session %s/%s", tenant, session);
    }
    ss->hash = fnv1a(key);
    ss->next = m->buckets[ss->hash % m->n_buckets];
    m->buckets[ss->hash % m->n_buckets] = ss;
    m->n_sessions++;
    *out = ss;
    return VR_OK;
}

static vr_status mem_put_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                              const uint8_t *data, size_t len, vr_error *err) {
    uint8_t *copy = vr_store_dup_bytes(data, len);
    if (!copy) return vr_error_set(err, VR_ERR_NOMEM, "out of memory storing a %zu-byte blob", len);
    mem_session *ss = NULL;
    vr_status st = find_or_create(s, tenant, session, &ss, err);
    if (st != VR_OK) {
        free(copy);
        return st;
    }
    for (size_t i = 0; i < ss->n_blobs; i++) {
        mem_blob *b = &ss->blobs[i];
        if (b->turn == turn && b->layer == layer) {
            free(b->data);
            b->data = copy;
            b->len = len;
            b->expires = expiry(s);
            return VR_OK;
        }
    }
    if (ss->n_blobs == ss->cap_blobs) {
        size_t cap = ss->cap_blobs ? ss->cap_blobs * 2 : 8;
        mem_blob *nb = realloc(ss->blobs, cap * sizeof *nb);
        if (!nb) {
            free(copy);
            if (!ss->has_rec && ss->n_blobs == 0) unlink_session(s->impl, ss);
            return vr_error_set(err, VR_ERR_NOMEM, "out of memory storing a blob");
        }
        ss->blobs = nb;
        ss->cap_blobs = cap;
    }
    ss->blobs[ss->n_blobs++] = (mem_blob){turn, layer, copy, len, expiry(s)};
    return VR_OK;
}

static vr_status mem_get_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                              uint8_t **data, size_t *len, vr_error *err) {
    mem_session *ss = find(s, tenant, session);
    for (size_t i = 0; ss && i < ss->n_blobs; i++) {
        mem_blob *b = &ss->blobs[i];
        if (b->turn == turn && b->layer == layer) {
            *data = vr_store_dup_bytes(b->data, b->len);
            if (!*data) return vr_error_set(err, VR_ERR_NOMEM, "out of memory reading a %zu-byte blob", b->len);
            *len = b->len;
            return VR_OK;
        }
    }
    return vr_error_set(err, VR_ERR_NOT_FOUND, "no state blob for tenant %s session %s turn %lld layer %d", tenant,
                        session, (long long)turn, layer);
}

static vr_status mem_commit(vr_store *s, const char *tenant, const char *session, int64_t turn, const uint8_t *rec,
                            size_t len, vr_error *err) {
    uint8_t *copy = vr_store_dup_bytes(rec, len);
    if (!copy) return vr_error_set(err, VR_ERR_NOMEM, "out of memory storing a %zu-byte session record", len);
    mem_session *ss = NULL;
    vr_status st = find_or_create(s, tenant, session, &ss, err);
    if (st != VR_OK) {
        free(copy);
        return st;
    }
    int64_t exp = expiry(s);
    free(ss->rec);
    ss->rec = copy;
    ss->rec_len = len;
    ss->rec_expires = exp;
    ss->has_rec = 1;
    for (size_t i = 0; i < ss->n_blobs;) {
        if (ss->blobs[i].turn < turn) {
            blob_remove(ss, i);
            continue;
        }
        if (ss->blobs[i].turn == turn) ss->blobs[i].expires = exp;
        i++;
    }
    return VR_OK;
}

static vr_status mem_get_session(vr_store *s, const char *tenant, const char *session, uint8_t **rec, size_t *len,
                                 vr_error *err) {
    mem_session *ss = find(s, tenant, session);
    if (!ss || !ss->has_rec)
        return vr_error_set(err, VR_ERR_NOT_FOUND, "no session record for tenant %s session %s (never committed, "
                            "deleted or expired)", tenant, session);
    *rec = vr_store_dup_bytes(ss->rec, ss->rec_len);
    if (!*rec) return vr_error_set(err, VR_ERR_NOMEM, "out of memory reading a session record");
    *len = ss->rec_len;
    return VR_OK;
}

static vr_status mem_delete_session(vr_store *s, const char *tenant, const char *session, vr_error *err) {
    (void)err;
    mem_session *ss = find(s, tenant, session);
    if (ss) unlink_session(s->impl, ss);
    return VR_OK;
}

static vr_status mem_ping(vr_store *s, vr_error *err) {
    (void)s;
    (void)err;
    return VR_OK;
}

static void mem_close(vr_store *s) {
    mem_impl *m = s->impl;
    if (!m) return;
    for (size_t b = 0; b < m->n_buckets; b++) {
        mem_session *ss = m->buckets[b];
        while (ss) {
            mem_session *next = ss->next;
            session_free(ss);
            ss = next;
        }
    }
    free(m->buckets);
    free(m);
    s->impl = NULL;
}

static const vr_store_backend_ops mem_ops = {
    .name = "memory",
    .put_blob = mem_put_blob,
    .get_blob = mem_get_blob,
    .commit = mem_commit,
    .get_session = mem_get_session,
    .delete_session = mem_delete_session,
    .ping = mem_ping,
    .close = mem_close,
};

vr_status vr_store_memory_open(vr_store *s, vr_error *err) {
    mem_impl *m = calloc(1, sizeof *m);
    if (m) {
        m->n_buckets = 64;
        m->buckets = calloc(m->n_buckets, sizeof *m->buckets);
    }
    if (!m || !m->buckets) {
        free(m);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory opening the memory store");
    }
    s->impl = m;
    s->ops = &mem_ops;
    return VR_OK;
}
