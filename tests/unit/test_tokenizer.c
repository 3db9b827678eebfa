/* tests/unit/test_tokenizer.c — the World tokenizer against fixtures/tokenizer.json (vocab
 * digest, probe ids, every encode/encode_bytes/decode case), UTF-8 helpers, edge cases, vocab
 * parse errors, and a throughput figure. Must not depend on the model or prompts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "common/mapped_file.h"
#include "model/tokenizer.h"
#include "tests/support/fixtures.h"
#include "tests/support/sha256.h"

static vr_tokenizer *g_tok;
static cJSON *g_json;

static const char *vocab_path(void) {
    static char path[4200];
    snprintf(path, sizeof path, "%s/rwkv_vocab_v20230424.txt", vrt_shared_dir());
    return path;
}

static vr_tokenizer *tok(void) {
    if (!g_tok) {
        vr_error err = {0};
        if (vr_tokenizer_load(vocab_path(), &g_tok, &err) != VR_OK) fail_msg("%s", err.msg);
    }
    return g_tok;
}

static cJSON *fixture(void) {
    if (!g_json) g_json = vrt_load_json("tokenizer.json");
    return g_json;
}

/* hex -> malloc'd bytes (at least 1 byte allocated). */
static uint8_t *unhex(const char *hex, size_t *n) {
    size_t len = strlen(hex);
    assert_int_equal(len % 2, 0);
    uint8_t *b = malloc(len / 2 + 1);
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        b[i] = (uint8_t)v;
    }
    *n = len / 2;
    return b;
}

static void assert_ids(const int32_t *got, int n_got, const cJSON *want, const char *what) {
    int n_want = 0;
    int32_t *w = vrt_json_ints(want, &n_want);
    if (n_got != n_want) fail_msg("%s: %d ids, expected %d", what, n_got, n_want);
    for (int i = 0; i < n_got; i++)
        if (got[i] != w[i]) fail_msg("%s: id[%d] = %d, expected %d", what, i, got[i], w[i]);
    free(w);
}

static void assert_decoded(const char *got, const uint8_t *want, size_t n, const char *what) {
    if (memcmp(got, want, n) != 0 || got[n] != 0) fail_msg("%s: decoded text differs", what);
}

/* ------------------------------------------------------------------ fixture facts */

