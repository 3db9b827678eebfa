/* tests/unit/service/test_side_paths.c — the paths beside the activations, over real sockets:
 * image features from a vision worker straight to stage 0, a failed step reaching the next
 * stage at once, and live session states handed from a shard to its replacement:
 *   - the inbox and the sender alone: exact bytes, acknowledged refusals (shape, full) that keep
 *     the connection, a restarted stage 0 (the kept connection is replaced), expiry, garbage
 *     frames, unknown hellos, bad addresses;
 *   - the NCCL handshake of the side path where NCCL cannot be used: declined offers (no NCCL,
 *     the same GPU, no GPU) leave the connection serving over TCP; malformed control frames end it;
 *   - real shards and a real vision worker on the tiny fixture model, driven over gRPC like the
 *     coordinator does: features delivered under a key give the very token the same features
 *     sent inline give; a delivery stage 0 cannot take falls back to the answer; a step whose
 *     features are missing fails at stage 0 with NOT_FOUND and at stage 1 at once ("previous
 *     stage failed"), never by its 60 s receive timeout, and the next step runs normally;
 *   - a predecessor replaced while a step waits for its activations: that step fails at once,
 *     the next reads from the new link;
 *   - the state frame: round trip and malformed frames;
 *   - a real shard hands its live state to another (Handoff): the replacement continues the
 *     session in memory (its own store is empty, so nothing else could) with the very tokens
 *     the first shard gives; a state already live there is left alone; bad requests refused. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "model/checkpoint.h"
#include "model/config.h"
#include "proto/control.pb-c.h"
#include "proto/rpc.h"
#include "tests/support/fixtures.h"
#include "worker/feature_delivery.h"
#include "worker/frame_link.h"
#include "worker/shard.h"
#include "worker/state_handoff.h"
#include "worker/transport.h"
#include "worker/vision_worker.h"

/* ------------------------------------------------------------------ a stand-in stage 0 listener */

typedef struct stage0 {
    vr_transport_listener *l;
    int port;
    char address[64];
    vr_feature_inbox *inbox;
    pthread_t thread;
    volatile int stop;
} stage0;

static void *accept_loop(void *p) {
    stage0 *s = p;
    while (!s->stop) {
        vr_transport *t = NULL;
        vr_error err = {0};
        if (vr_transport_tcp_accept(s->l, 100, &t, &err) != VR_OK) continue;
        vr_peer_role role;
        if (vr_transport_hello_recv(t, 2000, &role, &err) != VR_OK || role != VR_PEER_VISION) {
            vr_transport_close(t);
            continue;
        }
        vr_feature_inbox_serve(s->inbox, t, &err);
    }
    return NULL;
}

static void stage0_start(stage0 *s, int port, int n_img, int n_embd, size_t max_bytes, int ttl_ms) {
    memset(s, 0, sizeof *s);
    vr_error err = {0};
    vr_feature_inbox_options o = {n_img, n_embd, max_bytes, ttl_ms, 4};
    assert_int_equal(vr_feature_inbox_create(&o, &s->inbox, &err), VR_OK);
    assert_int_equal(vr_transport_tcp_listen("127.0.0.1", port, &s->port, &s->l, &err), VR_OK);
    snprintf(s->address, sizeof s->address, "127.0.0.1:%d", s->port);
    assert_int_equal(pthread_create(&s->thread, NULL, accept_loop, s), 0);
}

static void stage0_stop(stage0 *s) {
    s->stop = 1;
    pthread_join(s->thread, NULL);
    vr_transport_listener_close(s->l);
    vr_feature_inbox_free(s->inbox);
}

static void fill(float *f, size_t n, float base) {
    for (size_t i = 0; i < n; i++) f[i] = base + (float)i * 0.25f;
}

static void test_inbox_and_sender(void **st) {
    (void)st;
    enum { N_IMG = 3, N_EMBD = 4, N = N_IMG * N_EMBD };
    stage0 s0;
    stage0_start(&s0, 0, N_IMG, N_EMBD, 2 * N * sizeof(float), 60000);
    vr_feature_sender *snd = NULL;
    vr_error err = {0};
    assert_int_equal(vr_feature_sender_create(&snd, &err), VR_OK);
    float a[N], b[N], *got = NULL;
    fill(a, N, 1.0f);
    fill(b, N, -7.0f);

    /* delivered, then taken exactly once, bit for bit */
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 11, a, N_IMG, N_EMBD, 5000, &err), VR_OK);
    assert_int_equal(vr_feature_inbox_take(s0.inbox, 11, &got, &err), VR_OK);
    assert_memory_equal(got, a, sizeof a);
    free(got);
    assert_int_equal(vr_feature_inbox_take(s0.inbox, 11, &got, &err), VR_ERR_NOT_FOUND);
    assert_null(got);
    assert_non_null(strstr(err.msg, "not on this shard"));

    /* a shape the model does not take: refused and said why; the connection stays usable */
    err = (vr_error){0};
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 12, a, N_IMG - 1, N_EMBD, 5000, &err), VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "shape"));
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 12, a, N_IMG, N_EMBD, 5000, &err), VR_OK);
    /* the same key again replaces the first copy */
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 12, b, N_IMG, N_EMBD, 5000, &err), VR_OK);
    int entries = 0;
    size_t bytes = 0;
    vr_feature_inbox_usage(s0.inbox, &entries, &bytes);
    assert_int_equal(entries, 1);
    assert_int_equal(bytes, sizeof b);

    /* full: refused (the sender falls back), nothing held beyond the limit */
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 13, a, N_IMG, N_EMBD, 5000, &err), VR_OK);
    err = (vr_error){0};
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 14, a, N_IMG, N_EMBD, 5000, &err), VR_ERR_NOMEM);
    assert_non_null(strstr(err.msg, "full"));
    vr_feature_inbox_usage(s0.inbox, &entries, &bytes);
    assert_int_equal(entries, 2);
    assert_int_equal(vr_feature_inbox_take(s0.inbox, 12, &got, &err), VR_OK);
    assert_memory_equal(got, b, sizeof b);
    free(got);

    /* stage 0 restarts on the same port: the kept connection is dead, the sender makes a new one */
    int port = s0.port;
    stage0_stop(&s0);
    stage0_start(&s0, port, N_IMG, N_EMBD, 2 * N * sizeof(float), 60000);
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 15, a, N_IMG, N_EMBD, 5000, &err), VR_OK);
    assert_int_equal(vr_feature_inbox_take(s0.inbox, 15, &got, &err), VR_OK);
    assert_memory_equal(got, a, sizeof a);
    free(got);
    assert_int_equal(vr_feature_inbox_take(s0.inbox, 13, &got, &err), VR_ERR_NOT_FOUND); /* the old inbox's */
    stage0_stop(&s0);

    /* nobody listening; then that address is not tried again for a while (a dropping firewall
     * must not cost every image a timeout); and addresses that are not host:port */
    err = (vr_error){0};
    assert_int_not_equal(vr_feature_sender_deliver(snd, s0.address, 16, a, N_IMG, N_EMBD, 2000, &err), VR_OK);
    assert_true(strlen(err.msg) > 10);
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 17, a, N_IMG, N_EMBD, 2000, &err), VR_ERR_UNAVAILABLE);
    assert_non_null(strstr(err.msg, "could not be reached just now"));
    assert_int_equal(vr_feature_sender_deliver(snd, "nohostport", 16, a, N_IMG, N_EMBD, 2000, &err), VR_ERR_INVALID);
    assert_int_equal(vr_feature_sender_deliver(snd, "127.0.0.1:99999", 16, a, N_IMG, N_EMBD, 2000, &err),
                     VR_ERR_INVALID);
    vr_feature_sender_free(snd);
}

