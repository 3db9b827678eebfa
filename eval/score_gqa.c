/* eval/score_gqa.c — GQA testdev-balanced scoring exactly as upstream
 * VisualRWKV-v6/v6.0/eval/convert_gqa_for_eval.py + eval_gqa.py do it (see
 * shared/eval-fixtures/README.md §6): the predictions file, the printed report, the
 * _metrics.json and _badcases.json files, byte for byte.
 * It must not "fix" what upstream scores (exact membership in `answers`, `choose` counted as
 * binary, chi-square over the joined gold key), and must not crash or silently mis-score where
 * upstream does: a missing, duplicated or unknown answer, a questions file without the
 * `answers` list, no global group: those are errors naming the ids. Reads and writes files;
 * prints nothing. */
#include "eval/score.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pytext.h"

/* ---- small helpers ------------------------------------------------------------------- */

static char *gqa_join(const char *a, const char *b) {
    char *r = NULL;
    if (asprintf(&r, "%s/%s", a, b) < 0) return NULL;
    return r;
}

/* Appends id to the growing list *ids (the strings are not copied). */
static vr_status gqa_ids_push(const char ***ids, size_t *n, const char *id) {
    const char **nb = realloc(*ids, (*n + 1) * sizeof *nb);
    if (!nb) return VR_ERR_NOMEM;
    *ids = nb;
    nb[(*n)++] = id;
    return VR_OK;
}

/* ---- the answer file (convert_gqa_for_eval.py) ----------------------------------------- */

typedef struct gqa_pred {
    char *qid;        /* the question id as text (JSON string) */
    int qid_is_str;   /* upstream compares ids as JSON strings: a number never matches */
    char *prediction; /* text.rstrip('.').lower() */
    size_t pred_len;
    long line;
} gqa_pred;

static void gqa_preds_free(gqa_pred *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(p[i].qid);
        free(p[i].prediction);
    }
    free(p);
}

static vr_status gqa_read_answers(const char *path, gqa_pred **out, size_t *out_n, vr_error *err) {
    vr_jsonl j = {0};
    *out = NULL;
    *out_n = 0;
    vr_status st = vr_score_read_jsonl(path, 0, &j, err);
    if (st != VR_OK) return vr_error_wrap(err, "GQA answer file (convert_gqa_for_eval.py would stop there)");
    if (j.n == 0) {
        vr_jsonl_free(&j);
        return vr_error_set(err, VR_ERR_INVALID, "%s: the GQA answer file is empty; run the evaluation first", path);
    }
    gqa_pred *p = calloc(j.n, sizeof *p);
    size_t n = 0;
    if (!p) {
        vr_jsonl_free(&j);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    for (; n < j.n; n++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j.items[n], "question_id");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j.items[n], "text");
        if (!id || !cJSON_IsString(t)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu has no \"question_id\" or no string \"text\"", path,
                              j.line_no[n]);
            break;
        }
        gqa_pred *e = &p[n];
        e->line = (long)j.line_no[n];
        e->qid_is_str = cJSON_IsString(id);
        e->qid = e->qid_is_str ? strdup(id->valuestring) : cJSON_PrintUnformatted(id);
        size_t tl = vr_py_rstrip_chars(t->valuestring, strlen(t->valuestring), ".");
        e->prediction = vr_py_lower(t->valuestring, tl, &e->pred_len);
        if (!e->qid || !e->prediction) {
            n++;
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            break;
        }
    }
    vr_jsonl_free(&j);
    if (st != VR_OK) {
        gqa_preds_free(p, n);
        return st;
    }
    *out = p;
    *out_n = n;
    return VR_OK;
}

/* json.dump(all_answers, f): one line, ASCII, no final newline */
static vr_status gqa_predictions_text(const gqa_pred *p, size_t n, vr_strbuf *b) {
    vr_strbuf_append_char(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (i) vr_strbuf_append_str(b, ", ");
        vr_strbuf_append_str(b, "{\"questionId\": ");
        if (p[i].qid_is_str) vr_py_json_str(b, p[i].qid, strlen(p[i].qid), 1);
        else vr_strbuf_append_str(b, p[i].qid);
        vr_strbuf_append_str(b, ", \"prediction\": ");
        vr_py_json_str(b, p[i].prediction, p[i].pred_len, 1);
        vr_strbuf_append_char(b, '}');
    }
    vr_strbuf_append_char(b, ']');
    return b->oom ? VR_ERR_NOMEM : VR_OK;
}

