/* tests/unit/service/test_rpc.c — the gRPC wrapper (proto/rpc.h) end to end: a real server on
 * 127.0.0.1:0 and a real client over a real socket in one process. Unary and streaming round
 * trips with the vrwkv.proto messages, metadata, error statuses, deadlines, client cancel,
 * leak checks (threads, fds) over 200 cancelled streams, shutdown with calls in flight,
 * health checks, malformed requests and unknown methods. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto/health.pb-c.h"
#include "proto/rpc.h"
#include "proto/vrwkv.pb-c.h"

#define M_GENERATE "/vrwkv.v1.Vrwkv/Generate"
#define M_GET_SESSION "/vrwkv.v1.Vrwkv/GetSession"
#define M_LIST_MODELS "/vrwkv.v1.Vrwkv/ListModels"
#define M_SLOW_UNARY "/vrwkv.test.Test/SlowUnary"

static vr_rpc_server *g_srv;
static vr_rpc_channel *g_ch;
static vr_rpc_health *g_health;
static char g_target[64];

static atomic_int g_slow_saw_cancel;    /* "slow" handlers that observed cancellation */
static atomic_int g_forever_send_cancel; /* "forever" handlers whose send returned CANCELLED */
static atomic_int g_forever_exits;
static atomic_int g_hold_exits;
static char g_last_peer[128];

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* ------------------------------------------------------------------ handlers */

static void h_list_models(vr_rpc_call *call, void *ctx) {
    (void)ctx;
    Vrwkv__V1__Model m = VRWKV__V1__MODEL__INIT;
    m.name = "tiny";
    m.n_layer = 2;
    m.n_embd = 64;
    m.vocab_size = 65536;
    m.has_vision = 1;
    Vrwkv__V1__Model *ms[1] = {&m};
    Vrwkv__V1__ListModelsResponse r = VRWKV__V1__LIST_MODELS_RESPONSE__INIT;
    r.n_models = 1;
    r.models = ms;
    uint8_t buf[256];
    size_t n = vrwkv__v1__list_models_response__pack(&r, buf);
    vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, n, NULL);
}

static void h_get_session(vr_rpc_call *call, void *ctx) {
    (void)ctx;
    snprintf(g_last_peer, sizeof g_last_peer, "%s", vr_rpc_call_peer(call));
    const uint8_t *data;
    size_t len;
    vr_rpc_call_request(call, &data, &len);
    Vrwkv__V1__GetSessionRequest *req = vrwkv__v1__get_session_request__unpack(NULL, len, data);
    if (!req) {
        vr_error e;
        vr_error_set(&e, VR_ERR_INVALID, "malformed GetSessionRequest");
        vr_rpc_call_finish_error(call, &e);
        return;
    }
    const char *auth = vr_rpc_call_metadata(call, "authorization", NULL);
    if (!auth) {
        vr_rpc_call_finish(call, VR_RPC_STATUS_UNAUTHENTICATED, "missing authorization metadata", NULL, 0, NULL);
    } else if (strcmp(req->session_id, "missing") == 0) {
        char msg[128];
        snprintf(msg, sizeof msg, "session '%s' not found", req->session_id);
        vr_rpc_call_finish(call, VR_RPC_STATUS_NOT_FOUND, msg, NULL, 0, NULL);
    } else {
        Vrwkv__V1__Session s = VRWKV__V1__SESSION__INIT;
        s.session_id = req->session_id;
        s.model = (char *)auth;
        s.token_count = 42;
        s.committed_turn = 3;
        s.has_image = 1;
        uint8_t buf[512];
        size_t n = vrwkv__v1__session__pack(&s, buf);
        vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, n, NULL);
    }
    vrwkv__v1__get_session_request__free_unpacked(req, NULL);
}

static vr_status send_token(vr_rpc_call *call, int token) {
    Vrwkv__V1__TokenDelta d = VRWKV__V1__TOKEN_DELTA__INIT;
    d.token = token;
    d.text.data = (uint8_t *)"tok";
    d.text.len = 3;
    Vrwkv__V1__GenerateResponse r = VRWKV__V1__GENERATE_RESPONSE__INIT;
    r.event_case = VRWKV__V1__GENERATE_RESPONSE__EVENT_TOKEN;
    r.token = &d;
    uint8_t buf[64];
    size_t n = vrwkv__v1__generate_response__pack(&r, buf);
    return vr_rpc_call_send(call, buf, n, NULL);
}