static void test_inbox_expiry(void **st) {
    (void)st;
    stage0 s0;
    stage0_start(&s0, 0, 1, 2, 1024, 100);
    vr_feature_sender *snd = NULL;
    vr_error err = {0};
    assert_int_equal(vr_feature_sender_create(&snd, &err), VR_OK);
    float f[2] = {1, 2}, *got = NULL;
    assert_int_equal(vr_feature_sender_deliver(snd, s0.address, 5, f, 1, 2, 5000, &err), VR_OK);
    usleep(300 * 1000);
    assert_int_equal(vr_feature_inbox_take(s0.inbox, 5, &got, &err), VR_ERR_NOT_FOUND);
    int entries = -1;
    vr_feature_inbox_usage(s0.inbox, &entries, NULL);
    assert_int_equal(entries, 0);
    vr_feature_sender_free(snd);
    stage0_stop(&s0);
}

/* a connection to stage 0's listener, introduced as a vision worker */
static vr_transport *vision_link(const stage0 *s0) {
    vr_transport *t = NULL;
    vr_error err = {0};
    assert_int_equal(vr_transport_tcp_connect_address(s0->address, 2000, &t, &err), VR_OK);
    assert_int_equal(vr_transport_hello_send(t, VR_PEER_VISION, &err), VR_OK);
    return t;
}

/* A peer that sends something other than a features frame is told so and dropped. */
static void test_inbox_refuses_garbage(void **st) {
    (void)st;
    stage0 s0;
    stage0_start(&s0, 0, 1, 2, 1024, 60000);
    vr_transport *t = vision_link(&s0);
    vr_error err = {0};
    uint8_t junk[32] = "not a features frame at all....";
    assert_int_equal(vr_transport_send(t, VR_FEATURES_TAG, junk, sizeof junk, &err), VR_OK);
    void *ack = NULL;
    size_t len = 0;
    assert_int_equal(vr_transport_recv(t, VR_FEATURES_ACK_TAG, &ack, &len, 5000, &err), VR_OK);
    assert_true(len >= 12);
    int32_t status;
    memcpy(&status, (uint8_t *)ack + 8, 4);
    assert_int_equal(status, VR_ERR_FORMAT);
    free(ack);
    /* and the connection is closed by stage 0 */
    assert_int_equal(vr_transport_recv(t, VR_FEATURES_ACK_TAG, &ack, &len, 5000, &err), VR_ERR_UNAVAILABLE);
    free(ack);
    vr_transport_close(t);
    /* a frame larger than any the server takes (here the 412-byte floor that leaves room for
     * acknowledgements) is cut off unread, unanswered */
    t = vision_link(&s0);
    uint8_t big[413] = {0};
    assert_int_equal(vr_transport_send(t, VR_FEATURES_TAG, big, sizeof big, &err), VR_OK);
    assert_int_equal(vr_transport_recv(t, VR_FEATURES_ACK_TAG, &ack, &len, 5000, &err), VR_ERR_UNAVAILABLE);
    free(ack);
    vr_transport_close(t);
    /* a hello with an unknown role is refused at once */
    vr_transport_listener *l = NULL;
    int port = 0;
    assert_int_equal(vr_transport_tcp_listen("127.0.0.1", 0, &port, &l, &err), VR_OK);
    vr_transport *c = NULL, *a = NULL;
    assert_int_equal(vr_transport_tcp_connect("127.0.0.1", port, 2000, &c, &err), VR_OK);
    assert_int_equal(vr_transport_tcp_accept(l, 2000, &a, &err), VR_OK);
    uint8_t role = 'Z';
    assert_int_equal(vr_transport_send(c, VR_TRANSPORT_HELLO_TAG, &role, 1, &err), VR_OK);
    vr_peer_role got;
    assert_int_equal(vr_transport_hello_recv(a, 2000, &got, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "unknown role"));
    vr_transport_close(a);
    vr_transport_close(c);
    vr_transport_listener_close(l);
    stage0_stop(&s0);
}

/* The NCCL handshake of the side path (worker/frame_link.h), as far as a machine without two
 * GPUs goes: a stage 0 without NCCL, and one with NCCL whose GPU is the offerer's own (or that
 * has no GPU), decline an offer and go on serving frames over TCP; malformed control frames end
 * the connection; a sender told to use NCCL still delivers, over TCP. */
static void send_offer(vr_transport *t, const uint8_t *uuid) {
    uint8_t offer[4 + VR_NCCL_DEVICE_UUID_BYTES] = "VRNO";
    memcpy(offer + 4, uuid, VR_NCCL_DEVICE_UUID_BYTES);
    vr_error err = {0};
    assert_int_equal(vr_transport_send(t, VR_FRAME_NCCL_TAG, offer, sizeof offer, &err), VR_OK);
}

