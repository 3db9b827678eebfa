/* tests/unit/service/test_pipeline_links.c — how the coordinator links a pipeline, over real
 * gRPC: a real coordinator (tiny fixture model) and two stand-in shards (gRPC servers that
 * register over the internal API and record the Assign they get). Both NCCL-capable: the
 * receiving stage is asked for the link's id (prev_nccl), and the coordinator hands exactly
 * that id to the sending stage (next_nccl_id, no TCP address). One without NCCL: the link
 * stays TCP (the next stage's transport address, no ids). The NCCL joins themselves need GPUs
 * (tests/gpu); this checks the bootstrap protocol. A real shard without NCCL refuses NCCL
 * assignments and malformed link ids with a clear INVALID_ARGUMENT. The coordinator answers
 * bytes that are no message, at each of its methods, with INVALID_ARGUMENT and goes on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "coordinator/coordinator.h"
#include "model/checkpoint.h"
#include "model/weights.h"
#include "proto/control.pb-c.h"
#include "proto/rpc.h"
#include "tests/support/fixtures.h"
#include "worker/shard.h"
#include "worker/transport.h"

typedef struct fake_shard {
    vr_rpc_server *srv;
    char address[64], transport[64];
    int first, last, nccl;
    uint8_t my_id[VR_NCCL_UNIQUE_ID_BYTES]; /* what it answers when asked for its prev link's id */
    /* the last Assign */
    int assigned, stage, n_stages, prev_nccl;
    char next_addr[128];
    size_t next_id_len;
    uint8_t next_id[VR_NCCL_UNIQUE_ID_BYTES];
} fake_shard;

static void handle_assign(vr_rpc_call *call, void *ctx) {
    fake_shard *f = ctx;
    const uint8_t *data;
    size_t len;
    vr_rpc_call_request(call, &data, &len);
    Vrwkv__Internal__AssignRequest *q = vrwkv__internal__assign_request__unpack(NULL, len, data);
    if (!q) {
        vr_rpc_call_finish(call, VR_RPC_STATUS_INVALID_ARGUMENT, "malformed", NULL, 0, NULL);
        return;
    }
    f->stage = q->stage;
    f->n_stages = q->n_stages;
    f->prev_nccl = q->prev_nccl;
    snprintf(f->next_addr, sizeof f->next_addr, "%s", q->next_transport_address ? q->next_transport_address : "");
    f->next_id_len = q->next_nccl_id.len;
    if (q->next_nccl_id.len == VR_NCCL_UNIQUE_ID_BYTES) memcpy(f->next_id, q->next_nccl_id.data, VR_NCCL_UNIQUE_ID_BYTES);
    Vrwkv__Internal__AssignResponse resp = VRWKV__INTERNAL__ASSIGN_RESPONSE__INIT;
    if (q->prev_nccl) {
        resp.prev_nccl_id.data = f->my_id;
        resp.prev_nccl_id.len = VR_NCCL_UNIQUE_ID_BYTES;
    }
    uint8_t buf[512];
    size_t n = vrwkv__internal__assign_response__pack(&resp, buf);
    vrwkv__internal__assign_request__free_unpacked(q, NULL);
    __atomic_store_n(&f->assigned, 1, __ATOMIC_RELEASE);
    vr_rpc_call_finish(call, VR_RPC_STATUS_OK, NULL, buf, n, NULL);
}

static void start_fake(fake_shard *f, int first, int last, int nccl, const char *coordinator, uint64_t fingerprint) {
    vr_error err = {0};
    memset(f, 0, sizeof *f);
    f->first = first;
    f->last = last;
    f->nccl = nccl;
    for (int i = 0; i < VR_NCCL_UNIQUE_ID_BYTES; i++) f->my_id[i] = (uint8_t)(first * 31 + i * 7 + 1);
    int port = 0;
    assert_int_equal(vr_rpc_server_create("127.0.0.1:0", &f->srv, &err), VR_OK);
    assert_int_equal(vr_rpc_server_add_method(f->srv, "/vrwkv.internal.Shard/Assign", VR_RPC_UNARY, handle_assign, f,
                                              &err),
                     VR_OK);
    assert_int_equal(vr_rpc_server_start(f->srv, &port, &err), VR_OK);
    snprintf(f->address, sizeof f->address, "127.0.0.1:%d", port);
    snprintf(f->transport, sizeof f->transport, "127.0.0.1:%d", 40000 + first); /* never dialled here */
    Vrwkv__Internal__RegisterRequest req = VRWKV__INTERNAL__REGISTER_REQUEST__INIT;
    char id[96];
    snprintf(id, sizeof id, "fake-shard-%d-%d", first, (int)getpid());
    req.worker_id = id;
    req.address = f->address;
    req.transport_address = f->transport;
    req.role = VRWKV__INTERNAL__WORKER_ROLE__WORKER_ROLE_SHARD;
    req.layer_first = first;
    req.layer_last = last;
    req.model_fingerprint = fingerprint;
    req.max_sessions = 8;
    req.nccl = nccl;
    uint8_t buf[1024];
    size_t n = vrwkv__internal__register_request__pack(&req, buf);
    vr_rpc_channel *ch = NULL;
    assert_int_equal(vr_rpc_channel_create(coordinator, &ch, &err), VR_OK);
    uint8_t *resp = NULL;
    size_t rl = 0;
    vr_status st = vr_rpc_unary(ch, "/vrwkv.internal.Coordinator/RegisterWorker", NULL, 0, buf, n, 5000, &resp, &rl,
                                NULL, NULL, &err);
    if (st != VR_OK) fail_msg("registering %s: %s", f->address, err.msg);
    free(resp);
    vr_rpc_channel_free(ch);
}

