/* tests/unit/test_score_gqa_sqa_pope_mme.c — the GQA, ScienceQA, POPE and MME scorers against
 * shared/eval-fixtures: each benchmark's input/ is copied to a scratch $eval_dir, the scorer is
 * run as the expected.json argv implies, and its stdout text, every written file (byte for byte
 * against <bench>/output/) and every number are compared; then every recorded crash case, plus
 * missing / duplicated / unknown answers and empty files, must give an error naming the problem
 * (or, with allow_missing, a score and a warning). Skips loudly without ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/mapped_file.h"
#include "eval/score.h"
#include "tests/support/fixtures.h"

/* ---- helpers ------------------------------------------------------------------------ */

static char g_eval_fixtures[4200];

/* The eval-fixtures folder, or skip loudly. */
static const char *eval_fixtures(void) {
    VRT_REQUIRE_SHARED();
    snprintf(g_eval_fixtures, sizeof g_eval_fixtures, "%s/eval-fixtures", vrt_shared_dir());
    struct stat st;
    char probe[4300];
    snprintf(probe, sizeof probe, "%s/README.md", g_eval_fixtures);
    if (stat(probe, &st) != 0) {
        fprintf(stderr, "SKIP: %s not found; scorer fixture tests cannot run\n", g_eval_fixtures);
        skip();
    }
    return g_eval_fixtures;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    return s;
}

static char *make_tmp(void) {
    char tmpl[] = "/tmp/vrt_score_XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static void run_cmd(const char *cmd) {
    int rc = system(cmd);
    if (rc != 0) fail_msg("command failed (%d): %s", rc, cmd);
}

/* cp -R src/. dst */
static void copy_tree(const char *src, const char *dst) {
    char *cmd = xasprintf("cp -R '%s/.' '%s'", src, dst);
    run_cmd(cmd);
    free(cmd);
}

static void rm_tree(char *dir) {
    char *cmd = xasprintf("rm -rf '%s'", dir);
    run_cmd(cmd);
    free(cmd);
    free(dir);
}

/* The whole file (malloc'd, NUL-terminated). */
static char *slurp(const char *path, size_t *n) {
    char *buf[1] = {NULL}; /* an array: gcc 12 -O3 -Wdangling-pointer misreads a plain local here */
    vr_error err = {0};
    if (vr_read_file(path, (size_t)1 << 30, buf, n, &err) != VR_OK) fail_msg("%s", err.msg);
    char *t = buf[0];
    return t;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes text to dir/rel, creating folders. */
static void put_file(const char *dir, const char *rel, const char *text) {
    char *path = xasprintf("%s/%s", dir, rel);
    for (char *s = path + strlen(dir) + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST) fail_msg("mkdir %s failed", path);
        *s = '/';
    }
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    free(path);
}

static cJSON *load_expected(const char *bench) {
    char *path = xasprintf("%s/%s/expected.json", eval_fixtures(), bench);
    char *t = slurp(path, NULL);
    cJSON *j = cJSON_Parse(t);
    if (!j) fail_msg("%s: invalid JSON", path);
    free(t);
    free(path);
    return j;
}

static const cJSON *jget(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) fail_msg("expected key \"%s\" missing", k);
    return v;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = jget(o, k);
    if (!cJSON_IsString(v)) fail_msg("\"%s\" is not a string", k);
    return v->valuestring;
}