/* ---- eval_gqa.py ------------------------------------------------------------------------ */

/* One per-type accumulator entry: a string key or an integer key, in first-seen order. */
typedef struct gqa_bucket {
    const char *skey;
    long ikey;
    long n, correct;
} gqa_bucket;

typedef struct gqa_buckets {
    gqa_bucket *v;
    size_t n, cap;
    int is_int;
} gqa_buckets;

static int gqa_bucket_add(gqa_buckets *b, const char *skey, long ikey, int correct) {
    for (size_t i = 0; i < b->n; i++) {
        int same = b->is_int ? b->v[i].ikey == ikey : strcmp(b->v[i].skey, skey) == 0;
        if (same) {
            b->v[i].n++;
            b->v[i].correct += correct;
            return 0;
        }
    }
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 16;
        gqa_bucket *nv = realloc(b->v, nc * sizeof *nv);
        if (!nv) return -1;
        b->v = nv;
        b->cap = nc;
    }
    b->v[b->n].skey = skey;
    b->v[b->n].ikey = ikey;
    b->v[b->n].n = 1;
    b->v[b->n].correct = correct;
    b->n++;
    return 0;
}

static int gqa_bucket_sort_cmp_int(const void *a, const void *b) {
    const gqa_bucket *x = *(const gqa_bucket *const *)a, *y = *(const gqa_bucket *const *)b;
    return x->ikey < y->ikey ? -1 : x->ikey > y->ikey;
}

static int gqa_bucket_sort_cmp_str(const void *a, const void *b) {
    const gqa_bucket *x = *(const gqa_bucket *const *)a, *y = *(const gqa_bucket *const *)b;
    return strcmp(x->skey, y->skey); /* UTF-8 byte order == code point order */
}

/* avg(l) * 100 as Python computes it: float(sum)/len, then * 100 */
static double gqa_pct(long correct, long n) { return (double)correct / (double)n * 100.0; }

/* A Python float: a raw item printing repr(x) for the files (json.dump writes 60.0, not 60),
 * a plain number for the report. */
static cJSON *gqa_raw_float(double x, int raw) {
    if (!raw) return cJSON_CreateNumber(x);
    char r[VR_PY_REPR_MAX];
    vr_py_float_repr(x, r);
    return cJSON_CreateRaw(r);
}

/* avg(list)*100: the integer 0 for an empty list */
static cJSON *gqa_metric_item(long correct, long n, int raw) {
    if (n == 0) return cJSON_CreateNumber(0);
    return gqa_raw_float(gqa_pct(correct, n), raw);
}

static cJSON *gqa_buckets_json(const gqa_buckets *b, int raw) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (size_t i = 0; i < b->n; i++) {
        cJSON *pair = cJSON_CreateArray();
        if (!pair) goto oom;
        cJSON_AddItemToArray(pair, gqa_raw_float(gqa_pct(b->v[i].correct, b->v[i].n), raw));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)b->v[i].n));
        char key[32];
        const char *k = b->v[i].skey;
        if (b->is_int) {
            snprintf(key, sizeof key, "%ld", b->v[i].ikey);
            k = key;
        }
        cJSON_AddItemToObject(o, k, pair);
    }
    return o;
oom:
    cJSON_Delete(o);
    return NULL;
}

