/* eval/score_mme.c — MME scoring by the documented rule (shared/eval-fixtures/README.md §10;
 * not upstream code: VisualRWKV ships neither script): LLaVA's convert_answer_to_mme.py (after
 * recovering the question line from VisualRWKV's full prompt, which the published converter
 * cannot do) writes eval_tool/answers/<exp_name>/<category>.txt, and the MME authors'
 * calculation.py rule gives acc, acc+ and the Perception / Cognition totals, printed in the
 * official tool's format.
 * It must not crash or silently mis-score where the published pipeline does: an answer whose
 * question has no ground truth, a missing, duplicated or unknown answer, an answer text with a
 * tab or line break (it would break the tab-separated file), answers of one image that are not
 * adjacent, a missing category: all are errors naming the ids (missing answers may be scored as
 * wrong on request, and the report says so). Reads the ground truth and answers, writes the
 * category files; prints nothing. */
#include "eval/score.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/mapped_file.h"
#include "common/pytext.h"

#define MME_MAX_FILE ((size_t)1 << 32)
#define MME_INSTR "Answer the question using a single word or phrase."
#define MME_YN "Please answer yes or no."

static const char *const mme_perception[] = {"existence", "count",     "position", "color",    "posters",
                                             "celebrity", "scene",     "landmark", "artwork",  "OCR"};
static const char *const mme_cognition[] = {"commonsense_reasoning", "numerical_calculation", "text_translation",
                                            "code_reasoning"};

static char *mme_strndup(const char *s, size_t n) {
    char *r = malloc(n + 1);
    if (r) {
        memcpy(r, s, n);
        r[n] = 0;
    }
    return r;
}

static vr_status mme_oom(vr_error *err) { return vr_error_set(err, VR_ERR_NOMEM, "out of memory"); }

static int mme_is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int mme_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- ground truth: "<category>\x1f<file>\x1f<question>" -> answer, sorted ----------------- */

typedef struct mme_gt {
    char *key;
    char *answer;
} mme_gt;

typedef struct mme_gts {
    mme_gt *v;
    size_t n, cap;
} mme_gts;

static int mme_gt_cmp(const void *a, const void *b) { return strcmp(((const mme_gt *)a)->key, ((const mme_gt *)b)->key); }

static char *mme_key(const char *cat, const char *file, const char *q, size_t qn) {
    char *k = NULL;
    if (asprintf(&k, "%s\x1f%s\x1f%.*s", cat, file, (int)qn, q) < 0) return NULL;
    return k;
}

static const char *mme_gt_find(const mme_gts *g, const char *key) {
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->v[mid].key, key);
        if (c == 0) return g->v[mid].answer;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static void mme_gts_free(mme_gts *g) {
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].key);
        free(g->v[i].answer);
    }
    free(g->v);
}

/* Reads one ground-truth file: lines "<question>\t<Yes|No>" (line.strip().split("\t")). */
static vr_status mme_read_gt_file(const char *path, const char *cat, const char *file, mme_gts *g, vr_error *err) {
    char *text = NULL;
    size_t size = 0;
    if (vr_read_file(path, MME_MAX_FILE, &text, &size, err) != VR_OK) return vr_error_wrap(err, "MME ground truth");
    long lineno = 0;
    vr_status st = VR_OK;
    for (size_t pos = 0; pos < size;) {
        size_t end = pos;
        while (end < size && text[end] != '\n' && text[end] != '\r') end++;
        lineno++;
        size_t a = 0, b = 0;
        vr_py_strip(text + pos, end - pos, &a, &b);
        const char *l = text + pos + a;
        size_t ln = b - a;
        const char *tab = memchr(l, '\t', ln);
        if (!tab || memchr(tab + 1, '\t', ln - (size_t)(tab + 1 - l))) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: line %ld is not \"<question>\\t<answer>\" (the converter would fail on it)", path,
                              lineno);
            break;
        }
        if (g->n == g->cap) {
            size_t nc = g->cap ? g->cap * 2 : 256;
            mme_gt *nv = realloc(g->v, nc * sizeof *nv);
            if (!nv) {
                st = mme_oom(err);
                break;
            }
            g->v = nv;
            g->cap = nc;
        }
        g->v[g->n].key = mme_key(cat, file, l, (size_t)(tab - l));
        g->v[g->n].answer = mme_strndup(tab + 1, ln - (size_t)(tab + 1 - l));
        g->n++;
        if (!g->v[g->n - 1].key || !g->v[g->n - 1].answer) {
            st = mme_oom(err);
            break;
        }
        pos = end + 1;
        if (end < size && text[end] == '\r' && end + 1 < size && text[end + 1] == '\n') pos++;
    }
    free(text);
    return st;
}

