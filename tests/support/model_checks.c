/* tests/support/model_checks.c — the engine against the upstream fixtures (README §7–§11) on
 * a named backend: vision intermediates and features, input embeddings, hidden states after
 * every block, last logits, greedy generations (exact to the first fragile step,
 * teacher-forced top-8 after), multi-turn resumed statefully, text-only and the demo path,
 * batched decode equal to single. Shared by tests/unit/test_model_fixtures.c (cpu, cmocka)
 * and tests/gpu/test_cuda_model.c (cuda, plain C); failures go through vrt_fail. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/support/fixtures.h"
#include "tests/support/model_checks.h"

#define VRT_CHECK(cond)                                                              \
    do {                                                                             \
        if (!(cond)) vrt_fail("%s:%d: check failed: %s", __FILE__, __LINE__, #cond); \
    } while (0)

#define TOL_VISION 1e-4f
#define TOL_HIDDEN 1e-3f
#define TOL_LOGITS 1e-3f

vr_engine *vrt_open_set(const char *set, const char *backend) {
    char model[4200], config[4200];
    snprintf(model, sizeof model, "%s", vrt_fixture_path(set));
    strcat(model, "/model.pth");
    snprintf(config, sizeof config, "%s", vrt_fixture_path(set));
    strcat(config, "/model.json");
    vr_engine_options o = {model, config, NULL, 2, NULL, backend};
    vr_engine *e = NULL;
    vr_error err = {0};
    if (vr_engine_open(&o, &e, &err) != VR_OK) vrt_fail("%s", err.msg);
    return e;
}

static const cJSON *get(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) vrt_fail("fixture field '%s' missing", k);
    return v;
}

static void expect_close(const char *what, const float *got, const cJSON *ref, float tol) {
    size_t n = 0;
    float *want = vrt_load_array(ref, &n);
    float d = vrt_max_abs_diff(got, want, n);
    free(want);
    if (!(d <= tol)) vrt_fail("%s: max abs diff %g > %g", what, d, tol);
}

/* pixel_values of an image from <set>/preprocess.json -> features (host, malloc'd), checking
 * every vision intermediate on the way. */
static float *encode_checked(vr_engine *e, const char *set, const char *image) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/preprocess.json", set);
    cJSON *pre = vrt_load_json(rel);
    snprintf(rel, sizeof rel, "%s/vision.json", set);
    cJSON *vis = vrt_load_json(rel);
    const cJSON *pimg = get(get(pre, "images"), image);
    const cJSON *vimg = get(get(vis, "images"), image);
    float *pixels = vrt_load_array(get(pimg, "pixel_values"), NULL);
    const vr_model_config *c = &e->cfg;
    size_t L = (size_t)c->vis_grid * c->vis_grid + 1, D = (size_t)c->vis_hidden;
    vr_vision_trace tr = {0};
    tr.embeddings = malloc(L * D * 4);
    tr.pre_layrnorm = malloc(L * D * 4);
    tr.last_hidden = malloc(L * D * 4);
    tr.grid_pooled = malloc(L * D * 4);
    tr.layers = calloc((size_t)c->vis_layers, sizeof(float *));
    for (int j = 0; j < c->vis_layers; j++) tr.layers[j] = malloc(L * D * 4);
    float *features = NULL;
    vr_error err = {0};
    if (vr_engine_encode_pixels(e, pixels, &features, &tr, &err) != VR_OK) vrt_fail("%s", err.msg);
    char what[128];
    snprintf(what, sizeof what, "%s %s embeddings", set, image);
    expect_close(what, tr.embeddings, get(vimg, "embeddings"), TOL_VISION);
    snprintf(what, sizeof what, "%s %s pre_layrnorm", set, image);
    expect_close(what, tr.pre_layrnorm, get(vimg, "pre_layrnorm"), TOL_VISION);
    const cJSON *layers = get(vimg, "encoder_layers");
    VRT_CHECK((cJSON_GetArraySize(layers)) == (c->vis_layers));
    for (int j = 0; j < c->vis_layers; j++) {
        snprintf(what, sizeof what, "%s %s encoder layer %d", set, image, j);
        expect_close(what, tr.layers[j], cJSON_GetArrayItem(layers, j), TOL_VISION);
    }
    snprintf(what, sizeof what, "%s %s last_hidden_state", set, image);
    expect_close(what, tr.last_hidden, get(vimg, "last_hidden_state"), TOL_VISION);
    snprintf(what, sizeof what, "%s %s grid_pooled", set, image);
    expect_close(what, tr.grid_pooled, get(vimg, "grid_pooled"), TOL_VISION);
    snprintf(what, sizeof what, "%s %s image_features", set, image);
    expect_close(what, features, get(vimg, "image_features"), TOL_VISION);
    for (int j = 0; j < c->vis_layers; j++) free(tr.layers[j]);
    free(tr.layers);
    free(tr.embeddings);
    free(tr.pre_layrnorm);
    free(tr.last_hidden);
    free(tr.grid_pooled);
    free(pixels);
    cJSON_Delete(pre);
    cJSON_Delete(vis);
    return features;
}