/* The scores dict of eval_gqa.py in its key order (raw: Python float reprs, for the file). */
static cJSON *gqa_metrics_json(long c_acc, long n_acc, long c_bin, long n_bin, long c_open, long n_open,
                               const gqa_buckets *per_struct, const gqa_buckets *per_sem, const gqa_buckets *per_len,
                               const gqa_buckets *per_steps, double distribution, int raw) {
    cJSON *m = cJSON_CreateObject();
    if (!m) return NULL;
    cJSON_AddItemToObject(m, "accuracy", gqa_metric_item(c_acc, n_acc, raw));
    cJSON_AddItemToObject(m, "binary", gqa_metric_item(c_bin, n_bin, raw));
    cJSON_AddItemToObject(m, "open", gqa_metric_item(c_open, n_open, raw));
    cJSON_AddNumberToObject(m, "validity", 0);
    cJSON_AddNumberToObject(m, "plausibility", 0);
    cJSON_AddNumberToObject(m, "consistency", 0);
    cJSON_AddItemToObject(m, "accuracyPerStructuralType", gqa_buckets_json(per_struct, raw));
    cJSON_AddItemToObject(m, "accuracyPerSemanticType", gqa_buckets_json(per_sem, raw));
    cJSON_AddItemToObject(m, "accuracyPerLength", gqa_buckets_json(per_len, raw));
    cJSON_AddItemToObject(m, "accuracyPerSteps", gqa_buckets_json(per_steps, raw));
    cJSON_AddNumberToObject(m, "grounding", 0);
    cJSON_AddItemToObject(m, "distribution", gqa_raw_float(distribution, raw));
    if (cJSON_GetArraySize(m) != 12) { /* an allocation failed */
        cJSON_Delete(m);
        return NULL;
    }
    return m;
}

static vr_status gqa_print_buckets(vr_strbuf *out, const char *title, const gqa_buckets *b, vr_error *err) {
    const gqa_bucket **order = malloc((b->n ? b->n : 1) * sizeof *order);
    if (!order) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < b->n; i++) order[i] = &b->v[i];
    qsort(order, b->n, sizeof *order, b->is_int ? gqa_bucket_sort_cmp_int : gqa_bucket_sort_cmp_str);
    vr_strbuf_printf(out, "\n%s:\n", title);
    for (size_t i = 0; i < b->n; i++) {
        if (b->is_int) vr_strbuf_printf(out, "  %ld: ", order[i]->ikey);
        else vr_strbuf_printf(out, "  %s: ", order[i]->skey);
        vr_py_append_fixed(out, gqa_pct(order[i]->correct, order[i]->n), 2);
        vr_strbuf_printf(out, "%% (%ld questions)\n", order[i]->n);
    }
    free(order);
    return VR_OK;
}

/* distribution: gold and predicted histograms per global group, in first-seen order */
typedef struct gqa_ans {
    char *key;
    long gold, pred;
} gqa_ans;

typedef struct gqa_group {
    const char *name;
    gqa_ans *a;
    size_t n, cap;
} gqa_group;

typedef struct gqa_question {
    const char *qid;
    const char *text;
    const cJSON *answers;
    char *gold_key; /* ";".join(answers) */
    int balanced;
    const char *global_group; /* NULL when null */
    const char *structural, *semantic;
    long words, steps;
    long pred_index; /* -1: no prediction */
} gqa_question;

static const char *const gqa_header =
    "Please make sure to use our provided visual features as gqadataset.org for better comparability. "
    "We provide both spatial and object-based features trained on GQA train set.\n"
    "In particular please avoid using features from https://github.com/peteanderson80/bottom-up-attention "
    "since they were trained on images contained in the GQA validation set and thus may give false scores "
    "improvement.\n\n"
    "Please consider using --consistency to compute consistency scores for entailed questions.\n"
    "If you do so, please provide answers to all questions in val_all_questions.json.\n\n"
    "Please consider using --grounding to compute attention scores.\n"
    "If you do so, please provide attention maps through --attentions.\n\n"
    "Loading questions...\n"
    "Loading predictions...\n";

