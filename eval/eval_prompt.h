/* eval/eval_prompt.h — the prompt of one benchmark question exactly as upstream evaluate.py
 * builds it: the input text (get_input_text: "<image>\n" + text, a conversation's first value,
 * or the MMBench hint/question/options/instruction of get_input_text_mmbench), then the shared
 * prompt builder of model/prompt.h (image placement, "User: …\n\nAssistant:", ids).
 * Reads no files and no images; a question it cannot build is an error naming the problem. */
#ifndef VR_EVAL_PROMPT_H
#define VR_EVAL_PROMPT_H

#include <stdint.h>
#include <cjson/cJSON.h>

#include "common/error.h"
#include "model/prompt.h"
#include "model/tokenizer.h"

#define VR_MMBENCH_INSTRUCTION_EN "Answer with the option's letter from the given choices directly."
#define VR_MMBENCH_INSTRUCTION_CN "\xE8\xAF\xB7\xE7\x9B\xB4\xE6\x8E\xA5\xE5\x9B\x9E\xE7\xAD\x94\xE9\x80\x89\xE9\xA1\xB9\xE5\xAD\x97\xE6\xAF\x8D\xE3\x80\x82" /* 请直接回答选项字母。 */

/* evaluate.py --dataset_name: "mmbench" and "mmbench_cn" select the MMBench text; any other
 * name (or NULL) is the default rule. */
typedef enum { VR_EVAL_DATASET_DEFAULT = 0, VR_EVAL_DATASET_MMBENCH, VR_EVAL_DATASET_MMBENCH_CN } vr_eval_dataset;
vr_eval_dataset vr_eval_dataset_from_name(const char *name);

/* MMBench is_none on a record value: null (JSON null, pandas NaN) or a string equal to "nan"
 * or "none" ignoring case. Numbers, booleans, "", "N/A" (as a string) and " none" are not none. */
int vr_eval_is_none(const cJSON *v);

/* The MMBench options shown to the model: the values of A, B, C, D in order up to the first
 * none one. *n gets their count (0..4); values[i] point into record. Errors: a missing column,
 * or a kept value that is not a string (upstream: TypeError). */
vr_status vr_eval_mmbench_options(const cJSON *record, const char *values[4], int *n, vr_error *err);

/* get_input_text(line, dataset_name): the raw human message (malloc'd). Errors (VR_ERR_FORMAT):
 * no "text" and no "conversations" (default), a missing column or a non-text value (MMBench). */
vr_status vr_eval_input_text(const cJSON *record, vr_eval_dataset dataset, char **out, vr_error *err);

/* Everything evaluate.py derives from one question line. Each pointer is malloc'd and owned by
 * the struct (vr_eval_prompt_free), or may be taken over by the caller (then set it to NULL). */
typedef struct vr_eval_prompt {
    char *input_text;  /* get_input_text: the raw human message */
    char *prompt;      /* "User: <human value>\n\nAssistant:" (the answer file's "prompt") */
    int32_t *ids;      /* prompt ids with -200 for the image; NULL when no tokenizer was given */
    int n_ids;
    int has_image;     /* the input text holds "<image>": upstream feeds the image only then */
} vr_eval_prompt;

/* get_input_text for the dataset name (vr_eval_dataset_from_name), then vr_prompt_build.
 * tok may be NULL (no ids). out is zeroed on error. */
vr_status vr_eval_prompt_build(const cJSON *record, const char *dataset, vr_image_position pos,
                               const vr_tokenizer *tok, vr_eval_prompt *out, vr_error *err);
void vr_eval_prompt_free(vr_eval_prompt *p);

#endif
