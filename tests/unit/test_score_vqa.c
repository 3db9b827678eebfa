/* tests/unit/test_score_vqa.c — the VQAv2 (val, test-dev) and TextVQA scorers and the EvalAI
 * normalisers against shared/eval-fixtures: each benchmark's input/ is copied to a scratch
 * $eval_dir, the scorer runs with the arguments of expected.json's argv, and its stdout, the
 * files it writes (byte-exact against output/) and every number are compared; the crash cases
 * must give clear errors. No model needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/mapped_file.h"
#include "common/pytext.h"
#include "eval/evalai.h"
#include "eval/score.h"
#include "tests/support/fixtures.h"

static char g_path[3][8192];

static const char *efx(const char *rel) {
    static int k;
    k = (k + 1) % 3;
    snprintf(g_path[k], sizeof g_path[k], "%s/eval-fixtures/%s", vrt_shared_dir(), rel);
    return g_path[k];
}

static cJSON *load_expected(const char *bench) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/expected.json", bench);
    cJSON *j = NULL;
    vr_error err = {0};
    if (vr_score_read_json(efx(rel), &j, &err) != VR_OK) fail_msg("%s", err.msg);
    return j;
}

static const cJSON *at(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) fail_msg("expected.json: no field %s", k);
    return v;
}

/* A scratch copy of <bench>/input (or an empty folder when bench is NULL). */
static char *scratch(const char *bench) {
    char *dir = strdup("/tmp/vrwkv_score_XXXXXX");
    if (!mkdtemp(dir)) fail_msg("mkdtemp failed");
    if (bench) {
        char rel[256], cmd[9000];
        snprintf(rel, sizeof rel, "%s/input", bench);
        snprintf(cmd, sizeof cmd, "cp -R '%s/.' '%s'", efx(rel), dir);
        if (system(cmd) != 0) fail_msg("%s failed", cmd);
    }
    return dir;
}

static void rm_scratch(char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(dir);
}

/* argv[i] with $eval_dir replaced, malloc'd. */
static char *subst(const char *s, const char *dir) {
    vr_strbuf b = {0};
    vr_str_replace_all(&b, s, strlen(s), "$eval_dir", 9, dir, strlen(dir));
    return vr_strbuf_take(&b, NULL);
}

/* The value after flag in an argv JSON list (substituted), or NULL. */
static char *arg_of(const cJSON *argv, const char *flag, const char *dir) {
    int n = cJSON_GetArraySize(argv);
    for (int i = 0; i + 1 < n; i++)
        if (strcmp(cJSON_GetArrayItem(argv, i)->valuestring, flag) == 0)
            return subst(cJSON_GetArrayItem(argv, i + 1)->valuestring, dir);
    return NULL;
}

/* Masks the DONE (t=...s) time like the fixture does. */
static char *mask_done(const char *s) {
    vr_strbuf b = {0};
    vr_strbuf_append(&b, "", 0);
    const char *p = s;
    for (;;) {
        const char *d = strstr(p, "DONE (t=");
        if (!d) break;
        const char *e = strstr(d, "s)\n");
        if (!e) break;
        vr_strbuf_append(&b, p, (size_t)(d - p));
        vr_strbuf_append_str(&b, "DONE (t=<elapsed>s)\n");
        p = e + 3;
    }
    vr_strbuf_append_str(&b, p);
    return vr_strbuf_take(&b, NULL);
}

static void assert_file_equals(const char *got_path, const char *want_path) {
    char *a = NULL, *b = NULL;
    size_t an = 0, bn = 0;
    vr_error err = {0};
    if (vr_read_file(got_path, (size_t)1 << 30, &a, &an, &err) != VR_OK) fail_msg("%s", err.msg);
    if (vr_read_file(want_path, (size_t)1 << 30, &b, &bn, &err) != VR_OK) fail_msg("%s", err.msg);
    if (an != bn || memcmp(a, b, an) != 0) {
        size_t i = 0;
        while (i < an && i < bn && a[i] == b[i]) i++;
        fail_msg("%s differs from %s at byte %zu (%zu vs %zu bytes): got \"%.60s\" want \"%.60s\"", got_path, want_path, i,
                 an, bn, a + i, b + i);
    }
    free(a);
    free(b);
}

