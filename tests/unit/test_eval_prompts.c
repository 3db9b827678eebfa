/* tests/unit/test_eval_prompts.c — benchmark question loading and prompt building against
 * shared/eval-fixtures: every case of prompt_cases.json (question id and its type, input text,
 * human value, prompt, ids, image positions; chunking, is_none, get_question_id,
 * get_input_text), the TSV loader against the records pandas loaded (mmbench/mmbench_cn
 * expected.json loaded_records), the MMBench numeric-column crash case, and the pandas
 * tokenizer / type inference rules on small inline tables. No model needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/mapped_file.h"
#include "eval/eval_prompt.h"
#include "eval/questions.h"
#include "eval/tsv.h"
#include "model/prompt.h"
#include "model/tokenizer.h"
#include "tests/support/fixtures.h"
#include "tests/support/sha256.h"

static vr_tokenizer *g_tok;

static vr_tokenizer *tok(void) {
    if (!g_tok) {
        char path[4200];
        snprintf(path, sizeof path, "%s/rwkv_vocab_v20230424.txt", vrt_shared_dir());
        vr_error err = {0};
        if (vr_tokenizer_load(path, &g_tok, &err) != VR_OK) fail_msg("%s", err.msg);
    }
    return g_tok;
}

static const char *eval_path(const char *rel) {
    static char path[8300];
    snprintf(path, sizeof path, "%s/eval-fixtures/%s", vrt_shared_dir(), rel);
    return path;
}

static cJSON *load_eval_json(const char *rel) {
    char *text = NULL;
    vr_error err = {0};
    if (vr_read_file(eval_path(rel), (size_t)1 << 30, &text, NULL, &err) != VR_OK) fail_msg("%s", err.msg);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) fail_msg("%s: invalid JSON", rel);
    return j;
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) fail_msg("fixture field %s missing", k);
    return v->valuestring;
}

static int b64v(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes standard base64 (padding ignored); malloc'd. */
static uint8_t *b64_decode(const char *s, size_t *n) {
    size_t len = strlen(s);
    uint8_t *o = malloc(len + 1);
    uint32_t acc = 0;
    int bits = 0;
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64v((unsigned char)s[i]);
        if (v < 0) continue;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[(*n)++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

/* The loaded questions of a fixture question file, cached by path. */
typedef struct {
    char path[512];
    vr_question_set qs;
} qcache;
static qcache g_qc[16];

static const vr_question_set *questions(const char *rel) {
    for (int i = 0; i < 16; i++)
        if (g_qc[i].path[0] && strcmp(g_qc[i].path, rel) == 0) return &g_qc[i].qs;
    for (int i = 0; i < 16; i++) {
        if (g_qc[i].path[0]) continue;
        vr_error err = {0};
        if (vr_questions_load(eval_path(rel), 0, &g_qc[i].qs, &err) != VR_OK) fail_msg("%s", err.msg);
        snprintf(g_qc[i].path, sizeof g_qc[i].path, "%s", rel);
        return &g_qc[i].qs;
    }
    fail_msg("question cache full");
    return NULL;
}

static const vr_question *question_at(const vr_question_set *qs, size_t index) {
    for (size_t i = 0; i < qs->n; i++)
        if (qs->items[i].index == index) return &qs->items[i];
    fail_msg("no question with index %zu", index);
    return NULL;
}

/* Compares a loaded record with the fixture's record (the image abbreviated there). */
static void compare_record(const cJSON *got, const cJSON *want, const char *what) {
    const cJSON *w;
    int n_want = 0;
    cJSON_ArrayForEach(w, want) {
        n_want++;
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(got, w->string);
        if (!g) fail_msg("%s: field %s missing", what, w->string);
        if (strcmp(w->string, "image") == 0 && cJSON_IsString(w) && strncmp(w->valuestring, "<base64, ", 9) == 0) {
            assert_true(cJSON_IsString(g));
            size_t chars = 0;
            char sha[65] = "";
            int k = sscanf(w->valuestring, "<base64, %zu chars, sha256 %64[0-9a-f]>", &chars, sha);
            if (k < 1) fail_msg("%s: unexpected image placeholder %s", what, w->valuestring);
            assert_int_equal(strlen(g->valuestring), chars);
            if (k == 2) {
                char hex[65];
                vrt_sha256_hex(g->valuestring, strlen(g->valuestring), hex);
                assert_string_equal(hex, sha);
            }
            continue;
        }
        if (!cJSON_Compare(g, w, 1)) {
            char *a = cJSON_PrintUnformatted(g), *b = cJSON_PrintUnformatted(w);
            fail_msg("%s: field %s is %s, expected %s", what, w->string, a, b);
        }
        /* integers stay integers: a pandas int column gives integral numbers, strings stay strings */
        assert_int_equal(cJSON_IsString(g), cJSON_IsString(w));
    }
    assert_int_equal(cJSON_GetArraySize(got), n_want);
}

static void compare_nan_fields(const vr_question *q, const cJSON *want, const char *what) {
    int n = cJSON_GetArraySize(want);
    if ((int)q->n_nan_fields != n) fail_msg("%s: %zu NaN fields, expected %d", what, q->n_nan_fields, n);
    for (int i = 0; i < n; i++) assert_string_equal(q->nan_fields[i], cJSON_GetArrayItem(want, i)->valuestring);
}

static void assert_ids(const int32_t *got, int n_got, const cJSON *want, const char *what) {
    int n_want = 0;
    int32_t *w = vrt_json_ints(want, &n_want);
    if (n_got != n_want) fail_msg("%s: %d ids, expected %d", what, n_got, n_want);
    for (int i = 0; i < n_got; i++)
        if (got[i] != w[i]) fail_msg("%s: id[%d] = %d, expected %d", what, i, got[i], w[i]);
    free(w);
}

static void check_qid(const vr_question *q, const cJSON *want, const char *what) {
    if (cJSON_IsString(want)) {
        if (q->id_is_int) fail_msg("%s: id is an int, expected the string %s", what, want->valuestring);
        assert_string_equal(q->id_str, want->valuestring);
    } else {
        if (!q->id_is_int) fail_msg("%s: id is a string, expected an int", what);
        assert_true((double)q->id_int == want->valuedouble);
    }
}

static void test_prompt_cases(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *j = load_eval_json("prompt_cases.json");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(j, "image_token_id")->valueint, VR_IMAGE_TOKEN_ID);
    const cJSON *c;
    int n = 0, n_tsv = 0, n_noimg = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "cases")) {
        char what[256];
        snprintf(what, sizeof what, "%s/%s line %d %s", jstr(c, "benchmark"), jstr(c, "split"),
                 cJSON_GetObjectItemCaseSensitive(c, "line_index")->valueint, jstr(c, "image_position"));
        size_t line_index = (size_t)cJSON_GetObjectItemCaseSensitive(c, "line_index")->valueint;
        const vr_question_set *qs = questions(jstr(c, "question_file"));
        const vr_question *q = question_at(qs, line_index);
        const cJSON *raw = cJSON_GetObjectItemCaseSensitive(c, "raw_line");
        const cJSON *rec = cJSON_GetObjectItemCaseSensitive(c, "record");
        vr_error err = {0};
        if (raw) {
            /* the line on its own gives the same record */
            vr_question_set one;
            if (vr_questions_parse(raw->valuestring, strlen(raw->valuestring), "one.jsonl", 0, &one, &err) != VR_OK)
                fail_msg("%s: %s", what, err.msg);
            assert_int_equal(one.n, 1);
            assert_true(cJSON_Compare(one.items[0].record, q->record, 1));
            vr_questions_free(&one);
            assert_int_equal(q->line_no, line_index + 1);
        } else {
            compare_record(q->record, rec, what);
        }
        const cJSON *nanf = cJSON_GetObjectItemCaseSensitive(c, "nan_fields");
        if (nanf) {
            n_tsv++;
            compare_nan_fields(q, nanf, what);
            assert_int_equal(q->image_kind, VR_IMAGE_REF_BASE64);
            const cJSON *dec = cJSON_GetObjectItemCaseSensitive(c, "image_base64_decoded");
            size_t bn = 0;
            uint8_t *bytes = b64_decode(q->image, &bn);
            char hex[65];
            vrt_sha256_hex(bytes, bn, hex);
            free(bytes);
            assert_string_equal(hex, jstr(dec, "bytes_sha256"));
        } else {
            assert_int_equal(q->n_nan_fields, 0);
            const cJSON *img = cJSON_GetObjectItemCaseSensitive(q->record, "image");
            if (img) {
                assert_int_equal(q->image_kind, VR_IMAGE_REF_FILE);
                assert_string_equal(q->image, img->valuestring);
            } else {
                assert_int_equal(q->image_kind, VR_IMAGE_REF_NONE);
                assert_null(q->image);
                n_noimg++;
            }
        }
        check_qid(q, cJSON_GetObjectItemCaseSensitive(c, "question_id"), what);

        vr_image_position pos;
        assert_int_equal(vr_image_position_parse(jstr(c, "image_position"), &pos, &err), VR_OK);
        vr_eval_prompt p;
        if (vr_eval_prompt_build(q->record, jstr(c, "dataset_name"), pos, tok(), &p, &err) != VR_OK)
            fail_msg("%s: %s", what, err.msg);
        if (strcmp(p.input_text, jstr(c, "input_text")) != 0)
            fail_msg("%s: input text \"%s\", expected \"%s\"", what, p.input_text, jstr(c, "input_text"));
        if (strcmp(p.prompt, jstr(c, "prompt")) != 0)
            fail_msg("%s: prompt \"%s\", expected \"%s\"", what, p.prompt, jstr(c, "prompt"));
        assert_ids(p.ids, p.n_ids, cJSON_GetObjectItemCaseSensitive(c, "input_ids"), what);
        assert_int_equal(p.n_ids, cJSON_GetObjectItemCaseSensitive(c, "n_tokens")->valueint);
        /* image token positions */
        const cJSON *itp = cJSON_GetObjectItemCaseSensitive(c, "image_token_positions");
        int k = 0;
        for (int i = 0; i < p.n_ids; i++) {
            if (p.ids[i] != VR_IMAGE_TOKEN_ID) continue;
            const cJSON *want = cJSON_GetArrayItem(itp, k++);
            if (!want || want->valueint != i) fail_msg("%s: image token at %d unexpected", what, i);
        }
        assert_int_equal(k, cJSON_GetArraySize(itp));
        assert_int_equal(p.has_image, strstr(p.input_text, "<image>") != NULL);
        /* the human value on its own, and the same prompt from the model-side builder */
        char *hv = NULL;
        assert_int_equal(vr_prompt_process_message(p.input_text, pos, &hv, &err), VR_OK);
        if (strcmp(hv, jstr(c, "human_value_after_image_processing")) != 0)
            fail_msg("%s: human value \"%s\", expected \"%s\"", what, hv, jstr(c, "human_value_after_image_processing"));
        free(hv);
        vr_prompt_built b;
        assert_int_equal(vr_prompt_build(NULL, p.input_text, pos, &b, &err), VR_OK);
        assert_null(b.ids);
        assert_string_equal(b.text, p.prompt);
        vr_prompt_built_free(&b);
        vr_eval_prompt_free(&p);
        n++;
    }
    assert_true(n >= 100);
    assert_true(n_tsv > 0);
    cJSON_Delete(j);
    (void)n_noimg;
}

