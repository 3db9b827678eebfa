/* store/store.c — the store front: picks the backend from the URL, validates tenant/session
 * ids and arguments, serialises calls with the store mutex and keeps the latency counters.
 * Must not talk to Redis or the filesystem itself: that is the backends' job. */
#include "store/store_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint8_t *vr_store_dup_bytes(const uint8_t *p, size_t n) {
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

vr_status vr_store_check_id(const char *id, const char *what, vr_error *err) {
    if (!id) return vr_error_set(err, VR_ERR_INVALID, "%s id is missing", what);
    size_t n = strnlen(id, VR_STORE_ID_MAX + 1);
    if (n == 0) return vr_error_set(err, VR_ERR_INVALID, "%s id is empty", what);
    if (n > VR_STORE_ID_MAX)
        return vr_error_set(err, VR_ERR_INVALID, "%s id is longer than %d bytes", what, VR_STORE_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                 c == '_' || c == '-';
        if (!ok)
            return vr_error_set(err, VR_ERR_INVALID,
                                "%s id has a character outside [A-Za-z0-9._-] at byte %zu (0x%02x)", what, i,
                                (unsigned)(unsigned char)c);
    }
    if (strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
        return vr_error_set(err, VR_ERR_INVALID, "%s id must not be \".\" or \"..\"", what);
    return VR_OK;
}

vr_status vr_store_open(const char *url, int ttl_seconds, vr_store **out, vr_error *err) {
    if (!out) return vr_error_set(err, VR_ERR_INVALID, "vr_store_open: out is NULL");
    *out = NULL;
    if (!url || !*url)
        return vr_error_set(err, VR_ERR_INVALID,
                            "store URL is empty (use redis://host:port[/db], memory or dir:/path)");
    vr_store *s = calloc(1, sizeof *s);
    if (!s) return vr_error_set(err, VR_ERR_NOMEM, "out of memory opening the store");
    s->ttl = ttl_seconds > 0 ? ttl_seconds : 0;
    if (pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s);
        return vr_error_set(err, VR_ERR_INTERNAL, "cannot create the store mutex");
    }
    vr_status st;
    if (strncmp(url, "redis://", 8) == 0) {
        st = vr_store_redis_open(s, url, err);
    } else if (strcmp(url, "memory") == 0) {
        st = vr_store_memory_open(s, err);
    } else if (strncmp(url, "dir:", 4) == 0) {
        st = vr_store_dir_open(s, url + 4, err);
    } else {
        st = vr_error_set(err, VR_ERR_INVALID,
                          "unknown store URL scheme (use redis://host:port[/db], memory or dir:/path)");
    }
    if (st != VR_OK) {
        pthread_mutex_destroy(&s->mu);
        free(s);
        return st;
    }
    *out = s;
    return VR_OK;
}