static vr_status mme_read_gt(const char *root, mme_gts *g, vr_error *err) {
    DIR *d = opendir(root);
    if (!d) return vr_error_set(err, VR_ERR_IO, "%s: cannot open the MME ground-truth directory", root);
    vr_status st = VR_OK;
    for (struct dirent *de; st == VR_OK && (de = readdir(d));) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || (de->d_name[1] == '.' && !de->d_name[2]))) continue;
        char *cdir = NULL, *img = NULL, *qa = NULL;
        if (asprintf(&cdir, "%s/%s", root, de->d_name) < 0) cdir = NULL;
        if (!cdir) {
            st = mme_oom(err);
            break;
        }
        if (!mme_is_dir(cdir)) {
            free(cdir);
            continue;
        }
        if (asprintf(&img, "%s/images", cdir) < 0) img = NULL;
        if (img && mme_exists(img)) {
            if (asprintf(&qa, "%s/questions_answers_YN", cdir) < 0) qa = NULL;
        } else {
            qa = mme_strndup(cdir, strlen(cdir));
        }
        if (!img || !qa) st = mme_oom(err);
        else if (!mme_is_dir(qa))
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: missing (category %s has images/ but no questions_answers_YN/)", qa,
                              de->d_name);
        DIR *q = st == VR_OK ? opendir(qa) : NULL;
        if (st == VR_OK && !q) st = vr_error_set(err, VR_ERR_IO, "%s: cannot open", qa);
        for (struct dirent *fe; st == VR_OK && q && (fe = readdir(q));) {
            size_t l = strlen(fe->d_name);
            if (l < 4 || strcmp(fe->d_name + l - 4, ".txt") != 0) continue;
            char *fp = NULL;
            if (asprintf(&fp, "%s/%s", qa, fe->d_name) < 0) {
                st = mme_oom(err);
                break;
            }
            st = mme_read_gt_file(fp, de->d_name, fe->d_name, g, err);
            free(fp);
        }
        if (q) closedir(q);
        free(cdir);
        free(img);
        free(qa);
    }
    closedir(d);
    if (st != VR_OK) return st;
    /* a repeated key (never in the official data): the converter keeps the last in directory
     * listing order, which is unspecified; the lookup finds one of them */
    if (g->n == 0)
        return vr_error_set(err, VR_ERR_NOT_FOUND,
                            "%s: no ground truth (<category>/[questions_answers_YN/]*.txt) found; is this the "
                            "MME_Benchmark_release_version folder?",
                            root);
    qsort(g->v, g->n, sizeof *g->v, mme_gt_cmp);
    return VR_OK;
}

/* ---- answers ---------------------------------------------------------------------------- */

typedef struct mme_item {
    char *qid;      /* "<category>/[images/]<name>" */
    char *category;
    char *file;     /* <name up to its first '.'>.txt */
    char *question; /* the question as written to the file (with " Please answer yes or no.") */
    char *qline;    /* the question line recovered from the prompt (stripped), to match the question file */
    const char *gt;
    const char *text; /* NULL: missing */
    long line;        /* answer-file line, 0 for a missing answer */
} mme_item;

static void mme_items_free(mme_item *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(v[i].qid);
        free(v[i].category);
        free(v[i].file);
        free(v[i].question);
        free(v[i].qline);
    }
    free(v);
}

/* Appends a zeroed item to the growing array *v; NULL when out of memory. */
static mme_item *mme_items_add(mme_item **v, size_t *n, size_t *cap) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        mme_item *nv = realloc(*v, nc * sizeof *nv);
        if (!nv) return NULL;
        *v = nv;
        *cap = nc;
    }
    mme_item *it = &(*v)[(*n)++];
    memset(it, 0, sizeof *it);
    return it;
}

