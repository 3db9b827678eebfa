/* tests/unit/test_pytext.c — common/pytext against shared/eval-fixtures/tables.json (every
 * whitespace code point, every \d range, every lower() change, over all of Unicode) and against
 * values Python 3.11 printed (float repr, round, %.2f, repr(str), json.dumps). No model needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <cmocka.h>

#include "common/mapped_file.h"
#include "common/pytext.h"
#include "tests/support/fixtures.h"

static cJSON *load_tables(void) {
    char path[4300];
    snprintf(path, sizeof path, "%s/eval-fixtures/tables.json", vrt_shared_dir());
    char *text = NULL;
    vr_error err = {0};
    if (vr_read_file(path, (size_t)1 << 28, &text, NULL, &err) != VR_OK) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) fail_msg("%s: invalid JSON", path);
    return j;
}

static void test_isspace_table(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *t = load_tables();
    const cJSON *ws = cJSON_GetObjectItemCaseSensitive(t, "python_whitespace_str_isspace");
    assert_true(cJSON_IsArray(ws));
    static unsigned char want[0x110000];
    memset(want, 0, sizeof want);
    const cJSON *c;
    cJSON_ArrayForEach(c, ws) want[(uint32_t)c->valuedouble] = 1;
    for (uint32_t cp = 0; cp < 0x110000; cp++)
        if (vr_py_isspace(cp) != want[cp]) fail_msg("isspace(U+%04X) = %d", cp, vr_py_isspace(cp));
    assert_false(vr_py_isspace(VR_UTF8_BAD(0x85)));
    cJSON_Delete(t);
}

static void test_decimal_table(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *t = load_tables();
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(t, "python_re_backslash_d_ranges");
    static unsigned char want[0x110000];
    memset(want, 0, sizeof want);
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, dr) {
        uint32_t a = (uint32_t)cJSON_GetArrayItem(r, 0)->valuedouble;
        uint32_t b = (uint32_t)cJSON_GetArrayItem(r, 1)->valuedouble;
        for (uint32_t cp = a; cp <= b; cp++) want[cp] = 1;
        n++;
    }
    assert_true(n > 10);
    for (uint32_t cp = 0; cp < 0x110000; cp++)
        if (vr_py_isdecimal(cp) != want[cp]) fail_msg("isdecimal(U+%04X) = %d", cp, vr_py_isdecimal(cp));
    cJSON_Delete(t);
}

static void test_lower_table(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *t = load_tables();
    const cJSON *lc = cJSON_GetObjectItemCaseSensitive(t, "python_str_lower_changes");
    static uint32_t map[0x110000][3];
    static unsigned char mapn[0x110000];
    memset(mapn, 0, sizeof mapn);
    vr_strbuf in = {0}, want = {0};
    const cJSON *e;
    cJSON_ArrayForEach(e, lc) {
        uint32_t cp = (uint32_t)cJSON_GetArrayItem(e, 0)->valuedouble;
        const char *s = cJSON_GetArrayItem(e, 1)->valuestring;
        size_t n = strlen(s), i = 0, k = 0;
        while (i < n && k < 3) map[cp][k++] = vr_utf8_decode_next(s, n, &i);
        mapn[cp] = (unsigned char)k;
        vr_strbuf_append_cp(&in, cp);
        vr_strbuf_append_str(&in, "x ");
        vr_strbuf_append_str(&want, s);
        vr_strbuf_append_str(&want, "x ");
    }
    for (uint32_t cp = 0; cp < 0x110000; cp++) {
        uint32_t out[3];
        size_t k = vr_py_lower_cp(cp, out);
        if (mapn[cp]) {
            if (k != mapn[cp]) fail_msg("lower(U+%04X): %zu code points, expected %u", cp, k, mapn[cp]);
            for (size_t j = 0; j < k; j++)
                if (out[j] != map[cp][j]) fail_msg("lower(U+%04X)[%zu] = U+%04X", cp, j, out[j]);
        } else if (k != 1 || out[0] != cp) {
            fail_msg("lower(U+%04X) changed it; tables.json says it does not", cp);
        }
    }
    size_t on = 0;
    char *got = vr_py_lower(in.p, in.n, &on);
    assert_non_null(got);
    assert_int_equal(on, want.n);
    assert_memory_equal(got, want.p, on);
    free(got);
    /* U+0130 becomes two code points; invalid bytes pass through. */
    got = vr_py_lower("\xC4\xB0X\xFF\xC3", 5, &on);
    assert_int_equal(on, 6);
    assert_memory_equal(got, "i\xCC\x87x\xFF\xC3", 6);
    free(got);
    /* Final_Sigma: U+03A3 lowers to U+03C2 at the end of a word (values from Python 3.11). */
    static const char *const sigma[][2] = {
        {"\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82"},
        {"\xCE\xA3", "\xCF\x83"},
        {"A\xCE\xA3.", "a\xCF\x82."},
        {"A\xCE\xA3'b", "a\xCF\x83'b"},
        {"A'\xCE\xA3", "a'\xCF\x82"},
        {"\xCE\xA3\xCE\x91 1\xCE\xA3", "\xCF\x83\xCE\xB1 1\xCF\x83"},
    };
    for (size_t k = 0; k < sizeof sigma / sizeof sigma[0]; k++) {
        got = vr_py_lower(sigma[k][0], strlen(sigma[k][0]), NULL);
        assert_string_equal(got, sigma[k][1]);
        free(got);
    }
    vr_strbuf_free(&in);
    vr_strbuf_free(&want);
    cJSON_Delete(t);
}

