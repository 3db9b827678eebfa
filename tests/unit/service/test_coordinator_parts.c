/* tests/unit/service/test_coordinator_parts.c — the coordinator's pure parts: tenants config
 * parsing and API-key authentication, session records (round trip, strict refusal of every
 * kind of corruption), and when delivered image features can still be counted on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "coordinator/internal.h"
#include "coordinator/session_record.h"
#include "coordinator/tenants.h"
#include "worker/feature_delivery.h"

static void test_tenants(void **st) {
    (void)st;
    vr_tenants t;
    vr_error err = {0};
    const char *good = "{\"tenants\": [{\"name\": \"acme\", \"api_key\": \"acme-secret-1\", \"max_prompt_tokens\": 100},"
                       " {\"name\": \"beta\", \"api_key\": \"beta-secret-2\"}]}";
    assert_int_equal(vr_tenants_parse(good, "t.json", &t, &err), VR_OK);
    assert_int_equal(t.n, 2);
    const vr_tenant *a = vr_tenants_authenticate(&t, "Bearer acme-secret-1");
    assert_non_null(a);
    assert_string_equal(a->name, "acme");
    assert_int_equal(a->max_prompt_tokens, 100);
    assert_string_equal(vr_tenants_authenticate(&t, "Bearer beta-secret-2")->name, "beta");
    assert_null(vr_tenants_authenticate(&t, "Bearer acme-secret-"));   /* a prefix is not the key */
    assert_null(vr_tenants_authenticate(&t, "Bearer acme-secret-12")); /* nor an extension */
    assert_null(vr_tenants_authenticate(&t, "acme-secret-1"));         /* the scheme is required */
    assert_null(vr_tenants_authenticate(&t, NULL));
    vr_tenants_free(&t);
    const char *bad[] = {"not json", "{}", "{\"tenants\": []}", "{\"tenants\": [{\"name\": \"a b\", \"api_key\": \"12345678\"}]}",
                         "{\"tenants\": [{\"name\": \"a\", \"api_key\": \"short\"}]}",
                         "{\"tenants\": [{\"name\": \"a\", \"api_key\": \"12345678\"}, {\"name\": \"b\", \"api_key\": \"12345678\"}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(vr_tenants_parse(bad[i], "t.json", &t, &err), VR_OK);
        assert_non_null(strstr(err.msg, "t.json"));
    }
}

