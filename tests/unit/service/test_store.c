/* tests/unit/service/test_store.c — the conversation-state store (store/store.h) against all
 * three backends: memory, dir (a temp directory) and a real redis-server that this test starts
 * on a free port (skipped loudly when redis-server is not installed). Every behaviour runs on
 * every backend; the Redis-only cases cover restart, a dead or frozen server, AUTH and SELECT.
 * Must not touch a Redis it did not start, nor leave servers or temp files behind. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store/store.h"

typedef struct backend {
    const char *name; /* "memory", "dir", "redis" */
    char url[600];
    int available;
} backend;

static backend g_memory = {.name = "memory"}, g_dir = {.name = "dir"}, g_redis = {.name = "redis"};
static char g_tmp[256];      /* scratch dir for the whole run */
static char g_dir_root[512]; /* the dir backend's root */
static pid_t g_redis_pid = -1;
static int g_redis_port;

/* ---- helpers ---- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int have_redis_server(void) {
    const char *path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[4200];
        snprintf(p, sizeof p, "%s/redis-server", d);
        if (access(p, X_OK) == 0) return 1;
    }
    return 0;
}

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static redisContext *raw_connect(int port) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c) redisSetTimeout(c, tv);
    return c;
}

/* Ready = answers PING and is not loading its data set. */
static int redis_ready(int port, const char *pass) {
    redisContext *c = raw_connect(port);
    if (!c) return 0;
    int ok = 1;
    if (pass) {
        redisReply *r = redisCommand(c, "AUTH %s", pass);
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r) freeReplyObject(r);
    }
    if (ok) {
        redisReply *r = redisCommand(c, "GET vrwkv-test-ready-probe");
        ok = r && r->type == REDIS_REPLY_NIL;
        if (r) freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

/* Starts redis-server on port; persist_dir: AOF persistence there, else none. */
static pid_t start_redis(int port, const char *persist_dir, const char *pass) {
    char portbuf[16], log[700];
    snprintf(portbuf, sizeof portbuf, "%d", port);
    snprintf(log, sizeof log, "%s/redis-%d.log", g_tmp, port);
    const char *argv[24];
    int n = 0;
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = portbuf;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--daemonize";
    argv[n++] = "no";
    argv[n++] = "--appendonly";
    argv[n++] = persist_dir ? "yes" : "no";
    if (persist_dir) {
        argv[n++] = "--dir";
        argv[n++] = persist_dir;
    }
    if (pass) {
        argv[n++] = "--requirepass";
        argv[n++] = pass;
    }
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        FILE *f = freopen(log, "w", stdout);
        (void)f;
        dup2(1, 2);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    if (pid < 0) return -1;
    for (double t0 = now_s(); now_s() - t0 < 10;) {
        if (redis_ready(port, pass)) return pid;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "redis-server on port %d exited early; see %s\n", port, log);
            return -1;
        }
        sleep_s(0.02);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void stop_redis(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

static void rm_rf(const char *path) {
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static long long raw_integer(redisContext *c, const char *fmt, const char *key) {
    redisReply *r = redisCommand(c, fmt, key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Number of keys matching pattern (KEYS is fine on a test server). */
static size_t raw_count_keys(redisContext *c, const char *pattern) {
    redisReply *r = redisCommand(c, "KEYS %s", pattern);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    size_t n = r->elements;
    freeReplyObject(r);
    return n;
}

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Number of entries under the dir backend's session directory starting with prefix. */
static int dir_count(const char *tenant, const char *session, const char *prefix) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/%s", g_dir_root, tenant, session);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && !strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

static void fill(uint8_t *p, size_t n, uint32_t seed) {
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (uint8_t)(x >> 24);
    }
    if (n) p[0] = 0; /* binary-safe: a NUL first */
}

static vr_store *open_or_skip(backend *b, int ttl) {
    if (!b->available) {
        fprintf(stderr, "SKIPPED [%s]: redis-server is not installed, the Redis backend is NOT tested\n", b->name);
        skip();
    }
    vr_store *s = NULL;
    vr_error err = {0};
    vr_status st = vr_store_open(b->url, ttl, &s, &err);
    if (st != VR_OK) fprintf(stderr, "[%s] open %s: %s\n", b->name, b->url, err.msg);
    assert_int_equal(st, VR_OK);
    assert_string_equal(vr_store_backend(s), b->name);
    return s;
}

static void put(vr_store *s, const char *t, const char *sess, int64_t turn, int layer, const void *d, size_t n) {
    vr_error err = {0};
    vr_status st = vr_store_put_blob(s, t, sess, turn, layer, d, n, &err);
    if (st != VR_OK) fprintf(stderr, "put: %s\n", err.msg);
    assert_int_equal(st, VR_OK);
}

static void expect_blob(vr_store *s, const char *t, const char *sess, int64_t turn, int layer, const void *d,
                        size_t n) {
    vr_error err = {0};
    uint8_t *got = NULL;
    size_t len = 99;
    vr_status st = vr_store_get_blob(s, t, sess, turn, layer, &got, &len, &err);
    if (st != VR_OK) fprintf(stderr, "get_blob: %s\n", err.msg);
    assert_int_equal(st, VR_OK);
    assert_non_null(got);
    assert_int_equal(len, n);
    if (n) assert_memory_equal(got, d, n);
    free(got);
}

static void expect_no_blob(vr_store *s, const char *t, const char *sess, int64_t turn, int layer) {
    vr_error err = {0};
    uint8_t *got = (uint8_t *)1;
    size_t len = 99;
    assert_int_equal(vr_store_get_blob(s, t, sess, turn, layer, &got, &len, &err), VR_ERR_NOT_FOUND);
    assert_null(got);
    assert_int_equal(len, 0);
    assert_int_equal(err.code, VR_ERR_NOT_FOUND);
    assert_true(strlen(err.msg) > 0);
}

static void commit(vr_store *s, const char *t, const char *sess, int64_t turn, const char *rec) {
    vr_error err = {0};
    vr_status st = vr_store_commit_session(s, t, sess, turn, (const uint8_t *)rec, strlen(rec), &err);
    if (st != VR_OK) fprintf(stderr, "commit: %s\n", err.msg);
    assert_int_equal(st, VR_OK);
}

static void expect_session(vr_store *s, const char *t, const char *sess, const char *rec) {
    vr_error err = {0};
    uint8_t *got = NULL;
    size_t len = 0;
    vr_status st = vr_store_get_session(s, t, sess, &got, &len, &err);
    if (st != VR_OK) fprintf(stderr, "get_session: %s\n", err.msg);
    assert_int_equal(st, VR_OK);
    assert_int_equal(len, strlen(rec));
    assert_memory_equal(got, rec, len);
    free(got);
}

static void expect_no_session(vr_store *s, const char *t, const char *sess) {
    vr_error err = {0};
    uint8_t *got = (uint8_t *)1;
    size_t len = 99;
    assert_int_equal(vr_store_get_session(s, t, sess, &got, &len, &err), VR_ERR_NOT_FOUND);
    assert_null(got);
    assert_int_equal(len, 0);
}

/* ---- behaviours, run against every backend ---- */

static void test_roundtrip(void **state) {
    vr_store *s = open_or_skip(*state, 3600);
    uint8_t a[4096], b[777];
    fill(a, sizeof a, 1);
    fill(b, sizeof b, 2);
    put(s, "acme", "rt", 0, 0, a, sizeof a);
    put(s, "acme", "rt", 0, 1, b, sizeof b);
    put(s, "acme", "rt", 7, 23, b, 10);
    expect_blob(s, "acme", "rt", 0, 0, a, sizeof a);
    expect_blob(s, "acme", "rt", 0, 1, b, sizeof b);
    expect_blob(s, "acme", "rt", 7, 23, b, 10);
    put(s, "acme", "rt", 0, 0, b, sizeof b); /* overwrite */
    expect_blob(s, "acme", "rt", 0, 0, b, sizeof b);
    put(s, "acme", "rt", 1, 0, NULL, 0); /* empty blob */
    expect_blob(s, "acme", "rt", 1, 0, "", 0);
    vr_error err = {0};
    assert_int_equal(vr_store_ping(s, &err), VR_OK);
    vr_store_close(s);
}

static void test_not_found(void **state) {
    vr_store *s = open_or_skip(*state, 3600);
    expect_no_blob(s, "acme", "nf-none", 0, 0);
    expect_no_session(s, "acme", "nf-none");
    put(s, "acme", "nf", 3, 0, "x", 1);
    expect_no_blob(s, "acme", "nf", 3, 1); /* other layer */
    expect_no_blob(s, "acme", "nf", 2, 0); /* other turn */
    expect_no_session(s, "acme", "nf");    /* blobs but no commit */
    vr_error err = {0};
    assert_int_equal(vr_store_delete_session(s, "acme", "nf-none", &err), VR_OK); /* idempotent */
    vr_store_stats_t st;
    vr_store_stats(s, &st);
    assert_int_equal(st.not_found, 5);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.ops, 7);
    assert_true(st.total_latency_ns > 0);
    assert_true(st.max_latency_ns > 0 && st.max_latency_ns <= st.total_latency_ns);
    vr_store_close(s);
}

static void test_commit_and_get_session(void **state) {
    vr_store *s = open_or_skip(*state, 3600);
    put(s, "acme", "cs", 1, 0, "L0", 2);
    commit(s, "acme", "cs", 1, "record-turn-1");
    expect_session(s, "acme", "cs", "record-turn-1");
    expect_blob(s, "acme", "cs", 1, 0, "L0", 2);
    commit(s, "acme", "cs", 1, "record-turn-1b"); /* re-commit replaces */
    expect_session(s, "acme", "cs", "record-turn-1b");
    vr_error err = {0};
    assert_int_equal(vr_store_commit_session(s, "acme", "cs-empty", 0, NULL, 0, &err), VR_OK);
    uint8_t *rec = NULL;
    size_t len = 9;
    assert_int_equal(vr_store_get_session(s, "acme", "cs-empty", &rec, &len, &err), VR_OK);
    assert_non_null(rec);
    assert_int_equal(len, 0);
    free(rec);
    vr_store_close(s);
}

static void test_older_turns_deleted(void **state) {
    backend *b = *state;
    vr_store *s = open_or_skip(b, 3600);
    for (int l = 0; l < 3; l++) put(s, "acme", "old", 1, l, "t1", 2);
    commit(s, "acme", "old", 1, "r1");
    for (int l = 0; l < 3; l++) put(s, "acme", "old", 2, l, "t2", 2);
    put(s, "acme", "old", 3, 0, "t3", 2); /* a newer turn in flight: must survive */
    for (int l = 0; l < 3; l++) expect_blob(s, "acme", "old", 1, l, "t1", 2); /* not yet committed */
    commit(s, "acme", "old", 2, "r2");
    for (int l = 0; l < 3; l++) {
        expect_no_blob(s, "acme", "old", 1, l);
        expect_blob(s, "acme", "old", 2, l, "t2", 2);
    }
    expect_blob(s, "acme", "old", 3, 0, "t3", 2);
    expect_session(s, "acme", "old", "r2");
    if (!strcmp(b->name, "redis")) {
        redisContext *c = raw_connect(g_redis_port);
        assert_non_null(c);
        assert_int_equal(raw_count_keys(c, "vrwkv:acme:old:blob:1:*"), 0);
        assert_int_equal(raw_count_keys(c, "vrwkv:acme:old:blob:2:*"), 3);
        /* index: 3 blobs of turn 2, 1 of turn 3, the record */
        assert_int_equal(raw_integer(c, "SCARD %s", "vrwkv:acme:old:keys"), 5);
        assert_int_equal(raw_integer(c, "SISMEMBER %s vrwkv:acme:old:blob:1:0", "vrwkv:acme:old:keys"), 0);
        redisFree(c);
    } else if (!strcmp(b->name, "dir")) {
        assert_int_equal(dir_count("acme", "old", "blob.1."), 0);
        assert_int_equal(dir_count("acme", "old", "blob.2."), 3);
        assert_int_equal(dir_count("acme", "old", ".tmp"), 0);
    }
    vr_store_close(s);
}

static void test_delete_session(void **state) {
    backend *b = *state;
    vr_store *s = open_or_skip(b, 3600);
    for (int t = 1; t <= 2; t++)
        for (int l = 0; l < 4; l++) put(s, "acme", "del", t, l, "v", 1);
    commit(s, "acme", "del", 1, "r"); /* turn 1 committed, turn 2 blobs pending */
    put(s, "acme", "del", 1, 0, "again", 5);
    put(s, "acme", "del-keep", 1, 0, "k", 1);
    commit(s, "acme", "del-keep", 1, "keep");
    vr_error err = {0};
    assert_int_equal(vr_store_delete_session(s, "acme", "del", &err), VR_OK);
    expect_no_session(s, "acme", "del");
    for (int t = 1; t <= 2; t++)
        for (int l = 0; l < 4; l++) expect_no_blob(s, "acme", "del", t, l);
    expect_session(s, "acme", "del-keep", "keep"); /* a neighbour is untouched */
    expect_blob(s, "acme", "del-keep", 1, 0, "k", 1);
    if (!strcmp(b->name, "redis")) {
        redisContext *c = raw_connect(g_redis_port);
        assert_non_null(c);
        assert_int_equal(raw_count_keys(c, "vrwkv:acme:del:*"), 0);
        assert_int_equal(raw_count_keys(c, "vrwkv:acme:del-keep:*"), 3);
        redisFree(c);
    } else if (!strcmp(b->name, "dir")) {
        char p[1024];
        snprintf(p, sizeof p, "%s/acme/del", g_dir_root);
        assert_false(path_exists(p));
        snprintf(p, sizeof p, "%s/acme/del-keep/rec", g_dir_root);
        assert_true(path_exists(p));
    }
    /* the session can be used again afterwards */
    put(s, "acme", "del", 5, 0, "new", 3);
    expect_blob(s, "acme", "del", 5, 0, "new", 3);
    assert_int_equal(vr_store_delete_session(s, "acme", "del", &err), VR_OK);
    vr_store_close(s);
}

static void test_ttl(void **state) {
    backend *b = *state;
    if (!strcmp(b->name, "redis") && b->available) {
        vr_store *s = open_or_skip(b, 600);
        put(s, "acme", "ttl", 1, 0, "x", 1);
        commit(s, "acme", "ttl", 1, "r");
        redisContext *c = raw_connect(g_redis_port);
        assert_non_null(c);
        const char *keys[] = {"vrwkv:acme:ttl:rec", "vrwkv:acme:ttl:blob:1:0", "vrwkv:acme:ttl:keys"};
        for (int i = 0; i < 3; i++) {
            long long ttl = raw_integer(c, "TTL %s", keys[i]);
            assert_true(ttl > 0 && ttl <= 600);
        }
        redisFree(c);
        vr_store_close(s);
        /* ttl <= 0: no expiry */
        s = open_or_skip(b, 0);
        put(s, "acme", "ttl0", 1, 0, "x", 1);
        commit(s, "acme", "ttl0", 1, "r");
        c = raw_connect(g_redis_port);
        assert_int_equal(raw_integer(c, "TTL %s", "vrwkv:acme:ttl0:rec"), -1);
        assert_int_equal(raw_integer(c, "TTL %s", "vrwkv:acme:ttl0:blob:1:0"), -1);
        redisFree(c);
        vr_error err = {0};
        assert_int_equal(vr_store_delete_session(s, "acme", "ttl0", &err), VR_OK);
        vr_store_close(s);
    }
    /* Expiry, and commit refreshing the TTL of its turn's blobs: ttl 2 s. */
    vr_store *s = open_or_skip(b, 2);
    put(s, "acme", "exp", 1, 0, "a", 1);
    put(s, "acme", "exp", 1, 1, "b", 1);
    put(s, "acme", "exp-other", 1, 0, "o", 1); /* never committed: expires first */
    sleep_s(1.3);
    commit(s, "acme", "exp", 1, "rec");
    sleep_s(1.3); /* 2.6 s after the puts, 1.3 s after the commit */
    expect_blob(s, "acme", "exp", 1, 0, "a", 1);
    expect_blob(s, "acme", "exp", 1, 1, "b", 1);
    expect_session(s, "acme", "exp", "rec");
    expect_no_blob(s, "acme", "exp-other", 1, 0);
    sleep_s(1.0); /* 2.3 s after the commit */
    expect_no_session(s, "acme", "exp");
    expect_no_blob(s, "acme", "exp", 1, 0);
    vr_store_close(s);
}

static void test_tenant_isolation(void **state) {
    vr_store *s = open_or_skip(*state, 3600);
    put(s, "tenantA", "same", 1, 0, "AAAA", 4);
    put(s, "tenantB", "same", 1, 0, "BB", 2);
    commit(s, "tenantA", "same", 1, "recA");
    commit(s, "tenantB", "same", 1, "recB");
    expect_blob(s, "tenantA", "same", 1, 0, "AAAA", 4);
    expect_blob(s, "tenantB", "same", 1, 0, "BB", 2);
    expect_session(s, "tenantA", "same", "recA");
    expect_session(s, "tenantB", "same", "recB");
    vr_error err = {0};
    assert_int_equal(vr_store_delete_session(s, "tenantA", "same", &err), VR_OK);
    expect_no_session(s, "tenantA", "same");
    expect_session(s, "tenantB", "same", "recB");
    expect_blob(s, "tenantB", "same", 1, 0, "BB", 2);
    /* "a" + "b.c" vs "a.b" + "c": no collision */
    put(s, "a", "b.c", 0, 0, "1", 1);
    put(s, "a.b", "c", 0, 0, "2", 1);
    expect_blob(s, "a", "b.c", 0, 0, "1", 1);
    expect_blob(s, "a.b", "c", 0, 0, "2", 1);
    expect_no_blob(s, "tenantA", "same", 1, 0);
    vr_store_close(s);
}

static void test_invalid_names(void **state) {
    vr_store *s = open_or_skip(*state, 3600);
    char long_ok[VR_STORE_ID_MAX + 1], too_long[VR_STORE_ID_MAX + 2];
    memset(long_ok, 'x', VR_STORE_ID_MAX);
    long_ok[VR_STORE_ID_MAX] = 0;
    memset(too_long, 'y', VR_STORE_ID_MAX + 1);
    too_long[VR_STORE_ID_MAX + 1] = 0;
    const char *bad[] = {"", too_long, "a:b", "a/b", "../x", "a b", "a*", "a?", "a[1]", "a\nb", "a{b}", "é",
                         ".", "..", "a\\b", "a\"b", NULL};
    size_t n_bad = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < n_bad; i++) {
        for (int pos = 0; pos < 2; pos++) {
            const char *t = pos == 0 ? bad[i] : "acme";
            const char *ss = pos == 0 ? "sess" : bad[i];
            vr_error err = {0};
            uint8_t *out = NULL;
            size_t len = 0;
            assert_int_equal(vr_store_put_blob(s, t, ss, 0, 0, (const uint8_t *)"x", 1, &err), VR_ERR_INVALID);
            assert_true(strlen(err.msg) > 0);
            assert_int_equal(vr_store_get_blob(s, t, ss, 0, 0, &out, &len, &err), VR_ERR_INVALID);
            assert_null(out);
            assert_int_equal(vr_store_commit_session(s, t, ss, 0, (const uint8_t *)"r", 1, &err), VR_ERR_INVALID);
            assert_int_equal(vr_store_get_session(s, t, ss, &out, &len, &err), VR_ERR_INVALID);
            assert_int_equal(vr_store_delete_session(s, t, ss, &err), VR_ERR_INVALID);
        }
    }
    vr_error err = {0};
    put(s, long_ok, long_ok, 0, 0, "ok", 2);
    expect_blob(s, long_ok, long_ok, 0, 0, "ok", 2);
    put(s, "A-Z.a_z-0.9", "..x", 0, 0, "ok", 2);
    assert_int_equal(vr_store_put_blob(s, "acme", "s", -1, 0, (const uint8_t *)"x", 1, &err), VR_ERR_INVALID);
    assert_int_equal(vr_store_put_blob(s, "acme", "s", 0, -1, (const uint8_t *)"x", 1, &err), VR_ERR_INVALID);
    assert_int_equal(vr_store_put_blob(s, "acme", "s", 0, 0, NULL, 5, &err), VR_ERR_INVALID);
    assert_int_equal(vr_store_commit_session(s, "acme", "s", -3, (const uint8_t *)"x", 1, &err), VR_ERR_INVALID);
    assert_int_equal(vr_store_get_blob(s, "acme", "s", 0, 0, NULL, NULL, &err), VR_ERR_INVALID);
    expect_no_blob(s, "acme", "s", 0, 0);
    vr_store_close(s);
}

typedef struct worker_arg {
    vr_store *s;
    int id;
    int failures;
} worker_arg;

static void *worker(void *p) {
    worker_arg *w = p;
    char sess[32];
    snprintf(sess, sizeof sess, "conc-%d", w->id);
    uint8_t buf[3000], *got = NULL;
    size_t len = 0;
    vr_error err = {0};
    for (int turn = 1; turn <= 25; turn++) {
        for (int l = 0; l < 4; l++) {
            fill(buf, sizeof buf, (uint32_t)(w->id * 100000 + turn * 10 + l));
            if (vr_store_put_blob(w->s, "acme", sess, turn, l, buf, sizeof buf, &err) != VR_OK) w->failures++;
        }
        /* all threads also share one session, one layer each */
        fill(buf, 64, (uint32_t)(w->id + turn));
        if (vr_store_put_blob(w->s, "acme", "conc-shared", 0, w->id, buf, 64, &err) != VR_OK) w->failures++;
        char rec[64];
        int rn = snprintf(rec, sizeof rec, "rec-%d-%d", w->id, turn);
        if (vr_store_commit_session(w->s, "acme", sess, turn, (uint8_t *)rec, (size_t)rn, &err) != VR_OK)
            w->failures++;
        for (int l = 0; l < 4; l++) {
            fill(buf, sizeof buf, (uint32_t)(w->id * 100000 + turn * 10 + l));
            if (vr_store_get_blob(w->s, "acme", sess, turn, l, &got, &len, &err) != VR_OK || len != sizeof buf ||
                memcmp(got, buf, len))
                w->failures++;
            free(got);
            got = NULL;
        }
        if (turn > 1 && vr_store_get_blob(w->s, "acme", sess, turn - 1, 0, &got, &len, &err) != VR_ERR_NOT_FOUND)
            w->failures++;
        free(got);
        got = NULL;
        if (vr_store_get_session(w->s, "acme", sess, &got, &len, &err) != VR_OK || len != (size_t)rn ||
            memcmp(got, rec, len))
            w->failures++;
        free(got);
        got = NULL;
        fill(buf, 64, (uint32_t)(w->id + turn));
        if (vr_store_get_blob(w->s, "acme", "conc-shared", 0, w->id, &got, &len, &err) != VR_OK || len != 64 ||
            memcmp(got, buf, 64))
            w->failures++;
        free(got);
        got = NULL;
    }
    if (vr_store_delete_session(w->s, "acme", sess, &err) != VR_OK) w->failures++;
    if (w->failures) fprintf(stderr, "worker %d: %d failures, last error: %s\n", w->id, w->failures, err.msg);
    return NULL;
}

static void test_concurrent(void **state) {
    vr_store *s = open_or_skip(*state, 3600);
    enum { N = 8 };
    pthread_t th[N];
    worker_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (worker_arg){s, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) assert_int_equal(args[i].failures, 0);
    for (int i = 0; i < N; i++) {
        char sess[32];
        snprintf(sess, sizeof sess, "conc-%d", i);
        expect_no_session(s, "acme", sess);
    }
    vr_store_stats_t st;
    vr_store_stats(s, &st);
    assert_int_equal(st.errors, 0);
    assert_true(st.ops >= N * 25 * 12);
    vr_store_close(s);
}

static void test_large_blob(void **state) {
    vr_store *s = open_or_skip(*state, 3600);
    size_t n = (size_t)16 << 20;
    uint8_t *big = malloc(n);
    assert_non_null(big);
    fill(big, n, 77);
    put(s, "acme", "large", 4, 2, big, n);
    expect_blob(s, "acme", "large", 4, 2, big, n);
    commit(s, "acme", "large", 4, "big-rec");
    expect_blob(s, "acme", "large", 4, 2, big, n);
    vr_error err = {0};
    assert_int_equal(vr_store_delete_session(s, "acme", "large", &err), VR_OK);
    free(big);
    vr_store_close(s);
}

/* ---- backend-specific ---- */

static void test_open_errors(void **state) {
    (void)state;
    vr_store *s = (vr_store *)1;
    vr_error err = {0};
    const char *bad[] = {"", "redis:/x", "mysql://h", "redis://", "redis://:pw@", "redis://h:0", "redis://h:99999",
                         "redis://h:12a", "redis://h:1/x", "redis://h:1/2?x", "redis://[::1", "dir:", "Memory"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(vr_store_open(bad[i], 0, &s, &err), VR_ERR_INVALID);
        assert_null(s);
        assert_true(strlen(err.msg) > 0);
    }
    assert_int_equal(vr_store_open(NULL, 0, &s, &err), VR_ERR_INVALID);
    /* nothing listens on a fresh free port: unavailable, quickly */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
    double t0 = now_s();
    assert_int_equal(vr_store_open(url, 0, &s, &err), VR_ERR_UNAVAILABLE);
    assert_true(now_s() - t0 < 3);
    assert_non_null(strstr(err.msg, "unreachable"));
    /* a dir that cannot be created */
    assert_int_equal(vr_store_open("dir:/proc/vrwkv-no-such/x", 0, &s, &err), VR_ERR_IO);
}

static void test_dir_persists(void **state) {
    (void)state;
    char root[600], url[700];
    snprintf(root, sizeof root, "%s/persist/a/b", g_tmp); /* created with parents */
    snprintf(url, sizeof url, "dir:%s/", root);
    vr_store *s = NULL;
    vr_error err = {0};
    assert_int_equal(vr_store_open(url, 3600, &s, &err), VR_OK);
    put(s, "acme", "p", 2, 0, "blob", 4);
    commit(s, "acme", "p", 2, "rec");
    vr_store_close(s);
    assert_int_equal(vr_store_open(url, 3600, &s, &err), VR_OK);
    expect_blob(s, "acme", "p", 2, 0, "blob", 4);
    expect_session(s, "acme", "p", "rec");
    vr_store_close(s);
    /* a stale temp file (crashed write) and an expired value are swept at open */
    char p[800];
    snprintf(p, sizeof p, "%s/acme/p/.tmp.rec.ABCDEF", root);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fclose(f);
    struct timespec old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    assert_int_equal(utimensat(AT_FDCWD, p, old, 0), 0);
    char blob[800];
    snprintf(blob, sizeof blob, "%s/acme/p/blob.2.0", root);
    assert_int_equal(utimensat(AT_FDCWD, blob, old, 0), 0);
    assert_int_equal(vr_store_open(url, 3600, &s, &err), VR_OK);
    assert_false(path_exists(p));
    assert_false(path_exists(blob));
    expect_session(s, "acme", "p", "rec");
    vr_store_close(s);
}

static void test_memory_is_private(void **state) {
    (void)state;
    vr_store *a = NULL, *b = NULL;
    vr_error err = {0};
    assert_int_equal(vr_store_open("memory", 0, &a, &err), VR_OK);
    assert_int_equal(vr_store_open("memory", 0, &b, &err), VR_OK);
    put(a, "acme", "m", 0, 0, "x", 1);
    expect_no_blob(b, "acme", "m", 0, 0);
    /* many sessions: the table grows */
    for (int i = 0; i < 2000; i++) {
        char sess[32];
        snprintf(sess, sizeof sess, "s%d", i);
        put(a, "acme", sess, 0, 0, sess, strlen(sess));
    }
    for (int i = 0; i < 2000; i += 7) {
        char sess[32];
        snprintf(sess, sizeof sess, "s%d", i);
        expect_blob(a, "acme", sess, 0, 0, sess, strlen(sess));
    }
    vr_store_close(a);
    vr_store_close(b);
    vr_store_close(NULL);
}

static void test_redis_restart_and_outage(void **state) {
    (void)state;
    if (!g_redis.available) {
        fprintf(stderr, "SKIPPED [redis restart]: redis-server is not installed\n");
        skip();
    }
    char pdir[600];
    snprintf(pdir, sizeof pdir, "%s/aof", g_tmp);
    assert_int_equal(mkdir(pdir, 0700), 0);
    int port = free_port();
    pid_t pid = start_redis(port, pdir, NULL);
    assert_true(pid > 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    vr_store *s = NULL;
    vr_error err = {0};
    assert_int_equal(vr_store_open(url, 3600, &s, &err), VR_OK);
    put(s, "acme", "rs", 1, 0, "state", 5);
    commit(s, "acme", "rs", 1, "committed");

    /* down: refused connections give UNAVAILABLE within a few seconds, every time */
    stop_redis(pid);
    for (int i = 0; i < 2; i++) {
        double t0 = now_s();
        uint8_t *rec = NULL;
        size_t len = 0;
        assert_int_equal(vr_store_get_session(s, "acme", "rs", &rec, &len, &err), VR_ERR_UNAVAILABLE);
        assert_true(now_s() - t0 < 3);
        assert_int_equal(vr_store_ping(s, &err), VR_ERR_UNAVAILABLE);
        fprintf(stderr, "  redis down -> %s\n", err.msg);
    }

    /* restarted on the same port with its AOF: the store reconnects, the data is there */
    pid = start_redis(port, pdir, NULL);
    assert_true(pid > 0);
    expect_session(s, "acme", "rs", "committed");
    expect_blob(s, "acme", "rs", 1, 0, "state", 5);
    /* a restart between two calls on a live connection: retried transparently */
    stop_redis(pid);
    pid = start_redis(port, pdir, NULL);
    assert_true(pid > 0);
    expect_blob(s, "acme", "rs", 1, 0, "state", 5);
    put(s, "acme", "rs", 2, 0, "s2", 2);
    commit(s, "acme", "rs", 2, "committed-2");
    /* a big write into a connection the server closed: SIGPIPE must not kill the process
     * (main() leaves SIGPIPE at its default on purpose) */
    stop_redis(pid);
    pid = start_redis(port, pdir, NULL);
    assert_true(pid > 0);
    size_t big_n = (size_t)8 << 20;
    uint8_t *big = malloc(big_n);
    assert_non_null(big);
    fill(big, big_n, 5);
    put(s, "acme", "rs", 2, 1, big, big_n);
    expect_blob(s, "acme", "rs", 2, 1, big, big_n);
    free(big);
    vr_store_stats_t st;
    vr_store_stats(s, &st);
    assert_true(st.reconnects >= 3);
    assert_true(st.errors >= 4);

    /* frozen (accepts TCP, never answers): the command timeout gives UNAVAILABLE */
    kill(pid, SIGSTOP);
    double t0 = now_s();
    uint8_t *rec = NULL;
    size_t len = 0;
    assert_int_equal(vr_store_get_session(s, "acme", "rs", &rec, &len, &err), VR_ERR_UNAVAILABLE);
    double dt = now_s() - t0;
    fprintf(stderr, "  redis frozen -> %.1f s: %s\n", dt, err.msg);
    assert_true(dt < 7);
    kill(pid, SIGCONT);
    expect_session(s, "acme", "rs", "committed-2");
    vr_store_close(s);
    stop_redis(pid);
}

static void test_redis_auth_and_db(void **state) {
    (void)state;
    if (!g_redis.available) {
        fprintf(stderr, "SKIPPED [redis auth]: redis-server is not installed\n");
        skip();
    }
    int port = free_port();
    pid_t pid = start_redis(port, NULL, "s3cr%t");
    assert_true(pid > 0);
    char url[128];
    vr_store *s = NULL;
    vr_error err = {0};
    snprintf(url, sizeof url, "redis://:wrong@127.0.0.1:%d", port);
    assert_int_equal(vr_store_open(url, 0, &s, &err), VR_ERR_AUTH);
    assert_null(strstr(err.msg, "wrong")); /* the password is never echoed */
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port); /* no password: SELECT is refused */
    assert_int_equal(vr_store_open(url, 0, &s, &err), VR_ERR_AUTH);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port); /* no password, no SELECT: ops are refused */
    assert_int_equal(vr_store_open(url, 0, &s, &err), VR_OK);
    assert_int_equal(vr_store_put_blob(s, "acme", "a", 0, 0, (const uint8_t *)"x", 1, &err), VR_ERR_AUTH);
    vr_store_close(s);
    snprintf(url, sizeof url, "redis://:s3cr%%25t@127.0.0.1:%d/3", port); /* percent-encoded '%' */
    assert_int_equal(vr_store_open(url, 0, &s, &err), VR_OK);
    put(s, "acme", "a", 0, 0, "x", 1);
    commit(s, "acme", "a", 0, "r");
    expect_blob(s, "acme", "a", 0, 0, "x", 1);
    vr_store_close(s);
    snprintf(url, sizeof url, "redis://default:s3cr%%25t@localhost:%d/3", port); /* ACL user form */
    assert_int_equal(vr_store_open(url, 0, &s, &err), VR_OK);
    expect_session(s, "acme", "a", "r");
    vr_store_close(s);
    redisContext *c = raw_connect(port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "AUTH %s", "s3cr%t");
    freeReplyObject(r);
    assert_int_equal(raw_count_keys(c, "vrwkv:*"), 0); /* db 0 is empty */
    r = redisCommand(c, "SELECT 3");
    freeReplyObject(r);
    assert_int_equal(raw_count_keys(c, "vrwkv:acme:a:*"), 3);
    redisFree(c);
    stop_redis(pid);
}

/* A Redis key of the wrong type never crashes the store: it answers an error. */
static void test_redis_wrong_type(void **state) {
    (void)state;
    if (!g_redis.available) skip();
    redisContext *c = raw_connect(g_redis_port);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "LPUSH vrwkv:acme:wt:rec x");
    freeReplyObject(r);
    r = redisCommand(c, "SET vrwkv:acme:wt:keys notaset");
    freeReplyObject(r);
    redisFree(c);
    vr_store *s = open_or_skip(&g_redis, 60);
    vr_error err = {0};
    uint8_t *rec = NULL;
    size_t len = 0;
    vr_status st = vr_store_get_session(s, "acme", "wt", &rec, &len, &err);
    assert_true(st != VR_OK && st != VR_ERR_NOT_FOUND);
    assert_null(rec);
    assert_int_not_equal(vr_store_put_blob(s, "acme", "wt", 0, 0, (const uint8_t *)"x", 1, &err), VR_OK);
    assert_int_not_equal(vr_store_commit_session(s, "acme", "wt", 0, (const uint8_t *)"x", 1, &err), VR_OK);
    assert_int_not_equal(vr_store_delete_session(s, "acme", "wt", &err), VR_OK);
    assert_int_equal(vr_store_ping(s, &err), VR_OK); /* the connection is still usable */
    vr_store_close(s);
    c = raw_connect(g_redis_port);
    r = redisCommand(c, "DEL vrwkv:acme:wt:rec vrwkv:acme:wt:keys vrwkv:acme:wt:blob:0:0");
    freeReplyObject(r);
    redisFree(c);
}