static void expect_decline(vr_transport *t, const char *why) {
    void *ans = NULL;
    size_t len = 0;
    vr_error err = {0};
    assert_int_equal(vr_transport_recv(t, VR_FRAME_NCCL_ANSWER_TAG, &ans, &len, 5000, &err), VR_OK);
    assert_true(len > 8);
    assert_memory_equal(ans, "VRNA", 4);
    int32_t status;
    memcpy(&status, (uint8_t *)ans + 4, 4);
    assert_int_not_equal(status, VR_OK);
    char msg[256];
    snprintf(msg, sizeof msg, "%.*s", (int)(len - 8), (char *)ans + 8);
    if (why && !strstr(msg, why)) fail_msg("the decline says '%s', expected '%s'", msg, why);
    free(ans);
}

static void deliver_raw(vr_transport *t, uint64_t key, const float *f, int n_img, int n_embd) {
    size_t len = VR_FEATURES_HEADER_SIZE + (size_t)n_img * n_embd * sizeof(float);
    uint8_t *frame = malloc(len);
    memcpy(frame, VR_FEATURES_MAGIC, 4);
    uint32_t v = VR_FEATURES_VERSION, ni = (uint32_t)n_img, ne = (uint32_t)n_embd;
    memcpy(frame + 4, &v, 4);
    memcpy(frame + 8, &key, 8);
    memcpy(frame + 16, &ni, 4);
    memcpy(frame + 20, &ne, 4);
    memcpy(frame + VR_FEATURES_HEADER_SIZE, f, len - VR_FEATURES_HEADER_SIZE);
    vr_error err = {0};
    assert_int_equal(vr_transport_send(t, VR_FEATURES_TAG, frame, len, &err), VR_OK);
    free(frame);
    void *ack = NULL;
    size_t alen = 0;
    assert_int_equal(vr_transport_recv(t, VR_FEATURES_ACK_TAG, &ack, &alen, 5000, &err), VR_OK);
    int32_t status;
    memcpy(&status, (uint8_t *)ack + 8, 4);
    assert_int_equal(status, VR_OK);
    free(ack);
}

static void expect_closed(vr_transport *t) {
    void *d = NULL;
    size_t len = 0;
    vr_error err = {0};
    assert_int_equal(vr_transport_recv(t, VR_FRAME_NCCL_ANSWER_TAG, &d, &len, 5000, &err), VR_ERR_UNAVAILABLE);
    free(d);
    vr_transport_close(t);
}

static void test_nccl_negotiation(void **st) {
    (void)st;
    float f[2] = {3, 4}, *got = NULL;
    uint8_t uuid[VR_NCCL_DEVICE_UUID_BYTES] = {1, 2, 3};
    vr_error err = {0};
    /* our own GPU's UUID where there is one: then a stage 0 with NCCL declines for the same GPU
     * (never a join with a made-up id); without a GPU it declines for want of one */
    int have_gpu = vr_nccl_device_uuid(0, uuid, &err) == VR_OK;
    for (int with_nccl = 0; with_nccl < 2; with_nccl++) {
        stage0 s0;
        stage0_start(&s0, 0, 1, 2, 1024, 60000);
        if (with_nccl) vr_feature_inbox_use_nccl(s0.inbox, 0);
        vr_transport *t = vision_link(&s0);
        send_offer(t, uuid);
        expect_decline(t, !with_nccl ? "does not use NCCL" : have_gpu ? "same GPU" : NULL);
        deliver_raw(t, 7, f, 1, 2); /* the connection goes on over TCP */
        assert_int_equal(vr_feature_inbox_take(s0.inbox, 7, &got, &err), VR_OK);
        assert_memory_equal(got, f, sizeof f);
        free(got);
        /* a second offer after a decline is answered again */
        send_offer(t, uuid);
        expect_decline(t, NULL);
        /* a data announce without an NCCL link ends the connection */
        uint8_t ann[16] = "VRND";
        assert_int_equal(vr_transport_send(t, VR_FRAME_NCCL_TAG, ann, sizeof ann, &err), VR_OK);
        expect_closed(t);
        /* so do a short offer and an unknown control frame */
        t = vision_link(&s0);
        assert_int_equal(vr_transport_send(t, VR_FRAME_NCCL_TAG, "VRNO", 4, &err), VR_OK);
        expect_closed(t);
        t = vision_link(&s0);
        assert_int_equal(vr_transport_send(t, VR_FRAME_NCCL_TAG, "what is this", 12, &err), VR_OK);
        expect_closed(t);
        /* a sender told to use NCCL delivers all the same (TCP after the decline, or at once
         * where this process cannot make NCCL ids), and keeps its connection */
        vr_feature_sender *snd = NULL;
        assert_int_equal(vr_feature_sender_create(&snd, &err), VR_OK);
        vr_feature_sender_use_nccl(snd, 0);
        for (uint64_t key = 20; key < 23; key++) {
            assert_int_equal(vr_feature_sender_deliver(snd, s0.address, key, f, 1, 2, 5000, &err), VR_OK);
            assert_int_equal(vr_feature_inbox_take(s0.inbox, key, &got, &err), VR_OK);
            assert_memory_equal(got, f, sizeof f);
            free(got);
        }
        vr_feature_sender_free(snd);
        stage0_stop(&s0);
    }
}

/* ------------------------------------------------------------------ real shards and vision worker */

static vr_status unary(const char *address, const char *method, const ProtobufCMessage *req, uint8_t **resp,
                       size_t *rl, char **msg, int *code) {
    size_t n = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(n + 1);
    protobuf_c_message_pack(req, buf);
    vr_rpc_channel *ch = NULL;
    vr_error err = {0};
    assert_int_equal(vr_rpc_channel_create(address, &ch, &err), VR_OK);
    vr_status st = vr_rpc_unary(ch, method, NULL, 0, buf, n, 120000, resp, rl, code, msg, &err);
    vr_rpc_channel_free(ch);
    free(buf);
    return st;
}

/* A call that must succeed; its answer is dropped. */
static void must_call(const char *address, const char *method, const ProtobufCMessage *req) {
    uint8_t *resp = NULL;
    size_t rl = 0;
    char *msg = NULL;
    int code = 0;
    if (unary(address, method, req, &resp, &rl, &msg, &code) != VR_OK)
        fail_msg("%s on %s: %s", method, address, msg ? msg : "?");
    free(resp);
    free(msg);
}

