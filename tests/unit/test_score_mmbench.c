/* tests/unit/test_score_mmbench.c — MMBench / MMBench-CN conversion against
 * shared/eval-fixtures/{mmbench,mmbench_cn}: the upload table (expected.json upload_table) from
 * the report, from the written JSON table and from the cells of the written .xlsx read back;
 * the circular groups and letter extraction of the local (not upstream) circular evaluation;
 * and the crash cases (a missing dropped column) plus inputs an .xlsx cannot hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zlib.h>

#include "common/mapped_file.h"
#include "eval/score.h"
#include "model/zip_reader.h"
#include "tests/support/fixtures.h"

static char g_tmp[256];

static const char *tmpdir(void) {
    if (!g_tmp[0]) {
        snprintf(g_tmp, sizeof g_tmp, "/tmp/vrwkv_test_mmbench_XXXXXX");
        if (!mkdtemp(g_tmp)) fail_msg("mkdtemp failed");
    }
    return g_tmp;
}

static void write_text(const char *path, const char *text) {
    vr_error err = {0};
    if (vr_score_write_file(path, text, strlen(text), &err) != VR_OK) fail_msg("%s", err.msg);
}

static cJSON *load_eval_json(const char *rel) {
    char path[8300];
    snprintf(path, sizeof path, "%s/eval-fixtures/%s", vrt_shared_dir(), rel);
    cJSON *j = NULL;
    vr_error err = {0};
    if (vr_score_read_json(path, &j, &err) != VR_OK) fail_msg("%s", err.msg);
    return j;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) fail_msg("fixture field %s missing", k);
    return v->valuestring;
}

/* Same values and same JSON types (a string "4" is not the number 4). */
static void compare_table(const cJSON *got, const cJSON *want, const char *what) {
    if (cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
        fail_msg("%s: %d rows, expected %d", what, cJSON_GetArraySize(got), cJSON_GetArraySize(want));
    for (int r = 0; r < cJSON_GetArraySize(want); r++) {
        const cJSON *gr = cJSON_GetArrayItem(got, r), *wr = cJSON_GetArrayItem(want, r);
        assert_int_equal(cJSON_GetArraySize(gr), cJSON_GetArraySize(wr));
        for (int c = 0; c < cJSON_GetArraySize(wr); c++) {
            const cJSON *g = cJSON_GetArrayItem(gr, c), *w = cJSON_GetArrayItem(wr, c);
            if (!cJSON_Compare(g, w, 1) || (g->type & 0xFF) != (w->type & 0xFF)) {
                char *a = cJSON_PrintUnformatted(g), *b = cJSON_PrintUnformatted(w);
                fail_msg("%s: row %d col %d is %s, expected %s", what, r, c, a, b);
            }
        }
    }
}

/* ---- a tiny reader for the sheet we write: rows of <c> cells, inline strings ---- */

static char *xml_unescape(const char *s, size_t n) {
    char *o = malloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '&') {
            const char *semi = memchr(s + i, ';', n - i);
            assert_non_null(semi);
            size_t len = (size_t)(semi - (s + i));
            if (len == 4 && !memcmp(s + i, "&amp", 4)) o[k++] = '&';
            else if (len == 3 && !memcmp(s + i, "&lt", 3)) o[k++] = '<';
            else if (len == 3 && !memcmp(s + i, "&gt", 3)) o[k++] = '>';
            else if (s[i + 1] == '#') {
                unsigned long cp = strtoul(s + i + 2, NULL, 10);
                assert_true(cp < 0x80);
                o[k++] = (char)cp;
            } else fail_msg("unknown entity");
            i += len + 1;
        } else {
            o[k++] = s[i++];
        }
    }
    o[k] = 0;
    return o;
}