/* ---- setup ---- */

static int group_setup(void **state) {
    (void)state;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/vrwkv_test_store_XXXXXX");
    if (!mkdtemp(g_tmp)) return -1;
    snprintf(g_dir_root, sizeof g_dir_root, "%s/dirstore", g_tmp);
    snprintf(g_memory.url, sizeof g_memory.url, "memory");
    g_memory.available = 1;
    snprintf(g_dir.url, sizeof g_dir.url, "dir:%s", g_dir_root);
    g_dir.available = 1;
    if (!have_redis_server()) {
        fprintf(stderr, "\n*** WARNING: redis-server is not installed: every Redis case is SKIPPED ***\n\n");
        return 0;
    }
    g_redis_port = free_port();
    g_redis_pid = start_redis(g_redis_port, NULL, NULL);
    if (g_redis_pid <= 0) {
        fprintf(stderr, "cannot start redis-server on port %d\n", g_redis_port);
        return -1;
    }
    snprintf(g_redis.url, sizeof g_redis.url, "redis://127.0.0.1:%d/0", g_redis_port);
    g_redis.available = 1;
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    stop_redis(g_redis_pid);
    if (g_tmp[0]) rm_rf(g_tmp);
    return 0;
}

#define ALL_BACKENDS(fn)                                                                                          \
    {#fn "[memory]", fn, NULL, NULL, &g_memory}, {#fn "[dir]", fn, NULL, NULL, &g_dir},                        \
        {#fn "[redis]", fn, NULL, NULL, &g_redis}

int main(void) {
    const struct CMUnitTest tests[] = {
        ALL_BACKENDS(test_roundtrip),
        ALL_BACKENDS(test_not_found),
        ALL_BACKENDS(test_commit_and_get_session),
        ALL_BACKENDS(test_older_turns_deleted),
        ALL_BACKENDS(test_delete_session),
        ALL_BACKENDS(test_ttl),
        ALL_BACKENDS(test_tenant_isolation),
        ALL_BACKENDS(test_invalid_names),
        ALL_BACKENDS(test_concurrent),
        ALL_BACKENDS(test_large_blob),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_dir_persists),
        cmocka_unit_test(test_memory_is_private),
        cmocka_unit_test(test_redis_restart_and_outage),
        cmocka_unit_test(test_redis_auth_and_db),
        cmocka_unit_test(test_redis_wrong_type),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
