/* eval/score_vqav2.c — VQAv2 scoring as upstream does it: val accuracy (eval_vqa.py: stdout,
 * <answers>_metrics.jsonl) and the test-dev upload file (convert_vqav2_for_submission.py),
 * plus the helpers every scorer shares (report, jsonl reading, id keys, a small hash map,
 * writing files). Where upstream would crash it returns an error naming the problem instead;
 * it must not change the numbers upstream produces on the inputs it accepts. */
#include "eval/score.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common/mapped_file.h"
#include "common/pytext.h"
#include "eval/evalai.h"

#define MAX_INPUT_BYTES ((size_t)4 << 30)

/* ---- shared helpers ------------------------------------------------------------------ */

void vr_score_report_free(vr_score_report *rep) {
    if (!rep) return;
    free(rep->stdout_text);
    cJSON_Delete(rep->json);
    for (int i = 0; i < rep->n_files; i++) free(rep->files_written[i]);
    free(rep->files_written);
    memset(rep, 0, sizeof *rep);
}

vr_status vr_score_report_add_file(vr_score_report *rep, const char *path, vr_error *err) {
    char **p = realloc(rep->files_written, (size_t)(rep->n_files + 1) * sizeof *p);
    if (!p) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    rep->files_written = p;
    p[rep->n_files] = strdup(path);
    if (!p[rep->n_files]) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    rep->n_files++;
    return VR_OK;
}

vr_status vr_score_mkdirs_for(const char *path, vr_error *err) {
    char *d = strdup(path);
    if (!d) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    char *slash = strrchr(d, '/');
    if (!slash || slash == d) {
        free(d);
        return VR_OK;
    }
    *slash = 0;
    for (char *p = d + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(d, 0777) != 0 && errno != EEXIST) {
                vr_status st = vr_error_set(err, VR_ERR_IO, "cannot create the folder %s: %s", d, strerror(errno));
                free(d);
                return st;
            }
            *p = c;
            if (c == 0) break;
        }
    }
    free(d);
    return VR_OK;
}

vr_status vr_score_write_file(const char *path, const char *data, size_t n, vr_error *err) {
    vr_status st = vr_score_mkdirs_for(path, err);
    if (st != VR_OK) return st;
    FILE *f = fopen(path, "wb");
    if (!f) return vr_error_set(err, VR_ERR_IO, "cannot write %s: %s", path, strerror(errno));
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    int bad = w != n;
    if (fclose(f) != 0) bad = 1;
    if (bad) return vr_error_set(err, VR_ERR_IO, "cannot write %s (disk full?)", path);
    return VR_OK;
}

void vr_jsonl_free(vr_jsonl *j) {
    if (!j) return;
    for (size_t i = 0; i < j->n; i++) cJSON_Delete(j->items[i]);
    free(j->items);
    free(j->line_no);
    memset(j, 0, sizeof *j);
}

vr_status vr_score_read_jsonl(const char *path, int skip_bad, vr_jsonl *out, vr_error *err) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t size = 0;
    vr_status st = vr_read_file(path, MAX_INPUT_BYTES, &text, &size, err);
    if (st != VR_OK) return st;
    size_t cap = 0, pos = 0, line = 0;
    while (pos < size) {
        char *nl = memchr(text + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - text) : size;
        line++;
        text[end] = 0; /* the '\n' (or the final NUL) */
        const char *stop = NULL;
        cJSON *v = cJSON_ParseWithOpts(text + pos, &stop, 1);
        if (!v || (size_t)(stop - text) < end) {
            cJSON_Delete(v);
            if (!skip_bad) {
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu is not valid JSON (every line must be one JSON value)",
                                  path, line);
                break;
            }
            out->n_bad++;
        } else {
            if (out->n == cap) {
                size_t nc = cap ? cap * 2 : 256;
                cJSON **ni = realloc(out->items, nc * sizeof *ni);
                if (ni) out->items = ni;
                size_t *nl2 = realloc(out->line_no, nc * sizeof *nl2);
                if (nl2) out->line_no = nl2;
                if (!ni || !nl2) {
                    cJSON_Delete(v);
                    st = vr_error_set(err, VR_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                cap = nc;
            }
            out->items[out->n] = v;
            out->line_no[out->n] = line;
            out->n++;
        }
        pos = end + 1;
    }
    free(text);
    if (st != VR_OK) vr_jsonl_free(out);
    return st;
}