static cJSON *read_sheet(const char *xml, size_t n) {
    cJSON *table = cJSON_CreateArray();
    const char *p = xml, *end = xml + n;
    while ((p = strstr(p, "<row ")) && p < end) {
        const char *row_end = strstr(p, "</row>");
        assert_non_null(row_end);
        cJSON *row = cJSON_CreateArray();
        const char *c = p;
        while ((c = strstr(c, "<c ")) && c < row_end) {
            const char *gt = strchr(c, '>');
            const char *ce = strstr(c, "</c>");
            assert_non_null(ce);
            char attrs[256];
            size_t al = (size_t)(gt - c);
            assert_true(al < sizeof attrs);
            memcpy(attrs, c, al);
            attrs[al] = 0;
            const char *body = gt + 1;
            if (strstr(attrs, "t=\"n\"")) {
                const char *v = strstr(body, "<v>");
                cJSON_AddItemToArray(row, cJSON_CreateNumber(strtod(v + 3, NULL)));
            } else if (strstr(attrs, "t=\"b\"")) {
                const char *v = strstr(body, "<v>");
                cJSON_AddItemToArray(row, cJSON_CreateBool(v[3] == '1'));
            } else if (strstr(attrs, "t=\"inlineStr\"")) {
                const char *t = strstr(body, "<t");
                if (!t || t > ce) {
                    cJSON_AddItemToArray(row, cJSON_CreateNull());
                } else {
                    const char *ts = strchr(t, '>') + 1, *te = strstr(ts, "</t>");
                    char *s = xml_unescape(ts, (size_t)(te - ts));
                    cJSON_AddItemToArray(row, cJSON_CreateString(s));
                    free(s);
                }
            } else {
                fail_msg("unexpected cell %s", attrs);
            }
            c = ce + 4;
        }
        cJSON_AddItemToArray(table, row);
        p = row_end + 6;
    }
    return table;
}

static void check_xlsx(const char *path, const cJSON *want) {
    char *data = NULL;
    size_t n = 0;
    vr_error err = {0};
    if (vr_read_file(path, (size_t)1 << 30, &data, &n, &err) != VR_OK) fail_msg("%s", err.msg);
    vr_zip zip;
    if (vr_zip_open((const uint8_t *)data, n, path, &zip, &err) != VR_OK) fail_msg("%s", err.msg);
    static const char *const parts[] = {"[Content_Types].xml", "_rels/.rels", "xl/workbook.xml",
                                        "xl/_rels/workbook.xml.rels", "xl/styles.xml", "xl/worksheets/sheet1.xml"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        const vr_zip_member *m = vr_zip_find(&zip, parts[i], strlen(parts[i]));
        if (!m) fail_msg("%s: no %s", path, parts[i]);
        uLong crc = crc32(crc32(0L, Z_NULL, 0), m->data, (uInt)m->size);
        assert_int_equal(crc, m->crc32);
    }
    const vr_zip_member *wb = vr_zip_find(&zip, "xl/workbook.xml", 15);
    char *wbx = strndup((const char *)wb->data, (size_t)wb->size);
    assert_non_null(strstr(wbx, "name=\"Sheet1\""));
    free(wbx);
    const vr_zip_member *sh = vr_zip_find(&zip, "xl/worksheets/sheet1.xml", 24);
    char *xml = strndup((const char *)sh->data, (size_t)sh->size);
    cJSON *table = read_sheet(xml, strlen(xml));
    compare_table(table, want, "xlsx sheet");
    cJSON_Delete(table);
    free(xml);
    vr_zip_close(&zip);
    free(data);
}

