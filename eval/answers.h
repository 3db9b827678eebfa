/* eval/answers.h — the answer file of a benchmark run, one line per question exactly as
 * upstream evaluate.py writes it: json.dumps({"question_id", "prompt", "text", "avg_logit",
 * "avg_prob", "model_id", "metadata": {"image_file"}}, ensure_ascii=False); the answer text and
 * the two averages as upstream computes them; and reading an answer file back for --resume.
 * Knows nothing of models, prompts or networks: it formats and parses lines. */
#ifndef VR_EVAL_ANSWERS_H
#define VR_EVAL_ANSWERS_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

/* A question id with its type in the question file: a JSON/pandas integer or a string. */
typedef struct vr_answer_id {
    int is_int;
    long long i;
    const char *s; /* when !is_int (UTF-8) */
} vr_answer_id;

typedef struct vr_answer {
    vr_answer_id id;
    const char *prompt;     /* the prompt text ("User: ...\n\nAssistant:") */
    const char *text;       /* the answer (vr_answer_text) */
    size_t text_len;
    double avg_logit;
    double avg_prob;
    const char *model_id;
    const char *image_file; /* the line's "image" value; NULL writes null */
} vr_answer;

/* The answer text from the bytes of every generated id (the stop token included): the whole
 * text is "\ufffd" when the bytes are not valid UTF-8; then cut at the first "\n\n" and strip
 * (Python whitespace). *out malloc'd, NUL-terminated; *out_len its length (NUL bytes kept). */
vr_status vr_answer_text(const char *bytes, size_t len, char **out, size_t *out_len, vr_error *err);

/* avg_logit = mean of the logits, avg_prob = exp(mean of the log-probabilities) (the geometric
 * mean of the probabilities), summed in order in double. n == 0 gives NaN for both. */
void vr_answer_averages(const float *logits, const float *logprobs, int n, double *avg_logit, double *avg_prob);

/* The line without its trailing "\n" (malloc'd, NUL-terminated; *len optional). */
vr_status vr_answer_line(const vr_answer *a, char **line, size_t *len, vr_error *err);

/* Parses an answer line and writes it again with vr_answer_line (avg_logit / avg_prob parsed
 * and re-rounded): equal bytes mean the line is exactly in upstream's format. VR_ERR_FORMAT when
 * it is not an answer line. */
vr_status vr_answer_line_reformat(const char *line, size_t n, char **out, size_t *out_len, vr_error *err);

/* The answers already in a file, for --resume: their ids as keys ("i:123" or "s:<text>",
 * malloc'd, in file order) and `valid_bytes`, the length of the file up to the end of its last
 * complete line. A last line without "\n" (a run killed while writing it) is not counted and
 * lies beyond valid_bytes; a complete line that does not parse is an error naming its line
 * number. A missing file gives no answers and valid_bytes 0. */
typedef struct vr_answer_ids {
    char **keys;
    size_t n;
    size_t valid_bytes;
    int truncated_tail; /* 1 when an incomplete last line was found */
} vr_answer_ids;

vr_status vr_answer_ids_read(const char *path, vr_answer_ids *out, vr_error *err);
void vr_answer_ids_free(vr_answer_ids *ids);
/* The key vr_answer_ids_read uses for an id (malloc'd; NULL when out of memory). */
char *vr_answer_id_key(const vr_answer_id *id);

#endif