static void assert_num(double got, const cJSON *want, const char *what) {
    if (!cJSON_IsNumber(want)) fail_msg("%s: expected value is not a number", what);
    if (got != want->valuedouble) fail_msg("%s: %.17g, expected %.17g", what, got, want->valuedouble);
}

/* ---- normalisers ---------------------------------------------------------------------- */

static char *norm_vqa(const char *s) {
    vr_strbuf b = {0};
    vr_strbuf_append(&b, "", 0);
    assert_int_equal(vr_vqa_normalize_prediction(&b, s, strlen(s)), VR_OK);
    return vr_strbuf_take(&b, NULL);
}

static void test_eval_vqa_normaliser(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *e = load_expected("vqav2");
    const cJSON *pq = at(at(e, "val"), "per_question"), *q;
    int n = 0;
    cJSON_ArrayForEach(q, pq) {
        char *got = norm_vqa(at(q, "text")->valuestring);
        if (strcmp(got, at(q, "processed_answer")->valuestring) != 0)
            fail_msg("case %s: \"%s\" -> \"%s\", expected \"%s\"", at(q, "case")->valuestring, at(q, "text")->valuestring,
                     got, at(q, "processed_answer")->valuestring);
        free(got);
        /* GT: processPunctuation only when the 10 answers differ */
        const cJSON *raw = at(q, "gt_answers_raw"), *cmp = at(q, "gt_answers_as_compared");
        int all_eq = 1;
        for (int j = 1; j < cJSON_GetArraySize(raw); j++)
            if (strcmp(cJSON_GetArrayItem(raw, j)->valuestring, cJSON_GetArrayItem(raw, 0)->valuestring)) all_eq = 0;
        for (int j = 0; j < cJSON_GetArraySize(raw); j++) {
            const char *r = cJSON_GetArrayItem(raw, j)->valuestring;
            vr_strbuf b = {0};
            vr_strbuf_append(&b, "", 0);
            if (all_eq) vr_strbuf_append_str(&b, r);
            else vr_vqa_process_punctuation(&b, r, strlen(r), VR_PUNCT_EVAL_VQA);
            assert_string_equal(b.p, cJSON_GetArrayItem(cmp, j)->valuestring);
            vr_strbuf_free(&b);
        }
        n++;
    }
    assert_true(n > 10);
    cJSON_Delete(e);
    /* fixed traps independent of the fixture values */
    char *s = norm_vqa("yes..................................................");
    assert_string_equal(s, "yes..................");
    free(s);
    s = norm_vqa("Im sure, somebody'd say 3.5 none");
    assert_string_equal(s, "im sure somebodyd say 3.5 0");
    free(s);
    s = norm_vqa("1,000 (a) b");
    assert_string_equal(s, "1000 b");
    free(s);
    s = norm_vqa("x\xD9\xA3.");
    assert_string_equal(s, "x\xD9\xA3");
    free(s);
    s = norm_vqa(".\xD9\xA3");
    assert_string_equal(s, ".\xD9\xA3");
    free(s);
}

static void test_evalai_processor(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *e = load_expected("vqav2");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, at(at(e, "test_dev"), "evalai_processor_cases")) {
        const char *in = at(c, "input")->valuestring;
        char *got = vr_evalai_answer(in, strlen(in));
        if (strcmp(got, at(c, "output")->valuestring) != 0)
            fail_msg("EvalAI case %s: \"%s\" -> \"%s\", expected \"%s\"", at(c, "case")->valuestring, in, got,
                     at(c, "output")->valuestring);
        free(got);
        n++;
    }
    assert_true(n > 10);
    cJSON_Delete(e);
    e = load_expected("textvqa");
    cJSON_ArrayForEach(c, at(e, "per_question")) {
        const char *in = at(c, "text")->valuestring;
        char *got = vr_evalai_answer(in, strlen(in));
        assert_string_equal(got, at(c, "processed_prediction")->valuestring);
        free(got);
        const cJSON *g = at(c, "gt_answers"), *gp = at(c, "gt_processed");
        for (int j = 0; j < cJSON_GetArraySize(g); j++) {
            const char *a = cJSON_GetArrayItem(g, j)->valuestring;
            got = vr_evalai_answer(a, strlen(a));
            assert_string_equal(got, cJSON_GetArrayItem(gp, j)->valuestring);
            free(got);
        }
    }
    cJSON_Delete(e);
    char *s = vr_evalai_answer("It's 1,000, ok?", 15);
    assert_string_equal(s, "it 's 1000 ok");
    free(s);
    s = vr_evalai_answer("a - b", 5);
    assert_string_equal(s, "b");
    free(s);
}

