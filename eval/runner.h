/* eval/runner.h — `vrwkv eval`: a benchmark question file → the answer file upstream
 * evaluate.py would write. Questions are read and chunked (eval/questions), their prompts built
 * (eval/eval_prompt), answered greedily by a generation backend (the in-process engine here,
 * the cluster in cli/cmd_eval.c), and the answer lines (eval/answers) written in question order,
 * flushed line by line; --resume appends after the ids already answered. A bad question line or
 * an unreadable image is reported with its id and skipped. No networking here: a remote backend
 * plugs in through vr_eval_backend. */
#ifndef VR_EVAL_RUNNER_H
#define VR_EVAL_RUNNER_H

#include <stddef.h>
#include <stdint.h>

#include "common/error.h"
#include "model/engine.h"
#include "model/prompt.h"

enum { VR_EVAL_DEFAULT_MAX_TOKENS = 128 };

/* One question handed to a backend. The backend fills the result fields and calls nothing
 * else; the runner owns and frees everything. */
typedef struct vr_eval_job {
    size_t index;            /* position in the chunk (answers are written in this order) */
    const char *id_text;     /* the question id as text, for messages */
    const char *human;       /* the human message with its <image> marker (evaluate.py's input text) */
    const int32_t *ids;      /* prompt ids (-200 for the image); NULL when the backend builds them */
    int n_ids;
    int has_image_token;     /* the prompt holds <image> (-200): the image (or zero image) is used */
    const uint8_t *image;    /* image file bytes; NULL: an all-zero image (no image in the line) */
    size_t image_len;
    vr_image_position position;
    vr_scan_mode scan;
    int max_tokens;
    /* results: every generated id including the stop token when one ended the answer, the
     * bytes they decode to, and each id's logit and log-probability */
    int32_t *tokens;
    float *logits, *logprobs;
    int n_tokens, cap_tokens;
    char *bytes;
    size_t n_bytes, cap_bytes;
    vr_status status;        /* VR_OK, or why this question was not answered */
    vr_error err;
    void *backend_data;      /* free for the backend's use while the job is in flight */
} vr_eval_job;

/* Appends one generated token (its bytes may be a partial UTF-8 sequence) to a job. */
vr_status vr_eval_job_add_token(vr_eval_job *j, int32_t token, const void *bytes, size_t len, float logit,
                                float logprob, vr_error *err);

/* A generation backend. submit hands over a job (it must not block for long); next blocks until
 * one submitted job is finished (status set) and returns it. At most `capacity` jobs are in
 * flight. A non-OK return from either ends the run; next returns VR_OK whenever it returns a
 * job, and an error for one question goes into the job's status instead (VR_ERR_INVALID /
 * FORMAT / NOT_FOUND / UNSUPPORTED skip the question, any other status ends the run). needs_ids: the runner must fill ids (an in-process backend). */
typedef struct vr_eval_backend {
    void *ctx;
    int capacity;
    int needs_ids;
    const vr_tokenizer *tok; /* for ids (needs_ids) and decoding; may be NULL otherwise */
    vr_status (*submit)(void *ctx, vr_eval_job *job, vr_error *err);
    vr_status (*next)(void *ctx, vr_eval_job **job, vr_error *err);
} vr_eval_backend;

/* The in-process backend over an open engine: prefills up to `capacity` questions and decodes
 * them together with vr_sessions_step. */
vr_status vr_eval_engine_backend_create(vr_engine *e, int capacity, vr_eval_backend *out, vr_error *err);
void vr_eval_engine_backend_free(vr_eval_backend *b);

typedef struct vr_eval_options {
    const char *questions_path;
    const char *dataset;     /* default, mmbench, mmbench_cn, or any benchmark name treated as default */
    const char *images_dir;  /* NULL: image values are base64 (MMBench TSV) */
    vr_image_position position;
    vr_scan_mode scan;
    int max_tokens;          /* <= 0: 128 */
    const char *out_path;
    int num_chunks, chunk_idx; /* num_chunks <= 0: 1 */
    int resume;
    const char *model_id;    /* written into every line */
    int progress;            /* 0 off, 1 on stderr (a bar on a terminal, a line every few seconds otherwise) */
} vr_eval_options;

typedef struct vr_eval_summary {
    size_t total;     /* questions in the chunk */
    size_t resumed;   /* already in the output */
    size_t answered;  /* written by this run */
    size_t skipped;   /* bad lines, unreadable images, refused prompts */
    double seconds;
} vr_eval_summary;

/* The model_id upstream derives from a checkpoint path: the name of its parent directory
 * ("" when the path has none). out must hold at least 256 bytes. */
void vr_eval_model_id(const char *checkpoint_path, char *out, size_t cap);

vr_status vr_eval_run(const vr_eval_options *o, vr_eval_backend *b, vr_eval_summary *sum, vr_error *err);

#endif