/* Exact comparison of two JSON values (numbers as doubles, ==; object keys in any order). */
static void json_expect_equal(const cJSON *got, const cJSON *want, const char *where) {
    if (cJSON_IsNumber(want)) {
        if (!cJSON_IsNumber(got)) fail_msg("%s: not a number", where);
        if (got->valuedouble != want->valuedouble)
            fail_msg("%s: got %.17g, expected %.17g", where, got->valuedouble, want->valuedouble);
    } else if (cJSON_IsString(want)) {
        if (!cJSON_IsString(got) || strcmp(got->valuestring, want->valuestring) != 0)
            fail_msg("%s: got \"%s\", expected \"%s\"", where, cJSON_IsString(got) ? got->valuestring : "(not a string)",
                     want->valuestring);
    } else if (cJSON_IsArray(want)) {
        if (!cJSON_IsArray(got) || cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
            fail_msg("%s: array length differs", where);
        for (int i = 0; i < cJSON_GetArraySize(want); i++) {
            char w[512];
            snprintf(w, sizeof w, "%s[%d]", where, i);
            json_expect_equal(cJSON_GetArrayItem(got, i), cJSON_GetArrayItem(want, i), w);
        }
    } else if (cJSON_IsObject(want)) {
        if (!cJSON_IsObject(got) || cJSON_GetArraySize(got) != cJSON_GetArraySize(want))
            fail_msg("%s: object size differs", where);
        const cJSON *c;
        cJSON_ArrayForEach(c, want) {
            char w[512];
            snprintf(w, sizeof w, "%s.%s", where, c->string);
            const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, c->string);
            if (!g) fail_msg("%s: missing", w);
            json_expect_equal(g, c, w);
        }
    } else if (cJSON_IsBool(want)) {
        if (!cJSON_IsBool(got) || cJSON_IsTrue(got) != cJSON_IsTrue(want)) fail_msg("%s: boolean differs", where);
    } else if (cJSON_IsNull(want)) {
        if (!cJSON_IsNull(got)) fail_msg("%s: not null", where);
    }
}

static void expect_text(const char *got, const char *want, const char *what) {
    if (strcmp(got, want) == 0) return;
    size_t i = 0;
    while (got[i] && got[i] == want[i]) i++;
    fail_msg("%s differs at byte %zu:\n--- got ---\n%.200s\n--- expected ---\n%.200s", what, i, got + i, want + i);
}

/* Every file of expected.json "output_files" is byte-identical to <bench>/output/ and was
 * reported as written; nothing else was written. */
static void expect_output_files(const char *bench, const cJSON *exp, const char *eval_dir, const vr_score_report *rep) {
    const cJSON *files = jget(exp, "output_files");
    assert_int_equal(rep->n_files, cJSON_GetArraySize(files));
    const cJSON *f;
    cJSON_ArrayForEach(f, files) {
        char *got_path = xasprintf("%s/%s", eval_dir, f->valuestring);
        char *want_path = xasprintf("%s/%s/output/%s", eval_fixtures(), bench, f->valuestring);
        size_t gn = 0, wn = 0;
        char *g = slurp(got_path, &gn), *w = slurp(want_path, &wn);
        if (gn != wn || memcmp(g, w, gn) != 0) fail_msg("%s differs from %s", got_path, want_path);
        int reported = 0;
        for (int i = 0; i < rep->n_files; i++) reported |= strcmp(rep->files_written[i], got_path) == 0;
        if (!reported) fail_msg("%s was not reported as written", got_path);
        free(g);
        free(w);
        free(got_path);
        free(want_path);
    }
}

static int has_warning(const vr_score_report *rep, const char *needle) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(rep->json, "warnings");
    const cJSON *s;
    cJSON_ArrayForEach(s, w) if (cJSON_IsString(s) && strstr(s->valuestring, needle)) return 1;
    return 0;
}

/* Copies <bench>/input to a fresh scratch $eval_dir. */
static char *scratch_copy(const char *bench) {
    char *dir = make_tmp();
    char *src = xasprintf("%s/%s/input", eval_fixtures(), bench);
    copy_tree(src, dir);
    free(src);
    return dir;
}

/* ---- GQA ---------------------------------------------------------------------------- */

