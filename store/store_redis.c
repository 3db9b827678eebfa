/* store/store_redis.c — the Redis backend (hiredis, one blocking connection per store).
 * Connect and command timeouts keep a dead Redis from hanging callers; a broken connection is
 * dropped and re-made on the next call, and the failed call is retried once on the new one
 * (every operation here is idempotent). Every reply's type is checked before use; surprises
 * drop the connection instead of crashing. Must not log the password or touch keys outside
 * the vrwkv:<tenant>:<session>: namespace it was called for. */
#include "store/store_internal.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define RD_TIMEOUT_S 2
#define RD_KEY_MAX (2 * VR_STORE_ID_MAX + 64)
#define RD_WATCH_TRIES 8

typedef struct rd_impl {
    char host[256];
    int port;
    char user[128];
    char pass[512];
    int has_pass;
    int db;
    redisContext *c;
    int broken;         /* the current op found the connection unusable */
    int ever_connected; /* later connects count as reconnects */
} rd_impl;

/* Arguments and results of one operation, so the retry loop can run it again. */
typedef struct rd_call {
    const char *tenant, *session;
    int64_t turn;
    int layer;
    const uint8_t *in;
    size_t in_len;
    uint8_t **out;
    size_t *out_len;
} rd_call;

typedef vr_status (*rd_fn)(vr_store *s, rd_call *a, vr_error *err);

/* ---- URL ---- */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Copies [p, p+n) percent-decoded into out; 0 on overflow or a bad escape. */
static int decode(const char *p, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '%') {
            if (i + 2 >= n) return 0;
            int h = hexval(p[i + 1]), l = hexval(p[i + 2]);
            if (h < 0 || l < 0) return 0;
            c = (char)(h * 16 + l);
            i += 2;
        }
        if (o + 1 >= cap) return 0;
        out[o++] = c;
    }
    out[o] = 0;
    return 1;
}