static void assign(const char *address, int stage, int n_stages, const char *next) {
    Vrwkv__Internal__AssignRequest req = VRWKV__INTERNAL__ASSIGN_REQUEST__INIT;
    req.epoch = 1;
    req.stage = stage;
    req.n_stages = n_stages;
    req.next_transport_address = (char *)next;
    must_call(address, "/vrwkv.internal.Shard/Assign", &req.base);
}

/* Prepare of one session (features_key: what its prefill will take); its result's status (0:
 * ready), and in *missing whether stage 0 lacks those features. */
static int prepare_ex(const char *address, const char *session, int fresh, int64_t base_turn, int64_t base_tokens,
                      uint64_t features_key, int *missing) {
    Vrwkv__Internal__SessionRef ref = VRWKV__INTERNAL__SESSION_REF__INIT;
    ref.tenant = "t";
    ref.session = (char *)session;
    ref.fresh = fresh;
    ref.base_turn = base_turn;
    ref.base_tokens = base_tokens;
    ref.features_key = features_key;
    Vrwkv__Internal__SessionRef *refs[1] = {&ref};
    Vrwkv__Internal__PrepareRequest req = VRWKV__INTERNAL__PREPARE_REQUEST__INIT;
    req.epoch = 1;
    req.n_sessions = 1;
    req.sessions = refs;
    uint8_t *resp = NULL;
    size_t rl = 0;
    char *msg = NULL;
    int code = 0;
    if (unary(address, "/vrwkv.internal.Shard/Prepare", &req.base, &resp, &rl, &msg, &code) != VR_OK)
        fail_msg("prepare %s: %s", address, msg ? msg : "?");
    Vrwkv__Internal__PrepareResponse *pr = vrwkv__internal__prepare_response__unpack(NULL, rl, resp);
    assert_non_null(pr);
    assert_int_equal(pr->n_results, 1);
    int status = pr->results[0]->status;
    if (missing) *missing = pr->results[0]->features_missing;
    vrwkv__internal__prepare_response__free_unpacked(pr, NULL);
    free(resp);
    free(msg);
    return status;
}

static int prepare(const char *address, const char *session, int fresh, int64_t base_turn, int64_t base_tokens) {
    return prepare_ex(address, session, fresh, base_turn, base_tokens, 0, NULL);
}

static void prepare_fresh(const char *address, const char *session) {
    assert_int_equal(prepare(address, session, 1, 0, 0), 0);
}

/* One step's call to one stage, run in a thread so both stages get it at once. */
typedef struct step_call {
    const char *address;
    const uint8_t *req;
    size_t len;
    vr_status st;
    int code;
    char *msg;
    uint8_t *resp;
    size_t rl;
    double seconds;
    pthread_t thread;
} step_call;

static void *call_step(void *p) {
    step_call *c = p;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vr_rpc_channel *ch = NULL;
    vr_error err = {0};
    c->st = vr_rpc_channel_create(c->address, &ch, &err);
    if (c->st == VR_OK)
        c->st = vr_rpc_unary(ch, "/vrwkv.internal.Shard/Step", NULL, 0, c->req, c->len, 120000, &c->resp, &c->rl,
                             &c->code, &c->msg, &err);
    vr_rpc_channel_free(ch);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    c->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    return NULL;
}

/* A step of one greedy run of session; ids may hold -200 (the image: n_img rows, inline
 * features/flen or a delivered key). */
static uint8_t *pack_step(uint64_t step_id, const char *session, const int32_t *ids, int n_ids, int n_img,
                          const uint8_t *features, size_t flen, uint64_t key, int reset, size_t *len) {
    Vrwkv__Internal__Run run = VRWKV__INTERNAL__RUN__INIT;
    run.tenant = "t";
    run.session = (char *)session;
    run.ids = (int32_t *)ids;
    run.n_ids = (size_t)n_ids;
    run.n_img = n_img;
    run.image_features.data = (uint8_t *)features;
    run.image_features.len = flen;
    run.features_key = key;
    run.sample = 1;
    run.reset_sampler = reset;
    Vrwkv__Internal__Run *runs[1] = {&run};
    Vrwkv__Internal__StepRequest req = VRWKV__INTERNAL__STEP_REQUEST__INIT;
    req.epoch = 1;
    req.step_id = step_id;
    req.n_runs = 1;
    req.runs = runs;
    *len = vrwkv__internal__step_request__get_packed_size(&req);
    uint8_t *buf = malloc(*len + 1);
    vrwkv__internal__step_request__pack(&req, buf);
    return buf;
}

/* The token in a last stage's answer. */
static int32_t answer_token(const step_call *c) {
    Vrwkv__Internal__StepResponse *sr = vrwkv__internal__step_response__unpack(NULL, c->rl, c->resp);
    assert_non_null(sr);
    assert_int_equal(sr->n_results, 1);
    int32_t t = sr->results[0]->token;
    vrwkv__internal__step_response__free_unpacked(sr, NULL);
    return t;
}

/* Sends one step of one run (image first, then text ids) to every stage of a pipeline at once,
 * as the coordinator does; the last stage's token in *token. features/len: inline features, or
 * key: delivered ones. */
static void step(const char *const *stages, int n_stages, uint64_t step_id, const char *session, int n_img,
                 const uint8_t *features, size_t flen, uint64_t key, step_call *out, int32_t *token) {
    int32_t ids[4] = {-200, 1010, 33, 261};
    size_t n = 0;
    uint8_t *buf = pack_step(step_id, session, n_img ? ids : ids + 1, n_img ? 4 : 3, n_img, features, flen, key, 1, &n);
    memset(out, 0, (size_t)n_stages * sizeof *out);
    for (int i = 0; i < n_stages; i++) {
        out[i].address = stages[i];
        out[i].req = buf;
        out[i].len = n;
        assert_int_equal(pthread_create(&out[i].thread, NULL, call_step, &out[i]), 0);
    }
    for (int i = 0; i < n_stages; i++) pthread_join(out[i].thread, NULL);
    free(buf);
    *token = out[n_stages - 1].st == VR_OK ? answer_token(&out[n_stages - 1]) : -1;
}

/* A step of text ids on a single-stage pipeline (reset: a new turn's fresh sampler); the
 * caller frees c->msg and c->resp. */