/* Reads one question object into q (borrowing strings from the cJSON tree). */
static vr_status gqa_question_parse(const char *path, const char *qid, const cJSON *v, gqa_question *q,
                                    vr_error *err) {
    memset(q, 0, sizeof *q);
    q->qid = qid;
    q->pred_index = -1;
    if (!cJSON_IsObject(v)) return vr_error_set(err, VR_ERR_FORMAT, "%s: question %s is not an object", path, qid);
    const cJSON *answers = cJSON_GetObjectItemCaseSensitive(v, "answers");
    if (!answers)
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: question %s has no \"answers\" list; VisualRWKV's eval_gqa.py needs the "
                            "GPT-reviewed \"answers\" field, which the official GQA questions file lacks "
                            "(upstream fails with KeyError 'answers'): use the questions file with answers",
                            path, qid);
    if (!cJSON_IsArray(answers))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: question %s: \"answers\" is not a list", path, qid);
    vr_strbuf key = {0};
    int k = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, answers) {
        if (!cJSON_IsString(a)) {
            vr_strbuf_free(&key);
            return vr_error_set(err, VR_ERR_FORMAT, "%s: question %s: an entry of \"answers\" is not a string",
                                path, qid);
        }
        if (k++) vr_strbuf_append_char(&key, ';');
        vr_strbuf_append_str(&key, a->valuestring);
    }
    q->gold_key = vr_strbuf_take(&key, NULL);
    if (!q->gold_key) return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    q->answers = answers;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(v, "question");
    const cJSON *bal = cJSON_GetObjectItemCaseSensitive(v, "isBalanced");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(v, "groups");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(v, "types");
    const cJSON *sem = cJSON_GetObjectItemCaseSensitive(v, "semantic");
    if (!cJSON_IsString(text) || !bal || !cJSON_IsArray(sem))
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: question %s lacks a string \"question\", \"isBalanced\" or a \"semantic\" list",
                            path, qid);
    q->text = text->valuestring;
    q->balanced = !(cJSON_IsFalse(bal) || cJSON_IsNull(bal) || (cJSON_IsNumber(bal) && bal->valuedouble == 0) ||
                    (cJSON_IsString(bal) && !bal->valuestring[0]));
    vr_span *words = NULL;
    size_t nw = 0;
    if (vr_py_split_ws(q->text, strlen(q->text), &words, &nw, err) != VR_OK) return err->code;
    free(words);
    q->words = (long)nw;
    const cJSON *c;
    cJSON_ArrayForEach(c, sem) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(c, "operation");
        const cJSON *arg = cJSON_GetObjectItemCaseSensitive(c, "argument");
        if (!cJSON_IsString(op) || !cJSON_IsString(arg))
            return vr_error_set(err, VR_ERR_FORMAT,
                                "%s: question %s: a \"semantic\" step lacks a string operation or argument", path, qid);
        vr_strbuf s = {0};
        vr_strbuf_printf(&s, "%s: %s", op->valuestring, arg->valuestring);
        if (s.oom) {
            vr_strbuf_free(&s);
            return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        }
        int skip = strstr(s.p, "exist") || strstr(s.p, "query: name") || strstr(s.p, "choose name");
        vr_strbuf_free(&s);
        if (!skip) q->steps++;
    }
    if (!q->balanced) return VR_OK;
    /* only balanced questions read groups and types upstream */
    const cJSON *glob = cJSON_GetObjectItemCaseSensitive(groups, "global");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(types, "structural");
    const cJSON *se = cJSON_GetObjectItemCaseSensitive(types, "semantic");
    if (!glob || !cJSON_IsString(st) || !cJSON_IsString(se))
        return vr_error_set(err, VR_ERR_FORMAT,
                            "%s: balanced question %s lacks \"groups\".\"global\" or string \"types\".\"structural\" "
                            "/ \"types\".\"semantic\"",
                            path, qid);
    if (!cJSON_IsNull(glob) && !cJSON_IsString(glob))
        return vr_error_set(err, VR_ERR_FORMAT, "%s: question %s: \"groups\".\"global\" is neither a string nor null",
                            path, qid);
    q->global_group = cJSON_IsString(glob) ? glob->valuestring : NULL;
    q->structural = st->valuestring;
    q->semantic = se->valuestring;
    return VR_OK;
}

static int gqa_in_answers(const cJSON *answers, const char *pred) {
    const cJSON *a;
    cJSON_ArrayForEach(a, answers) if (strcmp(a->valuestring, pred) == 0) return 1;
    return 0;
}

static gqa_group *gqa_group_get(gqa_group **groups, size_t *n, size_t *cap, const char *name) {
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*groups)[i].name, name) == 0) return &(*groups)[i];
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        gqa_group *ng = realloc(*groups, nc * sizeof *ng);
        if (!ng) return NULL;
        *groups = ng;
        *cap = nc;
    }
    gqa_group *g = &(*groups)[(*n)++];
    memset(g, 0, sizeof *g);
    g->name = name;
    return g;
}

static gqa_ans *gqa_ans_find(gqa_group *g, const char *key) {
    for (size_t i = 0; i < g->n; i++)
        if (strcmp(g->a[i].key, key) == 0) return &g->a[i];
    return NULL;
}

