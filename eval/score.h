/* eval/score.h — the benchmark scorers: each reads an answer file (what `vrwkv eval` /
 * upstream evaluate.py writes) plus the benchmark's ground truth under an $eval_dir laid out
 * like upstream's scripts/eval/eval_<bench>.sh expect, and reproduces exactly the text the upstream
 * scorer script prints, the files it writes and every number (shared/eval-fixtures/README.md).
 * Scorers never run a model, never touch the network, and never write outside $eval_dir
 * (or the directories of the paths the caller passes). Where upstream crashes on bad input
 * (missing predictions, unknown ids ...) they return an error naming the problem and the ids
 * instead; with allow_missing, missing answers are scored as wrong and the report says so. */
#ifndef VR_EVAL_SCORE_H
#define VR_EVAL_SCORE_H

#include <cjson/cJSON.h>

#include "common/error.h"
#include "common/pytext.h"

typedef struct vr_score_options {
    /* The answer file; NULL = the path the upstream .sh uses under eval_dir for exp_name
     * (e.g. eval/vqav2/answers/<split>/<exp_name>/merge.jsonl). */
    const char *answers_path;
    /* Ground-truth overrides; NULL = the upstream file names under eval_dir. For benchmarks
     * with one ground-truth file (annotations) use annotation_path; question_path is the
     * second one where there are two (VQAv2 val: the OpenEnded questions file). */
    const char *annotation_path;
    const char *question_path;
    /* Score questions that have no answer as wrong (and say so in the report) instead of
     * failing with an error that lists them. */
    int allow_missing;
    /* The answer folder name, "<parent>_<stem>" of the checkpoint (upstream's $CKPT / exp). */
    const char *exp_name;
    /* The split where a benchmark has one (VQAv2 test-dev: "llava_vqav2_mscoco_test-dev2015",
     * the default when NULL). */
    const char *split;
} vr_score_options;

typedef struct vr_score_report {
    char *stdout_text;    /* exactly what the upstream script prints (UTF-8, NUL-terminated) */
    cJSON *json;          /* every figure printed or written, plus "warnings" when any */
    char **files_written; /* paths of the files written, in writing order */
    int n_files;
} vr_score_report;

void vr_score_report_free(vr_score_report *rep);

/* VQAv2 val: eval_vqa.py. Writes <answers>.jsonl→_metrics.jsonl. The stdout's
 * "DONE (t=...s)" line holds the real elapsed time formatted like upstream ("%0.2f"). */
vr_status vr_score_vqav2_val(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                             vr_error *err);
/* VQAv2 test-dev: convert_vqav2_for_submission.py. Writes
 * eval/vqav2/answers_upload/<split>/<exp_name>.json. */
vr_status vr_score_vqav2_testdev(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                                 vr_error *err);
/* TextVQA val: eval_textvqa.py + m4c_evaluator. Writes nothing. answers_path default:
 * eval/textvqa/answers/<exp_name>/merge.jsonl. */
vr_status vr_score_textvqa(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                           vr_error *err);

/* ---- helpers shared by the scorers (eval/score_vqav2.c) ---- */

/* Appends a copy of path to rep->files_written. */
vr_status vr_score_report_add_file(vr_score_report *rep, const char *path, vr_error *err);
/* mkdir -p of the directory part of path. */
vr_status vr_score_mkdirs_for(const char *path, vr_error *err);
/* Writes n bytes to path (creating the folders), replacing the file. */
vr_status vr_score_write_file(const char *path, const char *data, size_t n, vr_error *err);

/* The JSON values of a jsonl file, one per line (a final "\n" ends the last line; a blank
 * line is a line). With skip_bad, lines json.loads would reject are counted in n_bad and left
 * out; otherwise the first one is an error naming its line number. */
typedef struct vr_jsonl {
    cJSON **items;
    size_t *line_no; /* 1-based line of each item */
    size_t n;
    size_t n_bad;
} vr_jsonl;
vr_status vr_score_read_jsonl(const char *path, int skip_bad, vr_jsonl *out, vr_error *err);
void vr_jsonl_free(vr_jsonl *j);
/* Parses a whole JSON file. */
vr_status vr_score_read_json(const char *path, cJSON **out, vr_error *err);

/* A key for a JSON value under Python equality (1 == 1.0, "1" != 1): "i:<int>", "f:<repr>",
 * "s:<text>", or the printed JSON. malloc'd; NULL when out of memory. */
char *vr_score_id_key(const cJSON *v);

/* A string -> index hash map (keys copied). */
typedef struct vr_score_map {
    char **keys;
    size_t *vals;
    size_t cap, n;
} vr_score_map;
/* Sets key -> val (replacing). */
vr_status vr_score_map_put(vr_score_map *m, const char *key, size_t val);
/* 1 and *val when present, else 0. */
int vr_score_map_get(const vr_score_map *m, const char *key, size_t *val);
void vr_score_map_free(vr_score_map *m);

/* ---- GQA, ScienceQA, POPE, MME (eval/score_gqa.c, score_scienceqa.c, score_pope.c, score_mme.c) ---- */

