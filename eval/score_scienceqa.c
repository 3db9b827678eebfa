/* eval/score_scienceqa.c — ScienceQA-IMG scoring exactly as upstream
 * VisualRWKV-v6/v6.0/eval/eval_science_qa.py does it (shared/eval-fixtures/README.md §7): the
 * printed lines, output.json and result.json byte for byte. ScienceQA-IMG = IMG-Accuracy, and an
 * item is "IMG" when its PROMPT holds "<image>".
 * It must not change upstream's parsing (the regex's last "." is any character, `(A)` fails),
 * and must not crash or silently mis-score: a missing, duplicated or unknown answer, an
 * unparsable line, an empty file, no image prompt are errors naming the ids (missing answers may
 * be scored as FAILED on request, as upstream does, and the report says so). Reads and writes
 * files; prints nothing. */
#include "eval/score.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pytext.h"

static const char sqa_options[] = "ABCDE";

/* One parsed result line. */
typedef struct sqa_pred {
    char *id;    /* question id as text */
    int id_is_str;
    char *prompt;
    char *text;
    long line;
    int used;
} sqa_pred;

static void sqa_preds_free(sqa_pred *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(p[i].id);
        free(p[i].prompt);
        free(p[i].text);
    }
    free(p);
}

static vr_status sqa_read_results(const char *path, sqa_pred **out, size_t *out_n, vr_error *err) {
    vr_jsonl j = {0};
    *out = NULL;
    *out_n = 0;
    vr_status st = vr_score_read_jsonl(path, 0, &j, err);
    if (st != VR_OK) return vr_error_wrap(err, "ScienceQA result file (upstream prints 'error line' and silently drops such a line)");
    if (j.n == 0) {
        vr_jsonl_free(&j);
        return vr_error_set(err, VR_ERR_INVALID, "%s: the ScienceQA result file is empty; run the evaluation first", path);
    }
    sqa_pred *p = calloc(j.n, sizeof *p);
    size_t n = 0;
    if (!p) {
        vr_jsonl_free(&j);
        return vr_error_set(err, VR_ERR_NOMEM, "out of memory");
    }
    for (; n < j.n; n++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j.items[n], "question_id");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j.items[n], "prompt");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j.items[n], "text");
        if (!id || !cJSON_IsString(pr) || !cJSON_IsString(t)) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: line %zu lacks \"question_id\", a string \"prompt\" or a string \"text\"", path,
                              j.line_no[n]);
            break;
        }
        sqa_pred *e = &p[n];
        e->line = (long)j.line_no[n];
        e->id_is_str = cJSON_IsString(id);
        e->id = e->id_is_str ? strdup(id->valuestring) : cJSON_PrintUnformatted(id);
        e->prompt = strdup(pr->valuestring);
        e->text = strdup(t->valuestring);
        if (!e->id || !e->prompt || !e->text) {
            n++;
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            break;
        }
    }
    vr_jsonl_free(&j);
    if (st != VR_OK) {
        sqa_preds_free(p, n);
        return st;
    }
    *out = p;
    *out_n = n;
    return VR_OK;
}

/* upstream's answer parsing: the letter ("A".."Z") or "FAILED" into out[8] */
static void sqa_parse(const char *t, char out[8]) {
    size_t n = strlen(t);
    if (n == 1 && t[0] >= 'A' && t[0] <= 'E') {
        out[0] = t[0];
        out[1] = 0;
        return;
    }
    /* len(text) >= 3 code points, text[0] an option, text[1:3] == ". " */
    if (n >= 3 && t[0] >= 'A' && t[0] <= 'E' && t[1] == '.' && t[2] == ' ') {
        out[0] = t[0];
        out[1] = 0;
        return;
    }
    /* re.findall(r'The answer is ([A-Z]).', text): exactly one match */
    static const char pat[] = "The answer is ";
    const size_t pl = sizeof pat - 1;
    int matches = 0;
    char letter = 0;
    size_t i = 0;
    while (i < n) {
        if (n - i >= pl + 2 && memcmp(t + i, pat, pl) == 0 && t[i + pl] >= 'A' && t[i + pl] <= 'Z' &&
            t[i + pl + 1] != '\n') {
            if (!matches) letter = t[i + pl];
            matches++;
            size_t j = i + pl + 1;
            (void)vr_utf8_decode_next(t, n, &j); /* "." is one code point */
            i = j;
        } else {
            i++;
        }
    }
    if (matches == 1) {
        out[0] = letter;
        out[1] = 0;
    } else {
        strcpy(out, "FAILED");
    }
}