static void expect_top8(const char *what, const float *logits, const cJSON *ref) {
    int n = 0;
    int32_t *ids = vrt_json_ints(get(ref, "top_ids"), &n);
    const cJSON *vals = get(ref, "top_logits");
    for (int i = 0; i < n; i++) {
        float want = (float)cJSON_GetArrayItem(vals, i)->valuedouble;
        float got = logits[ids[i]];
        if (!(fabsf(got - want) <= TOL_LOGITS))
            vrt_fail("%s: logit of token %d is %.6f, fixture %.6f", what, ids[i], got, want);
    }
    free(ids);
}

/* Where the backend chooses tokens on the device: its argmax and log-probability over the
 * logits it holds (e->logits, the last prefill or step) equal the host's over the copy. */
static void check_device_argmax(vr_engine *e, const float *logits, const char *what) {
    if (!e->be->ops->argmax_rows) return;
    int32_t id = -1;
    float lg = 0, lp = 0;
    vr_error err = {0};
    if (e->be->ops->argmax_rows(e->be, e->logits, 1, e->cfg.vocab_size, &id, &lg, &lp, &err) != VR_OK)
        vrt_fail("%s: device argmax: %s", what, err.msg);
    int32_t want = vr_argmax(logits, e->cfg.vocab_size);
    double want_lp = vr_logprob(logits, e->cfg.vocab_size, want);
    if (id != want || lg != logits[want] || !(fabs((double)lp - want_lp) <= 1e-4))
        vrt_fail("%s: device argmax %d (logit %g, logprob %g), host %d (logit %g, logprob %g)", what, id, (double)lg,
                 (double)lp, want, (double)logits[want], want_lp);
}

/* Greedy continuation from the session's state: tokens equal to the fixture up to the first
 * fragile step; every step's top-8 logits teacher-forced with the fixture's tokens. */
static void check_greedy(vr_engine *e, vr_session *s, float *logits, const cJSON *greedy, const char *what) {
    const cJSON *steps = get(greedy, "steps");
    int n = cJSON_GetArraySize(steps);
    int fragile_seen = 0;
    vr_error err = {0};
    for (int i = 0; i < n; i++) {
        const cJSON *st = cJSON_GetArrayItem(steps, i);
        int32_t tok = (int32_t)get(st, "token")->valuedouble;
        char w[160];
        snprintf(w, sizeof w, "%s greedy step %d", what, i);
        expect_top8(w, logits, st);
        if (cJSON_IsTrue(get(st, "fragile"))) fragile_seen = 1;
        check_device_argmax(e, logits, w);
        if (!fragile_seen) {
            int32_t mine = vr_argmax(logits, e->cfg.vocab_size);
            if (mine != tok) vrt_fail("%s: token %d, fixture %d", w, mine, tok);
        }
        if (i + 1 < n) {
            vr_session *one = s;
            if (vr_sessions_step(e, &one, &tok, 1, logits, &err) != VR_OK) vrt_fail("%s", err.msg);
        }
    }
}

void vrt_run_forward_set(const char *set, const char *backend) {
    vr_engine *e = vrt_open_set(set, backend);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/forward.json", set);
    cJSON *fw = vrt_load_json(rel);
    const char *modes[] = {"uni", "bi", "multi"};
    const cJSON *c;
    int n_checked = 0;
    cJSON_ArrayForEach(c, get(fw, "cases")) {
        const char *id = get(c, "id")->valuestring;
        float *features = encode_checked(e, set, get(c, "image")->valuestring);
        int n_ids = 0;
        int32_t *ids = vrt_json_ints(get(c, "input_ids"), &n_ids);
        int T = (int)get(c, "seq_len")->valuedouble, C = e->cfg.n_embd, NL = e->cfg.n_layer;
        for (int m = 0; m < 3; m++) {
            vr_scan_mode mode;
            vr_scan_mode_parse(modes[m], &mode, NULL);
            const cJSON *mj = get(get(c, "modes"), modes[m]);
            vr_session *s = NULL;
            vr_error err = {0};
            if (vr_session_create(e, mode, &s, &err) != VR_OK) vrt_fail("%s", err.msg);
            float *hidden = malloc((size_t)(NL + 1) * T * C * sizeof(float));
            float *logits = malloc((size_t)e->cfg.vocab_size * sizeof(float));
            if (vr_session_prefill(e, s, ids, n_ids, features, e->cfg.num_image_tokens, logits, hidden, &err) != VR_OK)
                vrt_fail("%s", err.msg);
            char what[128];
            snprintf(what, sizeof what, "%s %s input_embeddings", set, id);
            expect_close(what, hidden, get(c, "input_embeddings"), TOL_HIDDEN);
            snprintf(what, sizeof what, "%s %s %s hidden_states", set, id, modes[m]);
            expect_close(what, hidden, get(mj, "hidden_states"), TOL_HIDDEN);
            snprintf(what, sizeof what, "%s %s %s last_logits", set, id, modes[m]);
            expect_close(what, logits, get(mj, "last_logits"), TOL_LOGITS);
            snprintf(what, sizeof what, "%s %s %s", set, id, modes[m]);
            check_greedy(e, s, logits, get(mj, "greedy"), what);
            free(hidden);
            free(logits);
            vr_session_free(s);
            n_checked++;
        }
        free(ids);
        free(features);
    }
    VRT_CHECK((n_checked) == (18));
    cJSON_Delete(fw);
    vr_engine_free(e);
}