/* GQA testdev-balanced: convert_gqa_for_eval.py + eval_gqa.py. answers_path default:
 * eval/gqa/answers/llava_gqa_testdev_balanced/<exp_name>/merge.jsonl; annotation_path: the
 * questions file with the "answers" lists (eval/gqa/testdev_balanced_questions.json). Writes,
 * next to the answer file, testdev_balanced_predictions.json, ..._metrics.json and (when any
 * answer is wrong) ..._badcases.json. */
vr_status vr_score_gqa(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err);
/* ScienceQA-IMG: eval_science_qa.py. answers_path default: eval/scienceqa/answers/<exp_name>/merge.jsonl;
 * annotation_path: problems.json, question_path: pid_splits.json (default under
 * eval/scienceqa/); split: default "test". Writes output.json and result.json next to the
 * answer file. Answers for problems of other splits are ignored (a warning). */
vr_status vr_score_scienceqa(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                             vr_error *err);
/* POPE: eval_pope.py, answers paired with labels by question (not by position), categories
 * in name order. answers_path default: eval/pope/answers/<exp_name>/merge.jsonl;
 * annotation_path: the label folder (eval/pope/coco), question_path: llava_pope_test.jsonl.
 * Writes nothing. */
vr_status vr_score_pope(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err);
/* MME (the documented rule, not upstream code): convert_answer_to_mme + calculation.py.
 * answers_path default: eval/MME/answers/<exp_name>.jsonl; annotation_path: the
 * MME_Benchmark_release_version folder; question_path: eval/MME/llava_mme.jsonl. Writes
 * eval/MME/eval_tool/answers/<exp_name>/<task>.txt; stdout_text is the official tool's print. */
vr_status vr_score_mme(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err);

/* ---- MMBench / MMBench-CN (eval/score_mmbench.c) ---- */

/* convert_mmbench_for_submission.py with the script's own arguments: reads annotation_file
 * (pandas read_table rules) and <result_dir>/<experiment>/merge.jsonl, writes
 * <upload_dir>/<experiment>.xlsx (the sheet the MMBench server takes; same cells as upstream's
 * openpyxl file, byte-reproducible) and <upload_dir>/<experiment>_upload_table.json (the sheet
 * as a JSON array of rows, header first, null = empty cell: expected.json's upload_table).
 * stdout_text is "" like upstream's. json: upload_table, counts, warnings, and
 * "circular_not_upstream": a local circular evaluation with VLMEvalKit's letter heuristics
 * where the TSV has an answer column (null otherwise). A missing dropped column, an existing
 * "prediction" column or a control character an .xlsx cannot hold is an error. */
vr_status vr_mmbench_convert(const char *annotation_file, const char *result_dir, const char *upload_dir,
                             const char *experiment, vr_score_report *rep, vr_error *err);
/* The same at the .sh paths: eval/mmbench/<split>.tsv, eval/mmbench/answers/<split>/<exp_name>/
 * merge.jsonl, eval/mmbench/answers_upload/<split>/; split defaults to mmbench_dev_20230712
 * (EN) / mmbench_dev_cn_20231003 (CN); annotation_path / answers_path override. Answers that are
 * missing leave an empty cell (as upstream) and count as wrong in the circular evaluation. */
vr_status vr_score_mmbench(const char *eval_dir, const vr_score_options *o, vr_score_report *rep, vr_error *err);
vr_status vr_score_mmbench_cn(const char *eval_dir, const vr_score_options *o, vr_score_report *rep,
                              vr_error *err);

/* ---- shared by the scorers (eval/score_common.c) ------------------------------------ */

/* A sorted index of strings: fill s and idx (the position it stands for), then sort; ties keep
 * idx order, so find returns the first occurrence. */
typedef struct vr_score_key {
    const char *s;
    size_t idx;
} vr_score_key;
void vr_score_keys_sort(vr_score_key *keys, size_t n);
/* idx of the first key equal to s, or -1. */
long vr_score_keys_find(const vr_score_key *keys, size_t n, const char *s);
/* Appends up to 8 ids ("a, b, ... and N more") to b, for error messages that name ids. */
void vr_score_list_ids(vr_strbuf *b, const char *const *ids, size_t n);
/* Sets err to VR_ERR_INVALID with the message "<fmt ...><up to 8 ids><tail>" (tail may be
 * NULL), or to oom_msg when the message cannot be built; returns VR_ERR_INVALID. */
vr_status vr_score_ids_error(vr_error *err, const char *oom_msg, const char *const *ids, size_t n, const char *tail,
                             const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* Appends one formatted string to the JSON array warnings ("" when out of memory). */
void vr_score_warning_add(cJSON *warnings, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "<dir>/<rel>" with one "/" between them when dir does not end in one; malloc'd, NULL when out
 * of memory. */
char *vr_score_join_path(const char *dir, const char *rel);
/* vr_score_write_file, then records path in rep->files_written. */
vr_status vr_score_write_output(const char *path, const char *data, size_t n, vr_score_report *rep, vr_error *err);

#endif