static int parse_int(const char *p, size_t n, long lo, long hi, int *out) {
    if (n == 0 || n > 9) return 0;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    if (v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

static vr_status parse_url(rd_impl *r, const char *url, vr_error *err) {
    const char *usage = "use redis://[[user]:password@]host[:port][/db]";
    const char *p = url + strlen("redis://");
    const char *at = strrchr(p, '@');
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        int ok;
        if (colon) {
            ok = decode(p, (size_t)(colon - p), r->user, sizeof r->user) &&
                 decode(colon + 1, (size_t)(at - colon - 1), r->pass, sizeof r->pass);
        } else {
            ok = decode(p, (size_t)(at - p), r->pass, sizeof r->pass);
        }
        if (!ok) return vr_error_set(err, VR_ERR_INVALID, "store URL has a bad or too long user/password (%s)", usage);
        r->has_pass = r->pass[0] != 0;
        p = at + 1;
    }
    const char *host_end;
    const char *rest;
    if (*p == '[') {
        host_end = strchr(p, ']');
        if (!host_end) return vr_error_set(err, VR_ERR_INVALID, "store URL has an unclosed [IPv6] host (%s)", usage);
        if ((size_t)(host_end - p - 1) >= sizeof r->host)
            return vr_error_set(err, VR_ERR_INVALID, "store URL host is too long");
        memcpy(r->host, p + 1, (size_t)(host_end - p - 1));
        r->host[host_end - p - 1] = 0;
        rest = host_end + 1;
    } else {
        host_end = p + strcspn(p, ":/");
        if ((size_t)(host_end - p) >= sizeof r->host)
            return vr_error_set(err, VR_ERR_INVALID, "store URL host is too long");
        memcpy(r->host, p, (size_t)(host_end - p));
        r->host[host_end - p] = 0;
        rest = host_end;
    }
    if (!r->host[0]) return vr_error_set(err, VR_ERR_INVALID, "store URL names no host (%s)", usage);
    r->port = 6379;
    if (*rest == ':') {
        size_t n = strcspn(rest + 1, "/");
        if (!parse_int(rest + 1, n, 1, 65535, &r->port))
            return vr_error_set(err, VR_ERR_INVALID, "store URL port is not a number in 1..65535 (%s)", usage);
        rest += 1 + n;
    }
    r->db = 0;
    if (*rest == '/') {
        size_t n = strlen(rest + 1);
        if (n && !parse_int(rest + 1, n, 0, 1000000, &r->db))
            return vr_error_set(err, VR_ERR_INVALID, "store URL database after '/' is not a number (%s)", usage);
        rest += 1 + n;
    }
    if (*rest) return vr_error_set(err, VR_ERR_INVALID, "store URL has unexpected text after the host (%s)", usage);
    return VR_OK;
}

/* ---- replies ---- */

static vr_status lost(vr_store *s, const char *what, vr_error *err) {
    rd_impl *r = s->impl;
    r->broken = 1;
    const char *why = r->c && r->c->errstr[0] ? r->c->errstr : "connection lost";
    if (r->c && r->c->err == REDIS_ERR_IO && strstr(why, "temporarily unavailable")) why = "timed out";
    return vr_error_set(err, VR_ERR_UNAVAILABLE, "Redis at %s:%d: %s failed: %s (is redis-server up and reachable?)",
                        r->host, r->port, what, why);
}

/* An unexpected reply: the protocol state is unknown, so the connection is dropped. */
static vr_status surprise(vr_store *s, const redisReply *rep, const char *what, vr_error *err) {
    rd_impl *r = s->impl;
    r->broken = 1;
    return vr_error_set(err, VR_ERR_INTERNAL, "Redis at %s:%d: %s got an unexpected reply (type %d)", r->host,
                        r->port, what, rep ? rep->type : -1);
}

/* Maps a Redis error reply to a status. */
static vr_status refused(vr_store *s, const redisReply *rep, const char *what, vr_error *err) {
    rd_impl *r = s->impl;
    const char *m = rep->str ? rep->str : "";
    vr_status code = VR_ERR_IO;
    if (!strncmp(m, "NOAUTH", 6) || !strncmp(m, "WRONGPASS", 9) || !strncmp(m, "NOPERM", 6))
        code = VR_ERR_AUTH;
    else if (!strncmp(m, "OOM", 3))
        code = VR_ERR_NOMEM;
    else if (!strncmp(m, "LOADING", 7) || !strncmp(m, "BUSY", 4) || !strncmp(m, "MASTERDOWN", 10) ||
             !strncmp(m, "TRYAGAIN", 8) || !strncmp(m, "READONLY", 8) || !strncmp(m, "CLUSTERDOWN", 11))
        code = VR_ERR_UNAVAILABLE;
    return vr_error_set(err, code, "Redis at %s:%d refused %s: %.200s", r->host, r->port, what, m);
}

static redisReply *command(vr_store *s, const char *what, vr_error *err, vr_status *st, const char *fmt, ...) {
    rd_impl *r = s->impl;
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->c, fmt, ap);
    va_end(ap);
    if (!rep) *st = lost(s, what, err);
    return rep;
}

/* Reads n pipelined replies; on a lost connection frees what was read and returns NULL-filled. */
static vr_status read_replies(vr_store *s, redisReply **reps, int n, const char *what, vr_error *err) {
    rd_impl *r = s->impl;
    for (int i = 0; i < n; i++) reps[i] = NULL;
    for (int i = 0; i < n; i++) {
        void *p = NULL;
        if (redisGetReply(r->c, &p) != REDIS_OK || !p) {
            for (int j = 0; j < i; j++) freeReplyObject(reps[j]);
            for (int j = 0; j < n; j++) reps[j] = NULL;
            return lost(s, what, err);
        }
        reps[i] = p;
    }
    return VR_OK;
}

static void free_replies(redisReply **reps, int n) {
    for (int i = 0; i < n; i++)
        if (reps[i]) freeReplyObject(reps[i]);
}

static int is_status(const redisReply *rep, const char *text) {
    return rep && rep->type == REDIS_REPLY_STATUS && rep->str && strcmp(rep->str, text) == 0;
}

/* Checks the replies of MULTI, n-2 queued commands, EXEC. *aborted = 1 when EXEC answered nil
 * (a WATCHed key changed). */