static vr_status gqa_python_list_repr(vr_strbuf *b, const cJSON *answers) {
    vr_strbuf_append_char(b, '[');
    int k = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, answers) {
        if (k++) vr_strbuf_append_str(b, ", ");
        vr_py_repr_str(b, a->valuestring, strlen(a->valuestring));
    }
    vr_strbuf_append_char(b, ']');
    return VR_OK;
}

vr_status vr_score_gqa(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err) {
    memset(rep, 0, sizeof *rep);
    vr_status st = VR_OK;
    char *answers_path = NULL, *questions_path = NULL, *pred_path = NULL, *metrics_path = NULL, *bad_path = NULL;
    cJSON *qroot = NULL, *metrics = NULL, *badcases = NULL, *missing = NULL;
    gqa_pred *preds = NULL;
    size_t npreds = 0, nq = 0;
    gqa_question *qs = NULL;
    vr_score_key *qkeys = NULL, *pkeys = NULL;
    gqa_group *groups = NULL;
    size_t ngroups = 0, capgroups = 0;
    gqa_buckets per_struct = {0}, per_sem = {0}, per_len = {.is_int = 1}, per_steps = {.is_int = 1};
    vr_strbuf out = {0}, tmp = {0}, warn = {0};
    const char **bad_ids = NULL;
    size_t nbad_ids = 0;
    const char *exp = o && o->exp_name ? o->exp_name : NULL;

    if (o && o->answers_path) {
        answers_path = strdup(o->answers_path);
    } else {
        if (!exp || !*exp) return vr_error_set(err, VR_ERR_INVALID, "GQA scoring needs the experiment name (exp_name) or an answer file path");
        if (asprintf(&answers_path, "%s/eval/gqa/answers/llava_gqa_testdev_balanced/%s/merge.jsonl", eval_dir, exp) < 0)
            answers_path = NULL;
    }
    questions_path = o && o->annotation_path ? strdup(o->annotation_path)
                                             : gqa_join(eval_dir, "eval/gqa/testdev_balanced_questions.json");
    if (!answers_path || !questions_path) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        /* the predictions file sits next to the answer file (eval_gqa.sh); the metrics and
         * badcases names replace ".json" in the file name */
        const char *slash = strrchr(answers_path, '/');
        int dl = slash ? (int)(slash - answers_path) : 1;
        const char *dir = slash ? answers_path : ".";
        if (asprintf(&pred_path, "%.*s/testdev_balanced_predictions.json", dl, dir) < 0) pred_path = NULL;
        if (asprintf(&metrics_path, "%.*s/testdev_balanced_predictions_metrics.json", dl, dir) < 0) metrics_path = NULL;
        if (asprintf(&bad_path, "%.*s/testdev_balanced_predictions_badcases.json", dl, dir) < 0) bad_path = NULL;
        if (!pred_path || !metrics_path || !bad_path) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
    }

    st = gqa_read_answers(answers_path, &preds, &npreds, err);
    if (st != VR_OK) goto done;

    st = vr_score_read_json(questions_path, &qroot, err);
    if (st != VR_OK) {
        vr_error_wrap(err, "GQA questions file");
        goto done;
    }
    if (!cJSON_IsObject(qroot)) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: not a JSON object of questions keyed by question id", questions_path);
        goto done;
    }
    nq = (size_t)cJSON_GetArraySize(qroot);
    qs = calloc(nq ? nq : 1, sizeof *qs);
    qkeys = calloc(nq ? nq : 1, sizeof *qkeys);
    pkeys = calloc(npreds, sizeof *pkeys);
    if (!qs || !qkeys || !pkeys) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        size_t i = 0;
        const cJSON *v;
        cJSON_ArrayForEach(v, qroot) {
            st = gqa_question_parse(questions_path, v->string, v, &qs[i], err);
            if (st != VR_OK) goto done;
            qkeys[i].s = v->string;
            qkeys[i].idx = i;
            i++;
        }
    }
    vr_score_keys_sort(qkeys, nq);
    for (size_t i = 1; i < nq; i++)
        if (strcmp(qkeys[i - 1].s, qkeys[i].s) == 0) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: question id %s appears twice", questions_path, qkeys[i].s);
            goto done;
        }

    /* match answers to questions: duplicated and unknown ids are errors */
    for (size_t i = 0; i < npreds; i++) {
        pkeys[i].s = preds[i].qid;
        pkeys[i].idx = i;
    }
    vr_score_keys_sort(pkeys, npreds);
    for (size_t i = 1; i < npreds; i++) {
        if (strcmp(pkeys[i - 1].s, pkeys[i].s) == 0 && (i < 2 || strcmp(pkeys[i - 2].s, pkeys[i].s) != 0)) {
            if (gqa_ids_push(&bad_ids, &nbad_ids, pkeys[i].s) != VR_OK) {
                st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
    }
    if (nbad_ids) {
        st = vr_score_ids_error(err, "duplicate answers", bad_ids, nbad_ids,
                                "; remove the duplicate lines",
                                "%s: %zu question id(s) answered more than once (upstream silently keeps the last): ",
                                answers_path, nbad_ids);
        goto done;
    }
    for (size_t i = 0; i < npreds; i++) {
        long qi = preds[i].qid_is_str ? vr_score_keys_find(qkeys, nq, preds[i].qid) : -1;
        if (qi < 0) {
            if (gqa_ids_push(&bad_ids, &nbad_ids, preds[i].qid) != VR_OK) {
                st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                goto done;
            }
        } else {
            qs[qi].pred_index = (long)i;
        }
    }
    if (nbad_ids) {
        st = vr_score_ids_error(err, "unknown answer ids", bad_ids, nbad_ids,
                                "; is this the answer file of another benchmark or split?",
                                "%s: %zu answer(s) for question ids not in %s (a number never matches: GQA ids are "
                                "strings): ",
                                answers_path, nbad_ids, questions_path);
        goto done;
    }
    for (size_t i = 0; i < nq; i++) {
        if (qs[i].pred_index >= 0) continue;
        if (gqa_ids_push(&bad_ids, &nbad_ids, qs[i].qid) != VR_OK) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    if (nbad_ids && !(o && o->allow_missing)) {
        st = vr_score_ids_error(err, "missing answers", bad_ids, nbad_ids,
                                "; finish the evaluation run, or allow missing answers to score them as wrong",
                                "%s: %zu question(s) have no answer (upstream stops with 'missing predictions' or "
                                "KeyError): ",
                                answers_path, nbad_ids);
        goto done;
    }

    /* the main loop, in questions-file order */
    long n_acc = 0, c_acc = 0, n_bin = 0, c_bin = 0, n_open = 0, c_open = 0;
    badcases = cJSON_CreateArray();
    if (!badcases) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nq; i++) {
        gqa_question *q = &qs[i];
        const char *pred_lc = "";
        char *lowered = NULL;
        if (q->pred_index >= 0) {
            const gqa_pred *p = &preds[q->pred_index];
            lowered = vr_py_lower(p->prediction, p->pred_len, NULL);
            if (!lowered) {
                st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                goto done;
            }
            pred_lc = lowered;
        }
        int correct = q->pred_index >= 0 && gqa_in_answers(q->answers, pred_lc);
        if (!correct) {
            cJSON *bc = cJSON_CreateObject();
            if (bc) {
                cJSON_AddItemToArray(badcases, bc);
                cJSON_AddNumberToObject(bc, "badcaseIndex", (double)cJSON_GetArraySize(badcases) - 1);
                cJSON_AddStringToObject(bc, "questionId", q->qid);
                cJSON_AddStringToObject(bc, "questionText", q->text);
                cJSON_AddItemToObject(bc, "goldAnswer", cJSON_Duplicate(q->answers, 1));
                cJSON_AddStringToObject(bc, "predictedAnswer", pred_lc);
            }
        }
        if (q->balanced) {
            n_acc++;
            c_acc += correct;
            int bad = gqa_bucket_add(&per_len, NULL, q->words, correct) | gqa_bucket_add(&per_steps, NULL, q->steps, correct) |
                      gqa_bucket_add(&per_struct, q->structural, 0, correct) |
                      gqa_bucket_add(&per_sem, q->semantic, 0, correct);
            if (strcmp(q->structural, "query") == 0) {
                n_open++;
                c_open += correct;
            } else {
                n_bin++;
                c_bin += correct;
            }
            if (!bad && q->global_group) {
                gqa_group *g = gqa_group_get(&groups, &ngroups, &capgroups, q->global_group);
                if (!g) bad = 1;
                else {
                    gqa_ans *a = gqa_ans_find(g, q->gold_key);
                    if (!a) {
                        if (g->n == g->cap) {
                            size_t nc = g->cap ? g->cap * 2 : 8;
                            gqa_ans *na = realloc(g->a, nc * sizeof *na);
                            if (!na) bad = 1;
                            else {
                                g->a = na;
                                g->cap = nc;
                            }
                        }
                        if (!bad) {
                            a = &g->a[g->n++];
                            a->key = q->gold_key;
                            a->gold = a->pred = 0;
                        }
                    }
                    if (a) a->gold++;
                }
            }
            if (bad) {
                free(lowered);
                st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                goto done;
            }
        }
        free(lowered);
    }
    /* predicted counts under the gold keys (a missing answer counts as "") */
    for (size_t i = 0; i < nq; i++) {
        gqa_question *q = &qs[i];
        if (!q->balanced || !q->global_group || q->pred_index < 0) continue;
        gqa_group *g = gqa_group_get(&groups, &ngroups, &capgroups, q->global_group);
        char *lowered = g ? vr_py_lower(preds[q->pred_index].prediction, preds[q->pred_index].pred_len, NULL) : NULL;
        if (!lowered) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        gqa_ans *a = gqa_ans_find(g, lowered);
        if (a) a->pred++;
        free(lowered);
    }
    if (ngroups == 0) {
        st = vr_error_set(err, VR_ERR_INVALID,
                          "%s: no balanced question has a global group (groups.global is null everywhere), so the "
                          "distribution metric is undefined (upstream divides by zero); use the full testdev-balanced "
                          "questions file",
                          questions_path);
        goto done;
    }
    double sum_score = 0, sum_overall = 0;
    for (size_t gi = 0; gi < ngroups; gi++) {
        double score = 0;
        long overall = 0;
        for (size_t k = 0; k < groups[gi].n; k++) {
            double e = (double)groups[gi].a[k].gold;
            double d = (double)(groups[gi].a[k].pred - groups[gi].a[k].gold);
            score += (d * d) / e;
            overall += groups[gi].a[k].gold;
        }
        sum_score += score * (double)overall;
        sum_overall += (double)overall;
    }
    double distribution = sum_score / sum_overall / 100.0;

    metrics = gqa_metrics_json(c_acc, n_acc, c_bin, n_bin, c_open, n_open, &per_struct, &per_sem, &per_len, &per_steps,
                               distribution, 1);
    if (!metrics) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }

    /* stdout */
    vr_strbuf_append_str(&out, gqa_header);
    vr_strbuf_append_str(&out, "\nBinary: ");
    vr_py_append_fixed(&out, n_bin ? gqa_pct(c_bin, n_bin) : 0.0, 2);
    vr_strbuf_append_str(&out, "%\nOpen: ");
    vr_py_append_fixed(&out, n_open ? gqa_pct(c_open, n_open) : 0.0, 2);
    vr_strbuf_append_str(&out, "%\nAccuracy: ");
    vr_py_append_fixed(&out, n_acc ? gqa_pct(c_acc, n_acc) : 0.0, 2);
    vr_strbuf_append_str(&out, "%\nValidity: 0.00%\nPlausibility: 0.00%\nDistribution: ");
    vr_py_append_fixed(&out, distribution, 2);
    vr_strbuf_append_str(&out, " (lower is better)\n");
    if (gqa_print_buckets(&out, "Accuracy / structural type", &per_struct, err) != VR_OK ||
        gqa_print_buckets(&out, "Accuracy / semantic type", &per_sem, err) != VR_OK ||
        gqa_print_buckets(&out, "Accuracy / steps number", &per_steps, err) != VR_OK ||
        gqa_print_buckets(&out, "Accuracy / words number", &per_len, err) != VR_OK) {
        st = err->code;
        goto done;
    }
    int nbc = cJSON_GetArraySize(badcases);
    if (nbc) {
        vr_strbuf_printf(&out, "\nBad Cases (Incorrect Predictions): %d\n\n", nbc);
        int i = 0;
        const cJSON *bc;
        cJSON_ArrayForEach(bc, badcases) {
            vr_strbuf_printf(&out, "%d) Question: %s\n   Gold Answer: ", i + 1,
                             cJSON_GetObjectItemCaseSensitive(bc, "questionText")->valuestring);
            gqa_python_list_repr(&out, cJSON_GetObjectItemCaseSensitive(bc, "goldAnswer"));
            vr_strbuf_printf(&out, "\n   Predicted Answer: %s\n   Question ID: %s\n\n",
                             cJSON_GetObjectItemCaseSensitive(bc, "predictedAnswer")->valuestring,
                             cJSON_GetObjectItemCaseSensitive(bc, "questionId")->valuestring);
            if (++i == 10) break;
        }
    } else {
        vr_strbuf_append_str(&out, "\nNo bad cases found.\n");
    }
    missing = cJSON_CreateArray();
    if (nbad_ids) {
        vr_strbuf_printf(&warn, "scored %zu question(s) without an answer as wrong (allow missing): ", nbad_ids);
        vr_score_list_ids(&warn, bad_ids, nbad_ids);
        for (size_t i = 0; i < nbad_ids && missing; i++) cJSON_AddItemToArray(missing, cJSON_CreateString(bad_ids[i]));
    }

    /* files: predictions (convert), metrics, badcases */
    if (gqa_predictions_text(preds, npreds, &tmp) != VR_OK) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = vr_score_write_output(pred_path, tmp.p, tmp.n, rep, err);
    if (st != VR_OK) goto done;
    vr_strbuf_free(&tmp);
    vr_py_json_dump(&tmp, metrics, 2, 1);
    if (tmp.oom) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = vr_score_write_output(metrics_path, tmp.p, tmp.n, rep, err);
    if (st != VR_OK) goto done;
    vr_strbuf_free(&tmp);
    if (nbc) {
        vr_py_json_dump(&tmp, badcases, 2, 1);
        if (tmp.oom) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        st = vr_score_write_output(bad_path, tmp.p, tmp.n, rep, err);
        if (st != VR_OK) goto done;
    }

    /* the report */
    rep->json = cJSON_CreateObject();
    if (!rep->json || out.oom || !missing) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    cJSON_AddStringToObject(rep->json, "benchmark", "gqa");
    cJSON_AddItemToObject(rep->json, "metrics",
                          gqa_metrics_json(c_acc, n_acc, c_bin, n_bin, c_open, n_open, &per_struct, &per_sem, &per_len,
                                           &per_steps, distribution, 0));
    if (!cJSON_GetObjectItemCaseSensitive(rep->json, "metrics")) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    cJSON_AddNumberToObject(rep->json, "n_badcases", nbc);
    cJSON_AddItemToObject(rep->json, "badcases", badcases);
    badcases = NULL;
    cJSON_AddItemToObject(rep->json, "missing_answers", missing);
    missing = NULL;
    if (warn.n) {
        cJSON *w = cJSON_AddArrayToObject(rep->json, "warnings");
        if (!w || warn.oom) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        cJSON_AddItemToArray(w, cJSON_CreateString(warn.p));
    }
    rep->stdout_text = vr_strbuf_take(&out, NULL);
    if (!rep->stdout_text) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");

done:
    if (st != VR_OK) vr_score_report_free(rep);
    for (size_t i = 0; i < nq && qs; i++) free(qs[i].gold_key);
    for (size_t gi = 0; gi < ngroups; gi++) free(groups[gi].a);
    free(groups);
    free(per_struct.v);
    free(per_sem.v);
    free(per_len.v);
    free(per_steps.v);
    free(qs);
    free(qkeys);
    free(pkeys);
    free(bad_ids);
    gqa_preds_free(preds, npreds);
    cJSON_Delete(qroot);
    cJSON_Delete(metrics);
    cJSON_Delete(badcases);
    cJSON_Delete(missing);
    free(answers_path);
    free(questions_path);
    free(pred_path);
    free(metrics_path);
    free(bad_path);
    vr_strbuf_free(&out);
    vr_strbuf_free(&tmp);
    vr_strbuf_free(&warn);
    return st;
}