static void test_vocab_facts(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(fixture(), "vocab");
    vr_tokenizer *t = tok();
    int n_vocab = vr_tokenizer_n_vocab(t);
    int count = 0, min_id = -1, max_id = -1;
    /* u32le(id) u32le(len) bytes, id ascending, hashed in one go */
    size_t cap = 1 << 20, used = 0;
    uint8_t *rec = malloc(cap);
    for (int id = 0; id < n_vocab + 10; id++) {
        size_t len = 0;
        const char *b = vr_tokenizer_token_bytes(t, id, &len);
        if (!b) {
            assert_int_equal(len, 0);
            continue;
        }
        count++;
        if (min_id < 0) min_id = id;
        max_id = id;
        if (used + 8 + len > cap) {
            cap *= 2;
            rec = realloc(rec, cap);
            assert_non_null(rec);
        }
        uint8_t hdr[8] = {(uint8_t)id, (uint8_t)(id >> 8), (uint8_t)(id >> 16), (uint8_t)(id >> 24),
                          (uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
        memcpy(rec + used, hdr, 8);
        memcpy(rec + used + 8, b, len);
        used += 8 + len;
    }
    assert_int_equal(count, cJSON_GetObjectItemCaseSensitive(v, "num_tokens")->valueint);
    assert_int_equal(min_id, cJSON_GetObjectItemCaseSensitive(v, "min_id")->valueint);
    assert_int_equal(max_id, cJSON_GetObjectItemCaseSensitive(v, "max_id")->valueint);
    assert_int_equal(n_vocab, max_id + 1);
    assert_null(vr_tokenizer_token_bytes(t, -1, NULL));
    assert_null(vr_tokenizer_token_bytes(t, 0, NULL));
    char hex[65];
    vrt_sha256_hex(rec, used, hex);
    free(rec);
    assert_string_equal(hex, cJSON_GetObjectItemCaseSensitive(v, "sha256_of_id_len_bytes")->valuestring);

    /* and the file itself */
    char *data = NULL;
    size_t size = 0;
    vr_error err = {0};
    assert_int_equal(vr_read_file(vocab_path(), (size_t)64 << 20, &data, &size, &err), VR_OK);
    vrt_sha256_hex(data, size, hex);
    free(data);
    assert_string_equal(hex, cJSON_GetObjectItemCaseSensitive(v, "file_sha256")->valuestring);
}

static void test_probes(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    const cJSON *probes = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(fixture(), "vocab"), "probe");
    const cJSON *p;
    int n = 0;
    cJSON_ArrayForEach(p, probes) {
        int id = cJSON_GetObjectItemCaseSensitive(p, "id")->valueint;
        size_t want_n = 0, got_n = 0;
        uint8_t *want = unhex(cJSON_GetObjectItemCaseSensitive(p, "bytes_hex")->valuestring, &want_n);
        const char *got = vr_tokenizer_token_bytes(tok(), id, &got_n);
        assert_non_null(got);
        if (got_n != want_n || memcmp(got, want, want_n) != 0) fail_msg("probe id %d: wrong bytes", id);
        free(want);
        n++;
    }
    assert_true(n >= 10);
}

static void test_encode_cases(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fixture(), "encode");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        char what[64];
        snprintf(what, sizeof what, "encode[%d]", n);
        size_t len = 0;
        uint8_t *text = unhex(cJSON_GetObjectItemCaseSensitive(c, "utf8_hex")->valuestring, &len);
        int32_t *ids = NULL;
        int n_ids = -1;
        vr_error err = {0};
        assert_int_equal(vr_tokenizer_encode(tok(), (const char *)text, len, &ids, &n_ids, &err), VR_OK);
        assert_ids(ids, n_ids, cJSON_GetObjectItemCaseSensitive(c, "ids"), what);
        char *bytes = NULL;
        size_t blen = 0;
        assert_int_equal(vr_tokenizer_decode_bytes(tok(), ids, n_ids, &bytes, &blen, &err), VR_OK);
        assert_int_equal(blen, len);
        assert_decoded(bytes, text, len, what);
        char *up = vr_tokenizer_decode_upstream(tok(), ids, n_ids);
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "roundtrip_ok"))) {
            assert_decoded(up, text, len, what);
        } else {
            assert_string_equal(up, "\xEF\xBF\xBD");
        }
        /* the JSON "decoded" string agrees (cJSON stops at a NUL, so compare up to it) */
        const char *dec = cJSON_GetObjectItemCaseSensitive(c, "decoded")->valuestring;
        assert_int_equal(strncmp(up, dec, strlen(dec)), 0);
        free(up);
        free(bytes);
        free(ids);
        free(text);
        n++;
    }
    assert_true(n >= 40);
}

static void test_encode_bytes_cases(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fixture(), "encode_bytes");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        char what[64];
        snprintf(what, sizeof what, "encode_bytes[%d]", n);
        size_t len = 0, dlen = 0;
        uint8_t *text = unhex(cJSON_GetObjectItemCaseSensitive(c, "bytes_hex")->valuestring, &len);
        uint8_t *dec = unhex(cJSON_GetObjectItemCaseSensitive(c, "decode_bytes_hex")->valuestring, &dlen);
        int32_t *ids = NULL;
        int n_ids = 0;
        vr_error err = {0};
        assert_int_equal(vr_tokenizer_encode(tok(), (const char *)text, len, &ids, &n_ids, &err), VR_OK);
        assert_ids(ids, n_ids, cJSON_GetObjectItemCaseSensitive(c, "ids"), what);
        char *bytes = NULL;
        size_t blen = 0;
        assert_int_equal(vr_tokenizer_decode_bytes(tok(), ids, n_ids, &bytes, &blen, &err), VR_OK);
        assert_int_equal(blen, dlen);
        assert_decoded(bytes, dec, dlen, what);
        char *up = vr_tokenizer_decode_upstream(tok(), ids, n_ids);
        const char *want = cJSON_GetObjectItemCaseSensitive(c, "decode")->valuestring;
        if (strcmp(want, "\xEF\xBF\xBD") == 0) {
            assert_false(vr_utf8_valid((const char *)dec, dlen));
            assert_string_equal(up, want);
        } else {
            assert_true(vr_utf8_valid((const char *)dec, dlen));
            assert_decoded(up, dec, dlen, what);
        }
        free(up);
        free(bytes);
        free(ids);
        free(text);
        free(dec);
        n++;
    }
    assert_true(n >= 3);
}