static void h_generate(vr_rpc_call *call, void *ctx) {
    (void)ctx;
    const uint8_t *data;
    size_t len;
    vr_rpc_call_request(call, &data, &len);
    Vrwkv__V1__GenerateRequest *req = vrwkv__v1__generate_request__unpack(NULL, len, data);
    if (!req) {
        vr_rpc_call_finish(call, VR_RPC_STATUS_INVALID_ARGUMENT, "malformed GenerateRequest", NULL, 0, NULL);
        return;
    }
    if (strncmp(req->text, "count:", 6) == 0) {
        int n = atoi(req->text + 6);
        for (int i = 0; i < n; i++)
            if (send_token(call, i) != VR_OK) break;
        Vrwkv__V1__Usage u = VRWKV__V1__USAGE__INIT;
        u.generated_tokens = n;
        Vrwkv__V1__Final f = VRWKV__V1__FINAL__INIT;
        f.finish_reason = "length";
        f.usage = &u;
        f.session_id = req->session_id;
        Vrwkv__V1__GenerateResponse r = VRWKV__V1__GENERATE_RESPONSE__INIT;
        r.event_case = VRWKV__V1__GENERATE_RESPONSE__EVENT_FINAL;
        r.final = &f;
        uint8_t buf[256];
        size_t m = vrwkv__v1__generate_response__pack(&r, buf);
        vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, m, NULL);
    } else if (strcmp(req->text, "slow") == 0) {
        double t0 = now_ms();
        while (!vr_rpc_call_is_cancelled(call) && now_ms() - t0 < 10000) sleep_ms(2);
        if (vr_rpc_call_is_cancelled(call)) atomic_fetch_add(&g_slow_saw_cancel, 1);
        vr_rpc_call_finish(call, VR_RPC_STATUS_CANCELLED, "cancelled", NULL, 0, NULL);
    } else if (strcmp(req->text, "forever") == 0) {
        double t0 = now_ms();
        for (int i = 0; now_ms() - t0 < 20000; i++) {
            vr_status st = send_token(call, i);
            if (st == VR_ERR_CANCELLED) {
                atomic_fetch_add(&g_forever_send_cancel, 1);
                break;
            }
            if (st != VR_OK) break;
            sleep_ms(1);
        }
        vr_rpc_call_finish(call, VR_RPC_STATUS_CANCELLED, "stopped", NULL, 0, NULL);
        atomic_fetch_add(&g_forever_exits, 1);
    } else if (strcmp(req->text, "hold") == 0) {
        double t0 = now_ms();
        while (!vr_rpc_call_is_cancelled(call) && now_ms() - t0 < 20000) sleep_ms(5);
        vr_rpc_call_finish(call, VR_RPC_STATUS_CANCELLED, "cancelled", NULL, 0, NULL);
        atomic_fetch_add(&g_hold_exits, 1);
    } else {
        vr_rpc_call_finish(call, VR_RPC_STATUS_INVALID_ARGUMENT, "unknown test command", NULL, 0, NULL);
    }
    vrwkv__v1__generate_request__free_unpacked(req, NULL);
}

static void h_slow_unary(vr_rpc_call *call, void *ctx) {
    (void)ctx;
    double t0 = now_ms();
    while (!vr_rpc_call_is_cancelled(call) && now_ms() - t0 < 10000) sleep_ms(2);
    if (vr_rpc_call_is_cancelled(call)) atomic_fetch_add(&g_slow_saw_cancel, 1);
    vr_rpc_call_finish(call, VR_RPC_STATUS_CANCELLED, "cancelled", NULL, 0, NULL);
}