static void test_chunking(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *j = load_eval_json("prompt_cases.json");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "chunking")) {
        size_t n = (size_t)cJSON_GetObjectItemCaseSensitive(c, "n_items")->valueint;
        int nc = cJSON_GetObjectItemCaseSensitive(c, "num_chunks")->valueint;
        const cJSON *ch;
        cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(c, "chunks_half_open")) {
            int k = cJSON_GetObjectItemCaseSensitive(ch, "chunk_idx")->valueint;
            size_t a = 99, b = 99;
            vr_error err = {0};
            vr_status st = vr_questions_chunk(n, nc, k, &a, &b, &err);
            const cJSON *items = cJSON_GetObjectItemCaseSensitive(ch, "items");
            if (items) {
                if (st != VR_OK) fail_msg("n=%zu chunks=%d k=%d: %s", n, nc, k, err.msg);
                assert_int_equal(a, cJSON_GetArrayItem(items, 0)->valueint);
                assert_int_equal(b, cJSON_GetArrayItem(items, 1)->valueint);
            } else {
                assert_int_equal(st, VR_ERR_INVALID);
                assert_non_null(strstr(err.msg, "IndexError"));
            }
        }
    }
    cJSON_Delete(j);
    size_t a, b;
    vr_error err = {0};
    assert_int_equal(vr_questions_chunk(0, 1, 0, &a, &b, &err), VR_ERR_INVALID);
    assert_int_equal(vr_questions_chunk(5, 0, 0, &a, &b, &err), VR_ERR_INVALID);
    assert_int_equal(vr_questions_chunk(5, 2, -1, &a, &b, &err), VR_ERR_INVALID);
    assert_int_equal(vr_questions_chunk(5, 2, 2, &a, &b, &err), VR_ERR_INVALID);
}