/* ---- VQAv2 val ------------------------------------------------------------------------ */

static void test_vqav2_val(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *e = load_expected("vqav2");
    const cJSON *val = at(e, "val");
    char *dir = scratch("vqav2");
    const cJSON *argv = at(at(val, "command"), "argv");
    vr_score_options o = {0};
    char *a = arg_of(argv, "--annotation-file", dir), *q = arg_of(argv, "--question-file", dir);
    char *r = arg_of(argv, "--result-file", dir);
    /* Run once with the explicit paths of argv, once with the .sh defaults (exp_name). */
    for (int pass = 0; pass < 2; pass++) {
        memset(&o, 0, sizeof o);
        if (pass == 0) {
            o.annotation_path = a;
            o.question_path = q;
            o.answers_path = r;
        } else {
            o.exp_name = at(e, "exp_name")->valuestring;
        }
        vr_score_report rep = {0};
        vr_error err = {0};
        if (vr_score_vqav2_val(dir, &o, &rep, &err) != VR_OK) fail_msg("%s", err.msg);
        char *masked = mask_done(rep.stdout_text);
        const char *want = at(at(val, "command"), "stdout")->valuestring;
        if (strcmp(masked, want) != 0) fail_msg("stdout differs:\n--- got\n%s\n--- want\n%s", masked, want);
        free(masked);
        /* the metrics file, byte-exact */
        char rel[512], got_path[1024];
        snprintf(rel, sizeof rel, "vqav2/output/%s", at(val, "metrics_file")->valuestring);
        snprintf(got_path, sizeof got_path, "%s/%s", dir, at(val, "metrics_file")->valuestring);
        assert_int_equal(rep.n_files, 1);
        assert_string_equal(rep.files_written[0], got_path);
        assert_file_equals(got_path, efx(rel));
        /* numbers */
        const cJSON *acc = at(val, "accuracy");
        assert_num(cJSON_GetObjectItem(rep.json, "overall")->valuedouble, at(acc, "overall"), "overall");
        assert_true(cJSON_Compare(cJSON_GetObjectItem(rep.json, "perAnswerType"), at(acc, "perAnswerType"), 1));
        assert_true(cJSON_Compare(cJSON_GetObjectItem(rep.json, "perQuestionType"), at(acc, "perQuestionType"), 1));
        assert_true(cJSON_Compare(cJSON_GetObjectItem(rep.json, "metrics"), at(val, "metrics"), 1));
        assert_true(cJSON_Compare(cJSON_GetObjectItem(rep.json, "badcases"), at(val, "badcases"), 1));
        const cJSON *pq = cJSON_GetObjectItem(rep.json, "per_question"), *w;
        int k = 0;
        cJSON_ArrayForEach(w, at(val, "per_question")) {
            const cJSON *g = NULL, *it;
            cJSON_ArrayForEach(it, pq) if (cJSON_Compare(cJSON_GetObjectItem(it, "question_id"), at(w, "question_id"), 1)) g = it;
            if (!g) fail_msg("question %d missing from the report", k);
            assert_string_equal(cJSON_GetObjectItem(g, "processed_answer")->valuestring, at(w, "processed_answer")->valuestring);
            assert_true(cJSON_Compare(cJSON_GetObjectItem(g, "gt_answers_as_compared"), at(w, "gt_answers_as_compared"), 1));
            assert_num(cJSON_GetObjectItem(g, "accuracy_x100_rounded")->valuedouble, at(w, "accuracy_x100_rounded"),
                       at(w, "case")->valuestring);
            k++;
        }
        vr_score_report_free(&rep);
    }
    free(a);
    free(q);
    free(r);
    rm_scratch(dir);
    cJSON_Delete(e);
}

/* ---- VQAv2 test-dev ------------------------------------------------------------------- */

