/* tests/unit/service/test_coordinator_parts.c — the coordinator's pure parts: tenants config
 * parsing and API-key authentication, and session records (round trip, strict refusal of
 * every kind of corruption). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "coordinator/session_record.h"
#include "coordinator/tenants.h"

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
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_tenants), cmocka_unit_test(test_session_record)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