static void test_is_none_and_ids(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *j = load_eval_json("prompt_cases.json");
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "is_none")) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "value");
        cJSON *val = NULL;
        /* a Python float NaN is what pandas gives for NA; the loader turns it into null */
        if (strcmp(jstr(c, "type"), "float") == 0 && cJSON_IsString(v)) val = cJSON_CreateNull();
        else val = cJSON_Duplicate(v, 1);
        int want = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "is_none"));
        char *s = cJSON_PrintUnformatted(v);
        if (vr_eval_is_none(val) != want) fail_msg("is_none(%s %s) != %d", jstr(c, "type"), s, want);
        free(s);
        cJSON_Delete(val);
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "get_question_id")) {
        vr_question q;
        vr_error err = {0};
        vr_status st = vr_question_id(cJSON_GetObjectItemCaseSensitive(c, "line"), &q, &err);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "question_id");
        if (want) {
            assert_int_equal(st, VR_OK);
            check_qid(&q, want, "get_question_id");
        } else {
            assert_int_equal(st, VR_ERR_FORMAT);
            assert_non_null(strstr(err.msg, "question id"));
        }
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(j, "get_input_text_default")) {
        char *t = NULL;
        vr_error err = {0};
        vr_status st = vr_eval_input_text(cJSON_GetObjectItemCaseSensitive(c, "line"),
                                          vr_eval_dataset_from_name(jstr(c, "dataset_name")), &t, &err);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "input_text");
        if (want) {
            assert_int_equal(st, VR_OK);
            assert_string_equal(t, want->valuestring);
        } else {
            assert_int_equal(st, VR_ERR_FORMAT);
            assert_non_null(strstr(err.msg, "input text"));
            assert_null(t);
        }
        free(t);
    }
    cJSON_Delete(j);
}