static void test_vqav2_testdev(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *e = load_expected("vqav2");
    const cJSON *td = at(e, "test_dev");
    char *dir = scratch("vqav2");
    const cJSON *argv = at(at(td, "command"), "argv");
    char *d = arg_of(argv, "--dir", dir), *split = arg_of(argv, "--split", dir), *ckpt = arg_of(argv, "--ckpt", dir);
    char want_dir[1024];
    snprintf(want_dir, sizeof want_dir, "%s/eval/vqav2", dir);
    assert_string_equal(d, want_dir); /* the scorer derives --dir from $eval_dir */
    vr_score_options o = {0};
    o.split = split;
    o.exp_name = ckpt;
    vr_score_report rep = {0};
    vr_error err = {0};
    if (vr_score_vqav2_testdev(dir, &o, &rep, &err) != VR_OK) fail_msg("%s", err.msg);
    assert_string_equal(rep.stdout_text, at(at(td, "command"), "stdout")->valuestring);
    char rel[512], got_path[1024];
    snprintf(rel, sizeof rel, "vqav2/output/%s", at(td, "upload_file")->valuestring);
    snprintf(got_path, sizeof got_path, "%s/%s", dir, at(td, "upload_file")->valuestring);
    assert_int_equal(rep.n_files, 1);
    assert_string_equal(rep.files_written[0], got_path);
    assert_file_equals(got_path, efx(rel));
    assert_true(cJSON_Compare(cJSON_GetObjectItem(rep.json, "upload"), at(td, "upload"), 1));
    /* the missing ids of the story are reported */
    const cJSON *miss = at(at(td, "answer_file_story"), "missing_question_ids"), *m, *g;
    cJSON_ArrayForEach(m, miss) {
        int found = 0;
        cJSON_ArrayForEach(g, cJSON_GetObjectItem(rep.json, "missing_question_ids")) found |= cJSON_Compare(g, m, 1);
        if (!found) fail_msg("missing question %.0f not reported", m->valuedouble);
    }
    vr_score_report_free(&rep);
    free(d);
    free(split);
    free(ckpt);
    rm_scratch(dir);
    cJSON_Delete(e);
}

/* ---- TextVQA -------------------------------------------------------------------------- */

static void test_textvqa(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *e = load_expected("textvqa");
    char *dir = scratch("textvqa");
    const cJSON *cmd;
    int n = 0;
    cJSON_ArrayForEach(cmd, at(e, "commands")) {
        const char *pos = cmd->string;
        const cJSON *argv = at(cmd, "argv");
        vr_score_options o = {0};
        char *a = arg_of(argv, "--annotation-file", dir), *r = arg_of(argv, "--result-file", dir);
        o.annotation_path = a;
        o.answers_path = r;
        vr_score_report rep = {0};
        vr_error err = {0};
        if (vr_score_textvqa(dir, &o, &rep, &err) != VR_OK) fail_msg("%s: %s", pos, err.msg);
        assert_string_equal(rep.stdout_text, at(cmd, "stdout")->valuestring);
        assert_int_equal(rep.n_files, 0);
        assert_num(cJSON_GetObjectItem(rep.json, "accuracy")->valuedouble, at(e, "mean_score_unrounded"), "mean score");
        const cJSON *pr = at(at(e, "printed"), pos);
        assert_num(cJSON_GetObjectItem(rep.json, "samples")->valuedouble, at(pr, "samples"), "samples");
        assert_string_equal(cJSON_GetObjectItem(rep.json, "accuracy_percent_printed")->valuestring,
                            at(pr, "accuracy_percent_printed")->valuestring);
        /* per question, in result order */
        const cJSON *w;
        int k = 0;
        cJSON_ArrayForEach(w, at(e, "per_question")) {
            const cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(rep.json, "per_question"), k);
            assert_non_null(g);
            assert_string_equal(cJSON_GetObjectItem(g, "question_key")->valuestring, at(at(w, "question_key"), pos)->valuestring);
            assert_string_equal(cJSON_GetObjectItem(g, "processed_prediction")->valuestring,
                                at(w, "processed_prediction")->valuestring);
            assert_true(cJSON_Compare(cJSON_GetObjectItem(g, "gt_processed"), at(w, "gt_processed"), 1));
            assert_num(cJSON_GetObjectItem(g, "score")->valuedouble, at(w, "score"), at(w, "case")->valuestring);
            k++;
        }
        /* the .sh default path (answers/<exp_name>/merge.jsonl) */
        vr_score_report rep2 = {0};
        vr_score_options o2 = {0};
        char exp[256];
        snprintf(exp, sizeof exp, "%s_%s", at(e, "exp_name")->valuestring, pos);
        o2.exp_name = exp;
        if (vr_score_textvqa(dir, &o2, &rep2, &err) != VR_OK) fail_msg("%s: %s", pos, err.msg);
        assert_string_equal(rep2.stdout_text, rep.stdout_text);
        vr_score_report_free(&rep2);
        vr_score_report_free(&rep);
        free(a);
        free(r);
        n++;
    }
    assert_int_equal(n, 3);
    rm_scratch(dir);
    cJSON_Delete(e);
}