static vr_status check_exec(vr_store *s, redisReply **reps, int n, const char *what, int *aborted, vr_error *err) {
    *aborted = 0;
    if (reps[0]->type == REDIS_REPLY_ERROR) return refused(s, reps[0], what, err);
    if (!is_status(reps[0], "OK")) return surprise(s, reps[0], what, err);
    for (int i = 1; i < n - 1; i++) {
        if (reps[i]->type == REDIS_REPLY_ERROR) {
            /* EXEC will answer EXECABORT; the first queue error is the useful one. */
            return refused(s, reps[i], what, err);
        }
        if (!is_status(reps[i], "QUEUED")) return surprise(s, reps[i], what, err);
    }
    redisReply *ex = reps[n - 1];
    if (ex->type == REDIS_REPLY_NIL) {
        *aborted = 1;
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "Redis transaction for %s was aborted by a concurrent change",
                            what);
    }
    if (ex->type == REDIS_REPLY_ERROR) return refused(s, ex, what, err);
    if (ex->type != REDIS_REPLY_ARRAY || ex->elements != (size_t)(n - 2)) return surprise(s, ex, what, err);
    for (size_t i = 0; i < ex->elements; i++) {
        if (!ex->element[i]) return surprise(s, NULL, what, err);
        if (ex->element[i]->type == REDIS_REPLY_ERROR) return refused(s, ex->element[i], what, err);
    }
    return VR_OK;
}

/* ---- connection ---- */

static vr_status connect_now(vr_store *s, vr_error *err) {
    rd_impl *r = s->impl;
    struct timeval tv = {RD_TIMEOUT_S, 0};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    if (!c) return vr_error_set(err, VR_ERR_NOMEM, "out of memory connecting to Redis");
    if (c->err) {
        vr_status st = vr_error_set(err, VR_ERR_UNAVAILABLE,
                                    "Redis at %s:%d is unreachable: %s (is redis-server running, and the store URL "
                                    "right?)",
                                    r->host, r->port, c->errstr);
        redisFree(c);
        return st;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        redisFree(c);
        return vr_error_set(err, VR_ERR_UNAVAILABLE, "cannot set the Redis command timeout for %s:%d", r->host,
                            r->port);
    }
    redisEnableKeepAlive(c);
    r->c = c;
    r->broken = 0;
    vr_status st = VR_OK;
    if (r->has_pass) {
        redisReply *rep = r->user[0] ? command(s, "AUTH", err, &st, "AUTH %s %s", r->user, r->pass)
                                     : command(s, "AUTH", err, &st, "AUTH %s", r->pass);
        if (rep) {
            if (rep->type == REDIS_REPLY_ERROR)
                st = vr_error_set(err, VR_ERR_AUTH,
                                  "Redis at %s:%d refused the credentials in the store URL: %.200s", r->host, r->port,
                                  rep->str ? rep->str : "");
            else if (!is_status(rep, "OK"))
                st = surprise(s, rep, "AUTH", err);
            freeReplyObject(rep);
        }
    }
    if (st == VR_OK && r->db != 0) {
        redisReply *rep = command(s, "SELECT", err, &st, "SELECT %d", r->db);
        if (rep) {
            if (rep->type == REDIS_REPLY_ERROR)
                st = vr_error_set(err, rep->str && !strncmp(rep->str, "NOAUTH", 6) ? VR_ERR_AUTH : VR_ERR_INVALID,
                                  "Redis at %s:%d refused database %d from the store URL: %.200s", r->host, r->port,
                                  r->db, rep->str ? rep->str : "");
            else if (!is_status(rep, "OK"))
                st = surprise(s, rep, "SELECT", err);
            freeReplyObject(rep);
        }
    }
    if (st != VR_OK) {
        redisFree(r->c);
        r->c = NULL;
        return st;
    }
    if (r->ever_connected) atomic_fetch_add(&s->n_reconnects, 1);
    r->ever_connected = 1;
    return VR_OK;
}

/* hiredis writes with write(2): on a connection the server closed, that raises SIGPIPE, which
 * would kill the process. Block it in this thread around Redis I/O and swallow any that was
 * raised, so the broken connection shows up as an error instead (the process disposition is
 * left alone). */
typedef struct sigpipe_guard {
    sigset_t old;
    int was_pending;
} sigpipe_guard;

static void sigpipe_block(sigpipe_guard *g) {
    sigset_t pipe_set, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &g->old);
}