vr_status vr_score_read_json(const char *path, cJSON **out, vr_error *err) {
    *out = NULL;
    char *text = NULL;
    size_t size = 0;
    vr_status st = vr_read_file(path, MAX_INPUT_BYTES, &text, &size, err);
    if (st != VR_OK) return st;
    const char *stop = NULL;
    cJSON *v = cJSON_ParseWithOpts(text, &stop, 1);
    free(text);
    if (!v) return vr_error_set(err, VR_ERR_FORMAT, "%s: not valid JSON", path);
    *out = v;
    return VR_OK;
}

char *vr_score_id_key(const cJSON *v) {
    vr_strbuf b = {0};
    if (cJSON_IsNumber(v)) {
        double x = v->valuedouble;
        if (x == trunc(x) && fabs(x) < 9.2e18) vr_strbuf_printf(&b, "i:%lld", (long long)x);
        else {
            vr_strbuf_append_str(&b, "f:");
            vr_py_append_float_repr(&b, x);
        }
    } else if (cJSON_IsString(v)) {
        vr_strbuf_append_str(&b, "s:");
        vr_strbuf_append_str(&b, v->valuestring ? v->valuestring : "");
    } else {
        vr_strbuf_append_str(&b, "j:");
        if (v) vr_py_json_dump(&b, v, -1, 1);
    }
    return vr_strbuf_take(&b, NULL);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

vr_status vr_score_map_put(vr_score_map *m, const char *key, size_t val) {
    if ((m->n + 1) * 2 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        char **nk = calloc(nc, sizeof *nk);
        size_t *nv = calloc(nc, sizeof *nv);
        if (!nk || !nv) {
            free(nk);
            free(nv);
            return VR_ERR_NOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->keys[i]) continue;
            size_t j = hash_str(m->keys[i]) & (nc - 1);
            while (nk[j]) j = (j + 1) & (nc - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = nc;
    }
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (strcmp(m->keys[j], key) == 0) {
            m->vals[j] = val;
            return VR_OK;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = strdup(key);
    if (!m->keys[j]) return VR_ERR_NOMEM;
    m->vals[j] = val;
    m->n++;
    return VR_OK;
}

int vr_score_map_get(const vr_score_map *m, const char *key, size_t *val) {
    if (!m->cap) return 0;
    size_t j = hash_str(key) & (m->cap - 1);
    while (m->keys[j]) {
        if (strcmp(m->keys[j], key) == 0) {
            if (val) *val = m->vals[j];
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void vr_score_map_free(vr_score_map *m) {
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- local helpers ------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Appends up to `max` keys (without their type prefix) of a list, comma-separated. */
static void append_ids(vr_strbuf *b, char **keys, size_t n, size_t max) {
    for (size_t i = 0; i < n && i < max; i++) {
        if (i) vr_strbuf_append_str(b, ", ");
        vr_strbuf_append_str(b, keys[i] + 2);
    }
    if (n > max) vr_strbuf_printf(b, " and %zu more", n - max);
}

static cJSON *float_raw(double x) {
    char buf[VR_PY_REPR_MAX];
    vr_py_float_repr(x, buf);
    return cJSON_CreateRaw(buf);
}

static const char *obj_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- VQAv2 val (eval_vqa.py) ----------------------------------------------------------- */

typedef struct type_acc {
    char *name;
    double sum; /* plain float sum in question order */
    size_t n;
} type_acc;

typedef struct type_list {
    type_acc *v;
    size_t n, cap;
} type_list;

static type_acc *type_get(type_list *l, const char *name) {
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0) return &l->v[i];
    if (l->n == l->cap) {
        size_t nc = l->cap ? l->cap * 2 : 16;
        type_acc *p = realloc(l->v, nc * sizeof *p);
        if (!p) return NULL;
        l->v = p;
        l->cap = nc;
    }
    type_acc *t = &l->v[l->n];
    t->name = strdup(name);
    if (!t->name) return NULL;
    t->sum = 0;
    t->n = 0;
    l->n++;
    return t;
}

static void type_list_free(type_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].name);
    free(l->v);
}

/* updateProgress(step / total) as eval_vqa.py prints it. */
static void progress(vr_strbuf *out, double p) {
    const char *status = "";
    if (p < 0) {
        p = 0;
        status = "Halt...\r\n";
    }
    if (p >= 1) {
        p = 1;
        status = "Done...\r\n";
    }
    int block = (int)nearbyint(20 * p); /* round-half-even like Python's round() */
    vr_strbuf_append_str(out, "\rFinshed Percent: [");
    for (int i = 0; i < 20; i++) vr_strbuf_append_char(out, i < block ? '#' : '-');
    vr_strbuf_printf(out, "] %d%% %s", (int)(p * 100), status);
}

vr_status vr_score_vqav2_val(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                             vr_error *err) {
    vr_error local_err = {0};
    if (!err) err = &local_err;
    memset(rep, 0, sizeof *rep);
    vr_strbuf out = {0}, tmp = {0}, mfile = {0};
    char *ann_path = NULL, *q_path = NULL, *res_path = NULL, *metrics_path = NULL;
    cJSON *ann = NULL, *ques = NULL, *report = NULL;
    vr_jsonl res = {0};
    vr_score_map qa = {0}, resmap = {0}, badmap = {0};
    char **ann_keys = NULL, **missing = NULL, **extra = NULL;
    size_t n_missing = 0, n_extra = 0;
    cJSON **bad = NULL;
    size_t n_bad = 0;
    type_list qtypes = {0}, atypes = {0};
    vr_status st = VR_OK;
    const char *exp = o && o->exp_name ? o->exp_name : NULL;

    ann_path = o && o->annotation_path ? strdup(o->annotation_path)
                                       : vr_score_join_path(eval_dir, "eval/vqav2/v2_mscoco_val2014_annotations.json");
    q_path = o && o->question_path
                 ? strdup(o->question_path)
                 : vr_score_join_path(eval_dir, "eval/vqav2/v2_OpenEnded_mscoco_val2014_questions.json");
    if (o && o->answers_path) {
        res_path = strdup(o->answers_path);
    } else {
        if (!exp) {
            st = vr_error_set(err, VR_ERR_INVALID, "VQAv2 val: give the experiment name (exp_name) or the answer file");
            goto done;
        }
        vr_strbuf_printf(&tmp, "eval/vqav2/answers/visualrwkv_vqav2_mscoco_val2014/%s/merge.jsonl", exp);
        res_path = vr_score_join_path(eval_dir, tmp.p);
        vr_strbuf_free(&tmp);
    }
    if (!ann_path || !q_path || !res_path) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* output_file = result_file.replace(".jsonl", "_metrics.jsonl") */
    vr_str_replace_all(&tmp, res_path, strlen(res_path), ".jsonl", 6, "_metrics.jsonl", 14);
    metrics_path = vr_strbuf_take(&tmp, NULL);
    if (!metrics_path) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (strcmp(metrics_path, res_path) == 0) {
        st = vr_error_set(err, VR_ERR_INVALID,
                          "VQAv2 val: the answer file %s has no \".jsonl\" in its name; upstream would write the "
                          "metrics over it. Rename it to end in .jsonl", res_path);
        goto done;
    }

    /* VQA(annotation_file, question_file) */
    vr_strbuf_append_str(&out, "loading VQA annotations and questions into memory...\n");
    if (vr_score_read_json(ann_path, &ann, err) != VR_OK) goto fail;
    if (vr_score_read_json(q_path, &ques, err) != VR_OK) goto fail;
    vr_strbuf_append_str(&out, "creating index...\n");
    const cJSON *anns = cJSON_GetObjectItemCaseSensitive(ann, "annotations");
    const cJSON *qlist = cJSON_GetObjectItemCaseSensitive(ques, "questions");
    if (!cJSON_IsArray(anns)) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: no \"annotations\" list (is this a VQAv2 annotation file?)", ann_path);
        goto done;
    }
    if (!cJSON_IsArray(qlist)) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: no \"questions\" list (is this a VQAv2 questions file?)", q_path);
        goto done;
    }
    int n_ann = cJSON_GetArraySize(anns);
    ann_keys = calloc((size_t)n_ann + 1, sizeof *ann_keys);
    const cJSON **ann_items = calloc((size_t)n_ann + 1, sizeof *ann_items);
    if (!ann_keys || !ann_items) {
        free(ann_items);
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        int k = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, anns) {
            const cJSON *qid = cJSON_GetObjectItemCaseSensitive(a, "question_id");
            if (!qid || !cJSON_GetObjectItemCaseSensitive(a, "image_id")) {
                free(ann_items);
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: annotation %d has no question_id or image_id", ann_path, k);
                goto done;
            }
            ann_keys[k] = vr_score_id_key(qid);
            ann_items[k] = a;
            if (!ann_keys[k] || vr_score_map_put(&qa, ann_keys[k], (size_t)k) != VR_OK) {
                free(ann_items);
                st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                goto done;
            }
            k++;
        }
    }
    {
        const cJSON *q;
        cJSON_ArrayForEach(q, qlist) if (!cJSON_GetObjectItemCaseSensitive(q, "question_id")) {
            free(ann_items);
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: a question has no question_id", q_path);
            goto done;
        }
    }
    vr_strbuf_append_str(&out, "index created!\n");

    /* loadRes */
    static const char *const need[] = {"info", "task_type", "data_type", "data_subtype", "license"};
    for (size_t k = 0; k < sizeof need / sizeof need[0]; k++) {
        if (!cJSON_GetObjectItemCaseSensitive(ques, need[k])) {
            free(ann_items);
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: the top-level key \"%s\" is missing (eval_vqa.py needs info, task_type, data_type, "
                              "data_subtype and license; use the official questions file)", q_path, need[k]);
            goto done;
        }
    }
    const char *task_type = obj_str(ques, "task_type");
    vr_strbuf_append_str(&out, "Loading and preparing results...     \n");
    double t0 = now_s();
    if (vr_score_read_jsonl(res_path, 0, &res, err) != VR_OK) {
        free(ann_items);
        goto fail;
    }
    for (size_t i = 0; i < res.n; i++) {
        const cJSON *r = res.items[i];
        const cJSON *qid = cJSON_GetObjectItemCaseSensitive(r, "question_id");
        if (!qid) {
            free(ann_items);
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu has no question_id", res_path, res.line_no[i]);
            goto done;
        }
        char *key = vr_score_id_key(qid);
        if (!key || vr_score_map_put(&resmap, key, i) != VR_OK) {
            free(key);
            free(ann_items);
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (!vr_score_map_get(&qa, key, NULL)) {
            int dup = 0;
            for (size_t e = 0; e < n_extra; e++) dup |= strcmp(extra[e], key) == 0;
            if (!dup) {
                char **p = realloc(extra, (n_extra + 1) * sizeof *p);
                if (!p) {
                    free(key);
                    free(ann_items);
                    st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                    goto done;
                }
                extra = p;
                extra[n_extra++] = key;
                key = NULL;
            }
        }
        free(key);
    }
    for (int k = 0; k < n_ann; k++) {
        size_t at = 0;
        if (vr_score_map_get(&resmap, ann_keys[k], NULL)) continue;
        if (vr_score_map_get(&badmap, ann_keys[k], &at)) continue; /* already listed */
        vr_score_map_put(&badmap, ann_keys[k], 0);
        char **p = realloc(missing, (n_missing + 1) * sizeof *p);
        if (!p || !(p[n_missing] = strdup(ann_keys[k]))) {
            if (p) missing = p;
            free(ann_items);
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        missing = p;
        n_missing++;
    }
    vr_score_map_free(&badmap);
    if (n_extra || (n_missing && !(o && o->allow_missing))) {
        vr_strbuf_printf(&tmp, "VQAv2 val: the answers in %s do not match the annotated questions of %s:", res_path, ann_path);
        if (n_missing) {
            vr_strbuf_printf(&tmp, " %zu annotated question%s no answer (question_id ", n_missing,
                             n_missing == 1 ? " has" : "s have");
            append_ids(&tmp, missing, n_missing, 10);
            vr_strbuf_append_str(&tmp, ");");
        }
        if (n_extra) {
            vr_strbuf_printf(&tmp, " %zu answer%s for question_id ", n_extra, n_extra == 1 ? " is" : "s are");
            append_ids(&tmp, extra, n_extra, 10);
            vr_strbuf_append_str(&tmp, ", which the annotation file does not have;");
        }
        vr_strbuf_append_str(&tmp, n_extra ? " answer exactly the annotated questions (upstream eval_vqa.py aborts too)"
                                           : " run the missing questions, or allow missing answers to score them as wrong");
        free(ann_items);
        st = vr_error_set(err, VR_ERR_INVALID, "%s", tmp.p ? tmp.p : "answers do not match");
        vr_strbuf_free(&tmp);
        goto done;
    }
    if (task_type && strcmp(task_type, "Multiple Choice") == 0) {
        free(ann_items);
        st = vr_error_set(err, VR_ERR_UNSUPPORTED,
                          "%s: task_type \"Multiple Choice\" is not supported (upstream eval_vqa.py fails on it); use the "
                          "OpenEnded questions file", q_path);
        goto done;
    }
    for (size_t i = 0; i < res.n; i++) {
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(res.items[i], "text"))) {
            free(ann_items);
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu has no \"text\" string", res_path, res.line_no[i]);
            goto done;
        }
    }
    vr_strbuf_printf(&out, "DONE (t=%0.2fs)\n", now_s() - t0);
    vr_strbuf_append_str(&out, "creating index...\nindex created!\n");

    /* evaluate() */
    vr_strbuf_append_str(&out, "Start VQA evaluation.\n");
    vr_strbuf_append_str(&out, "computing accuracy\n");
    report = cJSON_CreateObject();
    cJSON *per_q = cJSON_AddArrayToObject(report, "per_question");
    double acc_sum = 0;
    vr_score_map badidx = {0};
    for (int step = 0; step < n_ann; step++) {
        size_t gi = 0, ri = 0;
        vr_score_map_get(&qa, ann_keys[step], &gi);
        cJSON *g = (cJSON *)ann_items[gi];
        int have_res = vr_score_map_get(&resmap, ann_keys[step], &ri);
        const char *qtype = obj_str(g, "question_type"), *atype = obj_str(g, "answer_type");
        cJSON *answers = cJSON_GetObjectItemCaseSensitive(g, "answers");
        if (!qtype || !atype || !cJSON_IsArray(answers) || cJSON_GetArraySize(answers) == 0) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: the annotation of question_id %s needs question_type, answer_type and a non-empty "
                              "answers list", ann_path, ann_keys[step] + 2);
            free(ann_items);
            vr_score_map_free(&badidx);
            goto done;
        }
        const cJSON *a;
        cJSON_ArrayForEach(a, answers) if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(a, "answer"))) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: an answer of question_id %s has no \"answer\" string", ann_path,
                              ann_keys[step] + 2);
            free(ann_items);
            vr_score_map_free(&badidx);
            goto done;
        }
        /* resAns */
        vr_strbuf ra = {0};
        vr_strbuf_append(&ra, "", 0);
        if (have_res) {
            const char *text = obj_str(res.items[ri], "text");
            vr_vqa_normalize_prediction(&ra, text, strlen(text));
        }
        /* gtAnswers (raw, before this round's in-place processing) */
        cJSON *gt_raw = cJSON_CreateArray();
        int all_equal = 1;
        const char *first = NULL;
        cJSON_ArrayForEach(a, answers) {
            const char *s = obj_str(a, "answer");
            cJSON_AddItemToArray(gt_raw, cJSON_CreateString(s));
            if (!first) first = s;
            else if (strcmp(first, s) != 0) all_equal = 0;
        }
        if (!all_equal) {
            cJSON_ArrayForEach(a, answers) {
                cJSON *as = cJSON_GetObjectItemCaseSensitive(a, "answer");
                vr_strbuf pp = {0};
                vr_strbuf_append(&pp, "", 0);
                vr_vqa_process_punctuation(&pp, as->valuestring, strlen(as->valuestring), VR_PUNCT_EVAL_VQA);
                cJSON_SetValuestring(as, pp.p ? pp.p : "");
                vr_strbuf_free(&pp);
            }
        }
        double gsum = 0;
        int gcount = 0;
        const cJSON *gd;
        cJSON_ArrayForEach(gd, answers) {
            int m = 0;
            const cJSON *it;
            cJSON_ArrayForEach(it, answers) {
                if (cJSON_Compare(it, gd, 1)) continue;
                const char *s = obj_str(it, "answer");
                if (s && ra.p && strcmp(s, ra.p) == 0) m++;
            }
            gsum += m >= 3 ? 1.0 : (double)m / 3;
            gcount++;
        }
        double acc = gsum / gcount;
        if (!have_res) acc = 0; /* allow_missing: a missing answer is wrong */
        acc_sum += acc;
        cJSON *pq = cJSON_CreateObject();
        cJSON_AddItemToObject(pq, "question_id", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(g, "question_id"), 1));
        cJSON_AddStringToObject(pq, "processed_answer", ra.p ? ra.p : "");
        cJSON *asc = cJSON_AddArrayToObject(pq, "gt_answers_as_compared");
        cJSON_ArrayForEach(a, answers) cJSON_AddItemToArray(asc, cJSON_CreateString(obj_str(a, "answer")));
        cJSON_AddNumberToObject(pq, "accuracy_x100_rounded", vr_py_round(100 * acc, 2));
        cJSON_AddBoolToObject(pq, "missing", !have_res);
        cJSON_AddItemToArray(per_q, pq);
        if (acc == 0 && have_res) {
            const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(res.items[ri], "prompt");
            if (!prompt) {
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: the answer to question_id %s has no \"prompt\"", res_path,
                                  ann_keys[step] + 2);
                cJSON_Delete(gt_raw);
                vr_strbuf_free(&ra);
                free(ann_items);
                vr_score_map_free(&badidx);
                goto done;
            }
            cJSON *bc = cJSON_CreateObject();
            cJSON_AddItemToObject(bc, "question_id", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(g, "question_id"), 1));
            cJSON_AddItemToObject(bc, "question", cJSON_Duplicate(prompt, 1));
            cJSON_AddItemToObject(bc, "gt_answer", gt_raw);
            gt_raw = NULL;
            cJSON_AddStringToObject(bc, "pred_answer", ra.p ? ra.p : "");
            size_t at = 0;
            if (vr_score_map_get(&badidx, ann_keys[step], &at)) {
                cJSON_Delete(bad[at]); /* dict key kept its first position; value replaced */
                bad[at] = bc;
            } else {
                cJSON **p = realloc(bad, (n_bad + 1) * sizeof *p);
                if (!p) {
                    cJSON_Delete(bc);
                } else {
                    bad = p;
                    bad[n_bad] = bc;
                    vr_score_map_put(&badidx, ann_keys[step], n_bad);
                    n_bad++;
                }
            }
        }
        cJSON_Delete(gt_raw);
        vr_strbuf_free(&ra);
        type_acc *qt = type_get(&qtypes, qtype), *at2 = type_get(&atypes, atype);
        if (!qt || !at2) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            free(ann_items);
            vr_score_map_free(&badidx);
            goto done;
        }
        qt->sum += acc;
        qt->n++;
        at2->sum += acc;
        at2->n++;
        if (step % 100 == 0) progress(&out, (double)step / (double)n_ann);
    }
    vr_score_map_free(&badidx);
    free(ann_items);
    if (n_ann == 0) {
        st = vr_error_set(err, VR_ERR_INVALID, "%s: no annotations to score (upstream divides by zero)", ann_path);
        goto done;
    }
    vr_strbuf_append_str(&out, "Done computing accuracy\n");
    double overall = vr_py_round(100 * acc_sum / n_ann, 2);

    /* prints */
    vr_strbuf_append_str(&out, "Overall Accuracy is: ");
    vr_py_append_fixed(&out, overall, 2);
    vr_strbuf_append_str(&out, "\n\n");
    vr_strbuf_append_str(&out, "Per Answer Type Accuracy is the following:\n");
    cJSON *metrics = cJSON_CreateObject();
    cJSON_AddItemToObject(metrics, "agg_metrics", float_raw(overall));
    cJSON *pat = cJSON_CreateObject(), *pqt = cJSON_CreateObject();
    for (size_t i = 0; i < atypes.n; i++) {
        double v = vr_py_round(100 * atypes.v[i].sum / (double)atypes.v[i].n, 2);
        vr_strbuf_printf(&out, "%s : ", atypes.v[i].name);
        vr_py_append_fixed(&out, v, 2);
        vr_strbuf_append_char(&out, '\n');
        if (cJSON_GetObjectItemCaseSensitive(metrics, atypes.v[i].name))
            cJSON_ReplaceItemInObjectCaseSensitive(metrics, atypes.v[i].name, float_raw(v));
        else
            cJSON_AddItemToObject(metrics, atypes.v[i].name, float_raw(v));
        cJSON_AddNumberToObject(pat, atypes.v[i].name, v);
    }
    for (size_t i = 0; i < qtypes.n; i++)
        cJSON_AddNumberToObject(pqt, qtypes.v[i].name, vr_py_round(100 * qtypes.v[i].sum / (double)qtypes.v[i].n, 2));
    for (size_t i = 0; i < n_bad && i <= 10; i++) {
        vr_strbuf_printf(&out, "Badcase %zu: ", i);
        vr_py_repr_json(&out, bad[i]);
        vr_strbuf_append_char(&out, '\n');
    }
    if (n_missing) {
        vr_strbuf_printf(&out, "Warning: %zu annotated question%s had no answer and %s scored as wrong (question_id ",
                         n_missing, n_missing == 1 ? "" : "s", n_missing == 1 ? "was" : "were");
        append_ids(&out, missing, n_missing, 20);
        vr_strbuf_append_str(&out, ")\n");
    }

    /* metrics file */
    vr_py_json_dump(&mfile, metrics, -1, 1);
    vr_strbuf_append_char(&mfile, '\n');
    for (size_t i = 0; i < n_bad; i++) {
        vr_py_json_dump(&mfile, bad[i], -1, 1);
        vr_strbuf_append_char(&mfile, '\n');
    }
    if (mfile.oom || out.oom) {
        cJSON_Delete(metrics);
        cJSON_Delete(pat);
        cJSON_Delete(pqt);
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (vr_score_write_output(metrics_path, mfile.p, mfile.n, rep, err) != VR_OK) {
        cJSON_Delete(metrics);
        cJSON_Delete(pat);
        cJSON_Delete(pqt);
        goto fail;
    }

    /* report */
    cJSON_AddStringToObject(report, "benchmark", "vqav2_val");
    cJSON_AddStringToObject(report, "answers_file", res_path);
    cJSON_AddStringToObject(report, "metrics_file", metrics_path);
    cJSON_AddNumberToObject(report, "questions", n_ann);
    cJSON_AddNumberToObject(report, "overall", overall);
    cJSON_AddItemToObject(report, "perAnswerType", pat);
    cJSON_AddItemToObject(report, "perQuestionType", pqt);
    /* metrics as plain numbers (the file has Python floats) */
    cJSON *mplain = cJSON_CreateObject();
    for (cJSON *c = metrics->child; c; c = c->next) cJSON_AddNumberToObject(mplain, c->string, strtod(c->valuestring, NULL));
    cJSON_AddItemToObject(report, "metrics", mplain);
    cJSON_Delete(metrics);
    cJSON *bl = cJSON_AddArrayToObject(report, "badcases");
    for (size_t i = 0; i < n_bad; i++) cJSON_AddItemToArray(bl, cJSON_Duplicate(bad[i], 1));
    cJSON *mi = cJSON_AddArrayToObject(report, "missing_question_ids");
    for (size_t i = 0; i < n_missing; i++) cJSON_AddItemToArray(mi, cJSON_CreateString(missing[i] + 2));
    if (n_missing) {
        cJSON *w = cJSON_AddArrayToObject(report, "warnings");
        vr_score_warning_add(w, "%zu annotated questions had no answer and were scored as wrong", n_missing);
    }
    rep->json = report;
    report = NULL;
    rep->stdout_text = vr_strbuf_take(&out, NULL);
    if (!rep->stdout_text) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    goto done;

fail:
    st = err->code != VR_OK ? err->code : VR_ERR_INTERNAL;
done:
    if (st != VR_OK) vr_score_report_free(rep);
    cJSON_Delete(report);
    cJSON_Delete(ann);
    cJSON_Delete(ques);
    vr_jsonl_free(&res);
    vr_score_map_free(&qa);
    vr_score_map_free(&resmap);
    vr_score_map_free(&badmap);
    if (ann_keys)
        for (int k = 0; ann_keys[k]; k++) free(ann_keys[k]);
    free(ann_keys);
    for (size_t i = 0; i < n_missing; i++) free(missing[i]);
    free(missing);
    for (size_t i = 0; i < n_extra; i++) free(extra[i]);
    free(extra);
    for (size_t i = 0; i < n_bad; i++) cJSON_Delete(bad[i]);
    free(bad);
    type_list_free(&qtypes);
    type_list_free(&atypes);
    vr_strbuf_free(&out);
    vr_strbuf_free(&tmp);
    vr_strbuf_free(&mfile);
    free(ann_path);
    free(q_path);
    free(res_path);
    free(metrics_path);
    return st;
}