static vr_rpc_server *start_server(int *port) {
    vr_error err = {0};
    vr_rpc_server *srv;
    assert_int_equal(vr_rpc_server_create("127.0.0.1:0", &srv, &err), VR_OK);
    assert_int_equal(vr_rpc_server_add_method(srv, M_LIST_MODELS, VR_RPC_UNARY, h_list_models, NULL, &err), VR_OK);
    assert_int_equal(vr_rpc_server_add_method(srv, M_GET_SESSION, VR_RPC_UNARY, h_get_session, NULL, &err), VR_OK);
    assert_int_equal(vr_rpc_server_add_method(srv, M_GENERATE, VR_RPC_SERVER_STREAMING, h_generate, NULL, &err), VR_OK);
    assert_int_equal(vr_rpc_server_add_method(srv, M_SLOW_UNARY, VR_RPC_UNARY, h_slow_unary, NULL, &err), VR_OK);
    return srv;
}

static int setup(void **st) {
    (void)st;
    vr_error err = {0};
    int port = 0;
    g_srv = start_server(&port);
    if (vr_rpc_health_create(&g_health, &err) != VR_OK) return -1;
    if (vr_rpc_health_add_to(g_health, g_srv, &err) != VR_OK) return -1;
    if (vr_rpc_server_start(g_srv, &port, &err) != VR_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(g_target, sizeof g_target, "127.0.0.1:%d", port);
    if (vr_rpc_channel_create(g_target, &g_ch, &err) != VR_OK) return -1;
    return 0;
}

static int teardown(void **st) {
    (void)st;
    vr_rpc_channel_free(g_ch);
    vr_rpc_server_shutdown_and_free(g_srv, 1000);
    vr_rpc_health_free(g_health);
    return 0;
}

/* ------------------------------------------------------------------ client helpers */

static vr_status get_session(const char *id, const char *auth, Vrwkv__V1__Session **out, int *code, char **msg,
                             vr_error *err) {
    Vrwkv__V1__GetSessionRequest req = VRWKV__V1__GET_SESSION_REQUEST__INIT;
    req.session_id = (char *)id;
    uint8_t buf[256];
    size_t n = vrwkv__v1__get_session_request__pack(&req, buf);
    vr_rpc_metadata md[1] = {{"authorization", auth}};
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    vr_status st = vr_rpc_unary(g_ch, M_GET_SESSION, md, auth ? 1 : 0, buf, n, 5000, &resp, &resp_len, code, msg, err);
    *out = NULL;
    if (st == VR_OK) {
        *out = vrwkv__v1__session__unpack(NULL, resp_len, resp);
        assert_non_null(*out);
    }
    free(resp);
    return st;
}

static vr_rpc_stream *open_generate(const char *text, int64_t deadline_ms) {
    Vrwkv__V1__GenerateRequest req = VRWKV__V1__GENERATE_REQUEST__INIT;
    req.text = (char *)text;
    req.session_id = "s-1";
    uint8_t buf[256];
    size_t n = vrwkv__v1__generate_request__pack(&req, buf);
    vr_rpc_stream *s = NULL;
    vr_error err = {0};
    assert_int_equal(vr_rpc_stream_open(g_ch, M_GENERATE, NULL, 0, buf, n, deadline_ms, &s, &err), VR_OK);
    return s;
}

static int wait_atomic(atomic_int *v, int want, int ms) {
    double t0 = now_ms();
    while (atomic_load(v) < want && now_ms() - t0 < ms) sleep_ms(5);
    return atomic_load(v) >= want;
}

/* ------------------------------------------------------------------ tests */

static void test_status_mapping(void **st) {
    (void)st;
    assert_int_equal(vr_rpc_code_from_status(VR_OK), VR_RPC_STATUS_OK);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_INVALID), VR_RPC_STATUS_INVALID_ARGUMENT);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_NOT_FOUND), VR_RPC_STATUS_NOT_FOUND);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_UNAVAILABLE), VR_RPC_STATUS_UNAVAILABLE);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_AUTH), VR_RPC_STATUS_UNAUTHENTICATED);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_CANCELLED), VR_RPC_STATUS_CANCELLED);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_NOMEM), VR_RPC_STATUS_RESOURCE_EXHAUSTED);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_UNSUPPORTED), VR_RPC_STATUS_UNIMPLEMENTED);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_IO), VR_RPC_STATUS_INTERNAL);
    assert_int_equal(vr_rpc_code_from_status(VR_ERR_INTERNAL), VR_RPC_STATUS_INTERNAL);
    assert_int_equal(vr_rpc_status_from_code(VR_RPC_STATUS_DEADLINE_EXCEEDED), VR_ERR_CANCELLED);
    assert_int_equal(vr_rpc_status_from_code(VR_RPC_STATUS_UNAUTHENTICATED), VR_ERR_AUTH);
    assert_int_equal(vr_rpc_status_from_code(VR_RPC_STATUS_UNAVAILABLE), VR_ERR_UNAVAILABLE);
    assert_int_equal(vr_rpc_status_from_code(VR_RPC_STATUS_NOT_FOUND), VR_ERR_NOT_FOUND);
    assert_int_equal(vr_rpc_status_from_code(VR_RPC_STATUS_DATA_LOSS), VR_ERR_INTERNAL);
    assert_string_equal(vr_rpc_status_name(VR_RPC_STATUS_UNAUTHENTICATED), "UNAUTHENTICATED");
    assert_string_equal(vr_rpc_status_name(VR_RPC_STATUS_OK), "OK");
    assert_string_equal(vr_rpc_status_name(99), "UNKNOWN_CODE");
}

