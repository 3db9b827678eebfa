/* eval/questions.c — upstream evaluate.py's load_questions / get_question_id / get_chunk:
 * .jsonl (Python text-mode lines: \n, \r\n and \r end a line; each line json.loads'ed, so a
 * blank line is an error; duplicate keys keep the last value at the first key's place),
 * .json (an array), .tsv (eval/tsv.c, records as pandas to_dict("records") gives them).
 * Must not build prompts, read images or decide what to skip: it reports, the runner decides. */
#include "eval/questions.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mapped_file.h"
#include "eval/tsv.h"
#include "model/tokenizer.h"

/* ------------------------------------------------------------------ helpers */

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Python json: for a repeated key the last value wins, at the place of the first occurrence. */
static void dedup_keys(cJSON *item) {
    if (!item) return;
    if (cJSON_IsObject(item)) {
        cJSON *c = item->child;
        while (c) {
            cJSON *next = c->next;
            dedup_keys(c);
            for (cJSON *e = item->child; e != c; e = e->next) {
                if (e->string && c->string && strcmp(e->string, c->string) == 0) {
                    cJSON_DetachItemViaPointer(item, c);
                    cJSON_ReplaceItemViaPointer(item, e, c);
                    break;
                }
            }
            c = next;
        }
    } else if (cJSON_IsArray(item)) {
        for (cJSON *c = item->child; c; c = c->next) dedup_keys(c);
    }
}

static void set_id_text(vr_question *q) {
    if (q->id_is_int) {
        snprintf(q->id_text, sizeof q->id_text, "%lld", q->id_int);
    } else {
        size_t n = strlen(q->id_str);
        if (n < sizeof q->id_text) {
            memcpy(q->id_text, q->id_str, n + 1);
        } else {
            size_t k = vr_utf8_complete_prefix(q->id_str, sizeof q->id_text - 4);
            memcpy(q->id_text, q->id_str, k);
            memcpy(q->id_text + k, "...", 4);
        }
    }
}

vr_status vr_question_id(const cJSON *record, vr_question *q, vr_error *err) {
    static const char *const keys[3] = {"question_id", "id", "index"};
    q->id_key = NULL;
    q->id_is_int = 0;
    q->id_int = 0;
    q->id_str = NULL;
    q->id_text[0] = 0;
    if (!cJSON_IsObject(record))
        return vr_error_set(err, VR_ERR_FORMAT, "the record is not a JSON object, so it has no question id");
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, keys[k]);
        if (!v) continue;
        q->id_key = keys[k];
        if (cJSON_IsString(v)) {
            q->id_str = v->valuestring;
            set_id_text(q);
            return VR_OK;
        }
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble == floor(v->valuedouble) &&
            fabs(v->valuedouble) < 9.2e18) {
            q->id_is_int = 1;
            q->id_int = (long long)v->valuedouble;
            set_id_text(q);
            return VR_OK;
        }
        if (cJSON_IsNull(v))
            return vr_error_set(err, VR_ERR_FORMAT,
                                "the question id \"%s\" is empty/NaN (in a TSV: an empty or NA cell, which also "
                                "makes pandas read the whole column as floats); every question needs an id",
                                keys[k]);
        char *txt = cJSON_PrintUnformatted(v);
        vr_error_set(err, VR_ERR_FORMAT,
                     "the question id \"%s\" is %s, not an integer or a string; fix the question file", keys[k],
                     txt ? txt : "not printable");
        free(txt);
        return err ? err->code : VR_ERR_FORMAT;
    }
    return vr_error_set(err, VR_ERR_FORMAT,
                        "cannot find a question id in the record: it has none of the keys question_id, id, index "
                        "(upstream: ValueError: Cannot find question id in line)");
}

static void question_free(vr_question *q) {
    cJSON_Delete(q->record);
    for (size_t i = 0; i < q->n_nan_fields; i++) free(q->nan_fields[i]);
    free(q->nan_fields);
    memset(q, 0, sizeof *q);
}

void vr_questions_free(vr_question_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n; i++) question_free(&s->items[i]);
    free(s->items);
    free(s->errors);
    memset(s, 0, sizeof *s);
}

typedef struct {
    vr_question_set *s;
    size_t cap_items, cap_errors;
    int collect;
    const char *name;
} loader;

static vr_status add_item(loader *L, vr_question *q, vr_error *err) {
    vr_question_set *s = L->s;
    if (s->n == L->cap_items) {
        size_t cap = L->cap_items ? L->cap_items * 2 : 64;
        vr_question *np = realloc(s->items, cap * sizeof *np);
        if (!np) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory loading questions", L->name);
        s->items = np;
        L->cap_items = cap;
    }
    s->items[s->n++] = *q;
    return VR_OK;
}