static void check_bench(const char *bench) {
    char rel[256], input[8300], adir[8400], upload[512];
    snprintf(rel, sizeof rel, "%s/expected.json", bench);
    cJSON *j = load_eval_json(rel);
    snprintf(input, sizeof input, "%s/eval-fixtures/%s/input", vrt_shared_dir(), bench);
    const cJSON *argv = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "command"), "argv");
    /* argv: python script --annotation-file A --result-dir R --upload-dir U --experiment E */
    const char *ann = cJSON_GetArrayItem(argv, 3)->valuestring, *rdir = cJSON_GetArrayItem(argv, 5)->valuestring;
    const char *exp = cJSON_GetArrayItem(argv, 9)->valuestring;
    assert_int_equal(strncmp(ann, "$eval_dir/", 10), 0);
    char annp[8400], rdirp[8400];
    snprintf(annp, sizeof annp, "%s/%s", input, ann + 10);
    snprintf(rdirp, sizeof rdirp, "%s/%s", input, rdir + 10);
    snprintf(upload, sizeof upload, "%s/%s_up", tmpdir(), bench);
    (void)adir;
    vr_score_report rep;
    vr_error err = {0};
    if (vr_mmbench_convert(annp, rdirp, upload, exp, &rep, &err) != VR_OK) fail_msg("%s: %s", bench, err.msg);
    assert_string_equal(rep.stdout_text, jstr(cJSON_GetObjectItemCaseSensitive(j, "command"), "stdout"));
    const cJSON *want = cJSON_GetObjectItemCaseSensitive(j, "upload_table");
    compare_table(cJSON_GetObjectItemCaseSensitive(rep.json, "upload_table"), want, bench);
    /* the files: the xlsx first, then the JSON table */
    assert_int_equal(rep.n_files, 2);
    char want_x[700];
    snprintf(want_x, sizeof want_x, "%s/%s.xlsx", upload, exp);
    assert_string_equal(rep.files_written[0], want_x);
    check_xlsx(rep.files_written[0], want);
    cJSON *tj = NULL;
    assert_int_equal(vr_score_read_json(rep.files_written[1], &tj, &err), VR_OK);
    compare_table(tj, want, "upload_table.json");
    cJSON_Delete(tj);

    /* the local circular evaluation: the groups of the fixture, and letter extraction by form */
    const cJSON *circ = cJSON_GetObjectItemCaseSensitive(rep.json, "circular_not_upstream");
    assert_true(cJSON_IsObject(circ));
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(circ, "groups");
    const cJSON *wg = cJSON_GetObjectItemCaseSensitive(j, "circular_groups_not_upstream");
    assert_int_equal(cJSON_GetArraySize(groups), cJSON_GetArraySize(wg));
    const cJSON *g;
    int n_ok = 0;
    cJSON_ArrayForEach(g, groups) {
        char key[32];
        snprintf(key, sizeof key, "%.0f", cJSON_GetObjectItemCaseSensitive(g, "index")->valuedouble);
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(wg, key);
        if (!w) fail_msg("%s: unexpected group %s", bench, key);
        assert_true(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(g, "copies"), w, 1));
        n_ok += cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(g, "correct"));
    }
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(circ, "correct")->valuedouble, n_ok);
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(circ, "rows");
    const cJSON *pr;
    int n_missing = 0;
    cJSON_ArrayForEach(pr, cJSON_GetObjectItemCaseSensitive(j, "per_row")) {
        double index = cJSON_GetObjectItemCaseSensitive(pr, "index")->valuedouble;
        const cJSON *row = NULL, *x;
        cJSON_ArrayForEach(x, rows) if (cJSON_GetObjectItemCaseSensitive(x, "index")->valuedouble == index) row = x;
        assert_non_null(row);
        const char *form = jstr(pr, "form");
        const cJSON *ext = cJSON_GetObjectItemCaseSensitive(row, "extracted");
        int missing = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pr, "missing"));
        n_missing += missing;
        assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(row, "missing")), missing);
        if (!strcmp(form, "letter") || !strcmp(form, "wrong_letter") || !strcmp(form, "letter_period") ||
            !strcmp(form, "parenthesized") || !strcmp(form, "letter_and_text")) {
            const char *t = jstr(pr, "text");
            char want_letter[2] = {t[0] == '(' ? t[1] : t[0], 0};
            if (!cJSON_IsString(ext) || strcmp(ext->valuestring, want_letter))
                fail_msg("%s: row %.0f (%s \"%s\"): extracted %s", bench, index, form, t,
                         cJSON_IsString(ext) ? ext->valuestring : "nothing");
        } else if (!strcmp(form, "empty") || !strcmp(form, "bad_utf8") || !strcmp(form, "missing") ||
                   !strcmp(form, "lowercase")) {
            if (!cJSON_IsNull(ext)) fail_msg("%s: row %.0f (%s): extracted %s", bench, index, form, ext->valuestring);
        }
    }
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(circ, "rows_without_answer")->valuedouble, n_missing);
    if (n_missing) assert_non_null(cJSON_GetObjectItemCaseSensitive(rep.json, "warnings"));
    vr_score_report_free(&rep);

    /* the crash cases of the conversion */
    const cJSON *cc;
    cJSON_ArrayForEach(cc, cJSON_GetObjectItemCaseSensitive(j, "crash_cases")) {
        const cJSON *cargv = cJSON_GetObjectItemCaseSensitive(cc, "argv");
        if (!cargv) continue; /* prompt-building cases: test_eval_prompts */
        char base[600];
        snprintf(base, sizeof base, "%s/%s_%s", tmpdir(), bench, jstr(cc, "name"));
        const cJSON *f;
        cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(cc, "files")) {
            char p[1300];
            snprintf(p, sizeof p, "%s/%s", base, f->string);
            write_text(p, f->valuestring);
        }
        char args[4][1300];
        for (int k = 0; k < 4; k++) {
            const char *a = cJSON_GetArrayItem(cargv, 3 + 2 * k)->valuestring;
            if (!strncmp(a, "$eval_dir/", 10)) snprintf(args[k], sizeof args[k], "%s/%s", base, a + 10);
            else snprintf(args[k], sizeof args[k], "%s", a);
        }
        vr_status st = vr_mmbench_convert(args[0], args[1], args[2], args[3], &rep, &err);
        if (st == VR_OK) fail_msg("%s: expected an error like upstream's %s", jstr(cc, "name"), jstr(cc, "exception"));
        assert_int_equal(st, VR_ERR_FORMAT);
        /* our message quotes the missing column the way pandas' KeyError does */
        const char *exc = jstr(cc, "exception");
        const char *q = strchr(exc, '[');
        const char *qe = q ? strchr(q, ']') : NULL;
        if (q && qe) {
            char cols[256];
            snprintf(cols, sizeof cols, "%.*s", (int)(qe - q + 1), q);
            if (!strstr(err.msg, cols)) fail_msg("%s: message \"%s\" does not name %s", jstr(cc, "name"), err.msg, cols);
        }
        assert_null(rep.json);
    }
    cJSON_Delete(j);
}