static void test_unary_roundtrip(void **st) {
    (void)st;
    vr_error err = {0};
    uint8_t *resp = NULL;
    size_t n = 0;
    int code = -5;
    /* ListModelsRequest packs to zero bytes: an empty message is still a message. */
    assert_int_equal(vr_rpc_unary(g_ch, M_LIST_MODELS, NULL, 0, (const uint8_t *)"", 0, 5000, &resp, &n, &code, NULL, &err),
                     VR_OK);
    assert_int_equal(code, VR_RPC_STATUS_OK);
    Vrwkv__V1__ListModelsResponse *r = vrwkv__v1__list_models_response__unpack(NULL, n, resp);
    assert_non_null(r);
    assert_int_equal(r->n_models, 1);
    assert_string_equal(r->models[0]->name, "tiny");
    assert_int_equal(r->models[0]->n_layer, 2);
    assert_int_equal(r->models[0]->vocab_size, 65536);
    assert_true(r->models[0]->has_vision);
    vrwkv__v1__list_models_response__free_unpacked(r, NULL);
    free(resp);
}

static void test_metadata_reaches_handler(void **st) {
    (void)st;
    vr_error err = {0};
    Vrwkv__V1__Session *s = NULL;
    int code = -5;
    assert_int_equal(get_session("abc", "Bearer tenant-1", &s, &code, NULL, &err), VR_OK);
    assert_string_equal(s->session_id, "abc");
    assert_string_equal(s->model, "Bearer tenant-1"); /* the handler echoes the metadata */
    assert_int_equal(s->token_count, 42);
    assert_int_equal(s->committed_turn, 3);
    assert_true(s->has_image);
    vrwkv__v1__session__free_unpacked(s, NULL);
    assert_non_null(strstr(g_last_peer, "127.0.0.1"));
}

static void test_error_status(void **st) {
    (void)st;
    vr_error err = {0};
    Vrwkv__V1__Session *s = NULL;
    int code = -5;
    char *msg = NULL;
    assert_int_equal(get_session("missing", "Bearer t", &s, &code, &msg, &err), VR_ERR_NOT_FOUND);
    assert_null(s);
    assert_int_equal(code, VR_RPC_STATUS_NOT_FOUND);
    assert_string_equal(msg, "session 'missing' not found");
    assert_non_null(strstr(err.msg, "NOT_FOUND"));
    assert_non_null(strstr(err.msg, "session 'missing' not found"));
    free(msg);
    assert_int_equal(get_session("abc", NULL, &s, &code, &msg, &err), VR_ERR_AUTH);
    assert_int_equal(code, VR_RPC_STATUS_UNAUTHENTICATED);
    assert_string_equal(msg, "missing authorization metadata");
    free(msg);
}

