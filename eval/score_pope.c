/* eval/score_pope.c — POPE scoring as upstream VisualRWKV-v6/v6.0/eval/eval_pope.py does it
 * (shared/eval-fixtures/README.md §9): per label file coco_pope_<category>.json, the answer
 * parse (first sentence, commas dropped, split(' '), only No/no/not mean "no"), TP/FP/TN/FN,
 * accuracy, precision, recall, F1 and yes-ratio, printed with the same text.
 * Deliberate differences, because upstream silently mis-scores there: answers are paired with
 * labels by question (the k-th label of a file is the k-th question of that category in the
 * question file), not by position in the answer file; a missing, duplicated or unknown answer
 * is an error naming the ids (missing ones may be scored as wrong on request, and the report
 * says so); categories are printed in name order (upstream: os.listdir order). Zero
 * denominators and foreign files are errors. Reads files; writes nothing; prints nothing. */
#include "eval/score.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pytext.h"

/* Reads a JSON-lines file whose every line must be an object. */
static vr_status pope_read_jsonl(const char *path, const char *what, cJSON ***out, size_t *out_n, vr_error *err) {
    vr_jsonl j = {0};
    *out = NULL;
    *out_n = 0;
    if (vr_score_read_jsonl(path, 0, &j, err) != VR_OK) return vr_error_wrap(err, "POPE %s", what);
    for (size_t i = 0; i < j.n; i++)
        if (!cJSON_IsObject(j.items[i])) {
            vr_status st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu of the %s is not a JSON object", path,
                                        j.line_no[i], what);
            vr_jsonl_free(&j);
            return st;
        }
    *out = j.items;
    *out_n = j.n;
    free(j.line_no);
    return VR_OK;
}

static void pope_free_lines(cJSON **v, size_t n) {
    for (size_t i = 0; i < n; i++) cJSON_Delete(v[i]);
    free(v);
}

/* 1 ("yes") or 0 ("no") as eval_pope parses an answer text */
static int pope_parse(const char *text) {
    size_t n = strlen(text);
    const char *dot = memchr(text, '.', n);
    if (dot) n = (size_t)(dot - text);
    /* delete every ',' then split(' '): a word is a maximal run between single spaces */
    int no = 0;
    size_t i = 0;
    while (i <= n) {
        size_t j = i;
        while (j < n && text[j] != ' ') j++;
        /* the word is text[i, j) without commas */
        char w[4];
        size_t wl = 0;
        int too_long = 0;
        for (size_t k = i; k < j; k++) {
            if (text[k] == ',') continue;
            if (wl < 3) w[wl++] = text[k];
            else too_long = 1;
        }
        if (!too_long) {
            if ((wl == 2 && (memcmp(w, "No", 2) == 0 || memcmp(w, "no", 2) == 0)) || (wl == 3 && memcmp(w, "not", 3) == 0))
                no = 1;
        }
        i = j + 1;
    }
    return !no;
}

typedef struct pope_q {
    char *key;          /* the question id as JSON text */
    const char *category;
    const char *image;
    int label;          /* -1: no label file for its category */
    long answer;        /* index into answers, -1 none */
} pope_q;


static int pope_name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static vr_status pope_oom(vr_error *err) { return vr_error_set(err, VR_ERR_NOMEM, "out of memory"); }

