/* tests/unit/test_config.c — vr_config_load: hyper-parameters inferred from the fixture
 * checkpoints with and without model.json agree with model.json; contradicting configs are
 * refused naming the field; vr_config_write_json round-trips. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/checkpoint.h"
#include "model/config.h"
#include "tests/support/fixtures.h"

static char g_tmpdir[256];

static int setup_tmp(void **state) {
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(g_tmpdir, sizeof g_tmpdir, "%s/vrt_cfg_XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(g_tmpdir) ? 0 : -1;
}

static int teardown_tmp(void **state) {
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", g_tmpdir, name);
    return p;
}

static vr_checkpoint *open_set(const char *set) {
    char rel[64];
    snprintf(rel, sizeof rel, "%s/model.pth", set);
    vr_checkpoint *ck = NULL;
    vr_error err = {0};
    if (vr_checkpoint_open(vrt_fixture_path(rel), &ck, &err) != VR_OK) fail_msg("%s", err.msg);
    return ck;
}

static int jint(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j)) fail_msg("model.json lacks %s", k);
    return (int)j->valuedouble;
}

/* Everything the checkpoint shapes tell must match model.json. */
static void check_against_json(const vr_model_config *c, const cJSON *mj, int check_config_only_fields) {
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(mj, "rwkv");
    const cJSON *vis = cJSON_GetObjectItemCaseSensitive(mj, "vision");
    assert_int_equal(c->vocab_size, jint(rw, "vocab_size"));
    assert_int_equal(c->n_embd, jint(rw, "n_embd"));
    assert_int_equal(c->n_layer, jint(rw, "n_layer"));
    assert_int_equal(c->dim_att, jint(rw, "dim_att"));
    assert_int_equal(c->dim_ffn, jint(rw, "dim_ffn"));
    assert_int_equal(c->head_size, jint(rw, "head_size"));
    assert_int_equal(c->n_head, jint(rw, "n_head"));
    assert_int_equal(c->d_mix_lora, jint(rw, "D_MIX_LORA"));
    assert_int_equal(c->d_decay_lora, jint(rw, "D_DECAY_LORA"));
    assert_int_equal(c->head_size_divisor, 8);
    assert_float_equal(c->ln_x_eps, 6.4e-4f, 1e-9);
    assert_float_equal(c->layer_norm_eps, 1e-5f, 1e-12);
    assert_true(c->has_vision);
    assert_int_equal(c->vis_hidden, jint(vis, "hidden_size"));
    assert_int_equal(c->vis_intermediate, jint(vis, "intermediate_size"));
    assert_int_equal(c->vis_layers, jint(vis, "num_hidden_layers"));
    assert_int_equal(c->vis_heads, jint(vis, "num_attention_heads"));
    assert_int_equal(c->image_size, jint(vis, "image_size"));
    assert_int_equal(c->patch_size, jint(vis, "patch_size"));
    assert_int_equal(c->vis_grid, jint(vis, "grid"));
    assert_float_equal(c->vis_ln_eps, 1e-5f, 1e-12);
    assert_int_equal(c->stop_token, jint(mj, "stop_token"));
    if (check_config_only_fields) {
        assert_int_equal(c->grid_size, jint(mj, "grid_size"));
        assert_int_equal(c->num_image_tokens, jint(mj, "num_image_tokens"));
    }
    const cJSON *ip = cJSON_GetObjectItemCaseSensitive(mj, "image_processor");
    for (int i = 0; i < 3; i++) {
        assert_float_equal(c->image_mean[i],
                           cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ip, "image_mean"), i)->valuedouble,
                           1e-7);
        assert_float_equal(c->image_std[i],
                           cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ip, "image_std"), i)->valuedouble,
                           1e-7);
    }
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

static void with_model_json(const char *set, int expect_tokens) {
    VRT_REQUIRE_SHARED();
    char rel[64];
    snprintf(rel, sizeof rel, "%s/model.json", set);
    cJSON *mj = vrt_load_json(rel);
    vr_checkpoint *ck = open_set(set);
    vr_model_config c;
    vr_error err = {0};
    if (vr_config_load(ck, vrt_fixture_path(rel), &c, &err) != VR_OK) fail_msg("%s", err.msg);
    check_against_json(&c, mj, 1);
    assert_int_equal(c.num_image_tokens, expect_tokens);
    /* write_json -> load again gives the same config */
    if (vr_config_write_json(&c, tmp_path("written.json"), &err) != VR_OK) fail_msg("%s", err.msg);
    vr_model_config c2;
    if (vr_config_load(ck, tmp_path("written.json"), &c2, &err) != VR_OK) fail_msg("%s", err.msg);
    assert_memory_equal(&c, &c2, sizeof c);
    vr_checkpoint_free(ck);
    cJSON_Delete(mj);
}

