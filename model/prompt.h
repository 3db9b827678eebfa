/* model/prompt.h — builds the token ids of a turn exactly as upstream evaluate.py does
 * (Conversation, process_image_tokens_in_conversations, preprocess): image placement
 * first/middle(sandwich)/last, "User: …\n\nAssistant:", per-turn and per-<image>-chunk
 * tokenisation, -200 for the image. Knows no model math. */
#ifndef VR_PROMPT_H
#define VR_PROMPT_H

#include <stdint.h>

#include "common/error.h"
#include "model/tokenizer.h"

#define VR_IMAGE_TOKEN_ID (-200)
#define VR_STOP_TOKEN_DEFAULT 261

typedef enum { VR_IMAGE_FIRST = 0, VR_IMAGE_MIDDLE, VR_IMAGE_LAST } vr_image_position;

vr_status vr_image_position_parse(const char *s, vr_image_position *out, vr_error *err);
const char *vr_image_position_name(vr_image_position p);

/* process_image_tokens_in_conversations on a raw human message (evaluate.py's input text, e.g.
 * "<image>\nWhat is…", or a ScienceQA problem without any marker): with one "<image>" the marker
 * is removed, the text stripped and blank-line collapsed, and the marker put first / in the
 * middle (question without the single-word instruction, image, question) / last; without a
 * marker the text is only stripped and collapsed. malloc'd. More than one marker is
 * VR_ERR_INVALID (upstream: "Too many images"); invalid UTF-8 is VR_ERR_INVALID. */
vr_status vr_prompt_process_message(const char *message, vr_image_position pos, char **value, vr_error *err);

/* A first-turn prompt built from a raw human message. */
typedef struct vr_prompt_built {
    char *human_value; /* after image processing */
    char *text;        /* "User: " + human_value + "\n\nAssistant:" (the answer file's "prompt") */
    int32_t *ids;      /* the two sentences' ids (-200 for the image); NULL when no tokenizer */
    int n_ids;
} vr_prompt_built;

/* Processes message (vr_prompt_process_message) and builds the prompt text and, when tok is not
 * NULL, its ids: no truncation, no padding. out is zeroed on error. */
vr_status vr_prompt_build(const vr_tokenizer *tok, const char *message, vr_image_position pos, vr_prompt_built *out,
                          vr_error *err);
void vr_prompt_built_free(vr_prompt_built *p);

/* The human value after upstream processing, e.g. "<image>\nWhat is…" (malloc'd).
 * question is the user's text as typed (no <image> marker). with_image = 0: plain question
 * (the text is only stripped and newline runs collapsed). */
vr_status vr_prompt_human_value(const char *question, int with_image, vr_image_position pos, char **out,
                                vr_error *err);

/* The ids of a first turn: "User: " + value + "\n\n" then "Assistant:", each tokenised
 * separately, the value split at <image> with -200 between chunks. ids malloc'd.
 * A literal "<image>" typed by the user is refused (upstream would fail with "Too many images"). */
vr_status vr_prompt_first_turn(const vr_tokenizer *tok, const char *question, int with_image,
                               vr_image_position pos, int32_t **ids, int *n, vr_error *err);

/* The ids of a later turn (after the previous answer and its 261): "User: " + q + "\n\n" and
 * "Assistant:" tokenised separately; q processed as for a text-only turn. */
vr_status vr_prompt_next_turn(const vr_tokenizer *tok, const char *question, int32_t **ids, int *n, vr_error *err);

#endif