static void test_gqa_fixture(void **state) {
    (void)state;
    cJSON *exp = load_expected("gqa");
    char *dir = scratch_copy("gqa");
    vr_score_options o = {.exp_name = jstr(exp, "exp_name")};
    vr_score_report rep = {0};
    vr_error err = {0};
    vr_status st = vr_score_gqa(dir, &o, &rep, &err);
    if (st != VR_OK) fail_msg("vr_score_gqa: %s", err.msg);
    /* the convert step prints nothing; the eval step prints the report */
    const cJSON *cmds = jget(exp, "commands");
    assert_int_equal(cJSON_GetArraySize(cmds), 2);
    assert_string_equal(jstr(cJSON_GetArrayItem(cmds, 0), "stdout"), "");
    expect_text(rep.stdout_text, jstr(cJSON_GetArrayItem(cmds, 1), "stdout"), "GQA stdout");
    expect_output_files("gqa", exp, dir, &rep);
    json_expect_equal(jget(rep.json, "metrics"), jget(exp, "metrics"), "metrics");
    json_expect_equal(jget(rep.json, "badcases"), jget(exp, "badcases"), "badcases");
    /* per question: correct <=> not a badcase */
    int n_wrong = 0;
    const cJSON *q;
    cJSON_ArrayForEach(q, jget(exp, "per_question")) n_wrong += cJSON_IsFalse(jget(q, "correct"));
    assert_int_equal((int)jget(rep.json, "n_badcases")->valuedouble, n_wrong);
    assert_null(cJSON_GetObjectItemCaseSensitive(rep.json, "warnings"));
    vr_score_report_free(&rep);

    /* an answer line repeated: an error naming the id */
    char *ans = xasprintf("%s/%s", dir, jstr(jget(exp, "inputs"), "result_file"));
    size_t n = 0;
    char *text = slurp(ans, &n);
    char *first_nl = strchr(text, '\n');
    assert_non_null(first_nl);
    FILE *f = fopen(ans, "ab");
    assert_non_null(f);
    fwrite(text, 1, (size_t)(first_nl - text + 1), f);
    fclose(f);
    cJSON *line0 = cJSON_ParseWithLength(text, (size_t)(first_nl - text));
    st = vr_score_gqa(dir, &o, &rep, &err);
    assert_int_not_equal(st, VR_OK);
    assert_non_null(strstr(err.msg, "more than once"));
    assert_non_null(strstr(err.msg, jstr(line0, "question_id")));
    cJSON_Delete(line0);
    /* an empty answer file */
    f = fopen(ans, "wb");
    fclose(f);
    st = vr_score_gqa(dir, &o, &rep, &err);
    assert_int_not_equal(st, VR_OK);
    assert_non_null(strstr(err.msg, "empty"));
    /* no exp_name */
    vr_score_options none = {0};
    assert_int_equal(vr_score_gqa(dir, &none, &rep, &err), VR_ERR_INVALID);
    free(text);
    free(ans);
    rm_tree(dir);
    cJSON_Delete(exp);
}

/* The crash cases call eval_gqa.py on (q.json, p.json): the same questions go in as the
 * questions file and the predictions as an answer file. */
static void test_gqa_crash_cases(void **state) {
    (void)state;
    cJSON *exp = load_expected("gqa");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, jget(exp, "crash_cases")) {
        const char *name = jstr(c, "name");
        const cJSON *files = jget(c, "files");
        char *dir = make_tmp();
        put_file(dir, "q.json", jstr(files, "q.json"));
        cJSON *preds = cJSON_Parse(jstr(files, "p.json"));
        assert_non_null(preds);
        char *ans = NULL;
        size_t ans_n = 0;
        FILE *mf = open_memstream(&ans, &ans_n);
        const cJSON *p;
        cJSON_ArrayForEach(p, preds) {
            cJSON *line = cJSON_CreateObject();
            cJSON_AddItemToObject(line, "question_id", cJSON_Duplicate(jget(p, "questionId"), 1));
            cJSON_AddStringToObject(line, "text", jstr(p, "prediction"));
            char *s = cJSON_PrintUnformatted(line);
            fprintf(mf, "%s\n", s);
            free(s);
            cJSON_Delete(line);
        }
        fclose(mf);
        put_file(dir, "answers/merge.jsonl", ans);
        free(ans);
        char *qpath = xasprintf("%s/q.json", dir), *apath = xasprintf("%s/answers/merge.jsonl", dir);
        vr_score_options o = {.answers_path = apath, .annotation_path = qpath, .exp_name = "x"};
        vr_score_report rep = {0};
        vr_error err = {0};
        vr_status st = vr_score_gqa(dir, &o, &rep, &err);
        if (st == VR_OK) fail_msg("crash case %s: no error", name);
        assert_null(rep.stdout_text);
        fprintf(stderr, "  %s -> %s\n", name, err.msg);
        if (strstr(name, "missing_prediction")) {
            assert_non_null(strstr(err.msg, "no answer"));
            assert_non_null(strstr(err.msg, ": 2;")); /* the question without prediction */
            /* allowed: scored as wrong, with a warning */
            o.allow_missing = 1;
            st = vr_score_gqa(dir, &o, &rep, &err);
            if (st != VR_OK) fail_msg("%s with allow_missing: %s", name, err.msg);
            assert_true(has_warning(&rep, "2"));
            assert_string_equal(cJSON_GetArrayItem(jget(rep.json, "missing_answers"), 0)->valuestring, "2");
            assert_non_null(strstr(rep.stdout_text, "Question ID: 2\n"));
            vr_score_report_free(&rep);
        } else if (strstr(name, "without_answers")) {
            assert_non_null(strstr(err.msg, "\"answers\""));
        } else if (strstr(name, "global")) {
            assert_non_null(strstr(err.msg, "global group"));
        }
        /* nothing written on error */
        char *pred_path = xasprintf("%s/answers/testdev_balanced_predictions.json", dir);
        if (strstr(name, "missing_prediction")) unlink(pred_path);
        else assert_false(file_exists(pred_path));
        free(pred_path);
        cJSON_Delete(preds);
        free(qpath);
        free(apath);
        rm_tree(dir);
        n++;
    }
    assert_true(n >= 4);
    cJSON_Delete(exp);
}

