/* eval/score_textvqa.c — TextVQA val scoring as upstream eval_textvqa.py + m4c_evaluator's
 * TextVQAAccuracyEvaluator do it: look each answer up by (image id, lower-cased question
 * recovered from the prompt), score with the EvalAI processor and the 10-answer soft accuracy,
 * print the one summary line. Writes nothing. Where upstream crashes (unknown prompt shape,
 * unannotated answer, not 10 answers, no answers) it returns an error naming the problem. */
#include "eval/score.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pytext.h"
#include "eval/evalai.h"

static int starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static int ends_with(const char *s, const char *p) {
    size_t n = strlen(s), k = strlen(p);
    return n >= k && memcmp(s + n - k, p, k) == 0;
}

/* eval_textvqa.py prompt_processor(prompt): appends the lower-cased question to out;
 * returns 0 for a prompt shape upstream asserts on. */
static int prompt_question(const char *p, vr_strbuf *out) {
    const char *q = NULL;
    size_t qn = 0;
    if (starts_with(p, "OCR tokens: ")) {
        /* re.search(r"Question: (.*?) Short answer:", prompt, re.DOTALL).group(1) */
        const char *a = strstr(p, "Question: ");
        while (a) {
            const char *b = strstr(a + 10, " Short answer:");
            if (b) {
                q = a + 10;
                qn = (size_t)(b - q);
                break;
            }
            a = NULL;
        }
        if (!q) return 0;
    } else if (starts_with(p, "User: <image>\n")) {
        q = p + strlen("User: <image>\n"); /* split('\n')[1] */
        const char *nl = strchr(q, '\n');
        qn = nl ? (size_t)(nl - q) : strlen(q);
    } else if (strstr(p, "\n<image>\n")) {
        if (ends_with(p, "\n<image>\n\nAssistant:")) {
            /* split('\n')[0].split('User: ')[-1] */
            const char *nl = strchr(p, '\n');
            size_t line_n = nl ? (size_t)(nl - p) : strlen(p);
            const char *start = p;
            for (size_t i = 0; i + 6 <= line_n; i++)
                if (memcmp(p + i, "User: ", 6) == 0) start = p + i + 6;
            q = start;
            qn = line_n - (size_t)(start - p);
        } else {
            /* split('\n<image>\n')[-1].split('\n')[0] */
            const char *last = NULL, *f = p;
            while ((f = strstr(f, "\n<image>\n")) != NULL) {
                last = f;
                f += 9; /* str.split: non-overlapping, left to right */
            }
            q = last + 9;
            const char *nl = strchr(q, '\n');
            qn = nl ? (size_t)(nl - q) : strlen(q);
        }
    } else {
        return 0;
    }
    return vr_py_lower_append(out, q, qn) == VR_OK;
}

/* The lookup key "(image_id key)\x1f(question)". */
static char *ann_key(const cJSON *id, const char *question_lower) {
    char *k = vr_score_id_key(id);
    if (!k) return NULL;
    vr_strbuf b = {0};
    vr_strbuf_append_str(&b, k);
    vr_strbuf_append_char(&b, '\x1f');
    vr_strbuf_append_str(&b, question_lower);
    free(k);
    return vr_strbuf_take(&b, NULL);
}

/* splitext(basename(path))[0] */
static char *experiment_name(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    const char *dot = strrchr(base, '.');
    size_t n = strlen(base);
    if (dot) {
        const char *s = base;
        while (*s == '.') s++; /* leading dots do not start an extension */
        if (dot >= s) n = (size_t)(dot - base);
    }
    char *r = malloc(n + 1);
    if (!r) return NULL;
    memcpy(r, base, n);
    r[n] = 0;
    return r;
}