static void test_stream_100(void **st) {
    (void)st;
    vr_error err = {0};
    vr_rpc_stream *s = open_generate("count:100", 10000);
    int tokens = 0, finals = 0, done = 0;
    while (!done) {
        uint8_t *m;
        size_t n;
        assert_int_equal(vr_rpc_stream_next(s, &m, &n, &done, &err), VR_OK);
        if (done) break;
        Vrwkv__V1__GenerateResponse *r = vrwkv__v1__generate_response__unpack(NULL, n, m);
        assert_non_null(r);
        if (r->event_case == VRWKV__V1__GENERATE_RESPONSE__EVENT_TOKEN) {
            assert_int_equal(finals, 0);
            assert_int_equal(r->token->token, tokens);
            assert_int_equal(r->token->text.len, 3);
            tokens++;
        } else {
            assert_int_equal(r->event_case, VRWKV__V1__GENERATE_RESPONSE__EVENT_FINAL);
            assert_string_equal(r->final->finish_reason, "length");
            assert_int_equal(r->final->usage->generated_tokens, 100);
            assert_string_equal(r->final->session_id, "s-1");
            finals++;
        }
        vrwkv__v1__generate_response__free_unpacked(r, NULL);
        free(m);
    }
    assert_int_equal(tokens, 100);
    assert_int_equal(finals, 1);
    int code = -5;
    const char *msg = NULL;
    vr_rpc_stream_status(s, &code, &msg);
    assert_int_equal(code, VR_RPC_STATUS_OK);
    /* next after the end keeps saying done */
    uint8_t *m;
    size_t n;
    assert_int_equal(vr_rpc_stream_next(s, &m, &n, &done, &err), VR_OK);
    assert_int_equal(done, 1);
    assert_null(m);
    vr_rpc_stream_free(s);
}

static void test_deadline_exceeded(void **st) {
    (void)st;
    vr_error err = {0};
    int before = atomic_load(&g_slow_saw_cancel);
    /* streaming */
    vr_rpc_stream *s = open_generate("slow", 200);
    uint8_t *m;
    size_t n;
    int done = 0;
    double t0 = now_ms();
    assert_int_equal(vr_rpc_stream_next(s, &m, &n, &done, &err), VR_ERR_CANCELLED);
    assert_true(now_ms() - t0 < 5000);
    assert_int_equal(done, 1);
    int code;
    const char *msg;
    vr_rpc_stream_status(s, &code, &msg);
    assert_int_equal(code, VR_RPC_STATUS_DEADLINE_EXCEEDED);
    vr_rpc_stream_free(s);
    assert_true(wait_atomic(&g_slow_saw_cancel, before + 1, 5000));
    /* unary */
    uint8_t *resp = NULL;
    code = -5;
    assert_int_equal(vr_rpc_unary(g_ch, M_SLOW_UNARY, NULL, 0, (const uint8_t *)"", 0, 200, &resp, &n, &code, NULL, &err),
                     VR_ERR_CANCELLED);
    assert_int_equal(code, VR_RPC_STATUS_DEADLINE_EXCEEDED);
    assert_null(resp);
    assert_non_null(strstr(err.msg, "DEADLINE_EXCEEDED"));
    assert_true(wait_atomic(&g_slow_saw_cancel, before + 2, 5000));
}

static void test_cancel_midstream(void **st) {
    (void)st;
    vr_error err = {0};
    int exits = atomic_load(&g_forever_exits), cancels = atomic_load(&g_forever_send_cancel);
    vr_rpc_stream *s = open_generate("forever", 30000);
    for (int i = 0; i < 10; i++) {
        uint8_t *m;
        size_t n;
        int done = 0;
        assert_int_equal(vr_rpc_stream_next(s, &m, &n, &done, &err), VR_OK);
        assert_int_equal(done, 0);
        free(m);
    }
    vr_rpc_stream_cancel(s);
    /* drain: messages already in flight may still arrive, then CANCELLED */
    vr_status rc = VR_OK;
    int done = 0;
    for (int i = 0; i < 100000 && !done; i++) {
        uint8_t *m;
        size_t n;
        rc = vr_rpc_stream_next(s, &m, &n, &done, &err);
        free(m);
    }
    assert_int_equal(done, 1);
    assert_int_equal(rc, VR_ERR_CANCELLED);
    int code;
    vr_rpc_stream_status(s, &code, NULL);
    assert_int_equal(code, VR_RPC_STATUS_CANCELLED);
    vr_rpc_stream_free(s);
    assert_true(wait_atomic(&g_forever_exits, exits + 1, 5000));
    assert_true(wait_atomic(&g_forever_send_cancel, cancels + 1, 5000));
}

