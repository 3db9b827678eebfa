/* eval/eval_prompt.c — upstream evaluate.py's get_input_text / get_input_text_mmbench /
 * get_options / is_none, then model/prompt.c's vr_prompt_build for the rest. Where upstream
 * would raise (KeyError, TypeError on a number concatenated to a str, ValueError) this returns
 * an error that says which field is wrong. Must not read files or images, and must not "fix"
 * a record that upstream accepts. */
#include "eval/eval_prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/pytext.h"

vr_eval_dataset vr_eval_dataset_from_name(const char *name) {
    if (name && strcmp(name, "mmbench") == 0) return VR_EVAL_DATASET_MMBENCH;
    if (name && strcmp(name, "mmbench_cn") == 0) return VR_EVAL_DATASET_MMBENCH_CN;
    return VR_EVAL_DATASET_DEFAULT;
}

/* Python's str.lower() maps no non-ASCII character to an ASCII letter of "nan"/"none", so an
 * ASCII case-insensitive comparison is exact here. */
int vr_eval_is_none(const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return 1;
    if (cJSON_IsString(v))
        return strcasecmp(v->valuestring, "nan") == 0 || strcasecmp(v->valuestring, "none") == 0;
    return 0;
}

/* A short description of a non-string value for messages ("the number 3", "true"). */
static void describe(const cJSON *v, char *buf, size_t cap) {
    if (!v) snprintf(buf, cap, "missing");
    else if (cJSON_IsNull(v)) snprintf(buf, cap, "empty (NaN)");
    else if (cJSON_IsBool(v)) snprintf(buf, cap, "the boolean %s", cJSON_IsTrue(v) ? "True" : "False");
    else if (cJSON_IsNumber(v)) {
        char r[VR_PY_REPR_MAX];
        vr_py_float_repr(v->valuedouble, r);
        snprintf(buf, cap, "the number %s", r);
    } else if (cJSON_IsArray(v)) snprintf(buf, cap, "a list");
    else if (cJSON_IsObject(v)) snprintf(buf, cap, "an object");
    else snprintf(buf, cap, "not text");
}

static vr_status not_text(const char *field, const cJSON *v, vr_error *err) {
    char d[96];
    describe(v, d, sizeof d);
    const char *why = cJSON_IsNumber(v) || cJSON_IsBool(v)
                          ? " (pandas reads a TSV column whose values all look numeric as numbers)"
                          : "";
    return vr_error_set(err, VR_ERR_FORMAT,
                        "field \"%s\" is %s, not text%s; upstream evaluate.py fails here with TypeError "
                        "(can only concatenate str to str)",
                        field, d, why);
}

vr_status vr_eval_mmbench_options(const cJSON *record, const char *values[4], int *n, vr_error *err) {
    static const char *const letters[4] = {"A", "B", "C", "D"};
    *n = 0;
    for (int k = 0; k < 4; k++) {
        values[k] = NULL;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, letters[k]);
        if (!v)
            return vr_error_set(err, VR_ERR_FORMAT,
                                "the record has no column \"%s\" (MMBench needs the option columns A, B, C, D; "
                                "upstream: KeyError)",
                                letters[k]);
        if (vr_eval_is_none(v)) break;
        if (!cJSON_IsString(v)) {
            char f[16];
            snprintf(f, sizeof f, "%s", letters[k]);
            return not_text(f, v, err);
        }
        values[(*n)++] = v->valuestring;
    }
    return VR_OK;
}