/* A bad record: an error (collect == 0) or one more entry in s->errors. */
static vr_status bad_record(loader *L, size_t line_no, const char *what, vr_error *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static vr_status bad_record(loader *L, size_t line_no, const char *what, vr_error *err, const char *fmt, ...) {
    char msg[sizeof ((vr_question_error *)0)->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!L->collect) return vr_error_set(err, VR_ERR_FORMAT, "%s: %s %zu: %s", L->name, what, line_no, msg);
    vr_question_set *s = L->s;
    if (s->n_errors == L->cap_errors) {
        size_t cap = L->cap_errors ? L->cap_errors * 2 : 16;
        vr_question_error *np = realloc(s->errors, cap * sizeof *np);
        if (!np) return vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory loading questions", L->name);
        s->errors = np;
        L->cap_errors = cap;
    }
    vr_question_error *e = &s->errors[s->n_errors++];
    e->line_no = line_no;
    snprintf(e->msg, sizeof e->msg, "%s", msg);
    return VR_OK;
}

/* Fills id and image of q (record already set); on a bad record frees it and reports. */
static vr_status finish_record(loader *L, vr_question *q, const char *what, vr_error *err) {
    vr_error e2 = {0};
    size_t where = L->s->format == VR_QFILE_JSON ? q->index + 1 : q->line_no;
    if (vr_question_id(q->record, q, &e2) != VR_OK) {
        question_free(q);
        return bad_record(L, where, what, err, "%s", e2.msg);
    }
    const cJSON *img = cJSON_GetObjectItemCaseSensitive(q->record, "image");
    if (!img) {
        q->image_kind = VR_IMAGE_REF_NONE;
    } else if (cJSON_IsString(img)) {
        q->image = img->valuestring;
        q->image_kind = L->s->format == VR_QFILE_TSV ? VR_IMAGE_REF_BASE64 : VR_IMAGE_REF_FILE;
    } else {
        q->image_kind = VR_IMAGE_REF_INVALID;
    }
    vr_status st = add_item(L, q, err);
    if (st != VR_OK) question_free(q);
    return st;
}

/* ------------------------------------------------------------------ formats */

static int only_json_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') return 0;
    return 1;
}

static vr_status load_jsonl(loader *L, const char *data, size_t n, vr_error *err) {
    size_t pos = 0, line_no = 0;
    while (pos < n) {
        size_t end = pos;
        while (end < n && data[end] != '\n' && data[end] != '\r') end++;
        size_t next = end;
        if (next < n) next += (data[next] == '\r' && next + 1 < n && data[next + 1] == '\n') ? 2 : 1;
        line_no++;
        const char *line = data + pos;
        size_t len = end - pos;
        pos = next;
        vr_status st = VR_OK;
        if (!vr_utf8_valid(line, len)) {
            st = bad_record(L, line_no, "line", err, "not valid UTF-8 text");
        } else if (only_json_space(line, len)) {
            st = bad_record(L, line_no, "line", err,
                            "blank line (upstream json.loads fails: Expecting value); remove empty lines");
        } else {
            const char *parse_end = NULL;
            cJSON *j = cJSON_ParseWithLengthOpts(line, len, &parse_end, 0);
            if (!j || !only_json_space(parse_end, (size_t)(line + len - parse_end))) {
                size_t at = j ? (size_t)(parse_end - line) : (size_t)(cJSON_GetErrorPtr() ? cJSON_GetErrorPtr() - line : 0);
                if (at > len) at = len;
                cJSON_Delete(j);
                st = bad_record(L, line_no, "line", err, "not valid JSON (error near byte %zu of the line)", at + 1);
            } else if (!cJSON_IsObject(j)) {
                cJSON_Delete(j);
                st = bad_record(L, line_no, "line", err, "a JSON value that is not an object");
            } else {
                dedup_keys(j);
                vr_question q = {0};
                q.record = j;
                q.index = line_no - 1;
                q.line_no = line_no;
                st = finish_record(L, &q, "line", err);
            }
        }
        if (st != VR_OK) return st;
    }
    return VR_OK;
}

static vr_status load_json(loader *L, const char *data, size_t n, vr_error *err) {
    if (!vr_utf8_valid(data, n))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: not valid UTF-8 text", L->name);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(data, n, &end, 0);
    if (!j || !only_json_space(end, (size_t)(data + n - end))) {
        const char *ep = j ? end : cJSON_GetErrorPtr();
        size_t line = 1;
        if (ep && ep >= data && ep <= data + n)
            for (const char *p = data; p < ep; p++) line += *p == '\n';
        cJSON_Delete(j);
        return vr_error_set(err, VR_ERR_FORMAT, "%s: not valid JSON (error near line %zu)", L->name, line);
    }
    if (!cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return vr_error_set(err, VR_ERR_FORMAT, "%s: the file must hold a JSON array of question objects", L->name);
    }
    dedup_keys(j);
    size_t idx = 0;
    vr_status st = VR_OK;
    while (j->child && st == VR_OK) {
        cJSON *item = cJSON_DetachItemViaPointer(j, j->child);
        if (!cJSON_IsObject(item)) {
            cJSON_Delete(item);
            st = bad_record(L, idx + 1, "array element", err, "not a JSON object");
        } else {
            vr_question q = {0};
            q.record = item;
            q.index = idx;
            q.line_no = 0;
            st = finish_record(L, &q, "array element", err);
        }
        idx++;
    }
    cJSON_Delete(j);
    return st;
}