static void step_raw(const char *address, uint64_t step_id, const char *session, const int32_t *ids, int n_ids,
                     int reset, step_call *c) {
    size_t n = 0;
    uint8_t *buf = pack_step(step_id, session, ids, n_ids, 0, NULL, 0, 0, reset, &n);
    memset(c, 0, sizeof *c);
    c->address = address;
    c->req = buf;
    c->len = n;
    call_step(c);
    free(buf);
}

/* The same, which must succeed: the token chosen after the ids. */
static int32_t step_single(const char *address, uint64_t step_id, const char *session, const int32_t *ids, int n_ids) {
    step_call c;
    step_raw(address, step_id, session, ids, n_ids, 1, &c);
    if (c.st != VR_OK) fail_msg("step on %s: %s", address, c.msg ? c.msg : "?");
    int32_t t = answer_token(&c);
    free(c.msg);
    free(c.resp);
    return t;
}

static void checkpoint(const char *address, const char *session, int64_t turn) {
    Vrwkv__Internal__CheckpointRequest req = VRWKV__INTERNAL__CHECKPOINT_REQUEST__INIT;
    req.tenant = "t";
    req.session = (char *)session;
    req.turn = turn;
    must_call(address, "/vrwkv.internal.Shard/Checkpoint", &req.base);
}

static void step_call_free(step_call *c, int n) {
    for (int i = 0; i < n; i++) {
        free(c[i].msg);
        free(c[i].resp);
    }
}

static Vrwkv__Internal__EncodeResponse *encode(const char *vision, const char *deliver_to, uint64_t key,
                                               const uint8_t *image, size_t len) {
    Vrwkv__Internal__EncodeRequest req = VRWKV__INTERNAL__ENCODE_REQUEST__INIT;
    req.image.data = (uint8_t *)image;
    req.image.len = len;
    req.name = "fixture";
    req.deliver_to = (char *)deliver_to;
    req.deliver_key = key;
    uint8_t *resp = NULL;
    size_t rl = 0;
    char *msg = NULL;
    int code = 0;
    if (unary(vision, "/vrwkv.internal.Vision/Encode", &req.base, &resp, &rl, &msg, &code) != VR_OK)
        fail_msg("encode: %s", msg ? msg : "?");
    Vrwkv__Internal__EncodeResponse *r = vrwkv__internal__encode_response__unpack(NULL, rl, resp);
    assert_non_null(r);
    free(resp);
    free(msg);
    return r;
}

static uint8_t *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* A real shard of the tiny fixture model serving layers [first, last) (last 0: to the end). */
static vr_shard *start_shard(int first, int last) {
    char model[4200], config[4200];
    snprintf(model, sizeof model, "%s", vrt_fixture_path("tiny/model.pth"));
    snprintf(config, sizeof config, "%s", vrt_fixture_path("tiny/model.json"));
    vr_shard_options o = {0};
    o.model_path = model;
    o.config_path = config;
    o.max_sessions = 8;
    o.metrics_port = -1;
    o.threads = 1;
    o.layer_first = first;
    o.layer_last = last;
    vr_shard *s = NULL;
    vr_error err = {0};
    if (vr_shard_start(&o, &s, &err) != VR_OK) fail_msg("shard %d:%d: %s", first, last, err.msg);
    return s;
}