static void test_tiny_with_json(void **state) {
    (void)state;
    with_model_json("tiny", 17);
}

static void test_grid_with_json(void **state) {
    (void)state;
    with_model_json("grid", 5);
}

static void without_model_json(const char *set, int expect_tokens) {
    VRT_REQUIRE_SHARED();
    char rel[64];
    snprintf(rel, sizeof rel, "%s/model.json", set);
    cJSON *mj = vrt_load_json(rel);
    vr_checkpoint *ck = open_set(set);
    vr_model_config c;
    vr_error err = {0};
    /* CLIP hidden 32 is not a multiple of 64: the heads cannot be inferred and must be given. */
    vr_status st = vr_config_load(ck, NULL, &c, &err);
    assert_int_equal(st, VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "num_attention_heads"));
    /* Only the heads given (under the alias): everything else is inferred. */
    write_text(tmp_path("heads.json"), "{\"vision\": {\"vision_heads\": 4}}");
    if (vr_config_load(ck, tmp_path("heads.json"), &c, &err) != VR_OK) fail_msg("%s", err.msg);
    check_against_json(&c, mj, 0);
    assert_int_equal(c.grid_size, -1);
    assert_int_equal(c.num_image_tokens, expect_tokens);
    vr_checkpoint_free(ck);
    cJSON_Delete(mj);
}

static void test_tiny_without_json(void **state) {
    (void)state;
    without_model_json("tiny", 17);
}

static void test_grid_without_json(void **state) {
    (void)state;
    without_model_json("grid", 65);
}

/* model.json of `set` with `edit` applied (a cJSON change), loaded against the checkpoint. */
static vr_status load_edited(const char *set, void (*edit)(cJSON *), vr_error *err) {
    char rel[64];
    snprintf(rel, sizeof rel, "%s/model.json", set);
    cJSON *mj = vrt_load_json(rel);
    edit(mj);
    char *text = cJSON_Print(mj);
    write_text(tmp_path("edited.json"), text);
    cJSON_free(text);
    cJSON_Delete(mj);
    vr_checkpoint *ck = open_set(set);
    vr_model_config c;
    vr_status st = vr_config_load(ck, tmp_path("edited.json"), &c, err);
    vr_checkpoint_free(ck);
    return st;
}