/* ---- ScienceQA ------------------------------------------------------------------------ */

static void test_scienceqa_fixture(void **state) {
    (void)state;
    cJSON *exp = load_expected("scienceqa");
    char *dir = scratch_copy("scienceqa");
    vr_score_options o = {.exp_name = jstr(exp, "exp_name")};
    vr_score_report rep = {0};
    vr_error err = {0};
    /* missing predictions are an error naming them */
    vr_status st = vr_score_scienceqa(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_INVALID);
    const cJSON *pc;
    int n_missing = 0;
    cJSON_ArrayForEach(pc, jget(exp, "per_problem_cases")) {
        if (!cJSON_IsTrue(jget(pc, "missing"))) continue;
        n_missing++;
        if (!strstr(err.msg, pc->string)) fail_msg("error does not name missing problem %s: %s", pc->string, err.msg);
    }
    assert_true(n_missing > 0);
    char *out_path = xasprintf("%s/%s", dir, jstr(exp, "output_file"));
    assert_false(file_exists(out_path));
    /* allowed: scored FAILED like upstream, which reproduces every upstream output */
    o.allow_missing = 1;
    st = vr_score_scienceqa(dir, &o, &rep, &err);
    if (st != VR_OK) fail_msg("vr_score_scienceqa: %s", err.msg);
    const cJSON *cmd = jget(exp, "command");
    expect_text(rep.stdout_text, jstr(cmd, "stdout"), "ScienceQA stdout");
    expect_output_files("scienceqa", exp, dir, &rep);
    json_expect_equal(jget(rep.json, "result"), jget(exp, "result"), "result");
    char img[32];
    snprintf(img, sizeof img, "%.2f", jget(rep.json, "img_accuracy")->valuedouble);
    assert_string_equal(img, jstr(jget(exp, "printed"), "img_accuracy"));
    cJSON_ArrayForEach(pc, jget(exp, "per_problem_cases")) if (cJSON_IsTrue(jget(pc, "missing")))
        assert_true(has_warning(&rep, pc->string));
    /* the output file's lists hold every problem once */
    size_t on = 0;
    char *otext = slurp(out_path, &on);
    cJSON *out = cJSON_Parse(otext);
    json_expect_equal(out, jget(exp, "output"), "output.json");
    cJSON_Delete(out);
    free(otext);
    vr_score_report_free(&rep);

    /* an empty result file */
    char *res = xasprintf("%s/%s", dir, jstr(jget(exp, "inputs"), "result_file"));
    FILE *f = fopen(res, "wb");
    fclose(f);
    st = vr_score_scienceqa(dir, &o, &rep, &err);
    assert_int_not_equal(st, VR_OK);
    assert_non_null(strstr(err.msg, "empty"));
    /* a line that does not parse */
    put_file(dir, jstr(jget(exp, "inputs"), "result_file"), "{\"question_id\": \"1\", \"text\n");
    st = vr_score_scienceqa(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 1"));
    free(res);
    free(out_path);
    rm_tree(dir);
    cJSON_Delete(exp);
}

static void test_scienceqa_crash_cases(void **state) {
    (void)state;
    cJSON *exp = load_expected("scienceqa");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, jget(exp, "crash_cases")) {
        const char *name = jstr(c, "name");
        char *dir = make_tmp();
        const cJSON *f;
        cJSON_ArrayForEach(f, jget(c, "files")) put_file(dir, f->string, f->valuestring);
        char *prob = xasprintf("%s/base/problems.json", dir), *spl = xasprintf("%s/base/pid_splits.json", dir),
             *res = xasprintf("%s/res.jsonl", dir);
        vr_score_options o = {.answers_path = res, .annotation_path = prob, .question_path = spl, .exp_name = "x"};
        vr_score_report rep = {0};
        vr_error err = {0};
        vr_status st = vr_score_scienceqa(dir, &o, &rep, &err);
        if (st == VR_OK) fail_msg("crash case %s: no error", name);
        fprintf(stderr, "  %s -> %s\n", name, err.msg);
        if (strstr(name, "image")) assert_non_null(strstr(err.msg, "<image>"));
        char *written = xasprintf("%s/result.json", dir);
        assert_false(file_exists(written));
        free(written);
        free(prob);
        free(spl);
        free(res);
        rm_tree(dir);
        n++;
    }
    assert_true(n >= 1);
    cJSON_Delete(exp);
}