/* Turn 1 prompt as one chunk, then answer + 261 + turn-2 ids as a second chunk on the same
 * state: nothing recomputed. */
void vrt_run_multiturn_set(const char *set, const char *backend) {
    vr_engine *e = vrt_open_set(set, backend);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/multiturn.json", set);
    cJSON *mt = vrt_load_json(rel);
    const char *modes[] = {"uni", "bi", "multi"};
    const cJSON *c;
    int n_checked = 0;
    cJSON_ArrayForEach(c, get(mt, "cases")) {
        float *features = encode_checked(e, set, get(c, "image")->valuestring);
        for (int m = 0; m < 3; m++) {
            vr_scan_mode mode;
            vr_scan_mode_parse(modes[m], &mode, NULL);
            const cJSON *mj = get(get(c, "modes"), modes[m]);
            int n_all = 0;
            int32_t *all = vrt_json_ints(get(mj, "input_ids"), &n_all);
            int n_ans = 0;
            int32_t *ans = vrt_json_ints(get(mj, "answer_tokens_used"), &n_ans);
            int n_t2 = 0;
            int32_t *t2 = vrt_json_ints(get(c, "turn2_ids"), &n_t2);
            int n1 = n_all - n_ans - 1 - n_t2; /* turn-1 prompt ids */
            VRT_CHECK(n1 > 0);
            VRT_CHECK((all[n1 + n_ans]) == (261));
            vr_session *s = NULL;
            vr_error err = {0};
            float *logits = malloc((size_t)e->cfg.vocab_size * sizeof(float));
            if (vr_session_create(e, mode, &s, &err) != VR_OK) vrt_fail("%s", err.msg);
            if (vr_session_prefill(e, s, all, n1, features, e->cfg.num_image_tokens, NULL, NULL, &err) != VR_OK)
                vrt_fail("%s", err.msg);
            if (vr_session_prefill(e, s, all + n1, n_all - n1, NULL, 0, logits, NULL, &err) != VR_OK)
                vrt_fail("%s", err.msg);
            char what[128];
            snprintf(what, sizeof what, "%s %s %s multi-turn last_logits", set, get(c, "id")->valuestring, modes[m]);
            expect_close(what, logits, get(mj, "last_logits"), TOL_LOGITS);
            check_greedy(e, s, logits, get(mj, "greedy"), what);
            free(logits);
            free(all);
            free(ans);
            free(t2);
            vr_session_free(s);
            n_checked++;
        }
        free(features);
    }
    VRT_CHECK((n_checked) == (6));
    cJSON_Delete(mt);
    vr_engine_free(e);
}