static void test_utf8(void **state) {
    (void)state;
    const char s[] = "a\xC3\xA9\xE2\x80\xA8\xF0\x9F\x98\x80\xC0\xAF\xED\xA0\x80\xE2\x82";
    size_t n = sizeof s - 1, i = 0;
    uint32_t want[] = {'a', 0xE9, 0x2028, 0x1F600, VR_UTF8_BAD(0xC0), VR_UTF8_BAD(0xAF),
                       VR_UTF8_BAD(0xED), VR_UTF8_BAD(0xA0), VR_UTF8_BAD(0x80),
                       VR_UTF8_BAD(0xE2), VR_UTF8_BAD(0x82)};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        assert_true(i < n);
        uint32_t cp = vr_utf8_decode_next(s, n, &i);
        if (cp != want[k]) fail_msg("code point %zu: %X, expected %X", k, cp, want[k]);
    }
    assert_int_equal(i, n);
    assert_int_equal(vr_utf8_count(s, n), sizeof want / sizeof want[0]);
    vr_strbuf b = {0};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) vr_strbuf_append_cp(&b, want[k]);
    assert_int_equal(b.n, n);
    assert_memory_equal(b.p, s, n);
    vr_strbuf_free(&b);
}

static void test_strip_split(void **state) {
    (void)state;
    /* "\u3000 a b\u00a0\n" */
    const char s[] = "\xE3\x80\x80 a  b\xC2\xA0\n";
    size_t a = 0, b = 0;
    vr_py_strip(s, sizeof s - 1, &a, &b);
    assert_int_equal(a, 4);
    assert_int_equal(b, 8);
    vr_py_strip(" \t\n", 3, &a, &b);
    assert_int_equal(a, b);
    assert_int_equal(vr_py_rstrip_chars("yes...", 6, "."), 3);
    assert_int_equal(vr_py_rstrip_chars("...", 3, "."), 0);
    assert_int_equal(vr_py_rstrip_chars("a. ", 3, "."), 3);
    assert_int_equal(vr_py_rstrip_chars("a  ", 3, NULL), 1);
    assert_int_equal(vr_py_lstrip_chars("..a", 3, "."), 2);

    vr_span *sp = NULL;
    size_t cnt = 0;
    vr_error err = {0};
    assert_int_equal(vr_py_split_ws(s, sizeof s - 1, &sp, &cnt, &err), VR_OK);
    assert_int_equal(cnt, 2);
    assert_int_equal(sp[0].off, 4);
    assert_int_equal(sp[0].len, 1);
    assert_int_equal(sp[1].off, 7);
    free(sp);
    assert_int_equal(vr_py_split_ws(" \n ", 3, &sp, &cnt, &err), VR_OK);
    assert_int_equal(cnt, 0);
    free(sp);
    assert_int_equal(vr_py_split_char(" a  b\n", 6, ' ', &sp, &cnt, &err), VR_OK);
    assert_int_equal(cnt, 4); /* '', 'a', '', 'b\n' */
    assert_int_equal(sp[0].len, 0);
    assert_int_equal(sp[1].off, 1);
    assert_int_equal(sp[2].len, 0);
    assert_int_equal(sp[3].len, 2);
    free(sp);
    assert_int_equal(vr_py_split_char("", 0, ' ', &sp, &cnt, &err), VR_OK);
    assert_int_equal(cnt, 1);
    free(sp);
}

static void check_collapse(const char *in, const char *want) {
    vr_strbuf b = {0};
    vr_strbuf_append(&b, "", 0);
    assert_int_equal(vr_py_collapse_newlines(&b, in, strlen(in)), VR_OK);
    assert_string_equal(b.p, want);
    vr_strbuf_free(&b);
}