/* TextVQA's prompt_processor without lower-casing: the question line of a VisualRWKV prompt. */
static int mme_question_line(const char *p, const char **q, size_t *qn) {
    size_t n = strlen(p);
    static const char first[] = "User: <image>\n", mid[] = "\n<image>\n", last[] = "\n<image>\n\nAssistant:";
    if (strncmp(p, "OCR tokens: ", 12) == 0) {
        const char *a = strstr(p, "Question: ");
        const char *b = a ? strstr(a + 10, " Short answer:") : NULL;
        if (!b) return 0;
        *q = a + 10;
        *qn = (size_t)(b - (a + 10));
        return 1;
    }
    if (strncmp(p, first, sizeof first - 1) == 0) { /* prompt.split("\n")[1] */
        const char *s = p + sizeof first - 1;
        const char *e = strchr(s, '\n');
        *q = s;
        *qn = e ? (size_t)(e - s) : strlen(s);
        return 1;
    }
    if (!strstr(p, mid)) return 0;
    if (n >= sizeof last - 1 && strcmp(p + n - (sizeof last - 1), last) == 0) {
        /* the first line, after its last "User: " */
        const char *e = strchr(p, '\n');
        size_t l = (size_t)(e - p);
        const char *s = p, *u;
        for (const char *t = p; (u = strstr(t, "User: ")) && u + 6 <= p + l; t = u + 1) s = u + 6;
        *q = s;
        *qn = (size_t)(p + l - s);
        return 1;
    }
    const char *s = NULL;
    for (const char *t = p; (t = strstr(t, mid)); t++) s = t + sizeof mid - 1;
    const char *e = strchr(s, '\n');
    *q = s;
    *qn = e ? (size_t)(e - s) : strlen(s);
    return 1;
}

/* The converter's question (instruction removed, " Please answer yes or no." appended, two
 * spaces when only that key is in the ground truth) and its ground-truth answer. */
static vr_status mme_resolve(const mme_gts *g, mme_item *it, const char *qline, size_t qn, vr_error *err) {
    vr_strbuf b = {0};
    char *q = mme_strndup(qline, qn);
    if (!q) return mme_oom(err);
    if (strstr(q, MME_INSTR)) {
        vr_str_replace_all(&b, q, strlen(q), MME_INSTR, sizeof MME_INSTR - 1, "", 0);
        size_t a = 0, e = 0;
        if (b.oom) {
            free(q);
            vr_strbuf_free(&b);
            return mme_oom(err);
        }
        vr_py_strip(b.p ? b.p : "", b.n, &a, &e);
        free(q);
        q = mme_strndup(b.p ? b.p + a : "", e - a);
        vr_strbuf_free(&b);
        if (!q) return mme_oom(err);
    }
    char *key = NULL;
    if (!strstr(q, MME_YN)) {
        char *q1 = NULL, *q2 = NULL;
        if (asprintf(&q1, "%s " MME_YN, q) < 0) q1 = NULL;
        if (asprintf(&q2, "%s  " MME_YN, q) < 0) q2 = NULL;
        free(q);
        q = NULL;
        char *k1 = q1 ? mme_key(it->category, it->file, q1, strlen(q1)) : NULL;
        if (!q1 || !q2 || !k1) {
            free(q1);
            free(q2);
            free(k1);
            return mme_oom(err);
        }
        if (mme_gt_find(g, k1)) {
            q = q1;
            free(q2);
            key = k1;
        } else {
            q = q2;
            free(q1);
            free(k1);
        }
    }
    if (!key) key = mme_key(it->category, it->file, q, strlen(q));
    if (!key) {
        free(q);
        return mme_oom(err);
    }
    it->question = q;
    it->gt = mme_gt_find(g, key);
    free(key);
    if (!it->gt)
        return vr_error_set(err, VR_ERR_NOT_FOUND,
                            "answer line %ld (question_id %s): no ground truth for question \"%s\" (also tried with one "
                            "space before \"Please\") in %s/%s (the converter fails with KeyError); is the "
                            "MME_Benchmark_release_version folder complete?",
                            it->line, it->qid, q, it->category, it->file);
    return VR_OK;
}