vr_status vr_score_pope(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err) {
    memset(rep, 0, sizeof *rep);
    vr_status st = VR_OK;
    char *ann_dir = NULL, *qpath = NULL, *apath = NULL;
    cJSON **qlines = NULL, **alines = NULL, **llines = NULL;
    size_t nql = 0, nal = 0, nll = 0, nnames = 0;
    char **names = NULL, **ans_keys = NULL;
    char **bad = NULL;
    size_t nbad = 0;
    pope_q *qs = NULL;
    vr_score_key *qkeys = NULL, *akeys = NULL;
    cJSON *cats = NULL, *missing_all = NULL, *order = NULL;
    vr_strbuf out = {0}, warn = {0};
    DIR *d = NULL;
    const char *exp = o ? o->exp_name : NULL;

    if (!(o && o->answers_path) && !(exp && *exp))
        return vr_error_set(err, VR_ERR_INVALID, "POPE scoring needs the experiment name (exp_name) or an answer file path");
    if (o && o->annotation_path) ann_dir = strdup(o->annotation_path);
    else if (asprintf(&ann_dir, "%s/eval/pope/coco", eval_dir) < 0) ann_dir = NULL;
    if (o && o->question_path) qpath = strdup(o->question_path);
    else if (asprintf(&qpath, "%s/eval/pope/llava_pope_test.jsonl", eval_dir) < 0) qpath = NULL;
    if (o && o->answers_path) apath = strdup(o->answers_path);
    else if (asprintf(&apath, "%s/eval/pope/answers/%s/merge.jsonl", eval_dir, exp) < 0) apath = NULL;
    if (!ann_dir || !qpath || !apath) {
        st = pope_oom(err);
        goto done;
    }

    /* the question file: id -> category, image */
    if ((st = pope_read_jsonl(qpath, "question file", &qlines, &nql, err)) != VR_OK) goto done;
    qs = calloc(nql ? nql : 1, sizeof *qs);
    qkeys = calloc(nql ? nql : 1, sizeof *qkeys);
    if (!qs || !qkeys) {
        st = pope_oom(err);
        goto done;
    }
    for (size_t i = 0; i < nql; i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(qlines[i], "question_id");
        const cJSON *cat = cJSON_GetObjectItemCaseSensitive(qlines[i], "category");
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(qlines[i], "image");
        if (!id || !cJSON_IsString(cat)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu lacks \"question_id\" or a string \"category\"", qpath, i + 1);
            goto done;
        }
        qs[i].key = cJSON_PrintUnformatted(id);
        if (!qs[i].key) {
            st = pope_oom(err);
            goto done;
        }
        qs[i].category = cat->valuestring;
        qs[i].image = cJSON_IsString(img) ? img->valuestring : NULL;
        qs[i].label = -1;
        qs[i].answer = -1;
        qkeys[i].s = qs[i].key;
        qkeys[i].idx = i;
    }
    vr_score_keys_sort(qkeys, nql);
    for (size_t i = 1; i < nql; i++)
        if (strcmp(qkeys[i - 1].s, qkeys[i].s) == 0) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: question id %s appears twice", qpath, qkeys[i].s);
            goto done;
        }

    /* the annotation dir: only coco_pope_<category>.json files, in name order */
    d = opendir(ann_dir);
    if (!d) {
        st = vr_error_set(err, VR_ERR_IO, "%s: cannot open the POPE annotation directory", ann_dir);
        goto done;
    }
    for (struct dirent *de; (de = readdir(d));) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        size_t l = strlen(de->d_name);
        if (l < 15 || strncmp(de->d_name, "coco_pope_", 10) != 0 || strcmp(de->d_name + l - 5, ".json") != 0) {
            st = vr_error_set(err, VR_ERR_INVALID,
                              "%s: \"%s\" is not a coco_pope_<category>.json label file; upstream asserts on any "
                              "other entry: move it out of the directory",
                              ann_dir, de->d_name);
            goto done;
        }
        char **nn = realloc(names, (nnames + 1) * sizeof *nn);
        if (!nn) {
            st = pope_oom(err);
            goto done;
        }
        names = nn;
        if (!(names[nnames] = strdup(de->d_name))) {
            st = pope_oom(err);
            goto done;
        }
        nnames++;
    }
    closedir(d);
    d = NULL;
    if (nnames == 0) {
        st = vr_error_set(err, VR_ERR_INVALID, "%s: no coco_pope_<category>.json label file", ann_dir);
        goto done;
    }
    qsort(names, nnames, sizeof *names, pope_name_cmp);

    /* labels: the k-th label of a file belongs to the k-th question of its category */
    for (size_t f = 0; f < nnames; f++) {
        size_t l = strlen(names[f]);
        names[f][l - 5] = 0; /* the category, after the 10-byte prefix */
        const char *cat = names[f] + 10;
        char *lpath = NULL;
        if (asprintf(&lpath, "%s/coco_pope_%s.json", ann_dir, cat) < 0) {
            st = pope_oom(err);
            goto done;
        }
        st = pope_read_jsonl(lpath, "label file", &llines, &nll, err);
        if (st != VR_OK) {
            free(lpath);
            goto done;
        }
        size_t k = 0, nq_cat = 0;
        for (size_t i = 0; i < nql; i++)
            if (strcmp(qs[i].category, cat) == 0) nq_cat++;
        if (nq_cat != nll) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s has %zu labels but %s has %zu questions of category \"%s\"; the label file and the "
                              "question file do not belong together",
                              lpath, nll, qpath, nq_cat, cat);
            free(lpath);
            goto done;
        }
        for (size_t i = 0; i < nql; i++) {
            if (strcmp(qs[i].category, cat) != 0) continue;
            const cJSON *lab = cJSON_GetObjectItemCaseSensitive(llines[k], "label");
            const cJSON *img = cJSON_GetObjectItemCaseSensitive(llines[k], "image");
            if (!lab) {
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu has no \"label\"", lpath, k + 1);
                free(lpath);
                goto done;
            }
            if (cJSON_IsString(img) && qs[i].image && strcmp(img->valuestring, qs[i].image) != 0) {
                st = vr_error_set(err, VR_ERR_FORMAT,
                                  "%s: line %zu is about image %s but the matching question %s in %s is about %s; "
                                  "the label file and the question file do not belong together",
                                  lpath, k + 1, img->valuestring, qs[i].key, qpath, qs[i].image);
                free(lpath);
                goto done;
            }
            qs[i].label = !(cJSON_IsString(lab) && strcmp(lab->valuestring, "no") == 0);
            k++;
        }
        free(lpath);
        pope_free_lines(llines, nll);
        llines = NULL;
        nll = 0;
    }

    /* answers: unknown and duplicated ids are errors */
    if ((st = pope_read_jsonl(apath, "answer file", &alines, &nal, err)) != VR_OK) goto done;
    if (nal == 0) {
        st = vr_error_set(err, VR_ERR_INVALID, "%s: the POPE answer file is empty; run the evaluation first", apath);
        goto done;
    }
    ans_keys = calloc(nal, sizeof *ans_keys);
    akeys = calloc(nal, sizeof *akeys);
    bad = calloc(nal + nql + 1, sizeof *bad);
    if (!ans_keys || !akeys || !bad) {
        st = pope_oom(err);
        goto done;
    }
    for (size_t i = 0; i < nal; i++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(alines[i], "question_id");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(alines[i], "text");
        if (!id || !cJSON_IsString(t)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu lacks \"question_id\" or a string \"text\"", apath, i + 1);
            goto done;
        }
        if (!(ans_keys[i] = cJSON_PrintUnformatted(id))) {
            st = pope_oom(err);
            goto done;
        }
        akeys[i].s = ans_keys[i];
        akeys[i].idx = i;
    }
    vr_score_keys_sort(akeys, nal);
    for (size_t i = 1; i < nal; i++)
        if (strcmp(akeys[i - 1].s, akeys[i].s) == 0 && (i < 2 || strcmp(akeys[i - 2].s, akeys[i].s) != 0))
            bad[nbad++] = (char *)akeys[i].s;
    if (nbad) {
        st = vr_score_ids_error(err, "duplicate answers", (const char *const *)bad, nbad,
                                "; remove the duplicate lines",
                                "%s: %zu question id(s) answered more than once (upstream counts every copy and "
                                "misaligns the labels): ",
                                apath, nbad);
        goto done;
    }
    for (size_t i = 0; i < nal; i++) {
        long qi = vr_score_keys_find(qkeys, nql, ans_keys[i]);
        if (qi < 0) bad[nbad++] = ans_keys[i];
        else qs[qi].answer = (long)i;
    }
    if (nbad) {
        st = vr_score_ids_error(err, "unknown answer ids", (const char *const *)bad, nbad,
                                "; is this the answer file of another benchmark?",
                                "%s: %zu answer(s) for question ids not in %s (upstream fails with KeyError): ",
                                apath, nbad, qpath);
        goto done;
    }
    for (size_t i = 0; i < nql; i++)
        if (qs[i].label >= 0 && qs[i].answer < 0) bad[nbad++] = qs[i].key;
    if (nbad && !(o && o->allow_missing)) {
        st = vr_score_ids_error(err, "missing answers", (const char *const *)bad, nbad,
                                "; finish the evaluation run, or allow missing answers to score them as wrong",
                                "%s: %zu labelled question(s) have no answer (upstream pairs answers with labels by "
                                "position and silently misaligns every later pair): ",
                                apath, nbad);
        goto done;
    }

    /* per category, in name order */
    cats = cJSON_CreateObject();
    order = cJSON_CreateArray();
    missing_all = cJSON_CreateArray();
    if (!cats || !order || !missing_all) {
        st = pope_oom(err);
        goto done;
    }
    vr_strbuf_append_str(&out, "evaluating pope...\n");
    for (size_t f = 0; f < nnames; f++) {
        const char *cat = names[f] + 10;
        long tp = 0, fp = 0, tn = 0, fn = 0, n = 0, yes = 0, nmiss = 0;
        cJSON *cm = cJSON_CreateArray();
        if (!cm) {
            st = pope_oom(err);
            goto done;
        }
        for (size_t i = 0; i < nql; i++) {
            if (strcmp(qs[i].category, cat) != 0) continue;
            int label = qs[i].label, pred;
            if (qs[i].answer >= 0) {
                pred = pope_parse(cJSON_GetObjectItemCaseSensitive(alines[qs[i].answer], "text")->valuestring);
            } else {
                pred = !label; /* a missing answer is scored as wrong */
                nmiss++;
                cJSON_AddItemToArray(cm, cJSON_CreateString(qs[i].key));
                cJSON_AddItemToArray(missing_all, cJSON_CreateString(qs[i].key));
            }
            n++;
            yes += pred;
            if (pred == 1 && label == 1) tp++;
            else if (pred == 1) fp++;
            else if (label == 0) tn++;
            else fn++;
        }
        vr_strbuf_printf(&out, "Category: %s, # samples: %ld\n", cat, n);
        const char *zero = n == 0 ? "it has no questions" : tp + fp == 0 ? "no answer parses as yes, so precision"
                                                       : tp + fn == 0 ? "no label is yes, so recall"
                                                       : tp == 0 ? "there is no true positive, so F1"
                                                                 : NULL;
        if (zero) {
            cJSON_Delete(cm);
            st = vr_error_set(err, VR_ERR_INVALID,
                              "POPE category \"%s\": %s is undefined (upstream divides by zero); check the answer "
                              "file and the labels",
                              cat, zero);
            goto done;
        }
        double yes_ratio = (double)yes / (double)n;
        double precision = (double)tp / (double)(tp + fp);
        double recall = (double)tp / (double)(tp + fn);
        double f1 = 2 * precision * recall / (precision + recall);
        double acc = (double)(tp + tn) / (double)(tp + tn + fp + fn);
        vr_strbuf_printf(&out, "TP\tFP\tTN\tFN\t\n%ld\t%ld\t%ld\t%ld\n", tp, fp, tn, fn);
        vr_strbuf_append_str(&out, "Accuracy: ");
        vr_py_append_fixed(&out, acc, 3);
        vr_strbuf_append_str(&out, "\nPrecision: ");
        vr_py_append_fixed(&out, precision, 3);
        vr_strbuf_append_str(&out, "\nRecall: ");
        vr_py_append_fixed(&out, recall, 3);
        vr_strbuf_append_str(&out, "\nF1 score: ");
        vr_py_append_fixed(&out, f1, 3);
        vr_strbuf_append_str(&out, "\nYes ratio: ");
        vr_py_append_fixed(&out, yes_ratio, 3);
        vr_strbuf_append_str(&out, "\n====================================\n");
        cJSON *c = cJSON_CreateObject();
        if (!c) {
            cJSON_Delete(cm);
            st = pope_oom(err);
            goto done;
        }
        cJSON_AddItemToObject(cats, cat, c);
        cJSON_AddItemToArray(order, cJSON_CreateString(cat));
        cJSON_AddNumberToObject(c, "samples", (double)n);
        cJSON_AddNumberToObject(c, "TP", (double)tp);
        cJSON_AddNumberToObject(c, "FP", (double)fp);
        cJSON_AddNumberToObject(c, "TN", (double)tn);
        cJSON_AddNumberToObject(c, "FN", (double)fn);
        cJSON_AddNumberToObject(c, "accuracy", acc);
        cJSON_AddNumberToObject(c, "precision", precision);
        cJSON_AddNumberToObject(c, "recall", recall);
        cJSON_AddNumberToObject(c, "f1", f1);
        cJSON_AddNumberToObject(c, "yes_ratio", yes_ratio);
        cJSON_AddItemToObject(c, "missing_answers", cm);
    }
    if (nbad) {
        vr_strbuf_printf(&warn, "scored %zu labelled question(s) without an answer as wrong (allow missing): ", nbad);
        vr_score_list_ids(&warn, (const char *const *)bad, nbad);
    }
    rep->json = cJSON_CreateObject();
    if (!rep->json || out.oom) {
        st = pope_oom(err);
        goto done;
    }
    cJSON_AddStringToObject(rep->json, "benchmark", "pope");
    cJSON_AddItemToObject(rep->json, "categories", cats);
    cats = NULL;
    cJSON_AddItemToObject(rep->json, "category_order", order);
    order = NULL;
    cJSON_AddItemToObject(rep->json, "missing_answers", missing_all);
    missing_all = NULL;
    if (warn.n) {
        cJSON *w = cJSON_AddArrayToObject(rep->json, "warnings");
        if (!w || warn.oom) {
            st = pope_oom(err);
            goto done;
        }
        cJSON_AddItemToArray(w, cJSON_CreateString(warn.p));
    }
    rep->stdout_text = vr_strbuf_take(&out, NULL);
    if (!rep->stdout_text) st = pope_oom(err);

done:
    if (st != VR_OK) vr_score_report_free(rep);
    if (d) closedir(d);
    for (size_t i = 0; i < nql && qs; i++) free(qs[i].key);
    for (size_t i = 0; i < nal && ans_keys; i++) free(ans_keys[i]);
    for (size_t i = 0; i < nnames; i++) free(names[i]);
    free(names);
    free(ans_keys);
    free(qs);
    free(qkeys);
    free(akeys);
    free(bad);
    pope_free_lines(qlines, nql);
    pope_free_lines(alines, nal);
    pope_free_lines(llines, nll);
    cJSON_Delete(cats);
    cJSON_Delete(order);
    cJSON_Delete(missing_all);
    free(ann_dir);
    free(qpath);
    free(apath);
    vr_strbuf_free(&out);
    vr_strbuf_free(&warn);
    return st;
}