/* ---- POPE --------------------------------------------------------------------------- */

static void test_pope_fixture(void **state) {
    (void)state;
    cJSON *exp = load_expected("pope");
    char *dir = scratch_copy("pope");
    vr_score_options o = {.exp_name = jstr(exp, "exp_name")};
    vr_score_report rep = {0};
    vr_error err = {0};
    /* the missing answer is an error naming it */
    vr_status st = vr_score_pope(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_INVALID);
    char mid[32];
    snprintf(mid, sizeof mid, "%d", (int)jget(exp, "missing_answer_question_id")->valuedouble);
    if (!strstr(err.msg, mid)) fail_msg("error does not name question %s: %s", mid, err.msg);

    o.allow_missing = 1;
    st = vr_score_pope(dir, &o, &rep, &err);
    if (st != VR_OK) fail_msg("vr_score_pope: %s", err.msg);
    assert_true(has_warning(&rep, mid));
    assert_int_equal(rep.n_files, 0);
    const char *upstream = jstr(jget(exp, "command"), "stdout");
    const char *head = "evaluating pope...\n";
    assert_memory_equal(rep.stdout_text, head, strlen(head));
    size_t total = strlen(head);
    const cJSON *pc;
    cJSON_ArrayForEach(pc, jget(exp, "per_category")) {
        const char *cat = pc->string;
        const cJSON *cj = jget(jget(rep.json, "categories"), cat);
        int complete = jget(pc, "n_answers")->valuedouble == jget(pc, "n_labels")->valuedouble;
        long tp = 0, fp = 0, tn = 0, fn = 0;
        if (complete) {
            /* on a complete category the port's numbers are upstream's */
            tp = (long)jget(pc, "TP")->valuedouble;
            fp = (long)jget(pc, "FP")->valuedouble;
            tn = (long)jget(pc, "TN")->valuedouble;
            fn = (long)jget(pc, "FN")->valuedouble;
            const cJSON *d = jget(pc, "derived_unrounded");
            json_expect_equal(jget(cj, "accuracy"), jget(d, "accuracy"), "accuracy");
            json_expect_equal(jget(cj, "precision"), jget(d, "precision"), "precision");
            json_expect_equal(jget(cj, "recall"), jget(d, "recall"), "recall");
            json_expect_equal(jget(cj, "f1"), jget(d, "f1"), "f1");
            json_expect_equal(jget(cj, "yes_ratio"), jget(d, "yes_ratio"), "yes_ratio");
            /* and the printed block is upstream's, byte for byte */
            char *block = xasprintf("Category: %s, # samples: %d\n%s====================================\n", cat,
                                    (int)jget(pc, "n_answers")->valuedouble, jstr(pc, "printed"));
            if (!strstr(upstream, block)) fail_msg("fixture block for %s not in upstream stdout", cat);
            if (!strstr(rep.stdout_text, block)) fail_msg("category %s: printed block differs:\n%s", cat, rep.stdout_text);
            total += strlen(block);
            free(block);
        } else {
            /* paired by question (each answer with its own label), the missing one wrong */
            const cJSON *p;
            cJSON_ArrayForEach(p, jget(pc, "pairs")) {
                int pred = strcmp(jstr(p, "parsed"), "yes") == 0, label = strcmp(jstr(p, "own_label"), "yes") == 0;
                tp += pred && label;
                fp += pred && !label;
                tn += !pred && !label;
                fn += !pred && label;
            }
            const cJSON *it;
            cJSON_ArrayForEach(it, jget(exp, "items")) {
                if (!cJSON_IsTrue(jget(it, "missing")) || strcmp(jstr(it, "category"), cat) != 0) continue;
                if (strcmp(jstr(it, "label"), "yes") == 0) fn++;
                else fp++;
            }
            long n = tp + fp + tn + fn;
            assert_int_equal((long)jget(cj, "samples")->valuedouble, n);
            double precision = (double)tp / (double)(tp + fp), recall = (double)tp / (double)(tp + fn);
            assert_true(jget(cj, "accuracy")->valuedouble == (double)(tp + tn) / (double)n);
            assert_true(jget(cj, "precision")->valuedouble == precision);
            assert_true(jget(cj, "recall")->valuedouble == recall);
            assert_true(jget(cj, "f1")->valuedouble == 2 * precision * recall / (precision + recall));
            char *block = xasprintf("Category: %s, # samples: %ld\nTP\tFP\tTN\tFN\t\n%ld\t%ld\t%ld\t%ld\nAccuracy: %.3f\n", cat,
                                    n, tp, fp, tn, fn, (double)(tp + tn) / (double)n);
            if (!strstr(rep.stdout_text, block)) fail_msg("category %s: expected\n%s\nin\n%s", cat, block, rep.stdout_text);
            const char *at = strstr(rep.stdout_text, block);
            const char *end = strstr(at, "====================================\n");
            assert_non_null(end);
            total += (size_t)(end - at) + 37;
            free(block);
        }
        assert_int_equal((long)jget(cj, "TP")->valuedouble, tp);
        assert_int_equal((long)jget(cj, "FP")->valuedouble, fp);
        assert_int_equal((long)jget(cj, "TN")->valuedouble, tn);
        assert_int_equal((long)jget(cj, "FN")->valuedouble, fn);
    }
    assert_int_equal(strlen(rep.stdout_text), total); /* nothing else printed */
    vr_score_report_free(&rep);

    /* an answer for a question that does not exist */
    char *ans = xasprintf("%s/%s", dir, jstr(jget(exp, "inputs"), "result_file"));
    FILE *f = fopen(ans, "ab");
    fputs("{\"question_id\": 987654321, \"prompt\": \"p\", \"text\": \"yes\"}\n", f);
    fclose(f);
    st = vr_score_pope(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "987654321"));
    free(ans);
    rm_tree(dir);
    cJSON_Delete(exp);
}