/* category = id up to the first '/'; file = last part up to its first '.', + ".txt" */
static vr_status mme_split_id(mme_item *it, const char *qid, vr_error *err) {
    const char *slash = strchr(qid, '/');
    const char *lastp = strrchr(qid, '/');
    lastp = lastp ? lastp + 1 : qid;
    const char *dot = strchr(lastp, '.');
    it->qid = mme_strndup(qid, strlen(qid));
    it->category = mme_strndup(qid, slash ? (size_t)(slash - qid) : strlen(qid));
    char *stem = mme_strndup(lastp, dot ? (size_t)(dot - lastp) : strlen(lastp));
    if (stem && asprintf(&it->file, "%s.txt", stem) < 0) it->file = NULL;
    free(stem);
    if (!it->qid || !it->category || !it->file) return mme_oom(err);
    return VR_OK;
}

/* "<qid>\x1f<stripped question line>" */
static char *mme_match_key(const char *qid, const char *q, size_t qn) {
    size_t a = 0, b = 0;
    vr_py_strip(q, qn, &a, &b);
    char *k = NULL;
    if (asprintf(&k, "%s\x1f%.*s", qid, (int)(b - a), q + a) < 0) return NULL;
    return k;
}

/* calculation.py's parse of "<text>\n".lower(): its first 4 characters hold yes / no / neither */
static const char *mme_parse(const char *text, int *oom) {
    size_t n = 0;
    char *lc = vr_py_lower(text, strlen(text), &n);
    if (!lc) {
        *oom = 1;
        return "other";
    }
    /* the first 4 code points of lc + "\n" */
    size_t i = 0, k = 0;
    while (i < n && k < 4) {
        (void)vr_utf8_decode_next(lc, n, &i);
        k++;
    }
    char pre[32];
    size_t pl = i < sizeof pre - 2 ? i : sizeof pre - 2;
    memcpy(pre, lc, pl);
    if (k < 4) pre[pl++] = '\n';
    pre[pl] = 0;
    free(lc);
    if (strstr(pre, "yes")) return "yes";
    if (strstr(pre, "no")) return "no";
    return "other";
}