static void test_mmbench(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    check_bench("mmbench");
}

static void test_mmbench_cn(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    check_bench("mmbench_cn");
}

static const char HEADER[] = "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\timage\tsource\tl2-category\tcomment\tsplit\n";

/* Small inline tables: a control character is refused, types and matching follow pandas. */
static void test_inline(void **state) {
    (void)state;
    char p[600], rdir[600], up[600];
    snprintf(p, sizeof p, "%s/inline/a.tsv", tmpdir());
    snprintf(rdir, sizeof rdir, "%s/inline/res", tmpdir());
    snprintf(up, sizeof up, "%s/inline/up", tmpdir());
    char tsv[2048];
    snprintf(tsv, sizeof tsv,
             "%s"
             "5\tQ & <a>?\t\tx\ty\t\t\tB\tc\t\ts\tl\t\tdev\n"
             "1000005\t \"q\"\t\ty\tx\t\t\tA\tc\t\ts\tl\t\tdev\n"
             "7\tQ2\t\tTrue\tFalse\t\t\tC\tc\t\ts\tl\t\tdev\n",
             HEADER);
    write_text(p, tsv);
    char mp[700];
    snprintf(mp, sizeof mp, "%s/e/merge.jsonl", rdir);
    /* "5" (a string) matches no integer index; 1000005 matches; a later line wins */
    write_text(mp, "{\"question_id\": \"5\", \"text\": \"A\"}\n"
                   "{\"question_id\": 1000005, \"text\": \"B\"}\n"
                   "{\"question_id\": 1000005, \"text\": \"(A)\"}\n"
                   "{\"question_id\": 5, \"text\": \"The answer is B\"}\n");
    vr_score_report rep;
    vr_error err = {0};
    if (vr_mmbench_convert(p, rdir, up, "e", &rep, &err) != VR_OK) fail_msg("%s", err.msg);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rep.json, "upload_table");
    char *s = cJSON_PrintUnformatted(t);
    assert_string_equal(s, "[[\"index\",\"question\",\"A\",\"B\",\"C\",\"D\",\"prediction\",\"answer\",\"split\"],"
                           "[5,\"Q & <a>?\",\"x\",\"y\",null,null,\"The answer is B\",\"B\",\"dev\"],"
                           "[1000005,\" \\\"q\\\"\",\"y\",\"x\",null,null,\"(A)\",\"A\",\"dev\"],"
                           "[7,\"Q2\",\"True\",\"False\",null,null,null,\"C\",\"dev\"]]");
    free(s);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(rep.json, "answers_ignored")->valuedouble, 1);
    check_xlsx(rep.files_written[0], t);
    const cJSON *circ = cJSON_GetObjectItemCaseSensitive(rep.json, "circular_not_upstream");
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(circ, "questions")->valuedouble, 2);
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(circ, "correct")->valuedouble, 1);
    vr_score_report_free(&rep);
    /* the same bytes again: the xlsx is reproducible */
    char x1[700];
    snprintf(x1, sizeof x1, "%s/e.xlsx", up);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    assert_int_equal(vr_read_file(x1, 1 << 20, &a, &na, &err), VR_OK);
    assert_int_equal(vr_mmbench_convert(p, rdir, up, "e", &rep, &err), VR_OK);
    vr_score_report_free(&rep);
    assert_int_equal(vr_read_file(x1, 1 << 20, &b, &nb, &err), VR_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);

    /* a control character in an answer cannot go into an .xlsx */
    write_text(mp, "{\"question_id\": 7, \"text\": \"A\\u000b\"}\n");
    assert_int_equal(vr_mmbench_convert(p, rdir, up, "e", &rep, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "0x0B"));
    /* a broken answer line is an error naming it (upstream json.loads fails) */
    write_text(mp, "{\"question_id\": 7, \"text\": \"A\"}\n{\"question_id\": 7,\n");
    assert_int_equal(vr_mmbench_convert(p, rdir, up, "e", &rep, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 2"));
    /* a missing answer file */
    assert_int_equal(vr_mmbench_convert(p, rdir, up, "nope", &rep, &err), VR_ERR_IO);
    /* an existing prediction column */
    char tsv2[600];
    snprintf(tsv2, sizeof tsv2, "index\tquestion\tprediction\thint\tA\tB\tC\tD\tanswer\tcategory\timage\tsource\t"
                                "l2-category\tcomment\tsplit\n1\tq\tp\t\ta\tb\t\t\tA\tc\t\ts\tl\t\tdev\n");
    write_text(p, tsv2);
    write_text(mp, "");
    assert_int_equal(vr_mmbench_convert(p, rdir, up, "e", &rep, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "prediction"));
    /* no experiment name */
    assert_int_equal(vr_mmbench_convert(p, rdir, up, "", &rep, &err), VR_ERR_INVALID);
}

/* The .sh-path entry points find the same files under an $eval_dir copy. */
static void test_eval_dir(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    char ed[600], src[8300], dst[700], cmd[20000];
    snprintf(ed, sizeof ed, "%s/evaldir", tmpdir());
    snprintf(src, sizeof src, "%s/eval-fixtures/mmbench_cn/input", vrt_shared_dir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp -r '%s/.' '%s/'", ed, src, ed);
    assert_int_equal(system(cmd), 0);
    cJSON *j = load_eval_json("mmbench_cn/expected.json");
    vr_score_options o = {0};
    o.exp_name = jstr(j, "exp_name");
    vr_score_report rep;
    vr_error err = {0};
    if (vr_score_mmbench_cn(ed, &o, &rep, &err) != VR_OK) fail_msg("%s", err.msg);
    snprintf(dst, sizeof dst, "%s/%s", ed, jstr(j, "upload_file"));
    assert_string_equal(rep.files_written[0], dst);
    compare_table(cJSON_GetObjectItemCaseSensitive(rep.json, "upload_table"),
                  cJSON_GetObjectItemCaseSensitive(j, "upload_table"), "eval_dir");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(rep.json, "benchmark")->valuestring, "mmbench_cn");
    vr_score_report_free(&rep);
    /* the EN entry point looks for the EN TSV, which this folder lacks */
    assert_int_equal(vr_score_mmbench(ed, &o, &rep, &err), VR_ERR_IO);
    o.exp_name = NULL;
    assert_int_equal(vr_score_mmbench_cn(ed, &o, &rep, &err), VR_ERR_INVALID);
    cJSON_Delete(j);
}

static int teardown(void **state) {
    (void)state;
    if (g_tmp[0]) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmp);
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mmbench),
        cmocka_unit_test(test_mmbench_cn),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_eval_dir),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