static void test_pope_crash_cases(void **state) {
    (void)state;
    cJSON *exp = load_expected("pope");
    const cJSON *c;
    int n = 0;
    cJSON_ArrayForEach(c, jget(exp, "crash_cases")) {
        const char *name = jstr(c, "name");
        char *dir = make_tmp();
        const cJSON *f;
        cJSON_ArrayForEach(f, jget(c, "files")) put_file(dir, f->string, f->valuestring);
        char *coco = xasprintf("%s/coco", dir), *q = xasprintf("%s/q.jsonl", dir), *a = xasprintf("%s/a.jsonl", dir);
        vr_score_options o = {.answers_path = a, .annotation_path = coco, .question_path = q, .exp_name = "x"};
        vr_score_report rep = {0};
        vr_error err = {0};
        vr_status st = vr_score_pope(dir, &o, &rep, &err);
        if (st == VR_OK) fail_msg("crash case %s: no error", name);
        assert_null(rep.stdout_text);
        fprintf(stderr, "  %s -> %s\n", name, err.msg);
        if (strstr(name, "no_yes")) assert_non_null(strstr(err.msg, "precision"));
        if (strstr(name, "no_true_positive")) assert_non_null(strstr(err.msg, "F1"));
        if (strstr(name, "foreign")) assert_non_null(strstr(err.msg, "README.txt"));
        if (strstr(name, "without_answers")) assert_non_null(strstr(err.msg, "popular"));
        free(coco);
        free(q);
        free(a);
        rm_tree(dir);
        n++;
    }
    assert_true(n >= 4);
    cJSON_Delete(exp);
}

