/* eval/answers.c — answer lines exactly as upstream evaluate.py writes them (json.dumps with
 * ensure_ascii=False, str(round(x, 3)) for the averages) and reading answer files back for
 * --resume. Python text semantics come from common/pytext; this file only knows the line's
 * shape. It must not know models, prompts or networks. */
#include "eval/answers.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pytext.h"
#include "model/tokenizer.h"

vr_status vr_answer_text(const char *bytes, size_t len, char **out, size_t *out_len, vr_error *err) {
    static const char replacement[] = "\xEF\xBF\xBD";
    *out = NULL;
    if (!vr_utf8_valid(bytes, len)) {
        bytes = replacement;
        len = sizeof replacement - 1;
    }
    long cut = vr_str_find(bytes, len, 0, "\n\n", 2);
    if (cut >= 0) len = (size_t)cut;
    size_t a = 0, b = 0;
    vr_py_strip(bytes, len, &a, &b);
    char *t = malloc(b - a + 1);
    if (!t) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    if (b > a) memcpy(t, bytes + a, b - a);
    t[b - a] = 0;
    *out = t;
    if (out_len) *out_len = b - a;
    return VR_OK;
}

void vr_answer_averages(const float *logits, const float *logprobs, int n, double *avg_logit, double *avg_prob) {
    if (n <= 0) {
        *avg_logit = *avg_prob = NAN;
        return;
    }
    double sl = 0, sp = 0;
    for (int i = 0; i < n; i++) {
        sl += (double)logits[i];
        sp += (double)logprobs[i];
    }
    *avg_logit = sl / n;
    *avg_prob = exp(sp / n);
}

static void append_id(vr_strbuf *b, const vr_answer_id *id) {
    if (id->is_int) vr_strbuf_printf(b, "%lld", id->i);
    else vr_py_json_str(b, id->s ? id->s : "", id->s ? strlen(id->s) : 0, 0);
}

/* "<str(round(x, 3))>" as a JSON string */
static void append_rounded(vr_strbuf *b, double x) {
    char r[VR_PY_REPR_MAX];
    int n = vr_py_float_repr(vr_py_round(x, 3), r);
    vr_strbuf_append_char(b, '"');
    vr_strbuf_append(b, r, (size_t)n);
    vr_strbuf_append_char(b, '"');
}

static void append_str(vr_strbuf *b, const char *s, size_t n) { vr_py_json_str(b, s ? s : "", s ? n : 0, 0); }