vr_status vr_score_textvqa(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                           vr_error *err) {
    vr_error local_err = {0};
    if (!err) err = &local_err;
    memset(rep, 0, sizeof *rep);
    vr_strbuf tmp = {0}, out = {0};
    char *ann_path = NULL, *res_path = NULL, *exp_name = NULL;
    cJSON *ann = NULL, *report = NULL;
    vr_jsonl res = {0};
    vr_score_map amap = {0};
    const cJSON **items = NULL;
    vr_status st = VR_OK;

    ann_path = o && o->annotation_path ? strdup(o->annotation_path)
                                       : vr_score_join_path(eval_dir, "eval/textvqa/TextVQA_0.5.1_val.json");
    if (o && o->answers_path) {
        res_path = strdup(o->answers_path);
    } else {
        if (!o || !o->exp_name) {
            st = vr_error_set(err, VR_ERR_INVALID, "TextVQA: give the experiment name (exp_name) or the answer file");
            goto done;
        }
        vr_strbuf_printf(&tmp, "eval/textvqa/answers/%s/merge.jsonl", o->exp_name);
        res_path = vr_score_join_path(eval_dir, tmp.p);
        vr_strbuf_free(&tmp);
    }
    if (!ann_path || !res_path || !(exp_name = experiment_name(res_path))) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = vr_score_read_json(ann_path, &ann, err)) != VR_OK) goto done;
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(ann, "data");
    if (!cJSON_IsArray(data)) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: no \"data\" list (is this TextVQA_0.5.1_val.json?)", ann_path);
        goto done;
    }
    int n_ann = cJSON_GetArraySize(data);
    items = calloc((size_t)n_ann + 1, sizeof *items);
    if (!items) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        int k = 0;
        const cJSON *a;
        cJSON_ArrayForEach(a, data) {
            const char *q = NULL;
            const cJSON *qv = cJSON_GetObjectItemCaseSensitive(a, "question");
            const cJSON *img = cJSON_GetObjectItemCaseSensitive(a, "image_id");
            if (cJSON_IsString(qv)) q = qv->valuestring;
            if (!q || !img) {
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: data[%d] needs \"image_id\" and a \"question\" string", ann_path, k);
                goto done;
            }
            char *ql = vr_py_lower(q, strlen(q), NULL);
            char *key = ql ? ann_key(img, ql) : NULL;
            free(ql);
            if (!key || vr_score_map_put(&amap, key, (size_t)k) != VR_OK) {
                free(key);
                st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
                goto done;
            }
            free(key);
            items[k++] = a;
        }
    }
    if ((st = vr_score_read_jsonl(res_path, 0, &res, err)) != VR_OK) goto done;
    if (res.n == 0) {
        st = vr_error_set(err, VR_ERR_INVALID, "%s: the answer file is empty; nothing to score (upstream divides by zero)",
                          res_path);
        goto done;
    }
    report = cJSON_CreateObject();
    cJSON *pq = cJSON_CreateArray();
    cJSON_AddItemToObject(report, "per_question", pq);
    double score_sum = 0;
    for (size_t i = 0; i < res.n; i++) {
        const cJSON *r = res.items[i];
        const cJSON *qid = cJSON_GetObjectItemCaseSensitive(r, "question_id");
        const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(r, "prompt");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(r, "text");
        if (!qid || !cJSON_IsString(prompt)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu needs \"question_id\" and a \"prompt\" string", res_path,
                              res.line_no[i]);
            goto done;
        }
        vr_strbuf qb = {0};
        vr_strbuf_append(&qb, "", 0);
        if (!prompt_question(prompt->valuestring, &qb)) {
            vr_strbuf_free(&qb);
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: line %zu: the prompt has none of the shapes TextVQA scoring knows (\"User: <image>\\n...\", "
                              "\"...\\n<image>\\n...\", \"OCR tokens: ... Question: ... Short answer:\"), so its question "
                              "cannot be recovered", res_path, res.line_no[i]);
            goto done;
        }
        char *key = ann_key(qid, qb.p);
        size_t ai = 0;
        if (!key || !vr_score_map_get(&amap, key, &ai)) {
            char *idk = vr_score_id_key(qid);
            st = vr_error_set(err, VR_ERR_NOT_FOUND,
                              "%s: line %zu: no annotation in %s for question_id %s with question \"%s\"; the answer file "
                              "does not belong to this annotation file", res_path, res.line_no[i], ann_path,
                              idk ? idk + 2 : "?", qb.p);
            free(idk);
            free(key);
            vr_strbuf_free(&qb);
            goto done;
        }
        free(key);
        if (!cJSON_IsString(text)) {
            vr_strbuf_free(&qb);
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu has no \"text\" string", res_path, res.line_no[i]);
            goto done;
        }
        const cJSON *answers = cJSON_GetObjectItemCaseSensitive(items[ai], "answers");
        int na = cJSON_IsArray(answers) ? cJSON_GetArraySize(answers) : -1;
        if (na != 10) {
            char *idk = vr_score_id_key(qid);
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: the annotation of image %s, question \"%s\" has %d answers; TextVQA scoring needs "
                              "exactly 10", ann_path, idk ? idk + 2 : "?", qb.p, na < 0 ? 0 : na);
            free(idk);
            vr_strbuf_free(&qb);
            goto done;
        }
        char *g[10] = {0};
        int ok = 1;
        for (int j = 0; j < 10; j++) {
            const cJSON *a = cJSON_GetArrayItem(answers, j);
            if (!cJSON_IsString(a)) {
                ok = 0;
                break;
            }
            g[j] = vr_evalai_answer(a->valuestring, strlen(a->valuestring));
            if (!g[j]) ok = 0;
        }
        char *p = ok ? vr_evalai_answer(text->valuestring, strlen(text->valuestring)) : NULL;
        if (!ok || !p) {
            for (int j = 0; j < 10; j++) free(g[j]);
            free(p);
            st = vr_error_set(err, ok ? VR_ERR_NOMEM : VR_ERR_FORMAT, "%s: the answers of question \"%s\" must be 10 strings",
                              ann_path, qb.p ? qb.p : "?");
            vr_strbuf_free(&qb);
            goto done;
        }
        /* s(u) = sum_j min(1, #{k != j: g_k == u} / 3) / 10, for u = p when p is one of g */
        double score = 0.0;
        int found = 0;
        for (int j = 0; j < 10; j++) found |= strcmp(g[j], p) == 0;
        if (found) {
            double s = 0;
            for (int j = 0; j < 10; j++) {
                int m = 0;
                for (int k = 0; k < 10; k++)
                    if (k != j && strcmp(g[k], p) == 0) m++;
                s += m >= 3 ? 1.0 : (double)m / 3;
            }
            score = s / 10;
        }
        score_sum += score;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "question_id", cJSON_Duplicate(qid, 1));
        cJSON_AddStringToObject(e, "question_key", qb.p);
        cJSON_AddStringToObject(e, "processed_prediction", p);
        cJSON *gp = cJSON_AddArrayToObject(e, "gt_processed");
        for (int j = 0; j < 10; j++) cJSON_AddItemToArray(gp, cJSON_CreateString(g[j]));
        cJSON_AddNumberToObject(e, "score", score);
        cJSON_AddItemToArray(pq, e);
        for (int j = 0; j < 10; j++) free(g[j]);
        free(p);
        vr_strbuf_free(&qb);
    }
    double acc = score_sum / (double)res.n;
    vr_strbuf_printf(&out, "Task: TextVQA Experiment: %s Samples: %zu Accuracy: ", exp_name, res.n);
    vr_py_append_fixed(&out, 100. * acc, 2);
    vr_strbuf_append_str(&out, "%\n");
    char pct[400];
    vr_py_format_fixed(100. * acc, 2, pct, sizeof pct);
    cJSON_AddStringToObject(report, "benchmark", "textvqa");
    cJSON_AddStringToObject(report, "answers_file", res_path);
    cJSON_AddStringToObject(report, "experiment", exp_name);
    cJSON_AddNumberToObject(report, "samples", (double)res.n);
    cJSON_AddNumberToObject(report, "accuracy", acc);
    cJSON_AddStringToObject(report, "accuracy_percent_printed", pct);
    if (out.oom) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    rep->json = report;
    report = NULL;
    rep->stdout_text = vr_strbuf_take(&out, NULL);
    if (!rep->stdout_text) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
done:
    if (st != VR_OK) vr_score_report_free(rep);
    cJSON_Delete(report);
    cJSON_Delete(ann);
    vr_jsonl_free(&res);
    vr_score_map_free(&amap);
    free(items);
    vr_strbuf_free(&tmp);
    vr_strbuf_free(&out);
    free(ann_path);
    free(res_path);
    free(exp_name);
    return st;
}
