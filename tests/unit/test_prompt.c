/* tests/unit/test_prompt.c — prompt construction against fixtures/prompts.json (all questions
 * x image positions, the second turn, the same through vr_prompt_build), Python str semantics
 * (strip, \s, newline collapsing, middle-mode instruction removal), messages without or with
 * too many <image> markers, and the refusal of a literal <image>. No model needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "model/prompt.h"
#include "model/tokenizer.h"
#include "tests/support/fixtures.h"

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

static void assert_ids(const int32_t *got, int n_got, const cJSON *want, const char *what) {
    int n_want = 0;
    int32_t *w = vrt_json_ints(want, &n_want);
    if (n_got != n_want) fail_msg("%s: %d ids, expected %d", what, n_got, n_want);
    for (int i = 0; i < n_got; i++)
        if (got[i] != w[i]) fail_msg("%s: id[%d] = %d, expected %d", what, i, got[i], w[i]);
    free(w);
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(v)) fail_msg("fixture field %s missing", k);
    return v->valuestring;
}

static void test_fixture_prompts(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    cJSON *j = vrt_load_json("prompts.json");
    const cJSON *prompts = cJSON_GetObjectItemCaseSensitive(j, "prompts");
    const cJSON *p;
    int n = 0;
    cJSON_ArrayForEach(p, prompts) {
        const char *what = p->string;
        vr_image_position pos;
        vr_error err = {0};
        assert_int_equal(vr_image_position_parse(jstr(p, "image_position"), &pos, &err), VR_OK);
        assert_string_equal(vr_image_position_name(pos), jstr(p, "image_position"));
        const char *q = jstr(p, "question");
        char *value = NULL;
        if (vr_prompt_human_value(q, 1, pos, &value, &err) != VR_OK) fail_msg("%s: %s", what, err.msg);
        if (strcmp(value, jstr(p, "human_value_after_processing")) != 0)
            fail_msg("%s: value \"%s\", expected \"%s\"", what, value, jstr(p, "human_value_after_processing"));
        /* the full text */
        char text[4096];
        snprintf(text, sizeof text, "User: %s\n\nAssistant:", value);
        assert_string_equal(text, jstr(p, "text"));
        free(value);
        int32_t *ids = NULL;
        int n_ids = 0;
        if (vr_prompt_first_turn(tok(), q, 1, pos, &ids, &n_ids, &err) != VR_OK) fail_msg("%s: %s", what, err.msg);
        assert_ids(ids, n_ids, cJSON_GetObjectItemCaseSensitive(p, "input_ids"), what);
        /* the shared builder on the raw human message gives the same text and ids */
        char msg[4096];
        snprintf(msg, sizeof msg, "<image>\n%s", q);
        vr_prompt_built b;
        if (vr_prompt_build(tok(), msg, pos, &b, &err) != VR_OK) fail_msg("%s: %s", what, err.msg);
        assert_string_equal(b.text, jstr(p, "text"));
        assert_ids(b.ids, b.n_ids, cJSON_GetObjectItemCaseSensitive(p, "input_ids"), what);
        vr_prompt_built_free(&b);
        int img = cJSON_GetObjectItemCaseSensitive(p, "image_token_index")->valueint;
        assert_int_equal(ids[img], VR_IMAGE_TOKEN_ID);
        int n_img = 0;
        for (int i = 0; i < n_ids; i++) n_img += ids[i] == VR_IMAGE_TOKEN_ID;
        assert_int_equal(n_img, 1);
        free(ids);
        n++;
    }
    assert_int_equal(n, 9);

    const cJSON *t2 = cJSON_GetObjectItemCaseSensitive(j, "turn2");
    int32_t *ids = NULL;
    int n_ids = 0;
    vr_error err = {0};
    assert_int_equal(vr_prompt_next_turn(tok(), jstr(j, "followup_question"), &ids, &n_ids, &err), VR_OK);
    assert_ids(ids, n_ids, cJSON_GetObjectItemCaseSensitive(t2, "ids"), "turn2");
    free(ids);
    cJSON_Delete(j);
}

static void check_value(const char *q, int with_image, vr_image_position pos, const char *want) {
    char *v = NULL;
    vr_error err = {0};
    if (vr_prompt_human_value(q, with_image, pos, &v, &err) != VR_OK) fail_msg("%s", err.msg);
    if (strcmp(v, want) != 0) fail_msg("value of \"%s\": \"%s\", expected \"%s\"", q, v, want);
    free(v);
}

static void test_python_semantics(void **state) {
    (void)state;
    /* strip() removes Unicode whitespace (U+3000, U+00A0, U+2028, \x1c..\x1f, \v, \f) */
    check_value("\xE3\x80\x80\xC2\xA0 \t\v\f\x1c hi \xE2\x80\xA8\r\n", 0, VR_IMAGE_FIRST, "hi");
    /* but not U+200B (zero width space is not whitespace in Python) */
    check_value("\xE2\x80\x8Bhi", 0, VR_IMAGE_FIRST, "\xE2\x80\x8Bhi");
    /* \n(\s*\n)+ -> \n, \s including Unicode spaces; a lone newline stays; trailing spaces before
     * a newline stay */
    check_value("a\n \xE3\x80\x80\t\n\nb", 0, VR_IMAGE_FIRST, "a\nb");
    check_value("a  \n  b", 0, VR_IMAGE_FIRST, "a  \n  b");
    check_value("a\n\n  b\n \n c", 0, VR_IMAGE_FIRST, "a\n  b\n c");
    check_value("a\r\n\r\nb", 0, VR_IMAGE_FIRST, "a\r\nb");
    check_value("", 0, VR_IMAGE_FIRST, "");
    /* image positions */
    check_value("  Q?  ", 1, VR_IMAGE_FIRST, "<image>\nQ?");
    check_value("  Q?  ", 1, VR_IMAGE_LAST, "Q?\n<image>");
    check_value("  Q?  ", 1, VR_IMAGE_MIDDLE, "Q?\n<image>\nQ?");
    /* middle: the instruction is removed before the image only; if nothing remains the value
     * starts at the image */
    check_value("Answer the question using a single word or phrase.", 1, VR_IMAGE_MIDDLE,
                 "<image>\nAnswer the question using a single word or phrase.");
    check_value("A?\nAnswer the question using a single word or phrase.\nB?", 1, VR_IMAGE_MIDDLE,
                 "A?\nB?\n<image>\nA?\nAnswer the question using a single word or phrase.\nB?");
    check_value("", 1, VR_IMAGE_LAST, "<image>");
    check_value("", 1, VR_IMAGE_MIDDLE, "<image>");
}