/* get_pred_idx: the option index when the answer is among the first len(choices) options */
static int sqa_pred_idx(const char *ans, int n_choices) {
    if (strlen(ans) != 1) return -1;
    for (int k = 0; k < 5 && k < n_choices; k++)
        if (ans[0] == sqa_options[k]) return k;
    return -1;
}

static cJSON *sqa_float(double x, int raw) {
    if (!raw) return cJSON_CreateNumber(x);
    char r[VR_PY_REPR_MAX];
    vr_py_float_repr(x, r);
    return cJSON_CreateRaw(r);
}

vr_status vr_score_scienceqa(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err) {
    memset(rep, 0, sizeof *rep);
    vr_status st = VR_OK;
    char *base = NULL, *result_path = NULL, *out_path = NULL, *res_path = NULL, *problems_path = NULL,
         *splits_path = NULL;
    cJSON *problems = NULL, *splits = NULL, *output = NULL, *result = NULL, *result_rep = NULL, *missing = NULL,
          *ignored = NULL;
    sqa_pred *preds = NULL;
    size_t npreds = 0, nsplit = 0, nuniq = 0;
    vr_score_key *pkeys = NULL, *skeys = NULL;
    const char **split_ids = NULL, **bad = NULL;
    size_t nbad = 0;
    vr_strbuf out = {0}, tmp = {0}, warn = {0};
    const char *exp = o ? o->exp_name : NULL;
    const char *split_name = o && o->split ? o->split : "test";

    if (!(o && o->answers_path) && !(exp && *exp))
        return vr_error_set(err, VR_ERR_INVALID, "ScienceQA scoring needs the experiment name (exp_name) or a result file path");
    if (asprintf(&base, "%s/eval/scienceqa", eval_dir) < 0) base = NULL;
    if (o && o->answers_path) result_path = strdup(o->answers_path);
    else if (base && asprintf(&result_path, "%s/answers/%s/merge.jsonl", base, exp) < 0)
        result_path = NULL;
    if (!base || !result_path) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        const char *slash = strrchr(result_path, '/');
        int dl = slash ? (int)(slash - result_path) : 1;
        const char *dir = slash ? result_path : ".";
        if (asprintf(&out_path, "%.*s/output.json", dl, dir) < 0) out_path = NULL;
        if (asprintf(&res_path, "%.*s/result.json", dl, dir) < 0) res_path = NULL;
        if (o && o->annotation_path) problems_path = strdup(o->annotation_path);
        else if (asprintf(&problems_path, "%s/problems.json", base) < 0) problems_path = NULL;
        if (o && o->question_path) splits_path = strdup(o->question_path);
        else if (asprintf(&splits_path, "%s/pid_splits.json", base) < 0) splits_path = NULL;
        if (!out_path || !res_path || !problems_path || !splits_path) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    /* inputs */
    if ((st = vr_score_read_json(splits_path, &splits, err)) != VR_OK) goto done;
    const cJSON *split = cJSON_GetObjectItemCaseSensitive(splits, split_name);
    if (!cJSON_IsArray(split)) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: not a JSON object with a \"%s\" list of problem ids", splits_path,
                          split_name);
        goto done;
    }
    if ((st = vr_score_read_json(problems_path, &problems, err)) != VR_OK) goto done;
    if (!cJSON_IsObject(problems)) {
        st = vr_error_set(err, VR_ERR_FORMAT, "%s: not a JSON object of problems keyed by id", problems_path);
        goto done;
    }
    if ((st = sqa_read_results(result_path, &preds, &npreds, err)) != VR_OK) goto done;

    /* the split, its duplicates collapsed like upstream's dict */
    nsplit = (size_t)cJSON_GetArraySize(split);
    split_ids = calloc(nsplit ? nsplit : 1, sizeof *split_ids);
    skeys = calloc(nsplit ? nsplit : 1, sizeof *skeys);
    pkeys = calloc(npreds, sizeof *pkeys);
    bad = calloc(npreds + nsplit + 1, sizeof *bad);
    if (!split_ids || !skeys || !pkeys || !bad) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    {
        size_t k = 0;
        const cJSON *s;
        cJSON_ArrayForEach(s, split) {
            if (!cJSON_IsString(s)) {
                st = vr_error_set(err, VR_ERR_FORMAT, "%s: a \"%s\" entry is not a string problem id", splits_path,
                                  split_name);
                goto done;
            }
            skeys[k].s = s->valuestring;
            skeys[k].idx = k;
            k++;
        }
        vr_score_keys_sort(skeys, nsplit);
        /* keep the first occurrence of each id, in split order */
        char *keep = calloc(nsplit ? nsplit : 1, 1);
        if (!keep) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < nsplit; i++)
            if (i == 0 || strcmp(skeys[i - 1].s, skeys[i].s) != 0) keep[skeys[i].idx] = 1;
        k = 0;
        cJSON_ArrayForEach(s, split) {
            if (keep[k]) split_ids[nuniq++] = s->valuestring;
            k++;
        }
        free(keep);
    }
    if (nuniq == 0) {
        st = vr_error_set(err, VR_ERR_INVALID, "%s: the \"%s\" split is empty: nothing to score", splits_path,
                          split_name);
        goto done;
    }

    /* answers: duplicated ids and ids that are no problem at all are errors */
    for (size_t i = 0; i < npreds; i++) {
        pkeys[i].s = preds[i].id;
        pkeys[i].idx = i;
    }
    vr_score_keys_sort(pkeys, npreds);
    for (size_t i = 1; i < npreds; i++)
        if (strcmp(pkeys[i - 1].s, pkeys[i].s) == 0 && (i < 2 || strcmp(pkeys[i - 2].s, pkeys[i].s) != 0))
            bad[nbad++] = pkeys[i].s;
    if (nbad) {
        st = vr_score_ids_error(err, "duplicate answers", bad, nbad,
                                "; remove the duplicate lines",
                                "%s: %zu problem id(s) answered more than once (upstream silently keeps the last): ",
                                result_path, nbad);
        goto done;
    }
    ignored = cJSON_CreateArray();
    for (size_t i = 0; i < npreds; i++) {
        if (!preds[i].id_is_str || !cJSON_GetObjectItemCaseSensitive(problems, preds[i].id)) bad[nbad++] = preds[i].id;
    }
    if (nbad) {
        st = vr_score_ids_error(err, "unknown answer ids", bad, nbad,
                                "; is this the result file of another benchmark?",
                                "%s: %zu answer(s) for ids that are not ScienceQA problems (ids are strings): ",
                                result_path, nbad);
        goto done;
    }
    for (size_t i = 0; i < nuniq; i++) {
        long pi = vr_score_keys_find(pkeys, npreds, split_ids[i]);
        if (pi < 0) bad[nbad++] = split_ids[i];
        else preds[pi].used = 1;
    }
    if (nbad && !(o && o->allow_missing)) {
        st = vr_score_ids_error(err, "missing answers", bad, nbad,
                                "; finish the evaluation run, or allow missing answers to score them as wrong",
                                "%s: %zu %s problem(s) have no answer (upstream silently scores them as FAILED): ",
                                result_path, nbad, split_name);
        goto done;
    }

    /* scoring, in split order */
    output = cJSON_CreateObject();
    cJSON *correct_list = cJSON_AddArrayToObject(output, "correct");
    cJSON *incorrect_list = cJSON_AddArrayToObject(output, "incorrect");
    cJSON *results = cJSON_CreateObject(), *outputs = cJSON_CreateObject();
    if (!correct_list || !incorrect_list || !results || !outputs || !ignored) {
        cJSON_Delete(results);
        cJSON_Delete(outputs);
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    long n_correct = 0, n_total = 0, mm_correct = 0, mm_total = 0;
    for (size_t i = 0; i < nuniq; i++) {
        const char *pid = split_ids[i];
        const cJSON *prob = cJSON_GetObjectItemCaseSensitive(problems, pid);
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(prob, "choices");
        const cJSON *answer = cJSON_GetObjectItemCaseSensitive(prob, "answer");
        if (!prob || !cJSON_IsArray(choices) || !cJSON_IsNumber(answer) || answer->valuedouble != (double)answer->valueint ||
            answer->valueint < 0 || answer->valueint > 4) {
            cJSON_Delete(results);
            cJSON_Delete(outputs);
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: test problem %s is missing, or lacks a \"choices\" list or an \"answer\" index 0..4",
                              problems_path, pid);
            goto done;
        }
        long pi = vr_score_keys_find(pkeys, npreds, pid);
        const char *text = pi >= 0 ? preds[pi].text : "FAILED";
        const char *prompt = pi >= 0 ? preds[pi].prompt : "Unknown";
        char parsed[8];
        sqa_parse(text, parsed);
        int idx = sqa_pred_idx(parsed, cJSON_GetArraySize(choices));
        int mm = strstr(prompt, "<image>") != NULL;
        int ok = idx == answer->valueint;
        char gt[2] = {sqa_options[answer->valueint], 0};
        cJSON *an = cJSON_CreateObject();
        if (an) {
            cJSON_AddStringToObject(an, "question_id", pid);
            cJSON_AddStringToObject(an, "parsed_ans", parsed);
            cJSON_AddStringToObject(an, "ground_truth", gt);
            cJSON_AddStringToObject(an, "question", prompt);
            cJSON_AddStringToObject(an, "pred", text);
            cJSON_AddBoolToObject(an, "is_multimodal", mm);
            cJSON_AddItemToArray(ok ? correct_list : incorrect_list, an);
        }
        cJSON_AddNumberToObject(results, pid, idx);
        cJSON_AddStringToObject(outputs, pid, text);
        n_total++;
        n_correct += ok;
        mm_total += mm;
        mm_correct += mm && ok;
    }
    for (size_t i = 0; i < npreds; i++)
        if (!preds[i].used) cJSON_AddItemToArray(ignored, cJSON_CreateString(preds[i].id));
    if (mm_total == 0) {
        cJSON_Delete(results);
        cJSON_Delete(outputs);
        st = vr_error_set(err, VR_ERR_INVALID,
                          "%s: no answered test problem has \"<image>\" in its prompt, so IMG-Accuracy (the "
                          "ScienceQA-IMG score) is undefined (upstream divides by zero); were the prompts built "
                          "with the image?",
                          result_path);
        goto done;
    }
    double acc = (double)n_correct / (double)n_total * 100.0;
    double img_acc = (double)mm_correct / (double)mm_total * 100.0;
    result = cJSON_CreateObject();
    if (!result) {
        cJSON_Delete(results);
        cJSON_Delete(outputs);
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    cJSON_AddItemToObject(result, "acc", sqa_float(acc, 1));
    cJSON_AddNumberToObject(result, "correct", (double)n_correct);
    cJSON_AddNumberToObject(result, "count", (double)n_total);
    cJSON_AddItemToObject(result, "results", results);
    cJSON_AddItemToObject(result, "outputs", outputs);

    /* stdout */
    vr_strbuf_printf(&out, "num of loaded predictions: %zu\n", npreds);
    vr_strbuf_printf(&out, "Task\xEF\xBC\x9AScienceQA, Total: %ld, Correct: %ld, Accuracy: ", n_total, n_correct);
    vr_py_append_fixed(&out, acc, 2);
    vr_strbuf_append_str(&out, "%, IMG-Accuracy: ");
    vr_py_append_fixed(&out, img_acc, 2);
    vr_strbuf_append_str(&out, "%\n");
    missing = cJSON_CreateArray();
    if (nbad && missing) {
        vr_strbuf_printf(&warn, "scored %zu %s problem(s) without an answer as FAILED (allow missing): ", nbad,
                         split_name);
        vr_score_list_ids(&warn, bad, nbad);
        vr_strbuf_append_char(&warn, '\n');
        for (size_t i = 0; i < nbad; i++) cJSON_AddItemToArray(missing, cJSON_CreateString(bad[i]));
    }
    if (cJSON_GetArraySize(ignored)) {
        vr_strbuf_printf(&warn, "ignored %d answer(s) for problems outside the %s split: ", cJSON_GetArraySize(ignored),
                         split_name);
        int k = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, ignored) {
            if (k == 8) {
                vr_strbuf_printf(&warn, " and %d more", cJSON_GetArraySize(ignored) - 8);
                break;
            }
            vr_strbuf_printf(&warn, "%s%s", k++ ? ", " : "", it->valuestring);
        }
        vr_strbuf_append_char(&warn, '\n');
    }

    /* files */
    vr_py_json_dump(&tmp, output, 2, 1);
    if (tmp.oom) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = vr_score_write_output(out_path, tmp.p, tmp.n, rep, err)) != VR_OK) goto done;
    vr_strbuf_free(&tmp);
    vr_py_json_dump(&tmp, result, 2, 1);
    if (tmp.oom) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((st = vr_score_write_output(res_path, tmp.p, tmp.n, rep, err)) != VR_OK) goto done;

    /* report */
    rep->json = cJSON_CreateObject();
    result_rep = cJSON_Duplicate(result, 1);
    if (!rep->json || !result_rep || !missing || out.oom) {
        st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
        goto done;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(result_rep, "acc", cJSON_CreateNumber(acc));
    cJSON_AddStringToObject(rep->json, "benchmark", "scienceqa");
    cJSON_AddNumberToObject(rep->json, "accuracy", acc);
    cJSON_AddNumberToObject(rep->json, "img_accuracy", img_acc);
    cJSON_AddNumberToObject(rep->json, "correct", (double)n_correct);
    cJSON_AddNumberToObject(rep->json, "total", (double)n_total);
    cJSON_AddNumberToObject(rep->json, "img_correct", (double)mm_correct);
    cJSON_AddNumberToObject(rep->json, "img_total", (double)mm_total);
    cJSON_AddNumberToObject(rep->json, "loaded_predictions", (double)npreds);
    cJSON_AddItemToObject(rep->json, "result", result_rep);
    result_rep = NULL;
    cJSON_AddItemToObject(rep->json, "missing_answers", missing);
    missing = NULL;
    cJSON_AddItemToObject(rep->json, "ignored_answers", ignored);
    ignored = NULL;
    if (warn.n) { /* one warning per line */
        cJSON *w = cJSON_AddArrayToObject(rep->json, "warnings");
        if (!w || warn.oom) {
            st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (char *line = warn.p, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
            *nl = 0;
            cJSON_AddItemToArray(w, cJSON_CreateString(line));
        }
    }
    rep->stdout_text = vr_strbuf_take(&out, NULL);
    if (!rep->stdout_text) st = vr_error_set(err, VR_ERR_NOMEM, "out of memory");

done:
    if (st != VR_OK) vr_score_report_free(rep);
    sqa_preds_free(preds, npreds);
    cJSON_Delete(problems);
    cJSON_Delete(splits);
    cJSON_Delete(output);
    cJSON_Delete(result);
    cJSON_Delete(result_rep);
    cJSON_Delete(missing);
    cJSON_Delete(ignored);
    free(split_ids);
    free(skeys);
    free(pkeys);
    free(bad);
    free(base);
    free(result_path);
    free(out_path);
    free(res_path);
    free(problems_path);
    free(splits_path);
    vr_strbuf_free(&out);
    vr_strbuf_free(&tmp);
    vr_strbuf_free(&warn);
    return st;
}