static void set_num(cJSON *o, const char *k, double v) {
    cJSON_ReplaceItemInObjectCaseSensitive(o, k, cJSON_CreateNumber(v));
}
static cJSON *sub(cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static void e_n_embd(cJSON *j) { set_num(sub(j, "rwkv"), "n_embd", 32); }
static void e_n_layer(cJSON *j) { set_num(sub(j, "rwkv"), "n_layer", 5); }
static void e_head_size(cJSON *j) { set_num(sub(j, "rwkv"), "head_size", 32); }
static void e_patch(cJSON *j) { set_num(sub(j, "vision"), "patch_size", 16); }
static void e_image(cJSON *j) { set_num(sub(j, "vision"), "image_size", 224); }
static void e_heads(cJSON *j) {
    set_num(sub(j, "vision"), "num_attention_heads", 5);
    set_num(sub(j, "vision"), "vision_heads", 5);
}
static void e_heads_disagree(cJSON *j) { set_num(sub(j, "vision"), "vision_heads", 8); }
static void e_grid3(cJSON *j) { set_num(j, "grid_size", 3); }
static void e_tokens(cJSON *j) { set_num(j, "num_image_tokens", 9); }
static void e_stop(cJSON *j) { set_num(j, "stop_token", 70000); }
static void e_frac(cJSON *j) { set_num(sub(j, "rwkv"), "vocab_size", 65536.5); }
static void e_std(cJSON *j) {
    cJSON_ReplaceItemInObjectCaseSensitive(sub(j, "image_processor"), "image_std", cJSON_CreateString("x"));
}
static void e_act(cJSON *j) {
    cJSON_ReplaceItemInObjectCaseSensitive(sub(j, "vision"), "hidden_act", cJSON_CreateString("gelu"));
}

static void refused(const char *set, void (*edit)(cJSON *), vr_status code, const char *field) {
    vr_error err = {0};
    vr_status st = load_edited(set, edit, &err);
    if (st != code) fail_msg("expected %s, got %s: %s", vr_status_name(code), vr_status_name(st), err.msg);
    if (!strstr(err.msg, field)) fail_msg("message \"%s\" does not name %s", err.msg, field);
    if (!strstr(err.msg, "edited.json")) fail_msg("message \"%s\" does not name the config file", err.msg);
}

static void test_contradicting_config(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    refused("tiny", e_n_embd, VR_ERR_INVALID, "rwkv.n_embd");
    refused("tiny", e_n_layer, VR_ERR_INVALID, "rwkv.n_layer");
    refused("tiny", e_head_size, VR_ERR_INVALID, "rwkv.head_size");
    refused("tiny", e_patch, VR_ERR_INVALID, "vision.patch_size");
    refused("tiny", e_image, VR_ERR_INVALID, "vision.image_size");
    refused("tiny", e_heads, VR_ERR_INVALID, "vision.num_attention_heads");
    refused("tiny", e_heads_disagree, VR_ERR_INVALID, "vision.vision_heads");
    refused("grid", e_grid3, VR_ERR_INVALID, "grid_size 3");
    refused("grid", e_tokens, VR_ERR_INVALID, "num_image_tokens");
    refused("tiny", e_stop, VR_ERR_INVALID, "stop_token");
    refused("tiny", e_frac, VR_ERR_INVALID, "rwkv.vocab_size");
    refused("tiny", e_std, VR_ERR_INVALID, "image_processor.image_std");
    refused("tiny", e_act, VR_ERR_UNSUPPORTED, "vision.hidden_act");
}

static void test_config_file_errors(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    vr_checkpoint *ck = open_set("tiny");
    vr_model_config c;
    vr_error err = {0};
    assert_int_equal(vr_config_load(ck, tmp_path("absent.json"), &c, &err), VR_ERR_IO);
    assert_non_null(strstr(err.msg, "absent.json"));
    write_text(tmp_path("bad.json"), "{\"rwkv\": {");
    assert_int_equal(vr_config_load(ck, tmp_path("bad.json"), &c, &err), VR_ERR_INVALID);
    assert_non_null(strstr(err.msg, "bad.json"));
    /* grid_size 0 / 1 / 2 / 4 on the tiny set (G = 4): 1, 2, 5, 17 tokens; 3 is refused. */
    const int sizes[] = {0, 1, 2, 4}, tokens[] = {1, 2, 5, 17};
    for (int i = 0; i < 4; i++) {
        char text[128];
        snprintf(text, sizeof text, "{\"vision\": {\"num_attention_heads\": 4}, \"grid_size\": %d}", sizes[i]);
        write_text(tmp_path("g.json"), text);
        if (vr_config_load(ck, tmp_path("g.json"), &c, &err) != VR_OK) fail_msg("%s", err.msg);
        assert_int_equal(c.num_image_tokens, tokens[i]);
    }
    write_text(tmp_path("g.json"), "{\"vision\": {\"num_attention_heads\": 4}, \"grid_size\": 3}");
    assert_int_equal(vr_config_load(ck, tmp_path("g.json"), &c, &err), VR_ERR_INVALID);
    /* head_size_divisor without ln_x_eps derives ln_x_eps */
    write_text(tmp_path("d.json"), "{\"vision\": {\"num_attention_heads\": 4}, \"rwkv\": {\"head_size_divisor\": 4}}");
    if (vr_config_load(ck, tmp_path("d.json"), &c, &err) != VR_OK) fail_msg("%s", err.msg);
    assert_int_equal(c.head_size_divisor, 4);
    assert_float_equal(c.ln_x_eps, 1.6e-4f, 1e-9);
    vr_checkpoint_free(ck);
}

/* A text-only checkpoint (the tiny set without vit.* and proj): has_vision = 0. */
static void test_text_only(void **state) {
    (void)state;
    VRT_REQUIRE_SHARED();
    vr_checkpoint *ck = open_set("tiny");
    int n = vr_checkpoint_count(ck), m = 0;
    vr_checkpoint_entry *e = malloc((size_t)n * sizeof *e);
    for (int i = 0; i < n; i++) {
        const vr_checkpoint_entry *x = vr_checkpoint_entry_at(ck, i);
        if (strncmp(x->name, "rwkv.", 5) == 0) e[m++] = *x;
    }
    vr_error err = {0};
    if (vr_safetensors_write(tmp_path("text.safetensors"), e, m, &err) != VR_OK) fail_msg("%s", err.msg);
    free(e);
    vr_checkpoint_free(ck);
    if (vr_checkpoint_open(tmp_path("text.safetensors"), &ck, &err) != VR_OK) fail_msg("%s", err.msg);
    vr_model_config c;
    if (vr_config_load(ck, NULL, &c, &err) != VR_OK) fail_msg("%s", err.msg);
    assert_false(c.has_vision);
    assert_int_equal(c.n_layer, 4);
    assert_int_equal(c.num_image_tokens, 0);
    vr_checkpoint_free(ck);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_with_json),       cmocka_unit_test(test_grid_with_json),
        cmocka_unit_test(test_tiny_without_json),    cmocka_unit_test(test_grid_without_json),
        cmocka_unit_test(test_contradicting_config), cmocka_unit_test(test_config_file_errors),
        cmocka_unit_test(test_text_only),
    };
    return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