static void test_image_chunks(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    /* "User: " before the image is tokenised on its own: ... 59 ':', 33 ' ', -200 */
    int32_t *ids = NULL;
    int n = 0;
    vr_error err = {0};
    assert_int_equal(vr_prompt_first_turn(tok(), "What is in this image?", 1, VR_IMAGE_FIRST, &ids, &n, &err), VR_OK);
    assert_true(n > 4);
    assert_int_equal(ids[0], 24281);
    assert_int_equal(ids[1], 59);
    assert_int_equal(ids[2], 33);
    assert_int_equal(ids[3], VR_IMAGE_TOKEN_ID);
    free(ids);
    /* text-only first turn: no image id */
    assert_int_equal(vr_prompt_first_turn(tok(), "Hi", 0, VR_IMAGE_FIRST, &ids, &n, &err), VR_OK);
    for (int i = 0; i < n; i++) assert_true(ids[i] > 0);
    assert_int_equal(ids[n - 1], 59);
    free(ids);
}

static void test_refusals(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    int32_t *ids = NULL;
    int n = 0;
    vr_error err = {0};
    assert_int_equal(vr_prompt_first_turn(tok(), "look at <image> please", 1, VR_IMAGE_FIRST, &ids, &n, &err),
                     VR_ERR_INVALID);
    assert_null(ids);
    assert_non_null(strstr(err.msg, "<image>"));
    assert_int_equal(vr_prompt_first_turn(tok(), "<image>", 0, VR_IMAGE_FIRST, &ids, &n, &err), VR_ERR_INVALID);
    assert_int_equal(vr_prompt_next_turn(tok(), "and <image>?", &ids, &n, &err), VR_ERR_INVALID);
    assert_null(ids);
    /* near misses are fine */
    assert_int_equal(vr_prompt_next_turn(tok(), "<imag> <IMAGE>", &ids, &n, &err), VR_OK);
    free(ids);
    char *v = NULL;
    assert_int_equal(vr_prompt_human_value("bad \xff utf8", 0, VR_IMAGE_FIRST, &v, &err), VR_ERR_INVALID);
    assert_null(v);
    assert_int_equal(vr_prompt_human_value(NULL, 0, VR_IMAGE_FIRST, &v, &err), VR_ERR_INVALID);
}

/* vr_prompt_process_message: a message without marker is only stripped and collapsed (ScienceQA
 * without image), one marker is placed, two are refused like upstream's "Too many images". */
static void test_process_message(void **state) {
    (void)state;
    char *v = NULL;
    vr_error err = {0};
    assert_int_equal(vr_prompt_process_message(" Q?\n\n\nA. x ", VR_IMAGE_MIDDLE, &v, &err), VR_OK);
    assert_string_equal(v, "Q?\nA. x");
    free(v);
    assert_int_equal(vr_prompt_process_message("Q? <image>", VR_IMAGE_FIRST, &v, &err), VR_OK);
    assert_string_equal(v, "<image>\nQ?");
    free(v);
    assert_int_equal(vr_prompt_process_message("<image><image>", VR_IMAGE_LAST, &v, &err), VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "Too many images"));
    assert_null(v);
    vr_prompt_built b;
    assert_int_equal(vr_prompt_build(NULL, "", VR_IMAGE_FIRST, &b, &err), VR_OK);
    assert_string_equal(b.text, "User: \n\nAssistant:");
    assert_null(b.ids);
    vr_prompt_built_free(&b);
    assert_int_equal(vr_prompt_build(NULL, "\xff", VR_IMAGE_FIRST, &b, &err), VR_ERR_INVALID);
    assert_null(b.text);
}

static void test_position_names(void **state) {
    (void)state;
    vr_image_position p;
    vr_error err = {0};
    assert_int_equal(vr_image_position_parse("sandwich", &p, &err), VR_OK);
    assert_int_equal(p, VR_IMAGE_MIDDLE);
    assert_int_equal(vr_image_position_parse("first", &p, &err), VR_OK);
    assert_int_equal(p, VR_IMAGE_FIRST);
    assert_int_equal(vr_image_position_parse("last", &p, &err), VR_OK);
    assert_int_equal(p, VR_IMAGE_LAST);
    assert_int_equal(vr_image_position_parse("top", &p, &err), VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "first, middle"));
    assert_int_equal(vr_image_position_parse(NULL, &p, &err), VR_ERR_INVALID);
    assert_string_equal(vr_image_position_name(VR_IMAGE_MIDDLE), "middle");
}

static int teardown(void **state) {
    (void)state;
    vr_tokenizer_free(g_tok);
    g_tok = NULL;
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_prompts), cmocka_unit_test(test_python_semantics),
        cmocka_unit_test(test_image_chunks),    cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_position_names), cmocka_unit_test(test_process_message),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