static void test_decode_cases(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fixture(), "decode");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, cases) {
        int n_ids = 0;
        int32_t *ids = vrt_json_ints(cJSON_GetObjectItemCaseSensitive(c, "ids"), &n_ids);
        char *up = vr_tokenizer_decode_upstream(tok(), ids, n_ids);
        assert_string_equal(up, cJSON_GetObjectItemCaseSensitive(c, "decoded")->valuestring);
        const cJSON *hex = cJSON_GetObjectItemCaseSensitive(c, "decoded_bytes_hex");
        char *bytes = NULL;
        size_t blen = 0;
        vr_error err = {0};
        vr_status st = vr_tokenizer_decode_bytes(tok(), ids, n_ids, &bytes, &blen, &err);
        if (cJSON_IsNull(hex)) {
            assert_int_equal(st, VR_ERR_INVALID);
            assert_null(bytes);
            assert_non_null(strstr(err.msg, "token id"));
        } else {
            size_t dlen = 0;
            uint8_t *dec = unhex(hex->valuestring, &dlen);
            assert_int_equal(st, VR_OK);
            assert_int_equal(blen, dlen);
            assert_decoded(bytes, dec, dlen, "decode");
            free(dec);
        }
        free(bytes);
        free(up);
        free(ids);
        n++;
    }
    assert_true(n >= 5);
}

/* ------------------------------------------------------------------ edge cases */

static void encode_roundtrip(const char *text, size_t len, int32_t **ids_out, int *n_out) {
    int32_t *ids = NULL;
    int n = -1;
    vr_error err = {0};
    assert_int_equal(vr_tokenizer_encode(tok(), text, len, &ids, &n, &err), VR_OK);
    char *bytes = NULL;
    size_t blen = 0;
    assert_int_equal(vr_tokenizer_decode_bytes(tok(), ids, n, &bytes, &blen, &err), VR_OK);
    assert_int_equal(blen, len);
    assert_memory_equal(bytes, text, len);
    free(bytes);
    if (ids_out) {
        *ids_out = ids;
        *n_out = n;
    } else {
        free(ids);
    }
}

static void test_edges(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    int32_t *ids = NULL;
    int n = 0;
    /* empty */
    encode_roundtrip("", 0, &ids, &n);
    assert_int_equal(n, 0);
    free(ids);
    char *up = vr_tokenizer_decode_upstream(tok(), NULL, 0);
    assert_string_equal(up, "");
    free(up);
    /* 130 spaces: the 128-space token, then the rest */
    char sp[130];
    memset(sp, ' ', sizeof sp);
    encode_roundtrip(sp, sizeof sp, &ids, &n);
    assert_int_equal(ids[0], 65529);
    assert_int_equal(n, 2);
    free(ids);
    /* embedded NUL bytes */
    const char nul[] = "a\0b\0\0c";
    encode_roundtrip(nul, sizeof nul - 1, &ids, &n);
    assert_int_equal(ids[1], 1); /* id 1 is the byte 00 */
    free(ids);
    /* every single byte */
    char all[256];
    for (int i = 0; i < 256; i++) all[i] = (char)i;
    encode_roundtrip(all, sizeof all, NULL, NULL);
    /* the text "<image>" is ordinary text */
    encode_roundtrip("<image>", 7, &ids, &n);
    for (int i = 0; i < n; i++) assert_true(ids[i] > 0);
    free(ids);
}