/* Every MMBench TSV row as pandas loaded it, and the crash cases of prompt building. */
static void check_mmbench(const char *bench) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/expected.json", bench);
    cJSON *j = load_eval_json(rel);
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(j, "inputs");
    snprintf(rel, sizeof rel, "%s/input/%s", bench, jstr(inputs, "question_file_for_evaluate_py"));
    const vr_question_set *qs = questions(rel);
    assert_int_equal(qs->format, VR_QFILE_TSV);
    const cJSON *lr = cJSON_GetObjectItemCaseSensitive(j, "loaded_records");
    assert_int_equal(qs->n, (size_t)cJSON_GetArraySize(lr));
    size_t i = 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, lr) {
        char what[128];
        snprintf(what, sizeof what, "%s row %zu", bench, i);
        compare_record(qs->items[i].record, cJSON_GetObjectItemCaseSensitive(r, "record"), what);
        compare_nan_fields(&qs->items[i], cJSON_GetObjectItemCaseSensitive(r, "nan_fields"), what);
        assert_true(qs->items[i].id_is_int);
        /* every row builds a prompt */
        vr_eval_prompt p;
        vr_error err = {0};
        if (vr_eval_prompt_build(qs->items[i].record, bench, VR_IMAGE_FIRST, NULL, &p, &err) != VR_OK)
            fail_msg("%s: %s", what, err.msg);
        vr_eval_prompt_free(&p);
        i++;
    }
    const cJSON *cc;
    cJSON_ArrayForEach(cc, cJSON_GetObjectItemCaseSensitive(j, "crash_cases")) {
        if (!cJSON_GetObjectItemCaseSensitive(cc, "called")) continue; /* conversion cases: test_score_mmbench */
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(cc, "files")->child;
        vr_question_set one;
        vr_error err = {0};
        if (vr_questions_parse(f->valuestring, strlen(f->valuestring), f->string, 0, &one, &err) != VR_OK)
            fail_msg("%s: %s", jstr(cc, "name"), err.msg);
        assert_true(one.n > 0);
        vr_eval_prompt p;
        vr_status st = vr_eval_prompt_build(one.items[0].record, bench, VR_IMAGE_FIRST, NULL, &p, &err);
        if (st == VR_OK) fail_msg("%s: expected an error (upstream: %s)", jstr(cc, "name"), jstr(cc, "exception"));
        assert_int_equal(st, VR_ERR_FORMAT);
        assert_non_null(strstr(err.msg, "TypeError"));
        assert_null(p.input_text);
        vr_questions_free(&one);
    }
    cJSON_Delete(j);
}