vr_status vr_answer_line(const vr_answer *a, char **line, size_t *len, vr_error *err) {
    vr_strbuf b = {0};
    vr_strbuf_append_str(&b, "{\"question_id\": ");
    append_id(&b, &a->id);
    vr_strbuf_append_str(&b, ", \"prompt\": ");
    append_str(&b, a->prompt, a->prompt ? strlen(a->prompt) : 0);
    vr_strbuf_append_str(&b, ", \"text\": ");
    append_str(&b, a->text, a->text_len);
    vr_strbuf_append_str(&b, ", \"avg_logit\": ");
    append_rounded(&b, a->avg_logit);
    vr_strbuf_append_str(&b, ", \"avg_prob\": ");
    append_rounded(&b, a->avg_prob);
    vr_strbuf_append_str(&b, ", \"model_id\": ");
    append_str(&b, a->model_id, a->model_id ? strlen(a->model_id) : 0);
    vr_strbuf_append_str(&b, ", \"metadata\": {\"image_file\": ");
    if (a->image_file) append_str(&b, a->image_file, strlen(a->image_file));
    else vr_strbuf_append_str(&b, "null");
    vr_strbuf_append_str(&b, "}}");
    if (b.oom) {
        vr_strbuf_free(&b);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    *line = vr_strbuf_take(&b, len);
    return *line ? VR_OK : vr_error_set(err, VR_ERR_NOMEM, "out of memory");
}

/* A string member of an answer object, or NULL. */
static const char *member_str(const cJSON *o, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

vr_status vr_answer_line_reformat(const char *line, size_t n, char **out, size_t *out_len, vr_error *err) {
    *out = NULL;
    cJSON *o = cJSON_ParseWithLength(line, n);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return vr_error_set(err, VR_ERR_FORMAT, "not a JSON object");
    }
    vr_answer a = {0};
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question_id");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(o, "metadata");
    const cJSON *img = cJSON_IsObject(md) ? cJSON_GetObjectItemCaseSensitive(md, "image_file") : NULL;
    const char *al = member_str(o, "avg_logit"), *ap = member_str(o, "avg_prob");
    a.prompt = member_str(o, "prompt");
    a.text = member_str(o, "text");
    a.model_id = member_str(o, "model_id");
    a.image_file = cJSON_IsString(img) ? img->valuestring : NULL;
    vr_status st = VR_OK;
    if (cJSON_IsString(q)) a.id.s = q->valuestring;
    else if (cJSON_IsNumber(q) && q->valuedouble == floor(q->valuedouble)) {
        a.id.is_int = 1;
        a.id.i = (long long)q->valuedouble;
    } else st = vr_error_set(err, VR_ERR_FORMAT, "question_id is not an integer or a string");
    if (st == VR_OK && (!a.prompt || !a.text || !a.model_id || !al || !ap || !img || (!a.image_file && !cJSON_IsNull(img))))
        st = vr_error_set(err, VR_ERR_FORMAT, "a field of the answer line is missing or not a string");
    if (st == VR_OK) {
        a.text_len = strlen(a.text);
        a.avg_logit = strtod(al, NULL);
        a.avg_prob = strtod(ap, NULL);
        st = vr_answer_line(&a, out, out_len, err);
    }
    cJSON_Delete(o);
    return st;
}

char *vr_answer_id_key(const vr_answer_id *id) {
    vr_strbuf b = {0};
    if (id->is_int) vr_strbuf_printf(&b, "i:%lld", id->i);
    else {
        vr_strbuf_append_str(&b, "s:");
        vr_strbuf_append_str(&b, id->s ? id->s : "");
    }
    return vr_strbuf_take(&b, NULL);
}

void vr_answer_ids_free(vr_answer_ids *ids) {
    for (size_t i = 0; i < ids->n; i++) free(ids->keys[i]);
    free(ids->keys);
    memset(ids, 0, sizeof *ids);
}

/* The id of one answer line as a key; VR_ERR_FORMAT when the line is not an answer. */
static vr_status line_key(const char *line, size_t n, char **key) {
    *key = NULL;
    cJSON *o = cJSON_ParseWithLength(line, n);
    if (!o) return VR_ERR_FORMAT;
    const cJSON *q = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "question_id") : NULL;
    vr_answer_id id = {0};
    vr_status st = VR_OK;
    if (cJSON_IsString(q)) {
        id.s = q->valuestring;
    } else if (cJSON_IsNumber(q) && q->valuedouble == floor(q->valuedouble) && fabs(q->valuedouble) < 9.2e18) {
        id.is_int = 1;
        id.i = (long long)q->valuedouble;
    } else {
        st = VR_ERR_FORMAT;
    }
    if (st == VR_OK && !(*key = vr_answer_id_key(&id))) st = VR_ERR_NOMEM;
    cJSON_Delete(o);
    return st;
}

vr_status vr_answer_ids_read(const char *path, vr_answer_ids *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return VR_OK;
        return vr_error_set(err, VR_ERR_IO, "%s: cannot read the answers to resume: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0, cap_keys = 0, lineno = 0;
    ssize_t got;
    vr_status st = VR_OK;
    while (st == VR_OK && (got = getline(&line, &cap, f)) > 0) {
        lineno++;
        if (line[got - 1] != '\n') { /* the run was killed while writing this line */
            out->truncated_tail = 1;
            break;
        }
        char *key = NULL;
        vr_status ls = line_key(line, (size_t)got - 1, &key);
        if (ls == VR_ERR_NOMEM) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        else if (ls != VR_OK)
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s:%zu: not an answer line (no question_id); cannot resume this file — "
                              "fix it or write to a new --out",
                              path, lineno);
        if (st == VR_OK && out->n == cap_keys) {
            size_t nc = cap_keys ? cap_keys * 2 : 256;
            char **nk = realloc(out->keys, nc * sizeof *nk);
            if (!nk) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            else {
                out->keys = nk;
                cap_keys = nc;
            }
        }
        if (st == VR_OK) {
            out->keys[out->n++] = key;
            out->valid_bytes += (size_t)got;
        } else {
            free(key);
        }
    }
    if (st == VR_OK && ferror(f)) st = vr_error_set(err, VR_ERR_IO, "%s: read error", path);
    free(line);
    fclose(f);
    if (st != VR_OK) vr_answer_ids_free(out);
    return st;
}