vr_status vr_score_mme(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err) {
    memset(rep, 0, sizeof *rep);
    vr_status st = VR_OK;
    const char *exp = o ? o->exp_name : NULL;
    char *gt_root = NULL, *apath = NULL, *qpath = NULL, *outdir = NULL;
    mme_gts gts = {0};
    vr_jsonl qlines = {0}, alines = {0};
    mme_item *items = NULL;
    size_t nitems = 0, capitems = 0;
    char **qfile_keys = NULL;
    size_t nqf = 0;
    vr_score_key *qk = NULL, *ak = NULL;
    char **bad = NULL;
    size_t nbad = 0;
    size_t nanswers = 0;
    size_t *order = NULL, norder = 0;
    cJSON *scores = NULL, *missing = NULL;
    vr_strbuf out = {0}, msg = {0}, file = {0}, warn = {0};

    if (!exp || !*exp)
        return vr_error_set(err, VR_ERR_INVALID, "MME scoring needs the experiment name (exp_name): it names the answer "
                                                 "file and the eval_tool/answers/<exp_name>/ folder");
    if (o->annotation_path) gt_root = mme_strndup(o->annotation_path, strlen(o->annotation_path));
    else if (asprintf(&gt_root, "%s/eval/MME/MME_Benchmark_release_version", eval_dir) < 0) gt_root = NULL;
    if (o->answers_path) apath = mme_strndup(o->answers_path, strlen(o->answers_path));
    else if (asprintf(&apath, "%s/eval/MME/answers/%s.jsonl", eval_dir, exp) < 0) apath = NULL;
    if (o->question_path) qpath = mme_strndup(o->question_path, strlen(o->question_path));
    else if (asprintf(&qpath, "%s/eval/MME/llava_mme.jsonl", eval_dir) < 0) qpath = NULL;
    if (asprintf(&outdir, "%s/eval/MME/eval_tool/answers/%s", eval_dir, exp) < 0) outdir = NULL;
    if (!gt_root || !apath || !qpath || !outdir) {
        st = mme_oom(err);
        goto done;
    }
    if ((st = mme_read_gt(gt_root, &gts, err)) != VR_OK) goto done;

    /* the question file: one key per question line (the id repeats: two questions per image) */
    if ((st = vr_score_read_jsonl(qpath, 0, &qlines, err)) != VR_OK) {
        vr_error_wrap(err, "MME question file (needed to check that every question is answered)");
        goto done;
    }
    qfile_keys = calloc(qlines.n ? qlines.n : 1, sizeof *qfile_keys);
    if (!qfile_keys) {
        st = mme_oom(err);
        goto done;
    }
    for (; nqf < qlines.n; nqf++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(qlines.items[nqf], "question_id");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(qlines.items[nqf], "text");
        if (!cJSON_IsString(id) || !cJSON_IsString(t)) {
            st = vr_error_set(err, VR_ERR_FORMAT, "%s: line %zu lacks a string \"question_id\" or \"text\"", qpath,
                              qlines.line_no[nqf]);
            goto done;
        }
        const char *nl = strchr(t->valuestring, '\n');
        qfile_keys[nqf] = mme_match_key(id->valuestring, t->valuestring,
                                        nl ? (size_t)(nl - t->valuestring) : strlen(t->valuestring));
        if (!qfile_keys[nqf]) {
            st = mme_oom(err);
            goto done;
        }
    }

    /* the answers, converted in file order */
    if ((st = vr_score_read_jsonl(apath, 0, &alines, err)) != VR_OK) {
        vr_error_wrap(err, "MME answer file");
        goto done;
    }
    for (size_t li = 0; li < alines.n; li++) {
        long lineno = (long)alines.line_no[li];
        cJSON *j = alines.items[li];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "question_id");
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prompt");
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!cJSON_IsString(id) || !cJSON_IsString(pr) || !cJSON_IsString(t)) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: line %ld is not an answer with string \"question_id\", \"prompt\" and \"text\"",
                              apath, lineno);
            goto done;
        }
        mme_item *it = mme_items_add(&items, &nitems, &capitems);
        if (!it) {
            st = mme_oom(err);
            goto done;
        }
        it->line = lineno;
        if ((st = mme_split_id(it, id->valuestring, err)) != VR_OK) goto done;
        const char *ql = NULL;
        size_t qn = 0;
        if (!mme_question_line(pr->valuestring, &ql, &qn)) {
            st = vr_error_set(err, VR_ERR_FORMAT,
                              "%s: line %ld (question_id %s): the prompt has no recognisable question line (not a "
                              "VisualRWKV prompt with <image> first, middle or last)",
                              apath, lineno, it->qid);
            goto done;
        }
        it->qline = mme_match_key(it->qid, ql, qn);
        char *text = mme_strndup(t->valuestring, strlen(t->valuestring));
        if (!it->qline || !text) {
            free(text);
            st = mme_oom(err);
            goto done;
        }
        it->text = text;
        st = mme_resolve(&gts, it, ql, qn, err);
        if (st != VR_OK) {
            vr_error_wrap(err, "%s", apath);
            goto done;
        }
        if (strpbrk(it->text, "\t\n\r")) {
            st = vr_error_set(err, VR_ERR_INVALID,
                              "%s: line %ld (question_id %s): the answer text holds a tab or line break, which breaks "
                              "the tab-separated MME result file (the official tool would crash or mis-pair lines)",
                              apath, lineno, it->qid);
            goto done;
        }
    }
    nanswers = nitems;
    if (nanswers == 0) {
        st = vr_error_set(err, VR_ERR_INVALID, "%s: the MME answer file is empty; run the evaluation first", apath);
        goto done;
    }

    /* completeness against the question file */
    qk = calloc(nqf ? nqf : 1, sizeof *qk);
    ak = calloc(nanswers, sizeof *ak);
    bad = calloc(nanswers + nqf + 1, sizeof *bad);
    if (!qk || !ak || !bad) {
        st = mme_oom(err);
        goto done;
    }
    for (size_t i = 0; i < nqf; i++) qk[i] = (vr_score_key){qfile_keys[i], i};
    for (size_t i = 0; i < nanswers; i++) ak[i] = (vr_score_key){items[i].qline, i};
    vr_score_keys_sort(qk, nqf);
    vr_score_keys_sort(ak, nanswers);
    for (size_t i = 1; i < nanswers; i++)
        if (strcmp(ak[i - 1].s, ak[i].s) == 0 && (i < 2 || strcmp(ak[i - 2].s, ak[i].s) != 0))
            bad[nbad++] = items[ak[i].idx].qid;
    if (nbad) {
        st = vr_score_ids_error(err, "duplicate answers", (const char *const *)bad, nbad, NULL,
                                "%s: %zu question(s) answered more than once (the converter keeps every copy and the "
                                "calculation mis-pairs them): ",
                                apath, nbad);
        goto done;
    }
    for (size_t i = 0; i < nanswers; i++) {
        if (vr_score_keys_find(qk, nqf, items[i].qline) < 0) bad[nbad++] = items[i].qid;
    }
    if (nbad) {
        st = vr_score_ids_error(err, "unknown answers", (const char *const *)bad, nbad, NULL,
                                "%s: %zu answer(s) whose question is not in %s: ", apath, nbad, qpath);
        goto done;
    }
    size_t nmissing = 0;
    for (size_t i = 0; i < nqf; i++) {
        if (vr_score_keys_find(ak, nanswers, qfile_keys[i]) < 0) bad[nmissing++] = qfile_keys[i];
    }
    if (nmissing && !o->allow_missing) {
        vr_strbuf_printf(&msg, "%s: %zu question(s) of %s have no answer (the calculation would mis-pair the "
                               "remaining lines): ",
                         apath, nmissing, qpath);
        for (size_t i = 0; i < nmissing && i < 8; i++) {
            char *sep = strchr(bad[i], '\x1f');
            vr_strbuf_printf(&msg, "%s%.*s \"%s\"", i ? ", " : "", (int)(sep - bad[i]), bad[i], sep + 1);
        }
        if (nmissing > 8) vr_strbuf_printf(&msg, " and %zu more", nmissing - 8);
        vr_strbuf_append_str(&msg, "; finish the evaluation run, or allow missing answers to score them as wrong");
        st = vr_error_set(err, VR_ERR_INVALID, "%s", msg.oom ? "missing answers" : msg.p);
        goto done;
    }

    /* the order of lines: answer order; with missing answers, question-file order with an empty
     * answer (parsed "other", always wrong) in each gap */
    missing = cJSON_CreateArray();
    order = calloc(nanswers + nqf + 1, sizeof *order);
    if (!missing || !order) {
        st = mme_oom(err);
        goto done;
    }
    if (!nmissing) {
        for (size_t i = 0; i < nanswers; i++) order[norder++] = i;
    } else {
        for (size_t i = 0; i < nqf; i++) {
            long ai = vr_score_keys_find(ak, nanswers, qfile_keys[i]);
            if (ai >= 0) {
                order[norder++] = (size_t)ai;
                continue;
            }
            /* a missing answer: an item with an empty text */
            char *sep = strchr(qfile_keys[i], '\x1f');
            char *qid = mme_strndup(qfile_keys[i], (size_t)(sep - qfile_keys[i]));
            if (!qid) {
                st = mme_oom(err);
                goto done;
            }
            mme_item *it = mme_items_add(&items, &nitems, &capitems);
            if (!it) {
                free(qid);
                st = mme_oom(err);
                goto done;
            }
            st = mme_split_id(it, qid, err);
            if (st == VR_OK) {
                it->qline = mme_strndup(qfile_keys[i], strlen(qfile_keys[i]));
                if (!it->qline) st = mme_oom(err);
            }
            if (st == VR_OK) st = mme_resolve(&gts, it, sep + 1, strlen(sep + 1), err);
            if (st == VR_OK) {
                char *empty = mme_strndup("", 0);
                if (!empty) st = mme_oom(err);
                it->text = empty;
            }
            cJSON_AddItemToArray(missing, cJSON_CreateString(qid));
            free(qid);
            if (st != VR_OK) goto done;
            order[norder++] = nitems - 1;
        }
    }

    /* categories in first-seen order; every line pair must be one image */
    const char *cats[64];
    size_t ncats = 0;
    for (size_t k = 0; k < norder; k++) {
        const char *c = items[order[k]].category;
        size_t j = 0;
        while (j < ncats && strcmp(cats[j], c) != 0) j++;
        if (j == ncats) {
            if (ncats == 64) {
                st = vr_error_set(err, VR_ERR_INVALID, "%s: more than 64 MME categories; is this an MME answer file?", apath);
                goto done;
            }
            cats[ncats++] = c;
        }
    }
    for (size_t c = 0; c < ncats; c++) {
        const mme_item *prev = NULL;
        size_t cnt = 0;
        for (size_t k = 0; k < norder; k++) {
            const mme_item *it = &items[order[k]];
            if (strcmp(it->category, cats[c]) != 0) continue;
            if (cnt % 2 == 1 && strcmp(prev->qid, it->qid) != 0) {
                st = vr_error_set(err, VR_ERR_INVALID,
                                  "%s: in category %s the answers of image %s are not two adjacent lines (next: %s); "
                                  "calculation.py pairs lines by position, so acc+ would be wrong",
                                  apath, cats[c], prev->qid, it->qid);
                goto done;
            }
            prev = it;
            cnt++;
        }
        if (cnt % 2) {
            st = vr_error_set(err, VR_ERR_INVALID,
                              "%s: category %s has an odd number of answers (%zu): image %s has only one; "
                              "calculation.py needs two questions per image",
                              apath, cats[c], cnt, prev->qid);
            goto done;
        }
    }
    {
        size_t nm = 0;
        const char *miss[14];
        for (int t = 0; t < 14; t++) {
            const char *name = t < 10 ? mme_perception[t] : mme_cognition[t - 10];
            size_t j = 0;
            while (j < ncats && strcmp(cats[j], name) != 0) j++;
            if (j == ncats) miss[nm++] = name;
        }
        if (nm) {
            st = vr_score_ids_error(err, "missing MME tasks", miss, nm,
                                    "; calculation.py needs all 14 task files (run the full llava_mme.jsonl)",
                                    "%s: no answers for the MME task(s) ", apath);
            goto done;
        }
    }

    /* write the category files */
    for (size_t c = 0; c < ncats; c++) {
        vr_strbuf_free(&file);
        for (size_t k = 0; k < norder; k++) {
            const mme_item *it = &items[order[k]];
            if (strcmp(it->category, cats[c]) != 0) continue;
            vr_strbuf_printf(&file, "%s\t%s\t%s\t%s\n", it->file, it->question, it->gt, it->text);
        }
        char *path = NULL;
        if (file.oom || asprintf(&path, "%s/%s.txt", outdir, cats[c]) < 0) {
            st = mme_oom(err);
            goto done;
        }
        st = vr_score_write_output(path, file.p ? file.p : "", file.n, rep, err);
        free(path);
        if (st != VR_OK) goto done;
    }

    /* calculation.py */
    scores = cJSON_CreateObject();
    if (!scores) {
        st = mme_oom(err);
        goto done;
    }
    int oom = 0;
    for (int type = 0; type < 2; type++) {
        const char *const *tasks = type == 0 ? mme_perception : mme_cognition;
        int nt = type == 0 ? 10 : 4;
        double total = 0, task_score[10];
        for (int t = 0; t < nt; t++) {
            long questions = 0, correct = 0, both = 0, other = 0, img_correct = 0;
            cJSON *parsed = cJSON_CreateArray();
            for (size_t k = 0; k < norder; k++) {
                const mme_item *it = &items[order[k]];
                if (strcmp(it->category, tasks[t]) != 0) continue;
                char *gt = vr_py_lower(it->gt, strlen(it->gt), NULL);
                if (!gt) {
                    oom = 1;
                    break;
                }
                int gt_ok = strcmp(gt, "yes") == 0 || strcmp(gt, "no") == 0;
                if (!gt_ok) {
                    cJSON_Delete(parsed);
                    st = vr_error_set(err, VR_ERR_FORMAT,
                                      "MME ground truth for %s \"%s\" is \"%s\", not Yes or No (calculation.py asserts)",
                                      it->qid, it->question, it->gt);
                    free(gt);
                    goto done;
                }
                const char *p = mme_parse(it->text, &oom);
                cJSON_AddItemToArray(parsed, cJSON_CreateString(p));
                int ok = strcmp(gt, p) == 0;
                free(gt);
                if (questions % 2 == 0) img_correct = 0;
                correct += ok;
                img_correct += ok;
                other += strcmp(p, "other") == 0;
                questions++;
                if (questions % 2 == 0 && img_correct == 2) both++;
            }
            long images = questions / 2;
            double acc = (double)correct / (double)questions;
            double acc_plus = (double)both / (double)images;
            task_score[t] = acc * 100 + acc_plus * 100;
            total += task_score[t];
            cJSON *ts = cJSON_CreateObject();
            if (!ts || !parsed || oom) {
                cJSON_Delete(ts);
                cJSON_Delete(parsed);
                st = mme_oom(err);
                goto done;
            }
            cJSON_AddItemToObject(scores, tasks[t], ts);
            cJSON_AddNumberToObject(ts, "questions", (double)questions);
            cJSON_AddNumberToObject(ts, "images", (double)images);
            cJSON_AddNumberToObject(ts, "correct", (double)correct);
            cJSON_AddNumberToObject(ts, "images_both_correct", (double)both);
            cJSON_AddNumberToObject(ts, "other_answers", (double)other);
            cJSON_AddItemToObject(ts, "acc", cJSON_CreateNumber(acc));
            cJSON_AddItemToObject(ts, "acc_plus", cJSON_CreateNumber(acc_plus));
            cJSON_AddItemToObject(ts, "score", cJSON_CreateNumber(task_score[t]));
            cJSON_AddItemToObject(ts, "parsed", parsed);
        }
        cJSON_AddItemToObject(scores, type == 0 ? "Perception_total" : "Cognition_total", cJSON_CreateNumber(total));
        vr_strbuf_printf(&out, "=========== %s ===========\ntotal score: ", type == 0 ? "Perception" : "Cognition");
        vr_py_append_float_repr(&out, total);
        vr_strbuf_append_str(&out, " \n\n");
        for (int t = 0; t < nt; t++) {
            vr_strbuf_printf(&out, "\t %s  score: ", tasks[t]);
            vr_py_append_float_repr(&out, task_score[t]);
            vr_strbuf_append_char(&out, '\n');
        }
        vr_strbuf_append_str(&out, "\n\n");
    }
    if (nmissing) {
        vr_strbuf_printf(&warn, "scored %zu question(s) without an answer as wrong (allow missing; written with an empty "
                               "answer): ",
                         nmissing);
        for (size_t i = 0; i < nmissing && i < 8; i++) {
            char *sep = strchr(bad[i], '\x1f');
            vr_strbuf_printf(&warn, "%s%.*s \"%s\"", i ? ", " : "", (int)(sep - bad[i]), bad[i], sep + 1);
        }
        if (nmissing > 8) vr_strbuf_printf(&warn, " and %zu more", nmissing - 8);
    }
    rep->json = cJSON_CreateObject();
    if (!rep->json || out.oom) {
        st = mme_oom(err);
        goto done;
    }
    cJSON_AddStringToObject(rep->json, "benchmark", "mme");
    cJSON_AddBoolToObject(rep->json, "upstream", 0);
    cJSON_AddItemToObject(rep->json, "scores", scores);
    scores = NULL;
    cJSON_AddItemToObject(rep->json, "missing_answers", missing);
    missing = NULL;
    if (warn.n) {
        cJSON *w = cJSON_AddArrayToObject(rep->json, "warnings");
        if (!w || warn.oom) {
            st = mme_oom(err);
            goto done;
        }
        cJSON_AddItemToArray(w, cJSON_CreateString(warn.p));
    }
    rep->stdout_text = vr_strbuf_take(&out, NULL);
    if (!rep->stdout_text) st = mme_oom(err);

done:
    if (st != VR_OK) vr_score_report_free(rep);
    for (size_t i = 0; i < nitems && items; i++) free((char *)items[i].text);
    mme_items_free(items, nitems);
    for (size_t i = 0; i < nqf; i++) free(qfile_keys[i]);
    free(qfile_keys);
    free(qk);
    free(ak);
    free(bad);
    free(order);
    mme_gts_free(&gts);
    cJSON_Delete(scores);
    cJSON_Delete(missing);
    free(gt_root);
    free(apath);
    free(qpath);
    free(outdir);
    vr_jsonl_free(&alines);
    vr_jsonl_free(&qlines);
    vr_strbuf_free(&out);
    vr_strbuf_free(&msg);
    vr_strbuf_free(&file);
    vr_strbuf_free(&warn);
    return st;
}