static void test_mmbench_records(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    check_mmbench("mmbench");
    check_mmbench("mmbench_cn");
}

/* ------------------------------------------------------------------ inline TSV rules */

static void parse_tsv(const char *text, vr_tsv_table *t) {
    vr_error err = {0};
    if (vr_tsv_parse(text, strlen(text), "t.tsv", t, &err) != VR_OK) fail_msg("%s", err.msg);
}

static void test_tsv_rules(void **state) {
    (void)state;
    vr_tsv_table t;
    vr_error err = {0};
    /* quoting, multi-line field, "" escape, literal quote inside, blank and spaces-only lines,
     * \r\n endings, short rows padded, NA strings exact */
    parse_tsv("a\tb\tc\r\n"
              "1\t\"x\ty\nz\"\"q\"\tab\"c\r\n"
              "\n"
              "   \n"
              "2\tNA\r\n"
              " 3 \t N/A\tnull\n"
              "4\t\"\"\t\"q\"r\n",
              &t);
    assert_int_equal(t.n_cols, 3);
    assert_int_equal(t.n_rows, 4);
    assert_int_equal(t.types[0], VR_TSV_INT);
    assert_int_equal(t.types[1], VR_TSV_STRING);
    assert_int_equal(t.types[2], VR_TSV_STRING);
    assert_int_equal(vr_tsv_at(&t, 2, 0)->i, 3);
    assert_string_equal(vr_tsv_at(&t, 0, 1)->text, "x\ty\nz\"q");
    assert_string_equal(vr_tsv_at(&t, 0, 2)->text, "ab\"c");
    assert_true(vr_tsv_at(&t, 1, 1)->na);
    assert_true(vr_tsv_at(&t, 1, 2)->na); /* padded */
    assert_false(vr_tsv_at(&t, 2, 1)->na); /* " N/A" is not NA */
    assert_true(vr_tsv_at(&t, 2, 2)->na);
    assert_true(vr_tsv_at(&t, 3, 1)->na); /* quoted empty */
    assert_string_equal(vr_tsv_at(&t, 3, 2)->text, "qr");
    assert_int_equal(t.row_line[0], 2);
    assert_int_equal(t.row_line[1], 6);
    cJSON *row = vr_tsv_row_json(&t, 1);
    char *s = cJSON_PrintUnformatted(row);
    assert_string_equal(s, "{\"a\":2,\"b\":null,\"c\":null}");
    free(s);
    cJSON_Delete(row);
    vr_tsv_free(&t);

    /* type inference: int with NaN -> float; floats; bools; mixed -> strings kept verbatim;
     * all-NA -> float; header renaming */
    parse_tsv("i\tf\tb\ts\t\ti\tn\n"
              "1\t1.5\tTrue\t3\tx\t7\t\n"
              "\t-2e3\tfalse\t007\ty\t8\tnan\n"
              "+3\t.5\tTRUE\tabc\tz\t9\t\n",
              &t);
    assert_string_equal(t.names[4], "Unnamed: 4");
    assert_string_equal(t.names[5], "i.1");
    assert_int_equal(t.types[0], VR_TSV_FLOAT);
    assert_int_equal(t.types[1], VR_TSV_FLOAT);
    assert_int_equal(t.types[2], VR_TSV_BOOL);
    assert_int_equal(t.types[3], VR_TSV_STRING);
    assert_int_equal(t.types[5], VR_TSV_INT);
    assert_int_equal(t.types[6], VR_TSV_FLOAT);
    assert_true(vr_tsv_at(&t, 1, 1)->d == -2000.0);
    assert_string_equal(vr_tsv_at(&t, 1, 3)->text, "007");
    row = vr_tsv_row_json(&t, 2);
    s = cJSON_PrintUnformatted(row);
    assert_string_equal(s, "{\"i\":3,\"f\":0.5,\"b\":true,\"s\":\"abc\",\"Unnamed: 4\":\"z\",\"i.1\":9,\"n\":null}");
    free(s);
    cJSON_Delete(row);
    vr_tsv_free(&t);

    /* errors: an unclosed quote, a row longer than the rows before it, invalid UTF-8 */
    assert_int_equal(vr_tsv_parse("a\tb\n\"x\t1\n", 9, "t.tsv", &t, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 2"));
    const char *longer = "a\tb\n1\t2\n3\t4\t5\n";
    assert_int_equal(vr_tsv_parse(longer, strlen(longer), "t.tsv", &t, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 3"));
    const char *bad = "a\tb\n1\t\xff\n";
    assert_int_equal(vr_tsv_parse(bad, strlen(bad), "t.tsv", &t, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "UTF-8"));
    /* a first data row longer than the header: its leading fields are an implicit index */
    parse_tsv("a\tb\nk\t1\t2\n", &t);
    assert_int_equal(t.n_cols, 2);
    assert_int_equal(vr_tsv_at(&t, 0, 0)->i, 1);
    vr_tsv_free(&t);
    /* a lone \r ends a line too */
    parse_tsv("a\rx\ry", &t);
    assert_int_equal(t.n_rows, 2);
    assert_string_equal(vr_tsv_at(&t, 1, 0)->text, "y");
    vr_tsv_free(&t);
}

static void test_jsonl_errors(void **state) {
    (void)state;
    const char *text = "{\"question_id\": 1, \"text\": \"a\"}\n"
                       "\n"
                       "{\"question_id\": 2, \"text\": \"b\"\n"
                       "{\"text\": \"no id\"}\r\n"
                       "[1, 2]\n"
                       "{\"id\": \"x\", \"text\": \"c\", \"id\": \"y\", \"image\": \"i.jpg\"}";
    vr_question_set qs;
    vr_error err = {0};
    assert_int_equal(vr_questions_parse(text, strlen(text), "q.jsonl", 0, &qs, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "line 2"));
    assert_int_equal(vr_questions_parse(text, strlen(text), "q.jsonl", 1, &qs, &err), VR_OK);
    assert_int_equal(qs.n, 2);
    assert_int_equal(qs.n_errors, 4);
    assert_int_equal(qs.errors[0].line_no, 2);
    assert_non_null(strstr(qs.errors[0].msg, "blank"));
    assert_int_equal(qs.errors[1].line_no, 3);
    assert_int_equal(qs.errors[2].line_no, 4);
    assert_non_null(strstr(qs.errors[2].msg, "question id"));
    assert_int_equal(qs.errors[3].line_no, 5);
    assert_true(qs.items[0].id_is_int);
    assert_int_equal(qs.items[0].id_int, 1);
    assert_int_equal(qs.items[0].image_kind, VR_IMAGE_REF_NONE);
    /* duplicate keys: the last value wins (Python json) */
    assert_false(qs.items[1].id_is_int);
    assert_string_equal(qs.items[1].id_str, "y");
    assert_int_equal(qs.items[1].index, 5);
    assert_int_equal(qs.items[1].line_no, 6);
    assert_int_equal(qs.items[1].image_kind, VR_IMAGE_REF_FILE);
    assert_string_equal(qs.items[1].image, "i.jpg");
    assert_int_equal(cJSON_GetArraySize(qs.items[1].record), 3);
    assert_string_equal(cJSON_GetArrayItem(qs.items[1].record, 0)->string, "id");
    vr_questions_free(&qs);
    assert_int_equal(vr_questions_parse("{}", 2, "q.csv", 1, &qs, &err), VR_ERR_INVALID);
    assert_int_equal(vr_questions_parse("{}", 2, "q.json", 1, &qs, &err), VR_ERR_FORMAT);
    assert_int_equal(vr_questions_load("/nonexistent/q.jsonl", 1, &qs, &err), VR_ERR_IO);
}

static void test_prompt_refusals(void **state) {
    (void)state;
    char *v = NULL;
    vr_error err = {0};
    assert_int_equal(vr_prompt_process_message("<image>\na <image> b", VR_IMAGE_FIRST, &v, &err), VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "Too many images"));
    assert_null(v);
    assert_int_equal(vr_prompt_process_message("a\n\n \nb  ", VR_IMAGE_MIDDLE, &v, &err), VR_OK);
    assert_string_equal(v, "a\nb");
    free(v);
    assert_int_equal(vr_prompt_process_message("  x <image> y\n\n", VR_IMAGE_LAST, &v, &err), VR_OK);
    assert_string_equal(v, "x  y\n<image>");
    free(v);
    /* MMBench: a non-text hint or question is refused, a none option cuts the list */
    cJSON *r = cJSON_Parse("{\"question\": \"Q\", \"hint\": 3, \"A\": \"x\", \"B\": \"y\", \"C\": null, \"D\": \"z\"}");
    char *t = NULL;
    assert_int_equal(vr_eval_input_text(r, VR_EVAL_DATASET_MMBENCH, &t, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "hint"));
    cJSON_ReplaceItemInObject(r, "hint", cJSON_CreateString("NONE"));
    assert_int_equal(vr_eval_input_text(r, VR_EVAL_DATASET_MMBENCH_CN, &t, &err), VR_OK);
    assert_string_equal(t, "<image>\nQ\nA. x\nB. y\n" VR_MMBENCH_INSTRUCTION_CN);
    free(t);
    /* upstream stops at the first none option before looking at D: a missing D is fine */
    cJSON_DeleteItemFromObject(r, "D");
    assert_int_equal(vr_eval_input_text(r, VR_EVAL_DATASET_MMBENCH, &t, &err), VR_OK);
    free(t);
    cJSON_DeleteItemFromObject(r, "A");
    assert_int_equal(vr_eval_input_text(r, VR_EVAL_DATASET_MMBENCH, &t, &err), VR_ERR_FORMAT);
    assert_non_null(strstr(err.msg, "\"A\""));
    cJSON_Delete(r);
}

static int teardown(void **state) {
    (void)state;
    vr_tokenizer_free(g_tok);
    g_tok = NULL;
    for (int i = 0; i < 16; i++) {
        if (g_qc[i].path[0]) vr_questions_free(&g_qc[i].qs);
        g_qc[i].path[0] = 0;
    }
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompt_cases),    cmocka_unit_test(test_chunking),
        cmocka_unit_test(test_is_none_and_ids), cmocka_unit_test(test_mmbench_records),
        cmocka_unit_test(test_tsv_rules),       cmocka_unit_test(test_jsonl_errors),
        cmocka_unit_test(test_prompt_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