static void sigpipe_restore(const sigpipe_guard *g) {
    if (!g->was_pending) {
        sigset_t pipe_set, pending;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        sigemptyset(&pending);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE) == 1) {
            struct timespec zero = {0, 0};
            while (sigtimedwait(&pipe_set, NULL, &zero) == -1 && errno == EINTR) {
            }
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static vr_status run_guarded(vr_store *s, rd_fn fn, rd_call *a, vr_error *err);

/* Runs fn with SIGPIPE blocked (see sigpipe_block). */
static vr_status run(vr_store *s, rd_fn fn, rd_call *a, vr_error *err) {
    sigpipe_guard g;
    sigpipe_block(&g);
    vr_status st = run_guarded(s, fn, a, err);
    sigpipe_restore(&g);
    return st;
}

/* Runs fn, connecting first when needed; when fn finds the connection broken, drops it and
 * (if fn failed) runs it once more on a fresh connection. */
static vr_status run_guarded(vr_store *s, rd_fn fn, rd_call *a, vr_error *err) {
    rd_impl *r = s->impl;
    vr_status st = VR_ERR_INTERNAL;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!r->c) {
            st = connect_now(s, err);
            if (st != VR_OK) return st;
        }
        r->broken = 0;
        st = fn(s, a, err);
        if (!r->broken) return st;
        redisFree(r->c);
        r->c = NULL;
        if (st == VR_OK) return st;
        if (attempt == 0) continue;
    }
    return st;
}

/* ---- keys ---- */

static void key_prefix(char *k, size_t cap, const char *tenant, const char *session) {
    snprintf(k, cap, "vrwkv:%s:%s:", tenant, session);
}
static void key_rec(char *k, size_t cap, const char *tenant, const char *session) {
    snprintf(k, cap, "vrwkv:%s:%s:rec", tenant, session);
}
static void key_idx(char *k, size_t cap, const char *tenant, const char *session) {
    snprintf(k, cap, "vrwkv:%s:%s:keys", tenant, session);
}
static void key_blob(char *k, size_t cap, const char *tenant, const char *session, int64_t turn, int layer) {
    snprintf(k, cap, "vrwkv:%s:%s:blob:%lld:%d", tenant, session, (long long)turn, layer);
}

/* Parses the turn of "<prefix>blob:<turn>:<layer>"; 0 when the member is not such a key. */
static int blob_turn(const char *member, size_t len, const char *prefix, int64_t *turn) {
    size_t pl = strlen(prefix);
    if (len <= pl + 5 || memcmp(member, prefix, pl) != 0 || memcmp(member + pl, "blob:", 5) != 0) return 0;
    const char *p = member + pl + 5, *end = member + len;
    uint64_t t = 0;
    int digits = 0;
    while (p < end && *p >= '0' && *p <= '9' && digits < 19) {
        t = t * 10 + (uint64_t)(*p - '0');
        p++;
        digits++;
    }
    if (!digits || p >= end || *p != ':' || t > (uint64_t)INT64_MAX) return 0;
    *turn = (int64_t)t;
    return 1;
}

/* ---- operations ---- */

static vr_status op_put_blob(vr_store *s, rd_call *a, vr_error *err) {
    rd_impl *r = s->impl;
    char key[RD_KEY_MAX], idx[RD_KEY_MAX];
    key_blob(key, sizeof key, a->tenant, a->session, a->turn, a->layer);
    key_idx(idx, sizeof idx, a->tenant, a->session);
    int n = 0;
    redisAppendCommand(r->c, "MULTI");
    n++;
    if (s->ttl > 0)
        redisAppendCommand(r->c, "SET %s %b EX %d", key, a->in ? (const void *)a->in : (const void *)"", a->in_len,
                           s->ttl);
    else
        redisAppendCommand(r->c, "SET %s %b", key, a->in ? (const void *)a->in : (const void *)"", a->in_len);
    n++;
    redisAppendCommand(r->c, "SADD %s %s", idx, key);
    n++;
    if (s->ttl > 0) {
        redisAppendCommand(r->c, "EXPIRE %s %d", idx, s->ttl);
        n++;
    }
    redisAppendCommand(r->c, "EXEC");
    n++;
    redisReply *reps[5];
    vr_status st = read_replies(s, reps, n, "storing a state blob", err);
    if (st != VR_OK) return st;
    int aborted = 0;
    st = check_exec(s, reps, n, "storing a state blob", &aborted, err);
    free_replies(reps, n);
    return st;
}

static vr_status get_value(vr_store *s, const char *key, const char *what, rd_call *a, vr_error *err) {
    vr_status st = VR_OK;
    redisReply *rep = command(s, what, err, &st, "GET %s", key);
    if (!rep) return st;
    if (rep->type == REDIS_REPLY_STRING) {
        *a->out = vr_store_dup_bytes((const uint8_t *)rep->str, rep->len);
        *a->out_len = rep->len;
        st = *a->out ? VR_OK : vr_error_set(err, VR_ERR_NOMEM, "out of memory reading %zu bytes", rep->len);
    } else if (rep->type == REDIS_REPLY_NIL) {
        st = vr_error_set(err, VR_ERR_NOT_FOUND, "no %s (never stored, deleted or expired)", what);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        st = refused(s, rep, what, err);
    } else {
        st = surprise(s, rep, what, err);
    }
    freeReplyObject(rep);
    return st;
}