static void test_collapse_replace(void **state) {
    (void)state;
    check_collapse("a\n\nb", "a\nb");
    check_collapse("a\n \xE3\x80\x80\n\t\nb", "a\nb");
    check_collapse("a\n  b\n", "a\n  b\n");
    check_collapse("a\n \n  b", "a\n  b");
    check_collapse("\n\n\n", "\n");
    check_collapse("a\n\xC2\xA0x\n\n", "a\n\xC2\xA0x\n");

    vr_strbuf b = {0};
    vr_str_replace_all(&b, "aXbXXc", 6, "X", 1, "--", 2);
    assert_string_equal(b.p, "a--b----c");
    vr_strbuf_free(&b);
    vr_str_replace_all(&b, "aaa", 3, "aa", 2, "b", 1);
    assert_string_equal(b.p, "ba");
    vr_strbuf_free(&b);
    vr_py_replace_chars(&b, "a,b?c\xC3\xA9", 7, ",?\xC3\xA9", "");
    assert_string_equal(b.p, "abc");
    vr_strbuf_free(&b);
    assert_int_equal(vr_str_find("abcabc", 6, 1, "abc", 3), 3);
    assert_int_equal(vr_str_find("abc", 3, 0, "abcd", 4), -1);
    vr_strbuf_printf(&b, "%s-%d-%0300d", "x", 5, 7);
    assert_int_equal(b.n, 4 + 300);
    size_t n = 0;
    char *t = vr_strbuf_take(&b, &n);
    assert_int_equal(n, 304);
    assert_null(b.p);
    free(t);
}