static void wait_assigned(fake_shard *a, fake_shard *b) {
    for (int i = 0; i < 100; i++) {
        if (__atomic_load_n(&a->assigned, __ATOMIC_ACQUIRE) && __atomic_load_n(&b->assigned, __ATOMIC_ACQUIRE)) return;
        usleep(50 * 1000);
    }
    fail_msg("the coordinator did not assign the pipeline within 5 s");
}

/* a coordinator on the tiny model, API key "pipeline-links-key" */
static vr_coordinator *start_coordinator(void) {
    vr_error err = {0};
    char model[4200], config[4200], vocab[4200];
    snprintf(model, sizeof model, "%s", vrt_fixture_path("tiny/model.pth"));
    snprintf(config, sizeof config, "%s", vrt_fixture_path("tiny/model.json"));
    snprintf(vocab, sizeof vocab, "%s/rwkv_vocab_v20230424.txt", vrt_shared_dir());
    vr_coordinator_options o = {0};
    o.model_path = model;
    o.config_path = config;
    o.vocab_path = vocab;
    o.api_key = "pipeline-links-key";
    o.metrics_port = -1;
    vr_coordinator *c = NULL;
    if (vr_coordinator_start(&o, &c, &err) != VR_OK) fail_msg("coordinator: %s", err.msg);
    return c;
}

/* a coordinator on the tiny model, and two stand-in shards of layers [0, half) and [half, n) */
static void run_case(int nccl_first, int nccl_second, fake_shard *a, fake_shard *b) {
    vr_error err = {0};
    vr_checkpoint *ck = NULL;
    assert_int_equal(vr_checkpoint_open(vrt_fixture_path("tiny/model.pth"), &ck, &err), VR_OK);
    uint64_t fp = vr_weights_fingerprint(ck);
    vr_checkpoint_free(ck);
    vr_coordinator *c = start_coordinator();
    start_fake(a, 0, 2, nccl_first, vr_coordinator_address(c), fp);
    start_fake(b, 2, 4, nccl_second, vr_coordinator_address(c), fp);
    wait_assigned(a, b);
    vr_rpc_server_shutdown_and_free(a->srv, 0);
    vr_rpc_server_shutdown_and_free(b->srv, 0);
    vr_coordinator_stop(c);
}

static void test_nccl_link_ids_go_through_the_coordinator(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    fake_shard a, b;
    run_case(1, 1, &a, &b);
    assert_int_equal(a.stage, 0);
    assert_int_equal(b.stage, 1);
    assert_int_equal(a.n_stages, 2);
    /* the receiver made the id; the sender got exactly it, and no TCP address */
    assert_true(b.prev_nccl);
    assert_false(a.prev_nccl);
    assert_int_equal(a.next_id_len, VR_NCCL_UNIQUE_ID_BYTES);
    assert_memory_equal(a.next_id, b.my_id, VR_NCCL_UNIQUE_ID_BYTES);
    assert_string_equal(a.next_addr, "");
    /* the last stage has no next link */
    assert_int_equal(b.next_id_len, 0);
    assert_string_equal(b.next_addr, "");
}

static void test_tcp_where_a_neighbour_has_no_nccl(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    fake_shard a, b;
    run_case(0, 1, &a, &b);
    assert_false(b.prev_nccl);
    assert_int_equal(a.next_id_len, 0);
    assert_string_equal(a.next_addr, b.transport);
}

static vr_status assign(const char *address, int prev_nccl, const uint8_t *next_id, size_t id_len, char **msg,
                        int *code) {
    Vrwkv__Internal__AssignRequest req = VRWKV__INTERNAL__ASSIGN_REQUEST__INIT;
    req.epoch = 7;
    req.stage = 2; /* the last of three: no next link unless given one */
    req.n_stages = 3;
    req.next_transport_address = "";
    req.prev_nccl = prev_nccl;
    req.next_nccl_id.data = (uint8_t *)next_id;
    req.next_nccl_id.len = id_len;
    uint8_t buf[1024];
    size_t n = vrwkv__internal__assign_request__pack(&req, buf);
    vr_rpc_channel *ch = NULL;
    vr_error err = {0};
    assert_int_equal(vr_rpc_channel_create(address, &ch, &err), VR_OK);
    uint8_t *resp = NULL;
    size_t rl = 0;
    vr_status st = vr_rpc_unary(ch, "/vrwkv.internal.Shard/Assign", NULL, 0, buf, n, 5000, &resp, &rl, code, msg, &err);
    free(resp);
    vr_rpc_channel_free(ch);
    return st;
}