static vr_status load_tsv(loader *L, const char *data, size_t n, vr_error *err) {
    vr_tsv_table t;
    vr_status st = vr_tsv_parse(data, n, L->name, &t, err);
    if (st != VR_OK) return st;
    for (size_t r = 0; r < t.n_rows && st == VR_OK; r++) {
        vr_question q = {0};
        q.record = vr_tsv_row_json(&t, r);
        q.index = r;
        q.line_no = t.row_line[r];
        if (!q.record) {
            st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", L->name);
            break;
        }
        size_t n_nan = 0;
        for (size_t c = 0; c < t.n_cols; c++) n_nan += vr_tsv_at(&t, r, c)->na;
        if (n_nan) {
            q.nan_fields = calloc(n_nan, sizeof(char *));
            if (!q.nan_fields) {
                question_free(&q);
                st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", L->name);
                break;
            }
            for (size_t c = 0; c < t.n_cols; c++) {
                if (!vr_tsv_at(&t, r, c)->na) continue;
                char *nm = strdup(t.names[c]);
                if (!nm) {
                    question_free(&q);
                    st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", L->name);
                    break;
                }
                q.nan_fields[q.n_nan_fields++] = nm;
            }
            if (st != VR_OK) break;
        }
        st = finish_record(L, &q, "line", err);
    }
    vr_tsv_free(&t);
    return st;
}

vr_status vr_questions_parse(const char *data, size_t n, const char *name, int collect_errors, vr_question_set *out,
                             vr_error *err) {
    memset(out, 0, sizeof *out);
    loader L = {.s = out, .collect = collect_errors, .name = name ? name : "questions"};
    vr_status st;
    if (has_suffix(L.name, ".jsonl")) {
        out->format = VR_QFILE_JSONL;
        st = load_jsonl(&L, data, n, err);
    } else if (has_suffix(L.name, ".json")) {
        out->format = VR_QFILE_JSON;
        st = load_json(&L, data, n, err);
    } else if (has_suffix(L.name, ".tsv")) {
        out->format = VR_QFILE_TSV;
        st = load_tsv(&L, data, n, err);
    } else {
        return vr_error_set(err, VR_ERR_INVALID,
                            "%s: unsupported question file type; use .jsonl (one JSON object per line), .json (an "
                            "array) or .tsv (MMBench)",
                            L.name);
    }
    if (st != VR_OK) vr_questions_free(out);
    return st;
}

vr_status vr_questions_load(const char *path, int collect_errors, vr_question_set *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    if (!has_suffix(path, ".jsonl") && !has_suffix(path, ".json") && !has_suffix(path, ".tsv"))
        return vr_error_set(err, VR_ERR_INVALID,
                            "%s: unsupported question file type; use .jsonl (one JSON object per line), .json (an "
                            "array) or .tsv (MMBench)",
                            path);
    char *data = NULL;
    size_t n = 0;
    vr_status st = vr_read_file(path, (size_t)4 << 30, &data, &n, err);
    if (st != VR_OK) return st;
    st = vr_questions_parse(data, n, path, collect_errors, out, err);
    free(data);
    return st;
}

/* ------------------------------------------------------------------ chunks */

vr_status vr_questions_chunk(size_t n, int num_chunks, int chunk_idx, size_t *start, size_t *end, vr_error *err) {
    *start = *end = 0;
    if (num_chunks < 1)
        return vr_error_set(err, VR_ERR_INVALID, "--num-chunks must be at least 1 (got %d)", num_chunks);
    if (chunk_idx < 0 || chunk_idx >= num_chunks)
        return vr_error_set(err, VR_ERR_INVALID, "--chunk-idx must be in 0..%d (got %d)", num_chunks - 1, chunk_idx);
    if (n == 0) return vr_error_set(err, VR_ERR_INVALID, "the question file holds no questions, so there is nothing to split into chunks");
    size_t size = (n + (size_t)num_chunks - 1) / (size_t)num_chunks; /* math.ceil(n / num_chunks) */
    size_t made = (n + size - 1) / size;
    if ((size_t)chunk_idx >= made)
        return vr_error_set(err, VR_ERR_INVALID,
                            "chunk %d does not exist: %zu questions in chunks of %zu make only %zu chunk%s (0..%zu); "
                            "upstream fails with IndexError here. Use fewer chunks",
                            chunk_idx, n, size, made, made == 1 ? "" : "s", made - 1);
    *start = (size_t)chunk_idx * size;
    *end = *start + size < n ? *start + size : n;
    return VR_OK;
}