static void test_float_repr(void **state) {
    (void)state;
    static const struct {
        double x;
        const char *s;
    } cases[] = {
        {1.0, "1.0"}, {0.1 + 0.2, "0.30000000000000004"}, {0.6000000000000001, "0.6000000000000001"},
        {0.2 + 0.4, "0.6000000000000001"}, {1e-07, "1e-07"}, {1e+16, "1e+16"},
        {1000000000000000.0, "1000000000000000.0"}, {1.2345678901234568e+17, "1.2345678901234568e+17"},
        {5e-324, "5e-324"}, {1.7976931348623157e+308, "1.7976931348623157e+308"}, {-0.0, "-0.0"},
        {0.0, "0.0"}, {0.0001, "0.0001"}, {1e-05, "1e-05"}, {100.0, "100.0"}, {67.5, "67.5"},
        {200.0 / 3, "66.66666666666667"}, {2.0 / 3, "0.6666666666666666"},
        {1.0 / 3 * 100, "33.33333333333333"}, {1e+23, "1e+23"}, {1e+22, "1e+22"},
        {1.5e-05, "1.5e-05"}, {-2.5e-10, "-2.5e-10"}, {12345678.9, "12345678.9"},
        {INFINITY, "inf"}, {-INFINITY, "-inf"}, {NAN, "nan"}, {1300.0, "1300.0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        char buf[VR_PY_REPR_MAX];
        int n = vr_py_float_repr(cases[k].x, buf);
        if (strcmp(buf, cases[k].s) != 0) fail_msg("repr(%.17g) = %s, expected %s", cases[k].x, buf, cases[k].s);
        assert_int_equal(n, (int)strlen(buf));
    }
}

static void test_round_fixed(void **state) {
    (void)state;
    static const struct {
        double x;
        int nd;
        double want;
    } cases[] = {
        {2.675, 2, 2.67}, {0.125, 2, 0.12}, {0.375, 2, 0.38}, {2.5, 0, 2.0}, {3.5, 0, 4.0},
        {1.005, 2, 1.0}, {-0.001, 2, -0.0}, {25.0, -1, 20.0}, {35.0, -1, 40.0}, {25.1, -1, 30.0},
        {55.0, -2, 100.0}, {-150.0, -2, -200.0}, {949.0, -3, 1000.0}, {450.0, -3, 0.0},
        {500.0, -3, 0.0}, {66.66666666666667, 2, 66.67}, {0.5, 0, 0.0}, {1.5, 0, 2.0},
        {-2.5, 0, -2.0}, {1e+300, -299, 1e+300}, {123.456, 1, 123.5}, {0.045, 2, 0.04},
        {77.77777777777777, 2, 77.78},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double got = vr_py_round(cases[k].x, cases[k].nd);
        if (got != cases[k].want || signbit(got) != signbit(cases[k].want))
            fail_msg("round(%.17g, %d) = %.17g, expected %.17g", cases[k].x, cases[k].nd, got, cases[k].want);
    }
    assert_true(isinf(vr_py_round(INFINITY, 2)));
    static const struct {
        double x;
        const char *s;
    } fx[] = {{2.675, "2.67"}, {0.125, "0.12"}, {67.5, "67.50"}, {0.005, "0.01"}, {1.005, "1.00"},
              {-0.0, "-0.00"}, {NAN, "nan"}, {-NAN, "nan"}, {INFINITY, "inf"}, {-INFINITY, "-inf"}};
    for (size_t k = 0; k < sizeof fx / sizeof fx[0]; k++) {
        char buf[400];
        vr_py_format_fixed(fx[k].x, 2, buf, sizeof buf);
        assert_string_equal(buf, fx[k].s);
        vr_strbuf b = {0};
        vr_py_append_fixed(&b, fx[k].x, 2);
        assert_string_equal(b.p, fx[k].s);
        vr_strbuf_free(&b);
    }
}

static void check_repr(const char *in, const char *want) {
    vr_strbuf b = {0};
    assert_int_equal(vr_py_repr_str(&b, in, strlen(in)), VR_OK);
    assert_string_equal(b.p, want);
    vr_strbuf_free(&b);
}

static void check_json(const char *in, int ascii, const char *want) {
    vr_strbuf b = {0};
    assert_int_equal(vr_py_json_str(&b, in, strlen(in), ascii), VR_OK);
    assert_string_equal(b.p, want);
    vr_strbuf_free(&b);
}

static void test_repr_json(void **state) {
    (void)state;
    /* Expected texts printed by Python 3.11 repr() / json.dumps(). */
    check_repr("it's", "\"it's\"");
    check_repr("it's \"x\"", "'it\\'s \"x\"'");
    check_repr("a\nb\t\\", "'a\\nb\\t\\\\'");
    check_repr("caf\xC3\xA9 \xEF\xBF\xBD", "'caf\xC3\xA9 \xEF\xBF\xBD'");
    check_repr("\xE2\x80\x8B\x7F\xC2\xA0\xE3\x80\x80", "'\\u200b\\x7f\\xa0\\u3000'");
    check_repr("\xF0\x9F\x98\x80\xEE\x80\x80\xF3\xA0\x80\x81", "'\xF0\x9F\x98\x80\\ue000\\U000e0001'");
    check_repr("\x01\r", "'\\x01\\r'");
    check_json("caf\xC3\xA9 \"q\" \\ \x7f\n\x01", 1, "\"caf\\u00e9 \\\"q\\\" \\\\ \\u007f\\n\\u0001\"");
    check_json("\xF0\x9F\x98\x80\xEF\xBF\xBD", 1, "\"\\ud83d\\ude00\\ufffd\"");
    check_json("caf\xC3\xA9\x7f\xE2\x80\xA8\t", 0, "\"caf\xC3\xA9\x7f\xE2\x80\xA8\\t\"");

    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", 3);
    cJSON_AddItemToObject(o, "f", cJSON_CreateRaw("100.0"));
    cJSON_AddNumberToObject(o, "g", 0.6000000000000001);
    cJSON *arr = cJSON_AddArrayToObject(o, "l");
    cJSON_AddItemToArray(arr, cJSON_CreateString("\xC3\xA9"));
    cJSON_AddItemToArray(arr, cJSON_CreateNull());
    cJSON_AddArrayToObject(o, "e");
    cJSON_AddObjectToObject(o, "d");
    cJSON_AddTrueToObject(o, "t");
    vr_strbuf b = {0};
    vr_py_json_dump(&b, o, -1, 1);
    assert_string_equal(b.p, "{\"n\": 3, \"f\": 100.0, \"g\": 0.6000000000000001, \"l\": [\"\\u00e9\", null], "
                             "\"e\": [], \"d\": {}, \"t\": true}");
    vr_strbuf_free(&b);
    vr_py_json_dump(&b, o, 2, 1);
    assert_string_equal(b.p, "{\n  \"n\": 3,\n  \"f\": 100.0,\n  \"g\": 0.6000000000000001,\n  \"l\": [\n"
                             "    \"\\u00e9\",\n    null\n  ],\n  \"e\": [],\n  \"d\": {},\n  \"t\": true\n}");
    vr_strbuf_free(&b);
    cJSON_Delete(o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isspace_table),    cmocka_unit_test(test_decimal_table),
        cmocka_unit_test(test_lower_table),      cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_strip_split),      cmocka_unit_test(test_collapse_replace),
        cmocka_unit_test(test_float_repr),       cmocka_unit_test(test_round_fixed),
        cmocka_unit_test(test_repr_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