static vr_status op_get_blob(vr_store *s, rd_call *a, vr_error *err) {
    char key[RD_KEY_MAX], what[RD_KEY_MAX + 64];
    key_blob(key, sizeof key, a->tenant, a->session, a->turn, a->layer);
    snprintf(what, sizeof what, "state blob for tenant %s session %s turn %lld layer %d", a->tenant, a->session,
             (long long)a->turn, a->layer);
    return get_value(s, key, what, a, err);
}

static vr_status op_get_session(vr_store *s, rd_call *a, vr_error *err) {
    char key[RD_KEY_MAX], what[RD_KEY_MAX + 64];
    key_rec(key, sizeof key, a->tenant, a->session);
    snprintf(what, sizeof what, "session record for tenant %s session %s", a->tenant, a->session);
    return get_value(s, key, what, a, err);
}

/* SMEMBERS of the session index, every member checked to be a string inside the session's
 * namespace (others are ignored, never touched). */
static vr_status index_members(vr_store *s, const char *idx, const char *prefix, redisReply **out, vr_error *err) {
    vr_status st = VR_OK;
    *out = NULL;
    redisReply *rep = command(s, "reading the session index", err, &st, "SMEMBERS %s", idx);
    if (!rep) return st;
    if (rep->type == REDIS_REPLY_ERROR) {
        st = refused(s, rep, "reading the session index", err);
        freeReplyObject(rep);
        return st;
    }
    if (rep->type != REDIS_REPLY_ARRAY) {
        st = surprise(s, rep, "reading the session index", err);
        freeReplyObject(rep);
        return st;
    }
    size_t pl = strlen(prefix);
    for (size_t i = 0; i < rep->elements; i++) {
        redisReply *m = rep->element[i];
        if (!m || m->type != REDIS_REPLY_STRING || m->len <= pl || memcmp(m->str, prefix, pl) != 0 ||
            memchr(m->str, 0, m->len)) {
            /* Not ours: blank it out so callers skip it. */
            if (m) m->type = REDIS_REPLY_NIL;
        }
    }
    *out = rep;
    return VR_OK;
}