static void test_shard_refuses_bad_links(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    char model[4200], config[4200];
    snprintf(model, sizeof model, "%s", vrt_fixture_path("tiny/model.pth"));
    snprintf(config, sizeof config, "%s", vrt_fixture_path("tiny/model.json"));
    vr_shard_options o = {0};
    o.model_path = model;
    o.config_path = config;
    o.layer_first = 0;
    o.layer_last = 2;
    o.max_sessions = 4;
    o.metrics_port = -1;
    vr_shard *s = NULL;
    vr_error err = {0};
    if (vr_shard_start(&o, &s, &err) != VR_OK) fail_msg("shard: %s", err.msg);
    char *msg = NULL;
    int code = 0;
    uint8_t id[VR_NCCL_UNIQUE_ID_BYTES] = {1, 2, 3};
    /* asked to make an NCCL link: this shard runs without --transport nccl */
    assert_int_not_equal(assign(vr_shard_address(s), 1, NULL, 0, &msg, &code), VR_OK);
    assert_int_equal(code, VR_RPC_STATUS_INVALID_ARGUMENT);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "--transport nccl"));
    free(msg);
    msg = NULL;
    /* an id of the wrong size */
    assert_int_not_equal(assign(vr_shard_address(s), 0, id, 5, &msg, &code), VR_OK);
    assert_int_equal(code, VR_RPC_STATUS_INVALID_ARGUMENT);
    assert_non_null(msg);
    assert_non_null(strstr(msg, "5-byte id"));
    free(msg);
    msg = NULL;
    /* a plain TCP assignment (last stage, no next) still works afterwards */
    assert_int_equal(assign(vr_shard_address(s), 0, NULL, 0, &msg, &code), VR_OK);
    free(msg);
    vr_shard_stop(s);
}

/* Bytes that are no protobuf message at every method of the coordinator: INVALID_ARGUMENT naming
 * the message type, and the coordinator goes on serving. */
static void test_coordinator_refuses_malformed_requests(void **st) {
    (void)st;
    VRT_REQUIRE_SHARED();
    vr_error err = {0};
    vr_coordinator *c = start_coordinator();
    vr_rpc_channel *ch = NULL;
    assert_int_equal(vr_rpc_channel_create(vr_coordinator_address(c), &ch, &err), VR_OK);
    vr_rpc_metadata md[1] = {{"authorization", "Bearer pipeline-links-key"}};
    static const uint8_t junk[3] = {0xff, 0xff, 0xff};
    static const char *const methods[][2] = {
        {"/vrwkv.v1.Vrwkv/GetSession", "malformed GetSessionRequest"},
        {"/vrwkv.v1.Vrwkv/DeleteSession", "malformed DeleteSessionRequest"},
        {"/vrwkv.internal.Coordinator/RegisterWorker", "malformed RegisterRequest"},
        {"/vrwkv.internal.Coordinator/Heartbeat", "malformed HeartbeatRequest"},
    };
    for (int round = 0; round < 2; round++) /* the second round: still serving */
        for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
            uint8_t *resp = NULL;
            size_t rl = 0;
            int code = 0;
            char *msg = NULL;
            assert_int_not_equal(vr_rpc_unary(ch, methods[i][0], md, 1, junk, sizeof junk, 5000, &resp, &rl, &code,
                                              &msg, &err),
                                 VR_OK);
            assert_int_equal(code, VR_RPC_STATUS_INVALID_ARGUMENT);
            assert_non_null(msg);
            assert_string_equal(msg, methods[i][1]);
            free(msg);
            free(resp);
        }
    vr_rpc_stream *s = NULL;
    assert_int_equal(vr_rpc_stream_open(ch, "/vrwkv.v1.Vrwkv/Generate", md, 1, junk, sizeof junk, 5000, &s, &err),
                     VR_OK);
    uint8_t *m = NULL;
    size_t ml = 0;
    int done = 0;
    assert_int_not_equal(vr_rpc_stream_next(s, &m, &ml, &done, &err), VR_OK);
    assert_true(done);
    int code = 0;
    const char *text = NULL;
    vr_rpc_stream_status(s, &code, &text);
    assert_int_equal(code, VR_RPC_STATUS_INVALID_ARGUMENT);
    assert_string_equal(text, "malformed GenerateRequest");
    vr_rpc_stream_free(s);
    vr_rpc_channel_free(ch);
    vr_coordinator_stop(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_nccl_link_ids_go_through_the_coordinator),
                                       cmocka_unit_test(test_tcp_where_a_neighbour_has_no_nccl),
                                       cmocka_unit_test(test_shard_refuses_bad_links),
                                       cmocka_unit_test(test_coordinator_refuses_malformed_requests)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