/* ---- VQAv2 test-dev (convert_vqav2_for_submission.py) ----------------------------------- */

vr_status vr_score_vqav2_testdev(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                                 vr_error *err) {
    vr_error local_err = {0};
    if (!err) err = &local_err;
    memset(rep, 0, sizeof *rep);
    const char *split = o && o->split ? o->split : "llava_vqav2_mscoco_test-dev2015";
    const char *exp = o ? o->exp_name : NULL;
    vr_strbuf tmp = {0}, out = {0}, up = {0};
    char *dir = vr_score_join_path(eval_dir, "eval/vqav2"), *src = NULL, *test_path = NULL, *dst = NULL;
    vr_jsonl res = {0}, test = {0};
    vr_score_map rmap = {0};
    cJSON *upload = NULL, *report = NULL;
    vr_status st = VR_OK;
    if (!exp) {
        st = vr_error_set(err, VR_ERR_INVALID, "VQAv2 test-dev: give the experiment name (exp_name): it names the upload file");
        goto done;
    }
    if (strchr(split, '/') || strchr(exp, '/')) {
        st = vr_error_set(err, VR_ERR_INVALID, "VQAv2 test-dev: the split and experiment name must not contain '/'");
        goto done;
    }
    if (o && o->answers_path) {
        src = strdup(o->answers_path);
    } else {
        vr_strbuf_printf(&tmp, "answers/%s/%s/merge.jsonl", split, exp);
        src = vr_score_join_path(dir, tmp.p);
        vr_strbuf_free(&tmp);
    }
    test_path = o && o->question_path ? strdup(o->question_path)
                                      : vr_score_join_path(dir, "llava_vqav2_mscoco_test2015.jsonl");
    vr_strbuf_printf(&tmp, "answers_upload/%s/%s.json", split, exp);
    dst = vr_score_join_path(dir, tmp.p);
    vr_strbuf_free(&tmp);
    if (!dir || !src || !test_path || !dst) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (vr_score_read_jsonl(src, 1, &res, err) != VR_OK) goto fail;
    for (size_t i = 0; i < res.n; i++) {
        const cJSON *qid = cJSON_GetObjectItemCaseSensitive(res.items[i], "question_id");
        if (!qid || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(res.items[i], "text"))) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu needs \"question_id\" and a \"text\" string", src,
                              res.line_no[i]);
            goto done;
        }
        char *key = vr_score_id_key(qid);
        if (!key || vr_score_map_put(&rmap, key, i) != VR_OK) {
            free(key);
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        free(key);
    }
    if (vr_score_read_jsonl(test_path, 0, &test, err) != VR_OK) goto fail;
    vr_strbuf_printf(&out, "total results: %zu, total split: %zu, error_line: %zu\n", rmap.n, test.n, res.n_bad);
    upload = cJSON_CreateArray();
    report = cJSON_CreateObject();
    cJSON *missing = cJSON_CreateArray();
    size_t n_missing = 0;
    for (size_t i = 0; i < test.n; i++) {
        const cJSON *qid = cJSON_GetObjectItemCaseSensitive(test.items[i], "question_id");
        if (!qid) {
            cJSON_Delete(missing);
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu has no question_id", test_path, test.line_no[i]);
            goto done;
        }
        char *key = vr_score_id_key(qid);
        size_t ri = 0;
        cJSON *item = cJSON_CreateObject();
        cJSON_AddItemToObject(item, "question_id", cJSON_Duplicate(qid, 1));
        if (key && vr_score_map_get(&rmap, key, &ri)) {
            const char *text = obj_str(res.items[ri], "text");
            char *ans = vr_evalai_answer(text, strlen(text));
            cJSON_AddStringToObject(item, "answer", ans ? ans : "");
            free(ans);
        } else {
            cJSON_AddStringToObject(item, "answer", "");
            cJSON_AddItemToArray(missing, cJSON_Duplicate(qid, 1));
            n_missing++;
        }
        free(key);
        cJSON_AddItemToArray(upload, item);
    }
    vr_py_json_dump(&up, upload, -1, 1);
    if (up.oom || out.oom) {
        cJSON_Delete(missing);
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (vr_score_write_output(dst, up.p, up.n, rep, err) != VR_OK) {
        cJSON_Delete(missing);
        goto fail;
    }
    cJSON_AddStringToObject(report, "benchmark", "vqav2_testdev");
    cJSON_AddStringToObject(report, "answers_file", src);
    cJSON_AddStringToObject(report, "upload_file", dst);
    cJSON_AddNumberToObject(report, "total_results", (double)rmap.n);
    cJSON_AddNumberToObject(report, "total_split", (double)test.n);
    cJSON_AddNumberToObject(report, "error_line", (double)res.n_bad);
    cJSON_AddItemToObject(report, "missing_question_ids", missing);
    cJSON_AddItemToObject(report, "upload", upload);
    upload = NULL;
    if (n_missing || res.n_bad) {
        cJSON *w = cJSON_AddArrayToObject(report, "warnings");
        if (n_missing)
            vr_score_warning_add(w, "%zu questions of the split have no answer; their upload answer is \"\"",
                                 n_missing);
        if (res.n_bad) vr_score_warning_add(w, "%zu lines of %s are not valid JSON and were skipped", res.n_bad, src);
    }
    rep->json = report;
    report = NULL;
    rep->stdout_text = vr_strbuf_take(&out, NULL);
    if (!rep->stdout_text) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    goto done;
fail:
    st = err->code != VR_OK ? err->code : VR_ERR_INTERNAL;
done:
    if (st != VR_OK) vr_score_report_free(rep);
    cJSON_Delete(upload);
    cJSON_Delete(report);
    vr_jsonl_free(&res);
    vr_jsonl_free(&test);
    vr_score_map_free(&rmap);
    vr_strbuf_free(&tmp);
    vr_strbuf_free(&out);
    vr_strbuf_free(&up);
    free(dir);
    free(src);
    free(test_path);
    free(dst);
    return st;
}