static vr_status op_commit(vr_store *s, rd_call *a, vr_error *err) {
    rd_impl *r = s->impl;
    char rec[RD_KEY_MAX], idx[RD_KEY_MAX], prefix[RD_KEY_MAX];
    key_rec(rec, sizeof rec, a->tenant, a->session);
    key_idx(idx, sizeof idx, a->tenant, a->session);
    key_prefix(prefix, sizeof prefix, a->tenant, a->session);
    redisReply *members = NULL;
    vr_status st = index_members(s, idx, prefix, &members, err);
    if (st != VR_OK) return st;

    /* MULTI, SET rec, SADD idx rec, [EXPIRE idx, EXPIRE each blob of this turn], EXEC. */
    int n = 0;
    redisAppendCommand(r->c, "MULTI");
    n++;
    if (s->ttl > 0)
        redisAppendCommand(r->c, "SET %s %b EX %d", rec, a->in ? (const void *)a->in : (const void *)"", a->in_len,
                           s->ttl);
    else
        redisAppendCommand(r->c, "SET %s %b", rec, a->in ? (const void *)a->in : (const void *)"", a->in_len);
    n++;
    redisAppendCommand(r->c, "SADD %s %s", idx, rec);
    n++;
    size_t n_old = 0;
    for (size_t i = 0; i < members->elements; i++) {
        redisReply *m = members->element[i];
        int64_t t = 0;
        if (m->type != REDIS_REPLY_STRING || !blob_turn(m->str, m->len, prefix, &t)) continue;
        if (t < a->turn) n_old++;
        if (t != a->turn || s->ttl <= 0) continue;
        redisAppendCommand(r->c, "EXPIRE %b %d", m->str, m->len, s->ttl);
        n++;
    }
    if (s->ttl > 0) {
        redisAppendCommand(r->c, "EXPIRE %s %d", idx, s->ttl);
        n++;
    }
    redisAppendCommand(r->c, "EXEC");
    n++;
    redisReply **reps = calloc((size_t)n, sizeof *reps);
    if (!reps) {
        /* The commands are already queued: the connection must go. */
        freeReplyObject(members);
        r->broken = 1;
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory committing a session");
    }
    st = read_replies(s, reps, n, "committing the session", err);
    if (st == VR_OK) {
        int aborted = 0;
        st = check_exec(s, reps, n, "committing the session", &aborted, err);
        free_replies(reps, n);
    }
    free(reps);

    /* Best-effort: drop blobs of older turns, then forget them in the index. */
    if (st == VR_OK && n_old) {
        size_t argc = n_old + 1;
        const char **argv = malloc(argc * sizeof *argv);
        size_t *lens = malloc(argc * sizeof *lens);
        if (argv && lens) {
            size_t k = 1;
            for (size_t i = 0; i < members->elements; i++) {
                redisReply *m = members->element[i];
                int64_t t = 0;
                if (m->type != REDIS_REPLY_STRING || !blob_turn(m->str, m->len, prefix, &t) || t >= a->turn) continue;
                argv[k] = m->str;
                lens[k] = m->len;
                k++;
            }
            argv[0] = "DEL";
            lens[0] = 3;
            redisAppendCommandArgv(r->c, (int)k, argv, lens);
            /* SREM idx <the same keys> */
            const char **argv2 = malloc((k + 1) * sizeof *argv2);
            size_t *lens2 = malloc((k + 1) * sizeof *lens2);
            int sent = 1;
            if (argv2 && lens2) {
                argv2[0] = "SREM";
                lens2[0] = 4;
                argv2[1] = idx;
                lens2[1] = strlen(idx);
                for (size_t i = 1; i < k; i++) {
                    argv2[i + 1] = argv[i];
                    lens2[i + 1] = lens[i];
                }
                redisAppendCommandArgv(r->c, (int)(k + 1), argv2, lens2);
                sent = 2;
            }
            redisReply *cleanup[2] = {NULL, NULL};
            vr_error ignored;
            if (read_replies(s, cleanup, sent, "deleting older turns", &ignored) == VR_OK) free_replies(cleanup, sent);
            free(argv2);
            free(lens2);
        }
        free(argv);
        free(lens);
    }
    freeReplyObject(members);
    return st;
}

static void unwatch(vr_store *s) {
    rd_impl *r = s->impl;
    if (r->broken || !r->c) return;
    redisReply *rep = redisCommand(r->c, "UNWATCH");
    if (!rep)
        r->broken = 1;
    else
        freeReplyObject(rep);
}

static vr_status op_delete_session(vr_store *s, rd_call *a, vr_error *err) {
    rd_impl *r = s->impl;
    char rec[RD_KEY_MAX], idx[RD_KEY_MAX], prefix[RD_KEY_MAX];
    key_rec(rec, sizeof rec, a->tenant, a->session);
    key_idx(idx, sizeof idx, a->tenant, a->session);
    key_prefix(prefix, sizeof prefix, a->tenant, a->session);
    for (int tries = 0; tries < RD_WATCH_TRIES; tries++) {
        vr_status st = VR_OK;
        redisReply *w = command(s, "WATCH", err, &st, "WATCH %s", idx);
        if (!w) return st;
        if (w->type == REDIS_REPLY_ERROR)
            st = refused(s, w, "deleting the session", err);
        else if (!is_status(w, "OK"))
            st = surprise(s, w, "deleting the session", err);
        freeReplyObject(w);
        if (st != VR_OK) return st;

        redisReply *members = NULL;
        st = index_members(s, idx, prefix, &members, err);
        if (st != VR_OK) {
            unwatch(s);
            return st;
        }
        size_t argc = 3 + members->elements;
        const char **argv = malloc(argc * sizeof *argv);
        size_t *lens = malloc(argc * sizeof *lens);
        if (!argv || !lens) {
            free(argv);
            free(lens);
            freeReplyObject(members);
            unwatch(s);
            return vr_error_set(err, VR_ERR_NOMEM, "out of memory deleting a session");
        }
        size_t k = 0;
        argv[k] = "DEL";
        lens[k++] = 3;
        argv[k] = idx;
        lens[k++] = strlen(idx);
        argv[k] = rec;
        lens[k++] = strlen(rec);
        for (size_t i = 0; i < members->elements; i++) {
            redisReply *m = members->element[i];
            if (m->type != REDIS_REPLY_STRING || (m->len == strlen(rec) && !memcmp(m->str, rec, m->len))) continue;
            argv[k] = m->str;
            lens[k++] = m->len;
        }
        redisAppendCommand(r->c, "MULTI");
        redisAppendCommandArgv(r->c, (int)k, argv, lens);
        redisAppendCommand(r->c, "EXEC");
        free(argv);
        free(lens);
        freeReplyObject(members);
        redisReply *reps[3];
        st = read_replies(s, reps, 3, "deleting the session", err);
        if (st != VR_OK) return st;
        int aborted = 0;
        st = check_exec(s, reps, 3, "deleting the session", &aborted, err);
        free_replies(reps, 3);
        if (!aborted) {
            if (st != VR_OK) unwatch(s);
            return st;
        }
    }
    return vr_error_set(err, VR_ERR_UNAVAILABLE,
                        "deleting session %s of tenant %s kept racing with concurrent writes; retry", a->session,
                        a->tenant);
}