static void test_real_shards(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    char model[4200], config[4200], image_path[4200];
    snprintf(model, sizeof model, "%s", vrt_fixture_path("tiny/model.pth"));
    snprintf(config, sizeof config, "%s", vrt_fixture_path("tiny/model.json"));
    cJSON *images = vrt_load_json("images/images.json");
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(images, "images"), 0);
    const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(first, "file"));
    assert_non_null(file);
    const char *base = strrchr(file, '/');
    char rel[600];
    snprintf(rel, sizeof rel, "images/%s", base ? base + 1 : file);
    snprintf(image_path, sizeof image_path, "%s", vrt_fixture_path(rel));
    cJSON_Delete(images);
    size_t image_len = 0;
    uint8_t *image = read_file(image_path, &image_len);

    vr_error err = {0};
    vr_shard *s0 = start_shard(0, 2), *s1 = start_shard(2, 0);
    vr_vision_worker_options vo = {model, config, NULL, 0, NULL, 1, -1, NULL, 0};
    vr_vision_worker *vw = NULL;
    if (vr_vision_worker_start(&vo, &vw, &err) != VR_OK) fail_msg("vision: %s", err.msg);
    char a0[64], a1[64], vision[64];
    snprintf(a0, sizeof a0, "%s", vr_shard_address(s0));
    snprintf(a1, sizeof a1, "%s", vr_shard_address(s1));
    snprintf(vision, sizeof vision, "%s", vr_vision_worker_address(vw));
    const char *t1 = vr_shard_transport_address(s1), *t0 = vr_shard_transport_address(s0);
    assign(a1, 1, 2, "");
    assign(a0, 0, 2, t1);

    /* the same image: inline, then delivered to stage 0 under a key: the same token */
    Vrwkv__Internal__EncodeResponse *inl = encode(vision, "", 0, image, image_len);
    assert_false(inl->delivered);
    assert_true(inl->features.len > 0);
    Vrwkv__Internal__EncodeResponse *del = encode(vision, t0, 0x1234, image, image_len);
    assert_true(del->delivered);
    assert_int_equal(del->features.len, 0);
    assert_int_equal(del->n_img, inl->n_img);
    step_call c[2];
    const char *pipe[2] = {a0, a1};
    int32_t tok_inline = -1, tok_delivered = -1, tok;
    prepare_fresh(a0, "s-inline");
    prepare_fresh(a1, "s-inline");
    step(pipe, 2, 1, "s-inline", inl->n_img, inl->features.data, inl->features.len, 0, c, &tok_inline);
    assert_int_equal(c[0].st, VR_OK);
    assert_int_equal(c[1].st, VR_OK);
    step_call_free(c, 2);
    /* Prepare tells whether stage 0 holds the features the prefill will take (a later stage
     * never says so) */
    int missing = -1;
    assert_int_equal(prepare_ex(a0, "s-delivered", 1, 0, 0, 0x1234, &missing), 0);
    assert_int_equal(missing, 0);
    assert_int_equal(prepare_ex(a0, "s-delivered", 1, 0, 0, 0x777, &missing), 0);
    assert_int_equal(missing, 1);
    assert_int_equal(prepare_ex(a1, "s-delivered", 1, 0, 0, 0x777, &missing), 0);
    assert_int_equal(missing, 0);
    prepare_fresh(a0, "s-delivered");
    prepare_fresh(a1, "s-delivered");
    step(pipe, 2, 2, "s-delivered", del->n_img, NULL, 0, 0x1234, c, &tok_delivered);
    assert_int_equal(c[0].st, VR_OK);
    assert_int_equal(c[1].st, VR_OK);
    step_call_free(c, 2);
    assert_true(tok_inline >= 0);
    assert_int_equal(tok_delivered, tok_inline);

    /* the key was taken: the same step again fails at stage 0 (NOT_FOUND) and at stage 1 at once */
    assert_int_equal(prepare_ex(a0, "s-missing", 1, 0, 0, 0x1234, &missing), 0);
    assert_int_equal(missing, 1);
    prepare_fresh(a1, "s-missing");
    step(pipe, 2, 3, "s-missing", del->n_img, NULL, 0, 0x1234, c, &tok);
    assert_int_equal(c[0].st, VR_ERR_NOT_FOUND);
    assert_non_null(c[0].msg);
    assert_non_null(strstr(c[0].msg, "not on this shard"));
    assert_int_not_equal(c[1].st, VR_OK);
    assert_non_null(c[1].msg);
    assert_non_null(strstr(c[1].msg, "previous stage failed step 3"));
    assert_true(c[1].seconds < 30.0); /* the abort came, not the 60 s receive timeout */
    step_call_free(c, 2);
    /* and the link between the stages is in step: a text step runs */
    prepare_fresh(a0, "s-text");
    prepare_fresh(a1, "s-text");
    step(pipe, 2, 4, "s-text", 0, NULL, 0, 0, c, &tok);
    assert_int_equal(c[0].st, VR_OK);
    assert_int_equal(c[1].st, VR_OK);
    assert_true(tok >= 0);
    step_call_free(c, 2);

    /* a turn that ends before its prefill: Evict (keep_states) drops its delivered features */
    Vrwkv__Internal__EncodeResponse *dropped = encode(vision, t0, 0x5151, image, image_len);
    assert_true(dropped->delivered);
    vrwkv__internal__encode_response__free_unpacked(dropped, NULL);
    assert_int_equal(prepare_ex(a0, "s-text", 0, 0, 3, 0x5151, &missing), 0);
    assert_int_equal(missing, 0);
    Vrwkv__Internal__EvictRequest ev = VRWKV__INTERNAL__EVICT_REQUEST__INIT;
    ev.tenant = "t";
    ev.session = "s-text";
    ev.features_key = 0x5151;
    ev.keep_states = 1;
    must_call(a0, "/vrwkv.internal.Shard/Evict", &ev.base);
    assert_int_equal(prepare_ex(a0, "s-text", 0, 0, 3, 0x5151, &missing), 0); /* the state stayed */
    assert_int_equal(missing, 1);

    /* connections that never say hello (a scanner, a stuck peer) do not hold up a delivery:
     * each used to block the listener for its 2 s hello timeout */
    vr_transport *idle[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(vr_transport_tcp_connect_address(t0, 2000, &idle[i], &err), VR_OK);
    vr_feature_sender *fresh = NULL; /* a new connection, so it goes through the listener */
    assert_int_equal(vr_feature_sender_create(&fresh, &err), VR_OK);
    struct timespec w0, w1;
    clock_gettime(CLOCK_MONOTONIC, &w0);
    assert_int_equal(vr_feature_sender_deliver(fresh, t0, 0x4242, (const float *)inl->features.data, inl->n_img,
                                               inl->n_embd, 10000, &err),
                     VR_OK);
    clock_gettime(CLOCK_MONOTONIC, &w1);
    assert_true((double)(w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) * 1e-9 < 4.0);
    vr_feature_sender_free(fresh);
    for (int i = 0; i < 3; i++) vr_transport_close(idle[i]);

    /* stage 0 cannot be reached: the vision worker answers the features itself */
    Vrwkv__Internal__EncodeResponse *fb = encode(vision, "127.0.0.1:1", 0x99, image, image_len);
    assert_false(fb->delivered);
    assert_int_equal(fb->features.len, inl->features.len);
    assert_memory_equal(fb->features.data, inl->features.data, inl->features.len);
    /* a later stage takes no features: the vision worker falls back there too */
    Vrwkv__Internal__EncodeResponse *fb1 = encode(vision, t1, 0x98, image, image_len);
    assert_false(fb1->delivered);
    assert_int_equal(fb1->features.len, inl->features.len);

    vrwkv__internal__encode_response__free_unpacked(inl, NULL);
    vrwkv__internal__encode_response__free_unpacked(del, NULL);
    vrwkv__internal__encode_response__free_unpacked(fb, NULL);
    vrwkv__internal__encode_response__free_unpacked(fb1, NULL);
    vr_vision_worker_stop(vw);
    vr_shard_stop(s0);
    vr_shard_stop(s1);
    free(image);
}

/* Three stages: stage 0 fails a step (its features are missing); the abort reaches stage 1 and
 * then stage 2 at once, each saying why, and the next step runs through all three. */