/* ---- crash cases ---------------------------------------------------------------------- */

static void write_case_files(const cJSON *c, const char *dir) {
    const cJSON *f;
    cJSON_ArrayForEach(f, at(c, "files")) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, f->string);
        vr_error err = {0};
        if (vr_score_write_file(path, f->valuestring, strlen(f->valuestring), &err) != VR_OK) fail_msg("%s", err.msg);
    }
}

static void test_crash_cases(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    const char *benches[] = {"vqav2", "textvqa"};
    int n = 0;
    for (int bi = 0; bi < 2; bi++) {
        cJSON *e = load_expected(benches[bi]);
        const cJSON *c;
        cJSON_ArrayForEach(c, at(e, "crash_cases")) {
            const char *name = at(c, "name")->valuestring;
            assert_int_not_equal((int)at(c, "returncode")->valuedouble, 0);
            char *dir = scratch(NULL);
            write_case_files(c, dir);
            const cJSON *argv = at(c, "argv");
            const char *script = cJSON_GetArrayItem(argv, 1)->valuestring;
            vr_score_options o = {0};
            char *a = arg_of(argv, "--annotation-file", dir), *q = arg_of(argv, "--question-file", dir);
            char *r = arg_of(argv, "--result-file", dir);
            o.annotation_path = a;
            o.question_path = q;
            o.answers_path = r;
            vr_score_report rep = {0};
            vr_error err = {0};
            vr_status st = VR_OK;
            if (strstr(script, "eval_vqa.py")) st = vr_score_vqav2_val(dir, &o, &rep, &err);
            else if (strstr(script, "eval_textvqa.py")) st = vr_score_textvqa(dir, &o, &rep, &err);
            else fail_msg("crash case %s: unknown script %s", name, script);
            if (st == VR_OK) fail_msg("crash case %s: accepted input upstream fails on (%s)", name, at(c, "exception")->valuestring);
            assert_null(rep.stdout_text);
            assert_true(strlen(err.msg) > 20);
            fprintf(stderr, "crash case %s -> %s: %s\n", name, vr_status_name(st), err.msg);
            /* messages name the offending ids / keys */
            if (strcmp(name, "vqa_val_missing_prediction") == 0) {
                assert_non_null(strstr(err.msg, "no answer"));
                /* with allow_missing the missing ones are scored as wrong and reported */
                o.allow_missing = 1;
                if (vr_score_vqav2_val(dir, &o, &rep, &err) != VR_OK) fail_msg("allow_missing: %s", err.msg);
                assert_non_null(strstr(rep.stdout_text, "Warning: "));
                assert_non_null(cJSON_GetObjectItem(rep.json, "warnings"));
                assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(rep.json, "missing_question_ids")) > 0);
                vr_score_report_free(&rep);
            }
            if (strcmp(name, "textvqa_result_without_annotation") == 0) {
                assert_int_equal(st, VR_ERR_NOT_FOUND);
                assert_non_null(strstr(err.msg, "question_id"));
            }
            free(a);
            free(q);
            free(r);
            rm_scratch(dir);
            n++;
        }
        cJSON_Delete(e);
    }
    assert_true(n >= 5);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eval_vqa_normaliser), cmocka_unit_test(test_evalai_processor),
        cmocka_unit_test(test_vqav2_val),           cmocka_unit_test(test_vqav2_testdev),
        cmocka_unit_test(test_textvqa),             cmocka_unit_test(test_crash_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