static void test_utf8(void **state) {
    (void)state;
    static const struct {
        const char *s;
        int valid;
    } cases[] = {
        {"", 1},
        {"abc", 1},
        {"\xC2\x80", 1},
        {"\xE4\xBD\xA0\xE5\xA5\xBD", 1},
        {"\xF0\x9F\x98\x80", 1},
        {"\xF4\x8F\xBF\xBF", 1},        /* U+10FFFF */
        {"\xF4\x90\x80\x80", 0},        /* > U+10FFFF */
        {"\xC0\xAF", 0},                /* overlong */
        {"\xC1\xBF", 0},                /* overlong */
        {"\xE0\x80\xAF", 0},            /* overlong */
        {"\xF0\x80\x80\xAF", 0},        /* overlong */
        {"\xED\xA0\x80", 0},            /* surrogate */
        {"\xED\x9F\xBF", 1},            /* U+D7FF */
        {"\xEE\x80\x80", 1},            /* U+E000 */
        {"\x80", 0},                    /* lone continuation */
        {"\xE4\xBD", 0},                /* truncated */
        {"\xFF", 0},
        {"\xF5\x80\x80\x80", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (vr_utf8_valid(cases[i].s, strlen(cases[i].s)) != cases[i].valid)
            fail_msg("vr_utf8_valid case %zu", i);
    /* complete prefix: hold back a trailing incomplete (but so far valid) sequence only */
    assert_int_equal(vr_utf8_complete_prefix("ab", 2), 2);
    assert_int_equal(vr_utf8_complete_prefix("a\xE4\xBD", 3), 1);
    assert_int_equal(vr_utf8_complete_prefix("a\xE4", 2), 1);
    assert_int_equal(vr_utf8_complete_prefix("a\xE4\xBD\xA0", 4), 4);
    assert_int_equal(vr_utf8_complete_prefix("\xF0\x9F\x98", 3), 0);
    assert_int_equal(vr_utf8_complete_prefix("\xF0\x9F\x98\x80", 4), 4);
    assert_int_equal(vr_utf8_complete_prefix("a\x80", 2), 2);      /* stray continuation: never completes */
    assert_int_equal(vr_utf8_complete_prefix("a\xE0\x80", 3), 3);  /* already invalid */
    assert_int_equal(vr_utf8_complete_prefix("a\xFF", 2), 2);
    assert_int_equal(vr_utf8_complete_prefix("", 0), 0);
}

/* ------------------------------------------------------------------ vocab parse errors */

/* A minimal valid vocab (all 256 single bytes, ids 1..256) plus extra lines. */
static char *tiny_vocab(const char *extra, size_t *size) {
    size_t cap = 256 * 24 + strlen(extra) + 1;
    char *s = malloc(cap);
    size_t n = 0;
    for (int b = 0; b < 256; b++) n += (size_t)snprintf(s + n, cap - n, "%d b'\\x%02x' 1\n", b + 1, b);
    n += (size_t)snprintf(s + n, cap - n, "%s", extra);
    *size = n;
    return s;
}

static void expect_bad(const char *extra, const char *needle) {
    size_t size = 0;
    char *v = tiny_vocab(extra, &size);
    vr_tokenizer *t = NULL;
    vr_error err = {0};
    vr_status st = vr_tokenizer_load_memory(v, size, "bad.txt", &t, &err);
    if (st != VR_ERR_FORMAT) fail_msg("extra line %s: status %d, expected VR_ERR_FORMAT", extra, st);
    assert_null(t);
    if (!strstr(err.msg, needle)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
    free(v);
}

static void test_vocab_errors(void **state) {
    (void)state;
    expect_bad("257 'ab'\n", "bad.txt:257:");                    /* missing length */
    expect_bad("257 'ab' 3\n", "bad.txt:257:");                  /* wrong length */
    expect_bad("257 'ab' 3\n", "line says 3");
    expect_bad("257 'a\\qb' 3\n", "escape");                     /* bad escape */
    expect_bad("257 'a\\x4' 2\n", "\\x");                        /* short \x */
    expect_bad("257 'ab 2\n", "bad.txt:257:");                   /* unterminated */
    expect_bad("257 b'\\u0041' 1\n", "bytes literal");           /* \u in bytes */
    expect_bad("257 '\\ud800' 3\n", "surrogate");                /* lone surrogate */
    expect_bad("'ab' 2\n", "bad.txt:257: expected");             /* missing id */
    expect_bad("257 '' 0\n", "empty");
    expect_bad("1 'ab' 2\n", "appears twice");
    expect_bad("257 ab 2\n", "bad.txt:257:");
    expect_bad("257 'ab' 2 x\n", "bad.txt:257:");
    expect_bad("257 'a\xff' 2\n", "UTF-8");

    /* a byte without a single-byte token */
    vr_tokenizer *t = NULL;
    vr_error err = {0};
    const char only_a[] = "1 'a' 1\n";
    assert_int_equal(vr_tokenizer_load_memory(only_a, sizeof only_a - 1, "x.txt", &t, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "0x00"));
    assert_int_equal(vr_tokenizer_load_memory("", 0, "x.txt", &t, &err), VR_ERR_FORMAT);
    assert_int_equal(vr_tokenizer_load("/nonexistent/vocab.txt", &t, &err), VR_ERR_IO);
    assert_null(t);
}

static void test_tiny_vocab_escapes(void **state) {
    (void)state;
    size_t size = 0;
    /* str escapes are code points (\x80 -> C2 80); bytes escapes are raw; CRLF line ends ok */
    char *v = tiny_vocab("300 '\\x80' 2\r\n301 \"it's\" 4\n302 '\\u4f60\\U0001F600' 7\n\n303 b'\\xe4\\xbd' 2\n"
                         "304 '\\\\\\'\\n\\t\\r' 5\n305 '\xe4\xbd\xa0 x' 5\n",
                         &size);
    vr_tokenizer *t = NULL;
    vr_error err = {0};
    if (vr_tokenizer_load_memory(v, size, "tiny.txt", &t, &err) != VR_OK) fail_msg("%s", err.msg);
    assert_int_equal(vr_tokenizer_n_vocab(t), 306);
    size_t n = 0;
    const char *b = vr_tokenizer_token_bytes(t, 300, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(b, "\xC2\x80", 2);
    b = vr_tokenizer_token_bytes(t, 301, &n);
    assert_memory_equal(b, "it's", 4);
    b = vr_tokenizer_token_bytes(t, 302, &n);
    assert_int_equal(n, 7);
    assert_memory_equal(b, "\xE4\xBD\xA0\xF0\x9F\x98\x80", 7);
    b = vr_tokenizer_token_bytes(t, 303, &n);
    assert_memory_equal(b, "\xE4\xBD", 2);
    b = vr_tokenizer_token_bytes(t, 304, &n);
    assert_memory_equal(b, "\\'\n\t\r", 5);
    assert_null(vr_tokenizer_token_bytes(t, 257, &n));
    /* greedy longest match with the tiny vocab */
    int32_t *ids = NULL;
    int n_ids = 0;
    const char text[] = "\xE4\xBD\xA0\xF0\x9F\x98\x80\xE4\xBD\xA0 xy";
    assert_int_equal(vr_tokenizer_encode(t, text, sizeof text - 1, &ids, &n_ids, &err), VR_OK);
    assert_int_equal(n_ids, 3);
    assert_int_equal(ids[0], 302);
    assert_int_equal(ids[1], 305);
    assert_int_equal(ids[2], 'y' + 1);
    free(ids);
    free(v);
    vr_tokenizer_free(t);
    vr_tokenizer_free(NULL);
}

/* ------------------------------------------------------------------ throughput */

static void test_throughput(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    /* ~8 MB of mixed text built from the fixture strings */
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(fixture(), "encode");
    size_t cap = (size_t)8 << 20, n = 0;
    char *buf = malloc(cap);
    while (n < cap) {
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            size_t len = 0;
            uint8_t *t = unhex(cJSON_GetObjectItemCaseSensitive(c, "utf8_hex")->valuestring, &len);
            if (n + len > cap) len = cap - n;
            memcpy(buf + n, t, len);
            n += len;
            free(t);
            if (n == cap) break;
        }
    }
    int32_t *ids = NULL;
    int n_ids = 0;
    vr_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(vr_tokenizer_encode(tok(), buf, n, &ids, &n_ids, &err), VR_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("tokenizer encode: %.1f MB in %.3f s = %.1f MB/s (%d tokens)\n", (double)n / 1e6, s,
           (double)n / 1e6 / s, n_ids);
    char *bytes = NULL;
    size_t blen = 0;
    assert_int_equal(vr_tokenizer_decode_bytes(tok(), ids, n_ids, &bytes, &blen, &err), VR_OK);
    assert_int_equal(blen, n);
    assert_memory_equal(bytes, buf, n);
    free(bytes);
    free(ids);
    free(buf);
}

static int teardown(void **state) {
    (void)state;
    vr_tokenizer_free(g_tok);
    g_tok = NULL;
    cJSON_Delete(g_json);
    g_json = NULL;
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_facts),      cmocka_unit_test(test_probes),
        cmocka_unit_test(test_encode_cases),     cmocka_unit_test(test_encode_bytes_cases),
        cmocka_unit_test(test_decode_cases),     cmocka_unit_test(test_edges),
        cmocka_unit_test(test_utf8),             cmocka_unit_test(test_vocab_errors),
        cmocka_unit_test(test_tiny_vocab_escapes), cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