static void test_session_record(void **st) {
    (void)st;
    vr_session_record r, back;
    memset(&r, 0, sizeof r);
    strcpy(r.tenant, "acme");
    strcpy(r.session, "abc123");
    r.committed_turn = 3;
    r.scan = 2;
    int32_t ids[] = {24281, 59, 33, -200, 11, 261, 1234};
    r.transcript = ids;
    r.n_transcript = 7;
    uint8_t img[] = {0x89, 'P', 'N', 'G', 0, 0, 7};
    r.image = img;
    r.image_len = sizeof img;
    r.fingerprint = 0xfedcba9876543210ULL;
    uint8_t *bytes = NULL;
    size_t n = 0;
    vr_error err = {0};
    assert_int_equal(vr_session_record_encode(&r, &bytes, &n, &err), VR_OK);
    assert_int_equal(vr_session_record_decode(bytes, n, &back, &err), VR_OK);
    assert_string_equal(back.session, "abc123");
    assert_int_equal(back.committed_turn, 3);
    assert_int_equal(back.scan, 2);
    assert_true(back.fingerprint == r.fingerprint);
    assert_int_equal(back.n_transcript, 7);
    assert_memory_equal(back.transcript, ids, sizeof ids);
    assert_int_equal(back.image_len, sizeof img);
    assert_memory_equal(back.image, img, sizeof img);
    vr_session_record_free(&back);
    free(bytes);
    /* integers beyond 15 significant digits come back exactly (cJSON would print
     * 6666666666666661 as 6.66666666666666e+15; found by libFuzzer) */
    r.committed_turn = 6666666666666661LL;
    r.created_ms = -9007199254740991LL;
    r.updated_ms = 9007199254740992LL; /* 2^53, the largest the decoder takes */
    assert_int_equal(vr_session_record_encode(&r, &bytes, &n, &err), VR_OK);
    assert_int_equal(vr_session_record_decode(bytes, n, &back, &err), VR_OK);
    assert_true(back.committed_turn == r.committed_turn);
    assert_true(back.created_ms == r.created_ms);
    assert_true(back.updated_ms == r.updated_ms);
    vr_session_record_free(&back);
    /* corruption: truncated, a flipped JSON byte, extra image bytes, no terminator */
    assert_int_not_equal(vr_session_record_decode(bytes, n - 1, &back, &err), VR_OK);
    assert_int_not_equal(vr_session_record_decode(bytes, 10, &back, &err), VR_OK);
    uint8_t *copy = malloc(n + 4);
    memcpy(copy, bytes, n);
    memset(copy + n, 0, 4);
    assert_int_not_equal(vr_session_record_decode(copy, n + 4, &back, &err), VR_OK);
    memcpy(copy, bytes, n);
    copy[1] = 'X';
    assert_int_not_equal(vr_session_record_decode(copy, n, &back, &err), VR_OK);
    assert_non_null(strstr(err.msg, "corrupt"));
    free(copy);
    free(bytes);
    /* numbers out of range or not integers are refused, never cast (libFuzzer + UBSan found
     * image_bytes 1e99 cast to size_t), and the fingerprint is the 16 hex digits encode writes */
    static const char *keys[] = {"committed_turn", "scan", "model_fingerprint", "image_bytes", "created_ms",
                                 "updated_ms", "transcript"};
    static const char *good[] = {"1", "0", "\"000000001234abcd\"", "0", "0", "0", "[1,-200]"};
    static const struct { int key; const char *value; } bad[] = {
        {3, "1e99"}, {3, "-0.5"}, {0, "1e300"}, {0, "1.5"}, {1, "1e10"}, {1, "3"}, {4, "-1e30"}, {5, "\"x\""},
        {2, "\"12zz\""}, {2, "\"00000000000000001\""}, {6, "[1,2.5]"}, {6, "[-201]"},
    };
    for (int k = -1; k < (int)(sizeof bad / sizeof bad[0]); k++) { /* k = -1: the valid record */
        char rec[512];
        size_t rn = (size_t)snprintf(rec, sizeof rec, "{\"tenant\":\"acme\",\"session\":\"s\"");
        for (int f = 0; f < 7; f++)
            rn += (size_t)snprintf(rec + rn, sizeof rec - rn, ",\"%s\":%s", keys[f],
                                   k >= 0 && bad[k].key == f ? bad[k].value : good[f]);
        rn += (size_t)snprintf(rec + rn, sizeof rec - rn, "}");
        vr_status got = vr_session_record_decode((const uint8_t *)rec, rn + 1, &back, &err);
        if (k < 0) {
            assert_int_equal(got, VR_OK);
            vr_session_record_free(&back);
            continue;
        }
        if (got != VR_ERR_FORMAT) fail_msg("accepted %s", rec);
        assert_non_null(strstr(err.msg, "corrupt"));
    }
}

/* Delivered features are used only while stage 0 is the worker they went to and they are young
 * enough that its inbox still holds them; inline features (or none) always. */
static void test_features_usable(void **st) {
    (void)st;
    vr_coordinator *c = calloc(1, sizeof *c);
    pthread_mutex_init(&c->cluster_mu, NULL);
    strcpy(c->workers[3].id, "host:1:stage0");
    c->workers[3].in_use = c->workers[3].alive = 1;
    strcpy(c->workers[5].id, "host:2:replacement");
    c->workers[5].in_use = c->workers[5].alive = 1;
    c->pipeline[0] = 3;
    c->n_stages = 1;
    c->pipeline_ok = 1;
    vr_image_features f;
    memset(&f, 0, sizeof f);
    assert_true(vr_cluster_features_usable(c, &f)); /* none */
    f.n_img = 577;
    f.data = malloc(4);
    assert_true(vr_cluster_features_usable(c, &f)); /* inline */
    vr_image_features_clear(&f);
    assert_null(f.data);
    f.n_img = 577;
    f.key = 42;
    f.at_ms = vr_now_ms();
    strcpy(f.stage0, "host:1:stage0");
    assert_true(vr_cluster_features_usable(c, &f));
    c->pipeline_ok = 0; /* being re-formed: stage 0 is still the same worker */
    assert_true(vr_cluster_features_usable(c, &f));
    c->pipeline_ok = 1;
    c->pipeline[0] = 5; /* another stage 0 now */
    assert_false(vr_cluster_features_usable(c, &f));
    c->pipeline[0] = 3;
    f.at_ms = vr_now_ms() - VR_FEATURES_TTL_MS / 2 - 1000; /* its inbox may drop them soon */
    assert_false(vr_cluster_features_usable(c, &f));
    pthread_mutex_destroy(&c->cluster_mu);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tenants), cmocka_unit_test(test_session_record),
                                       cmocka_unit_test(test_features_usable)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