static void test_abort_chain(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vr_checkpoint *ck = NULL;
    vr_model_config cfg;
    vr_error err = {0};
    char model[4200];
    snprintf(model, sizeof model, "%s", vrt_fixture_path("tiny/model.pth"));
    assert_int_equal(vr_checkpoint_open(model, &ck, &err), VR_OK);
    assert_int_equal(vr_config_load(ck, vrt_fixture_path("tiny/model.json"), &cfg, &err), VR_OK);
    vr_checkpoint_free(ck);
    vr_shard *sh[3] = {start_shard(0, 1), start_shard(1, 3), start_shard(3, 0)};
    char addr[3][64], tr[3][64];
    const char *pipe[3];
    for (int i = 0; i < 3; i++) {
        snprintf(addr[i], sizeof addr[i], "%s", vr_shard_address(sh[i]));
        snprintf(tr[i], sizeof tr[i], "%s", vr_shard_transport_address(sh[i]));
        pipe[i] = addr[i];
    }
    for (int i = 2; i >= 0; i--) assign(addr[i], i, 3, i < 2 ? tr[i + 1] : ""); /* from the last backwards */
    for (int i = 0; i < 3; i++) prepare_fresh(addr[i], "chain");
    step_call c[3];
    int32_t tok = -1;
    step(pipe, 3, 1, "chain", cfg.num_image_tokens, NULL, 0, 0xdead, c, &tok);
    assert_int_equal(c[0].st, VR_ERR_NOT_FOUND);
    for (int i = 1; i < 3; i++) {
        assert_int_not_equal(c[i].st, VR_OK);
        assert_non_null(c[i].msg);
        assert_non_null(strstr(c[i].msg, "previous stage failed step 1"));
        assert_true(c[i].seconds < 30.0); /* not the 60 s receive timeout */
    }
    step_call_free(c, 3);
    for (int i = 0; i < 3; i++) prepare_fresh(addr[i], "chain");
    step(pipe, 3, 2, "chain", 0, NULL, 0, 0, c, &tok);
    for (int i = 0; i < 3; i++) assert_int_equal(c[i].st, VR_OK);
    assert_true(tok >= 0);
    step_call_free(c, 3);
    for (int i = 2; i >= 0; i--) vr_shard_stop(sh[i]);
}

static int count_fds(void) {
    int n = 0;
    for (int fd = 0; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) != -1) n++;
    return n;
}

/* A new predecessor connecting while a step waits for the old one's activations (a re-formed
 * pipeline): the old link is interrupted, so that step fails at once (not by its 60 s receive
 * timeout, and the link is not freed under it: ASan would see that), and the next step reads
 * from the new link. */
static void *step_thread(void *p) {
    step_call *c = p;
    call_step(c);
    return NULL;
}

static void test_replaced_predecessor(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vr_shard *sh = start_shard(1, 0); /* stage 1 of 2: layer 1 to the last */
    char addr[64], tr[64];
    snprintf(addr, sizeof addr, "%s", vr_shard_address(sh));
    snprintf(tr, sizeof tr, "%s", vr_shard_transport_address(sh));
    assign(addr, 1, 2, "");
    prepare_fresh(addr, "rp");
    vr_error err = {0};
    vr_transport *old_link = NULL, *new_link = NULL;
    assert_int_equal(vr_transport_tcp_connect_address(tr, 2000, &old_link, &err), VR_OK);
    assert_int_equal(vr_transport_hello_send(old_link, VR_PEER_PREV_STAGE, &err), VR_OK);
    int32_t ids[1] = {1010};
    size_t n = 0;
    uint8_t *req5 = pack_step(5, "rp", ids, 1, 0, NULL, 0, 0, 1, &n);
    step_call c5 = {.address = addr, .req = req5, .len = n};
    assert_int_equal(pthread_create(&c5.thread, NULL, step_thread, &c5), 0);
    usleep(300 * 1000); /* step 5 now waits for the old link's activations */
    assert_int_equal(vr_transport_tcp_connect_address(tr, 2000, &new_link, &err), VR_OK);
    assert_int_equal(vr_transport_hello_send(new_link, VR_PEER_PREV_STAGE, &err), VR_OK);
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    int interrupted = 1;
    if (pthread_timedjoin_np(c5.thread, NULL, &deadline) != 0) {
        /* step 5 had not reached its receive and waits on the new link: end it from there */
        interrupted = 0;
        assert_int_equal(vr_transport_send(new_link, 5, NULL, 0, &err), VR_OK);
        pthread_join(c5.thread, NULL);
    }
    assert_int_not_equal(c5.st, VR_OK);
    assert_true(c5.seconds < 30.0); /* not the 60 s receive timeout */
    if (interrupted) { /* the step says why */
        assert_non_null(c5.msg);
        assert_non_null(strstr(c5.msg, "replaced by a newer link"));
    }
    free(c5.msg), free(c5.resp), free(req5);
    /* the next step reads from the new link: its abort frame ends it at once, with its message */
    assert_int_equal(vr_transport_send(new_link, 6, NULL, 0, &err), VR_OK);
    step_call c6;
    step_raw(addr, 6, "rp", ids, 1, 0, &c6);
    assert_int_not_equal(c6.st, VR_OK);
    assert_non_null(c6.msg);
    assert_non_null(strstr(c6.msg, "previous stage failed step 6"));
    free(c6.msg), free(c6.resp);
    vr_transport_close(old_link);
    vr_transport_close(new_link);
    /* links replaced while no step uses them are closed at once: 50 hellos to an idle shard
     * (the transport port has no authentication) leave no descriptors behind */
    usleep(200 * 1000);
    int fds0 = count_fds();
    for (int i = 0; i < 50; i++) {
        vr_transport *t = NULL;
        assert_int_equal(vr_transport_tcp_connect_address(tr, 2000, &t, &err), VR_OK);
        assert_int_equal(vr_transport_hello_send(t, VR_PEER_PREV_STAGE, &err), VR_OK);
        usleep(20 * 1000); /* the shard takes the hello before the next connection */
        vr_transport_close(t);
    }
    usleep(300 * 1000);
    int fds1 = count_fds();
    if (fds1 > fds0 + 4) fail_msg("50 replaced predecessor links left %d descriptors open", fds1 - fds0);
    vr_shard_stop(sh);
}