static vr_status input_text_mmbench(const cJSON *record, int cn, char **out, vr_error *err) {
    const char *opts[4];
    int n_opts = 0;
    vr_status st = vr_eval_mmbench_options(record, opts, &n_opts, err);
    if (st != VR_OK) return st;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(record, "question");
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(record, "hint");
    if (!q) return vr_error_set(err, VR_ERR_FORMAT, "the record has no column \"question\" (upstream: KeyError)");
    if (!h) return vr_error_set(err, VR_ERR_FORMAT, "the record has no column \"hint\" (upstream: KeyError)");
    if (!cJSON_IsString(q)) return not_text("question", q, err);
    int with_hint = !vr_eval_is_none(h);
    if (with_hint && !cJSON_IsString(h)) return not_text("hint", h, err);
    static const char *const letters[4] = {"A", "B", "C", "D"};
    vr_strbuf b = {0};
    vr_strbuf_append_str(&b, "<image>\n");
    if (with_hint) {
        vr_strbuf_append_str(&b, h->valuestring);
        vr_strbuf_append_str(&b, "\n");
    }
    vr_strbuf_append_str(&b, q->valuestring);
    for (int k = 0; k < n_opts; k++) {
        vr_strbuf_append_str(&b, "\n");
        vr_strbuf_append_str(&b, letters[k]);
        vr_strbuf_append_str(&b, ". ");
        vr_strbuf_append_str(&b, opts[k]);
    }
    vr_strbuf_append_str(&b, "\n");
    vr_strbuf_append_str(&b, cn ? VR_MMBENCH_INSTRUCTION_CN : VR_MMBENCH_INSTRUCTION_EN);
    *out = vr_strbuf_take(&b, NULL);
    return *out ? VR_OK : vr_error_set(err, VR_ERR_NOMEM, "out of memory building the input text");
}

static vr_status input_text_default(const cJSON *record, char **out, vr_error *err) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(record, "text");
    if (t) {
        if (!cJSON_IsString(t)) return not_text("text", t, err);
        vr_strbuf b = {0};
        vr_strbuf_append_str(&b, "<image>\n");
        vr_strbuf_append_str(&b, t->valuestring);
        *out = vr_strbuf_take(&b, NULL);
        return *out ? VR_OK : vr_error_set(err, VR_ERR_NOMEM, "out of memory building the input text");
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(record, "conversations");
    if (c) {
        const cJSON *first = cJSON_IsArray(c) ? cJSON_GetArrayItem(c, 0) : NULL;
        const cJSON *v = cJSON_IsObject(first) ? cJSON_GetObjectItemCaseSensitive(first, "value") : NULL;
        if (!cJSON_IsString(v))
            return vr_error_set(err, VR_ERR_FORMAT,
                                "\"conversations\" must be a list whose first element has a text \"value\" "
                                "(the human message)");
        *out = strdup(v->valuestring);
        return *out ? VR_OK : vr_error_set(err, VR_ERR_NOMEM, "out of memory building the input text");
    }
    return vr_error_set(err, VR_ERR_FORMAT,
                        "cannot find the input text: the record has neither \"text\" nor \"conversations\" "
                        "(upstream: ValueError: Cannot find input text in line)");
}

vr_status vr_eval_input_text(const cJSON *record, vr_eval_dataset dataset, char **out, vr_error *err) {
    *out = NULL;
    if (!cJSON_IsObject(record)) return vr_error_set(err, VR_ERR_FORMAT, "the question record is not a JSON object");
    switch (dataset) {
    case VR_EVAL_DATASET_MMBENCH: return input_text_mmbench(record, 0, out, err);
    case VR_EVAL_DATASET_MMBENCH_CN: return input_text_mmbench(record, 1, out, err);
    case VR_EVAL_DATASET_DEFAULT: break;
    }
    return input_text_default(record, out, err);
}

vr_status vr_eval_prompt_build(const cJSON *record, const char *dataset, vr_image_position pos,
                               const vr_tokenizer *tok, vr_eval_prompt *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    vr_status st = vr_eval_input_text(record, vr_eval_dataset_from_name(dataset), &out->input_text, err);
    if (st != VR_OK) return st;
    vr_prompt_built b;
    st = vr_prompt_build(tok, out->input_text, pos, &b, err);
    if (st != VR_OK) {
        vr_eval_prompt_free(out);
        return st;
    }
    out->prompt = b.text;
    out->ids = b.ids;
    out->n_ids = b.n_ids;
    out->has_image = strstr(out->input_text, "<image>") != NULL;
    free(b.human_value);
    return VR_OK;
}

void vr_eval_prompt_free(vr_eval_prompt *p) {
    if (!p) return;
    free(p->input_text);
    free(p->prompt);
    free(p->ids);
    memset(p, 0, sizeof *p);
}