static vr_status op_ping(vr_store *s, rd_call *a, vr_error *err) {
    (void)a;
    vr_status st = VR_OK;
    redisReply *rep = command(s, "PING", err, &st, "PING");
    if (!rep) return st;
    if (rep->type == REDIS_REPLY_ERROR)
        st = refused(s, rep, "PING", err);
    else if (!is_status(rep, "PONG"))
        st = surprise(s, rep, "PING", err);
    freeReplyObject(rep);
    return st;
}

/* ---- backend table ---- */

static vr_status rd_put_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                             const uint8_t *data, size_t len, vr_error *err) {
    rd_call a = {.tenant = tenant, .session = session, .turn = turn, .layer = layer, .in = data, .in_len = len};
    return run(s, op_put_blob, &a, err);
}

static vr_status rd_get_blob(vr_store *s, const char *tenant, const char *session, int64_t turn, int layer,
                             uint8_t **data, size_t *len, vr_error *err) {
    rd_call a = {.tenant = tenant, .session = session, .turn = turn, .layer = layer, .out = data, .out_len = len};
    return run(s, op_get_blob, &a, err);
}

static vr_status rd_commit(vr_store *s, const char *tenant, const char *session, int64_t turn, const uint8_t *rec,
                           size_t len, vr_error *err) {
    rd_call a = {.tenant = tenant, .session = session, .turn = turn, .in = rec, .in_len = len};
    return run(s, op_commit, &a, err);
}

static vr_status rd_get_session(vr_store *s, const char *tenant, const char *session, uint8_t **rec, size_t *len,
                                vr_error *err) {
    rd_call a = {.tenant = tenant, .session = session, .out = rec, .out_len = len};
    return run(s, op_get_session, &a, err);
}

static vr_status rd_delete_session(vr_store *s, const char *tenant, const char *session, vr_error *err) {
    rd_call a = {.tenant = tenant, .session = session};
    return run(s, op_delete_session, &a, err);
}

static vr_status rd_ping(vr_store *s, vr_error *err) {
    rd_call a = {0};
    return run(s, op_ping, &a, err);
}

static void rd_close(vr_store *s) {
    rd_impl *r = s->impl;
    if (!r) return;
    if (r->c) redisFree(r->c); /* close(2) only: no write, no SIGPIPE */
    memset(r->pass, 0, sizeof r->pass);
    free(r);
    s->impl = NULL;
}

static const vr_store_backend_ops rd_ops = {
    .name = "redis",
    .put_blob = rd_put_blob,
    .get_blob = rd_get_blob,
    .commit = rd_commit,
    .get_session = rd_get_session,
    .delete_session = rd_delete_session,
    .ping = rd_ping,
    .close = rd_close,
};

vr_status vr_store_redis_open(vr_store *s, const char *url, vr_error *err) {
    rd_impl *r = calloc(1, sizeof *r);
    if (!r) return vr_error_set(err, VR_ERR_NOMEM, "out of memory opening the Redis store");
    s->impl = r;
    s->ops = &rd_ops;
    vr_status st = parse_url(r, url, err);
    if (st == VR_OK) {
        sigpipe_guard g;
        sigpipe_block(&g);
        st = connect_now(s, err);
        sigpipe_restore(&g);
    }
    if (st != VR_OK) {
        rd_close(s);
        s->ops = NULL;
    }
    return st;
}
