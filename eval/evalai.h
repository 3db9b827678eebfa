/* eval/evalai.h — the VQA answer normalisers upstream scorers use, reproduced exactly:
 * eval_vqa.py VQAEval.processPunctuation / processDigitArticle and
 * m4c_evaluator.EvalAIAnswerProcessor (VQAv2 test-dev upload, TextVQA), including their
 * quirks (at most 32 periods removed, delete-vs-space decided on the whole text, capitalised
 * contraction keys that never match). Pure text functions: no files, no scoring rules. */
#ifndef VR_EVAL_EVALAI_H
#define VR_EVAL_EVALAI_H

#include <stddef.h>

#include "common/error.h"
#include "common/pytext.h"

/* Tables generated from shared/eval-fixtures/tables.json (eval/evalai_tables.c). */
extern const char *const vr_vqa_contractions[][2];
extern const size_t vr_vqa_contractions_n;
extern const char *const vr_vqa_number_map[][2];
extern const size_t vr_vqa_number_map_n;
extern const char *const vr_vqa_articles[];
extern const size_t vr_vqa_articles_n;
extern const char *const vr_vqa_punctuations[];
extern const size_t vr_vqa_punctuations_n;
extern const int vr_vqa_period_strip_max;

/* Which comma-digit test processPunctuation uses. */
typedef enum vr_punct_variant {
    VR_PUNCT_EVAL_VQA = 0, /* eval_vqa.py: regex (\d)(,)(\d) */
    VR_PUNCT_M4C = 1       /* m4c_evaluator.py: regex (?<=\d)(\,)+(?=\d) */
} vr_punct_variant;

/* Appends processPunctuation(s) to out. */
vr_status vr_vqa_process_punctuation(vr_strbuf *out, const char *s, size_t n, vr_punct_variant v);
/* Appends processDigitArticle(s) to out: lower(), split(), number words, articles,
 * contractions, joined by single spaces. */
vr_status vr_vqa_process_digit_article(vr_strbuf *out, const char *s, size_t n);
/* eval_vqa.py's prediction normalisation: \n and \t to spaces, strip, processPunctuation
 * (eval_vqa variant), processDigitArticle. Appends to out. */
vr_status vr_vqa_normalize_prediction(vr_strbuf *out, const char *s, size_t n);
/* m4c_evaluator.EvalAIAnswerProcessor()(s), appended to out. */
vr_status vr_evalai_process(vr_strbuf *out, const char *s, size_t n);
/* The same, as a malloc'd NUL-terminated string (NULL when out of memory). */
char *vr_evalai_answer(const char *s, size_t n);

#endif