static void cancelled_streams(int n) {
    for (int i = 0; i < n; i++) {
        vr_error err = {0};
        vr_rpc_stream *s = open_generate("forever", 30000);
        uint8_t *m;
        size_t len;
        int done = 0;
        assert_int_equal(vr_rpc_stream_next(s, &m, &len, &done, &err), VR_OK);
        free(m);
        if (i % 2) vr_rpc_stream_cancel(s); /* half cancel explicitly, half just free */
        vr_rpc_stream_free(s);
    }
}

static void test_no_leaks_cancelled_streams(void **st) {
    (void)st;
    cancelled_streams(10); /* let gRPC's own pools reach their steady size */
    int exits0 = atomic_load(&g_forever_exits);
    int tasks0 = count_dir("/proc/self/task"), fds0 = count_dir("/proc/self/fd");
    assert_true(tasks0 > 0 && fds0 > 0);
    cancelled_streams(200);
    assert_true(wait_atomic(&g_forever_exits, exits0 + 200, 20000));
    double t0 = now_ms();
    int tasks = 0, fds = 0;
    do {
        sleep_ms(20);
        tasks = count_dir("/proc/self/task");
        fds = count_dir("/proc/self/fd");
    } while ((tasks > tasks0 || fds > fds0 || vr_rpc_server_active_calls(g_srv) > 0) && now_ms() - t0 < 10000);
    fprintf(stderr, "# threads %d -> %d, fds %d -> %d\n", tasks0, tasks, fds0, fds);
    assert_int_equal(vr_rpc_server_active_calls(g_srv), 0);
    assert_true(tasks <= tasks0);
    assert_true(fds <= fds0);
}

static void test_malformed_request(void **st) {
    (void)st;
    static const uint8_t bad[][8] = {
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, /* runaway varint tag */
        {0x0a, 0x50, 'a', 0, 0, 0, 0, 0},                  /* string longer than the buffer */
        {0x0b, 0, 0, 0, 0, 0, 0, 0},                       /* group start: wire type 3 */
    };
    static const size_t bad_len[] = {8, 3, 1};
    for (size_t i = 0; i < 3; i++) {
        vr_error err = {0};
        uint8_t *resp = NULL;
        size_t n;
        int code = -5;
        char *msg = NULL;
        vr_rpc_metadata md[1] = {{"authorization", "Bearer t"}};
        assert_int_equal(vr_rpc_unary(g_ch, M_GET_SESSION, md, 1, bad[i], bad_len[i], 5000, &resp, &n, &code, &msg, &err),
                         VR_ERR_INVALID);
        assert_int_equal(code, VR_RPC_STATUS_INVALID_ARGUMENT);
        assert_string_equal(msg, "malformed GetSessionRequest");
        free(msg);
        vr_rpc_stream *s = NULL;
        assert_int_equal(vr_rpc_stream_open(g_ch, M_GENERATE, NULL, 0, bad[i], bad_len[i], 5000, &s, &err), VR_OK);
        uint8_t *m;
        int done = 0;
        assert_int_equal(vr_rpc_stream_next(s, &m, &n, &done, &err), VR_ERR_INVALID);
        assert_int_equal(done, 1);
        vr_rpc_stream_free(s);
    }
}

static void test_unimplemented_and_bad_metadata(void **st) {
    (void)st;
    vr_error err = {0};
    uint8_t *resp = NULL;
    size_t n;
    int code = -5;
    assert_int_equal(vr_rpc_unary(g_ch, "/vrwkv.v1.Vrwkv/NoSuchMethod", NULL, 0, (const uint8_t *)"", 0, 5000, &resp, &n,
                                  &code, NULL, &err),
                     VR_ERR_UNSUPPORTED);
    assert_int_equal(code, VR_RPC_STATUS_UNIMPLEMENTED);
    vr_rpc_metadata md[1] = {{"Bad Key", "x"}};
    assert_int_equal(vr_rpc_unary(g_ch, M_LIST_MODELS, md, 1, (const uint8_t *)"", 0, 5000, &resp, &n, &code, NULL, &err),
                     VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "Bad Key"));
}