static void test_state_frame(void **st) {
    (void)st;
    vr_state_frame f, g;
    memset(&f, 0, sizeof f);
    f.key = 42;
    f.turn = 3;
    f.tokens = 1234;
    f.layer_first = 2;
    f.layer_last = 5;
    f.blob_size = 16;
    strcpy(f.tenant, "acme");
    strcpy(f.session, "s-1");
    size_t n = vr_state_frame_size(f.tenant, f.session, 3, 16);
    assert_int_equal(n, VR_STATE_FRAME_HEADER + 4 + 3 + 48);
    uint8_t *buf = malloc(n);
    vr_error err = {0};
    uint8_t *blobs = vr_state_frame_begin(&f, buf, n, &err);
    assert_non_null(blobs);
    for (int i = 0; i < 48; i++) blobs[i] = (uint8_t)i;
    assert_int_equal(vr_state_frame_parse(buf, n, &g, &err), VR_OK);
    assert_int_equal(g.key, 42);
    assert_int_equal(g.turn, 3);
    assert_int_equal(g.tokens, 1234);
    assert_int_equal(g.layer_first, 2);
    assert_int_equal(g.layer_last, 5);
    assert_int_equal(g.blob_size, 16);
    assert_string_equal(g.tenant, "acme");
    assert_string_equal(g.session, "s-1");
    assert_int_equal(vr_state_frame_blob(&g, 4)[0], 32);
    /* every cut is refused, and so is a frame that grew */
    for (size_t cut = 0; cut < n; cut++) assert_int_equal(vr_state_frame_parse(buf, cut, &g, &err), VR_ERR_FORMAT);
    uint8_t *big = calloc(1, n + 1);
    memcpy(big, buf, n);
    assert_int_equal(vr_state_frame_parse(big, n + 1, &g, &err), VR_ERR_FORMAT);
    free(big);
    buf[36] = 2; /* layers 2:2 */
    assert_int_equal(vr_state_frame_parse(buf, n, &g, &err), VR_ERR_FORMAT);
    buf[36] = 5;
    buf[4] = 9; /* another version */
    assert_int_equal(vr_state_frame_parse(buf, n, &g, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "version"));
    /* a buffer too small, and no layers */
    assert_null(vr_state_frame_begin(&f, buf, n - 1, &err));
    f.layer_last = f.layer_first;
    assert_null(vr_state_frame_begin(&f, buf, n, &err));
    free(buf);
}

static vr_status handoff(const char *from, const char *to, int first, int last, int *sent, int *skipped, char **msg) {
    Vrwkv__Internal__HandoffRequest req = VRWKV__INTERNAL__HANDOFF_REQUEST__INIT;
    req.to_transport_address = (char *)to;
    req.layer_first = first;
    req.layer_last = last;
    uint8_t *resp = NULL;
    size_t rl = 0;
    int code = 0;
    vr_status st = unary(from, "/vrwkv.internal.Shard/Handoff", &req.base, &resp, &rl, msg, &code);
    if (st == VR_OK) {
        Vrwkv__Internal__HandoffResponse *r = vrwkv__internal__handoff_response__unpack(NULL, rl, resp);
        assert_non_null(r);
        *sent = r->sent;
        *skipped = r->skipped;
        vrwkv__internal__handoff_response__free_unpacked(r, NULL);
    }
    free(resp);
    return st;
}

static void test_state_handoff(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vr_shard *a = start_shard(0, 0), *b = start_shard(0, 0); /* both the whole model: b replaces a */
    char aa[64], ba[64], bt[64];
    snprintf(aa, sizeof aa, "%s", vr_shard_address(a));
    snprintf(ba, sizeof ba, "%s", vr_shard_address(b));
    snprintf(bt, sizeof bt, "%s", vr_shard_transport_address(b));
    assign(aa, 0, 1, "");
    assign(ba, 0, 1, "");
    /* a serves a turn's prompt and its first token */
    int32_t prompt[5] = {24281, 59, 1010, 33, 261};
    prepare_fresh(aa, "s");
    int32_t t1 = step_single(aa, 1, "s", prompt, 5);
    /* mid-turn (not checkpointed): nothing to hand over */
    int sent = -1, skipped = -1;
    char *msg = NULL;
    if (handoff(aa, bt, 0, 4, &sent, &skipped, &msg) != VR_OK) fail_msg("handoff: %s", msg ? msg : "?");
    free(msg);
    msg = NULL;
    assert_int_equal(sent, 0);
    assert_int_equal(skipped, 0);
    checkpoint(aa, "s", 1);
    /* b has an empty store of its own: only a handed state lets it continue the session */
    assert_int_not_equal(prepare(ba, "s", 0, 1, 5), 0);
    if (handoff(aa, bt, 0, 4, &sent, &skipped, &msg) != VR_OK) fail_msg("handoff: %s", msg ? msg : "?");
    free(msg);
    msg = NULL;
    assert_int_equal(sent, 1);
    assert_int_equal(skipped, 0);
    assert_int_equal(prepare(ba, "s", 0, 1, 5), 0);
    /* both continue the same way, token for token */
    int32_t ta = t1, tb = t1;
    for (int k = 0; k < 4; k++) {
        ta = step_single(aa, 10 + (uint64_t)k, "s", &ta, 1);
        tb = step_single(ba, 10 + (uint64_t)k, "s", &tb, 1);
        assert_int_equal(ta, tb);
    }
    /* a second session: b takes it, and refuses s, which is live there already */
    checkpoint(aa, "s", 2);
    prepare_fresh(aa, "s2");
    step_single(aa, 20, "s2", prompt, 5);
    checkpoint(aa, "s2", 1);
    if (handoff(aa, bt, 0, 4, &sent, &skipped, &msg) != VR_OK) fail_msg("handoff: %s", msg ? msg : "?");
    free(msg);
    msg = NULL;
    assert_int_equal(sent, 1);
    assert_int_equal(skipped, 1);
    /* a turn's sampler never moves: a decode step that expects one fails (retriable), never
     * samples with a fresh one */
    assert_int_equal(prepare(ba, "s2", 0, 1, 5), 0);
    step_call c;
    step_raw(ba, 21, "s2", &t1, 1, 0, &c);
    assert_int_equal(c.st, VR_ERR_NOT_FOUND);
    assert_non_null(c.msg);
    assert_non_null(strstr(c.msg, "no sampler"));
    free(c.msg);
    free(c.resp);
    /* layers a does not hold, and nobody listening */
    assert_int_not_equal(handoff(aa, bt, 0, 5, &sent, &skipped, &msg), VR_OK);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "holds layers 0:4"));
    free(msg);
    msg = NULL;
    assert_int_not_equal(handoff(aa, "127.0.0.1:1", 0, 4, &sent, &skipped, &msg), VR_OK);
    assert_non_null(msg);
    free(msg);
    vr_shard_stop(b);
    vr_shard_stop(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_inbox_and_sender), cmocka_unit_test(test_inbox_expiry),
                                       cmocka_unit_test(test_inbox_refuses_garbage),
                                       cmocka_unit_test(test_nccl_negotiation),
                                       cmocka_unit_test(test_real_shards), cmocka_unit_test(test_abort_chain),
                                       cmocka_unit_test(test_replaced_predecessor),
                                       cmocka_unit_test(test_state_frame),
                                       cmocka_unit_test(test_state_handoff)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