/* ---- MME ---------------------------------------------------------------------------- */

static void test_mme_fixture(void **state) {
    (void)state;
    cJSON *exp = load_expected("mme");
    assert_true(cJSON_IsFalse(jget(exp, "upstream")));
    char *dir = scratch_copy("mme");
    vr_score_options o = {.exp_name = jstr(exp, "exp_name")};
    vr_score_report rep = {0};
    vr_error err = {0};
    vr_status st = vr_score_mme(dir, &o, &rep, &err);
    if (st != VR_OK) fail_msg("vr_score_mme: %s", err.msg);
    expect_text(rep.stdout_text, jstr(exp, "stdout_official_format"), "MME stdout");
    expect_output_files("mme", exp, dir, &rep);
    const cJSON *cf;
    cJSON_ArrayForEach(cf, jget(exp, "converted_files")) {
        char *p = xasprintf("%s/%s", dir, cf->string);
        char *t = slurp(p, NULL);
        expect_text(t, cf->valuestring, cf->string);
        free(t);
        free(p);
    }
    json_expect_equal(jget(rep.json, "scores"), jget(exp, "scores"), "scores");
    vr_score_report_free(&rep);

    /* one answer dropped: an error naming it; allowed: scored wrong, with a warning */
    char *ans = xasprintf("%s/%s", dir, jstr(jget(exp, "inputs"), "result_file"));
    size_t n = 0;
    char *text = slurp(ans, &n);
    char *nl = strchr(text, '\n');
    assert_non_null(nl);
    cJSON *first = cJSON_ParseWithLength(text, (size_t)(nl - text));
    put_file(dir, jstr(jget(exp, "inputs"), "result_file"), nl + 1);
    st = vr_score_mme(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_INVALID);
    if (!strstr(err.msg, jstr(first, "question_id"))) fail_msg("error does not name the missing answer: %s", err.msg);
    o.allow_missing = 1;
    st = vr_score_mme(dir, &o, &rep, &err);
    if (st != VR_OK) fail_msg("vr_score_mme allow_missing: %s", err.msg);
    assert_true(has_warning(&rep, jstr(first, "question_id")));
    vr_score_report_free(&rep);
    o.allow_missing = 0;
    /* the first answer twice: an error */
    char *dup = xasprintf("%.*s%s", (int)(nl - text + 1), text, text);
    put_file(dir, jstr(jget(exp, "inputs"), "result_file"), dup);
    st = vr_score_mme(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "more than once"));
    /* an answer text with a tab would break the result file */
    cJSON_ReplaceItemInObjectCaseSensitive(first, "text", cJSON_CreateString("Yes\tNo"));
    char *tabbed = cJSON_PrintUnformatted(first);
    char *t2 = xasprintf("%s\n%s", tabbed, nl + 1);
    put_file(dir, jstr(jget(exp, "inputs"), "result_file"), t2);
    st = vr_score_mme(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "tab"));
    /* a question without ground truth */
    cJSON_ReplaceItemInObjectCaseSensitive(first, "text", cJSON_CreateString("Yes"));
    cJSON_ReplaceItemInObjectCaseSensitive(first, "prompt",
                                           cJSON_CreateString("User: <image>\nIs this a test?\nAnswer the question using "
                                                              "a single word or phrase.\n\nAssistant:"));
    char *nogt = cJSON_PrintUnformatted(first);
    char *t3 = xasprintf("%s\n%s", nogt, nl + 1);
    put_file(dir, jstr(jget(exp, "inputs"), "result_file"), t3);
    st = vr_score_mme(dir, &o, &rep, &err);
    assert_int_equal(st, VR_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "Is this a test?"));
    free(nogt);
    free(t3);
    free(tabbed);
    free(t2);
    free(dup);
    cJSON_Delete(first);
    free(text);
    free(ans);
    rm_tree(dir);
    cJSON_Delete(exp);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gqa_fixture),       cmocka_unit_test(test_gqa_crash_cases),
        cmocka_unit_test(test_scienceqa_fixture), cmocka_unit_test(test_scienceqa_crash_cases),
        cmocka_unit_test(test_pope_fixture),      cmocka_unit_test(test_pope_crash_cases),
        cmocka_unit_test(test_mme_fixture),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