void vrt_run_text_and_demo(const char *set, const char *backend) {
    vr_engine *e = vrt_open_set(set, backend);
    char rel[256];
    snprintf(rel, sizeof rel, "%s/textonly.json", set);
    cJSON *to = vrt_load_json(rel);
    const cJSON *c;
    vr_error err = {0};
    float *logits = malloc((size_t)e->cfg.vocab_size * sizeof(float));
    cJSON_ArrayForEach(c, get(to, "cases")) {
        int n = 0;
        int32_t *ids = vrt_json_ints(get(c, "input_ids"), &n);
        int NL = e->cfg.n_layer, C = e->cfg.n_embd;
        float *hidden = malloc((size_t)(NL + 1) * n * C * sizeof(float));
        vr_session *s = NULL;
        if (vr_session_create(e, VR_SCAN_UNI, &s, &err) != VR_OK) vrt_fail("%s", err.msg);
        if (vr_session_prefill(e, s, ids, n, NULL, 0, logits, hidden, &err) != VR_OK) vrt_fail("%s", err.msg);
        char what[128];
        snprintf(what, sizeof what, "%s %s hidden_states", set, get(c, "id")->valuestring);
        expect_close(what, hidden, get(c, "hidden_states"), TOL_HIDDEN);
        snprintf(what, sizeof what, "%s %s", set, get(c, "id")->valuestring);
        expect_close(what, logits, get(c, "last_logits"), TOL_LOGITS);
        check_greedy(e, s, logits, get(c, "greedy"), what);
        vr_session_free(s);
        free(hidden);
        free(ids);
    }
    cJSON_Delete(to);

    snprintf(rel, sizeof rel, "%s/demo.json", set);
    cJSON *demo = vrt_load_json(rel);
    float *features = encode_checked(e, set, get(demo, "image")->valuestring);
    int np = 0, nc = 0;
    int32_t *pre = vrt_json_ints(get(demo, "prefix_ids"), &np);
    int32_t *ctx = vrt_json_ints(get(demo, "ctx_ids"), &nc);
    int32_t *ids = malloc((size_t)(np + nc + 1) * sizeof *ids);
    memcpy(ids, pre, (size_t)np * sizeof *ids);
    ids[np] = VR_IMAGE_TOKEN_ID;
    memcpy(ids + np + 1, ctx, (size_t)nc * sizeof *ids);
    int T = (int)get(demo, "seq_len")->valuedouble, NL = e->cfg.n_layer, C = e->cfg.n_embd;
    float *hidden = malloc((size_t)(NL + 1) * T * C * sizeof(float));
    vr_session *s = NULL;
    if (vr_session_create(e, VR_SCAN_UNI, &s, &err) != VR_OK) vrt_fail("%s", err.msg);
    if (vr_session_prefill(e, s, ids, np + nc + 1, features, e->cfg.num_image_tokens, logits, hidden, &err) != VR_OK)
        vrt_fail("%s", err.msg);
    expect_close("demo input_embeddings", hidden, get(demo, "input_embeddings"), TOL_HIDDEN);
    expect_close("demo hidden_states", hidden, get(demo, "hidden_states"), TOL_HIDDEN);
    expect_close("demo last_logits", logits, get(demo, "last_logits"), TOL_LOGITS);
    check_greedy(e, s, logits, get(demo, "greedy"), "demo");
    vr_session_free(s);
    free(hidden);
    free(ids);
    free(pre);
    free(ctx);
    free(features);
    cJSON_Delete(demo);
    free(logits);
    vr_engine_free(e);
}

/* Batched decode: B sessions stepped together give the same logits as each stepped alone. */
void vrt_batched_step_equals_single(const char *backend) {
    vr_engine *e = vrt_open_set("tiny", backend);
    vr_error err = {0};
    enum { B = 5 };
    vr_session *batch[B], *solo[B];
    int V = e->cfg.vocab_size;
    float *lb = malloc((size_t)B * V * sizeof(float)), *ls = malloc((size_t)V * sizeof(float));
    for (int i = 0; i < B; i++) {
        int32_t prompt[3] = {24281 + i, 59, 33 + i};
        vr_session_create(e, VR_SCAN_BI, &batch[i], &err);
        vr_session_create(e, VR_SCAN_BI, &solo[i], &err);
        if (vr_session_prefill(e, batch[i], prompt, 3, NULL, 0, NULL, NULL, &err) ||
            vr_session_prefill(e, solo[i], prompt, 1 + i % 3, NULL, 0, NULL, NULL, &err))
            vrt_fail("%s", err.msg);
        if (i % 3 != 2) { /* solo sessions with a shorter prompt catch up token by token */
            for (int t = 1 + i % 3; t < 3; t++) {
                vr_session *one = solo[i];
                if (vr_sessions_step(e, &one, &prompt[t], 1, ls, &err) != VR_OK) vrt_fail("%s", err.msg);
            }
        }
    }
    int32_t toks[B];
    for (int step = 0; step < 4; step++) {
        for (int i = 0; i < B; i++) toks[i] = 1000 + 37 * i + step;
        if (vr_sessions_step(e, batch, toks, B, lb, &err) != VR_OK) vrt_fail("%s", err.msg);
        for (int i = 0; i < B; i++) {
            vr_session *one = solo[i];
            if (vr_sessions_step(e, &one, &toks[i], 1, ls, &err) != VR_OK) vrt_fail("%s", err.msg);
            float d = vrt_max_abs_diff(ls, lb + (size_t)i * V, (size_t)V);
            if (!(d <= 1e-4f)) vrt_fail("session %d step %d: batched vs solo logits differ by %g", i, step, d);
        }
    }
    for (int i = 0; i < B; i++) {
        vr_session_free(batch[i]);
        vr_session_free(solo[i]);
    }
    free(lb);
    free(ls);
    vr_engine_free(e);
}