static int health_check(const char *service, int *status, vr_error *err) {
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    req.service = (char *)service;
    uint8_t buf[128];
    size_t n = grpc__health__v1__health_check_request__pack(&req, buf);
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    int code = -5;
    vr_status st = vr_rpc_unary(g_ch, "/grpc.health.v1.Health/Check", NULL, 0, buf, n, 5000, &resp, &resp_len, &code,
                                NULL, err);
    *status = -1;
    if (st == VR_OK) {
        Grpc__Health__V1__HealthCheckResponse *r = grpc__health__v1__health_check_response__unpack(NULL, resp_len, resp);
        assert_non_null(r);
        *status = (int)r->status;
        grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    }
    free(resp);
    return code;
}

static void test_health(void **st) {
    (void)st;
    vr_error err = {0};
    int status;
    assert_int_equal(health_check("", &status, &err), VR_RPC_STATUS_OK);
    assert_int_equal(status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    assert_int_equal(health_check("vrwkv.v1.Vrwkv", &status, &err), VR_RPC_STATUS_NOT_FOUND);
    assert_int_equal(vr_rpc_health_set(g_health, "vrwkv.v1.Vrwkv", 0, &err), VR_OK);
    assert_int_equal(health_check("vrwkv.v1.Vrwkv", &status, &err), VR_RPC_STATUS_OK);
    assert_int_equal(status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING);
    assert_int_equal(vr_rpc_health_set(g_health, "vrwkv.v1.Vrwkv", 1, &err), VR_OK);
    assert_int_equal(health_check("vrwkv.v1.Vrwkv", &status, &err), VR_RPC_STATUS_OK);
    assert_int_equal(status, GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    /* Watch is not implemented: the protocol allows UNIMPLEMENTED */
    vr_rpc_stream *s = NULL;
    assert_int_equal(vr_rpc_stream_open(g_ch, "/grpc.health.v1.Health/Watch", NULL, 0, (const uint8_t *)"", 0, 5000, &s,
                                        &err),
                     VR_OK);
    uint8_t *m;
    size_t n;
    int done;
    assert_int_equal(vr_rpc_stream_next(s, &m, &n, &done, &err), VR_ERR_UNSUPPORTED);
    vr_rpc_stream_free(s);
}

static void test_unavailable_target(void **st) {
    (void)st;
    vr_error err = {0};
    vr_rpc_channel *ch;
    assert_int_equal(vr_rpc_channel_create("127.0.0.1:1", &ch, &err), VR_OK);
    uint8_t *resp = NULL;
    size_t n;
    int code = -5;
    assert_int_equal(vr_rpc_unary(ch, M_LIST_MODELS, NULL, 0, (const uint8_t *)"", 0, 5000, &resp, &n, &code, NULL, &err),
                     VR_ERR_UNAVAILABLE);
    assert_int_equal(code, VR_RPC_STATUS_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "127.0.0.1:1"));
    vr_rpc_channel_free(ch);
    assert_int_equal(vr_rpc_channel_create("", &ch, &err), VR_ERR_INVALID);
}

static void test_server_setup_errors(void **st) {
    (void)st;
    vr_error err = {0};
    vr_rpc_server *srv;
    assert_int_equal(vr_rpc_server_create("no-port", &srv, &err), VR_ERR_INVALID);
    assert_int_equal(vr_rpc_server_create(g_target, &srv, &err), VR_OK);
    assert_int_equal(vr_rpc_server_add_method(srv, "NoSlash", VR_RPC_UNARY, h_list_models, NULL, &err), VR_ERR_INVALID);
    assert_int_equal(vr_rpc_server_add_method(srv, M_LIST_MODELS, VR_RPC_UNARY, h_list_models, NULL, &err), VR_OK);
    assert_int_equal(vr_rpc_server_add_method(srv, M_LIST_MODELS, VR_RPC_UNARY, h_list_models, NULL, &err), VR_ERR_INVALID);
    /* the port is taken by the fixture server */
    assert_int_equal(vr_rpc_server_start(srv, NULL, &err), VR_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, g_target));
    vr_rpc_server_shutdown_and_free(srv, 100);
    /* created, never started */
    assert_int_equal(vr_rpc_server_create("127.0.0.1:0", &srv, &err), VR_OK);
    vr_rpc_server_shutdown_and_free(srv, 100);
    vr_rpc_server_shutdown_and_free(NULL, 0);
}