void vr_store_close(vr_store *s) {
    if (!s) return;
    if (s->ops && s->ops->close) s->ops->close(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *vr_store_backend(const vr_store *s) { return s && s->ops ? s->ops->name : "none"; }

/* Locks and starts the clock; returns the start time. */
static uint64_t begin(vr_store *s) {
    uint64_t t0 = now_ns();
    pthread_mutex_lock(&s->mu);
    return t0;
}

static vr_status end(vr_store *s, uint64_t t0, vr_status st) {
    pthread_mutex_unlock(&s->mu);
    uint64_t dt = now_ns() - t0;
    atomic_fetch_add(&s->n_ops, 1);
    atomic_fetch_add(&s->lat_total_ns, dt);
    uint64_t mx = atomic_load(&s->lat_max_ns);
    while (dt > mx && !atomic_compare_exchange_weak(&s->lat_max_ns, &mx, dt)) {
    }
    if (st == VR_ERR_NOT_FOUND)
        atomic_fetch_add(&s->n_not_found, 1);
    else if (st != VR_OK)
        atomic_fetch_add(&s->n_errors, 1);
    return st;
}

/* Argument errors are counted like other failed calls. */
static vr_status refuse(vr_store *s, vr_status st) {
    atomic_fetch_add(&s->n_ops, 1);
    atomic_fetch_add(&s->n_errors, 1);
    return st;
}

static vr_status check_ids(const char *tenant, const char *session, vr_error *err) {
    vr_status st = vr_store_check_id(tenant, "tenant", err);
    if (st == VR_OK) st = vr_store_check_id(session, "session", err);
    return st;
}

static vr_status check_key(const char *tenant, const char *session, int64_t turn, int layer, vr_error *err) {
    vr_status st = check_ids(tenant, session, err);
    if (st != VR_OK) return st;
    if (turn < 0) return vr_error_set(err, VR_ERR_INVALID, "turn %lld is negative", (long long)turn);
    if (layer < 0) return vr_error_set(err, VR_ERR_INVALID, "layer %d is negative", layer);
    return VR_OK;
}

static vr_status check_value(const uint8_t *data, size_t len, const char *what, vr_error *err) {
    if (!data && len) return vr_error_set(err, VR_ERR_INVALID, "%s data is NULL but its length is %zu", what, len);
    if (len > VR_STORE_VALUE_MAX)
        return vr_error_set(err, VR_ERR_NOMEM, "%s of %zu bytes exceeds the store limit of %zu bytes", what, len,
                            VR_STORE_VALUE_MAX);
    return VR_OK;
}

vr_status vr_store_put_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                            const uint8_t *data, size_t len, vr_error *err) {
    if (!s) return vr_error_set(err, VR_ERR_INVALID, "store is NULL");
    vr_status st = check_key(tenant, session, turn, layer, err);
    if (st == VR_OK) st = check_value(data, len, "state blob", err);
    if (st != VR_OK) return refuse(s, st);
    uint64_t t0 = begin(s);
    st = s->ops->put_blob(s, tenant, session, turn, layer, data, len, err);
    return end(s, t0, st);
}

vr_status vr_store_get_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                            uint8_t **data, size_t *len, vr_error *err) {
    if (data) *data = NULL;
    if (len) *len = 0;
    if (!s) return vr_error_set(err, VR_ERR_INVALID, "store is NULL");
    if (!data || !len) return refuse(s, vr_error_set(err, VR_ERR_INVALID, "vr_store_get_blob: data or len is NULL"));
    vr_status st = check_key(tenant, session, turn, layer, err);
    if (st != VR_OK) return refuse(s, st);
    uint64_t t0 = begin(s);
    st = s->ops->get_blob(s, tenant, session, turn, layer, data, len, err);
    if (st != VR_OK) {
        free(*data);
        *data = NULL;
        *len = 0;
    }
    return end(s, t0, st);
}

vr_status vr_store_commit_session(vr_store *s, const char *tenant, const char *session, int64_t turn,
                                  const uint8_t *record, size_t len, vr_error *err) {
    if (!s) return vr_error_set(err, VR_ERR_INVALID, "store is NULL");
    vr_status st = check_key(tenant, session, turn, 0, err);
    if (st == VR_OK) st = check_value(record, len, "session record", err);
    if (st != VR_OK) return refuse(s, st);
    uint64_t t0 = begin(s);
    st = s->ops->commit(s, tenant, session, turn, record, len, err);
    return end(s, t0, st);
}

vr_status vr_store_get_session(vr_store *s, const char *tenant, const char *session, uint8_t **rec, size_t *len,
                               vr_error *err) {
    if (rec) *rec = NULL;
    if (len) *len = 0;
    if (!s) return vr_error_set(err, VR_ERR_INVALID, "store is NULL");
    if (!rec || !len) return refuse(s, vr_error_set(err, VR_ERR_INVALID, "vr_store_get_session: rec or len is NULL"));
    vr_status st = check_ids(tenant, session, err);
    if (st != VR_OK) return refuse(s, st);
    uint64_t t0 = begin(s);
    st = s->ops->get_session(s, tenant, session, rec, len, err);
    if (st != VR_OK) {
        free(*rec);
        *rec = NULL;
        *len = 0;
    }
    return end(s, t0, st);
}

vr_status vr_store_delete_session(vr_store *s, const char *tenant, const char *session, vr_error *err) {
    if (!s) return vr_error_set(err, VR_ERR_INVALID, "store is NULL");
    vr_status st = check_ids(tenant, session, err);
    if (st != VR_OK) return refuse(s, st);
    uint64_t t0 = begin(s);
    st = s->ops->delete_session(s, tenant, session, err);
    return end(s, t0, st);
}

vr_status vr_store_ping(vr_store *s, vr_error *err) {
    if (!s) return vr_error_set(err, VR_ERR_INVALID, "store is NULL");
    uint64_t t0 = begin(s);
    vr_status st = s->ops->ping(s, err);
    return end(s, t0, st);
}

void vr_store_stats(vr_store *s, vr_store_stats_t *out) {
    if (!out) return;
    memset(out, 0, sizeof *out);
    if (!s) return;
    out->ops = atomic_load(&s->n_ops);
    out->errors = atomic_load(&s->n_errors);
    out->not_found = atomic_load(&s->n_not_found);
    out->reconnects = atomic_load(&s->n_reconnects);
    out->total_latency_ns = atomic_load(&s->lat_total_ns);
    out->max_latency_ns = atomic_load(&s->lat_max_ns);
}