static void test_shutdown_with_calls_in_flight(void **st) {
    (void)st;
    vr_error err = {0};
    int port = 0;
    vr_rpc_server *srv = start_server(&port);
    assert_int_equal(vr_rpc_server_start(srv, &port, &err), VR_OK);
    char target[64];
    snprintf(target, sizeof target, "127.0.0.1:%d", port);
    vr_rpc_channel *ch;
    assert_int_equal(vr_rpc_channel_create(target, &ch, &err), VR_OK);
    Vrwkv__V1__GenerateRequest req = VRWKV__V1__GENERATE_REQUEST__INIT;
    uint8_t buf[64];
    vr_rpc_stream *s[4];
    for (int i = 0; i < 4; i++) {
        req.text = i < 3 ? "hold" : "forever";
        size_t n = vrwkv__v1__generate_request__pack(&req, buf);
        assert_int_equal(vr_rpc_stream_open(ch, M_GENERATE, NULL, 0, buf, n, 60000, &s[i], &err), VR_OK);
    }
    uint8_t *m;
    size_t n;
    int done = 0;
    assert_int_equal(vr_rpc_stream_next(s[3], &m, &n, &done, &err), VR_OK); /* the streaming one is live */
    free(m);
    double t0 = now_ms();
    while (vr_rpc_server_active_calls(srv) < 4 && now_ms() - t0 < 5000) sleep_ms(5);
    assert_int_equal(vr_rpc_server_active_calls(srv), 4);
    int holds = atomic_load(&g_hold_exits);
    t0 = now_ms();
    vr_rpc_server_shutdown_and_free(srv, 100);
    double took = now_ms() - t0;
    fprintf(stderr, "# shutdown with 4 calls in flight took %.0f ms\n", took);
    assert_true(took < 5000);
    assert_int_equal(atomic_load(&g_hold_exits), holds + 3);
    for (int i = 0; i < 4; i++) {
        vr_status rc = VR_OK;
        done = 0;
        for (int k = 0; k < 100000 && !done; k++) {
            rc = vr_rpc_stream_next(s[i], &m, &n, &done, &err);
            free(m);
        }
        assert_int_equal(done, 1);
        assert_int_not_equal(rc, VR_OK);
        vr_rpc_stream_free(s[i]);
    }
    /* a new call to the stopped server fails cleanly */
    uint8_t *resp = NULL;
    int code = -5;
    assert_int_not_equal(vr_rpc_unary(ch, M_LIST_MODELS, NULL, 0, (const uint8_t *)"", 0, 2000, &resp, &n, &code, NULL, &err),
                         VR_OK);
    assert_int_equal(code, VR_RPC_STATUS_UNAVAILABLE);
    vr_rpc_channel_free(ch);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_unary_roundtrip),
        cmocka_unit_test(test_metadata_reaches_handler),
        cmocka_unit_test(test_error_status),
        cmocka_unit_test(test_stream_100),
        cmocka_unit_test(test_deadline_exceeded),
        cmocka_unit_test(test_cancel_midstream),
        cmocka_unit_test(test_malformed_request),
        cmocka_unit_test(test_unimplemented_and_bad_metadata),
        cmocka_unit_test(test_health),
        cmocka_unit_test(test_unavailable_target),
        cmocka_unit_test(test_server_setup_errors),
        cmocka_unit_test(test_shutdown_with_calls_in_flight),
        cmocka_unit_test(test_no_leaks_cancelled_streams),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
